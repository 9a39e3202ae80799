//! kube-runtime against the server: a reflector that outlives cut watches and a 410 Gone, and a
//! `Controller` that reconciles creates, updates and deletes.

mod common;

use std::{
    collections::BTreeMap,
    convert::Infallible,
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{Widget, WidgetSpec};
use futures::StreamExt;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        finalizer::{self, finalizer},
        reflector, watcher,
    },
};
use serde_json::json;
use test_apiserver::{Config, FaultRule, TestApiServer};

fn widget(name: &str) -> Widget {
    Widget::new(
        name,
        WidgetSpec {
            owner: "runtime-tests".into(),
            size: 1,
        },
    )
}

async fn create(api: &Api<Widget>, name: &str) {
    api.create(&PostParams::default(), &widget(name))
        .await
        .expect("create succeeds");
}

async fn resize(api: &Api<Widget>, name: &str, size: i64) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": size}})),
    )
    .await
    .expect("patch succeeds");
}

async fn delete(api: &Api<Widget>, name: &str) {
    api.delete(name, &DeleteParams::default())
        .await
        .expect("delete succeeds");
}

/// Polls `check` every 20 ms until it holds, failing with `what` after `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

type Snapshot = BTreeMap<(String, String), String>;

/// namespace/name → resourceVersion.
fn snapshot<'a>(widgets: impl IntoIterator<Item = &'a Widget>) -> Snapshot {
    widgets
        .into_iter()
        .map(|w| {
            (
                (w.namespace().unwrap_or_default(), w.name_any()),
                w.resource_version().unwrap_or_default(),
            )
        })
        .collect()
}

async fn server_snapshot(api: &Api<Widget>) -> Snapshot {
    snapshot(
        &api.list(&ListParams::default())
            .await
            .expect("list succeeds")
            .items,
    )
}

fn store_snapshot(store: &reflector::Store<Widget>) -> Snapshot {
    let state = store.state();
    snapshot(state.iter().map(|w| &**w))
}

/// Watch requests for widgets so far, and how many of them failed with `code`.
fn watches(server: &TestApiServer) -> Vec<u16> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.verb == "watch" && r.resource == "widgets")
        .map(|r| r.code)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn reflector_survives_cut_watches_and_410_gone_and_matches_the_server() {
    common::skip_on_real_server!(
        "cuts watches, fails requests and shrinks the event window of the test server, and reads its request log"
    );
    let t = common::start_with(Config::default().namespace("other")).await;
    let (server, client) = (t.server(), t.client.clone());
    let all: Api<Widget> = Api::all(client.clone());
    let default: Api<Widget> = Api::namespaced(client.clone(), "default");
    let other: Api<Widget> = Api::namespaced(client, "other");
    for i in 0..10 {
        create(
            if i % 2 == 0 { &default } else { &other },
            &format!("w{i:02}"),
        )
        .await;
    }
    server.update_faults(|f| f.cut_watch_after_events = Some(3));

    let (store, writer) = reflector::store::<Widget>();
    let errors: Arc<Mutex<Vec<u16>>> = Arc::default();
    let seen_errors = errors.clone();
    let reflecting = reflector::reflector(
        writer,
        watcher(all.clone(), watcher::Config::default()).default_backoff(),
    )
    .for_each(move |item| {
        if let Err(error) = item {
            let code = match &error {
                watcher::Error::WatchError(status) => status.code,
                watcher::Error::WatchStartFailed(kube::Error::Api(status))
                | watcher::Error::InitialListFailed(kube::Error::Api(status))
                | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code,
                _ => 0,
            };
            seen_errors.lock().expect("lock").push(code);
        }
        futures::future::ready(())
    });
    let task = tokio::spawn(reflecting);
    tokio::time::timeout(Duration::from_secs(10), store.wait_until_ready())
        .await
        .expect("the store is ready before the deadline")
        .expect("the writer lives");

    // Phase 1: thirteen changes through watches that each end after three events.
    for i in 10..15 {
        create(&default, &format!("w{i:02}")).await;
    }
    resize(&default, "w00", 2).await;
    resize(&other, "w01", 2).await;
    resize(&default, "w02", 2).await;
    resize(&other, "w03", 2).await;
    resize(&default, "w04", 2).await;
    delete(&other, "w05").await;
    delete(&default, "w06").await;
    delete(&other, "w07").await;
    eventually(
        Duration::from_secs(20),
        "the store matches the server after cut watches",
        || async { store_snapshot(&store) == server_snapshot(&all).await },
    )
    .await;
    assert!(
        watches(server).len() >= 5,
        "thirteen events at three a watch need at least five watches: {:?}",
        watches(server)
    );

    // Phase 2: disconnect the reflector: new watches fail; three more events end the open one.
    server.update_faults(|f| {
        f.rules
            .push(FaultRule::always(500).verb("watch").resource("widgets"));
    });
    resize(&default, "w08", 3).await;
    resize(&other, "w09", 3).await;
    resize(&default, "w10", 3).await;
    eventually(Duration::from_secs(10), "a watch fails", || async {
        watches(server).contains(&500)
    })
    .await;

    // While it is away: changes it misses, then compaction past its resourceVersion.
    create(&default, "w20").await;
    create(&other, "w21").await;
    resize(&other, "w01", 4).await;
    delete(&default, "w02").await;
    let compacted_at = server.requests().len();
    server.set_event_window(1);
    server.clear_faults();

    eventually(
        Duration::from_secs(30),
        "the store matches the server after 410 Gone",
        || async { store_snapshot(&store) == server_snapshot(&all).await },
    )
    .await;
    assert!(
        errors.lock().expect("lock").contains(&410),
        "the reflector's resumed watch met 410 Gone: {:?}",
        errors.lock().expect("lock")
    );
    let relisted = server.requests()[compacted_at..]
        .iter()
        .any(|r| r.verb == "list" && r.resource == "widgets" && r.code == 200);
    assert!(relisted, "after 410 the reflector listed again");
    let names: Vec<String> = store_snapshot(&store).into_keys().map(|(_, n)| n).collect();
    assert!(names.contains(&"w21".to_owned()) && !names.contains(&"w02".to_owned()));
    task.abort();
}

const FINALIZER: &str = "test.example.com/cleanup";

/// What a reconcile saw.
#[derive(Clone, Debug, PartialEq)]
enum Seen {
    Apply { name: String, generation: i64 },
    Cleanup { name: String },
}

struct Context {
    api: Api<Widget>,
    seen: Mutex<Vec<Seen>>,
}

impl Context {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

async fn reconcile(
    widget: Arc<Widget>,
    ctx: Arc<Context>,
) -> Result<Action, finalizer::Error<Infallible>> {
    let record = ctx.clone();
    finalizer(&ctx.api, FINALIZER, widget, move |event| async move {
        let seen = match event {
            finalizer::Event::Apply(w) => Seen::Apply {
                name: w.name_any(),
                generation: w.metadata.generation.unwrap_or_default(),
            },
            finalizer::Event::Cleanup(w) => Seen::Cleanup { name: w.name_any() },
        };
        record.seen.lock().expect("lock").push(seen);
        Ok::<_, Infallible>(Action::await_change())
    })
    .await
}

fn error_policy(
    _widget: Arc<Widget>,
    _error: &finalizer::Error<Infallible>,
    _ctx: Arc<Context>,
) -> Action {
    Action::requeue(Duration::from_millis(100))
}

#[tokio::test(flavor = "multi_thread")]
async fn controller_reconciles_create_update_and_delete() {
    let t = common::start().await;
    let api: Api<Widget> = Api::namespaced(t.client.clone(), t.ns());
    let ctx = Arc::new(Context {
        api: api.clone(),
        seen: Mutex::default(),
    });
    let controller = Controller::new(api.clone(), watcher::Config::default())
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()));
    let task = tokio::spawn(controller);

    let applied = |generation: i64| Seen::Apply {
        name: "w".into(),
        generation,
    };
    create(&api, "w").await;
    eventually(common::deadline(), "the create is reconciled", || async {
        ctx.seen().contains(&applied(1))
    })
    .await;
    let finalizers = api
        .get("w")
        .await
        .expect("get succeeds")
        .finalizers()
        .to_vec();
    assert_eq!(
        finalizers,
        [FINALIZER],
        "the controller added its finalizer"
    );

    resize(&api, "w", 2).await;
    eventually(common::deadline(), "the update is reconciled", || async {
        ctx.seen().contains(&applied(2))
    })
    .await;
    assert!(
        !ctx.seen().iter().any(|s| matches!(s, Seen::Cleanup { .. })),
        "no cleanup before the delete: {:?}",
        ctx.seen()
    );

    delete(&api, "w").await;
    eventually(common::deadline(), "the delete is reconciled", || async {
        ctx.seen().contains(&Seen::Cleanup { name: "w".into() })
    })
    .await;
    // Cleanup removed the finalizer, so the object is gone.
    eventually(common::deadline(), "the widget is gone", || async {
        api.get_opt("w").await.expect("get succeeds").is_none()
    })
    .await;
    task.abort();
}
