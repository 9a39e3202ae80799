//! HMAC-SHA256 signatures over `"{timestamp}.{body}"`, and their verification by a receiver.
//!
//! Signing the timestamp together with the body lets a receiver reject replays of an old,
//! correctly signed request: it checks the signature, then that the timestamp is recent.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::request::{SIGNATURE_HEADER, TIMESTAMP_HEADER};

const SIGNATURE_SCHEME_PREFIX: &str = "sha256=";
/// SHA-256's block size: HMAC zero-pads shorter keys to it and hashes longer ones.
const SHA256_BLOCK_BYTES: usize = 64;

type HmacSha256 = Hmac<Sha256>;

/// Why a receiver refuses a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The timestamp header is not a decimal number of Unix seconds.
    #[error("the {TIMESTAMP_HEADER} header is not Unix seconds")]
    MalformedTimestamp,
    /// The signature header is not `sha256=` followed by hex.
    #[error("the {SIGNATURE_HEADER} header is not sha256=<hex>")]
    MalformedSignature,
    /// The signature does not match the timestamp and body under this secret.
    #[error("the signature does not match")]
    SignatureMismatch,
    /// The request was signed longer ago than the tolerance allows (a replay or a long delay).
    #[error("the timestamp is {age_seconds}s old, more than the tolerance")]
    StaleTimestamp {
        /// How old the timestamp is.
        age_seconds: i64,
    },
    /// The timestamp lies further in the future than the tolerance allows (clock skew).
    #[error("the timestamp is {ahead_seconds}s in the future, more than the tolerance")]
    FutureTimestamp {
        /// How far ahead of the receiver's clock the timestamp is.
        ahead_seconds: i64,
    },
}

/// The `X-Erasure-Signature` header value for `body` signed at `timestamp` (Unix seconds):
/// `sha256=` and the lowercase hex HMAC-SHA256 of `"{timestamp}.{body}"` under `secret`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = keyed_mac(secret, timestamp, body).finalize().into_bytes();
    format!("{SIGNATURE_SCHEME_PREFIX}{}", hex::encode(tag))
}

/// Checks a received request: the signature must match (compared in constant time) and the
/// timestamp must lie within `tolerance` of `now`, either way.
pub fn verify(
    secret: &[u8],
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let timestamp_text = timestamp_header.trim();
    // Digits only: `i64::from_str` would also take a sign, which no sender writes.
    if timestamp_text.is_empty() || !timestamp_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::MalformedTimestamp);
    }
    let timestamp: i64 = timestamp_text
        .parse()
        .map_err(|_| VerifyError::MalformedTimestamp)?;
    let claimed = signature_header
        .trim()
        .strip_prefix(SIGNATURE_SCHEME_PREFIX)
        .and_then(|hex_tag| hex::decode(hex_tag).ok())
        .ok_or(VerifyError::MalformedSignature)?;

    // The signature first, so only an authentic sender learns anything about the clock check.
    keyed_mac(secret, timestamp, body)
        .verify_slice(&claimed)
        .map_err(|_| VerifyError::SignatureMismatch)?;

    let tolerance_seconds = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    let age_seconds = now.timestamp().saturating_sub(timestamp);
    if age_seconds > tolerance_seconds {
        return Err(VerifyError::StaleTimestamp { age_seconds });
    }
    let ahead_seconds = age_seconds.saturating_neg();
    if ahead_seconds > tolerance_seconds {
        return Err(VerifyError::FutureTimestamp { ahead_seconds });
    }
    Ok(())
}

/// The MAC over `"{timestamp}.{body}"`, fed but not finalised.
fn keyed_mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new(&block_sized_key(secret).into());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The key exactly as HMAC (RFC 2104) uses it: hashed when longer than a block, then
/// zero-padded to one. Done here so the MAC is built with the infallible fixed-size
/// constructor instead of `new_from_slice`, whose error cannot happen for HMAC but would
/// otherwise need an `expect`; the tag is identical (the tests check against Python's `hmac`).
fn block_sized_key(secret: &[u8]) -> [u8; SHA256_BLOCK_BYTES] {
    let mut key = [0u8; SHA256_BLOCK_BYTES];
    if secret.len() > SHA256_BLOCK_BYTES {
        let digest = Sha256::digest(secret);
        key[..digest.len()].copy_from_slice(&digest);
    } else {
        key[..secret.len()].copy_from_slice(secret);
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const BODY: &[u8] = br#"{"account":"acme"}"#;
    const SIGNED_AT: i64 = 1_790_000_000;
    const TOLERANCE: Duration = Duration::from_secs(300);

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).single().unwrap()
    }

    #[test]
    fn sign_matches_known_vectors() {
        // python3 -c 'import hmac,hashlib; print(hmac.new(KEY,
        //   b"1790000000.{\"account\":\"acme\"}", hashlib.sha256).hexdigest())'
        let cases: [(&[u8], &str); 3] = [
            (
                b"whsec_test",
                "ec07f48a5f6a70e5a7154db9cac6d0c3d18be63fbf010d85739a3bb9abb7d22a",
            ),
            // Exactly one block: used as is.
            (
                &[b'k'; 64],
                "c730da0175244e57dbb0c8c23d121a6d47157c0a328839d80a146cfcb982aaf1",
            ),
            // Longer than a block: hashed first.
            (
                &[b'k'; 100],
                "4b9361484bf09ca9bd8789f8ffdfa7616dae9473f6bcdeb525fff236058afcc0",
            ),
        ];
        for (secret, hex_tag) in cases {
            assert_eq!(sign(secret, SIGNED_AT, BODY), format!("sha256={hex_tag}"));
        }
    }

    #[test]
    fn verify_accepts_own_signature_and_rejects_wrong_secret_or_tampering() {
        let signature = sign(b"right", SIGNED_AT, BODY);
        let now = at(SIGNED_AT);
        let ts = SIGNED_AT.to_string();
        assert_eq!(
            verify(b"right", &ts, &signature, BODY, now, TOLERANCE),
            Ok(())
        );
        assert_eq!(
            verify(b"wrong", &ts, &signature, BODY, now, TOLERANCE),
            Err(VerifyError::SignatureMismatch)
        );
        assert_eq!(
            verify(
                b"right",
                &ts,
                &signature,
                br#"{"account":"acmf"}"#,
                now,
                TOLERANCE
            ),
            Err(VerifyError::SignatureMismatch)
        );
        let other_ts = (SIGNED_AT + 1).to_string();
        assert_eq!(
            verify(b"right", &other_ts, &signature, BODY, now, TOLERANCE),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn verify_tolerance_edges_are_inclusive() {
        let signature = sign(b"s", SIGNED_AT, BODY);
        let ts = SIGNED_AT.to_string();
        let check = |now_secs: i64| verify(b"s", &ts, &signature, BODY, at(now_secs), TOLERANCE);
        assert_eq!(check(SIGNED_AT + 300), Ok(()));
        assert_eq!(check(SIGNED_AT - 300), Ok(()));
        assert_eq!(
            check(SIGNED_AT + 301),
            Err(VerifyError::StaleTimestamp { age_seconds: 301 })
        );
        assert_eq!(
            check(SIGNED_AT - 301),
            Err(VerifyError::FutureTimestamp { ahead_seconds: 301 })
        );
    }

    #[test]
    fn verify_rejects_malformed_headers() {
        let signature = sign(b"s", SIGNED_AT, BODY);
        let now = at(SIGNED_AT);
        for bad_ts in ["", "abc", "-1790000000", "+1790000000", "1790000000.5"] {
            assert_eq!(
                verify(b"s", bad_ts, &signature, BODY, now, TOLERANCE),
                Err(VerifyError::MalformedTimestamp),
                "{bad_ts:?}"
            );
        }
        let hex_tag = signature.trim_start_matches("sha256=");
        for bad_sig in [
            hex_tag.to_string(),
            format!("sha1={hex_tag}"),
            "sha256=zz".into(),
        ] {
            assert_eq!(
                verify(b"s", "1790000000", &bad_sig, BODY, now, TOLERANCE),
                Err(VerifyError::MalformedSignature),
                "{bad_sig:?}"
            );
        }
        // A truncated tag is well-formed hex but cannot match.
        assert_eq!(
            verify(b"s", "1790000000", &signature[..21], BODY, now, TOLERANCE),
            Err(VerifyError::SignatureMismatch)
        );
    }
}
