//! A real HTTPS receiver of erasure requests on loopback, for tests: a CA and a server
//! certificate made at test time, replies scripted per test, and a switch that takes it down.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A throwaway CA and a server certificate it issued for the given names.
pub struct Pki {
    pub ca_pem: Vec<u8>,
    pub server_config: Arc<rustls::ServerConfig>,
}

pub fn pki_for(names: &[&str]) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "notifier test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let server_key = KeyPair::generate().unwrap();
    let server_params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let server_cert = server_params.signed_by(&server_key, &ca).unwrap();

    let mut server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![server_cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
    )
    .unwrap();
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Pki {
        ca_pem: ca.pem().into_bytes(),
        server_config: Arc::new(server_config),
    }
}

pub fn loopback_pki() -> Pki {
    pki_for(&["127.0.0.1", "localhost"])
}

/// How the receiver answers POST /erasure.
#[derive(Clone)]
pub enum Reply {
    Status(u16),
    StatusWithHeader(u16, &'static str, &'static str),
    /// A redirect to /elsewhere on the same receiver.
    Redirect(u16),
    /// Never answers within any test's timeout.
    Hang,
}

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

struct ReceiverState {
    /// Replies in order; the last one repeats.
    replies: Mutex<VecDeque<Reply>>,
    /// While set, connections are closed before the TLS handshake, as by a receiver that is
    /// down.
    down: Arc<AtomicBool>,
    address: SocketAddr,
    received: Mutex<Vec<Received>>,
    elsewhere_hits: AtomicUsize,
    /// TCP connections accepted, whatever became of them.
    connections: Arc<AtomicUsize>,
}

/// An HTTPS receiver on 127.0.0.1, stopped when dropped.
pub struct Receiver {
    state: Arc<ReceiverState>,
    server: JoinHandle<()>,
}

impl Receiver {
    pub async fn start(pki: &Pki, reply: Reply) -> Self {
        Self::scripted(pki, vec![reply]).await
    }

    /// A receiver answering `replies` in order, the last one from then on.
    pub async fn scripted(pki: &Pki, replies: Vec<Reply>) -> Self {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = tcp.local_addr().unwrap();
        let down = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let state = Arc::new(ReceiverState {
            replies: Mutex::new(replies.into()),
            down: down.clone(),
            address,
            received: Mutex::new(Vec::new()),
            elsewhere_hits: AtomicUsize::new(0),
            connections: connections.clone(),
        });
        let app = Router::new()
            .route("/erasure", post(erasure))
            .route("/elsewhere", any(elsewhere))
            .with_state(state.clone());
        let listener = TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(pki.server_config.clone()),
            down,
            connections,
        };
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { state, server }
    }

    pub fn url(&self) -> String {
        format!("https://{}/erasure", self.state.address)
    }

    /// The receiver's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.state.address.port()
    }

    /// TCP connections accepted so far, including any that never became a request.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Takes the receiver down (`true`) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Requests to /elsewhere (the target of redirects).
    pub fn elsewhere_hits(&self) -> usize {
        self.state.elsewhere_hits.load(Ordering::SeqCst)
    }

    /// From now on answers every request with `reply`.
    pub fn set_reply(&self, reply: Reply) {
        *self.state.replies.lock().unwrap() = VecDeque::from([reply]);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn erasure(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.received.lock().unwrap().push(Received {
        headers,
        body: body.to_vec(),
    });
    let status = |code: u16| StatusCode::from_u16(code).unwrap();
    let reply = {
        let mut replies = state.replies.lock().unwrap();
        if replies.len() > 1 {
            replies.pop_front()
        } else {
            replies.front().cloned()
        }
    };
    match reply.unwrap_or(Reply::Status(200)) {
        Reply::Status(code) => status(code).into_response(),
        Reply::StatusWithHeader(code, name, value) => {
            (status(code), [(name, value)]).into_response()
        }
        Reply::Redirect(code) => {
            let location = format!("https://{}/elsewhere", state.address);
            (status(code), [("location", location)]).into_response()
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            StatusCode::OK.into_response()
        }
    }
}

async fn elsewhere(State(state): State<Arc<ReceiverState>>) -> StatusCode {
    state.elsewhere_hits.fetch_add(1, Ordering::SeqCst);
    StatusCode::OK
}

/// TLS over a TCP listener for `axum::serve`. The handshake runs inside `accept`, which is
/// plenty for one client at a time; failed handshakes (a client that distrusts the
/// certificate) are skipped.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    down: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, peer)) = self.tcp.accept().await else {
                continue;
            };
            self.connections.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                drop(stream);
                continue;
            }
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, peer);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
