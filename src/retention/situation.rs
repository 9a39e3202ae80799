//! Where an account stands at `now`: its effective state, its termination time, and its hold.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::api::{Account, AccountState};

/// An account's effective state at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountSituation {
    /// Terminated when the spec says so or the Account object is being deleted.
    pub state: AccountState,
    /// The termination, when the effective state is Terminated.
    pub termination: Option<Termination>,
    /// The legal hold, if the Account carries one.
    pub hold: Option<Hold>,
}

/// When an account was terminated and where that time came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Termination {
    /// The termination time T every schedule counts from.
    pub at: DateTime<Utc>,
    /// Where T came from.
    pub source: TerminationSource,
}

/// Where a termination time came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum TerminationSource {
    /// `spec.terminatedAt`.
    Spec,
    /// `status.terminatedAt`, recorded by the operator when it first saw the termination.
    Status,
    /// The Account object's `deletionTimestamp`: deleting an Account terminates it.
    Deletion,
    /// Nothing recorded a time yet: the operator records `now` as the first time it saw it.
    FirstSeen,
}

/// A legal hold on all of an account's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Hold {
    /// When the hold ends; `None` means until it is removed.
    pub until: Option<DateTime<Utc>>,
}

impl Hold {
    /// Whether the hold still stands at `now`.
    pub fn stands(&self, now: DateTime<Utc>) -> bool {
        self.until.is_none_or(|until| now < until)
    }
}

impl AccountSituation {
    /// Reads the account's situation at `now`.
    pub fn of(account: &Account, now: DateTime<Utc>) -> Self {
        let deleted_at = account
            .metadata
            .deletion_timestamp
            .as_ref()
            .and_then(|t| DateTime::from_timestamp(t.0.as_second(), 0));
        let spec_terminated = account.spec.state == AccountState::Terminated;
        let terminated = spec_terminated || deleted_at.is_some();
        let termination = terminated.then(|| {
            // Recorded times count only while the spec says Terminated: a terminatedAt left
            // over from an earlier, reverted termination must not date a later deletion of
            // the Account object, or everything would fall due at once.
            let recorded = account.status.as_ref().and_then(|s| s.terminated_at);
            let recorded = recorded.filter(|_| spec_terminated);
            if let Some(at) = account.spec.terminated_at.filter(|_| spec_terminated) {
                Termination {
                    at,
                    source: TerminationSource::Spec,
                }
            } else if let Some(at) = recorded {
                Termination {
                    at,
                    source: TerminationSource::Status,
                }
            } else if let Some(at) = deleted_at {
                Termination {
                    at,
                    source: TerminationSource::Deletion,
                }
            } else {
                Termination {
                    at: now,
                    source: TerminationSource::FirstSeen,
                }
            }
        });
        Self {
            state: if terminated {
                AccountState::Terminated
            } else {
                account.spec.state
            },
            termination,
            hold: account
                .spec
                .legal_hold
                .as_ref()
                .map(|h| Hold { until: h.until }),
        }
    }

    /// Whether a legal hold stands at `now`.
    pub fn hold_stands(&self, now: DateTime<Utc>) -> bool {
        self.hold.is_some_and(|h| h.stands(now))
    }
}
