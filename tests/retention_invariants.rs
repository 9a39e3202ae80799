//! The safety invariants of docs/design.md §4 as properties of the engine, over random inventories:
//! random accounts (state, termination times, deletion, legal holds, consents), random
//! policies, random bound objects of every kind (some bound to accounts that do not exist) and
//! a random `now`.
//!
//! - Invariant 1: an account that is not terminated loses nothing but expired backups and data
//!   held on a consent that is not given.
//! - Invariant 2: nothing is due while a legal hold stands, nothing goes before the hold's end,
//!   bookkeeping data outlives its statutory period, and backups live their daily period
//!   unless the after-termination cap cuts them short.
//! - Invariant 5: objects whose account does not exist are reported, never planned.
//! - Determinism: the plan is a function of the inventory, not of its order.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use proptest::prelude::*;
use retention_operator::api::{
    Account, AccountPhase, AccountState, DEFAULT_POLICY, DurationUnit, GracePeriods, LegalBasis,
    ResourceKind, RetentionDuration, RetentionPolicySpec,
};
use retention_operator::retention::{
    BoundResource, Inventory, Plan, ResourceFacts, ResourceRef, plan, plan_account,
};
use support::*;

/// Every instant is a whole hour after 2025-01-01T00:00:00Z, so times often coincide
/// (deleteAt == now, equal takenAt) and the boundaries get exercised.
const EPOCH: i64 = 1_735_689_600;
const WINDOW_HOURS: i64 = 3 * 365 * 24;
const MAX_ACCOUNTS: usize = 4;
/// Account indices at or above the number of generated accounts name no Account.
const ACCOUNT_REFS: usize = MAX_ACCOUNTS + 2;
const PURPOSES: [&str; 3] = ["marketing", "analytics", "newsletter"];
const PROCESSORS: [&str; 3] = ["key-systems", "pipedrive", "no-such-processor"];
const NAMESPACES: [&str; 2] = ["acme", "shared"];
const SOURCES: [&str; 2] = ["shop", "blog"];
const POLICIES: [&str; 2] = [DEFAULT_POLICY, "strict"];

fn at(hours: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(EPOCH + hours * 3_600, 0).expect("in range")
}

fn hour() -> impl Strategy<Value = i64> {
    0..WINDOW_HOURS
}

#[derive(Clone, Debug)]
struct AccountGen {
    state: AccountState,
    spec_terminated_at: Option<i64>,
    status_terminated_at: Option<i64>,
    deleted_at: Option<i64>,
    /// `Some(None)`: a hold without end.
    hold: Option<Option<i64>>,
    /// Per entry of [`PURPOSES`]; `None` leaves the purpose out of `consents`.
    consents: Vec<Option<bool>>,
    policy: usize,
}

fn account_gen() -> impl Strategy<Value = AccountGen> {
    (
        prop_oneof![
            Just(AccountState::Active),
            Just(AccountState::Suspended),
            Just(AccountState::Terminated),
        ],
        proptest::option::of(hour()),
        proptest::option::weighted(0.3, hour()),
        proptest::option::weighted(0.2, hour()),
        proptest::option::weighted(0.3, proptest::option::of(hour())),
        proptest::collection::vec(proptest::option::of(any::<bool>()), PURPOSES.len()),
        0..POLICIES.len(),
    )
        .prop_map(
            |(state, spec_t, status_t, deleted, hold, consents, policy)| AccountGen {
                state,
                spec_terminated_at: spec_t,
                status_terminated_at: status_t,
                deleted_at: deleted,
                hold,
                consents,
                policy,
            },
        )
}

fn build_account(index: usize, g: &AccountGen) -> Account {
    let mut b = account(&format!("a{index}"))
        .state(g.state)
        .policy_ref(POLICIES[g.policy]);
    if let Some(h) = g.spec_terminated_at {
        b = b.spec_terminated_at(at(h));
    }
    if let Some(h) = g.status_terminated_at {
        b = b.status_terminated_at(at(h));
    }
    if let Some(h) = g.deleted_at {
        b = b.deleted_at(at(h));
    }
    if let Some(until) = g.hold {
        b = b.hold(until.map(at));
    }
    for (purpose, given) in PURPOSES.iter().zip(&g.consents) {
        if let Some(given) = given {
            b = b.consent(purpose, *given);
        }
    }
    b
}

fn duration() -> impl Strategy<Value = RetentionDuration> {
    let unit = prop_oneof![
        Just(DurationUnit::Seconds),
        Just(DurationUnit::Minutes),
        Just(DurationUnit::Hours),
        Just(DurationUnit::Days),
        Just(DurationUnit::Weeks),
    ];
    prop_oneof![
        20 => (0u64..200, unit).prop_map(|(amount, unit)| RetentionDuration::new(amount, unit)),
        // Beyond any representable date: the engine must read it as "never".
        1 => Just(RetentionDuration::new(u64::MAX / 2, DurationUnit::Weeks)),
    ]
}

fn policy_gen() -> impl Strategy<Value = RetentionPolicySpec> {
    (
        duration(),
        proptest::collection::vec(proptest::option::of(duration()), 5),
        0u32..40,
        0u32..12,
        0u32..30,
        proptest::option::of(duration()),
        prop_oneof![4 => 1u32..=10, 1 => 1u32..=100],
    )
        .prop_map(|(grace, per_kind, daily, weekly, monthly, after, years)| {
            policy_of(grace, &per_kind, [daily, weekly, monthly], after, years)
        })
}

/// The policy of the given grace periods (the per-kind ones in the order Website, Database,
/// Mailbox, Domain, DataRecord), backup counts (daily, weekly, monthly), cap and years.
fn policy_of(
    grace: RetentionDuration,
    per_kind: &[Option<RetentionDuration>],
    [daily, weekly, monthly]: [u32; 3],
    after: Option<RetentionDuration>,
    years: u32,
) -> RetentionPolicySpec {
    let mut p = policy();
    p.grace_period = grace;
    p.grace_periods = GracePeriods {
        website: per_kind[0],
        database: per_kind[1],
        mailbox: per_kind[2],
        domain: per_kind[3],
        data_record: per_kind[4],
    };
    p.backups = backup_policy(daily, weekly, monthly, None);
    p.backups.after_termination = after;
    p.bookkeeping.years = years;
    p
}

#[derive(Clone, Debug)]
struct ResourceGen {
    kind: ResourceKind,
    account: usize,
    namespace: usize,
    basis: LegalBasis,
    purpose: usize,
    processor: Option<usize>,
    registrar: Option<usize>,
    /// Days after 2010-01-01.
    fiscal_year_end: Option<i64>,
    source: (ResourceKind, usize),
    /// May lie before the window: old backups.
    taken_at: i64,
    stamped: Option<i64>,
}

fn resource_gen() -> impl Strategy<Value = ResourceGen> {
    let kind = prop_oneof![
        1 => Just(ResourceKind::Website),
        1 => Just(ResourceKind::Database),
        1 => Just(ResourceKind::Mailbox),
        1 => Just(ResourceKind::Domain),
        2 => Just(ResourceKind::DataRecord),
        3 => Just(ResourceKind::Backup),
    ];
    let basis = prop_oneof![
        1 => Just(LegalBasis::Contract),
        1 => Just(LegalBasis::LegalObligation),
        1 => Just(LegalBasis::LegitimateInterest),
        2 => Just(LegalBasis::Consent),
    ];
    let source_kind = prop_oneof![Just(ResourceKind::Database), Just(ResourceKind::Website)];
    (
        kind,
        0..ACCOUNT_REFS,
        0..NAMESPACES.len(),
        basis,
        0..=PURPOSES.len(),
        proptest::option::of(0..PROCESSORS.len()),
        proptest::option::of(0..PROCESSORS.len()),
        proptest::option::weighted(0.4, 0i64..20 * 366),
        (source_kind, 0..SOURCES.len()),
        -WINDOW_HOURS / 3..WINDOW_HOURS,
        proptest::option::weighted(0.2, hour()),
    )
        .prop_map(
            |(
                kind,
                account,
                namespace,
                basis,
                purpose,
                processor,
                registrar,
                fiscal_year_end,
                source,
                taken_at,
                stamped,
            )| ResourceGen {
                kind,
                account,
                namespace,
                basis,
                purpose,
                processor,
                registrar,
                fiscal_year_end,
                source,
                taken_at,
                stamped,
            },
        )
}

fn fiscal_year_end(days: i64) -> NaiveDate {
    date("2010-01-01") + TimeDelta::days(days)
}

fn hosted<K>(object: K, g: &ResourceGen) -> BoundResource
where
    K: HostedExt + ObjectExt,
    for<'a> BoundResource: From<&'a K>,
{
    let mut object = object
        .in_namespace(NAMESPACES[g.namespace])
        .legal_basis(g.basis);
    // purpose == PURPOSES.len(): a Consent object without a purpose, which the CRD's CEL rule
    // rejects but the engine must still treat safely.
    if g.basis == LegalBasis::Consent
        && let Some(purpose) = PURPOSES.get(g.purpose)
    {
        object = object.consent_purpose(purpose);
    }
    if let Some(p) = g.processor {
        object = object.processor(PROCESSORS[p]);
    }
    if let Some(h) = g.stamped {
        object = object.stamped(at(h));
    }
    BoundResource::from(&object)
}

fn build_resource(index: usize, g: &ResourceGen) -> BoundResource {
    let account = format!("a{}", g.account);
    let name = format!("r{index:02}");
    match g.kind {
        ResourceKind::Website => hosted(website(&name, &account), g),
        ResourceKind::Database => hosted(database(&name, &account), g),
        ResourceKind::Mailbox => hosted(mailbox(&name, &account), g),
        ResourceKind::Domain => {
            let registrar = g.registrar.map(|r| PROCESSORS[r]);
            let mut domain = domain(&name, &account);
            if let Some(registrar) = registrar {
                domain = domain.registrar(registrar);
            }
            hosted(domain, g)
        }
        ResourceKind::DataRecord => {
            let mut record = data_record(&name, &account);
            if let Some(days) = g.fiscal_year_end {
                record = record.bookkeeping(fiscal_year_end(days));
            }
            hosted(record, g)
        }
        ResourceKind::Backup => {
            let (kind, source) = g.source;
            let mut b = backup_of(&name, &account, kind, SOURCES[source], at(g.taken_at))
                .in_namespace(NAMESPACES[g.namespace]);
            if let Some(h) = g.stamped {
                b = b.with_expiry(at(h));
            }
            bound(&b)
        }
    }
}

#[derive(Clone, Debug)]
struct World {
    now: i64,
    accounts: Vec<AccountGen>,
    policies: Vec<RetentionPolicySpec>,
    resources: Vec<ResourceGen>,
    /// Seeds the permutation for the order-independence property.
    shuffle_seed: u64,
}

fn world() -> impl Strategy<Value = World> {
    (
        hour(),
        proptest::collection::vec(account_gen(), 1..=MAX_ACCOUNTS),
        proptest::collection::vec(policy_gen(), POLICIES.len()),
        proptest::collection::vec(resource_gen(), 1..30),
        // Twins: copies of some objects under another name. For backups they compete for the
        // same period with the same takenAt, which exercises the tie-break.
        proptest::collection::vec(any::<proptest::sample::Index>(), 0..6),
        any::<u64>(),
    )
        .prop_map(
            |(now, accounts, policies, mut resources, twins, shuffle_seed)| {
                for twin in twins {
                    let original = resources[twin.index(resources.len())].clone();
                    resources.push(original);
                }
                World {
                    now,
                    accounts,
                    policies,
                    resources,
                    shuffle_seed,
                }
            },
        )
}

impl World {
    fn now(&self) -> DateTime<Utc> {
        at(self.now)
    }

    fn inventory(&self) -> Inventory {
        let mut inventory = Inventory {
            accounts: self
                .accounts
                .iter()
                .enumerate()
                .map(|(i, g)| build_account(i, g))
                .collect(),
            policies: POLICIES
                .iter()
                .map(|name| (*name).to_owned())
                .zip(self.policies.iter().cloned())
                .collect(),
            processors: BTreeMap::new(),
            resources: self
                .resources
                .iter()
                .enumerate()
                .map(|(i, g)| build_resource(i, g))
                .collect(),
            brakes: BTreeMap::new(),
            receipts: Vec::new(),
        };
        inventory.processors.insert(
            PROCESSORS[0].to_owned(),
            processor(PROCESSORS[0])
                .webhook("https://erasure.example/api")
                .spec,
        );
        inventory
            .processors
            .insert(PROCESSORS[1].to_owned(), processor(PROCESSORS[1]).spec);
        inventory
    }
}

/// A deterministic Fisher-Yates shuffle driven by xorshift64.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed | 1;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = (state % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

fn terminated(account: &Account) -> bool {
    account.spec.state == AccountState::Terminated || account.metadata.deletion_timestamp.is_some()
}

/// T as DESIGN §2/§3 define it: spec.terminatedAt while the spec says Terminated, else the
/// deletionTimestamp. `status.terminatedAt` never counts: it may belong to an earlier
/// termination that was reverted. A Terminated account with neither (stored before the schema
/// required terminatedAt) has no T.
fn expected_termination(account: &Account, g: &AccountGen) -> Option<DateTime<Utc>> {
    let spec = match g.state {
        AccountState::Terminated => g.spec_terminated_at,
        AccountState::Active | AccountState::Suspended => None,
    };
    if !terminated(account) {
        return None;
    }
    spec.or(g.deleted_at).map(at)
}

/// Whether data held on consent for `purpose` may be erased on a live account: only when the
/// purpose is named and the account has not given consent for it. Without a purpose nothing
/// says consent was withdrawn.
fn consent_withdrawn(account: &Account, purpose: Option<&str>) -> bool {
    purpose.is_some_and(|p| !account.spec.consents.get(p).copied().unwrap_or(false))
}

/// Checks invariants 1, 2 and 5 (and that every object is planned exactly once).
fn check_invariants(
    world: &World,
    inventory: &Inventory,
    plan: &Plan,
) -> Result<(), TestCaseError> {
    let now = world.now();
    let objects: BTreeMap<&ResourceRef, &BoundResource> = inventory
        .resources
        .iter()
        .map(|r| (&r.reference, r))
        .collect();
    prop_assert_eq!(
        objects.len(),
        inventory.resources.len(),
        "references are unique"
    );
    let existing: BTreeSet<String> = inventory
        .accounts
        .iter()
        .filter_map(|a| a.metadata.name.clone())
        .collect();

    let mut planned: BTreeMap<&ResourceRef, usize> = BTreeMap::new();
    prop_assert_eq!(plan.accounts.len(), inventory.accounts.len());
    for (index, (account, g)) in inventory.accounts.iter().zip(&world.accounts).enumerate() {
        let name = format!("a{index}");
        let ap = plan
            .accounts
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| TestCaseError::fail(format!("account {name} is not planned")))?;
        let policy = &inventory.policies[&account.spec.retention_policy_ref];
        let is_terminated = terminated(account);
        let termination = expected_termination(account, g);
        // Terminated, but nothing dates it: as live as far as hosted data goes.
        let time_missing = is_terminated && termination.is_none();
        prop_assert_eq!(ap.terminated_at, termination, "{}: terminatedAt", name);
        let hold = account.spec.legal_hold.as_ref();
        let hold_stands = hold.is_some_and(|h| h.until.is_none_or(|until| now < until));

        // The phase as DESIGN §3 defines it, where it follows from the account alone.
        if hold_stands {
            prop_assert_eq!(ap.phase, AccountPhase::OnHold, "{}: phase", name);
        } else if !is_terminated {
            let live = match account.spec.state {
                AccountState::Suspended => AccountPhase::Suspended,
                _ => AccountPhase::Active,
            };
            prop_assert_eq!(ap.phase, live, "{}: phase", name);
        } else if ap.resources.is_empty() {
            prop_assert_eq!(ap.phase, AccountPhase::Erased, "{}: phase", name);
        }

        for rp in &ap.resources {
            let what = format!("{name}: {}", rp.resource);
            let object = objects
                .get(&rp.resource)
                .ok_or_else(|| TestCaseError::fail(format!("{what}: not in the inventory")))?;
            *planned.entry(&rp.resource).or_default() += 1;
            prop_assert_eq!(
                &object.account,
                &name,
                "{}: planned under another account",
                what
            );
            let delete_at = rp.schedule.delete_at;
            let due = rp.is_due(now);

            // Invariant 1 (an undated termination schedules nothing from it either).
            if (!is_terminated || time_missing) && delete_at.is_some() {
                match &object.facts {
                    ResourceFacts::Backup(_) => {}
                    ResourceFacts::Hosted(facts) => prop_assert!(
                        facts.legal_basis == LegalBasis::Consent
                            && consent_withdrawn(account, facts.consent_purpose.as_deref()),
                        "{}: scheduled at {:?} on a live account ({:?})",
                        what,
                        delete_at,
                        rp.schedule.reason
                    ),
                }
            }

            // Invariant 2: the legal hold.
            if hold_stands {
                prop_assert!(!due, "{}: due at {:?} while a hold stands", what, delete_at);
            }
            if let Some(hold) = hold {
                match (hold.until, delete_at) {
                    (None, Some(at)) => {
                        prop_assert!(
                            false,
                            "{}: scheduled at {} under a hold without end",
                            what,
                            at
                        )
                    }
                    (Some(until), Some(at)) => {
                        prop_assert!(
                            at >= until,
                            "{}: deleteAt {} before the hold's end {}",
                            what,
                            at,
                            until
                        )
                    }
                    _ => {}
                }
            }

            match &object.facts {
                ResourceFacts::Hosted(facts) => {
                    // Invariant 2: the Bookkeeping Act's period.
                    if let (Some(fye), Some(at)) = (facts.fiscal_year_end, delete_at) {
                        let first_allowed = NaiveDate::from_ymd_opt(
                            fye.year() + policy.bookkeeping.years as i32 + 1,
                            1,
                            1,
                        )
                        .expect("in range")
                        .and_hms_opt(0, 0, 0)
                        .expect("midnight")
                        .and_utc();
                        prop_assert!(
                            at >= first_allowed,
                            "{}: bookkeeping record of fiscal year end {} deleted at {}, before {}",
                            what,
                            fye,
                            at,
                            first_allowed
                        );
                    }
                }
                ResourceFacts::Backup(facts) => {
                    // Invariant 2: the daily period, unless the after-termination cap is earlier.
                    let daily = facts.taken_at + TimeDelta::days(policy.backups.keep_daily.into());
                    let cap = termination
                        .zip(policy.backups.after_termination)
                        .and_then(|(t, limit)| t.checked_add_signed(limit.to_delta()?));
                    let floor = cap.map_or(daily, |cap| cap.min(daily));
                    if let Some(at) = delete_at {
                        prop_assert!(
                            at >= floor,
                            "{}: backup taken {} deleted at {}, before {} (daily {}, cap {:?})",
                            what,
                            facts.taken_at,
                            at,
                            floor,
                            daily,
                            cap
                        );
                    }
                    // Backups are always on a schedule, except under a hold without end.
                    let endless_hold = hold.is_some_and(|h| h.until.is_none());
                    prop_assert_eq!(
                        delete_at.is_none(),
                        endless_hold,
                        "{}: backup schedule {:?} ({:?})",
                        what,
                        delete_at,
                        rp.schedule.reason
                    );
                }
            }
        }
    }

    // Invariant 5, and every object accounted for exactly once.
    let mut reported: BTreeMap<&ResourceRef, usize> = BTreeMap::new();
    for u in &plan.unbound {
        *reported.entry(&u.resource).or_default() += 1;
        prop_assert_eq!(&u.reason, "account not found");
        let object = objects.get(&u.resource).ok_or_else(|| {
            TestCaseError::fail(format!("{}: unbound but not in the inventory", u.resource))
        })?;
        prop_assert_eq!(&u.account_ref, &object.account);
    }
    for object in &inventory.resources {
        let in_plans = planned.get(&object.reference).copied().unwrap_or(0);
        let in_unbound = reported.get(&object.reference).copied().unwrap_or(0);
        if existing.contains(&object.account) {
            prop_assert_eq!(
                (in_plans, in_unbound),
                (1, 0),
                "{} of {}",
                object.reference,
                object.account
            );
        } else {
            prop_assert_eq!(
                (in_plans, in_unbound),
                (0, 1),
                "{} of missing {}",
                object.reference,
                object.account
            );
        }
    }
    Ok(())
}

/// The last instant RFC 3339 and the API server can write.
fn last_instant() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z")
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

/// Any duration the schema accepts: up to six digits of any unit, often the longest.
fn accepted_duration() -> impl Strategy<Value = RetentionDuration> {
    let unit = prop_oneof![
        Just(DurationUnit::Seconds),
        Just(DurationUnit::Minutes),
        Just(DurationUnit::Hours),
        Just(DurationUnit::Days),
        Just(DurationUnit::Weeks),
    ];
    let amount = prop_oneof![3 => 0u64..400, 1 => 0u64..=999_999, 1 => Just(999_999u64)];
    (amount, unit).prop_map(|(amount, unit)| RetentionDuration::new(amount, unit))
}

/// Any policy the schema accepts, up to its limits (counts of six digits, 100 years).
fn accepted_policy() -> impl Strategy<Value = RetentionPolicySpec> {
    let count = || prop_oneof![3 => 0u32..60, 1 => 0u32..=999_999, 1 => Just(999_999u32)];
    (
        accepted_duration(),
        proptest::collection::vec(proptest::option::of(accepted_duration()), 5),
        (count(), count(), count()),
        proptest::option::of(accepted_duration()),
        1u32..=100,
    )
        .prop_map(
            |(grace, per_kind, (daily, weekly, monthly), after, years)| {
                policy_of(grace, &per_kind, [daily, weekly, monthly], after, years)
            },
        )
}

/// The inventory of `world` moved to the end of the calendar: its latest instant becomes
/// 9999-12-31T23:59:59Z (every other keeps its distance to it), fiscal years end at the latest
/// on 9999-12-31, and the policies are `policies`. Every input stays one the API server accepts.
fn at_the_end_of_time(world: &World, policies: &[RetentionPolicySpec]) -> Inventory {
    let shift = last_instant() - at(WINDOW_HOURS - 1);
    let moved = |t: DateTime<Utc>| t + shift;
    let last_day = last_instant().date_naive();
    let mut inventory = world.inventory();
    for account in &mut inventory.accounts {
        if let Some(t) = account.spec.terminated_at.as_mut() {
            *t = moved(*t);
        }
        if let Some(t) = account
            .status
            .as_mut()
            .and_then(|s| s.terminated_at.as_mut())
        {
            *t = moved(*t);
        }
        if let Some(hold) = account.spec.legal_hold.as_mut()
            && let Some(until) = hold.until.as_mut()
        {
            *until = moved(*until);
        }
        if let Some(deleted) = account.metadata.deletion_timestamp.take() {
            let deleted = DateTime::from_timestamp(deleted.0.as_second(), 0).expect("in range");
            // metav1.Time (jiff) ends at 9999-12-30T22:00:00Z; the API server sets it to its
            // own clock anyway.
            let latest = DateTime::from_timestamp(253_402_207_200, 0).expect("in range");
            account.metadata.deletion_timestamp = Some(k8s_time(moved(deleted).min(latest)));
        }
    }
    for resource in &mut inventory.resources {
        resource.stamped_delete_at = resource.stamped_delete_at.map(moved);
        match &mut resource.facts {
            ResourceFacts::Backup(facts) => facts.taken_at = moved(facts.taken_at),
            ResourceFacts::Hosted(facts) => {
                if let Some(end) = facts.fiscal_year_end.as_mut() {
                    *end = (*end + shift).min(last_day);
                }
            }
        }
    }
    for (name, policy) in POLICIES.iter().zip(policies) {
        inventory
            .policies
            .insert((*name).to_owned(), policy.clone());
    }
    inventory
}

/// Whether a serialised plan part holds a time past 9999: chrono writes such years with a sign.
fn has_a_year_past_9999(json: &str) -> bool {
    json.contains("\"+")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Accepted input near the end of the calendar never plans a date past
    /// 9999-12-31T23:59:59Z: such a schedule is "nothing scheduled (beyond 9999)", and the
    /// rest of the account is planned as usual.
    #[test]
    fn no_planned_date_is_past_9999(
        world in world(),
        policies in proptest::collection::vec(accepted_policy(), POLICIES.len()),
    ) {
        let inventory = at_the_end_of_time(&world, &policies);
        let now = (world.now() + (last_instant() - at(WINDOW_HOURS - 1))).min(last_instant());
        let plan = plan(&inventory, now).expect("every policy exists");
        let last = last_instant();
        for account_plan in &plan.accounts {
            let account = inventory
                .accounts
                .iter()
                .find(|a| a.metadata.name.as_deref() == Some(account_plan.name.as_str()))
                .expect("planned accounts exist");
            let on_hold = account.spec.legal_hold.is_some();
            prop_assert!(
                account_plan.next_deletion_at.is_none_or(|at| at <= last),
                "{}: nextDeletionAt {:?}", account_plan.name, account_plan.next_deletion_at
            );
            for resource in &account_plan.resources {
                let schedule = &resource.schedule;
                prop_assert!(
                    schedule.delete_at.is_none_or(|at| at <= last),
                    "{}: {} deleteAt {:?} ({})",
                    account_plan.name, resource.resource, schedule.delete_at, schedule.reason
                );
                // What a rule would have scheduled past 9999 says so; only a hold or a live
                // account keeps anything else unscheduled.
                let live_hosted = account_plan.termination.is_none()
                    && resource.resource.kind != ResourceKind::Backup;
                if schedule.delete_at.is_none() && !on_hold && !live_hosted {
                    prop_assert!(
                        schedule.reason.contains("beyond 9999"),
                        "{}: {} unscheduled: {}", account_plan.name, resource.resource, schedule.reason
                    );
                }
            }
            for notification in &account_plan.notifications {
                prop_assert!(notification.at <= last, "{}: notification at {}", account_plan.name, notification.at);
            }
            let planned = serde_json::to_string(&(
                &account_plan.resources,
                &account_plan.notifications,
                account_plan.next_deletion_at,
            ))
            .expect("JSON");
            prop_assert!(!has_a_year_past_9999(&planned), "{}: {}", account_plan.name, planned);
        }
    }

    #[test]
    fn safety_invariants_hold_for_any_inventory(world in world()) {
        let inventory = world.inventory();
        let plan = plan(&inventory, world.now()).expect("every policy exists");
        check_invariants(&world, &inventory, &plan)?;
    }

    #[test]
    fn the_same_inventory_always_yields_the_same_plan(world in world()) {
        let inventory = world.inventory();
        let first = plan(&inventory, world.now()).expect("plan");
        let again = plan(&world.inventory(), world.now()).expect("plan");
        prop_assert_eq!(&first, &again);
    }

    #[test]
    fn the_order_of_accounts_and_objects_does_not_matter(world in world()) {
        let inventory = world.inventory();
        let expected = plan(&inventory, world.now()).expect("plan");
        let mut permuted = inventory.clone();
        shuffle(&mut permuted.resources, world.shuffle_seed);
        shuffle(&mut permuted.accounts, world.shuffle_seed.rotate_left(17));
        let actual = plan(&permuted, world.now()).expect("plan");
        prop_assert_eq!(&actual, &expected);
    }

    #[test]
    fn plan_account_ignores_objects_of_other_accounts(world in world()) {
        let inventory = world.inventory();
        let now = world.now();
        let whole = plan(&inventory, now).expect("plan");
        for account in &inventory.accounts {
            let policy = &inventory.policies[&account.spec.retention_policy_ref];
            let alone = plan_account(account, &inventory.resources, policy, &inventory.processors, now);
            let in_whole = whole.accounts.iter().find(|p| p.name == alone.name);
            prop_assert_eq!(in_whole, Some(&alone));
        }
    }
}
