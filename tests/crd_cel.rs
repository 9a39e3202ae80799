//! The CRDs' CEL rules, evaluated with kube's client-side CEL validator on the generated schema
//! (the same rules the API server enforces).

mod support;

use retention_operator::api::{DataCategory, DataRecord, LegalBasis, Website};
use support::{AccountExt, DataRecordExt, HostedExt, data_record, website};

fn www(account: &str) -> Website {
    website("www", account)
}

fn record(basis: LegalBasis, purpose: Option<&str>) -> DataRecord {
    let record = data_record("newsletter", "acme")
        .category(DataCategory::Marketing)
        .legal_basis(basis);
    match purpose {
        Some(purpose) => record.consent_purpose(purpose),
        None => record,
    }
}

#[test]
fn account_ref_cannot_change() {
    let old = www("acme");
    assert!(www("acme").validate_cel_update(&old).is_ok());
    let moved = www("other").validate_cel_update(&old).unwrap_err();
    assert!(
        moved.to_string().contains("accountRef is immutable"),
        "{moved}"
    );
}

#[test]
fn backup_account_ref_cannot_change() {
    let backup = |account: &str| support::backup("db-1", account, "db", "2026-10-01T02:00:00Z");
    assert!(backup("acme").validate_cel_update(&backup("acme")).is_ok());
    assert!(
        backup("other")
            .validate_cel_update(&backup("acme"))
            .is_err()
    );
}

#[test]
fn consent_basis_requires_a_purpose() {
    let missing = record(LegalBasis::Consent, None)
        .validate_cel()
        .unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("consentPurpose is required when legalBasis is Consent"),
        "{missing}"
    );
    assert!(
        record(LegalBasis::Consent, Some("marketing"))
            .validate_cel()
            .is_ok()
    );
    for basis in [
        LegalBasis::Contract,
        LegalBasis::LegalObligation,
        LegalBasis::LegitimateInterest,
    ] {
        assert!(record(basis, None).validate_cel().is_ok(), "{basis:?}");
    }
}

/// Every termination states its own time: required with Terminated, absent otherwise, so a
/// reactivation clears it and a later termination cannot reuse it (or an operator-recorded
/// time) and skip its grace period.
#[test]
fn terminated_at_is_given_exactly_when_terminated() {
    use retention_operator::api::AccountState;
    let account = |state: AccountState, terminated_at: Option<&str>| {
        let account = support::account("acme")
            .customer_ref("C-10442")
            .state(state);
        match terminated_at {
            Some(at) => account.spec_terminated_at(at),
            None => account,
        }
    };
    let at = Some("2026-11-01T00:00:00Z");
    assert!(account(AccountState::Terminated, at).validate_cel().is_ok());
    assert!(account(AccountState::Active, None).validate_cel().is_ok());
    assert!(
        account(AccountState::Suspended, None)
            .validate_cel()
            .is_ok()
    );
    for (state, time) in [
        (AccountState::Terminated, None),
        (AccountState::Active, at),
        (AccountState::Suspended, at),
    ] {
        let refused = account(state, time).validate_cel().unwrap_err();
        assert!(
            refused.to_string().contains("terminatedAt is required"),
            "{state:?} with {time:?}: {refused}"
        );
    }
}
