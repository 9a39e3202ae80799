//! The account phase (docs/design.md §3), derived from the account's situation and its plan.

use chrono::{DateTime, Utc};

use super::{plan::ResourcePlan, schedule::Disposition, situation::AccountSituation};
use crate::{
    api::{AccountPhase, AccountState},
    kinds::ResourceKind,
};

/// The phase of an account whose remaining bound objects are planned as `resources`.
pub fn phase(
    situation: &AccountSituation,
    resources: &[ResourcePlan],
    now: DateTime<Utc>,
) -> AccountPhase {
    if situation.hold_stands(now) {
        return AccountPhase::OnHold;
    }
    match situation.state {
        AccountState::Active => AccountPhase::Active,
        AccountState::Suspended => AccountPhase::Suspended,
        AccountState::Terminated => {
            // Hosted data awaiting erasure; bookkeeping and backups are retained separately.
            let mut erasable = resources.iter().filter(|r| {
                r.resource.kind != ResourceKind::Backup
                    && r.schedule.disposition != Disposition::Retain
            });
            if resources.is_empty() {
                AccountPhase::Erased
            } else if erasable.clone().any(|r| r.is_due(now)) {
                AccountPhase::Erasing
            } else if erasable.next().is_some() {
                AccountPhase::GracePeriod
            } else {
                AccountPhase::Retained
            }
        }
    }
}
