//! API errors as kube-apiserver returns them: a `metav1.Status` with code and reason.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

/// An error answered as a `metav1.Status`.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `metav1.StatusReason`, such as `NotFound`.
    pub reason: &'static str,
    /// Human-readable message, worded as kube-apiserver words it.
    pub message: String,
    /// `details`, when the error names an object.
    pub details: Option<Value>,
    /// Seconds for a `Retry-After` header (429 and some 5xx).
    pub retry_after: Option<u64>,
}

/// Names the object an error is about, for messages and `details`.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// API group ("" for core).
    pub group: &'a str,
    /// Plural resource name.
    pub resource: &'a str,
    /// Object name.
    pub name: &'a str,
}

impl Target<'_> {
    /// `accounts.hosting.ecuni.se` or `configmaps`, as in messages.
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_owned()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    fn details(&self) -> Value {
        json!({"name": self.name, "group": self.group, "kind": self.resource})
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 404 NotFound for an object.
    pub fn not_found(target: Target<'_>) -> Self {
        let message = format!(
            "{} \"{}\" not found",
            target.qualified_resource(),
            target.name
        );
        Self {
            details: Some(target.details()),
            ..Self::new(404, "NotFound", message)
        }
    }

    /// 404 NotFound for a path that names no resource.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(method: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        )
    }

    /// 403 Forbidden for a create of an instance of a CRD being deleted, as the admission
    /// wrapper of kube's CRD handler (forbidCreateAdmission) refuses it. `name` may be empty
    /// (generateName).
    pub fn terminating_crd(t: &crate::registry::ResourceType, name: &str) -> Self {
        let resource = if t.group.is_empty() {
            t.plural.clone()
        } else {
            format!("{}.{}", t.plural, t.group)
        };
        let subject = if name.is_empty() {
            resource
        } else {
            format!("{resource} {}", crate::go_fmt::go_quote(name))
        };
        Self {
            details: Some(json!({"name": name, "group": t.group, "kind": t.plural})),
            ..Self::new(
                403,
                "Forbidden",
                format!(
                    "{subject} is forbidden: create not allowed while custom resource definition is terminating"
                ),
            )
        }
    }

    /// 409 AlreadyExists.
    pub fn already_exists(target: Target<'_>) -> Self {
        let message = format!(
            "{} \"{}\" already exists",
            target.qualified_resource(),
            target.name
        );
        Self {
            details: Some(target.details()),
            ..Self::new(409, "AlreadyExists", message)
        }
    }

    /// 409 Conflict: a stale resourceVersion.
    pub fn conflict(target: Target<'_>) -> Self {
        let message = format!(
            "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
            target.qualified_resource(),
            target.name
        );
        Self {
            details: Some(target.details()),
            ..Self::new(409, "Conflict", message)
        }
    }

    /// 409 Conflict: a failed delete precondition.
    pub fn precondition_failed(target: Target<'_>, detail: String) -> Self {
        let message = format!(
            "Operation cannot be fulfilled on {} \"{}\": {detail}",
            target.qualified_resource(),
            target.name
        );
        Self {
            details: Some(target.details()),
            ..Self::new(409, "Conflict", message)
        }
    }

    /// 409 Conflict: a server-side apply would change fields other managers applied.
    /// 409 Conflict of a server-side apply, worded as kube-apiserver's field manager words it
    /// (`conflicts` are (manager as printed, `.path`)); its details hold only the causes.
    pub fn apply_conflict(conflicts: &[(String, String)]) -> Self {
        let message = match conflicts {
            [(manager, path)] => {
                format!("Apply failed with 1 conflict: conflict with {manager}: {path}")
            }
            _ => {
                let mut by_manager: std::collections::BTreeMap<&str, Vec<&str>> =
                    std::collections::BTreeMap::new();
                for (manager, path) in conflicts {
                    by_manager.entry(manager).or_default().push(path);
                }
                let mut lines = Vec::new();
                for (manager, paths) in by_manager {
                    lines.push(format!("conflicts with {manager}:"));
                    lines.extend(paths.iter().map(|path| format!("- {path}")));
                }
                format!(
                    "Apply failed with {} conflicts: {}",
                    conflicts.len(),
                    lines.join("\n")
                )
            }
        };
        let causes: Vec<serde_json::Value> = conflicts
            .iter()
            .map(|(manager, path)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {manager}"), "field": path}))
            .collect();
        Self {
            details: Some(json!({"causes": causes})),
            ..Self::new(409, "Conflict", message)
        }
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// 410 Gone: a resourceVersion or continue token older than the retained window.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type})"
            ),
        )
    }

    /// 415 UnsupportedMediaType for a body encoding the server does not read (protobuf, CBOR).
    pub fn unsupported_body(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {content_type})"
            ),
        )
    }

    /// 422 Invalid, from a full `Status` body built by the validation module.
    pub fn invalid(status: Value) -> Self {
        let message = status["message"].as_str().unwrap_or_default().to_owned();
        Self {
            details: status.get("details").cloned(),
            ..Self::new(422, "Invalid", message)
        }
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// An injected fault with the given code.
    pub fn injected(code: u16, retry_after: Option<u64>) -> Self {
        let reason = match code {
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "InternalError",
        };
        Self {
            retry_after,
            ..Self::new(code, reason, format!("injected fault ({code})"))
        }
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        if let Some(seconds) = self.retry_after {
            status["details"]["retryAfterSeconds"] = json!(seconds);
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (code, json_body(&self.to_status())).into_response();
        if let Some(seconds) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// A JSON response body with the content type kube-apiserver sends.
pub fn json_body(value: &Value) -> ([(header::HeaderName, &'static str); 1], String) {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
}

/// Result of an API operation.
pub type ApiResult<T> = Result<T, ApiError>;
