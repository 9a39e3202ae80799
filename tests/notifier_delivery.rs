//! The erasure-request notifier against a real HTTPS receiver on loopback: a CA and a server
//! certificate are made at test time, the receiver records what it is sent and answers as each
//! test scripts, and the notifier's outcome, headers and signature are checked end to end.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use retention_operator::notifier::{
    ConfigurationError, DeliveryOutcome, DestinationPolicy, Endpoint, ErasedResource,
    ErasureRequest, Notifier, VerifyError, idempotency_key, verify,
};
use tokio::net::TcpListener;

mod receiver;

use receiver::{Received, Receiver, Reply, loopback_pki, pki_for};

const SECRET: &[u8] = b"s3cr3t-hmac-key-that-must-not-leak";
const TOLERANCE: Duration = Duration::from_secs(300);

fn terminated_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
}

fn erasure_request(requested_at: DateTime<Utc>) -> ErasureRequest {
    ErasureRequest::new(
        "acme",
        "C-10442",
        "key-systems",
        vec![ErasedResource {
            kind: "Domain".into(),
            namespace: "acme".into(),
            name: "acme-se".into(),
        }],
        "account terminated; grace period 30d ended",
        terminated_at(),
        requested_at,
    )
}

/// The receivers listen on 127.0.0.1, which the notifier refuses unless allowed, as the
/// operator's `--webhook-allow-cidr 127.0.0.0/8` would.
fn loopback_allowed() -> DestinationPolicy {
    DestinationPolicy::allowing(vec![
        "127.0.0.0/8".parse().unwrap(),
        "::1/128".parse().unwrap(),
    ])
}

fn endpoint(url: String, ca_pem: &[u8]) -> Endpoint {
    Endpoint {
        url,
        secret: SECRET.to_vec(),
        ca_bundle_pem: Some(ca_pem.to_vec()),
    }
}

/// One delivery of a fresh request, signed now.
async fn deliver_with(notifier: &Notifier, url: String, ca_pem: &[u8]) -> DeliveryOutcome {
    notifier
        .deliver(
            &endpoint(url, ca_pem),
            &erasure_request(Utc::now()),
            Utc::now(),
        )
        .await
}

fn retry(reason: &str) -> DeliveryOutcome {
    DeliveryOutcome::Retry {
        retry_after: None,
        reason: reason.to_owned(),
    }
}

fn rejected(status: u16, reason: &str) -> DeliveryOutcome {
    DeliveryOutcome::Rejected {
        status,
        reason: reason.to_owned(),
    }
}

/// One delivery to a receiver answering `reply`, with a fresh notifier.
async fn deliver_once(reply: Reply) -> (DeliveryOutcome, Receiver) {
    let pki = loopback_pki();
    let receiver = Receiver::start(&pki, reply).await;
    let outcome = deliver_with(
        &Notifier::new(loopback_allowed()),
        receiver.url(),
        &pki.ca_pem,
    )
    .await;
    (outcome, receiver)
}

fn header<'a>(received: &'a Received, name: &str) -> &'a str {
    received
        .headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn acknowledged_request_has_documented_headers_body_and_signature() {
    let pki = loopback_pki();
    let receiver = Receiver::start(&pki, Reply::Status(200)).await;
    let now = Utc::now();
    let request = erasure_request(now);

    let outcome = Notifier::new(loopback_allowed())
        .deliver(&endpoint(receiver.url(), &pki.ca_pem), &request, now)
        .await;

    assert_eq!(outcome, DeliveryOutcome::Acknowledged);
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let got = &received[0];
    assert_eq!(header(got, "content-type"), "application/json");
    assert_eq!(
        header(got, "x-erasure-timestamp"),
        now.timestamp().to_string()
    );
    assert_eq!(header(got, "idempotency-key"), request.idempotency_key);
    let signature = header(got, "x-erasure-signature");
    assert!(signature.starts_with("sha256="), "{signature}");
    assert_eq!(signature.len(), "sha256=".len() + 64);

    let parsed: ErasureRequest = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(parsed, request);
    let json: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "account",
            "customerRef",
            "idempotencyKey",
            "processor",
            "reason",
            "requestedAt",
            "resources"
        ]
    );
    assert!(json["requestedAt"].as_str().unwrap().ends_with('Z'));

    let timestamp = header(got, "x-erasure-timestamp");
    assert_eq!(
        verify(
            SECRET,
            timestamp,
            signature,
            &got.body,
            Utc::now(),
            TOLERANCE
        ),
        Ok(())
    );
    assert_eq!(
        verify(
            b"the-wrong-secret",
            timestamp,
            signature,
            &got.body,
            Utc::now(),
            TOLERANCE
        ),
        Err(VerifyError::SignatureMismatch)
    );
    // A replay of the same signed request an hour later is refused.
    assert!(matches!(
        verify(
            SECRET,
            timestamp,
            signature,
            &got.body,
            now + chrono::TimeDelta::hours(1),
            TOLERANCE
        ),
        Err(VerifyError::StaleTimestamp { .. })
    ));
}

#[tokio::test]
async fn any_2xx_is_acknowledged() {
    for code in [201, 202, 204] {
        let (outcome, _receiver) = deliver_once(Reply::Status(code)).await;
        assert_eq!(outcome, DeliveryOutcome::Acknowledged, "HTTP {code}");
    }
}

#[tokio::test]
async fn server_error_is_retried() {
    let (outcome, receiver) = deliver_once(Reply::Status(500)).await;
    assert_eq!(outcome, retry("HTTP 500"));
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn service_unavailable_with_retry_after_seconds_is_retried_after_them() {
    let (outcome, _receiver) = deliver_once(Reply::StatusWithHeader(503, "retry-after", "7")).await;
    assert_eq!(
        outcome,
        DeliveryOutcome::Retry {
            retry_after: Some(Duration::from_secs(7)),
            reason: "HTTP 503".into()
        }
    );
}

#[tokio::test]
async fn retry_after_as_http_date_is_converted_against_now() {
    let pki = loopback_pki();
    // 90 s after the `now` the delivery is made at.
    let receiver = Receiver::start(
        &pki,
        Reply::StatusWithHeader(429, "retry-after", "Tue, 01 Dec 2026 00:01:30 GMT"),
    )
    .await;
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    let outcome = Notifier::new(loopback_allowed())
        .deliver(
            &endpoint(receiver.url(), &pki.ca_pem),
            &erasure_request(now),
            now,
        )
        .await;
    assert_eq!(
        outcome,
        DeliveryOutcome::Retry {
            retry_after: Some(Duration::from_secs(90)),
            reason: "HTTP 429".into()
        }
    );
}

#[tokio::test]
async fn too_many_requests_and_request_timeout_are_retried() {
    for code in [429, 408] {
        let (outcome, _receiver) = deliver_once(Reply::Status(code)).await;
        assert_eq!(outcome, retry(&format!("HTTP {code}")));
    }
}

#[tokio::test]
async fn other_client_errors_are_rejected() {
    for code in [400, 403, 404] {
        let (outcome, _receiver) = deliver_once(Reply::Status(code)).await;
        assert_eq!(outcome, rejected(code, &format!("HTTP {code}")));
    }
}

#[tokio::test]
async fn redirect_is_rejected_and_not_followed() {
    for code in [302, 307, 308] {
        let (outcome, receiver) = deliver_once(Reply::Redirect(code)).await;
        assert_eq!(outcome, rejected(code, &format!("HTTP {code} Redirect")));
        assert_eq!(receiver.received().len(), 1);
        assert_eq!(
            receiver.elsewhere_hits(),
            0,
            "HTTP {code}: the redirect was followed"
        );
    }
}

#[tokio::test]
async fn receiver_not_listening_is_retried_as_connection_refused() {
    let pki = loopback_pki();
    // Bind and release a port so nothing listens on it.
    let address = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let outcome = deliver_with(
        &Notifier::new(loopback_allowed()),
        format!("https://{address}/erasure"),
        &pki.ca_pem,
    )
    .await;
    assert_eq!(outcome, retry("ConnectionRefused"));
}

#[tokio::test]
async fn slow_receiver_times_out_and_is_retried() {
    let pki = loopback_pki();
    let receiver = Receiver::start(&pki, Reply::Hang).await;
    let notifier = Notifier::with_timeouts(
        loopback_allowed(),
        Duration::from_secs(1),
        Duration::from_millis(500),
    );
    let outcome = deliver_with(&notifier, receiver.url(), &pki.ca_pem).await;
    assert_eq!(outcome, retry("Timeout"));
}

#[tokio::test]
async fn certificate_from_another_ca_is_a_distinct_configuration_error() {
    let receivers_pki = loopback_pki();
    let other_ca = loopback_pki();
    let receiver = Receiver::start(&receivers_pki, Reply::Status(200)).await;
    let outcome = deliver_with(
        &Notifier::new(loopback_allowed()),
        receiver.url(),
        &other_ca.ca_pem,
    )
    .await;
    assert_eq!(
        outcome,
        DeliveryOutcome::Misconfigured(ConfigurationError::TlsUntrusted)
    );
    assert_eq!(outcome.reason(), "TlsUntrusted");
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn certificate_for_another_host_is_a_name_mismatch() {
    let pki = pki_for(&["erasure.example"]);
    let receiver = Receiver::start(&pki, Reply::Status(200)).await;
    let outcome = deliver_with(
        &Notifier::new(loopback_allowed()),
        receiver.url(),
        &pki.ca_pem,
    )
    .await;
    assert_eq!(
        outcome,
        DeliveryOutcome::Misconfigured(ConfigurationError::TlsNameMismatch)
    );
}

#[tokio::test]
async fn one_notifier_keeps_a_client_per_ca_bundle() {
    let pki = loopback_pki();
    let other_ca = loopback_pki();
    let receiver = Receiver::start(&pki, Reply::Status(200)).await;
    let notifier = Notifier::new(loopback_allowed());
    let request = erasure_request(Utc::now());
    let wrong = endpoint(receiver.url(), &other_ca.ca_pem);
    let right = endpoint(receiver.url(), &pki.ca_pem);
    for _ in 0..2 {
        assert_eq!(
            notifier.deliver(&wrong, &request, Utc::now()).await,
            DeliveryOutcome::Misconfigured(ConfigurationError::TlsUntrusted)
        );
        assert_eq!(
            notifier.deliver(&right, &request, Utc::now()).await,
            DeliveryOutcome::Acknowledged
        );
    }
    assert_eq!(receiver.received().len(), 2);
}

#[tokio::test]
async fn redeliveries_and_a_rebuilt_request_carry_the_same_idempotency_key() {
    let pki = loopback_pki();
    let receiver = Receiver::start(&pki, Reply::Status(500)).await;
    let notifier = Notifier::new(loopback_allowed());
    let endpoint = endpoint(receiver.url(), &pki.ca_pem);
    let first = erasure_request(Utc::now());
    notifier.deliver(&endpoint, &first, Utc::now()).await;
    // As after an operator restart: the request is rebuilt from the same account, processor
    // and termination time, at a later time, by a new notifier.
    let rebuilt = erasure_request(Utc::now() + chrono::TimeDelta::minutes(10));
    Notifier::new(loopback_allowed())
        .deliver(&endpoint, &rebuilt, Utc::now())
        .await;

    let expected = idempotency_key("acme", "key-systems", terminated_at());
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    for got in &received {
        assert_eq!(header(got, "idempotency-key"), expected);
        let body: ErasureRequest = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(body.idempotency_key, expected);
    }
}

#[tokio::test]
async fn configuration_errors_are_reported_without_sending() {
    let pki = loopback_pki();
    let receiver = Receiver::start(&pki, Reply::Status(200)).await;
    let notifier = Notifier::new(loopback_allowed());
    let request = erasure_request(Utc::now());
    let plain_http = endpoint(receiver.url().replace("https://", "http://"), &pki.ca_pem);
    let empty_secret = Endpoint {
        secret: Vec::new(),
        ..endpoint(receiver.url(), &pki.ca_pem)
    };
    let bad_bundle = endpoint(receiver.url(), b"-----BEGIN NOTHING-----");
    let cases = [
        (plain_http, ConfigurationError::NotHttps),
        (empty_secret, ConfigurationError::EmptySecret),
        (bad_bundle, ConfigurationError::InvalidCaBundle),
    ];
    for (endpoint, expected) in cases {
        assert_eq!(
            notifier.deliver(&endpoint, &request, Utc::now()).await,
            DeliveryOutcome::Misconfigured(expected)
        );
    }
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn no_outcome_shows_the_secret_the_signature_or_the_body() {
    let pki = loopback_pki();
    let other_ca = loopback_pki();
    let notifier = Notifier::with_timeouts(
        loopback_allowed(),
        Duration::from_secs(1),
        Duration::from_millis(500),
    );
    let request = erasure_request(Utc::now());
    let mut outcomes = Vec::new();
    let mut signatures = Vec::new();
    for reply in [
        Reply::Status(200),
        Reply::Status(500),
        Reply::StatusWithHeader(503, "retry-after", "7"),
        Reply::Status(400),
        Reply::Redirect(307),
        Reply::Hang,
    ] {
        let receiver = Receiver::start(&pki, reply).await;
        let url = receiver.url();
        outcomes.push(
            notifier
                .deliver(&endpoint(url.clone(), &pki.ca_pem), &request, Utc::now())
                .await,
        );
        outcomes.push(
            notifier
                .deliver(&endpoint(url, &other_ca.ca_pem), &request, Utc::now())
                .await,
        );
        for got in receiver.received() {
            signatures.push(header(&got, "x-erasure-signature").to_owned());
        }
    }
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    outcomes.push(
        notifier
            .deliver(
                &endpoint(format!("https://{closed}/erasure"), &pki.ca_pem),
                &request,
                Utc::now(),
            )
            .await,
    );
    assert!(!signatures.is_empty());

    let secret = std::str::from_utf8(SECRET).unwrap();
    for outcome in &outcomes {
        for shown in [
            format!("{outcome:?}"),
            format!("{outcome}"),
            outcome.reason().to_owned(),
        ] {
            assert!(!shown.contains(secret), "secret in {shown}");
            assert!(!shown.contains(&request.customer_ref), "body in {shown}");
            assert!(!shown.contains(&request.idempotency_key), "key in {shown}");
            for signature in &signatures {
                let hex_tag = signature.trim_start_matches("sha256=");
                assert!(!shown.contains(hex_tag), "signature in {shown}");
            }
        }
    }
}

/// The Rust example of docs/erasure-requests.md, verbatim, so the documented code is known to
/// work against what the notifier really sends.
mod documented_receiver_example {
    use hmac::{Hmac, KeyInit, Mac}; // hmac 0.13, sha2 0.11, hex 0.4
    use sha2::Sha256;

    /// True when the request is authentic and signed within `tolerance_secs` of `now_unix`.
    pub fn verify_erasure_request(
        secret: &[u8],
        timestamp: &str, // X-Erasure-Timestamp
        signature: &str, // X-Erasure-Signature
        body: &[u8],     // the raw body
        now_unix: i64,
        tolerance_secs: i64,
    ) -> bool {
        let Ok(signed_at) = timestamp.parse::<i64>() else {
            return false;
        };
        let Some(tag) = signature
            .strip_prefix("sha256=")
            .and_then(|h| hex::decode(h).ok())
        else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
            return false;
        };
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        // verify_slice compares in constant time.
        mac.verify_slice(&tag).is_ok() && (now_unix - signed_at).abs() <= tolerance_secs
    }
}

#[tokio::test]
async fn documented_rust_receiver_example_verifies() {
    use documented_receiver_example::verify_erasure_request;
    let (outcome, receiver) = deliver_once(Reply::Status(200)).await;
    assert_eq!(outcome, DeliveryOutcome::Acknowledged);
    let got = &receiver.received()[0];
    let timestamp = header(got, "x-erasure-timestamp");
    let signature = header(got, "x-erasure-signature");
    let now = Utc::now().timestamp();
    assert!(verify_erasure_request(
        SECRET, timestamp, signature, &got.body, now, 300
    ));
    assert!(!verify_erasure_request(
        b"wrong", timestamp, signature, &got.body, now, 300
    ));
    assert!(!verify_erasure_request(
        SECRET,
        timestamp,
        signature,
        &got.body,
        now + 301,
        300
    ));
}

/// Without an allow-list, a webhook on loopback, link-local, a cloud metadata address or a
/// name that resolves there is refused as misconfigured before any connection is made.
#[tokio::test]
async fn destinations_on_this_host_or_inside_the_cluster_are_refused_without_connecting() {
    let pki = loopback_pki();
    let receiver = Receiver::start(&pki, Reply::Status(200)).await;
    let port = receiver.port();
    let notifier = Notifier::with_timeouts(
        DestinationPolicy::new(),
        Duration::from_secs(2),
        Duration::from_secs(3),
    );
    for url in [
        receiver.url(),
        format!("https://localhost:{port}/erasure"),
        format!("https://[::ffff:127.0.0.1]:{port}/erasure"),
        format!("https://[::1]:{port}/erasure"),
        format!("https://0x7f.0.0.1:{port}/erasure"),
        "https://169.254.169.254/latest/meta-data/".to_owned(),
        "https://[fd00:ec2::254]/".to_owned(),
        "https://100.100.100.200/".to_owned(),
        "https://10.0.0.1/".to_owned(),
        "https://192.168.1.1/".to_owned(),
        "https://0.0.0.0/".to_owned(),
    ] {
        let outcome = deliver_with(&notifier, url.clone(), &pki.ca_pem).await;
        assert_eq!(
            outcome,
            DeliveryOutcome::Misconfigured(ConfigurationError::DestinationRefused),
            "{url}"
        );
        assert_eq!(outcome.reason(), "DestinationRefused", "{url}");
        assert!(!outcome.to_string().contains("127.0.0.1"), "{outcome}");
    }
    assert_eq!(
        receiver.connections(),
        0,
        "a refused destination was connected to"
    );
    assert!(receiver.received().is_empty());
}

/// A URL with credentials is refused before sending (the schema refuses it too): they would
/// travel to the processor and into its logs, and the URL into ours.
#[tokio::test]
async fn a_url_with_credentials_is_refused_without_connecting() {
    let pki = loopback_pki();
    let receiver = Receiver::start(&pki, Reply::Status(200)).await;
    let port = receiver.port();
    let notifier = Notifier::new(loopback_allowed());
    for url in [
        format!("https://user:s3cret@127.0.0.1:{port}/erasure"),
        format!("https://user@127.0.0.1:{port}/erasure"),
    ] {
        let outcome = deliver_with(&notifier, url.clone(), &pki.ca_pem).await;
        assert_eq!(
            outcome,
            DeliveryOutcome::Misconfigured(ConfigurationError::CredentialsInUrl),
            "{url}"
        );
        assert!(!format!("{outcome:?} {outcome}").contains("s3cret"));
    }
    assert_eq!(receiver.connections(), 0);
}

/// The allow-list exempts its networks, for IP literals and names alike, and no others.
#[tokio::test]
async fn an_allowed_network_is_delivered_to_and_another_is_still_refused() {
    let pki = loopback_pki();
    let receiver = Receiver::start(&pki, Reply::Status(200)).await;
    let port = receiver.port();
    let by_name = format!("https://localhost:{port}/erasure");
    let allowed = Notifier::new(loopback_allowed());
    for url in [receiver.url(), by_name.clone()] {
        assert_eq!(
            deliver_with(&allowed, url.clone(), &pki.ca_pem).await,
            DeliveryOutcome::Acknowledged,
            "{url}"
        );
    }
    assert_eq!(receiver.received().len(), 2);
    let elsewhere = Notifier::new(DestinationPolicy::allowing(vec![
        "10.20.0.0/16".parse().unwrap(),
    ]));
    let connections = receiver.connections();
    for url in [receiver.url(), by_name] {
        assert_eq!(
            deliver_with(&elsewhere, url.clone(), &pki.ca_pem).await,
            DeliveryOutcome::Misconfigured(ConfigurationError::DestinationRefused),
            "{url}"
        );
    }
    assert_eq!(receiver.connections(), connections);
}
