//! Builders for the objects the tests feed the engine, the API server and the operator, so a test
//! reads like the situation it describes:
//! `account("acme").terminated_at("2026-11-01T00:00:00Z")`, `website("www", "acme")`.
//!
//! The one home of these builders: the retention tests include it as `mod support;`, the
//! end-to-end harness (`tests/e2e_support`, and so the chaos campaign) re-exports it, and the
//! benchmark includes it by path. One convention throughout: an object's own name comes first,
//! then the account it is bound to; every namespaced object starts in [`NAMESPACE`] and moves
//! with [`ObjectExt::in_namespace`]; modifiers are methods (`.processor("pipedrive")`).
//!
//! Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use kube::Resource;
use retention_operator::api::{
    Account, AccountBinding, AccountSpec, AccountState, AccountStatus, Backup, BackupSchedule,
    BackupSource, BackupSpec, BackupStatus, Bookkeeping, BookkeepingRetention, DEFAULT_POLICY,
    DELETE_AT_ANNOTATION, DataCategory, DataProcessor, DataProcessorSpec, DataRecord,
    DataRecordSpec, Database, DatabaseEngine, DatabaseSpec, Domain, DomainSpec, ErasureChannel,
    ErasureWebhook, GracePeriods, LegalBasis, LegalHold, Mailbox, MailboxSpec, ResourceKind,
    RetentionDuration, RetentionPolicy, RetentionPolicySpec, SecretKeyRef, Website, WebsiteSpec,
};
use retention_operator::retention::{
    AccountPlan, BoundResource, Inventory, ResourcePlan, ResourceRef, plan_account,
};

/// The namespace every namespaced object lives in unless a test moves it; the end-to-end
/// harness's test namespace (the examples in `examples/` use it too).
pub const NAMESPACE: &str = "cust-acme";

/// An RFC 3339 instant, e.g. `at("2026-11-01T00:00:00Z")`.
pub fn at(rfc3339: &str) -> DateTime<Utc> {
    rfc3339
        .parse()
        .unwrap_or_else(|e| panic!("bad test timestamp {rfc3339:?}: {e}"))
}

/// Anything a builder accepts as an instant: an RFC 3339 string or a chrono time.
pub trait Instant {
    fn instant(self) -> DateTime<Utc>;
}

impl Instant for &str {
    fn instant(self) -> DateTime<Utc> {
        at(self)
    }
}

impl Instant for &String {
    fn instant(self) -> DateTime<Utc> {
        at(self)
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

/// A chrono instant as the `metav1.Time` Kubernetes metadata carries.
pub fn k8s_time(at: DateTime<Utc>) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    let ts = k8s_openapi::jiff::Timestamp::new(at.timestamp(), at.timestamp_subsec_nanos() as i32)
        .expect("timestamp in jiff's range");
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts)
}

/// Modifiers of any object's metadata.
pub trait ObjectExt: Resource + Sized {
    /// `metadata.namespace`.
    fn in_namespace(mut self, namespace: &str) -> Self {
        self.meta_mut().namespace = Some(namespace.to_owned());
        self
    }

    /// One entry of `metadata.labels`.
    fn label(mut self, key: &str, value: &str) -> Self {
        self.meta_mut()
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_owned(), value.to_owned());
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

impl<K: Resource> ObjectExt for K {}

/// `object` in [`NAMESPACE`].
fn namespaced<K: Resource>(object: K) -> K {
    object.in_namespace(NAMESPACE)
}

// ---------------------------------------------------------------------------------------------
// Account

/// An Active account named `name` (customer `C-<name>`) on the default policy, no hold and no
/// consents; see [`AccountExt`] for the rest.
pub fn account(name: &str) -> Account {
    let spec = AccountSpec {
        customer_ref: format!("C-{name}"),
        state: AccountState::Active,
        terminated_at: None,
        retention_policy_ref: DEFAULT_POLICY.to_owned(),
        legal_hold: None,
        consents: BTreeMap::new(),
    };
    Account::new(name, spec)
}

/// Account-only modifiers.
pub trait AccountExt: Sized {
    /// `spec.customerRef`.
    fn customer_ref(self, customer: &str) -> Self;
    /// `spec.state`.
    fn state(self, state: AccountState) -> Self;
    /// `spec.terminatedAt` only, leaving the state as it is.
    fn spec_terminated_at(self, at: impl Instant) -> Self;
    /// `status.terminatedAt`, the time the operator recorded.
    fn status_terminated_at(self, at: impl Instant) -> Self;
    /// `metadata.deletionTimestamp`: the Account object is being deleted.
    fn deleted_at(self, at: impl Instant) -> Self;
    /// `spec.legalHold` with an optional end.
    fn hold<I: Instant>(self, until: Option<I>) -> Self;
    /// One entry of `spec.consents`.
    fn consent(self, purpose: &str, given: bool) -> Self;
    /// `spec.retentionPolicyRef`.
    fn policy_ref(self, name: &str) -> Self;
    /// The whole `status`, as the operator stored it.
    fn with_status(self, status: &AccountStatus) -> Self;

    /// `spec.state: Terminated` without any recorded time.
    fn terminated(self) -> Self {
        self.state(AccountState::Terminated)
    }

    /// `spec.state: Suspended`.
    fn suspended(self) -> Self {
        self.state(AccountState::Suspended)
    }

    /// `spec.state: Terminated` with `spec.terminatedAt`.
    fn terminated_at(self, at: impl Instant) -> Self {
        self.spec_terminated_at(at).terminated()
    }
}

impl AccountExt for Account {
    fn customer_ref(mut self, customer: &str) -> Self {
        self.spec.customer_ref = customer.to_owned();
        self
    }

    fn state(mut self, state: AccountState) -> Self {
        self.spec.state = state;
        self
    }

    fn spec_terminated_at(mut self, at: impl Instant) -> Self {
        self.spec.terminated_at = Some(at.instant());
        self
    }

    fn status_terminated_at(mut self, at: impl Instant) -> Self {
        self.status
            .get_or_insert_with(AccountStatus::default)
            .terminated_at = Some(at.instant());
        self
    }

    fn deleted_at(mut self, at: impl Instant) -> Self {
        self.metadata.deletion_timestamp = Some(k8s_time(at.instant()));
        self
    }

    fn hold<I: Instant>(mut self, until: Option<I>) -> Self {
        self.spec.legal_hold = Some(LegalHold {
            reason: "Police request 2026-123".to_owned(),
            until: until.map(Instant::instant),
        });
        self
    }

    fn consent(mut self, purpose: &str, given: bool) -> Self {
        self.spec.consents.insert(purpose.to_owned(), given);
        self
    }

    fn policy_ref(mut self, name: &str) -> Self {
        self.spec.retention_policy_ref = name.to_owned();
        self
    }

    fn with_status(mut self, status: &AccountStatus) -> Self {
        self.status = Some(status.clone());
        self
    }
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

/// A Website answering to `<name>.example`.
pub fn website(name: &str, account: &str) -> Website {
    namespaced(Website::new(
        name,
        WebsiteSpec {
            binding: binding(account),
            hostnames: vec![format!("{name}.example")],
        },
    ))
}

/// A PostgreSQL Database.
pub fn database(name: &str, account: &str) -> Database {
    namespaced(Database::new(
        name,
        DatabaseSpec {
            binding: binding(account),
            engine: DatabaseEngine::Postgresql,
        },
    ))
}

/// A Mailbox with the address `<name>@acme.example`.
pub fn mailbox(name: &str, account: &str) -> Mailbox {
    namespaced(Mailbox::new(
        name,
        MailboxSpec {
            binding: binding(account),
            address: format!("{name}@acme.example"),
        },
    ))
}

/// A Domain `<name>.example` with no registrar; see [`DomainExt::registrar`].
pub fn domain(name: &str, account: &str) -> Domain {
    namespaced(Domain::new(
        name,
        DomainSpec {
            binding: binding(account),
            fqdn: format!("{name}.example"),
            registrar: None,
        },
    ))
}

/// A CRM DataRecord held under the contract.
pub fn data_record(name: &str, account: &str) -> DataRecord {
    namespaced(DataRecord::new(
        name,
        DataRecordSpec {
            binding: binding(account),
            category: DataCategory::Crm,
            bookkeeping: None,
        },
    ))
}

/// An invoices DataRecord the Bookkeeping Act requires, for the fiscal year ending
/// `fiscal_year_end` (e.g. `2026-12-31`).
pub fn bookkeeping_record(name: &str, account: &str, fiscal_year_end: &str) -> DataRecord {
    data_record(name, account)
        .category(DataCategory::Invoices)
        .legal_basis(LegalBasis::LegalObligation)
        .bookkeeping(date(fiscal_year_end))
}

/// A marketing DataRecord held on the account's consent for `purpose`.
pub fn consent_record(name: &str, account: &str, purpose: &str) -> DataRecord {
    data_record(name, account)
        .legal_basis(LegalBasis::Consent)
        .consent_purpose(purpose)
        .category(DataCategory::Marketing)
}

/// Modifiers of the account binding every hosted kind shares.
pub trait HostedExt: Sized {
    fn binding_mut(&mut self) -> &mut AccountBinding;

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
}

macro_rules! hosted_ext {
    ($($kind:ty),*) => {$(
        impl HostedExt for $kind {
            fn binding_mut(&mut self) -> &mut AccountBinding {
                &mut self.spec.binding
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

/// Domain-only modifiers.
pub trait DomainExt {
    /// `spec.registrar`, the DataProcessor that registered the domain.
    fn registrar(self, registrar: &str) -> Self;
}

impl DomainExt for Domain {
    fn registrar(mut self, registrar: &str) -> Self {
        self.spec.registrar = Some(registrar.to_owned());
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Backups

/// A Backup of the Database `source`, taken at `taken_at`.
pub fn backup(name: &str, account: &str, source: &str, taken_at: impl Instant) -> Backup {
    backup_of(name, account, ResourceKind::Database, source, taken_at)
}

/// A Backup of the Website `source`, taken at `taken_at`.
pub fn website_backup(name: &str, account: &str, source: &str, taken_at: impl Instant) -> Backup {
    backup_of(name, account, ResourceKind::Website, source, taken_at)
}

/// A Backup of any hosted kind.
pub fn backup_of(
    name: &str,
    account: &str,
    kind: ResourceKind,
    source: &str,
    taken_at: impl Instant,
) -> Backup {
    namespaced(Backup::new(
        name,
        BackupSpec {
            account_ref: account.to_owned(),
            source_ref: BackupSource {
                kind,
                name: source.to_owned(),
            },
            taken_at: taken_at.instant(),
        },
    ))
}

/// Backup-only modifiers.
pub trait BackupExt {
    /// A previously computed `status.expiresAt`.
    fn with_expiry(self, expires_at: impl Instant) -> Self;
}

impl BackupExt for Backup {
    fn with_expiry(mut self, expires_at: impl Instant) -> Self {
        self.status = Some(BackupStatus {
            expires_at: Some(expires_at.instant()),
            ..BackupStatus::default()
        });
        self
    }
}

// ---------------------------------------------------------------------------------------------
// RetentionPolicy and DataProcessor

/// The policy of docs/design.md §2: grace 30d (Mailbox 14d), backups 7 daily / 4 weekly /
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
        suspend: false,
        brake: None,
        receipts: None,
    }
}

/// [`policy`] without the Mailbox override: one grace period (30d) for every kind.
pub fn policy_with_one_grace_period() -> RetentionPolicySpec {
    RetentionPolicySpec {
        grace_periods: GracePeriods::default(),
        ..policy()
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

/// A RetentionPolicy object named `name`.
pub fn retention_policy(name: &str, spec: RetentionPolicySpec) -> RetentionPolicy {
    RetentionPolicy::new(name, spec)
}

/// The RetentionPolicy every [`account`] uses unless told otherwise: [`policy`] under
/// [`DEFAULT_POLICY`].
pub fn default_policy() -> RetentionPolicy {
    retention_policy(DEFAULT_POLICY, policy())
}

/// A DataProcessor (`<name> Ltd`, EE, purpose `crm`) that staff contact by hand; see
/// [`DataProcessorExt::webhook`].
pub fn processor(name: &str) -> DataProcessor {
    DataProcessor::new(
        name,
        DataProcessorSpec {
            legal_name: format!("{name} Ltd"),
            country: "EE".to_owned(),
            purposes: vec!["crm".to_owned()],
            transfer_mechanism: None,
            erasure: ErasureChannel::default(),
        },
    )
}

/// DataProcessor-only modifiers.
pub trait DataProcessorExt {
    /// Erasure requests go to the webhook `url`, signed with the key in the Secret
    /// `<name>-hmac` (key `secret`) in [`NAMESPACE`].
    fn webhook(self, url: &str) -> Self;
    /// The CA the webhook's certificate is checked against (PEM); after [`Self::webhook`].
    fn ca_bundle(self, pem: &[u8]) -> Self;
}

impl DataProcessorExt for DataProcessor {
    fn webhook(mut self, url: &str) -> Self {
        let name = self.metadata.name.clone().unwrap_or_default();
        self.spec.erasure.webhook = Some(ErasureWebhook {
            url: url.to_owned(),
            secret_ref: SecretKeyRef {
                namespace: NAMESPACE.to_owned(),
                name: format!("{name}-hmac"),
                key: "secret".to_owned(),
            },
            ca_bundle: None,
        });
        self
    }

    fn ca_bundle(mut self, pem: &[u8]) -> Self {
        let webhook = self
            .spec
            .erasure
            .webhook
            .as_mut()
            .expect("ca_bundle goes with a webhook");
        webhook.ca_bundle = Some(String::from_utf8(pem.to_vec()).expect("PEM is UTF-8"));
        self
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
        ..Inventory::default()
    }
}

/// The engine's reference to the object of `kind` named `name` in [`NAMESPACE`].
pub fn resource_ref(kind: ResourceKind, name: &str) -> ResourceRef {
    ResourceRef {
        kind,
        namespace: NAMESPACE.to_owned(),
        name: name.to_owned(),
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

/// An ErasureReceipt as the operator writes it (digest included) of account `account`: the
/// Website `www` in [`NAMESPACE`] (uid `u-1`), erased at 2026-10-31T00:00:00Z and confirmed
/// five seconds later, under the policy [`DEFAULT_POLICY`]; named as the operator names it.
pub fn written_receipt(account: &str) -> retention_operator::api::ErasureReceipt {
    use retention_operator::api::{
        ErasedObject, ErasureReceipt, ErasureReceiptSpec, RECEIPT_ACCOUNT_LABEL, ReceiptAccount,
        ReceiptPolicy,
    };
    let mut spec = ErasureReceiptSpec {
        account: ReceiptAccount {
            name: account.into(),
            uid: "3f2a9c1e-0000".into(),
            customer_ref: format!("C-{account}"),
        },
        policy: ReceiptPolicy {
            name: DEFAULT_POLICY.into(),
            generation: 1,
        },
        terminated_at: Some(at("2026-10-01T00:00:00Z")),
        erasure_at: at("2026-10-31T00:00:00Z"),
        completed_at: at("2026-10-31T00:00:05Z"),
        erased: vec![ErasedObject {
            kind: "Website".into(),
            namespace: NAMESPACE.into(),
            name: "www".into(),
            uid: "u-1".into(),
            legal_basis: LegalBasis::Contract,
            rule: "grace period 30d after termination".into(),
            delete_at: at("2026-10-31T00:00:00Z"),
            deleted_at: at("2026-10-31T00:00:05Z"),
        }],
        kept: Vec::new(),
        processors: Vec::new(),
        follows: None,
        digest: String::new(),
    };
    spec.digest = retention_operator::receipts::digest(&spec);
    let name =
        retention_operator::receipts::receipt_name(account, &spec.account.uid, spec.erasure_at, 0);
    let mut receipt = ErasureReceipt::new(&name, spec);
    receipt.metadata.labels = Some([(RECEIPT_ACCOUNT_LABEL.to_owned(), account.to_owned())].into());
    receipt
}
