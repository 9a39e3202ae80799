//! The oracle: judges a history of requests, as the API server recorded them, against the
//! safety invariants (docs/design.md §4). Pure: it reads the exchanges (the test server's exchange
//! log, or kube-apiserver's audit log at level RequestResponse), the instants the campaign's
//! clock showed, and what the processors' receivers got, and returns every violation it finds.
//!
//! What it reconstructs: every version of every object, from the bodies of the answers to
//! the writes and reads of anyone (the campaign's own account system and the operator alike),
//! so it knows the object a DELETE removed (by the uid and resourceVersion of its
//! preconditions) and the Account the operator read right before it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use retention_operator::{
    api::{Account, BrakeSpec, RetentionPolicy, RetentionPolicySpec},
    kinds::{BoundKind, KindVisitor, ResourceKind},
    retention::{BoundResource, ResourcePlan, plan_account},
    shard::Shard,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use test_apiserver::Exchange;

/// The bound kind a plural resource name is of, if any: the kinds the operator deletes.
pub fn bound_kind(resource: &str) -> Option<ResourceKind> {
    ResourceKind::ALL
        .into_iter()
        .find(|kind| kind.plural() == resource)
}

/// One broken promise, with what the oracle saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant (or check) it breaks.
    pub kind: ViolationKind,
    /// The position of the offending exchange in the history, when there is one.
    pub position: Option<usize>,
    /// What happened, for the report.
    pub detail: String,
}

/// The checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ViolationKind {
    /// Invariant 1 or 2: a DELETE of an object not due at that instant (not terminated, before
    /// its deleteAt, under a hold).
    DeletedEarly,
    /// A DELETE while every version of the RetentionPolicy it could rest on was suspended.
    DeletedWhileSuspended,
    /// More deletions under a RetentionPolicy than its brake's `maxDeletions` since the brake
    /// last changed (the campaign's windows never slide and it releases no brake by
    /// annotation, so the count since the last change is what the limit bounds).
    BrakeExceeded,
    /// Invariant 3: a DELETE without uid and resourceVersion preconditions.
    NoPreconditions,
    /// Invariant 3: a DELETE not sent within one round trip of a read of the Account from the
    /// API server: it had no read before it, or it went out after another DELETE resting on
    /// the same read had been answered (DELETEs sent together may share a read).
    StaleAccount,
    /// Invariant 5: a DELETE of an object whose Account did not exist.
    DeletedUnbound,
    /// Invariant 3, fencing: a write by a replica that did not hold the lease.
    Unfenced,
    /// Invariant 4: something due was never deleted.
    Leftover,
    /// Invariant 4: an Account reported Erased with objects still bound.
    ErasedButBound,
    /// A processor got a request under a key that belongs to no erasure.
    StrayIdempotencyKey,
    /// A processor owed an erasure request never got one.
    Undelivered,
    /// The erasure proof's counts differ from the deletions the server saw.
    ProofMismatch,
    /// Once an Account is gone, its ErasureReceipts do not list exactly the objects the server
    /// saw deleted under its termination, each once, with a digest that verifies.
    ReceiptMismatch,
}

/// The key of one object in a history.
pub type ObjectKey = (String, String, String);

/// Longer than any pass of the operator lasts, from reading the clock to its last DELETE
/// (each request is abandoned after 1 s, a DELETE is tried a few times).
const LONGEST_PASS: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

/// A request the campaign made to mark an instant in the history: a GET of a ConfigMap that
/// does not exist, named after the mark.
pub const CLOCK_MARK_PREFIX: &str = "chaos-clock-";

/// Every version of every object in a history, and the objects as they stand at each point.
#[derive(Default)]
pub struct Replay {
    /// Current objects by (resource, namespace, name).
    current: HashMap<ObjectKey, Value>,
    /// Accounts that were removed at once when deleted: they never carried the operator's
    /// finalizer (deleted before the operator first saw them), so what was bound to them is
    /// unbound, reported and never deleted (invariant 5).
    pub removed_without_finalizer: BTreeSet<String>,
    /// The last versions seen of each bound object, by uid: what a DELETE's preconditions name.
    versions: HashMap<String, Vec<(String, Value)>>,
    /// The uids of objects the history showed removed. A server logs an exchange when it
    /// answers, not when it commits, so a write committed before the removal may be logged
    /// after it: a uid once removed never stands again.
    removed: HashSet<String>,
    /// How many answers came after the removal of their object.
    pub logged_after_removal: usize,
    /// Every ErasureReceipt the history showed, by name, as last seen: receipts expire (and
    /// are deleted) within a campaign whose clock runs for years.
    pub receipts_ever: BTreeMap<String, Value>,
}

fn meta<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object["metadata"][field].as_str()
}

fn resource_version(object: &Value) -> u64 {
    meta(object, "resourceVersion")
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

fn key_of(exchange: &Exchange) -> ObjectKey {
    (
        exchange.record.resource.clone(),
        exchange.record.namespace.clone(),
        exchange.record.name.clone(),
    )
}

fn is_object(value: &Value) -> bool {
    value
        .get("metadata")
        .is_some_and(|m| m.get("uid").is_some())
        && value["kind"].as_str() != Some("Status")
}

impl Replay {
    /// Takes in one exchange: the object versions its answer shows.
    pub fn apply(&mut self, exchange: &Exchange) {
        let record = &exchange.record;
        if !(200..300).contains(&record.code) || record.resource.is_empty() {
            return;
        }
        let Some(response) = &exchange.response else {
            return;
        };
        let mut key = key_of(exchange);
        if is_object(response) {
            // A create names the object in its body, not in its path.
            key.1 = meta(response, "namespace").unwrap_or_default().to_owned();
            key.2 = meta(response, "name").unwrap_or_default().to_owned();
            if bound_kind(&record.resource).is_some() {
                let uid = meta(response, "uid").unwrap_or_default().to_owned();
                let rv = meta(response, "resourceVersion")
                    .unwrap_or_default()
                    .to_owned();
                let versions = self.versions.entry(uid).or_default();
                if !versions.iter().any(|(known, _)| *known == rv) {
                    versions.push((rv, response.clone()));
                }
                // A DELETE names the version it planned from, which is the latest or close to
                // it (a later one makes it fail).
                if versions.len() > 4 {
                    versions.remove(0);
                }
            }
            if record.resource == "erasurereceipts" {
                let name = meta(response, "name").unwrap_or_default().to_owned();
                self.receipts_ever.insert(name, response.clone());
            }
            if record.verb == "get" {
                return;
            }
            if meta(response, "uid").is_some_and(|uid| self.removed.contains(uid)) {
                self.logged_after_removal += 1;
                return;
            }
            let finalized = response["metadata"]["deletionTimestamp"].is_string()
                && response["metadata"]["finalizers"]
                    .as_array()
                    .is_none_or(Vec::is_empty);
            if finalized {
                self.current.remove(&key);
                self.removed
                    .insert(meta(response, "uid").unwrap_or_default().to_owned());
                return;
            }
            let newer = self.current.get(&key).is_none_or(|old| {
                meta(old, "uid") != meta(response, "uid")
                    || resource_version(old) < resource_version(response)
            });
            if newer {
                self.current.insert(key, response.clone());
            }
        } else if record.verb == "delete" && response["status"].as_str() == Some("Success") {
            if record.resource == "accounts" {
                self.removed_without_finalizer.insert(record.name.clone());
            }
            let uid = response["details"]["uid"].as_str();
            if let Some(uid) = uid {
                self.removed.insert(uid.to_owned());
            }
            if uid.is_none() || self.current.get(&key).and_then(|o| meta(o, "uid")) == uid {
                self.current.remove(&key);
            }
            // The versions stay: a DELETE that waits for its version may need the latest one
            // (see `Oracle::judge_pending_on_latest`).
        }
    }

    /// The version of an object with this uid and resourceVersion, if the history showed it.
    pub fn version(&self, uid: &str, rv: &str) -> Option<&Value> {
        self.versions
            .get(uid)?
            .iter()
            .find(|(known, _)| known == rv)
            .map(|(_, object)| object)
    }

    /// The object as it stands now.
    pub fn current(&self, resource: &str, namespace: &str, name: &str) -> Option<&Value> {
        self.current
            .get(&(resource.to_owned(), namespace.to_owned(), name.to_owned()))
    }

    /// Every bound object that stands now, as the engine reads it, of `account`.
    pub fn bound_to(&self, account: &str) -> Vec<BoundResource> {
        self.current
            .iter()
            .filter(|((resource, _, _), object)| {
                bound_kind(resource).is_some()
                    && object["spec"]["accountRef"].as_str() == Some(account)
            })
            .filter_map(|((resource, _, _), object)| bound_resource(resource, object))
            .collect()
    }

    /// Every Account that stands now (and reads as one), with its name.
    pub fn accounts(&self) -> impl Iterator<Item = (&str, Account)> {
        self.current
            .iter()
            .filter(|((resource, _, _), _)| resource == "accounts")
            .filter_map(|((_, _, name), object)| {
                let account = serde_json::from_value::<Account>(object.clone()).ok()?;
                Some((name.as_str(), account))
            })
    }

    /// Every object that stands now.
    pub fn objects(&self) -> impl Iterator<Item = (&ObjectKey, &Value)> {
        self.current.iter()
    }

    /// The latest version of the object with this uid that the history showed.
    pub fn latest(&self, uid: &str) -> Option<Value> {
        self.versions
            .get(uid)?
            .iter()
            .max_by_key(|(_, object)| resource_version(object))
            .map(|(_, object)| object.clone())
    }

    /// Forgets an object the server no longer has, though no answer in the history said it
    /// went (a DELETE answered 5xx that took effect all the same).
    pub fn forget(&mut self, key: &ObjectKey) {
        if let Some(uid) = self
            .current
            .remove(key)
            .as_ref()
            .and_then(|o| meta(o, "uid"))
        {
            self.removed.insert(uid.to_owned());
        }
    }

    /// The uids of every object that stands now.
    pub fn uids(&self) -> BTreeSet<String> {
        self.current
            .values()
            .filter_map(|o| meta(o, "uid").map(str::to_owned))
            .collect()
    }
}

/// Whether a DELETE's answer leaves open whether it took effect: a server error or timeout
/// (kube-apiserver answers 504 when etcd is slow to confirm a write it may still make), or no
/// answer at all.
pub fn may_have_taken_effect(code: u16) -> bool {
    code == 200 || code == 0 || code >= 500
}

/// The engine's view of a bound object, from its JSON.
pub fn bound_resource(resource: &str, object: &Value) -> Option<BoundResource> {
    struct Facts<'a>(&'a Value);
    impl KindVisitor for Facts<'_> {
        type Output = Option<BoundResource>;
        fn visit<K: BoundKind>(self) -> Self::Output {
            Some(serde_json::from_value::<K>(self.0.clone()).ok()?.facts())
        }
    }
    bound_kind(resource)?.visit(Facts(object))
}

/// The plan of one object, as the engine makes it from these inputs.
pub fn plan_of(
    account: &Account,
    bound: &[BoundResource],
    target: &BoundResource,
    policy: &RetentionPolicySpec,
    now: DateTime<Utc>,
) -> Option<ResourcePlan> {
    let mut inputs: Vec<BoundResource> = bound
        .iter()
        .filter(|r| r.reference != target.reference)
        .cloned()
        .collect();
    inputs.push(target.clone());
    plan_account(account, &inputs, policy, &BTreeMap::new(), now)
        .resources
        .into_iter()
        .find(|plan| plan.resource == target.reference)
}

/// `Idempotency-Key` of an erasure request, computed here from its documented definition
/// (docs/erasure-requests.md), not with the operator's code.
pub fn idempotency_key(
    account: &str,
    processor: &str,
    at: DateTime<Utc>,
    follow_up: u32,
) -> String {
    let time = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let text = if follow_up < 2 {
        format!("{account}/{processor}/{time}")
    } else {
        format!("{account}/{processor}/{time}#{follow_up}")
    };
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// What the oracle is told besides the history.
pub struct Setting {
    /// The User-Agent prefix of the operator's replicas.
    pub operator_agent: String,
    /// The Lease the replicas elect a leader with, when they do; sharded, the base name of
    /// each shard's Lease.
    pub lease: Option<String>,
    /// The shards the accounts are divided over (1: one leader does everything).
    pub shards: u32,
}

/// A DELETE the oracle accepted, with what it needs for the later checks.
#[derive(Clone, Debug)]
pub struct CheckedDeletion {
    pub account: String,
    pub kind: String,
    pub uid: String,
    /// Whether the Account was terminated (or being deleted) as read before the DELETE: the
    /// deletion then counts in the erasure proof.
    pub under_termination: bool,
    /// The processors told about it, and the erasure time.
    pub processors: Vec<String>,
    pub delete_at: Option<DateTime<Utc>>,
    /// Other erasure times the pass may have decided on. A pass reads the clock once, when it
    /// starts, and may send the DELETE after the campaign moved the clock (a DELETE retried
    /// after a 5xx): a schedule that counts from when it is first seen (withdrawn consent
    /// without a stamp) then names an earlier time than the clock at the DELETE gives.
    pub earlier_delete_at: Vec<DateTime<Utc>>,
    /// Answered 200: this DELETE removed the object (otherwise it may have).
    pub certain: bool,
}

/// A read of an Account by one replica.
#[derive(Clone)]
struct AccountRead {
    position: usize,
    /// When the answer was ready: a DELETE received after it may rest on it.
    completed: DateTime<Utc>,
    /// The Account as read; `None` when it did not exist.
    account: Option<Value>,
    /// The versions of the account's RetentionPolicy in force since the read: the operator
    /// may have decided on any of them.
    policies: Vec<RetentionPolicySpec>,
}

/// A replica's last reads of one Account, and when its last DELETEs of the account's objects
/// arrived.
/// How far apart the DELETEs of one round, sent together right after their read, may arrive
/// (see `check_delete_with`): far more than a round trip, as a loaded test runtime can
/// hold a request up for a hundred milliseconds and more.
const ROUND_SPREAD: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// A DELETE as the server saw it: when it arrived, when it was answered, and its object
/// (resource, namespace, name).
type SentDelete = (DateTime<Utc>, DateTime<Utc>, (String, String, String));

type ReadsAndDeletes = (Vec<AccountRead>, Vec<SentDelete>);

/// Judges a history as it grows: feed it the exchanges in order, read the verdict at any time.
pub struct Oracle {
    setting: Setting,
    /// The instants the clock was set to, by mark number: the clock showed `clock[k]` from the
    /// campaign's mark request `k` on (and never less later: the clock only moves forward).
    clock: Vec<DateTime<Utc>>,
    /// Exchanges fed so far.
    fed: usize,
    /// The last clock mark seen.
    mark: Option<usize>,
    /// When each clock mark arrived, by the server's clock, in history order.
    mark_arrivals: Vec<(usize, DateTime<Utc>)>,
    /// The last reads of each Account by each replica, and when its last DELETEs of the
    /// account's objects arrived. Requests are logged as they complete, so a DELETE held up on
    /// the way is judged by when it arrived: on the last read completed before that.
    account_reads: HashMap<(String, String), ReadsAndDeletes>,
    /// Per Lease (one per shard), its holder after each successful write, with when it
    /// completed.
    lease_holders: HashMap<String, Vec<(DateTime<Utc>, String)>>,
    /// The RetentionPolicy each replica last read from the server. A replica reads the policy
    /// and the Account together before a DELETE, so a policy edit answered between the two
    /// reads leaves it deciding on the version before the edit.
    policy_reads: HashMap<String, RetentionPolicySpec>,
    /// Per policy, its brake as last seen and the certain deletions under it since then.
    brake_counts: HashMap<String, (BrakeSpec, u32)>,
    pub violations: Vec<Violation>,
    pub deletions: Vec<CheckedDeletion>,
    /// DELETEs whose planned version is not in the history yet. kube-apiserver's watch tells
    /// the operator of a write before that write's own audit event is written, so the DELETE
    /// it leads to can be logged first: it is judged once the version appears.
    pending: Vec<(usize, Exchange)>,
    /// Objects whose DELETE was answered with a server error: whether they are gone is known
    /// only from the server (see [`Replay::forget`]).
    pub uncertain: BTreeSet<ObjectKey>,
    /// DELETEs of the operator that took effect, each checked.
    pub deletes_checked: u64,
    /// Writes of the operator checked against the lease.
    pub writes_fenced: u64,
    /// Of those, writes about one account, checked against its own shard's Lease.
    pub writes_fenced_by_shard: u64,
    /// The objects as they stand after the exchanges fed so far.
    pub replay: Replay,
}

impl Oracle {
    pub fn new(setting: Setting) -> Self {
        Self {
            setting,
            clock: Vec::new(),
            fed: 0,
            mark: None,
            mark_arrivals: Vec::new(),
            account_reads: HashMap::new(),
            lease_holders: HashMap::new(),
            policy_reads: HashMap::new(),
            brake_counts: HashMap::new(),
            violations: Vec::new(),
            deletions: Vec::new(),
            pending: Vec::new(),
            uncertain: BTreeSet::new(),
            deletes_checked: 0,
            writes_fenced: 0,
            writes_fenced_by_shard: 0,
            replay: Replay::default(),
        }
    }

    /// How many exchanges were fed so far (where the next call should start).
    pub fn fed(&self) -> usize {
        self.fed
    }

    /// Records that the clock is set to `now` from mark `clock.len()` on: call it before the
    /// mark request is sent.
    pub fn mark(&mut self, now: DateTime<Utc>) -> usize {
        self.clock.push(now);
        self.clock.len() - 1
    }

    fn policy(&self, name: &str) -> Option<RetentionPolicySpec> {
        let policy = self.replay.current("retentionpolicies", "", name)?;
        serde_json::from_value::<RetentionPolicy>(policy.clone())
            .ok()
            .map(|p| p.spec)
    }

    /// Counts a certain deletion under `policy` against its brake as it stands now; a change
    /// of the brake starts the count over (more lenient than the operator, whose count
    /// carries on).
    fn count_against_brake(&mut self, position: usize, what: &str, policy: &str) {
        let Some(brake) = self.policy(policy).map(|p| p.brake_or_default()) else {
            return;
        };
        let entry = self
            .brake_counts
            .entry(policy.to_owned())
            .or_insert((brake, 0));
        if entry.0 != brake {
            *entry = (brake, 0);
        }
        entry.1 += 1;
        if entry.1 > brake.max_deletions {
            let count = entry.1;
            self.violation(
                ViolationKind::BrakeExceeded,
                position,
                format!(
                    "{what}: deletion {count} under RetentionPolicy {policy}, whose brake allows {}",
                    brake.max_deletions
                ),
            );
        }
    }

    /// Ends the history: a DELETE whose planned version never appeared in it is a violation.
    pub fn finish(&mut self) {
        for (position, delete) in std::mem::take(&mut self.pending) {
            let r = &delete.record;
            self.violation(
                ViolationKind::NoPreconditions,
                position,
                format!(
                    "#{position} {}: DELETE {} {}/{}: the version its preconditions name \
                     appears nowhere in the history",
                    r.user_agent, r.resource, r.namespace, r.name
                ),
            );
        }
    }

    /// The clocks a pass that sent a request arriving at `arrived` may have started under:
    /// those of the marks that arrived within [`LONGEST_PASS`] before it, and the one in force
    /// when that span began.
    fn clocks_of_a_pass_before(&self, arrived: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let start = arrived - LONGEST_PASS;
        let mut clocks = Vec::new();
        let mut in_force = None;
        for &(k, at) in &self.mark_arrivals {
            if at > arrived {
                break;
            }
            if at <= start {
                in_force = Some(k);
            } else if let Some(clock) = self.clock.get(k) {
                clocks.push(*clock);
            }
        }
        clocks.extend(in_force.and_then(|k| self.clock.get(k)));
        clocks
    }

    /// Judges the next exchanges of the history.
    pub fn feed(&mut self, exchanges: &[Exchange]) {
        for exchange in exchanges {
            let position = self.fed;
            self.fed += 1;
            self.judge(position, exchange);
        }
    }

    fn judge(&mut self, position: usize, exchange: &Exchange) {
        let record = &exchange.record;
        let agent = record.user_agent.as_str();
        if record.resource == "configmaps"
            && let Some(k) = record.name.strip_prefix(CLOCK_MARK_PREFIX)
            && let Ok(k) = k.parse::<usize>()
        {
            self.mark = Some(self.mark.map_or(k, |m| m.max(k)));
            self.mark_arrivals.push((k, exchange.received));
        }
        let operator = agent.starts_with(&self.setting.operator_agent);
        if operator
            && self.setting.lease.is_some()
            && record.is_write()
            && record.resource != "leases"
        {
            self.check_fenced(position, exchange);
        }
        if record.resource == "leases"
            && record.is_write()
            && (200..300).contains(&record.code)
            && let Some(lease) = &exchange.response
            && let Some(name) = meta(lease, "name")
            && self.shard_leases().any(|shard| shard == name)
            && let Some(holder) = lease["spec"]["holderIdentity"].as_str()
        {
            self.lease_holders
                .entry(name.to_owned())
                .or_default()
                .push((exchange.completed, holder.to_owned()));
        }
        // A read of the Account: a GET, or the answer to a write of its status, which is the
        // Account as the API server holds it after the write.
        let status_write = record.verb == "patch" && record.subresource == "status";
        if operator
            && record.resource == "accounts"
            && (record.verb == "get" || (status_write && record.code == 200))
        {
            let account = (record.code == 200)
                .then(|| exchange.response.clone())
                .flatten();
            let policy = account
                .as_ref()
                .and_then(|a| a["spec"]["retentionPolicyRef"].as_str())
                .unwrap_or("default");
            let policies = self.policy(policy).into_iter().collect();
            let (reads, _) = self
                .account_reads
                .entry((agent.to_owned(), record.name.clone()))
                .or_default();
            reads.push(AccountRead {
                position,
                completed: exchange.completed,
                account,
                policies,
            });
            if reads.len() > 16 {
                reads.remove(0);
            }
        }
        if operator
            && record.resource == "retentionpolicies"
            && record.verb == "get"
            && record.code == 200
            && let Some(policy) = exchange
                .response
                .as_ref()
                .and_then(|p| serde_json::from_value::<RetentionPolicy>(p.clone()).ok())
        {
            self.policy_reads.insert(agent.to_owned(), policy.spec);
        }
        if operator && record.verb == "delete" && bound_kind(&record.resource).is_some() {
            self.check_delete(position, exchange);
        }
        self.replay.apply(exchange);
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            for (position, delete) in pending {
                self.check_delete(position, &delete);
            }
        }
        // A policy edit while a read is fresh: either version may be the one decided on.
        if record.resource == "retentionpolicies"
            && record.is_write()
            && let Some(policy) = self.policy(&record.name)
        {
            for read in self.account_reads.values_mut().flat_map(|(reads, _)| reads) {
                read.policies.push(policy.clone());
            }
        }
    }

    fn violation(&mut self, kind: ViolationKind, position: usize, detail: String) {
        self.violations.push(Violation {
            kind,
            position: Some(position),
            detail,
        });
    }

    /// The name of each shard's Lease (the one Lease, unsharded).
    fn shard_leases(&self) -> impl Iterator<Item = String> + '_ {
        let base = self.setting.lease.as_deref().unwrap_or_default();
        Shard::all(self.setting.shards.max(1)).map(move |shard| shard.lease_name(base))
    }

    /// Who held `lease` when a request arrived at `at`.
    fn holder_at(&self, lease: &str, at: DateTime<Utc>) -> Option<String> {
        self.lease_holders
            .get(lease)?
            .iter()
            .rev()
            .find(|(completed, _)| *completed <= at)
            .map(|(_, holder)| holder.clone())
    }

    /// The Account a write of the operator is about, when it is about one: the Account
    /// itself, a bound object's `spec.accountRef`, a receipt's account, an event regarding
    /// an Account.
    fn account_of(&self, exchange: &Exchange) -> Option<String> {
        let record = &exchange.record;
        let bodies = || {
            [exchange.request.as_ref(), exchange.response.as_ref()]
                .into_iter()
                .flatten()
                .chain(
                    self.replay
                        .current(&record.resource, &record.namespace, &record.name),
                )
        };
        match record.resource.as_str() {
            "accounts" => Some(record.name.clone()),
            "erasurereceipts" => bodies()
                .find_map(|b| b["spec"]["account"]["name"].as_str())
                .map(str::to_owned),
            "events" => bodies()
                .find_map(|b| {
                    let regarding = b.get("regarding").or_else(|| b.get("involvedObject"))?;
                    (regarding["kind"] == "Account").then(|| regarding["name"].as_str())?
                })
                .map(str::to_owned),
            resource if bound_kind(resource).is_some() => bodies()
                .find_map(|b| b["spec"]["accountRef"].as_str())
                .map(str::to_owned),
            _ => None,
        }
    }

    /// Invariant 3's fence, and sharded, that no two shards act on one account's objects: a
    /// write about an account must come from the holder of its shard's Lease when it arrived;
    /// any other write (a policy's brake count, a processor's status), from the holder of
    /// some shard's Lease.
    fn check_fenced(&mut self, position: usize, exchange: &Exchange) {
        let record = &exchange.record;
        self.writes_fenced += 1;
        let shards = self.setting.shards.max(1);
        let base = self.setting.lease.clone().unwrap_or_default();
        let leases: Vec<String> = match self.account_of(exchange) {
            Some(account) => {
                self.writes_fenced_by_shard += 1;
                vec![Shard::of(&account, shards).lease_name(&base)]
            }
            None => self.shard_leases().collect(),
        };
        let holders: Vec<(String, Option<String>)> = leases
            .into_iter()
            .map(|lease| {
                let holder = self.holder_at(&lease, exchange.received);
                (lease, holder)
            })
            .collect();
        if !holders.iter().any(|(_, holder)| {
            holder
                .as_deref()
                .is_some_and(|holder| record.user_agent.contains(holder))
        }) {
            self.violation(
                ViolationKind::Unfenced,
                position,
                format!(
                    "{} sent {} {} {}/{} at {} while the lease was held by {holders:?}",
                    record.user_agent,
                    record.verb,
                    record.resource,
                    record.namespace,
                    record.name,
                    exchange.received
                ),
            );
        }
    }

    fn check_delete(&mut self, position: usize, exchange: &Exchange) {
        self.check_delete_with(position, exchange, false);
    }

    /// Judges the DELETEs still waiting for their version with the latest version of the
    /// same object the history shows. A write answered with an error may still have been
    /// made (etcd killed between committing and answering): its version then never appears,
    /// and the DELETE the watch led to names it. The spec is the same (the campaign never
    /// edits a bound object's spec); stamps may differ.
    pub fn judge_pending_on_latest(&mut self) {
        for (position, delete) in std::mem::take(&mut self.pending) {
            self.check_delete_with(position, &delete, true);
        }
    }

    fn check_delete_with(&mut self, position: usize, exchange: &Exchange, latest: bool) {
        let record = &exchange.record;
        let agent = record.user_agent.as_str();
        let what = format!(
            "#{position} {agent}: DELETE {} {}/{} ({})",
            record.resource, record.namespace, record.name, record.code
        );
        let preconditions = exchange
            .request
            .as_ref()
            .map(|r| &r["preconditions"])
            .and_then(|p| Some((p["uid"].as_str()?, p["resourceVersion"].as_str()?)));
        let Some((uid, rv)) = preconditions else {
            if record.code == 200 {
                self.violation(
                    ViolationKind::NoPreconditions,
                    position,
                    format!("{what} without uid and resourceVersion preconditions"),
                );
            }
            return;
        };
        let known = self.replay.version(uid, rv).cloned();
        let Some(object) = known.or_else(|| latest.then(|| self.replay.latest(uid)).flatten())
        else {
            if may_have_taken_effect(record.code) {
                self.pending.push((position, exchange.clone()));
            }
            return;
        };
        let Some(account_name) = object["spec"]["accountRef"].as_str().map(str::to_owned) else {
            return;
        };
        let read_key = (agent.to_owned(), account_name.clone());
        let (reads, deletes) = self.account_reads.entry(read_key).or_default();
        let mut read = reads
            .iter()
            .rev()
            .find(|read| read.completed <= exchange.received)
            .cloned();
        if let (Some(read), Some(policy)) = (read.as_mut(), self.policy_reads.get(agent)) {
            read.policies.push(policy.clone());
        }
        // Whatever this DELETE's answer, it must go out within one round trip of its read.
        // DELETEs sent together on one read may share it, but an object's DELETE tried again
        // (after a 429 or a 5xx) needs a read of its own: the replica waited for the answer
        // and a pause, and the Account may have changed meanwhile. Timing alone cannot tell a
        // round from a read used twice: requests sent together do not arrive together (over
        // HTTP/1.1 each waits for a connection of its own, and a test's runtime shares two
        // cores with every replica), so only a DELETE that arrived ROUND_SPREAD after its
        // read, once another on that read had been answered, is judged late by time.
        let deleting = (
            record.resource.clone(),
            record.namespace.clone(),
            record.name.clone(),
        );
        let used = read.as_ref().is_some_and(|read| {
            deletes.iter().any(|(sent, answered, deleted)| {
                let on_this_read = read.completed <= *sent;
                let again = *deleted == deleting;
                let late = exchange.received - read.completed > ROUND_SPREAD
                    && (*answered <= exchange.received || exchange.completed <= *sent);
                on_this_read && (again || late)
            })
        });
        deletes.push((exchange.received, exchange.completed, deleting));
        // More than a round of the widest adaptive window (64).
        if deletes.len() > 128 {
            deletes.remove(0);
        }
        // Judged whenever it may have deleted something: a DELETE answered 5xx may have
        // taken effect all the same.
        if !may_have_taken_effect(record.code) {
            return;
        }
        if record.code != 200 {
            self.uncertain.insert((
                record.resource.clone(),
                record.namespace.clone(),
                record.name.clone(),
            ));
        }
        self.deletes_checked += 1;
        let Some(read) = read else {
            self.violation(
                ViolationKind::StaleAccount,
                position,
                format!("{what}: the operator never read Account {account_name} before it"),
            );
            return;
        };
        if used {
            self.violation(
                ViolationKind::StaleAccount,
                position,
                format!(
                    "{what}: the last read of Account {account_name} (#{}, {} ms before) \
                     already served a DELETE of this object, or one answered before this one \
                     was sent",
                    read.position,
                    (exchange.received - read.completed).num_milliseconds()
                ),
            );
        }
        let Some(account) = read
            .account
            .and_then(|a| serde_json::from_value::<Account>(a).ok())
        else {
            self.violation(
                ViolationKind::DeletedUnbound,
                position,
                format!(
                    "{what}: Account {account_name} did not exist when read (#{})",
                    read.position
                ),
            );
            return;
        };
        let Some(target) = bound_resource(&record.resource, &object) else {
            return;
        };
        let Some(now) = self.mark.and_then(|k| self.clock.get(k)).copied() else {
            self.violation(
                ViolationKind::DeletedEarly,
                position,
                format!("{what} before the campaign's clock was first set"),
            );
            return;
        };
        // A suspended policy deletes nothing, whatever is due under it.
        let in_force: Vec<&RetentionPolicySpec> =
            read.policies.iter().filter(|p| !p.suspend).collect();
        if in_force.is_empty() && !read.policies.is_empty() {
            self.violation(
                ViolationKind::DeletedWhileSuspended,
                position,
                format!(
                    "{what}: RetentionPolicy {} was suspended in every version the DELETE \
                     could rest on (Account read at #{})",
                    account.spec.retention_policy_ref, read.position
                ),
            );
            return;
        }
        let bound = self.replay.bound_to(&account_name);
        let plans: Vec<ResourcePlan> = in_force
            .iter()
            .filter_map(|policy| plan_of(&account, &bound, &target, policy, now))
            .collect();
        // Due: deleteAt at or before the instant, compared here rather than with the engine's
        // own helper, so that the oracle does not share a mistake there.
        let due = |plan: &&ResourcePlan| plan.schedule.delete_at.is_some_and(|at| at <= now);
        let Some(plan) = plans.iter().find(due) else {
            let why = plans
                .first()
                .map(|p| {
                    format!(
                        "deleteAt {:?} ({})",
                        p.schedule.delete_at, p.schedule.reason
                    )
                })
                .unwrap_or_else(|| "no policy".to_owned());
            self.violation(
                ViolationKind::DeletedEarly,
                position,
                format!(
                    "{what} at clock {now}: not due by the Account read at #{} \
                     (state {:?}, hold {}): {why}",
                    read.position,
                    account.spec.state,
                    account.spec.legal_hold.is_some()
                ),
            );
            return;
        };
        let earlier_delete_at = self
            .clocks_of_a_pass_before(exchange.received)
            .into_iter()
            .filter(|clock| *clock < now)
            .filter_map(|clock| {
                in_force
                    .iter()
                    .filter_map(|policy| plan_of(&account, &bound, &target, policy, clock))
                    .find(|plan| plan.schedule.delete_at.is_some_and(|at| at <= clock))
            })
            .filter_map(|plan| plan.schedule.delete_at)
            .filter(|at| Some(*at) != plan.schedule.delete_at)
            .collect();
        let certain = record.code == 200;
        if certain {
            self.count_against_brake(position, &what, &account.spec.retention_policy_ref);
        }
        let under_termination = account.metadata.deletion_timestamp.is_some()
            || account.spec.state == retention_operator::api::AccountState::Terminated;
        self.deletions.push(CheckedDeletion {
            account: account_name,
            kind: object["kind"].as_str().unwrap_or_default().to_owned(),
            uid: uid.to_owned(),
            under_termination,
            processors: plan.processors.clone(),
            delete_at: plan.schedule.delete_at,
            earlier_delete_at,
            certain,
        });
    }
}

/// One erasure request as a receiver got it.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub processor: String,
    pub account: String,
    pub idempotency_key: String,
    /// The objects the request names, `Kind namespace/name`: what a violation report shows.
    pub resources: Vec<String>,
    /// The request's `reason`.
    pub reason: String,
}

/// Checks the erasure requests the processors got against the deletions: every key belongs to
/// an erasure time of a deleted object the processor held, and every such erasure time (of a
/// processor with a webhook) got at least one request.
pub fn judge_deliveries(
    deletions: &[&CheckedDeletion],
    deliveries: &[Delivery],
    webhooks: &BTreeSet<String>,
    require_delivery: bool,
) -> Vec<Violation> {
    // Each erasure, by account, processor and time, with the other times its pass may have
    // decided on (see `CheckedDeletion::earlier_delete_at`).
    type Erasure = (String, String, DateTime<Utc>);
    let mut owed: BTreeMap<Erasure, BTreeSet<DateTime<Utc>>> = BTreeMap::new();
    for deletion in deletions {
        let Some(at) = deletion.delete_at else {
            continue;
        };
        for processor in &deletion.processors {
            owed.entry((deletion.account.clone(), processor.clone(), at))
                .or_default()
                .extend(deletion.earlier_delete_at.iter().copied());
        }
    }
    let mut keys: HashMap<String, Vec<Erasure>> = HashMap::new();
    for (erasure, earlier) in &owed {
        let (account, processor, at) = erasure;
        for time in std::iter::once(at).chain(earlier) {
            for n in 1..=8 {
                keys.entry(idempotency_key(account, processor, *time, n))
                    .or_default()
                    .push(erasure.clone());
            }
        }
    }
    let mut violations = Vec::new();
    let mut delivered: BTreeSet<(String, String, DateTime<Utc>)> = BTreeSet::new();
    for delivery in deliveries {
        let erasures: Vec<&Erasure> = keys
            .get(&delivery.idempotency_key)
            .into_iter()
            .flatten()
            .filter(|e| e.0 == delivery.account && e.1 == delivery.processor)
            .collect();
        if !erasures.is_empty() {
            delivered.extend(erasures.into_iter().cloned());
            continue;
        }
        violations.push(Violation {
            kind: ViolationKind::StrayIdempotencyKey,
            position: None,
            detail: format!(
                "processor {} got a request for account {} under key {}, which belongs to \
                     no erasure of a deleted object it held (it names {:?}: {}); erasures known \
                     for the account: {:?}",
                delivery.processor,
                delivery.account,
                delivery.idempotency_key,
                delivery.resources,
                delivery.reason,
                deletions
                    .iter()
                    .filter(|d| d.account == delivery.account)
                    .map(|d| (&d.kind, &d.processors, d.delete_at, &d.earlier_delete_at))
                    .collect::<Vec<_>>()
            ),
        });
    }
    if require_delivery {
        for erasure in owed.keys() {
            if webhooks.contains(&erasure.1) && !delivered.contains(erasure) {
                violations.push(Violation {
                    kind: ViolationKind::Undelivered,
                    position: None,
                    detail: format!(
                        "processor {} never got the erasure request of account {} for {}",
                        erasure.1, erasure.0, erasure.2
                    ),
                });
            }
        }
    }
    violations
}

/// What the erasure proof should count per account and kind: the objects deleted while the
/// Account read before the DELETE was terminated.
pub fn proof_counts(deletions: &[&CheckedDeletion]) -> BTreeMap<String, BTreeMap<String, u32>> {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut counts: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    for deletion in deletions.iter().filter(|d| d.under_termination) {
        if seen.insert(&deletion.uid) {
            *counts
                .entry(deletion.account.clone())
                .or_default()
                .entry(deletion.kind.clone())
                .or_default() += 1;
        }
    }
    counts
}

/// The objects that are due by the engine at `now` and still stand, per the replay, with the
/// accounts that exist; and the Accounts reported Erased that still have objects bound.
pub fn leftovers(
    replay: &Replay,
    now: DateTime<Utc>,
    policies: &BTreeMap<String, RetentionPolicySpec>,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (name, account) in replay.accounts() {
        let Some(policy) = policies.get(&account.spec.retention_policy_ref) else {
            continue;
        };
        let bound = replay.bound_to(name);
        let plan = plan_account(&account, &bound, policy, &BTreeMap::new(), now);
        let is_due = |r: &&ResourcePlan| r.schedule.delete_at.is_some_and(|at| at <= now);
        for due in plan.resources.iter().filter(is_due) {
            violations.push(Violation {
                kind: ViolationKind::Leftover,
                position: None,
                detail: format!(
                    "{} of account {name} is due since {:?} ({}) and still exists at {now}",
                    due.resource, due.schedule.delete_at, due.schedule.reason
                ),
            });
        }
        let erased = account
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .is_some_and(|p| p == retention_operator::api::AccountPhase::Erased);
        if erased && !bound.is_empty() {
            violations.push(Violation {
                kind: ViolationKind::ErasedButBound,
                position: None,
                detail: format!(
                    "Account {name} is reported Erased with {} objects bound",
                    bound.len()
                ),
            });
        }
    }
    violations
}
