//! The RBAC proof: the chart grants exactly the API calls the operator makes, no more and no
//! less, with no wildcards.
//!
//! The operator (in-process, as in the end-to-end tests) goes through every path that touches
//! the API: stamping, status writes, unbound and malformed reports, deletions, the finalizer,
//! events, erasure requests (which read a Secret), and leader election. Every (verb, API group,
//! resource, subresource) it used is collected from the test API server's request log and
//! compared with the ClusterRole and the leader-election Role that `helm template` renders.

mod e2e_support;
mod receiver;
mod tools;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use kube::{Api, Client, api::DeleteParams};
use retention_operator::{
    api::{
        Account, AccountPhase, Backup, Condition, ConditionStatus, DataRecord, Database, Domain,
        Mailbox, NotificationState, Website,
    },
    controller::InitialLists,
    leader::{LeaderSettings, run_as_leader},
};
use serde_json::Value;
use test_apiserver::TestApiServer;

use e2e_support::{
    AccountExt, DataProcessorExt, Harness, HostedExt, Mode, NAMESPACE, OPERATOR_AGENT, account,
    apply_signing_secret, at, bookkeeping_record, create, create_cluster, data_record, database,
    default_policy, domain, eventually, gone, mailbox, processor, wait_phase, website,
    website_backup,
};
use receiver::{Receiver, Reply, loopback_pki};

/// (verb, API group, resource, subresource): what one RBAC rule entry grants.
type Permission = (String, String, String, String);

/// The lease the chart's Role covers, in the namespace the test uses for it.
const LEASE_NAMESPACE: &str = "default";

fn permission(verb: &str, group: &str, resource: &str, subresource: &str) -> Permission {
    (
        verb.to_owned(),
        group.to_owned(),
        resource.to_owned(),
        subresource.to_owned(),
    )
}

/// What the operator asked of the server, by its User-Agent.
fn used(server: &TestApiServer) -> BTreeSet<Permission> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.user_agent == OPERATOR_AGENT)
        .map(|r| {
            assert!(
                !r.resource.is_empty(),
                "a non-resource request ({} {}) needs nonResourceURLs",
                r.verb,
                r.path
            );
            permission(&r.verb, &r.group, &r.resource, &r.subresource)
        })
        .collect()
}

/// Runs every path of the operator that talks to the API server.
async fn exercise_the_operator(harness: &mut Harness) {
    let client = harness.client.clone();
    let pki = loopback_pki();
    let receiver = Receiver::start(&pki, Reply::Status(200)).await;
    create_cluster(&client, &default_policy()).await;
    apply_signing_secret(&client, "pipedrive", b"rbac-test-secret").await;
    let processor = processor("pipedrive")
        .webhook(receiver.url().as_str())
        .ca_bundle(pki.ca_pem.as_slice());
    create_cluster(&client, &processor).await;
    create_cluster(
        &client,
        &account("acme").terminated_at("2026-11-01T00:00:00Z"),
    )
    .await;
    create(&client, &website("www", "acme")).await;
    create(&client, &mailbox("info", "acme")).await;
    create(&client, &data_record("crm", "acme").processor("pipedrive")).await;
    create(
        &client,
        &bookkeeping_record("invoices", "acme", "2026-12-31"),
    )
    .await;
    create(
        &client,
        &website_backup("www-1031", "acme", "www", at("2026-10-31T02:00:00Z")),
    )
    .await;
    create(&client, &database("shop-db", "acme")).await;
    create(&client, &domain("acme-example", "acme")).await;
    // Objects of every kind bound to no Account (each reported on its own status), whose
    // Account then appears (each marked bound again).
    create(&client, &database("orphan", "late")).await;
    create(&client, &domain("orphan", "late")).await;
    create(&client, &website("orphan", "late")).await;
    create(&client, &mailbox("orphan", "late")).await;
    create(&client, &data_record("orphan", "late")).await;
    create(
        &client,
        &website_backup("orphan", "late", "orphan", at("2026-11-01T02:00:00Z")),
    )
    .await;
    wait_orphans(&client, ConditionStatus::False).await;
    create_cluster(&client, &e2e_support::account("late")).await;
    wait_orphans(&client, ConditionStatus::True).await;
    wait_phase(&client, "acme", AccountPhase::GracePeriod).await;

    // A deletion that fails twice: the second identical event is a patch of the first's
    // series (kube's recorder).
    let server = harness.test_server().unwrap();
    server.update_faults(|f| {
        f.rules.push(
            test_apiserver::FaultRule::always(500)
                .verb("delete")
                .resource("mailboxes"),
        )
    });
    harness.move_clock_to("2026-11-15T00:00:00Z").await;
    harness.move_clock_to("2026-11-15T00:00:01Z").await;
    eventually("a repeated DeletionFailed event", || async {
        server
            .requests()
            .iter()
            .any(|r| r.user_agent == OPERATOR_AGENT && r.verb == "patch" && r.resource == "events")
            .then_some(())
    })
    .await;
    server.clear_faults();
    harness.move_clock_to("2026-11-15T00:00:02Z").await;
    eventually("the mailbox deleted", || async {
        gone::<Mailbox>(&client, "info").await.then_some(())
    })
    .await;

    // Advance notice, erasure, the erasure request, backup expiry, bookkeeping, finalizer.
    // The first receipt's creation is answered 409 as if an earlier pass had written it: the
    // operator reads the name back (not found, so it writes the receipt on the next pass).
    harness.move_clock_to("2026-11-30T12:00:00Z").await;
    server.update_faults(|f| {
        f.rules.push(
            test_apiserver::FaultRule::always(409)
                .verb("create")
                .resource("erasurereceipts"),
        )
    });
    harness.move_clock_to("2026-12-01T00:00:00Z").await;
    eventually("a receipt's name read back", || async {
        server
            .requests()
            .iter()
            .any(|r| r.verb == "get" && r.resource == "erasurereceipts")
            .then_some(())
    })
    .await;
    server.clear_faults();
    eventually("the erasure request acknowledged", || async {
        let status = e2e_support::get_account(&client, "acme").await?.status?;
        status
            .processors
            .iter()
            .any(|p| p.state == NotificationState::Acknowledged)
            .then_some(())
    })
    .await;
    Api::<Account>::all(client.clone())
        .delete("acme", &DeleteParams::default())
        .await
        .unwrap();
    harness.move_clock_to("2034-01-01T00:00:00Z").await;
    eventually("the Account released", || async {
        e2e_support::get_account(&client, "acme")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    assert!(gone::<DataRecord>(&client, "invoices").await);
    // The receipts go ten years after their erasures.
    harness.move_clock_to("2045-01-01T00:00:00Z").await;
    eventually("the receipts deleted at their expiry", || async {
        let left = Api::<retention_operator::api::ErasureReceipt>::all(client.clone())
            .list(&Default::default())
            .await
            .ok()?;
        left.items.is_empty().then_some(())
    })
    .await;
}

/// The `Bound` condition of the hosted object named `orphan`.
async fn bound_condition<K>(client: &Client) -> Option<ConditionStatus>
where
    K: e2e_support::StaticObject<k8s_openapi::NamespaceResourceScope> + HasConditions,
{
    let object = e2e_support::get::<K>(client, "orphan").await?;
    object
        .conditions()
        .iter()
        .find(|c| c.type_ == "Bound")
        .map(|c| c.status)
}

async fn backup_bound_condition(client: &Client) -> Option<ConditionStatus> {
    let backup = e2e_support::get::<Backup>(client, "orphan").await?;
    backup
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Bound")
        .map(|c| c.status)
}

/// The conditions on a hosted kind's status.
trait HasConditions {
    fn conditions(&self) -> Vec<Condition>;
}

macro_rules! has_conditions {
    ($($kind:ty),*) => {$(
        impl HasConditions for $kind {
            fn conditions(&self) -> Vec<Condition> {
                self.status.clone().map(|s| s.conditions).unwrap_or_default()
            }
        }
    )*};
}

has_conditions!(Website, Database, Domain, Mailbox, DataRecord);

/// Waits until the `Bound` condition of every kind's object named `orphan` is `status`.
async fn wait_orphans(client: &Client, status: ConditionStatus) {
    eventually(&format!("every orphan Bound={status:?}"), || async {
        let conditions = [
            bound_condition::<Website>(client).await,
            bound_condition::<Database>(client).await,
            bound_condition::<Domain>(client).await,
            bound_condition::<Mailbox>(client).await,
            bound_condition::<DataRecord>(client).await,
            backup_bound_condition(client).await,
        ];
        conditions.iter().all(|c| *c == Some(status)).then_some(())
    })
    .await;
}

/// Takes and gives up the leader-election Lease as a replica does.
async fn elect_a_leader(server: &TestApiServer) {
    let mut config = kube::Config::new(server.url().parse().unwrap());
    config.headers.push((
        "user-agent".parse().unwrap(),
        OPERATOR_AGENT.parse().unwrap(),
    ));
    let client = Client::try_from(config).unwrap();
    let settings = LeaderSettings {
        lease_name: "retention-operator".into(),
        namespace: LEASE_NAMESPACE.into(),
        identity: "rbac-test".into(),
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(500),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let led = Arc::new(tokio::sync::Notify::new());
    let leading = led.clone();
    let replica = tokio::spawn(async move {
        run_as_leader(client, &settings, stopped, move |stop, _fence| async move {
            leading.notify_one();
            stop.await;
        })
        .await
    });
    tokio::time::timeout(e2e_support::deadline(), led.notified())
        .await
        .expect("the replica became leader");
    let _ = stop.send(true);
    let _ = tokio::time::timeout(e2e_support::deadline(), replica).await;
}

/// The chart rendered with its default values, as parsed documents.
fn rendered_chart() -> Vec<Value> {
    let chart = tools::chart_dir().display().to_string();
    let text = tools::run_helm(&[
        "template",
        "retention-operator",
        &chart,
        "--namespace",
        LEASE_NAMESPACE,
        "--set",
        &format!("processorSecrets.namespaces={{{NAMESPACE}}}"),
    ]);
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// The names of the rendered roles of `kind` that the chart binds to the operator's
/// ServiceAccount (the chart's roles for people and the account system are bound to others).
fn operator_roles(documents: &[Value], kind: &str) -> BTreeSet<String> {
    let binding = format!("{kind}Binding");
    documents
        .iter()
        .filter(|d| d["kind"] == binding.as_str() && d["roleRef"]["kind"] == kind)
        .filter(|d| {
            d["subjects"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|subject| {
                    subject["kind"] == "ServiceAccount" && subject["name"] == "retention-operator"
                })
        })
        .filter_map(|d| d["roleRef"]["name"].as_str().map(str::to_owned))
        .collect()
}

/// Every permission the rules of the rendered roles of `kind` bound to the operator grant;
/// panics on a wildcard.
fn granted(documents: &[Value], kind: &str) -> BTreeSet<Permission> {
    let mut permissions = BTreeSet::new();
    let bound = operator_roles(documents, kind);
    let is_bound = |d: &&Value| {
        d["metadata"]["name"]
            .as_str()
            .is_some_and(|n| bound.contains(n))
    };
    for document in documents
        .iter()
        .filter(|d| d["kind"] == kind)
        .filter(is_bound)
    {
        for rule in document["rules"].as_array().into_iter().flatten() {
            let strings = |field: &str| -> Vec<String> {
                rule[field]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|v| v.as_str().unwrap_or_default().to_owned())
                    .collect()
            };
            assert!(
                rule.get("nonResourceURLs").is_none(),
                "{kind} grants nonResourceURLs"
            );
            for field in ["verbs", "apiGroups", "resources", "resourceNames"] {
                assert!(
                    !strings(field).iter().any(|s| s.contains('*')),
                    "{kind} has a wildcard in {field}: {rule}"
                );
            }
            for verb in strings("verbs") {
                for group in strings("apiGroups") {
                    for resource in strings("resources") {
                        let (resource, subresource) =
                            resource.split_once('/').unwrap_or((&resource, ""));
                        permissions.insert(permission(&verb, &group, resource, subresource));
                    }
                }
            }
        }
    }
    permissions
}

fn difference(left: &BTreeSet<Permission>, right: &BTreeSet<Permission>) -> Vec<String> {
    left.difference(right)
        .map(|(verb, group, resource, subresource)| {
            let group = if group.is_empty() { "core" } else { group };
            if subresource.is_empty() {
                format!("{verb} {group} {resource}")
            } else {
                format!("{verb} {group} {resource}/{subresource}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chart_grants_exactly_what_the_operator_uses() {
    e2e_support::skip_on_real_cluster!("reads the test API server's request log");
    // Paged lists: a streaming list needs only watch, the paged fallback (an API server
    // without streaming lists) list as well, which the chart must grant.
    let mode = Mode {
        initial_lists: InitialLists::Paged,
        ..Mode::default()
    };
    let mut harness = Harness::start_at_in_mode(at("2026-11-02T00:00:00Z"), mode).await;
    exercise_the_operator(&mut harness).await;
    let server = harness.test_server().unwrap();
    elect_a_leader(server).await;
    let used = used(server);
    harness.stop().await;

    // Leases and Secrets are granted in their namespaces only, by Roles.
    let namespaced = |p: &Permission| {
        (p.1 == "coordination.k8s.io" && p.2 == "leases") || (p.1.is_empty() && p.2 == "secrets")
    };
    let used_cluster: BTreeSet<Permission> =
        used.iter().filter(|p| !namespaced(p)).cloned().collect();
    let used_lease: BTreeSet<Permission> = used.iter().filter(|p| namespaced(p)).cloned().collect();
    assert!(
        used_lease.iter().any(|p| p.2 == "leases"),
        "leader election was exercised"
    );

    let chart = rendered_chart();
    let cluster_role = granted(&chart, "ClusterRole");
    let role = granted(&chart, "Role");
    let missing = difference(&used_cluster, &cluster_role);
    let extra = difference(&cluster_role, &used_cluster);
    assert!(
        missing.is_empty() && extra.is_empty(),
        "ClusterRole: missing {missing:?}, granted but unused {extra:?}"
    );
    let missing = difference(&used_lease, &role);
    let extra = difference(&role, &used_lease);
    assert!(
        missing.is_empty() && extra.is_empty(),
        "Roles: missing {missing:?}, granted but unused {extra:?}"
    );
    // Each Role is in the namespace of what it grants: the Lease in the release namespace,
    // the processors' Secrets where they live.
    let namespaces: BTreeMap<String, String> = chart
        .iter()
        .filter(|d| d["kind"] == "Role")
        .map(|d| {
            let resource = d["rules"][0]["resources"][0].as_str().unwrap_or_default();
            let namespace = d["metadata"]["namespace"].as_str().unwrap_or_default();
            (resource.to_owned(), namespace.to_owned())
        })
        .collect();
    assert_eq!(
        namespaces,
        BTreeMap::from([
            ("leases".to_owned(), LEASE_NAMESPACE.to_owned()),
            ("secrets".to_owned(), NAMESPACE.to_owned()),
        ])
    );
}
