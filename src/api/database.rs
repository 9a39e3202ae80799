//! Database: a hosted database of an account.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::hosted::hosted_kind;

hosted_kind! {
    /// A database hosted for an account.
    kind = "Database", shortname = "hdb", doc = "A database hosted for an account";
    pub struct DatabaseSpec {
        /// The database engine.
        pub engine: DatabaseEngine,
    }
}

/// The database engines the provider hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseEngine {
    Mysql,
    Mariadb,
    Postgresql,
}
