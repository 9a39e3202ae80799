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
    /// `spec.terminatedAt`, which the schema requires whenever `state` is Terminated.
    Spec,
    /// The Account object's `deletionTimestamp`: deleting an Account terminates it.
    Deletion,
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
    /// Reads the account's situation.
    pub fn of(account: &Account) -> Self {
        let deleted_at = account
            .metadata
            .deletion_timestamp
            .as_ref()
            .and_then(|t| DateTime::from_timestamp(t.0.as_second(), 0));
        let spec_terminated = account.spec.state == AccountState::Terminated;
        let terminated = spec_terminated || deleted_at.is_some();
        // Only a time that belongs to this termination counts: the spec's (the schema requires
        // it exactly while the spec says Terminated, so a reactivation clears it), else the
        // deletion's, which is never earlier than the termination it ends. An Account
        // terminated without a time (stored before the schema required one) and not deleted
        // has no termination time: nothing is scheduled from it (see `time_missing`).
        let spec_time = account.spec.terminated_at.filter(|_| spec_terminated);
        let termination = match (spec_time, deleted_at) {
            (Some(at), _) => Some(Termination {
                at,
                source: TerminationSource::Spec,
            }),
            (None, Some(at)) => Some(Termination {
                at,
                source: TerminationSource::Deletion,
            }),
            (None, None) => None,
        };
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

    /// Whether the account is Terminated but nothing dates the termination: bad input (the
    /// schema requires `spec.terminatedAt` with Terminated), on which nothing is erased.
    pub fn time_missing(&self) -> bool {
        self.state == AccountState::Terminated && self.termination.is_none()
    }

    /// Whether a legal hold stands at `now`.
    pub fn hold_stands(&self, now: DateTime<Utc>) -> bool {
        self.hold.is_some_and(|h| h.stands(now))
    }
}
