//! End to end, on the real control plane: the Account's conditions are a map list keyed by
//! `type` (`x-kubernetes-list-type: map`), so another controller can server-side apply a
//! condition of its own beside the operator's, without taking the operator's over and without
//! a conflict, and the operator's status writes leave it alone.
//!
//! The test API server treats every list as atomic (tests/apiserver/README.md), where such an
//! apply conflicts with the operator's ownership of the whole list: this test runs only with
//! `RETENTION_E2E_KUBECONFIG`.

mod e2e_support;

use kube::Api;
use kube::api::{Patch, PatchParams};
use retention_operator::api::{Account, AccountPhase};
use serde_json::json;

use e2e_support::{
    Harness, account, at, create_cluster, default_policy, eventually, get_account, patch_account,
    real_cluster, wait_phase,
};

/// Another controller's field manager.
const REVIEWER: &str = "review-bot";

/// The condition types the Account's status shows.
async fn condition_types(client: &kube::Client) -> Vec<String> {
    get_account(client, "shared")
        .await
        .and_then(|a| a.status)
        .map(|s| s.conditions.into_iter().map(|c| c.type_).collect())
        .unwrap_or_default()
}

/// The reviewer's apply of its own conditions, without force.
async fn review(client: &kube::Client, conditions: serde_json::Value) {
    let accounts: Api<Account> = Api::all(client.clone());
    let patch = json!({
        "apiVersion": "hosting.ecuni.se/v1alpha1",
        "kind": "Account",
        "status": {"conditions": conditions},
    });
    accounts
        .patch_status(
            "shared",
            &PatchParams::apply(REVIEWER),
            &Patch::Apply(&patch),
        )
        .await
        .expect("another manager applies a condition of its own without a conflict");
}

#[tokio::test(flavor = "multi_thread")]
async fn another_controller_keeps_its_own_condition_beside_the_operators() {
    if real_cluster().is_none() {
        eprintln!(
            "skipped on the test API server, whose lists are all atomic: only the real one \
             merges a map list by key"
        );
        return;
    }
    let harness = Harness::start(at("2026-11-02T00:00:00Z")).await;
    let client = harness.client.clone();
    create_cluster(&client, &default_policy()).await;
    create_cluster(&client, &account("shared")).await;
    wait_phase(&client, "shared", AccountPhase::Active).await;

    review(
        &client,
        json!([{
            "type": "Reviewed",
            "status": "True",
            "reason": "Checked",
            "message": "",
            "lastTransitionTime": "2026-11-02T00:00:00Z",
        }]),
    )
    .await;
    let types = condition_types(&client).await;
    assert!(types.iter().any(|t| t == "Reviewed"), "{types:?}");
    assert!(types.iter().any(|t| t == "Ready"), "{types:?}");

    // The operator writes the status again: terminated with nothing bound, it is Erased.
    patch_account(
        &client,
        "shared",
        json!({"spec": {"state": "Terminated", "terminatedAt": "2026-11-01T00:00:00Z"}}),
    )
    .await;
    wait_phase(&client, "shared", AccountPhase::Erased).await;
    let types = condition_types(&client).await;
    assert!(
        types.iter().any(|t| t == "Reviewed"),
        "the operator's write kept the reviewer's condition: {types:?}"
    );

    // The reviewer takes its condition back; the operator's stay.
    review(&client, json!([])).await;
    eventually("the reviewer's condition gone", || async {
        let types = condition_types(&client).await;
        (!types.iter().any(|t| t == "Reviewed") && types.iter().any(|t| t == "Ready")).then_some(())
    })
    .await;
    harness.stop().await;
}
