//! The sandbox's stand-in for every processor's erasure endpoint: an HTTPS server on
//! 127.0.0.1 with a certificate from a CA made at start, which acknowledges every request
//! (200), as a processor that erased its copy does.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::SandboxError;

/// A running receiver, stopped when dropped.
pub struct Receiver {
    address: SocketAddr,
    ca_pem: String,
    received: Arc<Mutex<Received>>,
    server: JoinHandle<()>,
}

/// The requests the receiver acknowledged.
#[derive(Debug, Default)]
struct Received {
    /// Every POST.
    posts: usize,
    /// Their idempotency keys: a request sent again (delivery is at least once) has its key.
    keys: BTreeSet<String>,
}

impl Receiver {
    /// Makes a CA and a certificate for 127.0.0.1, and serves on a free port.
    pub async fn start() -> Result<Self, SandboxError> {
        let (ca_pem, server_config) = pki().map_err(|e| SandboxError::Receiver(e.to_string()))?;
        let tcp = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| SandboxError::Receiver(e.to_string()))?;
        let address = tcp
            .local_addr()
            .map_err(|e| SandboxError::Receiver(e.to_string()))?;
        let received = Arc::new(Mutex::new(Received::default()));
        let app = Router::new()
            .route("/{processor}", post(acknowledge))
            .with_state(received.clone());
        let listener = TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(Arc::new(server_config)),
        };
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            address,
            ca_pem,
            received,
            server,
        })
    }

    /// The URL a processor's requests go to.
    pub fn url_for(&self, processor: &str) -> String {
        format!("https://{}/{processor}", self.address)
    }

    /// The CA that issued the receiver's certificate (PEM), for the processors' `caBundle`.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Requests acknowledged so far, and how many distinct ones (by idempotency key).
    pub fn received(&self) -> (usize, usize) {
        let received = self.received.lock().unwrap_or_else(PoisonError::into_inner);
        (received.posts, received.keys.len())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn acknowledge(
    State(received): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
) -> StatusCode {
    let key = headers
        .get(crate::notifier::request::IDEMPOTENCY_KEY_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut received = received.lock().unwrap_or_else(PoisonError::into_inner);
    received.posts += 1;
    received.keys.insert(key);
    StatusCode::OK
}

/// A throwaway CA (PEM) and a server configuration with a certificate it issued for
/// 127.0.0.1 and localhost.
fn pki() -> Result<(String, rustls::ServerConfig), Box<dyn std::error::Error>> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "retention-operator sandbox CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let server_key = KeyPair::generate()?;
    let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    let server_cert = CertificateParams::new(names)?.signed_by(&server_key, &ca)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(
        vec![server_cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
    )?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((ca.pem(), config))
}

/// TLS over a TCP listener for `axum::serve`; failed handshakes are skipped.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, peer)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, peer);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
