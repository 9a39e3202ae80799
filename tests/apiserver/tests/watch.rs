//! Watch semantics, driven through kube's `Api::watch`: event kinds, resuming, bookmarks,
//! 410 Gone, `timeoutSeconds`, streaming lists, and label and namespace scoping.

mod common;

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use common::{Widget, WidgetSpec};
use futures::{Stream, StreamExt};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
};
use serde_json::json;
use test_apiserver::Config;

/// How long any single expected event may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(10);

fn widget(name: &str, size: i64) -> Widget {
    Widget::new(
        name,
        WidgetSpec {
            owner: "watch-tests".into(),
            size,
        },
    )
}

fn labelled(name: &str, team: Option<&str>) -> Widget {
    let mut w = widget(name, 1);
    if let Some(team) = team {
        w.labels_mut().insert("team".into(), team.into());
    }
    w
}

async fn create(api: &Api<Widget>, w: &Widget) -> Widget {
    api.create(&PostParams::default(), w)
        .await
        .expect("create succeeds")
}

async fn resize(api: &Api<Widget>, name: &str, size: i64) -> Widget {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": size}})),
    )
    .await
    .expect("patch succeeds")
}

async fn list_rv(api: &Api<Widget>) -> String {
    api.list(&ListParams::default())
        .await
        .expect("list succeeds")
        .metadata
        .resource_version
        .expect("list has a resourceVersion")
}

fn rv_number(rv: &str) -> u64 {
    rv.parse().expect("resourceVersion is a number")
}

type Events = std::pin::Pin<Box<dyn Stream<Item = kube::Result<WatchEvent<Widget>>> + Send>>;

async fn watch(api: &Api<Widget>, params: &WatchParams, rv: &str) -> Events {
    api.watch(params, rv).await.expect("watch starts").boxed()
}

/// The next item, failing the test if none arrives before the deadline. `None` when the stream
/// ended.
async fn next(events: &mut Events) -> Option<WatchEvent<Widget>> {
    tokio::time::timeout(DEADLINE, events.next())
        .await
        .expect("a watch event before the deadline")
        .map(|item| item.expect("watch event decodes"))
}

/// The next event that is not a bookmark, failing if none arrives before the deadline.
async fn next_change(events: &mut Events) -> WatchEvent<Widget> {
    tokio::time::timeout(DEADLINE, async {
        loop {
            match events.next().await {
                Some(Ok(WatchEvent::Bookmark(_))) => {}
                Some(event) => return event.expect("watch event decodes"),
                None => panic!("the stream ended"),
            }
        }
    })
    .await
    .expect("a change before the deadline")
}

/// Every event until the stream ends, failing if it does not end before the deadline.
async fn drain(events: &mut Events) -> Vec<WatchEvent<Widget>> {
    let mut all = Vec::new();
    tokio::time::timeout(DEADLINE, async {
        while let Some(event) = events.next().await {
            all.push(event.expect("watch event decodes"));
        }
    })
    .await
    .expect("the stream ends before the deadline");
    all
}

/// (TYPE, name, resourceVersion) of an event, for comparisons.
fn describe(event: &WatchEvent<Widget>) -> (String, String, String) {
    let (kind, object) = match event {
        WatchEvent::Added(o) => ("ADDED", o),
        WatchEvent::Modified(o) => ("MODIFIED", o),
        WatchEvent::Deleted(o) => ("DELETED", o),
        WatchEvent::Bookmark(b) => {
            return (
                "BOOKMARK".into(),
                String::new(),
                b.metadata.resource_version.clone(),
            );
        }
        WatchEvent::Error(status) => {
            return ("ERROR".into(), status.message.clone(), String::new());
        }
    };
    (
        kind.into(),
        object.name_any(),
        object.resource_version().unwrap_or_default(),
    )
}

fn triple(kind: &str, w: &Widget) -> (String, String, String) {
    (
        kind.to_owned(),
        w.name_any(),
        w.resource_version().unwrap_or_default(),
    )
}

/// The HTTP-ish code of a watch that should have been refused: an ERROR event's code, or the
/// code of an error answer.
async fn refusal_code(api: &Api<Widget>, rv: &str) -> Option<u16> {
    match api.watch(&WatchParams::default(), rv).await {
        Err(kube::Error::Api(status)) => Some(status.code),
        Err(other) => panic!("unexpected watch error: {other}"),
        Ok(stream) => {
            let mut events: Events = stream.boxed();
            match next_change(&mut events).await {
                WatchEvent::Error(status) => Some(status.code),
                _ => None,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn added_modified_deleted_arrive_as_a_stream() {
    let t = common::start().await;
    let api: Api<Widget> = Api::namespaced(t.client.clone(), t.ns());
    let mut events = watch(&api, &WatchParams::default(), &list_rv(&api).await).await;

    let created = create(&api, &widget("a", 1)).await;
    let modified = resize(&api, "a", 2).await;
    api.delete("a", &DeleteParams::default())
        .await
        .expect("delete succeeds");

    let added = next_change(&mut events).await;
    assert_eq!(describe(&added), triple("ADDED", &created));
    let changed = next_change(&mut events).await;
    assert_eq!(describe(&changed), triple("MODIFIED", &modified));
    let WatchEvent::Modified(changed) = changed else {
        unreachable!()
    };
    assert_eq!(changed.spec.size, 2, "MODIFIED carries the new object");
    let deleted = next_change(&mut events).await;
    let WatchEvent::Deleted(deleted) = deleted else {
        panic!("expected DELETED, got {:?}", describe(&deleted));
    };
    assert_eq!(deleted.name_any(), "a");
    assert!(
        rv_number(&deleted.resource_version().unwrap_or_default())
            > rv_number(&modified.resource_version().unwrap_or_default()),
        "the DELETED event has a later resourceVersion than the last write"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn resuming_from_a_resource_version_replays_exactly_the_later_events() {
    let t = common::start().await;
    let api: Api<Widget> = Api::namespaced(t.client.clone(), t.ns());
    create(&api, &widget("a", 1)).await;
    let b = create(&api, &widget("b", 1)).await;
    let c = create(&api, &widget("c", 1)).await;
    let a2 = resize(&api, "a", 3).await;
    api.delete("b", &DeleteParams::default())
        .await
        .expect("delete succeeds");

    let since = b
        .resource_version()
        .expect("created object has a resourceVersion");
    let params = WatchParams::default().disable_bookmarks().timeout(1);
    let mut events = watch(&api, &params, &since).await;
    let replayed: Vec<_> = drain(&mut events).await.iter().map(describe).collect();

    let kinds_and_names: Vec<(String, String)> = replayed
        .iter()
        .map(|(kind, name, _)| (kind.clone(), name.clone()))
        .collect();
    assert_eq!(
        kinds_and_names,
        vec![
            ("ADDED".to_owned(), "c".to_owned()),
            ("MODIFIED".to_owned(), "a".to_owned()),
            ("DELETED".to_owned(), "b".to_owned()),
        ],
        "only the events after {since}, in order"
    );
    assert_eq!(replayed[0], triple("ADDED", &c));
    assert_eq!(replayed[1], triple("MODIFIED", &a2));
}

#[tokio::test(flavor = "multi_thread")]
async fn bookmarks_arrive_only_when_allowed_and_follow_writes() {
    common::skip_on_real_server!(
        "sets the test server's bookmark interval; kube-apiserver sends bookmarks about once a minute"
    );
    let t =
        common::start_with(Config::default().bookmark_interval(Duration::from_millis(100))).await;
    let api: Api<Widget> = Api::namespaced(t.client.clone(), t.ns());
    let start_rv = list_rv(&api).await;
    let mut events = watch(&api, &WatchParams::default(), &start_rv).await;

    let first = next(&mut events).await.expect("the stream is open");
    let WatchEvent::Bookmark(first) = first else {
        panic!("expected a BOOKMARK, got {:?}", describe(&first));
    };
    assert!(rv_number(&first.metadata.resource_version) >= rv_number(&start_rv));

    let created = create(&api, &widget("a", 1)).await;
    let created_rv = rv_number(&created.resource_version().unwrap_or_default());
    assert_eq!(
        describe(&next_change(&mut events).await),
        triple("ADDED", &created)
    );
    tokio::time::timeout(DEADLINE, async {
        loop {
            if let WatchEvent::Bookmark(b) = next(&mut events).await.expect("the stream is open")
                && rv_number(&b.metadata.resource_version) >= created_rv
            {
                break;
            }
        }
    })
    .await
    .expect("a bookmark at or after the write before the deadline");

    // Without allowWatchBookmarks, ten intervals pass without one.
    let quiet = WatchParams::default().disable_bookmarks().timeout(1);
    let mut events = watch(&api, &quiet, &list_rv(&api).await).await;
    let all = drain(&mut events).await;
    assert!(
        all.iter().all(|e| !matches!(e, WatchEvent::Bookmark(_))),
        "no BOOKMARK without allowWatchBookmarks: {:?}",
        all.iter().map(describe).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn resource_version_older_than_the_window_is_410_gone() {
    let t = common::start_with(Config::default().event_window(3)).await;
    let api: Api<Widget> = Api::namespaced(t.client.clone(), t.ns());
    let first = create(&api, &widget("a", 1)).await;
    let mut last = first.clone();
    let mut previous = first.clone();
    // Sizes stay at most 5: the fixture's CEL rule reads `color` above that.
    for size in [2, 3, 4, 5, 1, 2, 3] {
        previous = last;
        last = resize(&api, "a", size).await;
    }

    // kube-apiserver's window is its watch cache, which begins where the cache was filled
    // (when the fixture CRD was established) and is not set by the test: a resourceVersion
    // from before that, 1, is as old as any.
    let old = match t.test_server() {
        Some(_) => first.resource_version().unwrap_or_default(),
        None => "1".to_owned(),
    };
    assert_eq!(
        refusal_code(&api, &old).await,
        Some(410),
        "a watch from {old}, seven writes ago with a window of three, is 410 Gone"
    );

    // A resourceVersion inside the window still resumes.
    let recent = previous.resource_version().unwrap_or_default();
    let params = WatchParams::default().disable_bookmarks();
    let mut events = watch(&api, &params, &recent).await;
    assert_eq!(
        describe(&next_change(&mut events).await),
        triple("MODIFIED", &last)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn timeout_seconds_ends_the_stream() {
    let t = common::start().await;
    let api: Api<Widget> = Api::namespaced(t.client.clone(), t.ns());
    let started = Instant::now();
    let params = WatchParams::default().timeout(1);
    let mut events = watch(&api, &params, &list_rv(&api).await).await;
    let all = drain(&mut events).await;
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "the stream stayed open for the timeout, ended after {:?}",
        started.elapsed()
    );
    assert!(
        all.iter().all(|e| matches!(e, WatchEvent::Bookmark(_))),
        "nothing but bookmarks on an idle watch"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn streaming_list_sends_current_objects_then_the_initial_events_end_bookmark() {
    let t = common::start().await;
    let api: Api<Widget> = Api::namespaced(t.client.clone(), t.ns());
    for name in ["a", "b", "c"] {
        create(&api, &widget(name, 1)).await;
    }
    let a = resize(&api, "a", 4).await;
    let current_rv = t.test_server().map(|server| server.resource_version());

    // No resourceVersion: the most recent state. "0" would let kube-apiserver serve the
    // initial events from its watch cache, which may lag behind the write just made.
    let mut events = watch(&api, &WatchParams::streaming_lists(), "").await;
    let mut initial = BTreeSet::new();
    let end = loop {
        match next(&mut events).await.expect("the stream is open") {
            WatchEvent::Added(w) => {
                if w.name_any() == "a" {
                    assert_eq!(w.resource_version(), a.resource_version());
                    assert_eq!(w.spec.size, 4, "the current state, not history");
                }
                assert!(initial.insert(w.name_any()), "each object once");
            }
            WatchEvent::Bookmark(b) => break b,
            other => panic!("unexpected initial event {:?}", describe(&other)),
        }
    };
    assert_eq!(
        initial,
        BTreeSet::from(["a".to_owned(), "b".to_owned(), "c".to_owned()])
    );
    assert_eq!(
        end.metadata
            .annotations
            .get("k8s.io/initial-events-end")
            .map(String::as_str),
        Some("true")
    );
    let end_rv = rv_number(&end.metadata.resource_version);
    match current_rv {
        Some(current_rv) => assert_eq!(end_rv, current_rv),
        // Other writers share the real server's resourceVersion: the list is at least as new as
        // the last write.
        None => assert!(end_rv >= rv_number(&a.resource_version().unwrap_or_default())),
    }

    // Then the stream continues with changes.
    let d = create(&api, &widget("d", 1)).await;
    assert_eq!(
        describe(&next_change(&mut events).await),
        triple("ADDED", &d)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn label_selector_watch_delivers_only_matching_objects() {
    let t = common::start().await;
    let api: Api<Widget> = Api::namespaced(t.client.clone(), t.ns());
    create(&api, &labelled("old-a", Some("a"))).await;
    create(&api, &labelled("old-b", Some("b"))).await;
    create(&api, &labelled("old-none", None)).await;

    let params = WatchParams::default().labels("team=a");
    let mut events = watch(&api, &params, "0").await;
    create(&api, &labelled("new-b", Some("b"))).await;
    create(&api, &labelled("new-none", None)).await;
    resize(&api, "old-b", 2).await;
    api.delete("old-none", &DeleteParams::default())
        .await
        .expect("delete succeeds");
    resize(&api, "old-a", 2).await;
    create(&api, &labelled("new-a", Some("a"))).await;

    let mut seen = Vec::new();
    loop {
        let (kind, name, _) = describe(&next_change(&mut events).await);
        seen.push((kind, name.clone()));
        if name == "new-a" {
            break;
        }
    }
    let expected: Vec<(String, String)> = [
        ("ADDED", "old-a"),
        ("MODIFIED", "old-a"),
        ("ADDED", "new-a"),
    ]
    .iter()
    .map(|(k, n)| ((*k).to_owned(), (*n).to_owned()))
    .collect();
    assert_eq!(seen, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn namespaced_watch_sees_only_its_namespace() {
    let t = common::start().await;
    let (mine, other_ns) = (t.ns().to_owned(), t.extra_namespace("other").await);
    let client = t.client.clone();
    let default: Api<Widget> = Api::namespaced(client.clone(), &mine);
    let other: Api<Widget> = Api::namespaced(client.clone(), &other_ns);
    let everywhere: Api<Widget> = Api::all(client);
    create(&other, &widget("before", 1)).await;
    create(&default, &widget("before", 1)).await;

    let mut scoped = watch(&default, &WatchParams::default(), "0").await;
    let mut all = watch(&everywhere, &WatchParams::default(), "0").await;
    create(&other, &widget("after", 1)).await;
    resize(&other, "before", 2).await;
    create(&default, &widget("after", 1)).await;

    let namespaces_until_default_after = |events: Vec<WatchEvent<Widget>>| {
        events
            .iter()
            .map(|e| match e {
                WatchEvent::Added(w) | WatchEvent::Modified(w) | WatchEvent::Deleted(w) => (
                    w.namespace().unwrap_or_default(),
                    describe(e).0,
                    w.name_any(),
                ),
                _ => unreachable!("only changes are collected"),
            })
            .collect::<Vec<_>>()
    };
    let mut collected = Vec::new();
    loop {
        let event = next_change(&mut scoped).await;
        let done = describe(&event).1 == "after";
        collected.push(event);
        if done {
            break;
        }
    }
    let scoped_seen = namespaces_until_default_after(collected);
    assert!(
        scoped_seen.iter().all(|(ns, _, _)| *ns == mine),
        "the namespaced watch saw {scoped_seen:?}"
    );
    assert_eq!(scoped_seen.len(), 2, "{scoped_seen:?}");

    // The same changes in the other namespace did happen: a watch of every namespace sees
    // them. (On a shared server it sees other tests' widgets too: only this test's count.)
    let mut collected = Vec::new();
    while collected.len() < 5 {
        let event = next_change(&mut all).await;
        if let WatchEvent::Added(w) | WatchEvent::Modified(w) | WatchEvent::Deleted(w) = &event
            && [&mine, &other_ns].contains(&&w.namespace().unwrap_or_default())
        {
            collected.push(event);
        }
    }
    let all_seen = namespaces_until_default_after(collected);
    assert_eq!(
        all_seen.iter().filter(|(ns, _, _)| *ns == other_ns).count(),
        3,
        "{all_seen:?}"
    );
}
