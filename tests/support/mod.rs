//! Builders for the objects the retention tests feed the engine, so a test case reads like the
//! situation it describes: `account("acme").terminated_at("2026-11-01T00:00:00Z")`.
//!
//! Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use kube::api::ObjectMeta;
use retention_operator::api::{
    Account, AccountBinding, AccountSpec, AccountState, AccountStatus, Backup, BackupSchedule,
    BackupSource, BackupSpec, BackupStatus, Bookkeeping, BookkeepingRetention, DEFAULT_POLICY,
    DELETE_AT_ANNOTATION, DataCategory, DataProcessorSpec, DataRecord, DataRecordSpec, Database,
    DatabaseEngine, DatabaseSpec, Domain, DomainSpec, ErasureChannel, ErasureWebhook, GracePeriods,
    LegalBasis, LegalHold, Mailbox, MailboxSpec, ResourceKind, RetentionDuration,
    RetentionPolicySpec, SecretKeyRef, Website, WebsiteSpec,
};
use retention_operator::retention::{
    AccountPlan, BoundResource, Inventory, ResourcePlan, plan_account,
};

/// The namespace every hosted object lives in unless a test moves it.
pub const NS: &str = "acme";

/// An RFC 3339 instant, e.g. `t("2026-11-01T00:00:00Z")`.
pub fn t(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("bad test timestamp {rfc3339:?}: {e}"))
        .with_timezone(&Utc)
}

/// Anything a builder accepts as an instant: an RFC 3339 string or a chrono time.
pub trait Instant {
    fn instant(self) -> DateTime<Utc>;
}

impl Instant for &str {
    fn instant(self) -> DateTime<Utc> {
        t(self)
    }
}

impl Instant for DateTime<Utc> {
    fn instant(self) -> DateTime<Utc> {
        self
    }
}

/// A calendar date, e.g. `date("2026-12-31")`.
pub fn date(ymd: &str) -> NaiveDate {
    ymd.parse()
        .unwrap_or_else(|e| panic!("bad test date {ymd:?}: {e}"))
}

/// A policy duration, e.g. `dur("30d")`.
pub fn dur(text: &str) -> RetentionDuration {
    text.parse()
        .unwrap_or_else(|e| panic!("bad test duration {text:?}: {e}"))
}

fn meta(namespace: Option<&str>, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        ..ObjectMeta::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Account

/// Builds an Account; starts Active with the default policy, no hold and no consents.
#[derive(Clone, Debug)]
pub struct AccountBuilder(Account);

/// An Active account named `name`.
pub fn account(name: &str) -> AccountBuilder {
    let spec = AccountSpec {
        customer_ref: format!("C-{name}"),
        state: AccountState::Active,
        terminated_at: None,
        retention_policy_ref: DEFAULT_POLICY.to_owned(),
        legal_hold: None,
        consents: BTreeMap::new(),
    };
    AccountBuilder(Account {
        metadata: meta(None, name),
        spec,
        status: None,
    })
}

impl AccountBuilder {
    /// `spec.state`.
    pub fn state(mut self, state: AccountState) -> Self {
        self.0.spec.state = state;
        self
    }

    /// `spec.state: Terminated` without any recorded time.
    pub fn terminated(self) -> Self {
        self.state(AccountState::Terminated)
    }

    /// `spec.state: Suspended`.
    pub fn suspended(self) -> Self {
        self.state(AccountState::Suspended)
    }

    /// `spec.state: Terminated` with `spec.terminatedAt`.
    pub fn terminated_at(mut self, at: impl Instant) -> Self {
        self.0.spec.terminated_at = Some(at.instant());
        self.terminated()
    }

    /// `spec.terminatedAt` only, leaving the state as it is.
    pub fn spec_terminated_at(mut self, at: impl Instant) -> Self {
        self.0.spec.terminated_at = Some(at.instant());
        self
    }

    /// `status.terminatedAt`, the time the operator recorded.
    pub fn status_terminated_at(mut self, at: impl Instant) -> Self {
        self.0
            .status
            .get_or_insert_with(AccountStatus::default)
            .terminated_at = Some(at.instant());
        self
    }

    /// `metadata.deletionTimestamp`: the Account object is being deleted.
    pub fn deleted_at(mut self, at: impl Instant) -> Self {
        self.0.metadata.deletion_timestamp = Some(k8s_time(at.instant()));
        self
    }

    /// `spec.legalHold` with an optional end.
    pub fn hold<I: Instant>(mut self, until: Option<I>) -> Self {
        self.0.spec.legal_hold = Some(LegalHold {
            reason: "Police request 2026-123".to_owned(),
            until: until.map(Instant::instant),
        });
        self
    }

    /// One entry of `spec.consents`.
    pub fn consent(mut self, purpose: &str, given: bool) -> Self {
        self.0.spec.consents.insert(purpose.to_owned(), given);
        self
    }

    /// `spec.retentionPolicyRef`.
    pub fn policy_ref(mut self, name: &str) -> Self {
        self.0.spec.retention_policy_ref = name.to_owned();
        self
    }

    pub fn build(self) -> Account {
        self.0
    }
}

/// A chrono instant as the `metav1.Time` Kubernetes metadata carries.
pub fn k8s_time(at: DateTime<Utc>) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    let ts = k8s_openapi::jiff::Timestamp::new(at.timestamp(), at.timestamp_subsec_nanos() as i32)
        .expect("timestamp in jiff's range");
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts)
}

// ---------------------------------------------------------------------------------------------
// Hosted resources

fn binding(account: &str) -> AccountBinding {
    AccountBinding {
        account_ref: account.to_owned(),
        processor_ref: None,
        legal_basis: LegalBasis::Contract,
        consent_purpose: None,
    }
}

/// A Website in namespace [`NS`].
pub fn website(account: &str, name: &str) -> Website {
    let spec = WebsiteSpec {
        binding: binding(account),
        hostnames: vec![format!("{name}.example")],
    };
    Website {
        metadata: meta(Some(NS), name),
        spec,
        status: None,
    }
}

/// A PostgreSQL Database in namespace [`NS`].
pub fn database(account: &str, name: &str) -> Database {
    let spec = DatabaseSpec {
        binding: binding(account),
        engine: DatabaseEngine::Postgresql,
    };
    Database {
        metadata: meta(Some(NS), name),
        spec,
        status: None,
    }
}

/// A Mailbox in namespace [`NS`].
pub fn mailbox(account: &str, name: &str) -> Mailbox {
    let spec = MailboxSpec {
        binding: binding(account),
        address: format!("{name}@acme.example"),
    };
    Mailbox {
        metadata: meta(Some(NS), name),
        spec,
        status: None,
    }
}

/// A Domain in namespace [`NS`], registered through `registrar` if given.
pub fn domain(account: &str, name: &str, registrar: Option<&str>) -> Domain {
    let spec = DomainSpec {
        binding: binding(account),
        fqdn: format!("{name}.example"),
        registrar: registrar.map(str::to_owned),
    };
    Domain {
        metadata: meta(Some(NS), name),
        spec,
        status: None,
    }
}

/// A CRM DataRecord in namespace [`NS`].
pub fn data_record(account: &str, name: &str) -> DataRecord {
    let spec = DataRecordSpec {
        binding: binding(account),
        category: DataCategory::Crm,
        bookkeeping: None,
    };
    DataRecord {
        metadata: meta(Some(NS), name),
        spec,
        status: None,
    }
}

/// An invoices DataRecord the Bookkeeping Act requires, for the fiscal year ending `fiscal_year_end`.
pub fn bookkeeping_record(account: &str, name: &str, fiscal_year_end: &str) -> DataRecord {
    data_record(account, name)
        .category(DataCategory::Invoices)
        .legal_basis(LegalBasis::LegalObligation)
        .bookkeeping(date(fiscal_year_end))
}

/// A marketing DataRecord held on the account's consent for `purpose`.
pub fn consent_record(account: &str, name: &str, purpose: &str) -> DataRecord {
    data_record(account, name)
        .legal_basis(LegalBasis::Consent)
        .consent_purpose(purpose)
        .category(DataCategory::Marketing)
}

/// Modifiers every hosted kind shares.
pub trait HostedExt: Sized {
    fn binding_mut(&mut self) -> &mut AccountBinding;
    fn meta_mut(&mut self) -> &mut ObjectMeta;

    /// `spec.processorRef`.
    fn processor(mut self, processor: &str) -> Self {
        self.binding_mut().processor_ref = Some(processor.to_owned());
        self
    }

    /// `spec.legalBasis`.
    fn legal_basis(mut self, basis: LegalBasis) -> Self {
        self.binding_mut().legal_basis = basis;
        self
    }

    /// `spec.consentPurpose`.
    fn consent_purpose(mut self, purpose: &str) -> Self {
        self.binding_mut().consent_purpose = Some(purpose.to_owned());
        self
    }

    /// `metadata.namespace`.
    fn namespace(mut self, namespace: &str) -> Self {
        self.meta_mut().namespace = Some(namespace.to_owned());
        self
    }

    /// The `hosting.ecuni.se/delete-at` annotation an earlier plan stamped.
    fn stamped(mut self, delete_at: impl Instant) -> Self {
        let delete_at = delete_at
            .instant()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        self.meta_mut()
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(DELETE_AT_ANNOTATION.to_owned(), delete_at);
        self
    }
}

macro_rules! hosted_ext {
    ($($kind:ty),*) => {$(
        impl HostedExt for $kind {
            fn binding_mut(&mut self) -> &mut AccountBinding {
                &mut self.spec.binding
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    )*};
}
hosted_ext!(Website, Database, Mailbox, Domain, DataRecord);

/// DataRecord-only modifiers.
pub trait DataRecordExt {
    /// `spec.category`.
    fn category(self, category: DataCategory) -> Self;
    /// `spec.bookkeeping.fiscalYearEnd`.
    fn bookkeeping(self, fiscal_year_end: NaiveDate) -> Self;
}

impl DataRecordExt for DataRecord {
    fn category(mut self, category: DataCategory) -> Self {
        self.spec.category = category;
        self
    }

    fn bookkeeping(mut self, fiscal_year_end: NaiveDate) -> Self {
        self.spec.bookkeeping = Some(Bookkeeping { fiscal_year_end });
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Backups

/// A Backup in namespace [`NS`] of the Database `source`, taken at `taken_at`.
pub fn backup(account: &str, name: &str, source: &str, taken_at: impl Instant) -> Backup {
    backup_of(account, name, ResourceKind::Database, source, taken_at)
}

/// A Backup in namespace [`NS`] of any hosted kind.
pub fn backup_of(
    account: &str,
    name: &str,
    kind: ResourceKind,
    source: &str,
    taken_at: impl Instant,
) -> Backup {
    let spec = BackupSpec {
        account_ref: account.to_owned(),
        source_ref: BackupSource {
            kind,
            name: source.to_owned(),
        },
        taken_at: taken_at.instant(),
    };
    Backup {
        metadata: meta(Some(NS), name),
        spec,
        status: None,
    }
}

/// Moves a backup to another namespace.
pub fn in_namespace(mut backup: Backup, namespace: &str) -> Backup {
    backup.metadata.namespace = Some(namespace.to_owned());
    backup
}

/// Records a previously computed `status.expiresAt` on a backup.
pub fn with_expiry(mut backup: Backup, expires_at: impl Instant) -> Backup {
    backup.status = Some(BackupStatus {
        expires_at: Some(expires_at.instant()),
        ..BackupStatus::default()
    });
    backup
}

// ---------------------------------------------------------------------------------------------
// RetentionPolicy and DataProcessor

/// The policy of DESIGN.md §2: grace 30d (Mailbox 14d), backups 7 daily / 4 weekly /
/// 6 monthly, capped 90d after termination, bookkeeping 7 years.
pub fn policy() -> RetentionPolicySpec {
    RetentionPolicySpec {
        grace_period: dur("30d"),
        grace_periods: GracePeriods {
            mailbox: Some(dur("14d")),
            ..GracePeriods::default()
        },
        backups: backup_policy(7, 4, 6, Some("90d")),
        bookkeeping: BookkeepingRetention { years: 7 },
    }
}

/// A backup schedule.
pub fn backup_policy(
    keep_daily: u32,
    keep_weekly: u32,
    keep_monthly: u32,
    after_termination: Option<&str>,
) -> BackupSchedule {
    BackupSchedule {
        keep_daily,
        keep_weekly,
        keep_monthly,
        after_termination: after_termination.map(dur),
    }
}

/// [`policy`] with a different backup schedule.
pub fn policy_with_backups(backups: BackupSchedule) -> RetentionPolicySpec {
    RetentionPolicySpec {
        backups,
        ..policy()
    }
}

/// A processor that takes erasure requests on a webhook.
pub fn webhook_processor(legal_name: &str) -> DataProcessorSpec {
    DataProcessorSpec {
        legal_name: legal_name.to_owned(),
        country: "DE".to_owned(),
        purposes: vec!["domain-registration".to_owned()],
        erasure: ErasureChannel {
            webhook: Some(ErasureWebhook {
                url: "https://erasure.example/api".to_owned(),
                secret_ref: SecretKeyRef {
                    namespace: "retention-system".to_owned(),
                    name: "hmac".to_owned(),
                    key: "secret".to_owned(),
                },
                ca_bundle: None,
            }),
        },
    }
}

/// A processor staff must contact by hand.
pub fn manual_processor(legal_name: &str) -> DataProcessorSpec {
    DataProcessorSpec {
        legal_name: legal_name.to_owned(),
        country: "EE".to_owned(),
        purposes: vec!["crm".to_owned()],
        erasure: ErasureChannel::default(),
    }
}

// ---------------------------------------------------------------------------------------------
// Running the engine

/// Converts any bound kind to the engine's view.
pub fn bound<'a, K>(object: &'a K) -> BoundResource
where
    BoundResource: From<&'a K>,
{
    BoundResource::from(object)
}

/// Plans one account with no processors.
pub fn plan_one(
    account: &Account,
    bound: &[BoundResource],
    policy: &RetentionPolicySpec,
    now: DateTime<Utc>,
) -> AccountPlan {
    plan_account(account, bound, policy, &BTreeMap::new(), now)
}

/// An inventory with the default policy under [`DEFAULT_POLICY`].
pub fn inventory(accounts: Vec<Account>, resources: Vec<BoundResource>) -> Inventory {
    Inventory {
        accounts,
        policies: BTreeMap::from([(DEFAULT_POLICY.to_owned(), policy())]),
        processors: BTreeMap::new(),
        resources,
    }
}

/// The plan of the resource named `name` of `kind`; panics naming what is missing.
pub fn resource<'a>(plan: &'a AccountPlan, kind: ResourceKind, name: &str) -> &'a ResourcePlan {
    plan.resources
        .iter()
        .find(|r| r.resource.kind == kind && r.resource.name == name)
        .unwrap_or_else(|| {
            panic!(
                "{kind} {name} is not in the plan of account {}: {:#?}",
                plan.name, plan.resources
            )
        })
}

/// The only resource of a plan.
pub fn only(plan: &AccountPlan) -> &ResourcePlan {
    assert_eq!(
        plan.resources.len(),
        1,
        "expected exactly one resource in the plan of {}: {:#?}",
        plan.name,
        plan.resources
    );
    &plan.resources[0]
}
