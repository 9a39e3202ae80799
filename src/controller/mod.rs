//! The imperative shell: controllers that observe the cluster, run the engine and execute the plan.

pub mod status;
