//! Fault injection, driven through kube's `Client`: failed requests by verb and resource,
//! Retry-After, fractions, latency, cut watch streams, a shrunk event window, and the request
//! log.
//!
//! kube's client retries 429, 503 and 504 by default; these tests turn that off
//! (`default_retry = false`) so they see each injected answer.

mod common;

use std::time::{Duration, Instant};

use common::{Gadget, GadgetSpec, Widget, WidgetSpec};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
    client::Body,
};
use serde_json::{Value, json};
use test_apiserver::FaultRule;

/// How long any single expected event may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(10);

const WIDGETS: &str = "/apis/test.example.com/v1/namespaces/default/widgets";

/// A server with the fixture CRDs and a client that does not retry.
fn widget(name: &str) -> Widget {
    Widget::new(
        name,
        WidgetSpec {
            owner: "fault-tests".into(),
            size: 1,
        },
    )
}

async fn create(api: &Api<Widget>, name: &str) -> Widget {
    api.create(&PostParams::default(), &widget(name))
        .await
        .expect("create succeeds")
}

/// The status code of an API error, or 200 for success.
fn code<T>(result: &kube::Result<T>) -> u16 {
    match result {
        Ok(_) => 200,
        Err(kube::Error::Api(status)) => status.code,
        Err(other) => panic!("not an API error: {other}"),
    }
}

type Events = std::pin::Pin<Box<dyn Stream<Item = kube::Result<WatchEvent<Widget>>> + Send>>;

/// Every event until the stream ends, failing if it does not end before the deadline.
async fn drain(events: &mut Events) -> Vec<WatchEvent<Widget>> {
    let mut all = Vec::new();
    tokio::time::timeout(DEADLINE, async {
        while let Some(event) = events.next().await {
            all.push(event.expect("watch event decodes"));
        }
    })
    .await
    .expect("the watch ends before the deadline");
    all
}

#[tokio::test]
async fn a_rule_fails_requests_with_its_status_code() {
    common::skip_on_real_server!("injects faults into the test server");
    let (server, client) = common::start_without_retries().await;
    let api: Api<Widget> = Api::namespaced(client, "default");
    assert_eq!(code(&api.list(&ListParams::default()).await), 200);
    for (injected, reason) in [
        (500, "InternalError"),
        (503, "ServiceUnavailable"),
        (429, "TooManyRequests"),
    ] {
        server.update_faults(|f| f.rules = vec![FaultRule::always(injected)]);
        match api.list(&ListParams::default()).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, injected);
                assert_eq!(status.reason, reason, "{status:?}");
            }
            other => panic!("expected a {injected} Status, got {other:?}"),
        }
    }
    server.clear_faults();
    assert_eq!(code(&api.list(&ListParams::default()).await), 200);
}

#[tokio::test]
async fn retry_after_is_sent_with_429_and_503() {
    common::skip_on_real_server!("injects faults into the test server");
    let (server, client) = common::start_without_retries().await;
    let get = || {
        axum::http::Request::get(WIDGETS)
            .body(Body::from(Vec::new()))
            .expect("request builds")
    };
    for injected in [429, 503] {
        server.update_faults(|f| f.rules = vec![FaultRule::always(injected).retry_after(7)]);
        let response = client.send(get()).await.expect("an HTTP answer");
        assert_eq!(response.status().as_u16(), injected);
        assert_eq!(
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("7"),
            "Retry-After on {injected}"
        );
        let body = axum::body::to_bytes(axum::body::Body::new(response.into_body()), usize::MAX)
            .await
            .expect("body reads");
        let status: Value = serde_json::from_slice(&body).expect("the body is JSON");
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["code"], injected);
        assert_eq!(status["details"]["retryAfterSeconds"], 7, "{status}");
    }
    // Without retry_after, no header.
    server.update_faults(|f| f.rules = vec![FaultRule::always(503)]);
    let response = client.send(get()).await.expect("an HTTP answer");
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().get("retry-after").is_none());
}

#[tokio::test]
async fn a_fraction_fails_about_that_share_of_requests() {
    common::skip_on_real_server!("injects faults into the test server");
    let (server, client) = common::start_without_retries().await;
    let api: Api<Widget> = Api::namespaced(client, "default");
    server.update_faults(|f| {
        f.rules = vec![
            FaultRule::always(500)
                .verb("list")
                .resource("widgets")
                .fraction(0.5),
        ];
    });
    let mut failed = 0;
    for _ in 0..200 {
        match code(&api.list(&ListParams::default()).await) {
            200 => {}
            500 => failed += 1,
            other => panic!("unexpected code {other}"),
        }
    }
    assert!(
        (40..=160).contains(&failed),
        "{failed} of 200 requests failed with fraction 0.5"
    );
}

#[tokio::test]
async fn rules_leave_other_verbs_and_resources_alone() {
    common::skip_on_real_server!("injects faults into the test server");
    let (server, client) = common::start_without_retries().await;
    let widgets: Api<Widget> = Api::namespaced(client.clone(), "default");
    let gadgets: Api<Gadget> = Api::all(client.clone());
    let config_maps: Api<ConfigMap> = Api::namespaced(client, "default");
    create(&widgets, "before").await;

    // Verb and resource: only listing widgets fails.
    server
        .update_faults(|f| f.rules = vec![FaultRule::always(500).verb("list").resource("widgets")]);
    let lp = ListParams::default();
    assert_eq!(code(&widgets.list(&lp).await), 500);
    assert_eq!(code(&widgets.get("before").await), 200);
    assert_eq!(
        code(
            &widgets
                .create(&PostParams::default(), &widget("during"))
                .await
        ),
        200
    );
    assert_eq!(
        code(
            &widgets
                .patch(
                    "during",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"size": 2}}))
                )
                .await
        ),
        200
    );
    assert_eq!(code(&gadgets.list(&lp).await), 200);
    assert_eq!(code(&config_maps.list(&lp).await), 200);

    // Resource only: every verb on gadgets fails, widgets are untouched.
    server.update_faults(|f| f.rules = vec![FaultRule::always(503).resource("gadgets")]);
    assert_eq!(code(&gadgets.list(&lp).await), 503);
    assert_eq!(code(&gadgets.get("any").await), 503);
    let gadget = Gadget::new("g", GadgetSpec { level: 1 });
    assert_eq!(
        code(&gadgets.create(&PostParams::default(), &gadget).await),
        503
    );
    assert_eq!(code(&widgets.list(&lp).await), 200);

    // Verb only: every resource's creates fail, reads do not.
    server.update_faults(|f| f.rules = vec![FaultRule::always(429).verb("create")]);
    assert_eq!(
        code(
            &widgets
                .create(&PostParams::default(), &widget("after"))
                .await
        ),
        429
    );
    let config_map = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some("cm".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(
        code(
            &config_maps
                .create(&PostParams::default(), &config_map)
                .await
        ),
        429
    );
    assert_eq!(code(&widgets.list(&lp).await), 200);
    assert_eq!(code(&config_maps.list(&lp).await), 200);
}

#[tokio::test]
async fn a_subresource_rule_fails_status_writes_and_leaves_the_object_alone() {
    common::skip_on_real_server!("injects faults into the test server");
    let (server, client) = common::start_without_retries().await;
    let widgets: Api<Widget> = Api::namespaced(client, "default");
    create(&widgets, "w").await;
    server.update_faults(|f| {
        f.rules = vec![
            FaultRule::always(500)
                .verb("patch")
                .resource("widgets")
                .subresource("status"),
        ]
    });
    let status = Patch::Merge(json!({"status": {"phase": "Ready"}}));
    let spec = Patch::Merge(json!({"spec": {"size": 3}}));
    let pp = PatchParams::default();
    assert_eq!(code(&widgets.patch_status("w", &pp, &status).await), 500);
    assert_eq!(code(&widgets.patch("w", &pp, &spec).await), 200);
    assert_eq!(code(&widgets.get_status("w").await), 200);
    server.clear_faults();
    assert_eq!(code(&widgets.patch_status("w", &pp, &status).await), 200);
}

#[tokio::test]
async fn a_client_rule_fails_that_clients_requests_only() {
    common::skip_on_real_server!("injects faults into the test server");
    let (server, client) = common::start_without_retries().await;
    let mut config = kube::Config::new(server.url().parse().expect("the server URL parses"));
    config.default_retry = false;
    config.headers.push((
        "user-agent".parse().expect("a header name"),
        "operator".parse().expect("a header value"),
    ));
    let operator: Api<Widget> =
        Api::namespaced(kube::Client::try_from(config).expect("a client"), "default");
    let others: Api<Widget> = Api::namespaced(client, "default");
    create(&others, "a").await;
    create(&others, "b").await;
    server.update_faults(|f| {
        f.rules = vec![
            FaultRule::always(500)
                .verb("delete")
                .from_client("operator"),
        ]
    });
    let dp = kube::api::DeleteParams::default();
    assert_eq!(code(&operator.delete("a", &dp).await), 500);
    assert_eq!(code(&operator.get("a").await), 200);
    assert_eq!(code(&others.delete("b", &dp).await), 200);
}
#[tokio::test]
async fn latency_is_added_to_requests() {
    common::skip_on_real_server!("injects faults into the test server");
    let (server, client) = common::start_without_retries().await;
    let api: Api<Widget> = Api::namespaced(client, "default");
    create(&api, "a").await;
    let latency = Duration::from_millis(300);
    server.update_faults(|f| f.latency = latency);
    for _ in 0..3 {
        let started = Instant::now();
        api.get("a").await.expect("get succeeds");
        assert!(
            started.elapsed() >= latency,
            "a request took {:?}",
            started.elapsed()
        );
    }
    let started = Instant::now();
    create(&api, "b").await;
    assert!(started.elapsed() >= latency, "writes are delayed too");
}

#[tokio::test]
async fn a_watch_is_cut_after_n_events() {
    common::skip_on_real_server!("injects faults into the test server");
    let (server, client) = common::start_without_retries().await;
    let api: Api<Widget> = Api::namespaced(client, "default");
    for name in ["a", "b", "c", "d", "e"] {
        create(&api, name).await;
    }
    server.update_faults(|f| f.cut_watch_after_events = Some(3));
    let params = WatchParams::default().disable_bookmarks();
    // The five current objects are five initial ADDED events; the stream ends after three.
    let mut events: Events = api.watch(&params, "0").await.expect("watch starts").boxed();
    let all = drain(&mut events).await;
    assert_eq!(all.len(), 3, "{all:?}");

    // Changes count too: a watch from now ends after three of five writes.
    let since = api
        .list(&ListParams::default())
        .await
        .expect("list succeeds")
        .metadata
        .resource_version
        .expect("list has a resourceVersion");
    let mut events: Events = api
        .watch(&params, &since)
        .await
        .expect("watch starts")
        .boxed();
    for name in ["f", "g", "h", "i", "j"] {
        create(&api, name).await;
    }
    let names: Vec<String> = drain(&mut events)
        .await
        .iter()
        .map(|e| match e {
            WatchEvent::Added(w) => w.name_any(),
            other => panic!("unexpected event {other:?}"),
        })
        .collect();
    assert_eq!(names, ["f", "g", "h"]);

    // Without the fault, the same watch stays open past three events.
    server.clear_faults();
    let mut events: Events = api
        .watch(&params.clone().timeout(1), "0")
        .await
        .expect("watch starts")
        .boxed();
    assert_eq!(drain(&mut events).await.len(), 10);
}

#[tokio::test]
async fn a_watch_is_cut_after_a_duration() {
    common::skip_on_real_server!("injects faults into the test server");
    let (server, client) = common::start_without_retries().await;
    let api: Api<Widget> = Api::namespaced(client, "default");
    let cut = Duration::from_millis(500);
    server.update_faults(|f| f.cut_watch_after = Some(cut));
    let started = Instant::now();
    // The client asks for a 290 s watch; the fault ends it after half a second.
    let mut events: Events = api
        .watch(&WatchParams::default(), "0")
        .await
        .expect("watch starts")
        .boxed();
    drain(&mut events).await;
    assert!(
        started.elapsed() >= cut,
        "the stream ended after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn shrinking_the_event_window_forces_410_for_an_old_resource_version() {
    common::skip_on_real_server!("shrinks the test server's event window");
    let (server, client) = common::start_without_retries().await;
    let api: Api<Widget> = Api::namespaced(client, "default");
    let first = create(&api, "a").await;
    create(&api, "b").await;
    create(&api, "c").await;
    let old = first.resource_version().expect("a resourceVersion");
    let params = WatchParams::default().disable_bookmarks().timeout(1);

    // With the default window the old resourceVersion resumes: two later events.
    let mut events: Events = api
        .watch(&params, &old)
        .await
        .expect("watch starts")
        .boxed();
    let replay = drain(&mut events).await;
    assert_eq!(replay.len(), 2, "{replay:?}");
    assert!(replay.iter().all(|e| matches!(e, WatchEvent::Added(_))));

    server.set_event_window(1);
    let gone = match api.watch(&params, &old).await {
        Err(kube::Error::Api(status)) => status.code,
        Err(other) => panic!("unexpected error {other}"),
        Ok(stream) => {
            let mut events: Events = stream.boxed();
            match drain(&mut events).await.first() {
                Some(WatchEvent::Error(status)) => {
                    assert_eq!(status.reason, "Expired", "{status:?}");
                    status.code
                }
                other => panic!("expected an ERROR event, got {other:?}"),
            }
        }
    };
    assert_eq!(gone, 410);
}

#[tokio::test]
async fn the_request_log_records_injected_failures_with_their_code() {
    common::skip_on_real_server!("injects faults into the test server and reads its request log");
    let (server, client) = common::start_without_retries().await;
    let api: Api<Widget> = Api::namespaced(client, "default");
    create(&api, "a").await;
    server.clear_requests();
    server.update_faults(|f| {
        f.rules = vec![
            FaultRule::always(503)
                .verb("get")
                .resource("widgets")
                .retry_after(1),
        ];
    });
    assert_eq!(code(&api.get("a").await), 503);
    assert_eq!(code(&api.list(&ListParams::default()).await), 200);

    let log: Vec<(String, String, String, String, u16)> = server
        .requests()
        .into_iter()
        .map(|r| (r.verb, r.resource, r.namespace, r.name, r.code))
        .collect();
    let own = |verb: &str, name: &str, code: u16| {
        (
            verb.to_owned(),
            "widgets".to_owned(),
            "default".to_owned(),
            name.to_owned(),
            code,
        )
    };
    assert_eq!(log, vec![own("get", "a", 503), own("list", "", 200)]);
}
