//! The request log: what was asked of the server and how it answered, for tests that count API
//! calls and for deriving RBAC rules.

use serde::{Deserialize, Serialize};

/// One request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// The RBAC verb: get, list, watch, create, update, patch, delete, deletecollection; for
    /// non-resource paths the lowercase HTTP method.
    pub verb: String,
    /// API group ("" for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource; "" for non-resource paths.
    pub resource: String,
    /// Subresource, such as `status`; "" when none.
    pub subresource: String,
    /// Namespace in the path; "" when none.
    pub namespace: String,
    /// Object name in the path; "" for collections.
    pub name: String,
    /// The path, for non-resource requests.
    pub path: String,
    /// The HTTP status code answered.
    pub code: u16,
    /// The client's User-Agent, to tell the operator's requests from a test's.
    pub user_agent: String,
}

impl RequestRecord {
    /// Whether the request could change state.
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }
}
