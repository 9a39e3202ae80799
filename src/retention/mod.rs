//! The retention engine: pure functions from (account, bound objects, policy, processors, now)
//! to a plan. No I/O and no clock reads: the caller passes `now`.
//!
//! - [`situation`]: the account's effective state, termination time and hold.
//! - [`schedule`]: the rules for hosted resources and data records, and the legal hold.
//! - [`backups`]: the backup schedule.
//! - [`phase`], [`notifications`]: the account phase and the processor notifications.
//! - [`transfers`]: the processors holding data in a third country without a safeguard.
//! - [`plan`](mod@plan): puts it together for one account or a whole inventory.

pub mod backups;
pub mod brake;
pub mod facts;
pub mod notifications;
pub mod phase;
pub mod plan;
pub mod schedule;
pub mod situation;
pub mod transfers;

pub use facts::{BackupFacts, BoundResource, HostedFacts, ResourceFacts, ResourceRef};
pub use notifications::{NotificationDelivery, NotificationPlan};
pub use plan::{
    AccountPlan, Inventory, Plan, PlanError, ReceiptPlan, ResourcePlan, UnboundResource, plan,
    plan_account,
};
pub(crate) use schedule::after as after_within_9999;
pub use schedule::{Disposition, Rule, Schedule, ScheduleChange, schedule_change};
pub use situation::{AccountSituation, Hold, Termination, TerminationSource};
pub use transfers::{ThirdCountryTransfer, third_country_transfers};
