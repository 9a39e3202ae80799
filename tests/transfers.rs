//! Third-country transfers in the engine's plan and on the Account's status: an account whose
//! data a processor outside the EU/EEA without a transfer mechanism holds shows it.

mod support;

use std::collections::BTreeMap;

use retention_operator::api::{
    AccountStatus, Condition, ConditionStatus, DataProcessorSpec, TransferMechanism,
};
use retention_operator::retention::{AccountPlan, ThirdCountryTransfer, plan_account};
use retention_operator::status::{DeletionLedger, StatusInput, account_status};
use support::*;

const NOW: &str = "2026-11-23T00:00:00Z";
const TYPE: &str = "ThirdCountryTransfer";

fn processors(
    country: &str,
    mechanism: Option<TransferMechanism>,
) -> BTreeMap<String, DataProcessorSpec> {
    let mut spec = processor("tracker").spec;
    spec.legal_name = "Example Analytics Inc.".to_owned();
    spec.country = country.to_owned();
    spec.transfer_mechanism = mechanism;
    BTreeMap::from([("tracker".to_owned(), spec)])
}

/// The plan of an account whose website `tracker` also holds, with `tracker` as given.
fn plan(processors: &BTreeMap<String, DataProcessorSpec>) -> AccountPlan {
    let acct = account("acme");
    let bound = [
        bound(&website("www", "acme").processor("tracker")),
        bound(&mailbox("info", "acme")),
    ];
    plan_account(&acct, &bound, &policy(), processors, at(NOW))
}

fn status(plan: &AccountPlan, previous: Option<&AccountStatus>) -> AccountStatus {
    account_status(&StatusInput {
        plan,
        previous,
        generation: Some(1),
        deleted: &[],
        deletions: DeletionLedger::default(),
        failures: &[],
        unknown_processors: &[],
        malformed: &[],
        announced_until: None,
        processors: None,
        suspended_by: None,
        now: at(NOW),
    })
}

fn condition(status: &AccountStatus) -> Option<&Condition> {
    status.conditions.iter().find(|c| c.type_ == TYPE)
}

#[test]
fn the_plan_names_a_processor_outside_the_eea_without_a_mechanism() {
    let flagged = plan(&processors("US", None));
    assert_eq!(
        flagged.third_country_transfers,
        [ThirdCountryTransfer {
            processor: "tracker".to_owned(),
            legal_name: "Example Analytics Inc.".to_owned(),
            country: "US".to_owned(),
        }]
    );
    for (country, mechanism) in [
        ("US", Some(TransferMechanism::StandardContractualClauses)),
        ("CH", Some(TransferMechanism::AdequacyDecision)),
        ("SE", None),
        ("NO", None),
    ] {
        let plan = plan(&processors(country, mechanism));
        assert!(
            plan.third_country_transfers.is_empty(),
            "{country} {mechanism:?}"
        );
    }
    // A processor that does not exist is reported elsewhere (UnboundResources), not here.
    assert!(plan(&BTreeMap::new()).third_country_transfers.is_empty());
}

#[test]
fn the_account_condition_names_the_processor_and_clears_when_a_mechanism_is_declared() {
    let flagged = status(&plan(&processors("US", None)), None);
    let c = condition(&flagged).expect("ThirdCountryTransfer set");
    assert_eq!(c.status, ConditionStatus::True);
    assert_eq!(c.reason, "NoTransferMechanism");
    assert!(c.message.contains("tracker (US)"), "{}", c.message);
    assert!(!c.message.contains("C-acme"), "{}", c.message);
    // Not a problem of the erasure: Ready stays True.
    let ready = flagged
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, ConditionStatus::True);
    // Steady: the same inputs give the same status.
    assert_eq!(
        status(&plan(&processors("US", None)), Some(&flagged)),
        flagged
    );

    let declared = processors("US", Some(TransferMechanism::StandardContractualClauses));
    let cleared = status(&plan(&declared), Some(&flagged));
    let c = condition(&cleared).expect("ThirdCountryTransfer kept, False");
    assert_eq!(c.status, ConditionStatus::False);
    assert_eq!(c.reason, "NoUnsafeguardedTransfer");
}

#[test]
fn an_account_that_never_had_such_a_transfer_carries_no_condition() {
    let within = status(&plan(&processors("SE", None)), None);
    assert!(condition(&within).is_none(), "{:?}", within.conditions);
}
