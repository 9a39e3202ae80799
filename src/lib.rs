//! retention-operator: makes a web-hosting provider's data-retention promise executable.
//!
//! - [`api`]: the custom resource kinds (the contract with the account system).
//! - [`retention`]: the pure retention engine, a function of (objects, policy, now).
//! - [`manifest`]: reading manifests from YAML files for the offline `plan`.
//! - [`admission`]: the schema's value checks, so `plan` refuses what the API server refuses.
//! - [`report`]: rendering a plan as a table or as JSON.
//! - [`clock`]: where the shell reads the time (injectable for tests).
//! - [`controller`]: the imperative shell; so far the Account status computation.
//! - [`metrics`], [`http`]: Prometheus metrics and the /metrics, /healthz, /readyz endpoints.
#![forbid(unsafe_code)]

pub mod admission;
pub mod api;
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
pub mod report;
pub mod retention;
pub mod status;
