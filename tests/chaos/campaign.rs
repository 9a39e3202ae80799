//! The campaign: a seeded driver of random account lifecycles, faults and clock moves, with the
//! oracle judging the history after every step and at quiescence.
//!
//! Every choice (which step, which account, how far the clock moves, which fault, when a
//! replica is killed) comes from one generator seeded with the campaign's seed. The operator
//! runs concurrently on real threads, so a seed fixes the scenario but not the interleaving:
//! a failing seed reproduces often, not always (the report prints the history either way).

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    time::{Duration, Instant},
};

use chrono::{DateTime, TimeDelta, Utc};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use retention_operator::{
    api::{
        Account, BookkeepingRetention, BrakeSpec, DataProcessor, ErasureReceipt, GracePeriods,
        RetentionPolicy, RetentionPolicySpec,
    },
    clock::Clock,
    retention::plan_account,
};
use serde_json::{Value, json};
use test_apiserver::{FaultRule, RequestRecord};

use crate::e2e_support::{
    DataProcessorExt, DomainExt, HostedExt, NAMESPACE, StaticObject, account, apply_signing_secret,
    backup_policy, bookkeeping_record, consent_record, data_record, database, default_policy,
    domain, dur, mailbox, processor, retention_policy, website, website_backup,
};
use crate::oracle::{
    Delivery, Oracle, Setting, Violation, ViolationKind, judge_deliveries, leftovers, proof_counts,
};
use crate::receiver::Reply;
use crate::world::{LEASE, REPLICA_AGENT, World};

/// How a campaign runs.
#[derive(Clone, Debug)]
pub struct Campaign {
    pub seed: u64,
    /// Accounts created in all (each lives one round: created, driven, deleted).
    pub lifecycles: usize,
    /// Accounts alive at once (one round).
    pub accounts: usize,
    /// Steps per round.
    pub steps: usize,
    /// Probability per step that a replica is killed.
    pub kill_rate: f64,
    /// Fraction of requests failed (5xx, 429) while a fault episode lasts.
    pub fault_rate: f64,
    /// Probability per step that etcd or kube-apiserver is restarted (real control plane).
    pub restart_rate: f64,
    /// The shards the accounts are divided over (`--shards`): 1, one leader does everything;
    /// more, each replica holds its share of the shards' Leases.
    pub shards: u32,
}

impl Campaign {
    /// The campaign the environment asks for: `CHAOS_SEED`, `CHAOS_LIFECYCLES`,
    /// `CHAOS_ACCOUNTS`, `CHAOS_STEPS`, `CHAOS_KILL_RATE`, `CHAOS_FAULT_RATE`,
    /// `CHAOS_RESTART_RATE`, `CHAOS_SHARDS`, over the defaults of a short run.
    pub fn from_env(short: Campaign) -> Self {
        fn var<T: std::str::FromStr>(name: &str) -> Option<T> {
            std::env::var(name).ok()?.parse().ok()
        }
        Self {
            seed: var("CHAOS_SEED").unwrap_or(short.seed),
            lifecycles: var("CHAOS_LIFECYCLES").unwrap_or(short.lifecycles),
            accounts: var("CHAOS_ACCOUNTS").unwrap_or(short.accounts),
            steps: var("CHAOS_STEPS").unwrap_or(short.steps),
            kill_rate: var("CHAOS_KILL_RATE").unwrap_or(short.kill_rate),
            fault_rate: var("CHAOS_FAULT_RATE").unwrap_or(short.fault_rate),
            restart_rate: var("CHAOS_RESTART_RATE").unwrap_or(short.restart_rate),
            shards: var("CHAOS_SHARDS").unwrap_or(short.shards),
        }
    }
}

/// What a campaign did and found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub rounds: usize,
    pub lifecycles: usize,
    pub steps: usize,
    pub kills: usize,
    pub leader_kills: usize,
    pub faults_failed: u64,
    pub faults_stalled: u64,
    pub watches_cut: u64,
    pub watches_expired: u64,
    pub etcd_restarts: usize,
    pub apiserver_restarts: usize,
    pub requests: usize,
    pub deletes_checked: u64,
    pub writes_fenced: u64,
    /// Of those, writes about one account, checked against its own shard's Lease.
    pub writes_fenced_by_shard: u64,
    pub shards: u32,
    pub deliveries: usize,
    /// Accounts the account system deleted before the operator had put its finalizer on
    /// them: their objects are unbound, reported and never deleted (invariant 5).
    pub accounts_removed_without_finalizer: usize,
    /// Answers the history showed after the removal of their object (logged after a later
    /// write that removed it): the replay ignores them.
    pub logged_after_removal: usize,
    pub violations: Vec<Violation>,
    pub leftovers: usize,
    pub elapsed: Duration,
    /// The steps that led to the first violation, when there is one.
    pub history: String,
}

impl Report {
    /// One line per figure, for the test output and docs/reliability.md.
    pub fn summary(&self) -> String {
        format!(
            "seed {seed}: {rounds} rounds, {lifecycles} lifecycles, {steps} steps, \
             {kills} operator kills ({leader} of the leader), {failed} API errors and {stalled} \
             stalls injected, {cut} watches cut, {expired} watches answered 410 Gone, \
             {etcd} etcd and {api} kube-apiserver restarts, {requests} requests judged, \
             {deletes} deletions checked, {fenced} writes checked against the lease \
             ({by_shard} of them against their account's shard's, of {shards}), \
             {deliveries} erasure requests received, {unguarded} accounts deleted before the \
             operator's finalizer was on them, {late} answers logged after their object's removal, \
             {violations} violations, {leftovers} leftovers, in {secs:.0} s",
            late = self.logged_after_removal,
            unguarded = self.accounts_removed_without_finalizer,
            seed = self.seed,
            rounds = self.rounds,
            lifecycles = self.lifecycles,
            steps = self.steps,
            kills = self.kills,
            leader = self.leader_kills,
            failed = self.faults_failed,
            stalled = self.faults_stalled,
            cut = self.watches_cut,
            expired = self.watches_expired,
            etcd = self.etcd_restarts,
            api = self.apiserver_restarts,
            requests = self.requests,
            deletes = self.deletes_checked,
            fenced = self.writes_fenced,
            by_shard = self.writes_fenced_by_shard,
            shards = self.shards,
            deliveries = self.deliveries,
            violations = self.violations.len(),
            leftovers = self.leftovers,
            secs = self.elapsed.as_secs_f64(),
        )
    }
}

/// The processors of every campaign: two with webhooks (receivers on loopback) and one manual.
const WEBHOOK_PROCESSORS: [&str; 2] = ["crm-hook", "registrar-hook"];
const MANUAL_PROCESSOR: &str = "manual-desk";
/// The second policy, which policy edits change.
const BRISK: &str = "brisk";
/// How long quiescence may take before what is left counts as left over.
const QUIESCENCE: Duration = Duration::from_secs(90);

fn brisk_policy(grace_days: u32, keep_daily: u32) -> RetentionPolicy {
    retention_policy(
        BRISK,
        RetentionPolicySpec {
            grace_period: dur(&format!("{grace_days}d")),
            grace_periods: GracePeriods {
                mailbox: Some(dur("1d")),
                ..Default::default()
            },
            backups: backup_policy(keep_daily, 2, 1, Some("10d")),
            bookkeeping: BookkeepingRetention { years: 7 },
            suspend: false,
            brake: None,
            receipts: None,
        },
    )
}

/// One thing the campaign does.
#[derive(Clone, Debug)]
enum Step {
    Terminate {
        account: String,
        at: DateTime<Utc>,
    },
    Reactivate {
        account: String,
    },
    Hold {
        account: String,
        until: Option<DateTime<Utc>>,
    },
    Lift {
        account: String,
    },
    Consent {
        account: String,
        given: bool,
    },
    EditPolicy {
        grace_days: u32,
        keep_daily: u32,
        /// Whether the edit suspends the policy (any other edit lifts it).
        suspend: bool,
        /// A brake of this many deletions (in a window longer than any campaign), or the
        /// default brake.
        brake: Option<u32>,
    },
    DeleteAccount {
        account: String,
    },
    AddBackup {
        account: String,
        name: String,
        taken_at: DateTime<Utc>,
    },
    Advance {
        by: TimeDelta,
    },
    JumpToDeleteAt {
        account: String,
        offset: TimeDelta,
    },
    ProcessorReply {
        processor: String,
        reply: &'static str,
    },
    Kill {
        leader: bool,
        revive_after: Duration,
    },
    Faults {
        on: bool,
        code: u16,
        verb: Option<&'static str>,
    },
    WatchCuts {
        on: bool,
        after_events: usize,
    },
    Restart {
        component: &'static str,
    },
    Pause {
        millis: u64,
    },
}

impl Step {
    /// The account the step is about, if one.
    fn account(&self) -> Option<&str> {
        match self {
            Self::Terminate { account, .. }
            | Self::Reactivate { account }
            | Self::Hold { account, .. }
            | Self::Lift { account }
            | Self::Consent { account, .. }
            | Self::DeleteAccount { account }
            | Self::AddBackup { account, .. }
            | Self::JumpToDeleteAt { account, .. } => Some(account),
            _ => None,
        }
    }
}

/// The campaign's state beside the world.
struct Driver<'a> {
    campaign: &'a Campaign,
    rng: fastrand::Rng,
    world: World,
    report: Report,
    /// Accounts of the current round, by name: whether the account system still has them.
    accounts: BTreeMap<String, bool>,
    /// Every step so far with the clock it ran at, for the report.
    log: Vec<(usize, DateTime<Utc>, Step)>,
    /// Replicas killed and when to bring them back.
    revivals: Vec<Instant>,
    /// The oracle, fed with the history as it grows.
    oracle: Oracle,
    /// What every request of the history was (without bodies), for the report.
    records: Vec<RequestRecord>,
    backups: usize,
}

/// Runs a campaign and returns its report: violations are in the report, never a panic.
pub async fn run(campaign: &Campaign) -> Report {
    let started = Instant::now();
    let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    let world = World::start(campaign.seed, campaign.shards, start).await;
    let mut driver = Driver {
        campaign,
        rng: fastrand::Rng::with_seed(campaign.seed),
        world,
        report: Report {
            seed: campaign.seed,
            ..Report::default()
        },
        accounts: BTreeMap::new(),
        log: Vec::new(),
        revivals: Vec::new(),
        oracle: Oracle::new(Setting {
            operator_agent: REPLICA_AGENT.to_owned(),
            lease: Some(LEASE.to_owned()),
            shards: campaign.shards,
        }),
        records: Vec::new(),
        backups: 0,
    };
    driver.set_clock(start).await;
    seed_world(&mut driver.world).await;
    driver.world.start_replica(0);
    driver.world.start_replica(1);
    let rounds = campaign.lifecycles.div_ceil(campaign.accounts.max(1));
    'rounds: for round in 0..rounds {
        driver.report.rounds += 1;
        driver.start_round(round).await;
        for _ in 0..campaign.steps {
            let step = driver.next_step();
            driver.run_step(step).await;
            driver.judge();
            if !driver.oracle.violations.is_empty() {
                break 'rounds;
            }
        }
        // Quiescence: faults off, every replica up, receivers answering; then nothing due may
        // remain and the proof must match.
        driver.calm_down().await;
        if !driver.quiesce().await {
            break 'rounds;
        }
        // The round ends: the account system deletes its accounts; the clock runs on until
        // everything is gone (bookkeeping included), and every erasure request is delivered.
        driver.end_round().await;
        for years in [1, 9] {
            let now = driver.now() + TimeDelta::days(365 * years);
            driver.set_clock(now).await;
        }
        if !driver.quiesce().await || !driver.everything_gone().await {
            break 'rounds;
        }
    }
    driver.judge();
    driver.oracle.finish();
    driver.world.stop_replicas().await;
    let mut report = driver.report.clone();
    report.violations = driver.oracle.violations.clone();
    report.deletes_checked = driver.oracle.deletes_checked;
    report.writes_fenced = driver.oracle.writes_fenced;
    report.writes_fenced_by_shard = driver.oracle.writes_fenced_by_shard;
    report.shards = campaign.shards;
    report.requests = driver.records.len();
    report.leftovers = report
        .violations
        .iter()
        .filter(|v| {
            matches!(
                v.kind,
                ViolationKind::Leftover | ViolationKind::ErasedButBound
            )
        })
        .count();
    if let Some(server) = driver.world.test_server() {
        let count = server.fault_count();
        report.faults_failed = count.failed;
        report.faults_stalled = count.stalled;
        report.watches_cut = count.watches_cut;
        report.watches_expired = count.watches_expired;
    }
    report.deliveries = deliveries(&driver.world).len();
    report.accounts_removed_without_finalizer =
        driver.oracle.replay.removed_without_finalizer.len();
    report.logged_after_removal = driver.oracle.replay.logged_after_removal;
    if let Some(first) = report.violations.first() {
        report.history = driver.story(first);
    }
    report.elapsed = started.elapsed();
    report
}

/// The policies, processors and signing secrets every campaign starts with.
async fn seed_world(world: &mut World) {
    let client = world.client.clone();
    create_cluster(&client, &default_policy()).await;
    create_cluster(&client, &brisk_policy(2, 3)).await;
    for name in WEBHOOK_PROCESSORS {
        let url = world.add_receiver(name).await;
        apply_signing_secret(&client, name, format!("{name}-signing-key").as_bytes()).await;
        let ca = world.pki.ca_pem.clone();
        let processor = processor(name).webhook(&url).ca_bundle(&ca);
        create_cluster(&client, &processor).await;
    }
    let manual: DataProcessor = processor(MANUAL_PROCESSOR);
    create_cluster(&client, &manual).await;
}

async fn create_cluster<K>(client: &Client, object: &K)
where
    K: StaticObject<k8s_openapi::ClusterResourceScope>,
{
    create_retrying(
        Api::all(client.clone()),
        "creating a cluster object",
        object,
    )
    .await;
}

async fn create_namespaced<K>(client: &Client, object: &K)
where
    K: StaticObject<k8s_openapi::NamespaceResourceScope>,
{
    let api = Api::namespaced(client.clone(), NAMESPACE);
    create_retrying(api, "creating an object", object).await;
}

/// Creates `object` through `api` with [`retry`]; one that is there already (409) counts as
/// created.
async fn create_retrying<K, S>(api: Api<K>, what: &str, object: &K)
where
    K: StaticObject<S>,
{
    retry(what, || async {
        match api.create(&PostParams::default(), object).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    })
    .await;
}

/// Retries a request of the account system until it gets through (faults are injected for
/// everyone, and the real control plane may be restarting).
async fn retry<F, Fut>(what: &str, mut request: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = kube::Result<()>>,
{
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match request().await {
            Ok(()) => return,
            Err(error) => {
                assert!(Instant::now() < deadline, "{what}: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

impl Driver<'_> {
    fn now(&self) -> DateTime<Utc> {
        self.world.clock.now()
    }

    /// Moves the clock (never back), marking the instant in the history first.
    async fn set_clock(&mut self, now: DateTime<Utc>) {
        let now = now.max(self.now());
        let mark = self.oracle.mark(now);
        self.world.set_clock(mark, now).await;
    }

    /// Creates the round's accounts with random objects; API faults are on from the start
    /// (steps change them).
    async fn start_round(&mut self, round: usize) {
        self.accounts.clear();
        if let Some(server) = self.world.test_server() {
            let fraction = self.campaign.fault_rate;
            server.update_faults(|faults| {
                faults.rules = vec![FaultRule::always(503).fraction(fraction)];
            });
        }
        let now = self.now();
        let client = self.world.client.clone();
        for i in 0..self.campaign.accounts {
            let name = format!("r{round}-{i}");
            self.report.lifecycles += 1;
            let mut account = account(&name);
            if self.rng.bool() {
                account.spec.retention_policy_ref = BRISK.into();
            }
            if self.rng.bool() {
                account
                    .spec
                    .consents
                    .insert("marketing".into(), self.rng.bool());
            }
            create_cluster(&client, &account).await;
            self.accounts.insert(name.clone(), true);
            // Hosted resources: each kind with some probability.
            if self.rng.f64() < 0.8 {
                create_namespaced(&client, &website(&format!("{name}-www"), &name)).await;
                for j in 0..self.rng.usize(0..6) {
                    let taken = now - TimeDelta::hours(self.rng.i64(0..24 * 40));
                    self.create_backup(&name, &format!("{name}-bkp-{j}"), taken)
                        .await;
                }
            }
            if self.rng.f64() < 0.5 {
                create_namespaced(&client, &database(&format!("{name}-db"), &name)).await;
            }
            if self.rng.f64() < 0.5 {
                create_namespaced(&client, &mailbox(&format!("{name}-mbx"), &name)).await;
            }
            if self.rng.f64() < 0.5 {
                let dom = domain(&format!("{name}-dom"), &name).registrar("registrar-hook");
                create_namespaced(&client, &dom).await;
            }
            if self.rng.f64() < 0.6 {
                let crm = data_record(&format!("{name}-crm"), &name).processor("crm-hook");
                create_namespaced(&client, &crm).await;
            }
            if self.rng.f64() < 0.4 {
                let processor = if self.rng.bool() {
                    MANUAL_PROCESSOR
                } else {
                    "crm-hook"
                };
                let mkt =
                    consent_record(&format!("{name}-mkt"), &name, "marketing").processor(processor);
                create_namespaced(&client, &mkt).await;
            }
            if self.rng.f64() < 0.3 {
                let year = chrono::Datelike::year(&now) - 1;
                let fiscal_year_end = format!("{year}-12-31");
                let inv = bookkeeping_record(&format!("{name}-inv"), &name, &fiscal_year_end);
                create_namespaced(&client, &inv).await;
            }
        }
    }

    async fn create_backup(&mut self, account: &str, name: &str, taken_at: DateTime<Utc>) {
        self.backups += 1;
        let source = format!("{account}-www");
        let backup = website_backup(name, account, &source, taken_at);
        create_namespaced(&self.world.client.clone(), &backup).await;
    }

    /// A random account of the round that the account system still has.
    fn pick_account(&mut self) -> Option<String> {
        let live: Vec<&String> = self
            .accounts
            .iter()
            .filter(|(_, live)| **live)
            .map(|(name, _)| name)
            .collect();
        if live.is_empty() {
            return None;
        }
        let index = self.rng.usize(0..live.len());
        Some(live[index].clone())
    }

    /// Draws the next step. Every draw happens whatever the state, so the seed alone fixes the
    /// sequence of choices.
    fn next_step(&mut self) -> Step {
        let account = self.pick_account();
        let roll = self.rng.f64();
        let (a, b, c) = (self.rng.u32(0..1000), self.rng.u32(0..1000), self.rng.f64());
        let now = self.now();
        let restart = self.world.test_server().is_none() && c < self.campaign.restart_rate;
        if restart {
            return Step::Restart {
                component: if a % 2 == 0 { "etcd" } else { "apiserver" },
            };
        }
        if roll < self.campaign.kill_rate {
            return Step::Kill {
                leader: a % 10 < 7,
                revive_after: Duration::from_millis(if b % 2 == 0 { 0 } else { u64::from(b) * 4 }),
            };
        }
        let choice = a % 100;
        let Some(account) = account else {
            return Step::Advance {
                by: TimeDelta::hours(i64::from(b % 480) + 1),
            };
        };
        match choice {
            0..14 => Step::Terminate {
                account,
                at: now - TimeDelta::hours(i64::from(b % (24 * 40))),
            },
            14..20 => Step::Reactivate { account },
            20..25 => Step::Hold {
                account,
                until: (b % 2 == 0).then(|| now + TimeDelta::hours(i64::from(b % (24 * 20)))),
            },
            25..30 => Step::Lift { account },
            30..36 => Step::Consent {
                account,
                given: b % 2 == 0,
            },
            36..39 => Step::EditPolicy {
                grace_days: [1, 2, 5, 10][(b % 4) as usize],
                keep_daily: [1, 3, 7][(b % 3) as usize],
                // Drawn from the same number, so adding suspend left every seed's sequence of
                // steps as it was.
                suspend: b % 5 == 0,
                brake: (b % 3 == 0).then_some(5 + b % 30),
            },
            39..42 => Step::DeleteAccount { account },
            42..47 => Step::AddBackup {
                name: format!("{account}-bkp-x{}", self.backups),
                account,
                taken_at: now - TimeDelta::hours(i64::from(b % (24 * 10))),
            },
            47..67 => Step::Advance {
                by: TimeDelta::minutes(i64::from(b) * i64::from(b % 40 + 1)),
            },
            67..82 => Step::JumpToDeleteAt {
                account,
                offset: TimeDelta::seconds(i64::from(b % 3) - 1),
            },
            82..86 => Step::ProcessorReply {
                processor: WEBHOOK_PROCESSORS[(b % 2) as usize].to_owned(),
                reply: ["200", "500", "429", "400", "hang", "200"][(b % 6) as usize],
            },
            86..93 => Step::Faults {
                on: b % 3 != 0,
                code: [500, 503, 429][(b % 3) as usize],
                verb: [
                    None,
                    Some("delete"),
                    Some("get"),
                    Some("patch"),
                    Some("list"),
                ][(b % 5) as usize],
            },
            93..96 => Step::WatchCuts {
                on: b % 2 == 0,
                after_events: (b % 40) as usize + 3,
            },
            _ => Step::Pause {
                millis: u64::from(b % 400),
            },
        }
    }

    async fn patch_account(&mut self, account: &str, patch: serde_json::Value) {
        let api: Api<Account> = Api::all(self.world.client.clone());
        retry("patching an account", || async {
            match api
                .patch(account, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => Ok(()),
                // Deleted meanwhile (the round may delete it): nothing to patch.
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(e),
            }
        })
        .await;
    }

    /// The account system deletes an Account (gone already is fine).
    async fn delete_account(&mut self, name: String) {
        let api: Api<Account> = Api::all(self.world.client.clone());
        retry("deleting an account", || async {
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(e),
            }
        })
        .await;
        self.accounts.insert(name, false);
    }

    async fn run_step(&mut self, step: Step) {
        self.report.steps += 1;
        self.log
            .push((self.records.len(), self.now(), step.clone()));
        self.revive_due();
        match step {
            Step::Terminate { account, at } => {
                let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                self.patch_account(
                    &account,
                    json!({"spec": {"state": "Terminated", "terminatedAt": at}}),
                )
                .await;
            }
            Step::Reactivate { account } => {
                self.patch_account(
                    &account,
                    json!({"spec": {"state": "Active", "terminatedAt": null}}),
                )
                .await;
            }
            Step::Hold { account, until } => {
                let mut hold = json!({"reason": "chaos hold"});
                if let Some(until) = until {
                    hold["until"] = json!(until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                }
                self.patch_account(&account, json!({"spec": {"legalHold": hold}}))
                    .await;
            }
            Step::Lift { account } => {
                self.patch_account(&account, json!({"spec": {"legalHold": null}}))
                    .await;
            }
            Step::Consent { account, given } => {
                self.patch_account(
                    &account,
                    json!({"spec": {"consents": {"marketing": given}}}),
                )
                .await;
            }
            Step::EditPolicy {
                grace_days,
                keep_daily,
                suspend,
                brake,
            } => {
                let mut policy = brisk_policy(grace_days, keep_daily);
                policy.spec.suspend = suspend;
                policy.spec.brake = brake.map(|max_deletions| BrakeSpec {
                    max_deletions,
                    per: dur("999999d"),
                });
                let api: Api<RetentionPolicy> = Api::all(self.world.client.clone());
                let mut patch = json!({"spec": serde_json::to_value(&policy.spec).unwrap()});
                // A merge patch leaves out what it does not name: no brake is a null.
                if brake.is_none() {
                    patch["spec"]["brake"] = Value::Null;
                }
                retry("editing the policy", || async {
                    api.patch(BRISK, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .map(|_| ())
                })
                .await;
            }
            Step::DeleteAccount { account } => self.delete_account(account).await,
            Step::AddBackup {
                account,
                name,
                taken_at,
            } => {
                self.create_backup(&account, &name, taken_at).await;
            }
            Step::Advance { by } => {
                let now = self.now() + by;
                self.set_clock(now).await;
            }
            Step::JumpToDeleteAt { account, offset } => {
                // The next scheduled deletion of the account, by the engine on the objects as
                // the history shows them; the clock goes to a second before, at, or after it.
                if let Some(at) = self.next_delete_at(&account) {
                    self.set_clock(at + offset).await;
                }
            }
            Step::ProcessorReply { processor, reply } => {
                if let Some(receiver) = self.world.receivers.get(&processor) {
                    receiver.set_reply(match reply {
                        "hang" => Reply::Hang,
                        code => Reply::Status(code.parse().unwrap_or(200)),
                    });
                }
            }
            Step::Kill {
                leader,
                revive_after,
            } => {
                let holder = self.world.leader().await;
                let leader_index = holder.as_deref().and_then(|h| self.world.replica_index(h));
                let index = match (leader, leader_index) {
                    (true, Some(index)) => {
                        self.report.leader_kills += 1;
                        index
                    }
                    (_, Some(index)) => 1 - index,
                    (_, None) => 0,
                };
                self.world.kill_replica(index).await;
                self.report.kills += 1;
                self.revivals.push(Instant::now() + revive_after);
            }
            Step::Faults { on, code, verb } => {
                if let Some(server) = self.world.test_server() {
                    let fraction = self.campaign.fault_rate;
                    server.update_faults(|faults| {
                        faults.rules.clear();
                        if on {
                            let mut rule = FaultRule::always(code).fraction(fraction);
                            if code == 429 {
                                rule = rule.retry_after(1);
                            }
                            if let Some(verb) = verb {
                                rule = rule.verb(verb);
                            }
                            faults.rules.push(rule);
                            // Now and then a request is held past the client's timeout: the
                            // client gives up, and the request goes with it (a detached stall,
                            // which would take effect all the same, needs the driver and the
                            // oracle to expect requests that land after their client gave up).
                            faults.rules.push(
                                FaultRule::stalling(Duration::from_millis(1_500))
                                    .fraction(fraction / 10.0),
                            );
                        }
                    });
                }
            }
            Step::WatchCuts { on, after_events } => {
                if let Some(server) = self.world.test_server() {
                    server.update_faults(|faults| {
                        faults.cut_watch_after_events = on.then_some(after_events);
                    });
                    // A small window: resumed watches get 410 Gone and list again.
                    server.set_event_window(if on { 50 } else { 10_000 });
                }
            }
            Step::Restart { component } => {
                let world = &self.world;
                if world.restart_control_plane(component) {
                    match component {
                        "etcd" => self.report.etcd_restarts += 1,
                        _ => self.report.apiserver_restarts += 1,
                    }
                }
            }
            Step::Pause { millis } => {
                tokio::time::sleep(Duration::from_millis(millis)).await;
            }
        }
        // Let the operator work a little before the next step: interleavings come from here.
        let pause = self.rng.u64(0..120);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }

    /// Brings back the replicas that are down (killed, or exited after losing the lease) once
    /// no kill asks for one to stay down any longer.
    fn revive_due(&mut self) {
        let now = Instant::now();
        self.revivals.retain(|at| *at > now);
        // While a killed replica must stay down, none is started (replicas are symmetric).
        if self.revivals.is_empty() {
            self.world.revive();
        }
    }

    /// The next deleteAt of the account's objects, as the engine plans it on the history.
    fn next_delete_at(&self, account: &str) -> Option<DateTime<Utc>> {
        let replay = &self.oracle.replay;
        let object = replay.current("accounts", "", account)?;
        let account_object: Account = serde_json::from_value(object.clone()).ok()?;
        let policy = replay.current(
            "retentionpolicies",
            "",
            &account_object.spec.retention_policy_ref,
        )?;
        let policy: RetentionPolicy = serde_json::from_value(policy.clone()).ok()?;
        let bound = replay.bound_to(account);
        let now = self.now();
        let plan = plan_account(&account_object, &bound, &policy.spec, &BTreeMap::new(), now);
        plan.resources
            .iter()
            .filter_map(|r| r.schedule.delete_at)
            .filter(|at| *at > now)
            .min()
    }

    /// Fetches the history that came since the last call and judges it.
    fn judge(&mut self) {
        let mut fresh = Vec::new();
        self.world.history(self.oracle.fed(), &mut fresh);
        self.oracle.feed(&fresh);
        self.records
            .extend(fresh.into_iter().map(|exchange| exchange.record));
    }

    /// Faults off, receivers answering, every replica running, no policy suspended, the
    /// default brake (a person raising the limit releases an engaged one).
    async fn calm_down(&mut self) {
        if let Some(server) = self.world.test_server() {
            server.clear_faults();
            server.set_event_window(10_000);
        }
        let api: Api<RetentionPolicy> = Api::all(self.world.client.clone());
        let lift = json!({"spec": {"suspend": false, "brake": null}});
        retry("lifting a suspend and a brake", || async {
            api.patch(BRISK, &PatchParams::default(), &Patch::Merge(&lift))
                .await
                .map(|_| ())
        })
        .await;
        for receiver in self.world.receivers.values() {
            receiver.set_reply(Reply::Status(200));
        }
        self.revivals.clear();
        self.world.revive();
    }

    /// Waits until nothing due remains and the proof counts match, judging the history as it
    /// grows; false (with the violations recorded) when that does not happen in time.
    async fn quiesce(&mut self) -> bool {
        let deadline = Instant::now() + QUIESCENCE;
        let now = self.now();
        loop {
            self.world.revive();
            self.judge();
            if !self.oracle.violations.is_empty() {
                return false;
            }
            self.settle_uncertain().await;
            self.oracle.judge_pending_on_latest();
            let replay = &self.oracle.replay;
            let policies: BTreeMap<String, RetentionPolicySpec> = replay
                .objects()
                .filter(|((resource, _, _), _)| resource == "retentionpolicies")
                .filter_map(|(_, p)| serde_json::from_value::<RetentionPolicy>(p.clone()).ok())
                .map(|p| (p.name_any(), p.spec))
                .collect();
            let mut found = leftovers(replay, now, &policies);
            found.extend(proof_mismatches(replay, &self.confirmed_deletions()));
            if found.is_empty() {
                return true;
            }
            if Instant::now() > deadline {
                self.oracle.violations.extend(found);
                return false;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The round ends: holds are lifted and the account system deletes every account.
    async fn end_round(&mut self) {
        let names: Vec<String> = self.accounts.keys().cloned().collect();
        for name in names {
            self.patch_account(&name, json!({"spec": {"legalHold": null}}))
                .await;
            self.delete_account(name).await;
        }
    }

    /// After a round: every Account and every object bound to one is gone, and every erasure
    /// request owed to a processor with a webhook was received. Keys are judged only here:
    /// a request is owed at its erasure time, and may be sent while the DELETE of an object
    /// it names still fails; by now every such object is deleted.
    async fn everything_gone(&mut self) -> bool {
        let deadline = Instant::now() + QUIESCENCE;
        let webhooks: BTreeSet<String> =
            WEBHOOK_PROCESSORS.iter().map(|p| (*p).to_owned()).collect();
        loop {
            self.world.revive();
            self.judge();
            if !self.oracle.violations.is_empty() {
                return false;
            }
            self.settle_uncertain().await;
            self.oracle.judge_pending_on_latest();
            let mut found: Vec<Violation> = self
                .oracle
                .replay
                .objects()
                .filter(|((resource, _, _), object)| {
                    resource == "accounts"
                        || (crate::oracle::bound_kind(resource).is_some()
                            && object["spec"]["accountRef"]
                                .as_str()
                                .is_some_and(|account| {
                                    !self
                                        .oracle
                                        .replay
                                        .removed_without_finalizer
                                        .contains(account)
                                }))
                })
                .map(|((resource, ns, name), object)| Violation {
                    kind: ViolationKind::Leftover,
                    position: None,
                    detail: format!(
                        "{resource} {ns}/{name} still exists after its account was deleted{}",
                        if resource == "accounts" {
                            format!(" ({})", account_summary(object))
                        } else {
                            String::new()
                        }
                    ),
                })
                .collect();
            let delivered = judge_deliveries(
                &self.confirmed_deletions(),
                &deliveries(&self.world),
                &webhooks,
                true,
            );
            // A key that seems to belong to no erasure is wrong only once the history is
            // complete: kube-apiserver writes a request's audit entry after it answers, so the
            // operator may delete an object and send its erasure request before the history
            // shows the DELETE. A stray key stays until the deadline; a late entry clears it.
            found.extend(delivered);
            found.extend(receipt_mismatches(
                &self.oracle.replay,
                &self.confirmed_deletions(),
            ));
            if found.is_empty() {
                return true;
            }
            if Instant::now() > deadline {
                self.oracle.violations.extend(found);
                return false;
            }
            self.staff_confirm().await;
            // Retries of erasure requests wait on the clock.
            let later = self.now() + TimeDelta::hours(1);
            self.set_clock(later).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// The deletions whose object is gone: a DELETE answered 5xx counts once the server shows
    /// the object gone.
    ///
    /// Per object, the DELETE that removed it: the one answered 200, or when none was, the
    /// last that may have (an earlier one answered 5xx that did not take effect was decided
    /// on a plan that may have changed since, its erasure time too).
    fn confirmed_deletions(&self) -> Vec<&crate::oracle::CheckedDeletion> {
        let standing = self.oracle.replay.uids();
        let mut by_uid: BTreeMap<&str, &crate::oracle::CheckedDeletion> = BTreeMap::new();
        for deletion in &self.oracle.deletions {
            if standing.contains(&deletion.uid) {
                continue;
            }
            let keep = by_uid
                .get(deletion.uid.as_str())
                .is_some_and(|known| known.certain);
            if !keep {
                by_uid.insert(&deletion.uid, deletion);
            }
        }
        by_uid.into_values().collect()
    }

    /// Asks the server about every object whose DELETE was answered with a server error, and
    /// forgets those it no longer has.
    async fn settle_uncertain(&mut self) {
        let uncertain: Vec<crate::oracle::ObjectKey> = std::mem::take(&mut self.oracle.uncertain)
            .into_iter()
            .collect();
        for key in uncertain {
            if self.oracle.replay.current(&key.0, &key.1, &key.2).is_none() {
                continue;
            }
            let resource = kube::api::ApiResource {
                group: retention_operator::api::GROUP.into(),
                version: retention_operator::api::VERSION.into(),
                api_version: retention_operator::api::API_VERSION.into(),
                kind: String::new(),
                plural: key.0.clone(),
            };
            // Accounts are cluster-scoped: their key has no namespace.
            let api: Api<kube::api::DynamicObject> = if key.1.is_empty() {
                Api::all_with(self.world.client.clone(), &resource)
            } else {
                Api::namespaced_with(self.world.client.clone(), &key.1, &resource)
            };
            match api.get_opt(&key.2).await {
                Ok(None) => self.oracle.replay.forget(&key),
                Ok(Some(_)) => {}
                // Ask again at the next look.
                Err(_) => {
                    self.oracle.uncertain.insert(key);
                }
            }
        }
    }

    /// Staff settle what waits for them: every erasure request handed to staff (Manual) or
    /// refused (Failed) is confirmed with the annotation the README documents.
    async fn staff_confirm(&mut self) {
        let mut waiting: Vec<(String, String)> = Vec::new();
        for ((resource, _, name), object) in self.oracle.replay.objects() {
            if resource != "accounts" {
                continue;
            }
            for request in object["status"]["processors"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let state = request["state"].as_str().unwrap_or_default();
                if matches!(state, "Manual" | "Failed")
                    && let Some(processor) = request["name"].as_str()
                {
                    waiting.push((name.clone(), processor.to_owned()));
                }
            }
        }
        let now = self
            .now()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        for (account, processor) in waiting {
            let annotation = format!("erasure-confirmed.hosting.ecuni.se/{processor}");
            self.patch_account(
                &account,
                json!({"metadata": {"annotations": {annotation: now}}}),
            )
            .await;
        }
    }

    /// The steps that concern the violation's account (and every kill, fault and clock move),
    /// with the exchanges around the violation: the shortest history that tells what happened.
    fn story(&self, violation: &Violation) -> String {
        let mut out = String::new();
        // Object names start with their account's name, `r<round>-<index>`: r3-7-www → r3-7.
        let account = violation
            .detail
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '-')
            .find(|w| starts_with_account_name(w))
            .map(|w| w.split('-').take(2).collect::<Vec<_>>().join("-"));
        let _ = writeln!(
            out,
            "seed {} — violation: {:?}: {}",
            self.campaign.seed, violation.kind, violation.detail
        );
        let _ = writeln!(
            out,
            "steps (those of account {account:?}, and every kill, fault and clock move):"
        );
        for (position, clock, step) in &self.log {
            let relevant = match step.account() {
                Some(a) => Some(a) == account.as_deref(),
                None => !matches!(step, Step::Pause { .. } | Step::ProcessorReply { .. }),
            };
            if relevant {
                let _ = writeln!(out, "  #{position:>7} clock {clock}: {step:?}");
            }
        }
        if let Some(position) = violation.position {
            let _ = writeln!(out, "requests about it up to the violation:");
            let name = account.clone().unwrap_or_default();
            for (i, r) in self.records.iter().enumerate().take(position + 1) {
                if (r.name.starts_with(&name) && !name.is_empty())
                    || r.name.starts_with(crate::oracle::CLOCK_MARK_PREFIX)
                    || i == position
                {
                    let _ = writeln!(
                        out,
                        "  #{i:>7} {} {} {} {}/{} -> {}",
                        r.user_agent, r.verb, r.resource, r.namespace, r.name, r.code
                    );
                }
            }
        } else if let Some(name) = account.as_deref() {
            // Found at quiescence: every write of the account's objects tells how they went.
            let _ = writeln!(out, "writes of its objects:");
            for (i, r) in self.records.iter().enumerate() {
                if r.name.starts_with(name) && !matches!(r.verb.as_str(), "get" | "list" | "watch")
                {
                    let _ = writeln!(
                        out,
                        "  #{i:>7} {} {} {} {}/{} -> {}",
                        r.user_agent, r.verb, r.resource, r.namespace, r.name, r.code
                    );
                }
            }
        }
        out
    }
}

/// The erasure requests every receiver got.
fn deliveries(world: &World) -> Vec<Delivery> {
    let mut all = Vec::new();
    for (processor, receiver) in &world.receivers {
        for received in receiver.received() {
            let Ok(body) = serde_json::from_slice::<serde_json::Value>(&received.body) else {
                continue;
            };
            all.push(Delivery {
                processor: processor.clone(),
                account: body["account"].as_str().unwrap_or_default().to_owned(),
                idempotency_key: body["idempotencyKey"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                resources: body["resources"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| format!("{} {}/{}", r["kind"], r["namespace"], r["name"]))
                    .collect(),
                reason: body["reason"].as_str().unwrap_or_default().to_owned(),
            });
        }
    }
    all
}

/// Accounts whose erasure proof counts differ from the deletions the server saw.
fn proof_mismatches(
    replay: &crate::oracle::Replay,
    deletions: &[&crate::oracle::CheckedDeletion],
) -> Vec<Violation> {
    let expected = proof_counts(deletions);
    let mut violations = Vec::new();
    for (name, account) in replay.accounts() {
        let proof = account.status.as_ref().and_then(|s| s.erasure.as_ref());
        if proof.is_some_and(|p| !p.deleting.is_empty()) {
            // Deletions under way: counted once confirmed.
            violations.push(Violation {
                kind: ViolationKind::ProofMismatch,
                position: None,
                detail: format!("Account {name}: deletions still recorded as under way"),
            });
            continue;
        }
        let counted: BTreeMap<String, u32> = proof.map(|p| p.deleted.clone()).unwrap_or_default();
        let seen = expected.get(name).cloned().unwrap_or_default();
        if counted != seen {
            violations.push(Violation {
                kind: ViolationKind::ProofMismatch,
                position: None,
                detail: format!(
                    "Account {name}: the proof counts {counted:?}, the server saw {seen:?} \
                     deleted under termination"
                ),
            });
        }
    }
    violations
}

/// Accounts, all deleted by now, whose ErasureReceipts differ from what the server saw: every
/// object deleted under a termination is listed in exactly one receipt of its account, no
/// receipt lists anything else, and every receipt's digest verifies. Receipts deleted at
/// their expiry count too (the campaign's clock runs for years). (That an erasure time
/// gets one receipt, not a second partial one, follows: a second would list a uid again or
/// leave one out of the first.)
fn receipt_mismatches(
    replay: &crate::oracle::Replay,
    deletions: &[&crate::oracle::CheckedDeletion],
) -> Vec<Violation> {
    let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for deletion in deletions.iter().filter(|d| d.under_termination) {
        expected
            .entry(deletion.account.clone())
            .or_default()
            .insert(deletion.uid.clone());
    }
    let mut listed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut violations = Vec::new();
    // Every receipt ever written: the campaign's clock runs for years, past `keepFor`.
    for object in replay.receipts_ever.values() {
        let Ok(receipt) = serde_json::from_value::<ErasureReceipt>(object.clone()) else {
            continue;
        };
        if !retention_operator::receipts::verifies(&receipt.spec) {
            violations.push(Violation {
                kind: ViolationKind::ReceiptMismatch,
                position: None,
                detail: format!(
                    "ErasureReceipt {}: its digest does not verify",
                    receipt.name_any()
                ),
            });
        }
        listed
            .entry(receipt.spec.account.name.clone())
            .or_default()
            .extend(receipt.spec.erased.iter().map(|o| o.uid.clone()));
    }
    let accounts: BTreeSet<&String> = expected.keys().chain(listed.keys()).collect();
    for account in accounts {
        let mut uids = listed.get(account).cloned().unwrap_or_default();
        uids.sort();
        let once: BTreeSet<String> = uids.iter().cloned().collect();
        let seen = expected.get(account).cloned().unwrap_or_default();
        if uids.len() != once.len() || once != seen {
            violations.push(Violation {
                kind: ViolationKind::ReceiptMismatch,
                position: None,
                detail: format!(
                    "Account {account}: its receipts list {uids:?}, the server saw {seen:?} \
                     deleted under termination"
                ),
            });
        }
    }
    violations
}

/// What keeps a deleted Account's finalizer on, in one line: the finalizers, the phase, the
/// deletions in flight, each processor's request and the conditions, as last written.
fn account_summary(account: &Value) -> String {
    let list = |value: &Value, item: &dyn Fn(&Value) -> String| -> String {
        value
            .as_array()
            .map(|items| items.iter().map(item).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    let status = &account["status"];
    format!(
        "finalizers [{}], deletionTimestamp {}, phase {}, deleting [{}], processors [{}], \
         conditions [{}]",
        list(&account["metadata"]["finalizers"], &|f| f.to_string()),
        account["metadata"]["deletionTimestamp"],
        status["phase"],
        list(&status["erasure"]["deleting"], &|d| format!(
            "{}/{}",
            d["kind"].as_str().unwrap_or("?"),
            d["name"].as_str().unwrap_or("?")
        )),
        list(&status["processors"], &|p| format!(
            "{} {} erasureAt {} attempts {} next {}",
            p["name"].as_str().unwrap_or("?"),
            p["state"],
            p["erasureAt"],
            p["attempts"],
            p["nextAttemptAt"]
        )),
        list(&status["conditions"], &|c| format!(
            "{}={}/{}",
            c["type"].as_str().unwrap_or("?"),
            c["status"].as_str().unwrap_or("?"),
            c["reason"].as_str().unwrap_or("?")
        )),
    )
}

/// Whether `word` starts with an account's name, `r<round>-<index>` (objects' names do).
fn starts_with_account_name(word: &str) -> bool {
    let mut parts = word.split('-');
    let round = parts.next().and_then(|p| p.strip_prefix('r'));
    round.is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
        && parts
            .next()
            .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `word` is an account's name, `r<round>-<index>`.
pub fn is_account_name(word: &str) -> bool {
    starts_with_account_name(word) && word.split('-').count() == 2
}
