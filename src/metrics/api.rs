//! Counts the Kubernetes API requests that fail, by verb and status code: a layer in the
//! operator's client, so every request is seen whichever controller, watch or lease makes it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::{Method, Request, Response, Uri};

use super::Metrics;

/// Code label of a request that got no answer (connection refused, reset, TLS failure,
/// timeout): client-go's convention.
pub const NO_ANSWER: &str = "<error>";

/// A [`tower::Layer`] for kube's `ClientBuilder` that counts failed requests into
/// `retention_operator_kube_api_errors_total`.
#[derive(Clone, Debug)]
pub struct CountApiErrors {
    metrics: Arc<Metrics>,
}

impl CountApiErrors {
    /// Counts into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for CountApiErrors {
    type Service = ApiErrorCounter<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiErrorCounter {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service of [`CountApiErrors`].
#[derive(Clone, Debug)]
pub struct ApiErrorCounter<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, R> tower::Service<Request<B>> for ApiErrorCounter<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let verb = verb(request.method(), request.uri());
        let metrics = self.metrics.clone();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await;
            match &answer {
                Ok(response) if response.status().as_u16() >= 400 => {
                    metrics.api_error(verb, response.status().as_str());
                }
                Ok(_) => {}
                Err(_) => metrics.api_error(verb, NO_ANSWER),
            }
            answer
        })
    }
}

/// The Kubernetes verb of a request, as the API server's audit log names it: `watch` for
/// `?watch=true`, else from the method and whether the path names one object or a collection
/// (`/api/v1/namespaces/ns/secrets` lists, `/api/v1/namespaces/ns/secrets/name` gets).
pub fn verb(method: &Method, uri: &Uri) -> &'static str {
    let watching = uri.query().is_some_and(|query| {
        query
            .split('&')
            .any(|pair| pair == "watch=true" || pair == "watch=1")
    });
    if watching {
        return "watch";
    }
    let named = names_one_object(uri.path());
    match (method.as_str(), named) {
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "other",
    }
}

/// Whether a resource path names one object (or its subresource) rather than a collection.
/// Paths outside the resource APIs (`/version`, `/openapi/v3`) count as one object.
fn names_one_object(path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segments.as_slice() {
        ["api", _, rest @ ..] | ["apis", _, _, rest @ ..] => rest,
        _ => return true,
    };
    let rest = match rest {
        ["namespaces", _, resource @ ..] if !resource.is_empty() => resource,
        other => other,
    };
    rest.len() >= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verb_of(method: &str, uri: &str) -> &'static str {
        verb(&method.parse().unwrap(), &uri.parse().unwrap())
    }

    #[test]
    fn verbs_are_named_as_the_api_server_names_them() {
        let cases = [
            ("GET", "/api/v1/namespaces/acme/secrets/key", "get"),
            ("GET", "/api/v1/namespaces/acme/secrets", "list"),
            ("GET", "/apis/hosting.ecuni.se/v1alpha1/accounts", "list"),
            (
                "GET",
                "/apis/hosting.ecuni.se/v1alpha1/accounts/acme",
                "get",
            ),
            (
                "GET",
                "/apis/hosting.ecuni.se/v1alpha1/accounts?watch=true&resourceVersion=5",
                "watch",
            ),
            ("GET", "/api/v1/namespaces", "list"),
            ("GET", "/api/v1/namespaces/acme", "get"),
            ("POST", "/api/v1/namespaces/acme/events", "create"),
            (
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/a/leases/l",
                "update",
            ),
            (
                "PATCH",
                "/apis/hosting.ecuni.se/v1alpha1/accounts/acme/status",
                "patch",
            ),
            (
                "DELETE",
                "/apis/hosting.ecuni.se/v1alpha1/namespaces/acme/websites/www",
                "delete",
            ),
            (
                "DELETE",
                "/apis/hosting.ecuni.se/v1alpha1/namespaces/acme/websites",
                "deletecollection",
            ),
            ("GET", "/version", "get"),
            ("OPTIONS", "/api/v1/namespaces", "other"),
        ];
        for (method, uri, expected) in cases {
            assert_eq!(verb_of(method, uri), expected, "{method} {uri}");
        }
    }
}
