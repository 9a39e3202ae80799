//! CustomResourceDefinitions written at run time, as apiextensions-apiserver handles them: a
//! CRD created by POST or by server-side apply serves its kind, an update changes what is
//! served, a delete deletes the instances and stops serving the kind, and the naming and
//! establishing controllers' status (acceptedNames, NamesAccepted, Established) is set.
//!
//! Each test has its own group (`<random>.dyn.test.example.com`), so the tests can share a real
//! server. There the controllers and the serving of a changed CRD work after the request
//! returns, so what follows a CRD write is polled for ([`common::eventually`]); the test server
//! does it all inside the request, where the first check holds.

mod common;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, ResourceExt,
    api::{
        ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
    },
    runtime::wait::{await_condition, conditions},
};
use serde_json::{Value, json};

/// A test's target and its own API group.
struct Dyn {
    t: common::Target,
    group: String,
}

impl Dyn {
    async fn start() -> Self {
        let t = common::start().await;
        let group = format!("{}.dyn.test.example.com", t.suffix());
        Self { t, group }
    }

    fn client(&self) -> kube::Client {
        self.t.client.clone()
    }

    fn crds(&self) -> Api<CustomResourceDefinition> {
        Api::all(self.client())
    }

    /// `gizmos.<group>`.
    fn name(&self) -> String {
        format!("gizmos.{}", self.group)
    }

    /// A namespaced `Gizmo` CRD whose `spec.color` is one of `colors`.
    fn gizmo_crd(&self, colors: &[&str]) -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": self.name()},
            "spec": {
                "group": self.group,
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

    fn gizmo_resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(&self.group, "v1", "Gizmo"),
            "gizmos",
        )
    }

    fn gizmos(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.client(), self.t.ns(), &self.gizmo_resource())
    }

    fn gizmo(&self, name: &str, color: &str) -> DynamicObject {
        let mut object = DynamicObject::new(name, &self.gizmo_resource());
        object.data = json!({"spec": {"color": color}});
        object
    }

    async fn create_gizmo_crd(&self, colors: &[&str]) -> CustomResourceDefinition {
        self.crds()
            .create(&PostParams::default(), &crd_object(self.gizmo_crd(colors)))
            .await
            .expect("the CRD is created")
    }

    /// Waits until the kind of `api` is served (a list is not 404).
    async fn served(&self, api: &Api<DynamicObject>) {
        common::eventually("the kind to be served", || async {
            match api.list(&Default::default()).await {
                Ok(_) => Some(()),
                Err(kube::Error::Api(status)) if status.code == 404 => None,
                Err(e) => panic!("listing: {e}"),
            }
        })
        .await;
    }

    /// Waits until a create of `object` would be answered `code` (200 for success), trying
    /// with dryRun so nothing is stored while the served schema catches up.
    async fn creating_answers(&self, object: &DynamicObject, code: u16) {
        let api = self.gizmos();
        let dry_run = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        common::eventually(&format!("a create to be answered {code}"), || async {
            let answer = match api.create(&dry_run, object).await {
                Ok(_) => 200,
                Err(kube::Error::Api(status)) => status.code,
                Err(e) => panic!("creating: {e}"),
            };
            (answer == code).then_some(())
        })
        .await;
    }

    /// Waits until the CRD `name` has the condition `kind` (and returns the CRD).
    async fn with_condition(&self, name: &str, kind: &str) -> CustomResourceDefinition {
        let crds = self.crds();
        common::eventually(&format!("{name} to have a {kind} condition"), || async {
            let crd = crds.get(name).await.expect("the CRD");
            condition(&crd, kind).map(|_| crd)
        })
        .await
    }

    /// Waits until GET of the CRD `name` is 404.
    async fn crd_gone(&self, name: &str) {
        let crds = self.crds();
        common::eventually(&format!("{name} to be gone"), || async {
            match crds.get(name).await {
                Ok(_) => None,
                Err(e) => {
                    assert_eq!(status_code(e), 404);
                    Some(())
                }
            }
        })
        .await;
    }

    /// Deletes this test's CRDs (on the real server they would stay for every later test).
    async fn cleanup(self, names: &[String]) {
        for name in names {
            match self.crds().delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => panic!("deleting {name}: {e}"),
            }
        }
    }
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

/// A GET of a non-resource path such as discovery.
async fn get_json(client: &kube::Client, path: &str) -> kube::Result<Value> {
    client
        .request::<Value>(
            axum::http::Request::get(path)
                .body(Vec::new())
                .expect("a request"),
        )
        .await
}

#[tokio::test]
async fn a_crd_created_by_server_side_apply_serves_its_kind() {
    let d = Dyn::start().await;
    let crds = d.crds();
    let name = d.name();
    crds.patch(
        &name,
        &PatchParams::apply("crd-tests"),
        &Patch::Apply(d.gizmo_crd(&["red"])),
    )
    .await
    .expect("the CRD is applied");
    let api = d.gizmos();
    d.served(&api).await;
    api.create(&PostParams::default(), &d.gizmo("g1", "red"))
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
    let crd = d.with_condition(&name, "Established").await;
    assert_eq!(
        condition(&crd, "Established"),
        Some(("True".into(), "InitialNamesAccepted".into()))
    );
    d.cleanup(&[name]).await;
}

#[tokio::test]
async fn a_created_crd_gets_kube_apiservers_status() {
    let d = Dyn::start().await;
    let created = d.create_gizmo_crd(&["red"]).await;
    // As kube-apiserver answers the create: defaulted names, stored version, no conditions
    // yet (the controllers set them right after).
    assert_eq!(created.spec.names.singular.as_deref(), Some("gizmo"));
    assert_eq!(created.spec.names.list_kind.as_deref(), Some("GizmoList"));
    assert_eq!(created.metadata.generation, Some(1));
    let status = created.status.clone().expect("status");
    assert_eq!(status.stored_versions, Some(vec!["v1".to_owned()]));
    assert!(status.conditions.unwrap_or_default().is_empty());

    common::wait_established(&d.client(), &created.name_any()).await;
    let crd = d.crds().get(&created.name_any()).await.expect("the CRD");
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
    d.cleanup(&[created.name_any()]).await;
}

#[tokio::test]
async fn await_condition_sees_a_created_crd_established() {
    let d = Dyn::start().await;
    let created = d.create_gizmo_crd(&["red"]).await;
    let established = tokio::time::timeout(
        common::deadline(),
        await_condition(
            d.crds(),
            &created.name_any(),
            conditions::is_crd_established(),
        ),
    )
    .await
    .expect("the CRD is established in time")
    .expect("the watch works");
    assert!(established.is_some());
    d.cleanup(&[created.name_any()]).await;
}

#[tokio::test]
async fn preloaded_crds_carry_the_controllers_status() {
    let t = common::start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
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
        common::deadline(),
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
    let d = Dyn::start().await;
    d.create_gizmo_crd(&["red"]).await;
    let api = d.gizmos();
    d.served(&api).await;
    let refused = api
        .create(&PostParams::default(), &d.gizmo("blue", "blue"))
        .await
        .expect_err("blue is not an allowed color yet");
    assert_eq!(status_code(refused), 422);

    let crds = d.crds();
    let name = d.name();
    let patch = json!({"spec": {"versions": d.gizmo_crd(&["red", "blue"])["spec"]["versions"]}});
    let updated = crds
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("the CRD is patched");
    assert_eq!(updated.metadata.generation, Some(2));
    d.creating_answers(&d.gizmo("blue", "blue"), 200).await;
    api.create(&PostParams::default(), &d.gizmo("blue", "blue"))
        .await
        .expect("blue is allowed now");

    // Server-side apply of the CRD changes it too.
    crds.patch(
        &name,
        &PatchParams::apply("crd-tests").force(),
        &Patch::Apply(d.gizmo_crd(&["red", "blue", "green"])),
    )
    .await
    .expect("the CRD is applied");
    d.creating_answers(&d.gizmo("green", "green"), 200).await;
    api.create(&PostParams::default(), &d.gizmo("green", "green"))
        .await
        .expect("green is allowed now");

    // And a PUT that drops an allowed value.
    let mut current = crds.get(&name).await.expect("the CRD");
    current.spec = crd_object(d.gizmo_crd(&["red"])).spec;
    crds.replace(&name, &PostParams::default(), &current)
        .await
        .expect("the CRD is replaced");
    d.creating_answers(&d.gizmo("green2", "green"), 422).await;
    let refused = api
        .create(&PostParams::default(), &d.gizmo("green2", "green"))
        .await
        .expect_err("green is no longer allowed");
    assert_eq!(status_code(refused), 422);
    d.cleanup(&[name]).await;
}

#[tokio::test]
async fn updating_a_crd_changes_its_printer_columns_and_short_names() {
    let d = Dyn::start().await;
    let client = d.client();
    d.create_gizmo_crd(&["red"]).await;
    let name = d.name();
    let mut crd = d.gizmo_crd(&["red"]);
    crd["spec"]["names"]["shortNames"] = json!(["gzm"]);
    crd["spec"]["versions"][0]["additionalPrinterColumns"] =
        json!([{"name": "Color", "type": "string", "jsonPath": ".spec.color"}]);
    // Forced: the create made "unknown" (kube's client sets no fieldManager) the owner of the
    // short names and versions, so an unforced apply of other values is a conflict.
    d.crds()
        .patch(
            &name,
            &PatchParams::apply("crd-tests").force(),
            &Patch::Apply(crd),
        )
        .await
        .expect("the CRD is applied");

    let path = format!("/apis/{}/v1", d.group);
    common::eventually("gizmos discovered with the new short name", || async {
        let discovery = get_json(&client, &path).await.ok()?;
        let discovered = discovery["resources"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["name"] == "gizmos"))
            .cloned()?;
        (discovered["shortNames"] == json!(["gzm"])).then_some(())
    })
    .await;

    let api = d.gizmos();
    d.served(&api).await;
    api.create(&PostParams::default(), &d.gizmo("g1", "red"))
        .await
        .expect("a Gizmo is created");
    let table_path = format!("/apis/{}/v1/namespaces/{}/gizmos", d.group, d.t.ns());
    let table = common::eventually("a Table with the new columns", || async {
        let table = client
            .request::<Value>(
                axum::http::Request::get(&table_path)
                    .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
                    .body(Vec::new())
                    .expect("a request"),
            )
            .await
            .expect("a Table");
        let columns: Vec<String> = table["columnDefinitions"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        (columns == ["Name", "Color"]).then_some(table)
    })
    .await;
    assert_eq!(table["rows"][0]["cells"][1], "red");
    d.cleanup(&[name]).await;
}

#[tokio::test]
async fn deleting_a_crd_deletes_its_objects_and_stops_serving_its_kind() {
    let d = Dyn::start().await;
    let client = d.client();
    d.create_gizmo_crd(&["red"]).await;
    let api = d.gizmos();
    d.served(&api).await;
    for name in ["g1", "g2"] {
        api.create(&PostParams::default(), &d.gizmo(name, "red"))
            .await
            .expect("a Gizmo is created");
    }
    let before = d.t.test_server().map(|server| server.object_count());
    let crds = d.crds();
    let name = d.name();
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
    if let (Some(server), Some(before)) = (d.t.test_server(), before) {
        assert_eq!(server.object_count(), before - 3, "the CRD and both Gizmos");
    }
    d.crd_gone(&name).await;
    common::eventually("the kind to be no longer served", || async {
        match api.list(&Default::default()).await {
            Ok(_) => None,
            Err(e) => {
                assert_eq!(status_code(e), 404);
                Some(())
            }
        }
    })
    .await;
    let path = format!("/apis/{}/v1", d.group);
    common::eventually("the group to be gone from discovery", || async {
        match get_json(&client, &path).await {
            Ok(_) => None,
            Err(e) => {
                assert_eq!(status_code(e), 404);
                Some(())
            }
        }
    })
    .await;

    // Created again, the kind starts empty.
    d.create_gizmo_crd(&["red"]).await;
    d.served(&api).await;
    let listed = api.list(&Default::default()).await.expect("Gizmos list");
    assert!(listed.items.is_empty());
    d.cleanup(&[name]).await;
}

#[tokio::test]
async fn a_deleted_crd_waits_for_instances_held_by_finalizers() {
    let d = Dyn::start().await;
    d.create_gizmo_crd(&["red"]).await;
    let api = d.gizmos();
    d.served(&api).await;
    let mut held = d.gizmo("held", "red");
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &held)
        .await
        .expect("a Gizmo is created");
    api.create(&PostParams::default(), &d.gizmo("free", "red"))
        .await
        .expect("a Gizmo is created");
    let crds = d.crds();
    let name = d.name();
    crds.delete(&name, &DeleteParams::default())
        .await
        .expect("the CRD is deleted");

    common::eventually("the CRD to wait for its instances", || async {
        let crd = crds.get(&name).await.expect("the CRD waits");
        (condition(&crd, "Terminating")
            == Some(("True".into(), "InstanceDeletionInProgress".into())))
        .then_some(())
    })
    .await;
    common::eventually("free to be deleted", || async {
        match api.get("free").await {
            Ok(_) => None,
            Err(e) => {
                assert_eq!(status_code(e), 404);
                Some(())
            }
        }
    })
    .await;
    let held = common::eventually("held to be marked for deletion", || async {
        let held = api.get("held").await.expect("held by its finalizer");
        held.metadata.deletion_timestamp.is_some().then_some(held)
    })
    .await;
    assert!(held.metadata.deletion_timestamp.is_some());
    // No new instances while the CRD terminates: kube's CRD handler wraps admission in
    // forbidCreateAdmission, which refuses creates (and applies that would create) as 403.
    d.creating_answers(&d.gizmo("late", "red"), 403).await;
    let refused = api
        .create(&PostParams::default(), &d.gizmo("late", "red"))
        .await
        .expect_err("create is refused");
    let forbidden = format!(
        "gizmos.{} \"late\" is forbidden: create not allowed while custom resource definition is terminating",
        d.group
    );
    match refused {
        kube::Error::Api(status) => {
            assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
            assert_eq!(status.message, forbidden);
        }
        other => panic!("expected a 403, got {other:?}"),
    }
    let apply = PatchParams::apply("crd-tests");
    let refused = api
        .patch("late", &apply, &Patch::Apply(d.gizmo("late", "red")))
        .await
        .expect_err("an apply that would create is refused");
    assert_eq!(status_code(refused), 403);

    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("the finalizer is removed");
    d.crd_gone(&name).await;
    common::eventually("the kind to be no longer served", || async {
        match api.list(&Default::default()).await {
            Ok(_) => None,
            Err(e) => {
                assert_eq!(status_code(e), 404);
                Some(())
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_crd_whose_kind_is_taken_in_its_group_is_not_served() {
    let d = Dyn::start().await;
    d.create_gizmo_crd(&["red"]).await;
    common::wait_established(&d.client(), &d.name()).await;
    let clash_name = format!("gadgets.{}", d.group);
    let mut clash = d.gizmo_crd(&["red"]);
    clash["metadata"]["name"] = json!(clash_name);
    clash["spec"]["names"] = json!({"kind": "Gizmo", "plural": "gadgets"});
    let crds = d.crds();
    crds.create(&PostParams::default(), &crd_object(clash))
        .await
        .expect("the CRD is stored");
    let crd = d.with_condition(&clash_name, "NamesAccepted").await;
    assert_eq!(
        condition(&crd, "NamesAccepted"),
        // Kind and listKind both clash; as kube's naming controller, the last check reports.
        Some(("False".into(), "ListKindConflict".into()))
    );
    let crd = d.with_condition(&clash_name, "Established").await;
    assert_eq!(
        condition(&crd, "Established"),
        Some(("False".into(), "NotAccepted".into()))
    );
    let gadgets = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(&d.group, "v1", "Gizmo"),
        "gadgets",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(d.client(), d.t.ns(), &gadgets);
    assert_eq!(
        status_code(api.list(&Default::default()).await.expect_err("unserved")),
        404
    );

    // Once the kind is free, the naming controller accepts it.
    crds.delete(&d.name(), &DeleteParams::default())
        .await
        .expect("the first CRD is deleted");
    let crd = common::eventually("the second CRD to be established", || async {
        let crd = crds.get(&clash_name).await.expect("the CRD");
        (condition(&crd, "Established").map(|(status, _)| status) == Some("True".into()))
            .then_some(crd)
    })
    .await;
    assert_eq!(
        condition(&crd, "Established"),
        Some(("True".into(), "InitialNamesAccepted".into()))
    );
    d.served(&api).await;
    d.cleanup(&[clash_name]).await;
}

#[tokio::test]
async fn an_invalid_crd_is_refused_and_not_stored() {
    let d = Dyn::start().await;
    let before = d.t.test_server().map(|server| server.object_count());
    let crds = d.crds();
    let wrong = format!("gizmo.{}", d.group);
    let mut wrong_name = d.gizmo_crd(&["red"]);
    wrong_name["metadata"]["name"] = json!(wrong);
    let refused = crds
        .create(&PostParams::default(), &crd_object(wrong_name))
        .await
        .expect_err("the name must be plural.group");
    match refused {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 422);
            assert_eq!(
                status.message,
                format!(
                    "CustomResourceDefinition.apiextensions.k8s.io \"{wrong}\" is invalid: \
                     metadata.name: Invalid value: \"{wrong}\": must be spec.names.plural+\".\"+spec.group"
                )
            );
        }
        other => panic!("expected a 422, got {other:?}"),
    }
    let mut two_storage = d.gizmo_crd(&["red"]);
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
    if let (Some(server), Some(before)) = (d.t.test_server(), before) {
        assert_eq!(server.object_count(), before);
    }
    for name in [wrong, d.name()] {
        assert_eq!(
            status_code(crds.get(&name).await.expect_err("not stored")),
            404
        );
    }
}
