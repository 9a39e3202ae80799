//! One HTTPS attempt to deliver an erasure request, and what its answer means.
//!
//! The attempt is classified, never retried here: the caller keeps the delivery state (attempts,
//! next attempt) durable in the Account's status and uses [`super::next_attempt_delay`].
//! Outcome reasons are fixed short words (`"HTTP 503"`, `"ConnectionRefused"`,
//! `"TlsUntrusted"`); they never carry the secret, the body, the URL or an error's free text, so
//! they are safe in status, events and logs.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url, redirect};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256};

use super::destination::{CheckingResolver, DestinationPolicy, RefusedDestination};
use super::request::{ErasureRequest, IDEMPOTENCY_KEY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use super::signature::sign;

/// How long establishing a connection (TCP and TLS) may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole attempt may take, from connecting to the response headers.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Where and how to deliver: a DataProcessor's webhook with its secret resolved.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The webhook URL; must be `https`.
    pub url: String,
    /// The HMAC key shared with the processor.
    pub secret: Vec<u8>,
    /// PEM certificates trusted as roots in addition to the system's, for a processor whose
    /// certificate is issued by a private CA.
    pub ca_bundle_pem: Option<Vec<u8>>,
}

impl fmt::Debug for Endpoint {
    // By hand, so the secret (and credentials in a URL) can never reach a log through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &without_credentials(&self.url))
            .field("secret", &"<redacted>")
            .field(
                "ca_bundle_pem",
                &self
                    .ca_bundle_pem
                    .as_ref()
                    .map(|pem| format!("{} bytes", pem.len())),
            )
            .finish()
    }
}

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx: the request is acknowledged.
    Acknowledged,
    /// A transient failure (408, 429, 5xx, timeout, connection failure): try again later, not
    /// before `retry_after` when the receiver gave one.
    Retry {
        /// The receiver's `Retry-After`, in seconds or as an HTTP date converted against `now`.
        retry_after: Option<Duration>,
        /// Short and free of secrets, e.g. `"HTTP 503"` or `"ConnectionRefused"`.
        reason: String,
    },
    /// The receiver refused the request (a 4xx other than 408 and 429, or a redirect, which is
    /// not followed so the signed request cannot be sent elsewhere). Retrying the same request
    /// will not help: staff must look.
    Rejected {
        /// The HTTP status.
        status: u16,
        /// Short and free of secrets, e.g. `"HTTP 403"`.
        reason: String,
    },
    /// The request cannot be sent as configured (not https, empty secret, bad CA bundle, or the
    /// receiver's certificate is not trusted): staff must fix the DataProcessor or its Secret.
    Misconfigured(ConfigurationError),
}

impl DeliveryOutcome {
    /// A short, secret-free reason for conditions and events.
    pub fn reason(&self) -> &str {
        match self {
            Self::Acknowledged => "Acknowledged",
            Self::Retry { reason, .. } | Self::Rejected { reason, .. } => reason,
            Self::Misconfigured(error) => error.reason(),
        }
    }
}

impl fmt::Display for DeliveryOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Acknowledged => f.write_str("acknowledged"),
            Self::Retry {
                retry_after: Some(wait),
                reason,
            } => write!(f, "retry ({reason}; retry after {}s)", wait.as_secs()),
            Self::Retry {
                retry_after: None,
                reason,
            } => write!(f, "retry ({reason})"),
            Self::Rejected { reason, .. } => write!(f, "rejected ({reason})"),
            Self::Misconfigured(error) => write!(f, "misconfigured: {error}"),
        }
    }
}

/// Why a request cannot be delivered as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigurationError {
    /// The webhook URL does not parse.
    #[error("the webhook URL is not a valid URL")]
    InvalidUrl,
    /// The webhook URL is not `https`: the request would travel in clear text.
    #[error("the webhook URL must use https")]
    NotHttps,
    /// The secret is empty, so the signature would prove nothing.
    #[error("the webhook secret is empty")]
    EmptySecret,
    /// The CA bundle is not PEM, holds no certificate, or holds an unusable one.
    #[error("the CA bundle holds no usable PEM certificate")]
    InvalidCaBundle,
    /// Neither the system nor a CA bundle provides a trusted root certificate.
    #[error("no trusted root certificates: the system has none and no CA bundle is set")]
    NoTrustedRoots,
    /// The HTTP client could not be built.
    #[error("the HTTPS client could not be set up")]
    ClientSetup,
    /// The request's idempotency key cannot be sent as a header.
    #[error("the idempotency key is not a valid header value")]
    InvalidIdempotencyKey,
    /// The request body could not be encoded as JSON.
    #[error("the request body could not be encoded")]
    BodyEncoding,
    /// The receiver's certificate does not chain to a trusted CA (a wrong or missing CA bundle).
    #[error("the receiver's certificate is not issued by a trusted CA")]
    TlsUntrusted,
    /// The receiver's certificate is not valid for the URL's host.
    #[error("the receiver's certificate does not match the URL's host")]
    TlsNameMismatch,
    /// The receiver's certificate has expired or is not valid yet.
    #[error("the receiver's certificate is expired or not yet valid")]
    TlsCertificateExpired,
    /// The receiver's certificate is invalid for another reason (revoked, wrong usage, …).
    #[error("the receiver's certificate is invalid")]
    TlsCertificateInvalid,
    /// The webhook URL carries a user name or password.
    #[error("the webhook URL carries credentials (user:password@); put none in the URL")]
    CredentialsInUrl,
    /// The webhook's address (or one its name resolves to) is loopback, link-local, a cloud
    /// metadata address, private or otherwise not for the outside world, and not allowed by
    /// `--webhook-allow-cidr`.
    #[error(
        "the webhook's address is on this host or a private, link-local or metadata network, \
         and no --webhook-allow-cidr allows it"
    )]
    DestinationRefused,
}

impl ConfigurationError {
    /// The variant's name, for condition and event reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidUrl => "InvalidUrl",
            Self::NotHttps => "NotHttps",
            Self::EmptySecret => "EmptySecret",
            Self::InvalidCaBundle => "InvalidCaBundle",
            Self::NoTrustedRoots => "NoTrustedRoots",
            Self::ClientSetup => "ClientSetup",
            Self::InvalidIdempotencyKey => "InvalidIdempotencyKey",
            Self::BodyEncoding => "BodyEncoding",
            Self::TlsUntrusted => "TlsUntrusted",
            Self::TlsNameMismatch => "TlsNameMismatch",
            Self::TlsCertificateExpired => "TlsCertificateExpired",
            Self::TlsCertificateInvalid => "TlsCertificateInvalid",
            Self::CredentialsInUrl => "CredentialsInUrl",
            Self::DestinationRefused => "DestinationRefused",
        }
    }
}

/// Sends erasure requests, one attempt per call. Holds one HTTPS client (and so one connection
/// pool) per distinct CA bundle; share one `Notifier` for the whole operator.
#[derive(Debug)]
pub struct Notifier {
    /// Keyed by the SHA-256 of the CA bundle (`None`: system roots only), so equal bundles read
    /// from different Secrets share a client and the map holds no certificate copies.
    clients: Mutex<HashMap<Option<[u8; 32]>, reqwest::Client>>,
    /// Where requests may go; every client's resolver enforces it too.
    destinations: Arc<DestinationPolicy>,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl Default for Notifier {
    /// Public destinations only, default timeouts.
    fn default() -> Self {
        Self::new(DestinationPolicy::default())
    }
}

impl Notifier {
    /// A notifier sending only where `destinations` permits, with the default timeouts
    /// (connect 5 s, whole attempt 15 s).
    pub fn new(destinations: DestinationPolicy) -> Self {
        Self::with_timeouts(
            destinations,
            DEFAULT_CONNECT_TIMEOUT,
            DEFAULT_REQUEST_TIMEOUT,
        )
    }

    /// A notifier with the given connect and whole-attempt timeouts.
    pub fn with_timeouts(
        destinations: DestinationPolicy,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Self {
        Self {
            clients: Mutex::new(HashMap::new()),
            destinations: Arc::new(destinations),
            connect_timeout,
            request_timeout,
        }
    }

    /// Makes one signed attempt to deliver `request` to `endpoint`, signed at `now`, and
    /// classifies the answer. Redirects are not followed.
    pub async fn deliver(
        &self,
        endpoint: &Endpoint,
        request: &ErasureRequest,
        now: DateTime<Utc>,
    ) -> DeliveryOutcome {
        match self.try_deliver(endpoint, request, now).await {
            Ok(outcome) => outcome,
            Err(error) => DeliveryOutcome::Misconfigured(error),
        }
    }

    async fn try_deliver(
        &self,
        endpoint: &Endpoint,
        request: &ErasureRequest,
        now: DateTime<Utc>,
    ) -> Result<DeliveryOutcome, ConfigurationError> {
        let url = https_url(&endpoint.url)?;
        // An IP literal never reaches the resolver, so it is checked here; a host name is
        // checked by the client's resolver on the addresses it connects to.
        if let Some(address) = ip_literal(&url)
            && !self.destinations.permits(address)
        {
            return Err(ConfigurationError::DestinationRefused);
        }
        let signed = SignedRequest::new(&endpoint.secret, request, now)?;
        let client = self.client_for(endpoint.ca_bundle_pem.as_deref())?;
        let sent = client
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(TIMESTAMP_HEADER, signed.timestamp)
            .header(SIGNATURE_HEADER, signed.signature)
            .header(IDEMPOTENCY_KEY_HEADER, signed.idempotency_key)
            .body(signed.body)
            .send()
            .await;
        Ok(match sent {
            Ok(response) => {
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| parse_retry_after(value, now));
                classify_status(response.status(), retry_after)
            }
            Err(error) => classify_transport_error(&error),
        })
    }

    fn client_for(
        &self,
        ca_bundle_pem: Option<&[u8]>,
    ) -> Result<reqwest::Client, ConfigurationError> {
        let key = ca_bundle_pem.map(|pem| <[u8; 32]>::from(Sha256::digest(pem)));
        // Held across the build so two first deliveries do not both load the system roots;
        // the build reads a few files once per bundle and never awaits.
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let client = build_client(
            ca_bundle_pem,
            &self.destinations,
            self.connect_timeout,
            self.request_timeout,
        )?;
        clients.insert(key, client.clone());
        Ok(client)
    }
}

/// The body and headers of one attempt, all derived from the request, secret and `now`.
struct SignedRequest {
    body: Vec<u8>,
    timestamp: HeaderValue,
    signature: HeaderValue,
    idempotency_key: HeaderValue,
}

impl SignedRequest {
    fn new(
        secret: &[u8],
        request: &ErasureRequest,
        now: DateTime<Utc>,
    ) -> Result<Self, ConfigurationError> {
        if secret.is_empty() {
            return Err(ConfigurationError::EmptySecret);
        }
        let body = request
            .to_body()
            .map_err(|_| ConfigurationError::BodyEncoding)?;
        let timestamp = now.timestamp();
        let idempotency_key = HeaderValue::from_str(&request.idempotency_key)
            .map_err(|_| ConfigurationError::InvalidIdempotencyKey)?;
        let mut signature = HeaderValue::try_from(sign(secret, timestamp, &body))
            .map_err(|_| ConfigurationError::ClientSetup)?;
        // Keeps the signature out of HTTP/2 header compression tables; harmless on HTTP/1.1.
        signature.set_sensitive(true);
        Ok(Self {
            body,
            timestamp: HeaderValue::from(timestamp),
            signature,
            idempotency_key,
        })
    }
}

/// The webhook URL, when it is `https` and carries no credentials (the schema refuses both;
/// checked again for objects stored before it did).
fn https_url(url: &str) -> Result<Url, ConfigurationError> {
    let url = Url::parse(url).map_err(|_| ConfigurationError::InvalidUrl)?;
    if url.scheme() != "https" {
        Err(ConfigurationError::NotHttps)
    } else if !url.username().is_empty() || url.password().is_some() {
        Err(ConfigurationError::CredentialsInUrl)
    } else {
        Ok(url)
    }
}

/// The URL's host when it is an IP address. The URL parser has already turned `127.1` and
/// `0x7f.0.0.1` into `127.0.0.1`, and writes IPv6 hosts in brackets.
fn ip_literal(url: &Url) -> Option<std::net::IpAddr> {
    let host = url.host_str()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.parse().ok()
}

/// `url` for a log, with any user name and password left out.
fn without_credentials(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            // Both succeed for any URL that has credentials (it has a host).
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "<not a URL>".to_owned(),
    }
}

/// A client that trusts the system's roots plus those of `ca_bundle_pem`, speaks HTTP/1.1 over
/// rustls with the ring provider (the one kube already uses, so no second crypto library),
/// never follows redirects, resolves names with a resolver that refuses what `destinations`
/// does not permit, and connects directly: through an HTTP proxy (`HTTPS_PROXY`) the address
/// checked would be the proxy's, and the one connected to the proxy's choice.
fn build_client(
    ca_bundle_pem: Option<&[u8]>,
    destinations: &Arc<DestinationPolicy>,
    connect_timeout: Duration,
    request_timeout: Duration,
) -> Result<reqwest::Client, ConfigurationError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = match ca_bundle_pem {
        None => rustls_platform_verifier::Verifier::new(provider.clone())
            .map_err(|_| ConfigurationError::NoTrustedRoots)?,
        Some(pem) => rustls_platform_verifier::Verifier::new_with_extra_roots(
            pem_certificates(pem)?,
            provider.clone(),
        )
        .map_err(|_| ConfigurationError::InvalidCaBundle)?,
    };
    // "dangerous" is rustls's name for any custom verifier; this one is the platform verifier,
    // which does full WebPKI validation (chain, host name, validity).
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| ConfigurationError::ClientSetup)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        // Our own rustls config: reqwest's would need a process-wide default crypto provider.
        .tls_backend_preconfigured(tls)
        .https_only(true)
        .redirect(redirect::Policy::none())
        .dns_resolver(CheckingResolver::new(destinations.clone()))
        .no_proxy()
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .user_agent(concat!("retention-operator/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|_| ConfigurationError::ClientSetup)
}

fn pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, ConfigurationError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ConfigurationError::InvalidCaBundle)?;
    if certificates.is_empty() {
        return Err(ConfigurationError::InvalidCaBundle);
    }
    Ok(certificates)
}

/// Classifies an HTTP answer: 2xx acknowledged; 408, 429 and 5xx transient; redirects and
/// other statuses refused.
fn classify_status(status: StatusCode, retry_after: Option<Duration>) -> DeliveryOutcome {
    let code = status.as_u16();
    if status.is_success() {
        DeliveryOutcome::Acknowledged
    } else if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        DeliveryOutcome::Retry {
            retry_after,
            reason: format!("HTTP {code}"),
        }
    } else if status.is_redirection() {
        DeliveryOutcome::Rejected {
            status: code,
            reason: format!("HTTP {code} Redirect"),
        }
    } else {
        DeliveryOutcome::Rejected {
            status: code,
            reason: format!("HTTP {code}"),
        }
    }
}

/// A `Retry-After` value as a wait from `now`: delay-seconds, or an HTTP date (a date already
/// past means no wait). `None` when it is neither.
fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Digits that overflow u64 are still "a very long time"; the backoff caps it.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let date = DateTime::<Utc>::from(httpdate::parse_http_date(value).ok()?);
    Some((date - now).to_std().unwrap_or(Duration::ZERO))
}

/// Classifies a failure to get any answer. Certificate problems are configuration errors
/// (retrying cannot fix a wrong CA); everything else may pass and is retried.
fn classify_transport_error(error: &reqwest::Error) -> DeliveryOutcome {
    let retry = |reason: &str| DeliveryOutcome::Retry {
        retry_after: None,
        reason: reason.to_owned(),
    };
    if causes(error).any(|cause| cause.is::<RefusedDestination>()) {
        return DeliveryOutcome::Misconfigured(ConfigurationError::DestinationRefused);
    }
    for cause in causes(error) {
        if let Some(tls_error) = cause.downcast_ref::<rustls::Error>() {
            return match tls_error {
                rustls::Error::InvalidCertificate(problem) => {
                    DeliveryOutcome::Misconfigured(certificate_problem(problem))
                }
                _ => retry("TlsHandshakeFailed"),
            };
        }
    }
    if error.is_timeout() {
        return retry("Timeout");
    }
    for cause in causes(error) {
        if let Some(io_error) = cause.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind;
            match io_error.kind() {
                ErrorKind::TimedOut => return retry("Timeout"),
                ErrorKind::ConnectionRefused => return retry("ConnectionRefused"),
                ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe
                | ErrorKind::UnexpectedEof => return retry("ConnectionReset"),
                _ => {}
            }
        }
    }
    if error.is_connect() {
        retry("ConnectFailed")
    } else {
        retry("RequestFailed")
    }
}

fn certificate_problem(problem: &rustls::CertificateError) -> ConfigurationError {
    use rustls::CertificateError as Problem;
    match problem {
        Problem::UnknownIssuer | Problem::BadSignature => ConfigurationError::TlsUntrusted,
        Problem::NotValidForName | Problem::NotValidForNameContext { .. } => {
            ConfigurationError::TlsNameMismatch
        }
        Problem::Expired
        | Problem::ExpiredContext { .. }
        | Problem::NotValidYet
        | Problem::NotValidYetContext { .. } => ConfigurationError::TlsCertificateExpired,
        _ => ConfigurationError::TlsCertificateInvalid,
    }
}

/// An error and its causes, looking inside `io::Error`s: their `source()` skips the wrapped
/// error itself, which is where rustls and the socket errors sit.
fn causes<'a>(
    error: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(error), |&current: &&'a (dyn StdError + 'static)| {
        match current.downcast_ref::<std::io::Error>() {
            Some(io_error) => io_error
                .get_ref()
                .map(|inner| inner as &(dyn StdError + 'static)),
            None => current.source(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn status(code: u16) -> StatusCode {
        StatusCode::from_u16(code).unwrap()
    }

    #[test]
    fn statuses_are_classified() {
        for code in [200, 201, 202, 204] {
            assert_eq!(
                classify_status(status(code), None),
                DeliveryOutcome::Acknowledged
            );
        }
        for code in [408, 429, 500, 502, 503, 504] {
            assert_eq!(
                classify_status(status(code), Some(Duration::from_secs(3))),
                DeliveryOutcome::Retry {
                    retry_after: Some(Duration::from_secs(3)),
                    reason: format!("HTTP {code}")
                }
            );
        }
        for code in [400, 401, 403, 404, 409, 410, 422] {
            assert_eq!(
                classify_status(status(code), None),
                DeliveryOutcome::Rejected {
                    status: code,
                    reason: format!("HTTP {code}")
                }
            );
        }
        for code in [301, 302, 303, 307, 308] {
            assert_eq!(
                classify_status(status(code), None),
                DeliveryOutcome::Rejected {
                    status: code,
                    reason: format!("HTTP {code} Redirect")
                }
            );
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Tue, 01 Dec 2026 00:02:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Mon, 30 Nov 2026 23:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        for garbage in ["", "-5", "1.5", "soon"] {
            assert_eq!(parse_retry_after(garbage, now), None, "{garbage:?}");
        }
    }

    #[test]
    fn only_https_urls_without_credentials_are_accepted() {
        assert!(https_url("https://erasure.example/api").is_ok());
        for with_credentials in [
            "https://user:pass@erasure.example/api",
            "https://user@erasure.example/api",
            "https://:pass@erasure.example/api",
        ] {
            assert_eq!(
                https_url(with_credentials).err(),
                Some(ConfigurationError::CredentialsInUrl),
                "{with_credentials}"
            );
        }
        assert_eq!(
            https_url("http://erasure.example/api").err(),
            Some(ConfigurationError::NotHttps)
        );
        assert_eq!(
            https_url("not a url").err(),
            Some(ConfigurationError::InvalidUrl)
        );
    }

    #[test]
    fn ca_bundles_without_certificates_are_refused() {
        assert_eq!(
            pem_certificates(b"").err(),
            Some(ConfigurationError::InvalidCaBundle)
        );
        assert_eq!(
            pem_certificates(b"not pem at all").err(),
            Some(ConfigurationError::InvalidCaBundle)
        );
        assert_eq!(
            pem_certificates(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n")
                .err(),
            Some(ConfigurationError::InvalidCaBundle)
        );
    }

    #[test]
    fn endpoint_debug_hides_the_secret() {
        let endpoint = Endpoint {
            url: "https://erasure.example/api".into(),
            secret: b"s3cr3t-value".to_vec(),
            ca_bundle_pem: Some(b"pem".to_vec()),
        };
        let debug = format!("{endpoint:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
        let with_credentials = Endpoint {
            url: "https://user:pa55word@erasure.example/api".into(),
            ..endpoint
        };
        let debug = format!("{with_credentials:?}");
        assert!(
            !debug.contains("pa55word") && !debug.contains("user"),
            "{debug}"
        );
        assert!(debug.contains("https://erasure.example/api"), "{debug}");
    }

    #[test]
    fn ip_literals_are_read_in_every_form_the_url_parser_accepts() {
        for (url, address) in [
            ("https://127.0.0.1/", "127.0.0.1"),
            ("https://127.1/", "127.0.0.1"),
            ("https://0x7f.0.0.1/", "127.0.0.1"),
            ("https://2130706433/", "127.0.0.1"),
            ("https://[::ffff:127.0.0.1]:8443/", "::ffff:127.0.0.1"),
            ("https://[fd00:ec2::254]/", "fd00:ec2::254"),
        ] {
            let parsed = Url::parse(url).unwrap();
            assert_eq!(ip_literal(&parsed), Some(address.parse().unwrap()), "{url}");
        }
        assert_eq!(ip_literal(&Url::parse("https://localhost/").unwrap()), None);
    }

    #[test]
    fn every_configuration_reason_is_camel_case() {
        use ConfigurationError::*;
        for error in [
            InvalidUrl,
            NotHttps,
            EmptySecret,
            InvalidCaBundle,
            NoTrustedRoots,
            ClientSetup,
            InvalidIdempotencyKey,
            BodyEncoding,
            TlsUntrusted,
            TlsNameMismatch,
            TlsCertificateExpired,
            TlsCertificateInvalid,
            CredentialsInUrl,
            DestinationRefused,
        ] {
            let reason = error.reason();
            assert!(
                reason.chars().all(|c| c.is_ascii_alphanumeric()),
                "{reason}"
            );
            assert_eq!(format!("{error:?}"), reason);
        }
    }
}
