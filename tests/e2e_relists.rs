//! End to end: what the operator sees only through a watch that lists again. A test of its
//! own binary, because it runs 501 Accounts: beside the scenarios' tests it would take the
//! CPU their deadlines count on.

mod e2e_support;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use retention_operator::{
    api::{AccountPhase, Website},
    controller::InitialLists,
};
use serde_json::json;
use test_apiserver::FaultRule;

use e2e_support::{
    Harness, Mode, account, at, create, create_cluster, default_policy, eventually, gone,
    operator_requests, patch_account, skip_on_real_cluster, wait_phase, website,
};

const ACME: &str = "acme";
/// Terminated long enough ago that the website (30 days' grace) is due at once.
const TERMINATED: &str = "2026-11-01T00:00:00Z";
/// Objects per page of kube's lists (`watcher::Config::page_size`'s default).
const LIST_PAGE: usize = 500;

/// A termination made while the operator's watch of Accounts is down reaches it only through
/// the list that follows (the watch cannot resume: 410 Gone). kube's watcher hands out a
/// list's objects before its cache swaps them in, so the passes they start read the Account
/// as it was before; without a pass after the swap, the website due under the termination
/// would stay until something else touched the account. The list must come in more than one
/// page (kube lists 500 objects a page) for a pass to start before the swap: a host with
/// thousands of accounts. A streaming list hands its objects out the same way, before the
/// bookmark that ends them.
#[tokio::test(flavor = "multi_thread")]
async fn a_termination_seen_only_in_a_paged_relist_is_acted_on() {
    termination_seen_only_in_a_relist(InitialLists::Paged).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_termination_seen_only_in_a_streaming_relist_is_acted_on() {
    termination_seen_only_in_a_relist(InitialLists::Streaming).await;
}

async fn termination_seen_only_in_a_relist(lists: InitialLists) {
    skip_on_real_cluster!("ends watches and compacts the event history of the test API server");
    let mode = Mode {
        initial_lists: lists,
        ..Mode::default()
    };
    let harness = Harness::start_at_in_mode(at("2026-12-02T00:00:00Z"), mode).await;
    let client = harness.client.clone();
    create_cluster(&client, &default_policy()).await;
    create_cluster(&client, &account(ACME)).await;
    create(&client, &website("www", ACME)).await;
    // Listed after acme, on a second page.
    stream::iter(0..LIST_PAGE)
        .for_each_concurrent(8, |n| {
            let client = client.clone();
            async move {
                create_cluster(&client, &account(&format!("other-{n:03}"))).await;
            }
        })
        .await;
    wait_phase(&client, ACME, AccountPhase::Active).await;
    wait_phase(
        &client,
        &format!("other-{:03}", LIST_PAGE - 1),
        AccountPhase::Active,
    )
    .await;
    harness.settle().await;

    // The watch of Accounts ends and cannot start again while the account is terminated.
    harness.server.update_faults(|f| {
        f.rules
            .push(FaultRule::always(500).verb("watch").resource("accounts"))
    });
    harness.server.end_watches();
    eventually("a refused watch of Accounts", || async {
        operator_requests(&harness.server)
            .iter()
            .any(|r| r.verb == "watch" && r.resource == "accounts" && r.code == 500)
            .then_some(())
    })
    .await;
    patch_account(
        &client,
        ACME,
        json!({"spec": {"state": "Terminated", "terminatedAt": TERMINATED}}),
    )
    .await;
    // Later writes, and a history that keeps only the last: the watch cannot resume from
    // before the termination and lists the Accounts again.
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for n in 0..3 {
        let map: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("later-{n}")}})).unwrap();
        configmaps.create(&Default::default(), &map).await.unwrap();
    }
    harness.server.set_event_window(1);
    // Each page of the list takes a while, as it does from a real API server.
    harness.server.set_faults(test_apiserver::Faults {
        latency: std::time::Duration::from_millis(200),
        ..Default::default()
    });
    // A streaming list is a watch like the one it follows: only a paged one shows apart.
    if lists == InitialLists::Paged {
        eventually("the Accounts listed again", || async {
            operator_requests(&harness.server)
                .iter()
                .filter(|r| r.verb == "list" && r.resource == "accounts" && r.code == 200)
                .nth(1)
                .map(|_| ())
        })
        .await;
    }
    eventually("the website, due under the termination, to go", || async {
        gone::<Website>(&client, "www").await.then_some(())
    })
    .await;
    harness.stop().await;
}
