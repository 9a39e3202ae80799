//! The imperative shell: controllers that observe the cluster, run the engine and execute the
//! plan.
//!
//! - [`context`]: what every reconcile shares (errors, caches, fence, events).
//! - [`run`](mod@run): the wiring of watches, caches and the account controller.
//! - [`account`]: the account controller (schedules, deletions, status, finalizer).
//! - [`brake`]: the mass-deletion brake's count in each RetentionPolicy's status.
//! - [`cluster`]: reading, stamping and deleting bound objects of any kind.
//! - [`events`]: publishing events, each repeat as a series, and notes about many objects.
//! - [`compact`]: the caches of the bound kinds: per object only what the rules read, indexed
//!   by account (so a reconcile never scans every cache), a relist applied in place.
//! - [`in_place`]: kube's reflector store (the Accounts'), with a relist applied in place.
//! - [`guarded`]: watching objects that may not match this operator's schema.
//! - [`lists`]: how the caches fill: streaming lists where the API server offers them.
//! - [`orphans`]: reporting objects bound to no existing Account, and malformed ones.
//! - [`processors`]: delivering the erasure requests owed to processors.
//! - [`throttle`]: how many DELETEs are in flight, adapted to the API server's answers.
//! - [`transfers`]: the `ThirdCountryTransfer` condition and warning on each DataProcessor.
//!
//! The Account's status is computed by the pure [`crate::status`].

pub mod account;
pub mod brake;
pub mod cluster;
pub mod compact;
pub mod context;
pub mod events;
pub mod guarded;
pub mod in_place;
pub mod lists;
pub mod orphans;
pub mod processors;
pub mod receipts;
pub mod run;
pub mod throttle;
pub mod transfers;

pub use context::{Context, Error, spawn_cancellable};
pub use lists::InitialLists;
pub use run::{Settings, client_config, run};
