//! The body of an erasure request, its idempotency key and the headers it is sent with.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The header carrying the signing time in Unix seconds.
pub const TIMESTAMP_HEADER: &str = "X-Erasure-Timestamp";
/// The header carrying `sha256=<lowercase hex HMAC>` (see [`super::signature`]).
pub const SIGNATURE_HEADER: &str = "X-Erasure-Signature";
/// The header repeating the body's `idempotencyKey`, for receivers that deduplicate by header.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// One object whose data the processor is asked to erase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErasedResource {
    /// The kind, e.g. `Domain` or `DataRecord`.
    pub kind: String,
    /// The namespace of the object.
    pub namespace: String,
    /// The name of the object.
    pub name: String,
}

/// The JSON body POSTed to a processor's erasure webhook.
///
/// Serialised in camelCase; `requestedAt` is RFC 3339 in UTC (`2026-12-01T00:00:00Z`).
/// Carries names and the pseudonymous `customerRef` only, never personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErasureRequest {
    /// The Account's name.
    pub account: String,
    /// The Account's pseudonymous customer reference, which the processor knows the data by.
    pub customer_ref: String,
    /// The DataProcessor's name.
    pub processor: String,
    /// Everything of the account this processor held that is erased now.
    pub resources: Vec<ErasedResource>,
    /// Why the data goes, in plain words (e.g. "account terminated, grace period 30d ended").
    pub reason: String,
    /// When the operator first built this request.
    pub requested_at: DateTime<Utc>,
    /// Stable across retries and restarts; see [`idempotency_key`].
    pub idempotency_key: String,
}

impl ErasureRequest {
    /// A request whose idempotency key is derived from `account`, `processor` and `erasure_at`
    /// (the instant that identifies this erasure, e.g. the account's termination time).
    pub fn new(
        account: impl Into<String>,
        customer_ref: impl Into<String>,
        processor: impl Into<String>,
        resources: Vec<ErasedResource>,
        reason: impl Into<String>,
        erasure_at: DateTime<Utc>,
        requested_at: DateTime<Utc>,
    ) -> Self {
        let account = account.into();
        let processor = processor.into();
        let idempotency_key = idempotency_key(&account, &processor, erasure_at);
        Self {
            account,
            customer_ref: customer_ref.into(),
            processor,
            resources,
            reason: reason.into(),
            requested_at,
            idempotency_key,
        }
    }

    /// The exact bytes that are sent and signed.
    pub fn to_body(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

/// The idempotency key of the erasure request for (`account`, `processor`, `at`): the lowercase
/// hex SHA-256 of `"{account}/{processor}/{at}"` with `at` in RFC 3339, whole seconds, `Z`.
///
/// A digest rather than the readable string so the key is always 64 header- and URL-safe
/// characters whatever the names contain. Sub-second parts of `at` are ignored, so a time that
/// went through a seconds-precision store (Kubernetes status) gives the same key after a restart.
pub fn idempotency_key(account: &str, processor: &str, at: DateTime<Utc>) -> String {
    let at = crate::clock::rfc3339(at);
    let digest = Sha256::digest(format!("{account}/{processor}/{at}").as_bytes());
    hex::encode(digest)
}

/// The idempotency key of a follow-up request: one for data of the same erasure time that the
/// processor came to hold after the first request was sent. Hex SHA-256 of
/// `"{account}/{processor}/{at}#{sequence}"`, `sequence` counting from 2 (the first request's
/// key is [`idempotency_key`]).
pub fn follow_up_key(account: &str, processor: &str, at: DateTime<Utc>, sequence: usize) -> String {
    let at = crate::clock::rfc3339(at);
    let digest = Sha256::digest(format!("{account}/{processor}/{at}#{sequence}").as_bytes());
    hex::encode(digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).single().unwrap()
    }

    #[test]
    fn idempotency_key_is_the_documented_digest() {
        let terminated = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        // printf '%s' 'acme/key-systems/2026-11-01T00:00:00Z' | sha256sum
        assert_eq!(
            idempotency_key("acme", "key-systems", terminated),
            "e4bc6f6b8f84e1a83366111ff6a5462d8706917ec63359db5cedf49e92b5908f"
        );
    }

    #[test]
    fn idempotency_key_is_stable_and_header_safe() {
        let key = idempotency_key("acme", "key-systems", at(1_790_000_000));
        assert_eq!(
            key,
            idempotency_key("acme", "key-systems", at(1_790_000_000))
        );
        assert_eq!(key.len(), 64);
        assert!(
            key.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }

    #[test]
    fn idempotency_key_ignores_sub_seconds_and_differs_per_input() {
        let whole = at(1_790_000_000);
        let fractional = whole + chrono::TimeDelta::milliseconds(250);
        let key = idempotency_key("acme", "key-systems", whole);
        assert_eq!(key, idempotency_key("acme", "key-systems", fractional));
        assert_ne!(key, idempotency_key("acme", "pipedrive", whole));
        assert_ne!(key, idempotency_key("acme2", "key-systems", whole));
        assert_ne!(
            key,
            idempotency_key("acme", "key-systems", at(1_790_000_001))
        );
    }

    #[test]
    fn body_is_camel_case_with_rfc3339_utc_and_round_trips() {
        let request = ErasureRequest::new(
            "acme",
            "C-10442",
            "key-systems",
            vec![ErasedResource {
                kind: "Domain".into(),
                namespace: "acme".into(),
                name: "acme-se".into(),
            }],
            "account terminated",
            Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
        );
        let body = request.to_body().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "account": "acme",
                "customerRef": "C-10442",
                "processor": "key-systems",
                "resources": [{"kind": "Domain", "namespace": "acme", "name": "acme-se"}],
                "reason": "account terminated",
                "requestedAt": "2026-12-01T00:00:00Z",
                "idempotencyKey": request.idempotency_key,
            })
        );
        let parsed: ErasureRequest = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed, request);
    }
}
