//! End to end: the caches fill through streaming lists where the API server offers them (a
//! watch per kind that sends every object first, then a bookmark), and page by page where it
//! does not; either way the operator acts on what it finds.

mod e2e_support;

use retention_operator::{
    api::AccountPhase,
    controller::{InitialLists, lists},
};
use test_apiserver::{Config, RequestRecord, TestApiServer};

use e2e_support::{
    AccountExt, Harness, Mode, OPERATOR_AGENT, account, create, create_cluster, default_policy,
    eventually, gone, phase, request_log_or_skip, website,
};

/// The kinds every replica watches.
const WATCHED: [&str; 10] = [
    "accounts",
    "websites",
    "databases",
    "mailboxes",
    "domains",
    "datarecords",
    "backups",
    "retentionpolicies",
    "dataprocessors",
    "erasurereceipts",
];

fn client_of(server: &TestApiServer) -> kube::Client {
    kube::Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap()
}

#[tokio::test]
async fn the_probe_finds_streaming_lists_only_where_the_server_offers_them() {
    let offering = TestApiServer::start(Config::default().crds(e2e_support::PROJECT_CRDS))
        .await
        .unwrap();
    assert!(lists::streaming_lists_offered(&client_of(&offering)).await);
    let refusing = TestApiServer::start(
        Config::default()
            .crds(e2e_support::PROJECT_CRDS)
            .without_streaming_lists(),
    )
    .await
    .unwrap();
    assert!(!lists::streaming_lists_offered(&client_of(&refusing)).await);
    let refused = refusing
        .requests()
        .into_iter()
        .filter(|r| r.verb == "watch")
        .map(|r| r.code)
        .collect::<Vec<_>>();
    assert_eq!(refused, [422], "the probe is one watch, refused");
}

/// The operator's LISTs and watches of the kinds it caches, by resource.
fn lists_and_watches(requests: &[RequestRecord]) -> (Vec<String>, Vec<String>) {
    let of = |verb: &str| {
        let mut resources: Vec<String> = requests
            .iter()
            .filter(|r| r.user_agent == OPERATOR_AGENT && r.verb == verb)
            .filter(|r| WATCHED.contains(&r.resource.as_str()))
            .map(|r| r.resource.clone())
            .collect();
        resources.sort();
        resources.dedup();
        resources
    };
    (of("list"), of("watch"))
}

/// Every cached kind, sorted as [`lists_and_watches`] gives them.
fn every_watched_kind() -> Vec<String> {
    let mut kinds: Vec<String> = WATCHED.iter().map(|r| (*r).to_owned()).collect();
    kinds.sort();
    kinds
}

/// Runs the operator with `lists` while a terminated account's website, past its grace
/// period, is erased (the caches filled); the harness and every request the server saw, or
/// `None` on a real cluster without an audit log.
async fn erase_with(lists: InitialLists) -> Option<(Harness, Vec<RequestRecord>)> {
    let harness = Harness::start_mode(Mode {
        initial_lists: lists,
        ..Mode::default()
    })
    .await;
    let mut log = request_log_or_skip!(harness)?;
    let client = &harness.client;
    create_cluster(client, &default_policy()).await;
    // The website first: an account created terminated with nothing bound is Erased at once,
    // and a website created after that is erased on a later pass, which `Erased` alone would
    // not wait for.
    create(client, &website("www", "acme")).await;
    create_cluster(
        client,
        &account("acme").terminated_at("2026-10-01T00:00:00Z"),
    )
    .await;
    eventually("the website erased and the account Erased", || async {
        let erased = phase(client, "acme").await == Some(AccountPhase::Erased);
        (erased && gone::<retention_operator::api::Website>(client, "www").await).then_some(())
    })
    .await;
    let requests = log.requests().await;
    drop(log);
    Some((harness, requests))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_caches_fill_through_streaming_lists_without_a_list() {
    let Some((harness, requests)) = erase_with(InitialLists::Auto).await else {
        return;
    };
    let (listed, watched) = lists_and_watches(&requests);
    assert!(
        listed.is_empty(),
        "LISTs of cached kinds although the server offers streaming lists: {listed:?}"
    );
    assert_eq!(
        watched,
        every_watched_kind(),
        "a watch of every cached kind"
    );
    // A real API server's audit log shows the query: each cache's first watch asked for the
    // objects first.
    if harness.is_real_cluster() {
        let streaming = requests
            .iter()
            .filter(|r| r.user_agent == OPERATOR_AGENT && r.verb == "watch")
            .filter(|r| r.path.contains("sendInitialEvents=true"))
            .count();
        assert!(streaming >= WATCHED.len(), "{streaming} streaming lists");
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn paged_lists_still_fill_the_caches() {
    let Some((harness, requests)) = erase_with(InitialLists::Paged).await else {
        return;
    };
    let (listed, _) = lists_and_watches(&requests);
    assert_eq!(listed, every_watched_kind(), "a LIST of every cached kind");
    harness.stop().await;
}
