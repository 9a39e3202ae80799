//! End to end: the manifests in `examples/` applied to the test API server (or a real cluster,
//! `RETENTION_E2E_KUBECONFIG`) with the real operator running at 2026-11-23. What the operator
//! stamps (and deletes) must be exactly what the offline `plan` predicts for the same objects
//! and time.

mod e2e_support;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, ResourceExt,
    api::{ApiResource, DynamicObject, PostParams},
};
use retention_operator::{
    api::{Account, DELETE_AT_ANNOTATION, DataProcessor, ResourceKind, RetentionPolicy},
    manifest,
    retention::{Inventory, Plan, ResourcePlan, plan},
};

use e2e_support::{Harness, at, deadline};

const NOW: &str = "2026-11-23T00:00:00Z";

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Every document of every `examples/*.yaml`, in file order.
fn example_documents() -> Vec<serde_json::Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    let mut documents = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let parsed: Vec<serde_json::Value> = serde_saphyr::from_multiple_with_options(
            &text,
            serde_saphyr::options! { strict_booleans: true },
        )
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        documents.extend(parsed.into_iter().filter(|d| !d.is_null()));
    }
    documents
}

/// The API resource of a kind used in `examples/`.
fn api_resource(kind: &str) -> ApiResource {
    match kind {
        "Namespace" => ApiResource::erase::<Namespace>(&()),
        "RetentionPolicy" => ApiResource::erase::<RetentionPolicy>(&()),
        "DataProcessor" => ApiResource::erase::<DataProcessor>(&()),
        "Account" => ApiResource::erase::<Account>(&()),
        bound => match bound.parse::<ResourceKind>() {
            Ok(kind) => kind.api_resource(),
            Err(_) => panic!("examples/ holds an unexpected kind {bound}"),
        },
    }
}

/// Creates every example object: Namespaces first (tolerating the harness's own), then
/// cluster-scoped objects, then namespaced ones.
async fn create_examples(client: &Client) {
    let documents = example_documents();
    let rank = |d: &serde_json::Value| {
        if d["kind"] == "Namespace" {
            0
        } else if d["metadata"]["namespace"].is_string() {
            2
        } else {
            1
        }
    };
    let mut ordered: Vec<&serde_json::Value> = documents.iter().collect();
    ordered.sort_by_key(|d| rank(d));
    for document in ordered {
        let kind = document["kind"].as_str().expect("a kind");
        let resource = api_resource(kind);
        let object: DynamicObject =
            serde_json::from_value(document.clone()).unwrap_or_else(|e| panic!("{kind}: {e}"));
        let api: Api<DynamicObject> = match object.namespace() {
            Some(namespace) => Api::namespaced_with(client.clone(), &namespace, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if kind == "Namespace" && status.code == 409 => {}
            Err(e) => panic!("creating {kind} {}: {e}", object.name_any()),
        }
    }
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The inventory without the objects that are due at `now`: what is left once the operator
/// has erased them.
fn after_deletions(inventory: &Inventory, planned: &Plan, now: DateTime<Utc>) -> Inventory {
    let due: Vec<_> = planned
        .accounts
        .iter()
        .flat_map(|a| &a.resources)
        .filter(|r| r.is_due(now))
        .map(|r| r.resource.clone())
        .collect();
    let mut left = inventory.clone();
    left.resources.retain(|r| !due.contains(&r.reference));
    left
}

/// Where the server disagrees with the plan for one object, if anywhere.
async fn mismatch(client: &Client, resource: &ResourcePlan, now: DateTime<Utc>) -> Option<String> {
    let reference = &resource.resource;
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &reference.namespace,
        &reference.kind.api_resource(),
    );
    let object = api.get_opt(&reference.name).await.unwrap();
    let planned = resource.schedule.delete_at;
    if resource.is_due(now) {
        return object.map(|_| format!("{reference}: due at {planned:?} but still present"));
    }
    let Some(object) = object else {
        return Some(format!(
            "{reference}: deleted, but its deleteAt is {planned:?}"
        ));
    };
    if reference.kind == ResourceKind::Backup {
        let status = &object.data["status"];
        let expires = status["expiresAt"]
            .as_str()
            .map(|s| s.parse::<DateTime<Utc>>().unwrap());
        if expires != planned {
            return Some(format!(
                "{reference}: status.expiresAt {expires:?}, plan {planned:?}"
            ));
        }
        let reason = status["expiryReason"].as_str();
        if planned.is_some() && reason != Some(resource.schedule.reason.as_str()) {
            return Some(format!(
                "{reference}: status.expiryReason {reason:?}, plan {:?}",
                resource.schedule.reason
            ));
        }
    } else {
        let annotation = object.annotations().get(DELETE_AT_ANNOTATION).cloned();
        let expected = planned.map(stamp);
        if annotation != expected {
            return Some(format!(
                "{reference}: annotation {DELETE_AT_ANNOTATION} {annotation:?}, plan {expected:?}"
            ));
        }
    }
    None
}

/// Every disagreement between the server and the plans: the schedules of `planned`, the
/// phases of `phases` (the plan of what is left after the deletions).
async fn mismatches(
    client: &Client,
    planned: &Plan,
    phases: &Plan,
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut found = Vec::new();
    for account in &planned.accounts {
        for resource in &account.resources {
            if let Some(m) = mismatch(client, resource, now).await {
                found.push(m);
            }
        }
    }
    let accounts = Api::<Account>::all(client.clone());
    for account in &phases.accounts {
        let actual = accounts
            .get_opt(&account.name)
            .await
            .unwrap()
            .and_then(|a| a.status?.phase);
        if actual != Some(account.phase) {
            found.push(format!(
                "Account {}: phase {actual:?}, plan {:?}",
                account.name, account.phase
            ));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_stamps_what_plan_prints_for_the_examples() {
    let now = at(NOW);
    let inventory = manifest::load(&[examples_dir()]).unwrap();
    let planned = plan(&inventory, now).unwrap();
    assert!(planned.unbound.is_empty(), "{:?}", planned.unbound);
    let after = plan(&after_deletions(&inventory, &planned, now), now).unwrap();
    // Erasing what is due does not move any example account to another phase.
    for (before, after) in planned.accounts.iter().zip(&after.accounts) {
        assert_eq!(before.name, after.name);
        assert_eq!(
            before.phase, after.phase,
            "account {}: the phase changes once the due objects are erased",
            before.name
        );
    }
    let due = planned
        .accounts
        .iter()
        .flat_map(|a| &a.resources)
        .filter(|r| r.is_due(now))
        .count();
    assert!(due > 0, "the examples have objects due on {NOW}");
    // Every bound example object is in some account's plan, so every one is checked below.
    let bound_documents = example_documents()
        .iter()
        .filter(|d| {
            matches!(
                d["kind"].as_str(),
                Some("Website" | "Database" | "Mailbox" | "Domain" | "DataRecord" | "Backup")
            )
        })
        .count();
    let planned_resources: usize = planned.accounts.iter().map(|a| a.resources.len()).sum();
    assert_eq!(planned_resources, bound_documents);

    let harness = Harness::start(now).await;
    let client = harness.client.clone();
    create_examples(&client).await;

    // Poll until the server agrees with the plan, then once more after the operator settled.
    let deadline = tokio::time::Instant::now() + deadline();
    loop {
        let found = mismatches(&client, &planned, &after, now).await;
        if found.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the operator did not converge on the plan:\n{}",
            found.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    harness.settle().await;
    let found = mismatches(&client, &planned, &after, now).await;
    assert!(
        found.is_empty(),
        "after settling, the server disagrees with the plan:\n{}",
        found.join("\n")
    );
    harness.stop().await;
}
