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
    /// The request one event of kube-apiserver's audit log (`audit.k8s.io/v1` Event, JSON, at
    /// Metadata level or above) describes: the same record for a real server as this server's
    /// log keeps, so tests and benchmarks count requests of either the same way.
    pub fn from_audit_event(event: &serde_json::Value) -> Self {
        let field = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        let object = &event["objectRef"];
        Self {
            verb: field(&event["verb"]),
            group: field(&object["apiGroup"]),
            version: field(&object["apiVersion"]),
            resource: field(&object["resource"]),
            subresource: field(&object["subresource"]),
            namespace: field(&object["namespace"]),
            name: field(&object["name"]),
            path: field(&event["requestURI"]),
            code: event["responseStatus"]["code"]
                .as_u64()
                .and_then(|code| u16::try_from(code).ok())
                .unwrap_or(0),
            user_agent: field(&event["userAgent"]),
        }
    }

    /// Whether the request could change state.
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::RequestRecord;

    #[test]
    fn an_audit_event_becomes_the_record_this_server_would_keep() {
        let event = serde_json::json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": "5d5b", "stage": "ResponseComplete",
            "requestURI": "/apis/hosting.ecuni.se/v1alpha1/namespaces/cust-acme/websites/www/status",
            "verb": "patch",
            "user": {"username": "system:serviceaccount:retention-system:retention-operator"},
            "userAgent": "retention-operator/0.1.0 (replica-a)",
            "objectRef": {"resource": "websites", "namespace": "cust-acme", "name": "www",
                          "apiGroup": "hosting.ecuni.se", "apiVersion": "v1alpha1",
                          "subresource": "status"},
            "responseStatus": {"metadata": {}, "code": 409},
        });
        let record = RequestRecord::from_audit_event(&event);
        assert_eq!(
            record,
            RequestRecord {
                verb: "patch".into(),
                group: "hosting.ecuni.se".into(),
                version: "v1alpha1".into(),
                resource: "websites".into(),
                subresource: "status".into(),
                namespace: "cust-acme".into(),
                name: "www".into(),
                path: "/apis/hosting.ecuni.se/v1alpha1/namespaces/cust-acme/websites/www/status"
                    .into(),
                code: 409,
                user_agent: "retention-operator/0.1.0 (replica-a)".into(),
            }
        );
        assert!(record.is_write());
        // A core request without an object (a discovery GET) has empty resource fields.
        let discovery = RequestRecord::from_audit_event(&serde_json::json!({
            "verb": "get", "requestURI": "/api", "responseStatus": {"code": 200},
        }));
        assert_eq!(discovery.resource, "");
        assert_eq!(discovery.group, "");
        assert_eq!(discovery.code, 200);
    }
}
