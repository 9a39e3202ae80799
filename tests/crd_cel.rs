//! The CRDs' CEL rules, evaluated with kube's client-side CEL validator on the generated schema
//! (the same rules the API server enforces).

use retention_operator::api::{
    AccountBinding, Backup, BackupSource, BackupSpec, DataCategory, DataRecord, DataRecordSpec,
    LegalBasis, ResourceKind, Website, WebsiteSpec,
};

fn binding(account: &str, basis: LegalBasis, purpose: Option<&str>) -> AccountBinding {
    AccountBinding {
        account_ref: account.to_owned(),
        processor_ref: None,
        legal_basis: basis,
        consent_purpose: purpose.map(str::to_owned),
    }
}

fn website(account: &str) -> Website {
    Website::new(
        "www",
        WebsiteSpec {
            binding: binding(account, LegalBasis::Contract, None),
            hostnames: vec!["www.example.com".into()],
        },
    )
}

fn record(basis: LegalBasis, purpose: Option<&str>) -> DataRecord {
    DataRecord::new(
        "newsletter",
        DataRecordSpec {
            binding: binding("acme", basis, purpose),
            category: DataCategory::Marketing,
            bookkeeping: None,
        },
    )
}

#[test]
fn account_ref_cannot_change() {
    let old = website("acme");
    assert!(website("acme").validate_cel_update(&old).is_ok());
    let moved = website("other").validate_cel_update(&old).unwrap_err();
    assert!(
        moved.to_string().contains("accountRef is immutable"),
        "{moved}"
    );
}

#[test]
fn backup_account_ref_cannot_change() {
    let backup = |account: &str| {
        Backup::new(
            "db-1",
            BackupSpec {
                account_ref: account.into(),
                source_ref: BackupSource {
                    kind: ResourceKind::Database,
                    name: "db".into(),
                },
                taken_at: "2026-10-01T02:00:00Z".parse().unwrap(),
            },
        )
    };
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
    use retention_operator::api::{Account, AccountSpec, AccountState};
    let account = |state: AccountState, terminated_at: Option<&str>| {
        Account::new(
            "acme",
            AccountSpec {
                customer_ref: "C-10442".into(),
                state,
                terminated_at: terminated_at.map(|t| t.parse().unwrap()),
                retention_policy_ref: "default".into(),
                legal_hold: None,
                consents: Default::default(),
            },
        )
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
