//! The engine's view of a bound object: only the facts the retention rules read, taken from
//! whichever kind the object is.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use kube::api::ObjectMeta;
use serde::Serialize;

use crate::{
    api::{AccountBinding, Backup, BackupSource, DELETE_AT_ANNOTATION, DataCategory, LegalBasis},
    kinds::ResourceKind,
};

/// Identifies one bound object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ResourceRef {
    /// The object's kind.
    pub kind: ResourceKind,
    /// The object's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// One object bound to an account, reduced to what the retention rules read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundResource {
    /// Which object this is.
    pub reference: ResourceRef,
    /// The Account it is bound to (`spec.accountRef`).
    pub account: String,
    /// The kind-specific facts.
    pub facts: ResourceFacts,
    /// The schedule currently stamped on the object (the delete-at annotation, or a Backup's
    /// `status.expiresAt`), if any.
    pub stamped_delete_at: Option<DateTime<Utc>>,
    /// The reason stamped with it (a Backup's `status.expiryReason`; hosted kinds have none).
    pub stamped_reason: Option<String>,
}

/// The kind-specific facts of a bound object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResourceFacts {
    /// A hosted resource or data record.
    Hosted(HostedFacts),
    /// A backup of a hosted resource.
    Backup(BackupFacts),
}

/// What the rules read of a hosted resource or data record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostedFacts {
    /// The hosted kind, which selects the grace period.
    pub kind: ResourceKind,
    /// The declared legal basis.
    pub legal_basis: LegalBasis,
    /// The consent purpose when the basis is Consent.
    pub consent_purpose: Option<String>,
    /// DataProcessors that also hold the data (`processorRef`, and a Domain's `registrar`).
    pub processors: Vec<String>,
    /// The fiscal year end when the Bookkeeping Act requires the data.
    pub fiscal_year_end: Option<NaiveDate>,
    /// A DataRecord's category. The rules do not read it; the record of processing
    /// activities (`crate::records`) does.
    pub data_category: Option<DataCategory>,
}

/// What the rules read of a backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupFacts {
    /// The resource the backup was taken of.
    pub source: BackupSource,
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
}

impl BoundResource {
    /// A hosted object's facts (see [`crate::kinds::BoundKind::facts`]).
    pub(crate) fn hosted(
        meta: &ObjectMeta,
        binding: &AccountBinding,
        kind: ResourceKind,
        registrar: Option<&str>,
        fiscal_year_end: Option<NaiveDate>,
        data_category: Option<DataCategory>,
    ) -> Self {
        let mut processors: Vec<String> = binding.processor_ref.iter().cloned().collect();
        if let Some(registrar) = registrar
            && !processors.iter().any(|p| p == registrar)
        {
            processors.push(registrar.to_owned());
        }
        Self {
            reference: reference(kind, meta),
            account: binding.account_ref.clone(),
            facts: ResourceFacts::Hosted(HostedFacts {
                kind,
                legal_basis: binding.legal_basis,
                consent_purpose: binding.consent_purpose.clone(),
                processors,
                fiscal_year_end,
                data_category,
            }),
            stamped_delete_at: stamped_delete_at(meta),
            stamped_reason: None,
        }
    }

    /// The hosted facts, or `None` for a backup.
    pub fn hosted_facts(&self) -> Option<&HostedFacts> {
        match &self.facts {
            ResourceFacts::Hosted(facts) => Some(facts),
            ResourceFacts::Backup(_) => None,
        }
    }
}

fn reference(kind: ResourceKind, meta: &ObjectMeta) -> ResourceRef {
    ResourceRef {
        kind,
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
    }
}

/// The schedule the delete-at annotation records; an unparsable value counts as none, so the
/// operator stamps the computed one over it.
fn stamped_delete_at(meta: &ObjectMeta) -> Option<DateTime<Utc>> {
    let value = meta.annotations.as_ref()?.get(DELETE_AT_ANNOTATION)?;
    DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl BoundResource {
    /// A backup's facts (see [`crate::kinds::BoundKind::facts`]).
    pub(crate) fn backup(o: &Backup) -> Self {
        Self {
            reference: reference(ResourceKind::Backup, &o.metadata),
            account: o.spec.account_ref.clone(),
            facts: ResourceFacts::Backup(BackupFacts {
                source: o.spec.source_ref.clone(),
                taken_at: o.spec.taken_at,
            }),
            stamped_delete_at: o.status.as_ref().and_then(|s| s.expires_at),
            stamped_reason: o.status.as_ref().and_then(|s| s.expiry_reason.clone()),
        }
    }
}
