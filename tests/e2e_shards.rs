//! Horizontal sharding end to end, on the test server and on the real control plane: four
//! replicas share four shards (`--shards 4`). 200 accounts terminated at once are erased, each
//! object exactly once and by the replica holding its account's shard; a replica killed
//! between two erasure times (its Lease neither released nor renewed) hands its shard over,
//! and the replica that takes it erases the rest. Nothing is deleted twice, nothing is left.

mod e2e_support;

use std::{collections::BTreeMap, sync::Arc, time::Instant};

use futures::{StreamExt, stream};
use kube::{Api, Client, api::ListParams};
use retention_operator::{
    api::{AccountPhase, DELETE_AT_ANNOTATION, Mailbox, Website},
    clock::ManualClock,
    shard::Shard,
};

use e2e_support::{
    AccountExt, Cluster, NAMESPACE, Replica, account, at, create, create_cluster, default_policy,
    delete_leases, eventually, mailbox, phase, shard_holders, website,
};

const SHARDS: u32 = 4;
const ACCOUNTS: usize = 200;
/// The base name of the shards' Leases, this test's own.
const LEASE: &str = "shards-e2e";
const REPLICAS: [&str; 4] = [
    "shard-replica-a",
    "shard-replica-b",
    "shard-replica-c",
    "shard-replica-d",
];
const TERMINATED: &str = "2026-11-01T00:00:00Z";
/// Mailboxes fall due 14 days after the termination, websites 30 days after.
const MAILBOXES_DUE: &str = "2026-11-15T00:00:01Z";
const WEBSITES_DUE: &str = "2026-12-01T00:00:01Z";

fn name(i: usize) -> String {
    format!("sharded-{i:03}")
}

/// 200 terminated accounts, each with a website and a mailbox, created 16 at a time.
async fn seed(client: &Client) {
    create_cluster(client, &default_policy()).await;
    stream::iter(0..ACCOUNTS)
        .for_each_concurrent(16, |i| async move {
            create_cluster(client, &account(&name(i)).terminated_at(TERMINATED)).await;
            create(client, &website(&name(i), &name(i))).await;
            create(client, &mailbox(&name(i), &name(i))).await;
        })
        .await;
}

/// How many objects of kind `K` carry a schedule, and how many there are.
async fn stamped<K>(client: &Client) -> (usize, usize)
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let objects = Api::<K>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let stamped = objects
        .iter()
        .filter(|o| {
            o.meta()
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(DELETE_AT_ANNOTATION))
        })
        .count();
    (stamped, objects.len())
}

/// Waits until the four shards are held by four different replicas; their holders.
async fn balanced(client: &Client) -> Vec<String> {
    eventually("every replica to hold one shard", || async {
        let holders: Vec<String> = shard_holders(client, LEASE, SHARDS)
            .await
            .into_iter()
            .collect::<Option<_>>()?;
        let mut distinct = holders.clone();
        distinct.sort();
        distinct.dedup();
        (distinct.len() == REPLICAS.len()).then_some(holders)
    })
    .await
}

/// The replica's name for a request's User-Agent, if it is one of the replicas.
fn replica_of(agent: &str) -> Option<&'static str> {
    REPLICAS.into_iter().find(|r| *r == agent)
}

#[tokio::test(flavor = "multi_thread")]
async fn four_shards_erase_each_object_once_by_its_own_shard_and_hand_a_dead_replicas_shard_over() {
    let cluster = Cluster::connect().await;
    let client = cluster.client.clone();
    delete_leases(&client, LEASE).await;
    let Some(mut log) = e2e_support::request_log_or_skip!(cluster) else {
        return;
    };
    seed(&client).await;
    let mut replicas: BTreeMap<&str, Replica> = REPLICAS
        .into_iter()
        .map(|identity| {
            let clock = Arc::new(ManualClock::new(at("2026-11-02T00:00:00Z")));
            let replica = Replica::start_sharded(
                &cluster.client_with_agent(identity),
                identity,
                clock,
                LEASE,
                SHARDS,
            );
            (identity, replica)
        })
        .collect();
    let before = balanced(&client).await;
    eventually("every object stamped by its shard", || async {
        let (websites, of_websites) = stamped::<Website>(&client).await;
        let (mailboxes, of_mailboxes) = stamped::<Mailbox>(&client).await;
        (websites == ACCOUNTS
            && of_websites == ACCOUNTS
            && mailboxes == ACCOUNTS
            && of_mailboxes == ACCOUNTS)
            .then_some(())
    })
    .await;

    // The mailboxes fall due: each shard erases its accounts' mailboxes.
    for replica in replicas.values() {
        replica.clock.set(at(MAILBOXES_DUE));
    }
    eventually("every mailbox erased", || async {
        (stamped::<Mailbox>(&client).await.1 == 0).then_some(())
    })
    .await;

    // The holder of the first shard dies: its Lease is neither renewed nor released.
    let victim = before[0].clone();
    replicas
        .remove(victim.as_str())
        .expect("the holder is one of the replicas")
        .kill()
        .await;
    let killed = Instant::now();
    let after = eventually(
        "another replica to take the dead one's shard over",
        || async {
            let holders = shard_holders(&client, LEASE, SHARDS).await;
            let taken = holders[0].as_ref().is_some_and(|h| *h != victim);
            taken.then(|| {
                holders
                    .into_iter()
                    .map(Option::unwrap_or_default)
                    .collect::<Vec<_>>()
            })
        },
    )
    .await;
    eprintln!(
        "shard 0 of {SHARDS} handed over from {victim} to {} {:.1} s after the kill",
        after[0],
        killed.elapsed().as_secs_f64()
    );

    // The websites fall due: the shard handed over is erased by its new holder.
    for replica in replicas.values() {
        replica.clock.set(at(WEBSITES_DUE));
    }
    eventually("every website erased", || async {
        (stamped::<Website>(&client).await.1 == 0).then_some(())
    })
    .await;
    for i in 0..ACCOUNTS {
        eventually("every account Erased", || async {
            (phase(&client, &name(i)).await == Some(AccountPhase::Erased)).then_some(())
        })
        .await;
    }

    // Each object: exactly one DELETE answered 2xx, sent by the replica that held its
    // account's shard at the time (the mailboxes before the kill, the websites after).
    let requests = log.requests().await;
    let mut deleted: BTreeMap<(String, String), Vec<&'static str>> = BTreeMap::new();
    for r in &requests {
        let Some(replica) = replica_of(&r.user_agent) else {
            continue;
        };
        if r.verb == "delete"
            && r.code < 300
            && (r.resource == "websites" || r.resource == "mailboxes")
        {
            deleted
                .entry((r.resource.clone(), r.name.clone()))
                .or_default()
                .push(replica);
        }
    }
    assert_eq!(deleted.len(), 2 * ACCOUNTS, "objects deleted: {deleted:?}");
    for ((resource, object), by) in &deleted {
        assert_eq!(
            by.len(),
            1,
            "{resource}/{object} deleted {} times: {by:?}",
            by.len()
        );
        let shard = Shard::of(object, SHARDS).index as usize;
        let holders = if resource == "mailboxes" {
            &before
        } else {
            &after
        };
        assert_eq!(
            by[0], holders[shard],
            "{resource}/{object} (shard {shard}) deleted by another shard's replica"
        );
    }
    // Every replica did some of the work: the shards were shared.
    for replica in REPLICAS {
        assert!(
            deleted.values().any(|by| by[0] == replica),
            "{replica} deleted nothing"
        );
    }
    drop(log);
    for (_, replica) in replicas {
        replica.stop().await;
    }
}

/// A rolling update from one shard count to another: the replicas of the new count, started
/// while those of the old count still run, hold no shard (their Leases would not overlap the
/// old ones, so both could own one account) until the old replicas are gone.
#[tokio::test(flavor = "multi_thread")]
async fn replicas_of_a_new_shard_count_wait_until_the_old_ones_are_gone() {
    const LEASE: &str = "shards-resize";
    let cluster = Cluster::connect().await;
    let client = cluster.client.clone();
    delete_leases(&client, LEASE).await;
    create_cluster(&client, &default_policy()).await;
    let start = |identity: &str, shards| {
        let clock = Arc::new(ManualClock::new(at("2026-11-02T00:00:00Z")));
        Replica::start_sharded(
            &cluster.client_with_agent(identity),
            identity,
            clock,
            LEASE,
            shards,
        )
    };
    let old = [start("resize-old-a", 2), start("resize-old-b", 2)];
    eventually("the old count's shards held", || async {
        shard_holders(&client, LEASE, 2)
            .await
            .into_iter()
            .all(|h| h.is_some())
            .then_some(())
    })
    .await;
    let new = start("resize-new", 4);
    // Once the new replica has renewed its membership twice, it has counted the members at
    // least once, and from then on it takes nothing while an older count runs.
    let memberships =
        Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client.clone(), "default");
    let membership = format!("{LEASE}-member-resize-new");
    let renewed = |lease: Option<k8s_openapi::api::coordination::v1::Lease>| {
        lease.and_then(|l| l.spec?.renew_time).map(|t| t.0)
    };
    let first = eventually("the new replica's membership", || async {
        renewed(memberships.get_opt(&membership).await.ok()?)
    })
    .await;
    eventually("a second renewal", || async {
        renewed(memberships.get_opt(&membership).await.ok()?).filter(|t| *t != first)
    })
    .await;
    assert_eq!(
        shard_holders(&client, LEASE, 4).await,
        [None, None, None, None],
        "the new count took a shard while the old count ran"
    );
    assert_eq!(
        e2e_support::metric(&new.metrics, "retention_operator_leader "),
        0
    );

    // The old replicas stop (they release their Leases and memberships): the new one takes
    // every shard of its count.
    for replica in old {
        replica.stop().await;
    }
    eventually("the new count's shards held", || async {
        let holders = shard_holders(&client, LEASE, 4).await;
        holders
            .iter()
            .all(|h| h.as_deref() == Some("resize-new"))
            .then_some(())
    })
    .await;
    new.stop().await;
}
