//! The exchange log: every request with its timing and its JSON bodies, for tests that judge a
//! history (which version of an object a client read, what a DELETE's preconditions were,
//! which object it removed) rather than count requests. Off unless
//! [`Config::record_exchanges`](crate::Config::record_exchanges) asks for it: it keeps every
//! body. kube-apiserver's audit log at level `RequestResponse` holds the same, and
//! [`Exchange::from_audit_event`] reads it into the same shape.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::RequestRecord;

/// One request and its answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Exchange {
    /// What was asked and the status code answered.
    pub record: RequestRecord,
    /// When the request arrived.
    pub received: DateTime<Utc>,
    /// When the answer was ready.
    pub completed: DateTime<Utc>,
    /// The request body, when it was JSON.
    pub request: Option<Value>,
    /// The response body, when it was JSON (never for lists and watches).
    pub response: Option<Value>,
}

impl Exchange {
    /// The exchange one event of kube-apiserver's audit log describes (`audit.k8s.io/v1`,
    /// stage ResponseComplete; bodies only at level Request or RequestResponse).
    pub fn from_audit_event(event: &Value) -> Self {
        let time = |field: &str| {
            event[field]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default()
        };
        let body = |field: &str| event.get(field).filter(|v| !v.is_null()).cloned();
        Self {
            record: RequestRecord::from_audit_event(event),
            received: time("requestReceivedTimestamp"),
            completed: time("stageTimestamp"),
            request: body("requestObject"),
            response: body("responseObject"),
        }
    }

    /// Whether this exchange's bodies are kept: requests for one object (not lists, watches
    /// or discovery).
    pub fn keeps_bodies(record: &RequestRecord) -> bool {
        !record.resource.is_empty() && !matches!(record.verb.as_str(), "list" | "watch")
    }
}

#[cfg(test)]
mod tests {
    use super::Exchange;

    #[test]
    fn an_audit_event_with_bodies_becomes_an_exchange() {
        let event = serde_json::json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
            "stage": "ResponseComplete", "verb": "delete", "userAgent": "replica-a",
            "requestURI": "/apis/hosting.ecuni.se/v1alpha1/namespaces/cust-acme/websites/www",
            "objectRef": {"resource": "websites", "namespace": "cust-acme", "name": "www",
                          "apiGroup": "hosting.ecuni.se", "apiVersion": "v1alpha1"},
            "responseStatus": {"code": 200},
            "requestObject": {"kind": "DeleteOptions",
                              "preconditions": {"uid": "u-1", "resourceVersion": "42"}},
            "responseObject": {"kind": "Website", "metadata": {"uid": "u-1"}},
            "requestReceivedTimestamp": "2026-12-02T04:00:00.123456Z",
            "stageTimestamp": "2026-12-02T04:00:00.223456Z",
        });
        let exchange = Exchange::from_audit_event(&event);
        assert_eq!(exchange.record.verb, "delete");
        assert_eq!(exchange.record.code, 200);
        assert_eq!(
            exchange.request.unwrap()["preconditions"]["resourceVersion"],
            "42"
        );
        assert_eq!(exchange.response.unwrap()["metadata"]["uid"], "u-1");
        assert_eq!(
            (exchange.completed - exchange.received).num_milliseconds(),
            100
        );
        // Metadata level: no bodies.
        let bare = Exchange::from_audit_event(&serde_json::json!({"verb": "get"}));
        assert_eq!((bare.request, bare.response), (None, None));
    }
}
