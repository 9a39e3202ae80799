//! CustomResourceDefinitions written at run time, as apiextensions-apiserver handles them: a
//! CRD created by POST or by server-side apply serves its kind, an update changes what is
//! served, a delete deletes the instances and stops serving the kind, and the naming and
//! establishing controllers' status (acceptedNames, NamesAccepted, Established) is set.

mod common;

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, ResourceExt,
    api::{
        ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
    },
    runtime::wait::{await_condition, conditions},
};
use serde_json::{Value, json};

const GROUP: &str = "dyn.example.com";

/// A namespaced `Gizmo` CRD whose `spec.color` is one of `colors`.
fn gizmo_crd(colors: &[&str]) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("gizmos.{GROUP}")},
        "spec": {
            "group": GROUP,
            "names": {"kind": "Gizmo", "plural": "gizmos", "shortNames": ["gz"]},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {
                        "type": "object",
                        "properties": {"color": {"type": "string", "enum": colors}},
                    }},
                }},
            }],
        },
    })
}

fn gizmo_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, "v1", "Gizmo"), "gizmos")
}

fn gizmos(client: &kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), "default", &gizmo_resource())
}

fn gizmo(name: &str, color: &str) -> DynamicObject {
    let mut object = DynamicObject::new(name, &gizmo_resource());
    object.data = json!({"spec": {"color": color}});
    object
}

fn crd_object(value: Value) -> CustomResourceDefinition {
    serde_json::from_value(value).expect("a CRD")
}

fn status_code(error: kube::Error) -> u16 {
    match error {
        kube::Error::Api(status) => status.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The condition `kind` of a CRD as (status, reason).
fn condition(crd: &CustomResourceDefinition, kind: &str) -> Option<(String, String)> {
    crd.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
}

async fn create_gizmo_crd(client: &kube::Client, colors: &[&str]) -> CustomResourceDefinition {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &crd_object(gizmo_crd(colors)))
        .await
        .expect("the CRD is created")
}

#[tokio::test]
async fn a_crd_created_by_server_side_apply_serves_its_kind() {
    let (_server, client) = common::start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = format!("gizmos.{GROUP}");
    crds.patch(
        &name,
        &PatchParams::apply("crd-tests"),
        &Patch::Apply(gizmo_crd(&["red"])),
    )
    .await
    .expect("the CRD is applied");
    let api = gizmos(&client);
    api.create(&PostParams::default(), &gizmo("g1", "red"))
        .await
        .expect("a Gizmo is created");
    let listed = api.list(&Default::default()).await.expect("Gizmos list");
    assert_eq!(
        listed
            .items
            .iter()
            .map(ResourceExt::name_any)
            .collect::<Vec<_>>(),
        ["g1"]
    );
    let crd = crds.get(&name).await.expect("the CRD");
    assert_eq!(
        condition(&crd, "Established"),
        Some(("True".into(), "InitialNamesAccepted".into()))
    );
}

#[tokio::test]
async fn a_created_crd_gets_kube_apiservers_status() {
    let (_server, client) = common::start().await;
    let created = create_gizmo_crd(&client, &["red"]).await;
    // As kube-apiserver answers the create: defaulted names, stored version, no conditions
    // yet (the controllers set them right after).
    assert_eq!(created.spec.names.singular.as_deref(), Some("gizmo"));
    assert_eq!(created.spec.names.list_kind.as_deref(), Some("GizmoList"));
    assert_eq!(created.metadata.generation, Some(1));
    let status = created.status.clone().expect("status");
    assert_eq!(status.stored_versions, Some(vec!["v1".to_owned()]));
    assert!(status.conditions.unwrap_or_default().is_empty());

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crds.get(&created.name_any()).await.expect("the CRD");
    let status = crd.status.clone().expect("status");
    let accepted = status.accepted_names.expect("acceptedNames");
    assert_eq!(accepted.kind, "Gizmo");
    assert_eq!(accepted.plural, "gizmos");
    assert_eq!(accepted.singular.as_deref(), Some("gizmo"));
    assert_eq!(accepted.list_kind.as_deref(), Some("GizmoList"));
    assert_eq!(accepted.short_names, Some(vec!["gz".to_owned()]));
    assert_eq!(
        condition(&crd, "NamesAccepted"),
        Some(("True".into(), "NoConflicts".into()))
    );
    assert_eq!(
        condition(&crd, "Established"),
        Some(("True".into(), "InitialNamesAccepted".into()))
    );
}

#[tokio::test]
async fn await_condition_sees_a_created_crd_established() {
    let (_server, client) = common::start().await;
    let created = create_gizmo_crd(&client, &["red"]).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let established = tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(crds, &created.name_any(), conditions::is_crd_established()),
    )
    .await
    .expect("the CRD is established in time")
    .expect("the watch works");
    assert!(established.is_some());
}

#[tokio::test]
async fn preloaded_crds_carry_the_controllers_status() {
    let (_server, client) = common::start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let widgets = crds.get("widgets.test.example.com").await.expect("the CRD");
    assert_eq!(
        condition(&widgets, "Established"),
        Some(("True".into(), "InitialNamesAccepted".into()))
    );
    let status = widgets.status.expect("status");
    let accepted = status.accepted_names.expect("acceptedNames");
    assert_eq!(accepted.kind, "Widget");
    assert_eq!(accepted.list_kind.as_deref(), Some("WidgetList"));
    assert_eq!(accepted.short_names, Some(vec!["wdg".to_owned()]));
    assert_eq!(accepted.categories, Some(vec!["testing".to_owned()]));
    assert_eq!(status.stored_versions, Some(vec!["v1".to_owned()]));
    let established = tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(
            crds,
            "gadgets.test.example.com",
            conditions::is_crd_established(),
        ),
    )
    .await
    .expect("established in time")
    .expect("the watch works");
    assert!(established.is_some());
}

#[tokio::test]
async fn updating_a_crd_changes_the_schema_served() {
    let (_server, client) = common::start().await;
    create_gizmo_crd(&client, &["red"]).await;
    let api = gizmos(&client);
    let refused = api
        .create(&PostParams::default(), &gizmo("blue", "blue"))
        .await
        .expect_err("blue is not an allowed color yet");
    assert_eq!(status_code(refused), 422);

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = format!("gizmos.{GROUP}");
    let patch = json!({"spec": {"versions": gizmo_crd(&["red", "blue"])["spec"]["versions"]}});
    let updated = crds
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("the CRD is patched");
    assert_eq!(updated.metadata.generation, Some(2));
    api.create(&PostParams::default(), &gizmo("blue", "blue"))
        .await
        .expect("blue is allowed now");

    // Server-side apply of the CRD changes it too.
    crds.patch(
        &name,
        &PatchParams::apply("crd-tests").force(),
        &Patch::Apply(gizmo_crd(&["red", "blue", "green"])),
    )
    .await
    .expect("the CRD is applied");
    api.create(&PostParams::default(), &gizmo("green", "green"))
        .await
        .expect("green is allowed now");

    // And a PUT that drops an allowed value.
    let mut current = crds.get(&name).await.expect("the CRD");
    current.spec = crd_object(gizmo_crd(&["red"])).spec;
    crds.replace(&name, &PostParams::default(), &current)
        .await
        .expect("the CRD is replaced");
    let refused = api
        .create(&PostParams::default(), &gizmo("green2", "green"))
        .await
        .expect_err("green is no longer allowed");
    assert_eq!(status_code(refused), 422);
}

#[tokio::test]
async fn updating_a_crd_changes_its_printer_columns_and_short_names() {
    let (server, client) = common::start().await;
    create_gizmo_crd(&client, &["red"]).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = format!("gizmos.{GROUP}");
    let mut crd = gizmo_crd(&["red"]);
    crd["spec"]["names"]["shortNames"] = json!(["gzm"]);
    crd["spec"]["versions"][0]["additionalPrinterColumns"] =
        json!([{"name": "Color", "type": "string", "jsonPath": ".spec.color"}]);
    crds.patch(&name, &PatchParams::apply("crd-tests"), &Patch::Apply(crd))
        .await
        .expect("the CRD is applied");

    let discovery: Value = get_json(&server, &format!("/apis/{GROUP}/v1")).await;
    let discovered = discovery["resources"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == "gizmos"))
        .cloned()
        .expect("gizmos discovered");
    assert_eq!(discovered["shortNames"], json!(["gzm"]));

    gizmos(&client)
        .create(&PostParams::default(), &gizmo("g1", "red"))
        .await
        .expect("a Gizmo is created");
    let table = client
        .request::<Value>(
            axum::http::Request::get(format!("/apis/{GROUP}/v1/namespaces/default/gizmos"))
                .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
                .body(Vec::new())
                .expect("a request"),
        )
        .await
        .expect("a Table");
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(columns, ["Name", "Color"]);
    assert_eq!(table["rows"][0]["cells"][1], "red");
}

/// A GET through a plain kube client, for non-resource paths such as discovery.
async fn get_json(server: &test_apiserver::TestApiServer, path: &str) -> Value {
    let client = common::client_for(server);
    client
        .request::<Value>(
            axum::http::Request::get(path)
                .body(Vec::new())
                .expect("a request"),
        )
        .await
        .expect("a GET")
}

#[tokio::test]
async fn deleting_a_crd_deletes_its_objects_and_stops_serving_its_kind() {
    let (server, client) = common::start().await;
    create_gizmo_crd(&client, &["red"]).await;
    let api = gizmos(&client);
    for name in ["g1", "g2"] {
        api.create(&PostParams::default(), &gizmo(name, "red"))
            .await
            .expect("a Gizmo is created");
    }
    let before = server.object_count();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = format!("gizmos.{GROUP}");
    let answer = crds
        .delete(&name, &DeleteParams::default())
        .await
        .expect("the CRD is deleted");
    // kube-apiserver answers with the CRD marked for deletion, held by its cleanup finalizer.
    let marked = answer.left().expect("the CRD itself is the answer");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(
        marked.metadata.finalizers,
        Some(vec![
            "customresourcecleanup.apiextensions.k8s.io".to_owned()
        ])
    );
    assert_eq!(
        condition(&marked, "Terminating"),
        Some(("True".into(), "InstanceDeletionPending".into()))
    );
    assert_eq!(server.object_count(), before - 3, "the CRD and both Gizmos");
    assert_eq!(status_code(crds.get(&name).await.expect_err("gone")), 404);
    let gone = api
        .list(&Default::default())
        .await
        .expect_err("the kind is no longer served");
    assert_eq!(status_code(gone), 404);
    let discovery = client
        .request::<Value>(
            axum::http::Request::get(format!("/apis/{GROUP}/v1"))
                .body(Vec::new())
                .expect("a request"),
        )
        .await
        .expect_err("the group is gone from discovery");
    assert_eq!(status_code(discovery), 404);

    // Created again, the kind starts empty.
    create_gizmo_crd(&client, &["red"]).await;
    let listed = api.list(&Default::default()).await.expect("Gizmos list");
    assert!(listed.items.is_empty());
}

#[tokio::test]
async fn a_deleted_crd_waits_for_instances_held_by_finalizers() {
    let (_server, client) = common::start().await;
    create_gizmo_crd(&client, &["red"]).await;
    let api = gizmos(&client);
    let mut held = gizmo("held", "red");
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &held)
        .await
        .expect("a Gizmo is created");
    api.create(&PostParams::default(), &gizmo("free", "red"))
        .await
        .expect("a Gizmo is created");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = format!("gizmos.{GROUP}");
    crds.delete(&name, &DeleteParams::default())
        .await
        .expect("the CRD is deleted");

    let crd = crds.get(&name).await.expect("the CRD waits");
    assert_eq!(
        condition(&crd, "Terminating"),
        Some(("True".into(), "InstanceDeletionInProgress".into()))
    );
    assert_eq!(
        status_code(api.get("free").await.expect_err("deleted")),
        404
    );
    let held = api.get("held").await.expect("held by its finalizer");
    assert!(held.metadata.deletion_timestamp.is_some());
    // No new instances while the CRD terminates, as kube's CRD handler refuses them.
    let refused = api
        .create(&PostParams::default(), &gizmo("late", "red"))
        .await
        .expect_err("create is refused");
    match refused {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 405);
            assert_eq!(
                status.message,
                "create not allowed while custom resource definition is terminating"
            );
        }
        other => panic!("expected a 405, got {other:?}"),
    }

    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("the finalizer is removed");
    assert_eq!(status_code(crds.get(&name).await.expect_err("gone")), 404);
    assert_eq!(
        status_code(api.list(&Default::default()).await.expect_err("unserved")),
        404
    );
}

#[tokio::test]
async fn a_crd_whose_kind_is_taken_in_its_group_is_not_served() {
    let (_server, client) = common::start().await;
    create_gizmo_crd(&client, &["red"]).await;
    let mut clash = gizmo_crd(&["red"]);
    clash["metadata"]["name"] = json!(format!("gadgets.{GROUP}"));
    clash["spec"]["names"] = json!({"kind": "Gizmo", "plural": "gadgets"});
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &crd_object(clash))
        .await
        .expect("the CRD is stored");
    let crd = crds
        .get(&format!("gadgets.{GROUP}"))
        .await
        .expect("the CRD");
    assert_eq!(
        condition(&crd, "NamesAccepted"),
        // Kind and listKind both clash; as kube's naming controller, the last check reports.
        Some(("False".into(), "ListKindConflict".into()))
    );
    assert_eq!(
        condition(&crd, "Established"),
        Some(("False".into(), "NotAccepted".into()))
    );
    let gadgets =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, "v1", "Gizmo"), "gadgets");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &gadgets);
    assert_eq!(
        status_code(api.list(&Default::default()).await.expect_err("unserved")),
        404
    );

    // Once the kind is free, the naming controller accepts it.
    crds.delete(&format!("gizmos.{GROUP}"), &DeleteParams::default())
        .await
        .expect("the first CRD is deleted");
    let crd = crds
        .get(&format!("gadgets.{GROUP}"))
        .await
        .expect("the CRD");
    assert_eq!(
        condition(&crd, "Established"),
        Some(("True".into(), "InitialNamesAccepted".into()))
    );
    api.list(&Default::default()).await.expect("served now");
}

#[tokio::test]
async fn an_invalid_crd_is_refused_and_not_stored() {
    let (server, client) = common::start().await;
    let before = server.object_count();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut wrong_name = gizmo_crd(&["red"]);
    wrong_name["metadata"]["name"] = json!("gizmo.dyn.example.com");
    let refused = crds
        .create(&PostParams::default(), &crd_object(wrong_name))
        .await
        .expect_err("the name must be plural.group");
    match refused {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 422);
            assert_eq!(
                status.message,
                "CustomResourceDefinition.apiextensions.k8s.io \"gizmo.dyn.example.com\" is invalid: \
                 metadata.name: Invalid value: \"gizmo.dyn.example.com\": must be spec.names.plural+\".\"+spec.group"
            );
        }
        other => panic!("expected a 422, got {other:?}"),
    }
    let mut two_storage = gizmo_crd(&["red"]);
    let mut v2 = two_storage["spec"]["versions"][0].clone();
    v2["name"] = json!("v2");
    two_storage["spec"]["versions"]
        .as_array_mut()
        .expect("versions")
        .push(v2);
    let refused = crds
        .create(&PostParams::default(), &crd_object(two_storage))
        .await
        .expect_err("exactly one storage version");
    assert_eq!(status_code(refused), 422);
    assert_eq!(server.object_count(), before);
}
