//! Erasure requests to sub-processors (GDPR Art. 19): the signed HTTPS webhook that tells a
//! DataProcessor to erase what it holds of an account.
//!
//! - [`request`]: the JSON body, its idempotency key and the headers it is sent with (pure).
//! - [`signature`]: HMAC-SHA256 signing and the receiver's verification (pure).
//! - [`delivery`]: one HTTPS attempt and its classification into a [`DeliveryOutcome`].
//! - [`destination`]: which addresses a webhook may point at (`--webhook-allow-cidr`).
//! - [`backoff`]: when to try again after a failed attempt (pure apart from jitter).
//! - [`breaker`]: a circuit breaker per processor whose endpoint keeps failing to answer.
//! - [`ledger`]: which requests an account owes, every change to their record, and what staff
//!   are told to do about them.
//!
//! The wire format is documented for receivers in `docs/erasure-requests.md`.

pub mod backoff;
pub mod breaker;
pub mod delivery;
pub mod destination;
pub mod ledger;
pub mod request;
pub mod signature;

pub use backoff::next_attempt_delay;
pub use delivery::{ConfigurationError, DeliveryOutcome, Endpoint, Notifier};
pub use destination::DestinationPolicy;
pub use request::{
    ErasedResource, ErasureRequest, IDEMPOTENCY_KEY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
    follow_up_key, idempotency_key,
};
pub use signature::{VerifyError, sign, verify};
