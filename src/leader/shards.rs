//! Sharded leadership: the accounts are divided over N shards ([`crate::shard`]), each owned
//! through a Lease of its own with the same election and fencing as the single Lease, so the
//! replicas share the work and a shard fails over when its owner dies.
//!
//! **Who holds what.** Every replica keeps a membership Lease of its own
//! (`<lease>-member-<identity>`, labelled [`MEMBER_OF`]) renewed every retry period, and counts
//! the members renewed within a lease duration: its fair share is `ceil(N / members)`
//! ([`crate::shard::fair_share`]). For every shard it runs a candidate that reads the shard's
//! Lease every retry period (so it knows how long the record has stood unchanged, as the
//! single election does) and tries to take it only while it holds fewer shards than its share.
//! A holder over its share (a replica joined) hands one shard back: its work stops gracefully,
//! its fence closes, and the Lease is released for a replica under its share. A replica that
//! dies stops renewing both its shards and its membership: after a lease duration the others'
//! share grows and the first under it takes each shard over.
//!
//! **Never two owners.** Each shard's Lease is taken only as the single Lease is: free,
//! released, or unchanged for its duration; and each shard's work runs behind its own
//! [`Fence`]. Leases of different shard counts have different names (`<lease>-<i>-of-<N>`), so
//! replicas started with different counts must not run at once: the chart changes the count
//! only by replacing every replica (docs: "Sharding").
//!
//! A replica that loses any shard's Lease exits, as an unsharded one does.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use futures::{StreamExt, stream::FuturesUnordered};
use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, ObjectMeta, PostParams, Preconditions},
};
use tokio::{sync::watch, time::Instant};
use tracing::{info, warn};

use super::{
    Elector, Fence, LeaderError, LeaderSettings, Leadership, StopSignal, conditional, keep_renewing,
};
use crate::shard::{Shard, fair_share};

/// Label on every membership Lease; its value is the base Lease name, so operators with
/// different Lease names count apart.
pub const MEMBER_OF: &str = "hosting.ecuni.se/member-of";

/// Annotation on every membership Lease: the shard count its replica runs with.
pub const SHARD_COUNT: &str = "hosting.ecuni.se/shards";

/// Annotation on every membership Lease: when its replica began (RFC 3339 with nanoseconds;
/// `creationTimestamp` has whole seconds, too coarse to tell apart replicas of a rollout).
pub const STARTED_AT: &str = "hosting.ecuni.se/started-at";

/// A membership Lease renewed longer ago than this many lease durations is deleted by any
/// member (its replica is long gone; a Deployment names every new pod anew).
const STALE_AFTER_DURATIONS: u32 = 10;

/// How many shards this replica holds and should hold.
#[derive(Debug, Default)]
struct Holdings {
    held: AtomicU32,
    share: AtomicU32,
    /// A replica of another shard count started before this one and still runs: this one
    /// holds nothing until it is gone.
    outranked: AtomicBool,
}

impl Holdings {
    /// Counts one more shard held, if that stays within the share.
    fn try_reserve(&self) -> bool {
        if self.outranked.load(Ordering::Acquire) {
            return false;
        }
        let share = self.share.load(Ordering::Acquire);
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < share).then_some(held + 1)
            })
            .is_ok()
    }

    /// Counts one shard fewer.
    fn unreserve(&self) {
        let _ = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_sub(1)
            });
    }

    /// Counts one shard fewer if more are held than the share (or any, when outranked): the
    /// caller hands it back.
    fn try_hand_back(&self) -> bool {
        if self.outranked.load(Ordering::Acquire) {
            return self
                .held
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                    held.checked_sub(1)
                })
                .is_ok();
        }
        let share = self.share.load(Ordering::Acquire);
        // A share of 0 means membership has not been read yet: nothing to hand back.
        share > 0
            && self
                .held
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                    (held > share).then(|| held - 1)
                })
                .is_ok()
    }
}

/// Checks that sharding can run under `settings`: the Lease timings, and a base Lease name
/// that can be a label value (the membership Leases are found by it).
pub fn validate(settings: &LeaderSettings) -> Result<(), LeaderError> {
    settings.validate()?;
    let name = &settings.lease_name;
    if name.is_empty() || name.len() > 63 {
        return Err(LeaderError::LeaseName(name.clone()));
    }
    Ok(())
}

/// Runs `work` for every shard of `count` this replica comes to hold, until `stop` turns true
/// (each shard's work finishes, then its Lease is released) or a Lease is lost (every shard's
/// work is dropped at once, wherever it is).
pub async fn run_shards<F, Fut>(
    client: Client,
    settings: &LeaderSettings,
    count: u32,
    stop: watch::Receiver<bool>,
    work: F,
) -> Result<Leadership, LeaderError>
where
    F: Fn(Shard, StopSignal, Fence) -> Fut,
    Fut: Future<Output = ()>,
{
    validate(settings)?;
    let holdings = Arc::new(Holdings::default());
    let membership = keep_membership(
        client.clone(),
        settings,
        holdings.clone(),
        count,
        stop.clone(),
    );
    let mut shards: FuturesUnordered<_> = Shard::all(count)
        .map(|shard| {
            let settings = LeaderSettings {
                lease_name: shard.lease_name(&settings.lease_name),
                ..settings.clone()
            };
            serve_shard(
                client.clone(),
                settings,
                shard,
                holdings.clone(),
                stop.clone(),
                &work,
            )
        })
        .collect();
    tokio::pin!(membership);
    // Membership ends only when stopped, which ends every shard too.
    let mut member = true;
    loop {
        tokio::select! {
            next = shards.next() => match next {
                Some(Leadership::Lost) => return Ok(Leadership::Lost),
                Some(Leadership::Stopped) => {}
                None => break,
            },
            () = &mut membership, if member => member = false,
        }
    }
    if member {
        membership.await;
    }
    Ok(Leadership::Stopped)
}

/// One shard: a candidate for its Lease while this replica is under its share, then its work
/// while it holds the Lease, until stopped, handed back or lost.
async fn serve_shard<F, Fut>(
    client: Client,
    settings: LeaderSettings,
    shard: Shard,
    holdings: Arc<Holdings>,
    mut stop: watch::Receiver<bool>,
    work: &F,
) -> Leadership
where
    F: Fn(Shard, StopSignal, Fence) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut elector = Elector::new(client, &settings);
    loop {
        let Some(acquired) = candidate(&mut elector, &settings, &holdings, &mut stop).await else {
            return Leadership::Stopped;
        };
        info!(identity = %settings.identity, %shard, lease = %settings.lease_name, "leading shard");
        let fence = Fence::leased(settings.request_timeout());
        fence.extend(acquired + settings.lease_duration);
        let (hand_back, handing_back) = watch::channel(false);
        let signal: StopSignal = {
            let (mut stop, mut handing_back) = (stop.clone(), handing_back.clone());
            Box::pin(async move {
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => {}
                    _ = handing_back.wait_for(|h| *h) => {}
                }
            })
        };
        let outcome = {
            let work = work(shard, signal, fence.clone());
            let renewing = keep_renewing(&mut elector, &settings, &fence, acquired, || {
                if !*hand_back.borrow() && holdings.try_hand_back() {
                    info!(%shard, "over this replica's share: handing the shard back");
                    hand_back.send_replace(true);
                }
            });
            tokio::pin!(work);
            tokio::pin!(renewing);
            tokio::select! {
                () = &mut work => Leadership::Stopped,
                () = &mut renewing => Leadership::Lost,
            }
        };
        fence.revoke();
        if outcome == Leadership::Lost {
            warn!(identity = %settings.identity, %shard, "lost the shard's lease: stopped acting");
            return Leadership::Lost;
        }
        if let Err(error) = elector.release().await {
            warn!(%error, %shard, "cannot release the shard's lease; it is taken over when it expires");
        }
        if !*handing_back.borrow() {
            holdings.unreserve();
            return Leadership::Stopped;
        }
        info!(%shard, "handed the shard back");
    }
}

/// Reads the shard's Lease every retry period and takes it once it is free or expired while
/// this replica is under its share; the instant the taking write was sent, or `None` when
/// stopped first.
async fn candidate(
    elector: &mut Elector,
    settings: &LeaderSettings,
    holdings: &Holdings,
    stop: &mut watch::Receiver<bool>,
) -> Option<Instant> {
    loop {
        let take = holdings.try_reserve();
        let sent = Instant::now();
        let attempt = tokio::time::timeout(settings.retry_period, elector.observe_or_take(take));
        tokio::select! {
            _ = stop.wait_for(|s| *s) => {
                if take {
                    holdings.unreserve();
                }
                return None;
            }
            result = attempt => {
                if let Ok(Ok(true)) = result {
                    return Some(sent);
                }
                if take {
                    holdings.unreserve();
                }
                if let Ok(Err(error)) = result {
                    warn!(%error, lease = %settings.lease_name, "cannot read or take the shard's lease; trying again");
                }
            }
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return None,
            () = tokio::time::sleep(settings.retry_period) => {}
        }
    }
}

/// Renews this replica's membership Lease and sets its share from the live members, every
/// retry period until stopped; then deletes the membership, so the others' share grows at once.
async fn keep_membership(
    client: Client,
    settings: &LeaderSettings,
    holdings: Arc<Holdings>,
    count: u32,
    mut stop: watch::Receiver<bool>,
) {
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let name = member_lease_name(&settings.lease_name, &settings.identity);
    let own = Own {
        count,
        started: Timestamp::now(),
    };
    let began = Instant::now();
    loop {
        match count_members(&api, settings, &name, &own).await {
            Ok((members, outranked)) => {
                if outranked && !holdings.outranked.load(Ordering::Acquire) {
                    warn!(
                        shards = count,
                        "a replica running another shard count started first and still runs: \
                         holding no shard until it is gone"
                    );
                }
                holdings.outranked.store(outranked, Ordering::Release);
                // For its first lease duration a replica takes one shard at most: replicas
                // started together see each other's memberships by then, instead of the
                // first one taking every shard (and listing everything once per shard).
                let warming = began.elapsed() < settings.lease_duration;
                let share = fair_share(count, members);
                holdings.share.store(
                    if warming { share.min(1) } else { share },
                    Ordering::Release,
                );
            }
            Err(error) => warn!(%error, "cannot renew or count the shard members; trying again"),
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            () = tokio::time::sleep(settings.retry_period) => {}
        }
    }
    if let Err(error) = api.delete(&name, &DeleteParams::default()).await {
        warn!(%error, "cannot delete this replica's membership lease; it expires");
    }
}

/// What this replica's membership says of it.
struct Own {
    /// The shard count it runs with.
    count: u32,
    /// When it began.
    started: Timestamp,
}

/// A live replica, as its membership (or the unsharded Lease) shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Member {
    /// When it started, in nanoseconds since the epoch: its membership's [`STARTED_AT`] (the
    /// unsharded Lease's acquisition).
    started: i128,
    /// Its membership's name: the tie-break between replicas started in the same second.
    name: String,
    /// The shard count it runs with (`None`: unreadable, counted as another).
    shards: Option<u32>,
}

/// Whether a replica running another shard count than `me` started before it: then `me`
/// holds nothing, so that replicas of two shard counts, whose Leases do not overlap, never
/// act at once (a rolling update from one count to another waits for the old replicas).
fn outranked(me: &Member, live: &[Member]) -> bool {
    live.iter().any(|other| {
        other.name != me.name
            && other.shards != me.shards
            && (other.started, &other.name) < (me.started, &me.name)
    })
}

/// Renews this replica's membership and counts the members renewed within a lease duration
/// (this one included), and whether a replica of another shard count outranks this one;
/// deletes memberships long expired.
async fn count_members(
    api: &Api<Lease>,
    settings: &LeaderSettings,
    name: &str,
    own: &Own,
) -> Result<(u32, bool), kube::Error> {
    renew_membership(api, settings, name, own).await?;
    let selector = format!("{MEMBER_OF}={}", settings.lease_name);
    let members = api.list(&ListParams::default().labels(&selector)).await?;
    let now = Timestamp::now();
    let mut live = 0u32;
    let mut me = None;
    let mut others = Vec::new();
    for member in &members.items {
        let age = member
            .spec
            .as_ref()
            .and_then(|s| s.renew_time.as_ref())
            .map_or(Duration::MAX, |t| age_of(t, now));
        let mine = member.metadata.name.as_deref() == Some(name);
        if age <= settings.lease_duration || mine {
            live += 1;
            let annotation = |key: &str| {
                member
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(key))
                    .cloned()
            };
            let seen = Member {
                started: annotation(STARTED_AT)
                    .and_then(|t| t.parse::<Timestamp>().ok())
                    .map_or(i128::MAX, Timestamp::as_nanosecond),
                name: member.metadata.name.clone().unwrap_or_default(),
                shards: annotation(SHARD_COUNT).and_then(|n| n.parse().ok()),
            };
            if mine {
                me = Some(seen);
            } else {
                others.push(seen);
            }
        } else if age > settings.lease_duration * STALE_AFTER_DURATIONS {
            let preconditions = Preconditions {
                resource_version: member.metadata.resource_version.clone(),
                uid: member.metadata.uid.clone(),
            };
            let params = DeleteParams::default().preconditions(preconditions);
            if let Some(stale) = &member.metadata.name {
                // Another member may delete it first; either way it is gone.
                let _ = api.delete(stale, &params).await;
            }
        }
    }
    others.extend(unsharded_leader(api, settings, now).await?);
    let outranked = me.is_some_and(|me| outranked(&me, &others));
    Ok((live.max(1), outranked))
}

/// The holder of the unsharded Lease (the base name), while it is renewed: a replica that
/// does not shard, as a member with one shard.
async fn unsharded_leader(
    api: &Api<Lease>,
    settings: &LeaderSettings,
    now: Timestamp,
) -> Result<Option<Member>, kube::Error> {
    let Some(lease) = api.get_opt(&settings.lease_name).await? else {
        return Ok(None);
    };
    let Some(spec) = lease.spec else {
        return Ok(None);
    };
    let held = spec
        .holder_identity
        .as_deref()
        .is_some_and(|h| !h.is_empty());
    let renewed = spec
        .renew_time
        .as_ref()
        .is_some_and(|t| age_of(t, now) <= settings.lease_duration);
    Ok((held && renewed).then(|| Member {
        started: spec
            .acquire_time
            .as_ref()
            .map_or(i128::MIN, |t| t.0.as_nanosecond()),
        name: settings.lease_name.clone(),
        shards: Some(1),
    }))
}

/// How long ago a renewal time was, by the wall clock (membership only sizes the share; the
/// shards' own Leases never depend on clocks agreeing).
fn age_of(renewed: &MicroTime, now: Timestamp) -> Duration {
    let seconds = now.as_second().saturating_sub(renewed.0.as_second());
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

async fn renew_membership(
    api: &Api<Lease>,
    settings: &LeaderSettings,
    name: &str,
    own: &Own,
) -> Result<(), kube::Error> {
    let now = MicroTime(Timestamp::now());
    let duration = i32::try_from(settings.lease_duration.as_secs()).unwrap_or(i32::MAX);
    let spec = LeaseSpec {
        holder_identity: Some(settings.identity.clone()),
        lease_duration_seconds: Some(duration),
        renew_time: Some(now),
        ..LeaseSpec::default()
    };
    match api.get_opt(name).await? {
        Some(mut lease) => {
            lease.spec = Some(spec);
            // A restarted replica of the same name keeps its start, and states its count anew.
            let annotations = lease.metadata.annotations.get_or_insert_default();
            annotations.insert(SHARD_COUNT.to_owned(), own.count.to_string());
            annotations
                .entry(STARTED_AT.to_owned())
                .or_insert_with(|| own.started.to_string());
            conditional(api.replace(name, &PostParams::default(), &lease).await).map(drop)
        }
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    labels: Some([(MEMBER_OF.to_owned(), settings.lease_name.clone())].into()),
                    annotations: Some(
                        [
                            (SHARD_COUNT.to_owned(), own.count.to_string()),
                            (STARTED_AT.to_owned(), own.started.to_string()),
                        ]
                        .into(),
                    ),
                    ..ObjectMeta::default()
                },
                spec: Some(spec),
            };
            conditional(api.create(&PostParams::default(), &lease).await).map(drop)
        }
    }
}

/// The membership Lease of a replica: its identity made a valid name (lowercase letters,
/// digits, `-` and `.`).
fn member_lease_name(base: &str, identity: &str) -> String {
    let identity: String = identity
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = format!("{base}-member-{}", identity.trim_matches(['-', '.']));
    name.chars().take(253).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holdings(held: u32, share: u32) -> Holdings {
        Holdings {
            held: AtomicU32::new(held),
            share: AtomicU32::new(share),
            outranked: AtomicBool::new(false),
        }
    }

    #[test]
    fn a_replica_takes_shards_up_to_its_share_and_hands_back_what_is_over_it() {
        let h = holdings(0, 2);
        assert!(h.try_reserve());
        assert!(h.try_reserve());
        assert!(!h.try_reserve(), "at the share");
        assert!(!h.try_hand_back(), "not over it");
        h.share.store(1, Ordering::Release);
        assert!(h.try_hand_back());
        assert!(!h.try_hand_back(), "one handed back is enough");
        assert_eq!(h.held.load(Ordering::Acquire), 1);
        h.unreserve();
        h.unreserve();
        assert_eq!(h.held.load(Ordering::Acquire), 0, "never below zero");
    }

    #[test]
    fn before_membership_is_read_nothing_is_taken_or_handed_back() {
        let h = holdings(0, 0);
        assert!(!h.try_reserve());
        let h = holdings(3, 0);
        assert!(!h.try_hand_back());
    }

    #[test]
    fn a_replica_of_another_shard_count_that_started_first_outranks() {
        let member = |started, name: &str, shards| Member {
            started,
            name: name.into(),
            shards,
        };
        let me = member(100, "m-b", Some(4));
        // Same count: peers, whoever started first.
        assert!(!outranked(&me, &[member(50, "m-a", Some(4))]));
        // Another count, started before: wait for it to be gone.
        assert!(outranked(&me, &[member(50, "m-a", Some(2))]));
        assert!(
            outranked(&me, &[member(50, "m-a", None)]),
            "unreadable counts as another"
        );
        // The unsharded leader (one shard) of a rolling update to sharding.
        assert!(outranked(&me, &[member(99, "lease", Some(1))]));
        // Another count, started after: it waits for this one.
        assert!(!outranked(&me, &[member(150, "m-c", Some(2))]));
        // The same second: the name decides, one way for both.
        let other = member(100, "m-c", Some(2));
        assert!(!outranked(&me, std::slice::from_ref(&other)));
        assert!(outranked(&other, &[me]));
    }

    #[test]
    fn an_outranked_replica_takes_nothing_and_hands_back_everything() {
        let h = holdings(2, 4);
        h.outranked.store(true, Ordering::Release);
        assert!(!h.try_reserve());
        assert!(h.try_hand_back());
        assert!(h.try_hand_back());
        assert!(!h.try_hand_back(), "nothing left");
    }

    #[test]
    fn membership_lease_names_are_valid_names() {
        assert_eq!(
            member_lease_name("retention-operator", "Host_A-42"),
            "retention-operator-member-host-a-42"
        );
        assert_eq!(
            member_lease_name("r", "retention-operator-7d9f-x2"),
            "r-member-retention-operator-7d9f-x2"
        );
        assert!(member_lease_name("r", &"x".repeat(400)).len() <= 253);
    }

    #[test]
    fn ages_count_from_the_renewal() {
        let now = Timestamp::from_second(1_000).unwrap();
        let renewed = MicroTime(Timestamp::from_second(990).unwrap());
        assert_eq!(age_of(&renewed, now), Duration::from_secs(10));
        let future = MicroTime(Timestamp::from_second(1_010).unwrap());
        assert_eq!(age_of(&future, now), Duration::ZERO);
    }
}
