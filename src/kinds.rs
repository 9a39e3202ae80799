//! The registry of bound kinds: the one place that lists the kinds of object an Account's data
//! lives in, and what each of them is to the operator.
//!
//! [`ResourceKind`] names them; [`BoundKind`] is what every such type provides (its facts for
//! the rules, its account, its conditions); [`ResourceKind::visit`] is the one mapping from a
//! name to its type. Everything that must treat every kind alike is derived from these: the
//! watch caches and their wiring (`controller`), reading and deleting through the dynamic API
//! (`controller::cluster`), `inventory`, manifest decoding (`manifest`), the CRDs
//! ([`crate::api::all_crds`]) and the chart's RBAC rules (`retention-operator chart-rbac`).
//! `docs/adding-a-bound-kind.md` lists the steps to add one.

use std::{fmt, str::FromStr};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{CustomResourceExt, Resource, api::ApiResource};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{
    api::{Backup, Condition, DataRecord, Database, Domain, Mailbox, Website},
    retention::BoundResource,
};

/// Declares [`ResourceKind`] from the list of bound types: each variant is named after its
/// type, and [`ResourceKind::ALL`], [`ResourceKind::as_str`] and [`ResourceKind::visit`] follow
/// from the same list, so that no kind can be left out of them.
macro_rules! bound_kinds {
    ($($kind:ident),+ $(,)?) => {
        /// Every kind that can be bound to an Account.
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            JsonSchema,
        )]
        pub enum ResourceKind {
            $($kind),+
        }

        impl ResourceKind {
            /// Every bound kind, in the order of the API's documentation.
            pub const ALL: [Self; [$(stringify!($kind)),+].len()] = [$(Self::$kind),+];

            /// The kind's name as in `kind:`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$kind => stringify!($kind)),+
                }
            }

            /// Runs `visitor` on the type this kind names: the one mapping from names to types.
            pub fn visit<V: KindVisitor>(self, visitor: V) -> V::Output {
                match self {
                    $(Self::$kind => visitor.visit::<$kind>()),+
                }
            }
        }
    };
}

// The registry. A new kind: its type in `api/`, its name here, and its `BoundKind` below.
bound_kinds!(Website, Database, Mailbox, Domain, DataRecord, Backup);

impl ResourceKind {
    /// Whether the kind holds an account's data directly (a hosted resource or data record),
    /// rather than being a backup of one: hosted kinds get a grace period and can be backed up;
    /// a Backup follows the backup schedule.
    pub fn is_hosted(self) -> bool {
        self != Self::Backup
    }

    /// The hosted kinds, in the order of [`ResourceKind::ALL`].
    pub fn hosted() -> impl Iterator<Item = Self> {
        Self::ALL.into_iter().filter(|k| k.is_hosted())
    }

    /// The kind's API resource (group, version, plural) for the dynamic API.
    pub fn api_resource(self) -> ApiResource {
        struct Erase;
        impl KindVisitor for Erase {
            type Output = ApiResource;
            fn visit<K: BoundKind>(self) -> ApiResource {
                ApiResource::erase::<K>(&())
            }
        }
        self.visit(Erase)
    }

    /// The kind's plural resource name, as in RBAC rules and API paths.
    pub fn plural(self) -> String {
        self.api_resource().plural
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no bound kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a bound kind")]
pub struct UnknownKind(pub String);

impl FromStr for ResourceKind {
    type Err = UnknownKind;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .ok_or_else(|| UnknownKind(name.to_owned()))
    }
}

/// Work done on the type a [`ResourceKind`] names (see [`ResourceKind::visit`]).
pub trait KindVisitor {
    /// What the work gives.
    type Output;
    /// Does the work for kind `K`.
    fn visit<K: BoundKind>(self) -> Self::Output;
}

/// A type whose objects can be bound to an Account.
pub trait BoundKind:
    Resource<DynamicType = ()>
    + CustomResourceExt
    + Clone
    + fmt::Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The kind as the registry names it.
    const KIND: ResourceKind;

    /// What the retention rules read of it.
    fn facts(&self) -> BoundResource;

    /// `spec.accountRef`.
    fn account_ref(&self) -> &str;

    /// The conditions on its status.
    fn conditions(&self) -> &[Condition];
}

/// A hosted kind: bound through the `spec` fields of [`crate::api::AccountBinding`]. The
/// closure gives the kind's own facts: a registrar (a processor), a fiscal year end and a data
/// category.
macro_rules! hosted_bound_kind {
    ($kind:ident) => {
        hosted_bound_kind!($kind, |_object| (None, None, None));
    };
    ($kind:ident, |$object:ident| $own_facts:expr) => {
        impl BoundKind for $kind {
            const KIND: ResourceKind = ResourceKind::$kind;

            fn facts(&self) -> BoundResource {
                let $object = self;
                let (registrar, fiscal_year_end, data_category) = $own_facts;
                BoundResource::hosted(
                    &self.metadata,
                    &self.spec.binding,
                    Self::KIND,
                    registrar,
                    fiscal_year_end,
                    data_category,
                )
            }

            fn account_ref(&self) -> &str {
                &self.spec.binding.account_ref
            }

            fn conditions(&self) -> &[Condition] {
                self.status.as_ref().map_or(&[], |s| &s.conditions)
            }
        }
    };
}

hosted_bound_kind!(Website);
hosted_bound_kind!(Database);
hosted_bound_kind!(Mailbox);
hosted_bound_kind!(Domain, |domain| (
    domain.spec.registrar.as_deref(),
    None,
    None
));
hosted_bound_kind!(DataRecord, |record| (
    None,
    record.spec.bookkeeping.map(|b| b.fiscal_year_end),
    Some(record.spec.category)
));

impl BoundKind for Backup {
    const KIND: ResourceKind = ResourceKind::Backup;

    fn facts(&self) -> BoundResource {
        BoundResource::backup(self)
    }

    fn account_ref(&self) -> &str {
        &self.spec.account_ref
    }

    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], |s| &s.conditions)
    }
}

/// Every bound object reads as the engine's [`BoundResource`].
impl<K: BoundKind> From<&K> for BoundResource {
    fn from(object: &K) -> Self {
        object.facts()
    }
}

/// The CRD of every bound kind, in the order of [`ResourceKind::ALL`].
pub fn crds() -> Vec<CustomResourceDefinition> {
    struct Crd;
    impl KindVisitor for Crd {
        type Output = CustomResourceDefinition;
        fn visit<K: BoundKind>(self) -> Self::Output {
            K::crd()
        }
    }
    ResourceKind::ALL
        .into_iter()
        .map(|k| k.visit(Crd))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_as_their_kind() {
        for kind in ResourceKind::ALL {
            assert_eq!(kind.as_str().parse::<ResourceKind>(), Ok(kind));
        }
        assert!("Account".parse::<ResourceKind>().is_err());
    }

    #[test]
    fn each_name_maps_to_the_type_of_that_kind() {
        struct Named;
        impl KindVisitor for Named {
            type Output = (ResourceKind, String);
            fn visit<K: BoundKind>(self) -> Self::Output {
                (K::KIND, K::kind(&()).into_owned())
            }
        }
        for kind in ResourceKind::ALL {
            assert_eq!(kind.visit(Named), (kind, kind.as_str().to_owned()));
        }
    }
}
