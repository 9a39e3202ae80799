//! End to end: a DataProcessor established outside the EU/EEA without a transfer mechanism is
//! flagged on its own status (condition and Warning event) and on the Account whose data it
//! holds, until staff declare a mechanism.

mod e2e_support;

use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use retention_operator::api::{Condition, ConditionStatus, DataProcessor};
use serde_json::json;

use e2e_support::{
    Harness, HostedExt, TEST_AGENT, account, at, create, create_cluster, default_policy, events,
    eventually, get_account, processor, website,
};

const TYPE: &str = "ThirdCountryTransfer";

fn transfer_condition(conditions: &[Condition]) -> Option<Condition> {
    conditions.iter().find(|c| c.type_ == TYPE).cloned()
}

async fn processor_condition(client: &Client) -> Option<Condition> {
    let processor = Api::<DataProcessor>::all(client.clone())
        .get_opt("us-analytics")
        .await
        .ok()??;
    transfer_condition(&processor.status?.conditions)
}

async fn account_condition(client: &Client) -> Option<Condition> {
    transfer_condition(&get_account(client, "acme").await?.status?.conditions)
}

#[tokio::test]
async fn a_us_processor_without_a_mechanism_is_flagged_until_one_is_declared() {
    let mut harness = Harness::start(at("2026-11-23T00:00:00Z")).await;
    let client = harness.client.clone();
    let mut us = processor("us-analytics");
    us.spec.legal_name = "Example Analytics Inc.".to_owned();
    us.spec.country = "US".to_owned();
    create_cluster(&client, &us).await;
    create_cluster(&client, &default_policy()).await;
    create_cluster(&client, &account("acme")).await;
    create(&client, &website("www", "acme").processor("us-analytics")).await;

    let flagged = eventually("ThirdCountryTransfer=True on the processor", || async {
        processor_condition(&client)
            .await
            .filter(|c| c.status == ConditionStatus::True)
    })
    .await;
    assert_eq!(flagged.reason, "NoTransferMechanism");
    assert!(flagged.message.contains("US"), "{}", flagged.message);
    let warned = eventually("the ThirdCountryTransfer Warning event", || async {
        let found = events(&client, TYPE).await;
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert_eq!(warned[0].0, "DataProcessor/us-analytics");
    let on_account = eventually("ThirdCountryTransfer=True on the account", || async {
        account_condition(&client)
            .await
            .filter(|c| c.status == ConditionStatus::True)
    })
    .await;
    assert!(
        on_account.message.contains("us-analytics (US)"),
        "{}",
        on_account.message
    );
    assert!(
        !on_account.message.contains("C-acme"),
        "{}",
        on_account.message
    );

    // A restarted operator finds the condition stored and does not warn again.
    harness.settle().await;
    harness.restart_operator().await;
    harness.settle().await;
    assert_eq!(events(&client, TYPE).await.len(), 1);
    Api::<DataProcessor>::all(client.clone())
        .patch(
            "us-analytics",
            &PatchParams::apply(TEST_AGENT),
            &Patch::Merge(json!({"spec": {"transferMechanism": "StandardContractualClauses"}})),
        )
        .await
        .unwrap();
    let cleared = eventually("ThirdCountryTransfer=False on the processor", || async {
        processor_condition(&client)
            .await
            .filter(|c| c.status == ConditionStatus::False)
    })
    .await;
    assert_eq!(cleared.reason, "TransferMechanismDeclared");
    let cleared = eventually("ThirdCountryTransfer=False on the account", || async {
        account_condition(&client)
            .await
            .filter(|c| c.status == ConditionStatus::False)
    })
    .await;
    assert_eq!(cleared.reason, "NoUnsafeguardedTransfer");
    harness.settle().await;
    // Warned once, when it turned True; not again on later passes or when it cleared.
    assert_eq!(events(&client, TYPE).await.len(), 1);
    harness.stop().await;
}
