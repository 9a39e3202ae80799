//! End to end: `retention-operator crds --apply`, the command of the chart's pre-upgrade hook
//! (Helm installs CRDs on the first install only). A CRD left as an older version had it is
//! brought to this version's definition and Established; applying again changes nothing. Runs
//! against the test server and, with `RETENTION_E2E_KUBECONFIG`, the real control plane.

mod e2e_support;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use retention_operator::api::all_crds;

use e2e_support::{Cluster, eventually, kubeconfig_file, run_operator};

/// The printer columns of the stored CRD `name`'s first version.
async fn printer_columns(api: &Api<CustomResourceDefinition>, name: &str) -> serde_json::Value {
    let crd = api.get(name).await.unwrap();
    serde_json::to_value(&crd.spec.versions[0].additional_printer_columns).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn crds_apply_brings_every_crd_to_this_version_and_waits_until_established() {
    let cluster = Cluster::connect().await;
    let dir = std::env::temp_dir().join(format!("retention-crds-apply-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = kubeconfig_file(cluster.test_server(), &dir);
    let kubeconfig = kubeconfig.to_str().unwrap();
    let api: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    let name = "websites.hosting.ecuni.se";
    let generated = all_crds()
        .into_iter()
        .find(|c| c.metadata.name.as_deref() == Some(name))
        .unwrap();
    let expected =
        serde_json::to_value(&generated.spec.versions[0].additional_printer_columns).unwrap();
    assert_ne!(
        expected,
        serde_json::Value::Null,
        "the test needs printer columns"
    );

    // As an older version of the operator left it: without its printer columns.
    let older = serde_json::json!([
        {"op": "remove", "path": "/spec/versions/0/additionalPrinterColumns"}
    ]);
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Json::<()>(serde_json::from_value(older).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(printer_columns(&api, name).await, serde_json::Value::Null);

    let output = run_operator(&["crds", "--apply", "--kubeconfig", kubeconfig]);
    let applied: Vec<&str> = output.lines().collect();
    assert_eq!(applied.len(), all_crds().len(), "{output}");
    assert!(
        applied
            .iter()
            .any(|line| line.contains(name) && line.ends_with("Established")),
        "{output}"
    );
    eventually("the printer columns back", || async {
        (printer_columns(&api, name).await == expected).then_some(())
    })
    .await;

    // Again: nothing to change, and it still succeeds.
    let again = run_operator(&["crds", "--apply", "--kubeconfig", kubeconfig]);
    assert_eq!(again, output);
    assert_eq!(printer_columns(&api, name).await, expected);
    let _ = std::fs::remove_dir_all(&dir);
}
