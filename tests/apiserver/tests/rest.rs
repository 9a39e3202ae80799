//! REST conformance of test-apiserver through kube's `Client`: create, get and list, update,
//! patch, the status subresource, delete (finalizers, preconditions, propagation), errors as
//! `metav1.Status`, the request log and discovery. One test per behaviour; each fails when the
//! behaviour is missing. The server is synchronous, so state is asserted right after each call.

mod common;

use std::collections::BTreeSet;

use k8s_openapi::{
    api::core::v1::{ConfigMap, Namespace},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::{
    Client, Resource, ResourceExt,
    api::{
        Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
        Preconditions, WatchParams,
    },
    core::{GroupVersionKind, Status},
    discovery::{Discovery, Scope},
};
use serde_json::{Value, json};
use test_apiserver::RequestRecord;

type Result<T = (), E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

const GROUP: &str = "test.example.com";

fn widget_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, "v1", "Widget"), "widgets")
}

fn gadget_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, "v1", "Gadget"), "gadgets")
}

fn widgets(client: &Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &widget_resource())
}

fn gadgets(client: &Client) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &gadget_resource())
}

fn config_maps(client: &Client, namespace: &str) -> Api<ConfigMap> {
    Api::namespaced(client.clone(), namespace)
}

/// A valid widget spec (owner and size are required).
fn spec(size: i64) -> Value {
    json!({"owner": "alice", "size": size})
}

fn widget(name: &str, spec: Value) -> DynamicObject {
    DynamicObject::new(name, &widget_resource()).data(json!({ "spec": spec }))
}

fn labelled_widget(name: &str, labels: &[(&str, &str)]) -> DynamicObject {
    let mut object = widget(name, spec(1));
    object.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    );
    object
}

fn gadget(name: &str) -> DynamicObject {
    DynamicObject::new(name, &gadget_resource()).data(json!({"spec": {"level": 1}}))
}

fn config_map(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some([("key".to_owned(), "value".to_owned())].into()),
        ..ConfigMap::default()
    }
}

fn namespace(name: &str) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// An ownerReference to `owner` (a widget).
fn owned_by(owner: &DynamicObject) -> OwnerReference {
    OwnerReference {
        api_version: format!("{GROUP}/v1"),
        kind: "Widget".into(),
        name: owner.name_any(),
        uid: owner.uid().expect("the owner has a uid"),
        ..OwnerReference::default()
    }
}

fn dependent_config_map(name: &str, owner: &DynamicObject, finalizers: &[&str]) -> ConfigMap {
    let mut cm = config_map(name);
    cm.metadata.owner_references = Some(vec![owned_by(owner)]);
    if !finalizers.is_empty() {
        cm.metadata.finalizers = Some(finalizers.iter().map(|f| (*f).to_owned()).collect());
    }
    cm
}

fn pp() -> PostParams {
    PostParams::default()
}

fn rv<K: Resource>(object: &K) -> u64 {
    object
        .resource_version()
        .expect("a resourceVersion")
        .parse()
        .expect("a numeric resourceVersion")
}

/// The `metav1.Status` of a failed call.
fn api_error<T: std::fmt::Debug>(result: kube::Result<T>) -> Box<Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Asserts a failure `Status` (as parsed from the body, not reconstructed by kube) with this
/// code and reason.
fn assert_status(status: &Status, code: u16, reason: &str) {
    assert!(status.is_failure(), "status: Failure expected: {status:?}");
    assert_eq!(status.code, code, "{status:?}");
    assert_eq!(status.reason, reason, "{status:?}");
    assert!(!status.message.is_empty(), "a message: {status:?}");
}

async fn is_gone<K>(api: &Api<K>, name: &str) -> bool
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.get(name).await {
        Err(kube::Error::Api(status)) if status.code == 404 => true,
        Ok(_) => false,
        Err(e) => panic!("get {name}: {e}"),
    }
}

async fn names(api: &Api<DynamicObject>, lp: &ListParams) -> Result<BTreeSet<String>> {
    Ok(api
        .list(lp)
        .await?
        .iter()
        .map(ResourceExt::name_any)
        .collect())
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

// ---------------------------------------------------------------------------------------------
// Create

#[tokio::test]
async fn create_assigns_a_unique_uid_and_a_creation_timestamp() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let mut uids = BTreeSet::new();
    for name in ["a", "b", "c"] {
        let mut body = widget(name, spec(1));
        body.metadata.uid = Some("chosen-by-the-client".into());
        let created = api.create(&pp(), &body).await?;
        let uid = created.uid().expect("a uid");
        assert!(!uid.is_empty() && uid != "chosen-by-the-client", "{uid}");
        let created_at = created
            .creation_timestamp()
            .expect("a creationTimestamp")
            .0
            .as_second();
        assert!((created_at - now).abs() < 60, "{created_at} vs now {now}");
        let stored = api.get(name).await?;
        assert_eq!(stored.uid(), created.uid());
        assert_eq!(stored.creation_timestamp(), created.creation_timestamp());
        uids.insert(uid);
    }
    assert_eq!(uids.len(), 3, "uids are unique: {uids:?}");
    Ok(())
}

#[tokio::test]
async fn resource_versions_come_from_one_global_counter() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let other = t.extra_namespace("b").await;
    let third = t.unique("other");
    let mut versions = vec![
        rv(&widgets(&client, t.ns())
            .create(&pp(), &widget("w", spec(1)))
            .await?),
        rv(&config_maps(&client, &other)
            .create(&pp(), &config_map("c"))
            .await?),
        rv(&gadgets(&client)
            .create(&pp(), &gadget(&t.unique("g")))
            .await?),
        rv(&Api::<Namespace>::all(client.clone())
            .create(&pp(), &namespace(&third))
            .await?),
        rv(&widgets(&client, &third)
            .create(&pp(), &widget("w", spec(1)))
            .await?),
        rv(&config_maps(&client, t.ns())
            .create(&pp(), &config_map("c"))
            .await?),
    ];
    // An update draws from the same counter.
    versions.push(rv(&widgets(&client, t.ns())
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await?));
    assert!(
        versions.windows(2).all(|pair| pair[0] < pair[1]),
        "strictly increasing across kinds and namespaces: {versions:?}"
    );
    if let Some(server) = t.test_server() {
        assert_eq!(server.resource_version(), *versions.last().unwrap());
    }
    Ok(())
}

#[tokio::test]
async fn create_sets_generation_1_for_custom_resources() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let mut body = widget("w", spec(1));
    body.metadata.generation = Some(7);
    let created = widgets(&client, t.ns()).create(&pp(), &body).await?;
    assert_eq!(created.metadata.generation, Some(1));
    let gadget = gadgets(&client)
        .create(&pp(), &gadget(&t.unique("g")))
        .await?;
    assert_eq!(gadget.metadata.generation, Some(1));
    Ok(())
}

#[tokio::test]
async fn generate_name_produces_a_name_with_the_prefix() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    let mut body = widget("", spec(1));
    body.metadata.name = None;
    body.metadata.generate_name = Some("widget-".into());
    let first = api.create(&pp(), &body).await?.name_any();
    let second = api.create(&pp(), &body).await?.name_any();
    for name in [&first, &second] {
        assert!(
            name.starts_with("widget-") && name.len() > "widget-".len(),
            "{name}"
        );
        api.get(name).await?;
    }
    assert_ne!(first, second);
    Ok(())
}

#[tokio::test]
async fn create_takes_the_namespace_from_the_path() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let other = t.extra_namespace("b").await;
    let created = widgets(&client, &other)
        .create(&pp(), &widget("w", spec(1)))
        .await?;
    assert_eq!(created.namespace().as_deref(), Some(other.as_str()));
    assert_eq!(
        widgets(&client, &other)
            .get("w")
            .await?
            .namespace()
            .as_deref(),
        Some(other.as_str())
    );
    assert!(is_gone(&widgets(&client, t.ns()), "w").await);
    Ok(())
}

#[tokio::test]
async fn create_of_an_existing_name_is_409_already_exists() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    let first = api.create(&pp(), &widget("w", spec(1))).await?;
    let status = api_error(api.create(&pp(), &widget("w", spec(2))).await);
    assert_status(&status, 409, "AlreadyExists");
    let details = status.details.as_ref().expect("details");
    assert_eq!(details.name, "w");
    assert_eq!(details.group, GROUP);
    let stored = api.get("w").await?;
    assert_eq!(stored.uid(), first.uid(), "the first object stays");
    assert_eq!(stored.data["spec"]["size"], 1);
    Ok(())
}

#[tokio::test]
async fn create_in_a_missing_namespace_is_404() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let status = api_error(
        widgets(&client, "nowhere")
            .create(&pp(), &widget("w", spec(1)))
            .await,
    );
    assert_status(&status, 404, "NotFound");
    assert_eq!(status.details.as_ref().expect("details").name, "nowhere");
    Ok(())
}

#[tokio::test]
async fn create_drops_status_when_the_kind_has_a_status_subresource() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let mut body = widget("w", spec(1));
    body.data["status"] = json!({"phase": "Ready"});
    let created = widgets(&client, t.ns()).create(&pp(), &body).await?;
    assert!(created.data.get("status").is_none(), "{:?}", created.data);
    let stored = widgets(&client, t.ns()).get("w").await?;
    assert!(stored.data.get("status").is_none(), "{:?}", stored.data);
    // A kind without a status subresource keeps the status it was created with.
    let mut body = gadget(&t.unique("g"));
    body.data["status"] = json!({"seen": true});
    let created = gadgets(&client).create(&pp(), &body).await?;
    assert_eq!(created.data["status"], json!({"seen": true}));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Get and list

/// a {tier=web, env=prod}, b {tier=db, env=prod}, c {tier=cache}, d {} in the test's
/// namespace, and `elsewhere` with every label in another namespace of the test (returned) that
/// a namespaced list must not return.
async fn labelled_widgets(t: &common::Target) -> Result<(Api<DynamicObject>, String)> {
    let client = &t.client;
    let api = widgets(client, t.ns());
    api.create(
        &pp(),
        &labelled_widget("a", &[("tier", "web"), ("env", "prod")]),
    )
    .await?;
    api.create(
        &pp(),
        &labelled_widget("b", &[("tier", "db"), ("env", "prod")]),
    )
    .await?;
    api.create(&pp(), &labelled_widget("c", &[("tier", "cache")]))
        .await?;
    api.create(&pp(), &labelled_widget("d", &[])).await?;
    let other = t.extra_namespace("b").await;
    widgets(client, &other)
        .create(
            &pp(),
            &labelled_widget("elsewhere", &[("tier", "web"), ("env", "prod")]),
        )
        .await?;
    Ok((api, other))
}

#[tokio::test]
async fn label_selector_equals() -> Result {
    let t = common::start().await;
    let (api, _) = labelled_widgets(&t).await?;
    assert_eq!(
        names(&api, &ListParams::default().labels("tier=web")).await?,
        set(&["a"])
    );
    assert_eq!(
        names(&api, &ListParams::default().labels("tier==db")).await?,
        set(&["b"])
    );
    assert_eq!(
        names(&api, &ListParams::default().labels("tier=web,env=prod")).await?,
        set(&["a"])
    );
    Ok(())
}

#[tokio::test]
async fn label_selector_not_equals_matches_objects_without_the_label() -> Result {
    let t = common::start().await;
    let (api, _) = labelled_widgets(&t).await?;
    assert_eq!(
        names(&api, &ListParams::default().labels("tier!=web")).await?,
        set(&["b", "c", "d"])
    );
    Ok(())
}

#[tokio::test]
async fn label_selector_in() -> Result {
    let t = common::start().await;
    let (api, _) = labelled_widgets(&t).await?;
    assert_eq!(
        names(&api, &ListParams::default().labels("tier in (web, db)")).await?,
        set(&["a", "b"])
    );
    Ok(())
}

#[tokio::test]
async fn label_selector_notin_matches_objects_without_the_label() -> Result {
    let t = common::start().await;
    let (api, _) = labelled_widgets(&t).await?;
    assert_eq!(
        names(&api, &ListParams::default().labels("tier notin (web,db)")).await?,
        set(&["c", "d"])
    );
    Ok(())
}

#[tokio::test]
async fn label_selector_exists() -> Result {
    let t = common::start().await;
    let (api, _) = labelled_widgets(&t).await?;
    assert_eq!(
        names(&api, &ListParams::default().labels("env")).await?,
        set(&["a", "b"])
    );
    Ok(())
}

#[tokio::test]
async fn label_selector_not_exists() -> Result {
    let t = common::start().await;
    let (api, _) = labelled_widgets(&t).await?;
    assert_eq!(
        names(&api, &ListParams::default().labels("!env")).await?,
        set(&["c", "d"])
    );
    Ok(())
}

#[tokio::test]
async fn field_selector_metadata_name() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let (_, other) = labelled_widgets(&t).await?;
    let namespaced = widgets(&client, t.ns());
    assert_eq!(
        names(
            &namespaced,
            &ListParams::default().fields("metadata.name=b")
        )
        .await?,
        set(&["b"])
    );
    assert_eq!(
        names(
            &namespaced,
            &ListParams::default().fields("metadata.name!=b")
        )
        .await?,
        set(&["a", "c", "d"])
    );
    let everywhere = Api::<DynamicObject>::all_with(client.clone(), &widget_resource());
    // On a shared server other tests' namespaces hold an `elsewhere` too: only this test's
    // namespaces count.
    let found: Vec<(Option<String>, String)> = everywhere
        .list(&ListParams::default().fields("metadata.name=elsewhere"))
        .await?
        .iter()
        .map(|o| (o.namespace(), o.name_any()))
        .filter(|(ns, _)| ns.as_deref() == Some(t.ns()) || ns.as_deref() == Some(&other))
        .collect();
    assert_eq!(found, [(Some(other.clone()), "elsewhere".into())]);
    Ok(())
}

#[tokio::test]
async fn field_selector_metadata_namespace() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let (_, other) = labelled_widgets(&t).await?;
    let everywhere = Api::<DynamicObject>::all_with(client.clone(), &widget_resource());
    let in_other = everywhere
        .list(&ListParams::default().fields(&format!("metadata.namespace={other}")))
        .await?;
    let found: Vec<(Option<String>, String)> = in_other
        .iter()
        .map(|o| (o.namespace(), o.name_any()))
        .collect();
    assert_eq!(found, [(Some(other.clone()), "elsewhere".into())]);
    assert_eq!(
        names(
            &everywhere,
            &ListParams::default().fields(&format!("metadata.namespace={}", t.ns()))
        )
        .await?,
        set(&["a", "b", "c", "d"])
    );
    Ok(())
}

#[tokio::test]
async fn limit_and_continue_visit_every_object_exactly_once() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    let expected: BTreeSet<String> = (0..7).map(|i| format!("w{i}")).collect();
    for name in &expected {
        api.create(&pp(), &widget(name, spec(1))).await?;
    }
    widgets(&client, &t.extra_namespace("b").await)
        .create(&pp(), &widget("other", spec(1)))
        .await?;
    let mut seen = Vec::new();
    let mut remaining = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let mut lp = ListParams::default().limit(3);
        if let Some(token) = &token {
            lp = lp.continue_token(token);
        }
        let page = api.list(&lp).await?;
        assert!(page.items.len() <= 3, "{} items", page.items.len());
        seen.extend(page.iter().map(ResourceExt::name_any));
        remaining.push(page.metadata.remaining_item_count);
        match page.metadata.continue_.filter(|t| !t.is_empty()) {
            Some(next) => token = Some(next),
            None => {
                token = None;
                break;
            }
        }
    }
    assert!(token.is_none(), "pagination ends");
    assert_eq!(seen.len(), expected.len(), "no object twice: {seen:?}");
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert_eq!(remaining, [Some(4), Some(1), None]);
    Ok(())
}

#[tokio::test]
async fn list_resource_version_is_the_latest() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    let created = api.create(&pp(), &widget("w", spec(1))).await?;
    // A later write to another kind moves the global resourceVersion past every widget's.
    let latest = rv(&config_maps(&client, t.ns())
        .create(&pp(), &config_map("c"))
        .await?);
    assert!(rv(&created) < latest);
    let list = api.list(&ListParams::default()).await?;
    let list_rv: u64 = list
        .metadata
        .resource_version
        .as_deref()
        .expect("a list resourceVersion")
        .parse()?;
    match t.test_server() {
        Some(server) => {
            assert_eq!(list_rv, latest);
            assert_eq!(list_rv, server.resource_version());
        }
        // A shared cluster: other writers (kube-apiserver's own leases among them) may have
        // moved the global resourceVersion on since.
        None => assert!(list_rv >= latest, "{list_rv} < {latest}"),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Update

#[tokio::test]
async fn replace_with_a_stale_resource_version_is_409_conflict() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    let stale = api.create(&pp(), &widget("w", spec(1))).await?;
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 2}})),
    )
    .await?;
    let mut body = stale.clone();
    body.data["spec"]["size"] = json!(3);
    let status = api_error(api.replace("w", &pp(), &body).await);
    assert_status(&status, 409, "Conflict");
    assert_eq!(
        api.get("w").await?.data["spec"]["size"],
        2,
        "the stale write is refused"
    );
    Ok(())
}

#[tokio::test]
async fn generation_increments_when_the_spec_changes() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    let mut object = api.create(&pp(), &widget("w", spec(1))).await?;
    assert_eq!(object.metadata.generation, Some(1));
    for (size, generation) in [(2, 2), (3, 3)] {
        object.data["spec"]["size"] = json!(size);
        object = api.replace("w", &pp(), &object).await?;
        assert_eq!(object.metadata.generation, Some(generation));
    }
    Ok(())
}

#[tokio::test]
async fn generation_stays_when_only_labels_or_annotations_change() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    let mut object = api.create(&pp(), &widget("w", spec(1))).await?;
    let before = rv(&object);
    object.labels_mut().insert("team".into(), "blue".into());
    object
        .annotations_mut()
        .insert("note".into(), "hello".into());
    let updated = api.replace("w", &pp(), &object).await?;
    assert!(rv(&updated) > before, "the write was stored");
    assert_eq!(
        updated.labels().get("team").map(String::as_str),
        Some("blue")
    );
    assert_eq!(updated.metadata.generation, Some(1));
    Ok(())
}

#[tokio::test]
async fn generation_stays_when_only_status_changes() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    let mut object = api.create(&pp(), &widget("w", spec(1))).await?;
    let before = rv(&object);
    object.data["status"] = json!({"phase": "Ready"});
    let updated = api.replace_status("w", &pp(), &object).await?;
    assert!(rv(&updated) > before, "the write was stored");
    assert_eq!(updated.data["status"]["phase"], "Ready");
    assert_eq!(updated.metadata.generation, Some(1));
    Ok(())
}

#[tokio::test]
async fn a_no_op_replace_keeps_the_resource_version() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    api.create(&pp(), &widget("w", spec(1))).await?;
    let current = api.get("w").await?;
    let global = t.test_server().map(|server| server.resource_version());
    let replaced = api.replace("w", &pp(), &current).await?;
    assert_eq!(replaced.resource_version(), current.resource_version());
    if let Some(server) = t.test_server() {
        assert_eq!(
            Some(server.resource_version()),
            global,
            "nothing was written"
        );
    }
    assert_eq!(
        api.get("w").await?.resource_version(),
        current.resource_version()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Patch

#[tokio::test]
async fn json_merge_patch_merges_and_null_removes() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    api.create(
        &pp(),
        &widget(
            "w",
            json!({"owner": "alice", "size": 1, "color": "green", "note": "x"}),
        ),
    )
    .await?;
    let patched = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"labels": {"team": "blue"}},
                "spec": {"size": 2, "note": null},
            })),
        )
        .await?;
    assert_eq!(
        patched.data["spec"],
        json!({"owner": "alice", "size": 2, "color": "green", "mode": "fast"})
    );
    assert_eq!(
        patched.labels().get("team").map(String::as_str),
        Some("blue")
    );
    assert_eq!(api.get("w").await?.data["spec"], patched.data["spec"]);
    Ok(())
}

fn json_patch(operations: Value) -> Patch<()> {
    Patch::Json(serde_json::from_value(operations).expect("a JSON patch"))
}

#[tokio::test]
async fn json_patch_with_a_passing_test_applies() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    api.create(&pp(), &widget("w", spec(1))).await?;
    let patched = api
        .patch(
            "w",
            &PatchParams::default(),
            &json_patch(json!([
                {"op": "test", "path": "/spec/size", "value": 1},
                {"op": "replace", "path": "/spec/size", "value": 4},
                {"op": "add", "path": "/spec/color", "value": "blue"},
            ])),
        )
        .await?;
    assert_eq!(patched.data["spec"]["size"], 4);
    assert_eq!(patched.data["spec"]["color"], "blue");
    Ok(())
}

#[tokio::test]
async fn json_patch_with_a_failing_test_is_422() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    let created = api.create(&pp(), &widget("w", spec(1))).await?;
    let status = api_error(
        api.patch(
            "w",
            &PatchParams::default(),
            &json_patch(json!([
                {"op": "test", "path": "/spec/size", "value": 9},
                {"op": "replace", "path": "/spec/size", "value": 4},
            ])),
        )
        .await,
    );
    assert_status(&status, 422, "Invalid");
    let stored = api.get("w").await?;
    assert_eq!(stored.data["spec"]["size"], 1);
    assert_eq!(stored.resource_version(), created.resource_version());
    Ok(())
}

fn apply_config(name: &str, spec: Value) -> Patch<Value> {
    Patch::Apply(json!({
        "apiVersion": format!("{GROUP}/v1"),
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": spec,
    }))
}

#[tokio::test]
async fn server_side_apply_creates_a_missing_object() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    let applied = api
        .patch(
            "w",
            &PatchParams::apply("mgr"),
            &apply_config("w", json!({"owner": "alice", "size": 2})),
        )
        .await?;
    assert_eq!(applied.data["spec"]["size"], 2);
    assert!(applied.uid().is_some());
    let stored = api.get("w").await?;
    assert_eq!(stored.uid(), applied.uid());
    assert_eq!(stored.metadata.generation, Some(1));
    let managers = stored.managed_fields();
    assert!(
        managers
            .iter()
            .any(|m| m.manager.as_deref() == Some("mgr") && m.operation.as_deref() == Some("Apply")),
        "{managers:?}"
    );
    Ok(())
}

#[tokio::test]
async fn server_side_apply_merges_into_an_existing_object() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    let mut body = widget("w", json!({"owner": "alice", "size": 1, "color": "green"}));
    body.labels_mut().insert("a".into(), "1".into());
    api.create(&pp(), &body).await?;
    let applied = api
        .patch(
            "w",
            &PatchParams::apply("mgr"),
            &Patch::Apply(json!({
                "apiVersion": format!("{GROUP}/v1"),
                "kind": "Widget",
                "metadata": {"name": "w", "labels": {"b": "2"}},
                "spec": {"code": "ABC-1"},
            })),
        )
        .await?;
    assert_eq!(
        applied.data["spec"],
        json!({"owner": "alice", "size": 1, "color": "green", "code": "ABC-1", "mode": "fast"})
    );
    assert_eq!(
        applied.labels().clone().into_iter().collect::<Vec<_>>(),
        [("a".into(), "1".into()), ("b".into(), "2".into())]
    );
    Ok(())
}

#[tokio::test]
async fn server_side_apply_removes_a_field_the_manager_no_longer_applies() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    api.patch(
        "w",
        &PatchParams::apply("mgr"),
        &apply_config(
            "w",
            json!({"owner": "alice", "size": 1, "color": "green", "code": "ABC-1"}),
        ),
    )
    .await?;
    // Another manager's field must survive the next apply.
    api.patch(
        "w",
        &PatchParams {
            field_manager: Some("other".into()),
            ..PatchParams::default()
        },
        &Patch::Merge(json!({"spec": {"tags": ["x"]}})),
    )
    .await?;
    let applied = api
        .patch(
            "w",
            &PatchParams::apply("mgr"),
            &apply_config("w", json!({"owner": "alice", "size": 1, "code": "ABC-1"})),
        )
        .await?;
    assert!(
        applied.data["spec"].get("color").is_none(),
        "{}",
        applied.data["spec"]
    );
    assert_eq!(applied.data["spec"]["code"], "ABC-1");
    assert_eq!(applied.data["spec"]["tags"], json!(["x"]));
    assert!(api.get("w").await?.data["spec"].get("color").is_none());
    Ok(())
}

/// Applying a value to a field another manager applied differently is a 409 Conflict naming
/// the field; `force` takes the field over; a plain update releases what it changes.
#[tokio::test]
async fn server_side_apply_conflicts_unless_forced() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    api.patch(
        "w",
        &PatchParams::apply("first"),
        &apply_config("w", json!({"owner": "alice", "size": 1})),
    )
    .await?;
    let config = apply_config("w", json!({"owner": "alice", "size": 2}));
    let err = api
        .patch("w", &PatchParams::apply("second"), &config)
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err:?}")
    };
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        status.message,
        "Apply failed with 1 conflict: conflict with \"first\": .spec.size"
    );
    assert_eq!(
        api.get("w").await?.data["spec"]["size"],
        1,
        "a refused apply changes nothing"
    );
    let forced = api
        .patch("w", &PatchParams::apply("second").force(), &config)
        .await?;
    assert_eq!(forced.data["spec"]["size"], 2);
    // "first" lost .spec.size: applying its old value again now conflicts with "second".
    let back = apply_config("w", json!({"owner": "alice", "size": 1}));
    assert!(
        api.patch("w", &PatchParams::apply("first"), &back)
            .await
            .is_err()
    );
    // A merge patch by a third party takes .spec.size from "second" and owns it (kube's client
    // sends no fieldManager: "unknown"), so applying another value conflicts with the updater.
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 3}})),
    )
    .await?;
    let status = api_error(api.patch("w", &PatchParams::apply("first"), &back).await);
    assert_status(&status, 409, "Conflict");
    assert_eq!(
        status.message,
        format!(
            "Apply failed with 1 conflict: conflict with \"unknown\" using {GROUP}/v1: .spec.size"
        )
    );
    let cause = &status.details.as_ref().expect("details").causes[0];
    assert_eq!(
        (cause.reason.as_str(), cause.field.as_str()),
        ("FieldManagerConflict", ".spec.size")
    );
    // "second" no longer owns it: applying its own value again is a conflict with "unknown"
    // only, and forcing takes it back.
    api.patch("w", &PatchParams::apply("first").force(), &back)
        .await?;
    assert_eq!(api.get("w").await?.data["spec"]["size"], 1);
    Ok(())
}

/// A write that names no fieldManager is recorded under its User-Agent up to the first "/"
/// (kube-apiserver's managerOrUserAgent), "unknown" without one (kube's client sends none), and
/// owns the fields it set: an apply of another value conflicts with it.
#[tokio::test]
async fn a_write_without_a_field_manager_is_recorded_under_its_user_agent() -> Result {
    let t = common::start().await;
    let api = widgets(&t.client_with_agent("probe/1.2 (linux)"), t.ns());
    let created = api.create(&pp(), &widget("w", spec(1))).await?;
    let updaters: Vec<(Option<&str>, Option<&str>)> = created
        .managed_fields()
        .iter()
        .map(|m| (m.manager.as_deref(), m.operation.as_deref()))
        .collect();
    assert_eq!(updaters, [(Some("probe"), Some("Update"))]);
    let status = api_error(
        api.patch(
            "w",
            &PatchParams::apply("mgr"),
            &apply_config("w", json!({"owner": "alice", "size": 2})),
        )
        .await,
    );
    assert_eq!(
        status.message,
        format!(
            "Apply failed with 1 conflict: conflict with \"probe\" using {GROUP}/v1: .spec.size"
        )
    );
    let anonymous = widgets(&t.client, t.ns())
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 3}})),
        )
        .await?;
    let managers: BTreeSet<&str> = anonymous
        .managed_fields()
        .iter()
        .filter_map(|m| m.manager.as_deref())
        .collect();
    assert_eq!(managers, BTreeSet::from(["probe", "unknown"]));
    Ok(())
}

/// kube passes an apply without a fieldManager through to the server, which refuses it as
/// kube-apiserver does: 422 Invalid on `PatchOptions` (ValidatePatchOptions), before it looks
/// the object up.
#[tokio::test]
async fn server_side_apply_without_a_field_manager_is_rejected() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    let status = api_error(
        api.patch("w", &PatchParams::default(), &apply_config("w", spec(1)))
            .await,
    );
    assert_status(&status, 422, "Invalid");
    assert!(
        status.message.contains("fieldManager"),
        "{}",
        status.message
    );
    assert!(is_gone(&api, "w").await, "nothing was created");
    Ok(())
}

#[tokio::test]
async fn strategic_merge_patch_on_a_custom_resource_is_415() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    api.create(&pp(), &widget("w", spec(1))).await?;
    let status = api_error(
        api.patch(
            "w",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"size": 2}})),
        )
        .await,
    );
    assert_status(&status, 415, "UnsupportedMediaType");
    assert_eq!(api.get("w").await?.data["spec"]["size"], 1);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Status subresource

#[tokio::test]
async fn replace_status_changes_only_status() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    let mut object = api.create(&pp(), &widget("w", spec(1))).await?;
    object.data["spec"]["size"] = json!(9);
    object.labels_mut().insert("ignored".into(), "yes".into());
    object.data["status"] = json!({"phase": "Ready", "replicas": 3});
    let updated = api.replace_status("w", &pp(), &object).await?;
    assert_eq!(
        updated.data["status"],
        json!({"phase": "Ready", "replicas": 3})
    );
    let stored = api.get("w").await?;
    assert_eq!(stored.data["status"]["phase"], "Ready");
    assert_eq!(stored.data["spec"]["size"], 1, "spec changes are ignored");
    assert!(
        !stored.labels().contains_key("ignored"),
        "metadata changes are ignored"
    );
    Ok(())
}

#[tokio::test]
async fn patch_status_changes_only_status() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    api.create(&pp(), &widget("w", spec(1))).await?;
    let patched = api
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 9}, "status": {"phase": "Ready"}})),
        )
        .await?;
    assert_eq!(patched.data["status"]["phase"], "Ready");
    assert_eq!(patched.data["spec"]["size"], 1, "spec changes are ignored");
    assert_eq!(api.get("w").await?.data["spec"]["size"], 1);
    Ok(())
}

#[tokio::test]
async fn main_resource_writes_leave_status_alone() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    api.create(&pp(), &widget("w", spec(1))).await?;
    api.patch_status(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Ready"}})),
    )
    .await?;
    // A replace without status does not clear it; one with another status does not change it.
    let mut object = api.get("w").await?;
    object.data.as_object_mut().unwrap().remove("status");
    object.data["spec"]["size"] = json!(2);
    let replaced = api.replace("w", &pp(), &object).await?;
    assert_eq!(replaced.data["spec"]["size"], 2);
    assert_eq!(replaced.data["status"]["phase"], "Ready");
    let patched = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 3}, "status": {"phase": "Failed"}})),
        )
        .await?;
    assert_eq!(patched.data["spec"]["size"], 3);
    assert_eq!(patched.data["status"]["phase"], "Ready");
    assert_eq!(api.get("w").await?.data["status"]["phase"], "Ready");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Delete

fn with_finalizers(mut object: DynamicObject, finalizers: &[&str]) -> DynamicObject {
    object.metadata.finalizers = Some(finalizers.iter().map(|f| (*f).to_owned()).collect());
    object
}

/// As kube-apiserver's generic store (no ReturnDeletedObject): kube's `delete` gives
/// `Either::Right`, which callers take to mean "gone".
#[tokio::test]
async fn delete_answers_a_success_status_when_the_object_is_gone_at_once() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    let created = api.create(&pp(), &widget("w", spec(1))).await?;
    let status = api
        .delete("w", &DeleteParams::default())
        .await?
        .right()
        .expect("a Status rather than the object");
    assert!(status.is_success(), "{status:?}");
    let details = status.details.expect("details");
    assert_eq!(details.name, "w");
    assert_eq!(details.group, GROUP);
    assert_eq!(Some(details.uid), created.uid());
    assert!(is_gone(&api, "w").await);
    Ok(())
}

#[tokio::test]
async fn delete_with_finalizers_sets_deletion_timestamp() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    let created = api
        .create(
            &pp(),
            &with_finalizers(widget("w", spec(1)), &["test.example.com/hold"]),
        )
        .await?;
    let deleting = api
        .delete("w", &DeleteParams::default())
        .await?
        .left()
        .expect("the object, still there, rather than a Status");
    assert!(deleting.metadata.deletion_timestamp.is_some());
    // A new resourceVersion: watchers see the change as MODIFIED.
    assert!(rv(&deleting) > rv(&created));
    let stored = api.get("w").await?;
    assert!(stored.metadata.deletion_timestamp.is_some());
    assert_eq!(stored.finalizers(), ["test.example.com/hold"]);
    Ok(())
}

#[tokio::test]
async fn an_object_goes_when_its_last_finalizer_is_removed() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    api.create(
        &pp(),
        &with_finalizers(
            widget("w", spec(1)),
            &["test.example.com/a", "test.example.com/b"],
        ),
    )
    .await?;
    api.delete("w", &DeleteParams::default()).await?;
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": ["test.example.com/b"]}})),
    )
    .await?;
    assert_eq!(api.get("w").await?.finalizers(), ["test.example.com/b"]);
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    assert!(is_gone(&api, "w").await);
    Ok(())
}

#[tokio::test]
async fn adding_a_finalizer_while_deleting_is_rejected() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    api.create(
        &pp(),
        &with_finalizers(widget("w", spec(1)), &["test.example.com/a"]),
    )
    .await?;
    api.delete("w", &DeleteParams::default()).await?;
    let status = api_error(
        api.patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"finalizers": ["test.example.com/a", "test.example.com/new"]}}),
            ),
        )
        .await,
    );
    assert_status(&status, 422, "Invalid");
    assert_eq!(api.get("w").await?.finalizers(), ["test.example.com/a"]);
    Ok(())
}

fn preconditions(uid: Option<&str>, resource_version: Option<&str>) -> DeleteParams {
    DeleteParams {
        preconditions: Some(Preconditions {
            uid: uid.map(str::to_owned),
            resource_version: resource_version.map(str::to_owned),
        }),
        ..DeleteParams::default()
    }
}

#[tokio::test]
async fn delete_with_a_mismatched_uid_precondition_is_409() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    let created = api.create(&pp(), &widget("w", spec(1))).await?;
    let status = api_error(
        api.delete("w", &preconditions(Some("not-the-uid"), None))
            .await,
    );
    assert_status(&status, 409, "Conflict");
    api.get("w").await?;
    api.delete("w", &preconditions(created.uid().as_deref(), None))
        .await?;
    assert!(is_gone(&api, "w").await);
    Ok(())
}

#[tokio::test]
async fn delete_with_a_mismatched_resource_version_precondition_is_409() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    let created = api.create(&pp(), &widget("w", spec(1))).await?;
    let current = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await?;
    let status = api_error(
        api.delete(
            "w",
            &preconditions(None, created.resource_version().as_deref()),
        )
        .await,
    );
    assert_status(&status, 409, "Conflict");
    api.get("w").await?;
    api.delete(
        "w",
        &preconditions(None, current.resource_version().as_deref()),
    )
    .await?;
    assert!(is_gone(&api, "w").await);
    Ok(())
}

#[tokio::test]
async fn background_propagation_deletes_dependents() -> Result {
    common::skip_on_real_server!(
        "dependents are deleted by the garbage collector of kube-controller-manager, which this control plane does not run"
    );
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    let cms = config_maps(&client, t.ns());
    let owner = api.create(&pp(), &widget("owner", spec(1))).await?;
    cms.create(&pp(), &dependent_config_map("dependent", &owner, &[]))
        .await?;
    let mut child = widget("child", spec(1));
    child.metadata.owner_references = Some(vec![owned_by(&owner)]);
    api.create(&pp(), &child).await?;
    cms.create(&pp(), &config_map("unrelated")).await?;
    api.delete("owner", &DeleteParams::background()).await?;
    assert!(is_gone(&api, "owner").await);
    assert!(is_gone(&cms, "dependent").await);
    assert!(is_gone(&api, "child").await);
    cms.get("unrelated").await?;
    Ok(())
}

/// The owner waits, with the `foregroundDeletion` finalizer, for the dependents whose reference
/// has `blockOwnerDeletion: true`; every dependent is deleted.
#[tokio::test]
async fn foreground_propagation_keeps_the_owner_until_blocking_dependents_are_gone() -> Result {
    common::skip_on_real_server!(
        "dependents are deleted by the garbage collector of kube-controller-manager, which this control plane does not run"
    );
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    let cms = config_maps(&client, t.ns());
    let owner = api.create(&pp(), &widget("owner", spec(1))).await?;
    let mut blocking = dependent_config_map("blocking", &owner, &["test.example.com/hold"]);
    blocking.metadata.owner_references.as_mut().unwrap()[0].block_owner_deletion = Some(true);
    cms.create(&pp(), &blocking).await?;
    cms.create(
        &pp(),
        &dependent_config_map("loose", &owner, &["test.example.com/hold"]),
    )
    .await?;
    cms.create(&pp(), &dependent_config_map("plain", &owner, &[]))
        .await?;
    let deleting = api
        .delete("owner", &DeleteParams::foreground())
        .await?
        .left()
        .expect("the owner, still there");
    assert!(deleting.metadata.deletion_timestamp.is_some());
    assert!(
        deleting
            .finalizers()
            .iter()
            .any(|f| f == "foregroundDeletion")
    );
    // Every dependent is being deleted; those held by their own finalizer stay for now.
    assert!(is_gone(&cms, "plain").await);
    for name in ["blocking", "loose"] {
        assert!(
            cms.get(name).await?.metadata.deletion_timestamp.is_some(),
            "{name}"
        );
    }
    let owner_now = api.get("owner").await?;
    assert!(
        owner_now
            .finalizers()
            .iter()
            .any(|f| f == "foregroundDeletion")
    );
    // Releasing the blocking dependent releases the owner; the loose one does not hold it.
    cms.patch(
        "blocking",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    assert!(is_gone(&cms, "blocking").await);
    assert!(is_gone(&api, "owner").await);
    assert!(
        cms.get("loose")
            .await?
            .metadata
            .deletion_timestamp
            .is_some()
    );
    Ok(())
}

#[tokio::test]
async fn orphan_propagation_keeps_dependents_without_the_owner_reference() -> Result {
    common::skip_on_real_server!(
        "dependents are deleted by the garbage collector of kube-controller-manager, which this control plane does not run"
    );
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    let cms = config_maps(&client, t.ns());
    let owner = api.create(&pp(), &widget("owner", spec(1))).await?;
    let other = api.create(&pp(), &widget("other", spec(1))).await?;
    cms.create(&pp(), &dependent_config_map("dependent", &owner, &[]))
        .await?;
    let mut shared = dependent_config_map("shared", &owner, &[]);
    shared
        .metadata
        .owner_references
        .as_mut()
        .unwrap()
        .push(owned_by(&other));
    cms.create(&pp(), &shared).await?;
    api.delete("owner", &DeleteParams::orphan()).await?;
    assert!(is_gone(&api, "owner").await);
    let dependent = cms.get("dependent").await?;
    assert!(
        dependent.owner_references().is_empty(),
        "{:?}",
        dependent.owner_references()
    );
    let shared = cms.get("shared").await?;
    let owners: Vec<&str> = shared
        .owner_references()
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(
        owners,
        ["other"],
        "only the reference to the deleted owner goes"
    );
    Ok(())
}

#[tokio::test]
async fn delete_of_a_missing_object_is_404() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let status = api_error(
        widgets(&client, t.ns())
            .delete("missing", &DeleteParams::default())
            .await,
    );
    assert_status(&status, 404, "NotFound");
    assert_eq!(status.details.as_ref().expect("details").name, "missing");
    Ok(())
}

#[tokio::test]
async fn delete_collection_deletes_only_matching_objects() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let (api, other) = labelled_widgets(&t).await?;
    let deleted = api
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("env=prod"),
        )
        .await?;
    let list = deleted.left().expect("the list of deleted objects");
    let deleted: BTreeSet<String> = list.iter().map(ResourceExt::name_any).collect();
    assert_eq!(deleted, set(&["a", "b"]));
    assert_eq!(names(&api, &ListParams::default()).await?, set(&["c", "d"]));
    // The same labels in another namespace are untouched.
    widgets(&client, &other).get("elsewhere").await?;
    Ok(())
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_content() -> Result {
    common::skip_on_real_server!(
        "a namespace's content is deleted by the namespace controller of kube-controller-manager, which this control plane does not run: it would stay Terminating"
    );
    let t = common::start().await;
    let client = t.client.clone();
    let namespaces = Api::<Namespace>::all(client.clone());
    namespaces.create(&pp(), &namespace("doomed")).await?;
    widgets(&client, "doomed")
        .create(&pp(), &widget("w", spec(1)))
        .await?;
    config_maps(&client, "doomed")
        .create(&pp(), &config_map("c"))
        .await?;
    config_maps(&client, t.ns())
        .create(&pp(), &config_map("c"))
        .await?;
    namespaces
        .delete("doomed", &DeleteParams::default())
        .await?;
    assert!(is_gone(&widgets(&client, "doomed"), "w").await);
    assert!(is_gone(&config_maps(&client, "doomed"), "c").await);
    assert!(is_gone(&namespaces, "doomed").await);
    config_maps(&client, t.ns()).get("c").await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Errors

#[tokio::test]
async fn every_error_is_a_status_with_code_and_reason() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let api = widgets(&client, t.ns());
    let stale = api.create(&pp(), &widget("w", spec(1))).await?;
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 2}})),
    )
    .await?;
    let mut wrong_namespace = widget("x", spec(1));
    wrong_namespace.metadata.namespace = Some("kube-system".into());
    let cases: Vec<(&str, Box<Status>, u16, &str)> = vec![
        (
            "get of a missing object",
            api_error(api.get("missing").await),
            404,
            "NotFound",
        ),
        (
            "create of an existing name",
            api_error(api.create(&pp(), &widget("w", spec(1))).await),
            409,
            "AlreadyExists",
        ),
        (
            "replace with a stale resourceVersion",
            api_error(api.replace("w", &pp(), &stale).await),
            409,
            "Conflict",
        ),
        (
            "create violating the schema",
            api_error(
                api.create(&pp(), &widget("y", json!({"owner": "a", "size": 99})))
                    .await,
            ),
            422,
            "Invalid",
        ),
        (
            "create with an invalid name",
            api_error(api.create(&pp(), &widget("Not_A_Name", spec(1))).await),
            422,
            "Invalid",
        ),
        (
            "create with a body namespace other than the path's",
            api_error(api.create(&pp(), &wrong_namespace).await),
            400,
            "BadRequest",
        ),
        (
            "list with a malformed label selector",
            api_error(api.list(&ListParams::default().labels("a in (")).await),
            400,
            "BadRequest",
        ),
        (
            "strategic merge patch on a custom resource",
            api_error(
                api.patch(
                    "w",
                    &PatchParams::default(),
                    &Patch::Strategic(json!({"spec": {"size": 3}})),
                )
                .await,
            ),
            415,
            "UnsupportedMediaType",
        ),
    ];
    for (what, status, code, reason) in cases {
        assert!(status.is_failure(), "{what}: {status:?}");
        assert_eq!(
            (status.code, status.reason.as_str()),
            (code, reason),
            "{what}: {status:?}"
        );
        assert!(!status.message.is_empty(), "{what}: {status:?}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Request log

fn record(
    verb: &str,
    group: &str,
    resource: &str,
    subresource: &str,
    namespace: &str,
    name: &str,
    code: u16,
) -> (String, String, String, String, String, String, String, u16) {
    (
        verb.into(),
        group.into(),
        "v1".into(),
        resource.into(),
        subresource.into(),
        namespace.into(),
        name.into(),
        code,
    )
}

#[tokio::test]
async fn the_request_log_records_every_call() -> Result {
    common::skip_on_real_server!("reads the test server's request log");
    let t = common::start().await;
    let (server, client, ns) = (t.server(), t.client.clone(), t.ns());
    let api = widgets(&client, ns);
    // Set-up calls are forgotten.
    api.create(&pp(), &widget("old", spec(1))).await?;
    server.clear_requests();

    let mut object = api.create(&pp(), &widget("w", spec(1))).await?;
    api.get("w").await?;
    api.list(&ListParams::default()).await?;
    drop(api.watch(&WatchParams::default().timeout(1), "0").await?);
    object.data["spec"]["size"] = json!(2);
    let object = api.replace("w", &pp(), &object).await?;
    api.replace_status("w", &pp(), &object).await?;
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 3}})),
    )
    .await?;
    api.patch_status(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Ready"}})),
    )
    .await?;
    let _ = api.get("missing").await;
    config_maps(&client, "kube-system")
        .create(&pp(), &config_map("c"))
        .await?;
    gadgets(&client).get("missing").await.ok();
    api.delete("w", &DeleteParams::default()).await?;
    api.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await?;
    Api::<DynamicObject>::all_with(client.clone(), &widget_resource())
        .list(&ListParams::default())
        .await?;

    let logged: Vec<_> = server
        .requests()
        .into_iter()
        .map(|r: RequestRecord| {
            (
                r.verb,
                r.group,
                r.version,
                r.resource,
                r.subresource,
                r.namespace,
                r.name,
                r.code,
            )
        })
        .collect();
    let expected = vec![
        record("create", GROUP, "widgets", "", ns, "", 201),
        record("get", GROUP, "widgets", "", ns, "w", 200),
        record("list", GROUP, "widgets", "", ns, "", 200),
        record("watch", GROUP, "widgets", "", ns, "", 200),
        record("update", GROUP, "widgets", "", ns, "w", 200),
        record("update", GROUP, "widgets", "status", ns, "w", 200),
        record("patch", GROUP, "widgets", "", ns, "w", 200),
        record("patch", GROUP, "widgets", "status", ns, "w", 200),
        record("get", GROUP, "widgets", "", ns, "missing", 404),
        record("create", "", "configmaps", "", "kube-system", "", 201),
        record("get", GROUP, "gadgets", "", "", "missing", 404),
        record("delete", GROUP, "widgets", "", ns, "w", 200),
        record("deletecollection", GROUP, "widgets", "", ns, "", 200),
        record("list", GROUP, "widgets", "", "", "", 200),
    ];
    assert_eq!(logged, expected);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Discovery

#[tokio::test]
async fn discovery_finds_the_fixture_kinds_and_the_builtins() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let discovery = Discovery::new(client.clone()).run().await?;
    let expected = [
        (GROUP, "v1", "Widget", "widgets", Scope::Namespaced),
        (GROUP, "v1", "Gadget", "gadgets", Scope::Cluster),
        ("", "v1", "Namespace", "namespaces", Scope::Cluster),
        ("", "v1", "ConfigMap", "configmaps", Scope::Namespaced),
        ("", "v1", "Secret", "secrets", Scope::Namespaced),
        (
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            Scope::Namespaced,
        ),
        ("events.k8s.io", "v1", "Event", "events", Scope::Namespaced),
        (
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            Scope::Namespaced,
        ),
    ];
    for (group, version, kind, plural, scope) in expected {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, caps) = discovery
            .resolve_gvk(&gvk)
            .unwrap_or_else(|| panic!("{gvk:?} is discovered"));
        assert_eq!(resource.plural, plural, "{gvk:?}");
        assert_eq!(caps.scope, scope, "{gvk:?}");
        for verb in [
            "create", "get", "list", "watch", "update", "patch", "delete",
        ] {
            assert!(caps.supports_operation(verb), "{gvk:?} supports {verb}");
        }
    }
    let (_, widget_caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk(GROUP, "v1", "Widget"))
        .unwrap();
    assert!(
        widget_caps
            .subresources
            .iter()
            .any(|(sub, _)| sub.plural == "status"),
        "widgets/status is discovered"
    );
    let (_, gadget_caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk(GROUP, "v1", "Gadget"))
        .unwrap();
    assert!(
        gadget_caps.subresources.is_empty(),
        "gadgets have no status subresource"
    );
    Ok(())
}

#[tokio::test]
async fn version_answers() -> Result {
    let t = common::start().await;
    let client = t.client.clone();
    let info = client.apiserver_version().await?;
    assert_eq!(info.major, "1");
    assert!(!info.minor.is_empty());
    assert!(info.git_version.starts_with('v'), "{}", info.git_version);
    Ok(())
}
