//! The operator's HTTP endpoints: `/metrics` for Prometheus, `/healthz` and `/readyz` for the
//! kubelet's probes.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::Metrics;

/// The content type Prometheus negotiates for the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of Prometheus's classic text format, served to clients that do not ask
/// for OpenMetrics (curl, `promtool check metrics`, older scrapers).
pub const PROMETHEUS_TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the endpoints read: the metrics and the readiness flag.
#[derive(Clone, Debug)]
pub struct HttpState {
    /// The metrics rendered on `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Set once the operator's caches have synced; `/readyz` answers 200 after that.
    pub ready: Arc<AtomicBool>,
    /// Set while this replica waits for the leader Lease. A standby is ready too: otherwise
    /// only the leader would ever be, and a Deployment of several replicas could never finish
    /// a rollout (nor a PodDisruptionBudget allow a disruption).
    pub standby: Arc<AtomicBool>,
}

/// The router serving `/metrics`, `/healthz` and `/readyz`.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Serves the endpoints on `listener` until `shutdown` completes, then finishes the requests in
/// flight and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// OpenMetrics when the scraper asks for it (Prometheus does), the classic text format
/// otherwise.
async fn metrics(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|accept| accept.contains("application/openmetrics-text"));
    let (encoded, content_type) = if openmetrics {
        (state.metrics.encode(), OPENMETRICS_CONTENT_TYPE)
    } else {
        (
            state.metrics.encode_prometheus_text(),
            PROMETHEUS_TEXT_CONTENT_TYPE,
        )
    };
    match encoded {
        Ok(text) => ([(header::CONTENT_TYPE, content_type)], text).into_response(),
        // Encoding into a String only fails if a metric's own encoder does; answer so that the
        // scrape shows as failed rather than as an empty, healthy-looking target.
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "metrics encoding failed").into_response(),
    }
}

/// Liveness: answering at all is the signal, so it never depends on the cluster.
async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<HttpState>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready")
    } else if state.standby.load(Ordering::Acquire) {
        (StatusCode::OK, "standby")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    use super::*;

    /// Upper bound for any single step, so a broken server fails the test instead of hanging it.
    const DEADLINE: Duration = Duration::from_secs(10);

    /// A status code, the headers (names lowercased) and the body of a response.
    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    /// Sends `GET path` over raw HTTP/1.1 with `Connection: close` and reads the whole reply.
    async fn get(addr: SocketAddr, path: &str) -> Reply {
        get_with(addr, path, "").await
    }

    /// [`get`] with extra header lines (each ending in `\r\n`).
    async fn get_with(addr: SocketAddr, path: &str, headers: &str) -> Reply {
        let exchange = async {
            let mut stream = TcpStream::connect(addr).await.expect("connects");
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await.expect("writes");
            let mut raw = String::new();
            stream.read_to_string(&mut raw).await.expect("reads");
            raw
        };
        let raw = tokio::time::timeout(DEADLINE, exchange)
            .await
            .expect("answers in time");
        let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
        let mut lines = head.lines();
        let status_line = lines.next().expect("a status line");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("a status code");
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        Reply {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    /// A server on an ephemeral loopback port, with the handle that stops it.
    struct Server {
        addr: SocketAddr,
        stop: oneshot::Sender<()>,
        task: JoinHandle<std::io::Result<()>>,
    }

    async fn start(state: HttpState) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("has an address");
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            // A dropped sender also stops the server, so a failing test cannot leak it.
            let _ = stopped.await;
        };
        let task = tokio::spawn(serve(listener, state, shutdown));
        Server { addr, stop, task }
    }

    fn state() -> HttpState {
        HttpState {
            metrics: Arc::new(Metrics::new()),
            ready: Arc::new(AtomicBool::new(false)),
            standby: Arc::new(AtomicBool::new(false)),
        }
    }

    #[tokio::test]
    async fn metrics_are_served_as_openmetrics_text_to_who_asks_for_it() {
        let state = state();
        state.metrics.deleted(
            "Website",
            "grace-period",
            chrono::TimeDelta::milliseconds(250),
        );
        let server = start(state).await;
        let sample = "retention_operator_deletions_total{kind=\"Website\",rule=\"grace-period\"} 1";

        // What Prometheus sends.
        let accept = "Accept: application/openmetrics-text;version=1.0.0,\
                      text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n";
        let reply = get_with(server.addr, "/metrics", accept).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-type"), Some(OPENMETRICS_CONTENT_TYPE));
        assert!(reply.body.contains(sample));
        assert!(
            reply
                .body
                .contains("# TYPE retention_operator_deletions counter")
        );
        assert!(reply.body.ends_with("# EOF\n"));

        // curl, promtool and older scrapers.
        let reply = get(server.addr, "/metrics").await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.header("content-type"),
            Some(PROMETHEUS_TEXT_CONTENT_TYPE)
        );
        assert!(reply.body.contains(sample));
        assert!(
            reply
                .body
                .contains("# TYPE retention_operator_deletions_total counter")
        );
        assert!(!reply.body.contains("# EOF"));
    }

    #[tokio::test]
    async fn healthz_answers_ok_even_before_ready() {
        let server = start(state()).await;
        let reply = get(server.addr, "/healthz").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, "ok");
    }

    #[tokio::test]
    async fn readyz_turns_ready_when_the_flag_is_set() {
        let state = state();
        let ready = Arc::clone(&state.ready);
        let server = start(state).await;

        let before = get(server.addr, "/readyz").await;
        assert_eq!(before.status, 503);
        assert_eq!(before.body, "not ready");

        ready.store(true, Ordering::Release);
        let after = get(server.addr, "/readyz").await;
        assert_eq!(after.status, 200);
        assert_eq!(after.body, "ready");
    }

    #[tokio::test]
    async fn a_standby_replica_is_ready_and_the_new_leader_only_once_synced() {
        let state = state();
        let (ready, standby) = (Arc::clone(&state.ready), Arc::clone(&state.standby));
        standby.store(true, Ordering::Release);
        let server = start(state).await;
        let waiting = get(server.addr, "/readyz").await;
        assert_eq!((waiting.status, waiting.body.as_str()), (200, "standby"));
        // Took the lease: not ready until its caches have synced.
        standby.store(false, Ordering::Release);
        let syncing = get(server.addr, "/readyz").await;
        assert_eq!(syncing.status, 503);
        ready.store(true, Ordering::Release);
        let leading = get(server.addr, "/readyz").await;
        assert_eq!((leading.status, leading.body.as_str()), (200, "ready"));
    }

    #[tokio::test]
    async fn unknown_paths_are_not_found() {
        let server = start(state()).await;
        assert_eq!(get(server.addr, "/nope").await.status, 404);
    }

    #[tokio::test]
    async fn shutdown_ends_serve() {
        let server = start(state()).await;
        // Serve one request first, so shutdown is tested on a server that has had a connection.
        assert_eq!(get(server.addr, "/healthz").await.status, 200);

        server
            .stop
            .send(())
            .expect("the server is listening for shutdown");
        let result = tokio::time::timeout(DEADLINE, server.task)
            .await
            .expect("serve returns after shutdown")
            .expect("the task did not panic");
        assert!(result.is_ok(), "serve ends cleanly: {result:?}");
        assert!(
            TcpStream::connect(server.addr).await.is_err(),
            "the listener is closed"
        );
    }
}
