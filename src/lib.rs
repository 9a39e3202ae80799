//! retention-operator: makes a web-hosting provider's data-retention promise executable.
//!
//! The functional core:
//! - [`api`]: the custom resource kinds (the contract with the account system).
//! - [`kinds`]: the registry of bound kinds, from which everything per kind is derived.
//! - [`retention`]: the pure retention engine, a function of (objects, policy, now).
//! - [`status`]: the Account's status (conditions, proof, notices) as a pure function.
//! - [`notifier`]: erasure requests to processors; its ledger is the requests' state machine.
//!
//! The imperative shell:
//! - [`controller`]: watches the cluster, runs the engine and executes the plan.
//! - [`leader`]: leader election on a Lease (one per shard when sharded), and the fence every
//!   request passes.
//! - [`shard`]: which shard an account belongs to, and each shard's Lease.
//! - [`manifest`], [`admission`], [`report`], [`inventory`]: the offline `plan` and the
//!   `inventory` command (reading manifests, the schema's value checks, rendering).
//! - [`records`]: the `records` command, the record of processing activities (GDPR Art. 30).
//! - [`crds`]: the generated CRDs and the chart's list of bound kinds.
//! - [`clock`], [`metrics`], [`http`]: time, Prometheus metrics and the HTTP endpoints.
//! - [`audit`]: the audit trail, one JSON line per thing done to data (docs/audit.md).
#![forbid(unsafe_code)]
// Short functions: clippy.toml sets the limit.
#![warn(clippy::too_many_lines)]

pub mod admission;
pub mod api;
pub mod audit;
pub mod clock;
pub mod controller;
pub mod crds;
pub mod http;
pub mod inventory;
pub mod kinds;
pub mod leader;
pub mod manifest;
pub mod metrics;
pub mod notifier;
pub mod receipts;
pub mod records;
pub mod report;
pub mod retention;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod shard;
pub mod status;
