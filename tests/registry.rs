//! The registry of bound kinds (`retention_operator::kinds`) reaches every place that must know
//! every kind: a CRD file in `crds/`, RBAC rules in the rendered chart (from the generated
//! `_bound-kinds.tpl`), manifest decoding for `plan`, and listing for `inventory`. (That every
//! kind has a watch cache in the operator is a unit test of `controller`.) A kind left out of
//! any of them fails here, by name.
//!
//! helm comes from [`tools::helm`].

mod tools;

use std::{collections::BTreeSet, fs, path::Path};

use kube::{
    Client,
    api::{Api, DynamicObject, PostParams},
};
use retention_operator::{
    api::{API_VERSION, Account, GROUP, RetentionPolicy},
    crds::{CHART_KINDS_PATH, render_chart_kinds},
    inventory,
    kinds::ResourceKind,
    manifest,
};
use serde_json::{Value, json};
use test_apiserver::{Config, TestApiServer};
use tools::{chart_dir, run_helm, workspace};

const NAMESPACE: &str = "cust-acme";

/// A valid object of `kind` bound to Account `acme`. A new kind fails to compile here until it
/// has a sample, so that every check below covers it.
fn sample(kind: ResourceKind) -> Value {
    let spec = match kind {
        ResourceKind::Website => json!({"hostnames": ["acme.se"]}),
        ResourceKind::Database => json!({"engine": "postgresql"}),
        ResourceKind::Mailbox => json!({"address": "info@acme.se"}),
        ResourceKind::Domain => json!({"fqdn": "acme.se"}),
        ResourceKind::DataRecord => json!({"legalBasis": "Contract", "category": "crm"}),
        ResourceKind::Backup => json!({
            "sourceRef": {"kind": "Website", "name": "sample-website"},
            "takenAt": "2026-10-31T02:00:00Z",
        }),
    };
    let mut object = json!({
        "apiVersion": API_VERSION,
        "kind": kind.as_str(),
        "metadata": {
            "name": format!("sample-{}", kind.as_str().to_lowercase()),
            "namespace": NAMESPACE,
        },
        "spec": spec,
    });
    object["spec"]["accountRef"] = json!("acme");
    object
}

/// The Account and policy the samples are bound to.
fn account_and_policy() -> [Value; 2] {
    [
        json!({"apiVersion": API_VERSION, "kind": "RetentionPolicy",
               "metadata": {"name": "default"}, "spec": {"gracePeriod": "30d",
                "backups": {"keepDaily": 7, "keepWeekly": 4, "keepMonthly": 6,
                            "afterTermination": "90d"}}}),
        json!({"apiVersion": API_VERSION, "kind": "Account", "metadata": {"name": "acme"},
               "spec": {"customerRef": "C-1", "state": "Terminated",
                        "terminatedAt": "2026-11-01T00:00:00Z"}}),
    ]
}

/// The kinds among `resources`, which must be one of each.
fn kinds_of<'a>(resources: impl Iterator<Item = &'a ResourceKind>) -> Vec<ResourceKind> {
    let mut kinds: Vec<ResourceKind> = resources.copied().collect();
    kinds.sort();
    kinds
}

fn every_kind() -> Vec<ResourceKind> {
    let mut kinds = ResourceKind::ALL.to_vec();
    kinds.sort();
    kinds
}

#[test]
fn every_bound_kind_has_a_crd_file() {
    for kind in ResourceKind::ALL {
        let path = workspace()
            .join("crds")
            .join(format!("{}.{GROUP}.yaml", kind.plural()));
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{kind}: no CRD at {} ({e})", path.display()));
        let crd: Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(crd["spec"]["names"]["kind"], kind.as_str(), "{kind}");
    }
}

#[test]
fn the_charts_list_of_bound_kinds_is_the_generated_one() {
    let on_disk = fs::read_to_string(workspace().join(CHART_KINDS_PATH)).unwrap();
    assert!(
        on_disk == render_chart_kinds(),
        "{CHART_KINDS_PATH} has drifted from the registry: run \
         `cargo run -- chart-kinds > {CHART_KINDS_PATH}` and commit the result"
    );
}

#[test]
fn every_bound_kind_has_its_rbac_rules_in_the_rendered_chart() {
    let chart = chart_dir();
    let text = run_helm(&["template", "ret", chart.to_str().unwrap()]);
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let role = documents
        .iter()
        .find(|d| d["kind"] == "ClusterRole")
        .expect("the chart renders a ClusterRole");
    let mut granted: BTreeSet<(String, String)> = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        if !rule["apiGroups"]
            .as_array()
            .unwrap()
            .contains(&json!(GROUP))
        {
            continue;
        }
        for resource in rule["resources"].as_array().unwrap() {
            for verb in rule["verbs"].as_array().unwrap() {
                granted.insert((
                    resource.as_str().unwrap().to_owned(),
                    verb.as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    for kind in ResourceKind::ALL {
        let plural = kind.plural();
        // Watched and deleted; a hosted object also gets its schedule annotation patched.
        let mut needed = vec!["list", "watch", "delete"];
        if kind.is_hosted() {
            needed.push("patch");
        }
        for verb in needed {
            assert!(
                granted.contains(&(plural.clone(), verb.to_owned())),
                "{kind}: the chart's ClusterRole does not grant {verb} on {plural}"
            );
        }
        assert!(
            granted.contains(&(format!("{plural}/status"), "patch".to_owned())),
            "{kind}: the chart's ClusterRole does not grant patch on {plural}/status"
        );
    }
}

#[test]
fn every_bound_kind_decodes_from_a_manifest() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("registry-manifests");
    fs::create_dir_all(&dir).unwrap();
    let mut documents: Vec<Value> = account_and_policy().to_vec();
    documents.extend(ResourceKind::ALL.map(sample));
    let text: String = documents
        .iter()
        .map(|d| format!("---\n{}", serde_saphyr::to_string(d).unwrap()))
        .collect();
    let path = dir.join("every-kind.yaml");
    fs::write(&path, text).unwrap();
    let inventory = manifest::load(&[path]).unwrap_or_else(|e| panic!("{e}"));
    let decoded = kinds_of(inventory.resources.iter().map(|r| &r.reference.kind));
    assert_eq!(decoded, every_kind(), "the kinds plan reads from manifests");
}

#[tokio::test]
async fn every_bound_kind_is_listed_by_inventory() {
    let crds = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");
    let server = TestApiServer::start(Config::default().crds(crds).namespace(NAMESPACE))
        .await
        .unwrap();
    let client = Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap();
    let [policy, account] = account_and_policy();
    let post = PostParams::default();
    Api::<RetentionPolicy>::all(client.clone())
        .create(&post, &serde_json::from_value(policy).unwrap())
        .await
        .unwrap();
    Api::<Account>::all(client.clone())
        .create(&post, &serde_json::from_value(account).unwrap())
        .await
        .unwrap();
    for kind in ResourceKind::ALL {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), NAMESPACE, &kind.api_resource());
        let object: DynamicObject = serde_json::from_value(sample(kind)).unwrap();
        api.create(&post, &object)
            .await
            .unwrap_or_else(|e| panic!("{kind}: creating a sample: {e}"));
    }
    let listed = inventory::collect(&client, "acme").await.unwrap();
    let kinds = kinds_of(listed.resources.iter().map(|r| &r.reference.kind));
    assert_eq!(kinds, every_kind(), "the kinds inventory lists");
}

#[test]
fn chart_kinds_prints_the_charts_list_of_bound_kinds() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_retention-operator"))
        .arg("chart-kinds")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let on_disk = fs::read_to_string(workspace().join(CHART_KINDS_PATH)).unwrap();
    assert_eq!(String::from_utf8(output.stdout).unwrap(), on_disk);
}
