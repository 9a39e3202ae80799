//! What the operator asked of the API server, for tests that count its requests: the test API
//! server's request log, or, on a real cluster, the API server's audit log (one JSON line per
//! request, as `.ci/control-plane` writes it: `audit.log` beside the kubeconfig, or the file
//! `RETENTION_E2E_AUDIT_LOG` names).

use std::{
    io::{Read, Seek, SeekFrom},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client};
use serde_json::Value;
use test_apiserver::{RequestRecord, TestApiServer};

use super::{NAMESPACE, OPERATOR_AGENT, deadline, eventually, real_cluster};

/// The audit log of the real cluster, if it has one the tests can read.
pub fn audit_log() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("RETENTION_E2E_AUDIT_LOG") {
        return Some(PathBuf::from(path));
    }
    let beside = real_cluster()?.parent()?.join("audit.log");
    beside.is_file().then_some(beside)
}

/// The size of the audit log now: where a reader that wants only what comes next starts.
pub fn audit_log_end() -> Option<u64> {
    Some(std::fs::metadata(audit_log()?).ok()?.len())
}

/// The requests of the operator (by its User-Agent) since the log was opened or last cleared.
pub enum RequestLog<'a> {
    TestServer(&'a TestApiServer),
    Audit {
        path: PathBuf,
        /// Where the requests of interest begin.
        offset: u64,
        /// The test's client, for the marker request that closes a reading.
        client: Client,
    },
}

impl<'a> RequestLog<'a> {
    /// Forgets what was asked so far.
    pub fn clear(&mut self) {
        match self {
            Self::TestServer(server) => server.clear_requests(),
            Self::Audit { path, offset, .. } => {
                *offset = std::fs::metadata(&*path).map(|m| m.len()).unwrap_or(0);
            }
        }
    }

    /// Every request the server saw (any User-Agent) since the log was opened or cleared.
    pub async fn requests(&mut self) -> Vec<RequestRecord> {
        match self {
            Self::TestServer(server) => server.requests(),
            Self::Audit {
                path,
                offset,
                client,
            } => {
                // The audit log has a request once its response is complete, which may be a
                // moment after its client saw the response: a request of the test's own after
                // everything else (a GET of a ConfigMap that does not exist) closes the reading.
                // Unique in the whole log: other readers' markers are in it too.
                static MARKERS: AtomicU64 = AtomicU64::new(0);
                let marker = format!(
                    "request-log-marker-{}-{}",
                    std::process::id(),
                    MARKERS.fetch_add(1, Ordering::Relaxed)
                );
                let _ = Api::<ConfigMap>::namespaced(client.clone(), NAMESPACE)
                    .get_opt(&marker)
                    .await;
                let (path, offset) = (path.clone(), *offset);
                eventually("the audit log to show the marker request", || {
                    let (entries, _) = read_audit(&path, offset);
                    let end = entries.iter().position(|entry| {
                        entry.request.resource == "configmaps" && entry.request.name == marker
                    });
                    let requests = end.map(|end| {
                        entries
                            .into_iter()
                            .take(end)
                            .map(|entry| entry.request)
                            .collect()
                    });
                    async move { requests }
                })
                .await
            }
        }
    }

    /// Polls the requests until `check` returns `Some`, failing after the [`deadline`].
    pub async fn eventually<T>(
        &mut self,
        what: &str,
        mut check: impl FnMut(&[RequestRecord]) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + deadline();
        loop {
            if let Some(value) = check(&self.requests().await) {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The operator's requests (by User-Agent) since the log was opened or cleared.
    pub async fn operator_requests(&mut self) -> Vec<RequestRecord> {
        self.requests()
            .await
            .into_iter()
            .filter(|r| r.user_agent == OPERATOR_AGENT)
            .collect()
    }

    /// The operator's `delete` requests since the log was opened or cleared, as
    /// `resource/name`.
    pub async fn operator_deletes(&mut self) -> Vec<String> {
        self.operator_requests()
            .await
            .iter()
            .filter(|r| r.verb == "delete")
            .map(|r| format!("{}/{}", r.resource, r.name))
            .collect()
    }
}

/// One request of the audit log: what was asked, and by whom (the authenticated user).
pub struct AuditEntry {
    pub request: RequestRecord,
    pub user: String,
}

/// The requests in the audit log from byte `offset` on, in the order they completed (watches:
/// in the order they started, since they complete only when they end), and the offset after
/// the last complete line.
pub fn read_audit(path: &Path, offset: u64) -> (Vec<AuditEntry>, u64) {
    let Ok(mut file) = std::fs::File::open(path) else {
        return (Vec::new(), offset);
    };
    let mut text = String::new();
    if file.seek(SeekFrom::Start(offset)).is_err() || file.read_to_string(&mut text).is_err() {
        return (Vec::new(), offset);
    }
    let complete = text.rfind('\n').map_or(0, |i| i + 1);
    let entries = text[..complete]
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| {
            let watch = event["verb"] == "watch";
            (event["stage"] == "ResponseComplete" && !watch)
                || (event["stage"] == "ResponseStarted" && watch)
        })
        .map(|event| AuditEntry {
            request: RequestRecord::from_audit_event(&event),
            user: event["user"]["username"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        })
        .collect();
    (entries, offset + complete as u64)
}
