//! retention-operator: makes a web-hosting provider's data-retention promise executable.
//!
//! - [`api`]: the custom resource kinds (the contract with the account system).
//! - [`retention`]: the pure retention engine, a function of (objects, policy, now).
//! - [`manifest`]: reading manifests from YAML files for the offline `plan`.
//! - [`report`]: rendering a plan as a table or as JSON.
#![forbid(unsafe_code)]

pub mod api;
pub mod crds;
pub mod manifest;
pub mod report;
pub mod retention;
