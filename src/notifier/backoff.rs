//! When to try an erasure request again after a failed attempt.
//!
//! Exponential backoff with jitter from `backon`: the base wait starts at
//! [`FIRST_RETRY_BASE`] and doubles per attempt up to [`MAX_RETRY_BASE`]; jitter then adds a
//! random 0–100 % of the base, so the wait after attempt `n` lies in `[base(n), 2·base(n))` and
//! never exceeds [`MAX_BACKOFF`]. Jitter spreads the retries of many accounts whose processor
//! was down at the same time, instead of sending them all at once when it is back.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// The base wait after the first failed attempt.
pub const FIRST_RETRY_BASE: Duration = Duration::from_secs(5);
/// The largest base wait (reached after ten failed attempts).
pub const MAX_RETRY_BASE: Duration = Duration::from_secs(30 * 60);
/// The longest wait that backoff alone produces: the largest base plus full jitter.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60 * 60);
/// The longest wait a receiver's `Retry-After` can impose; beyond it the request is retried
/// anyway, so a mistaken header cannot stall an erasure for weeks.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// Doublings past which the base is capped anyway; bounds the iteration below.
const DOUBLINGS_UNTIL_CAP: u32 = 16;

/// How long to wait before the next attempt, given how many attempts have been made
/// (`attempts_so_far`, at least 1 after a failure; 0 is treated as 1) and the receiver's
/// `Retry-After`, if any. The wait is never shorter than `Retry-After` (capped at
/// [`MAX_RETRY_AFTER`]); otherwise it lies in `[base, 2·base)` as the module doc describes.
pub fn next_attempt_delay(attempts_so_far: u32, retry_after: Option<Duration>) -> Duration {
    let doublings = attempts_so_far.saturating_sub(1).min(DOUBLINGS_UNTIL_CAP);
    let backoff = ExponentialBuilder::default()
        .with_min_delay(FIRST_RETRY_BASE)
        .with_factor(2.0)
        .with_max_delay(MAX_RETRY_BASE)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(doublings as usize)
        // Unreachable without max_times or total_delay; the cap is the safe answer anyway.
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF);
    let floor = retry_after.map_or(Duration::ZERO, |wait| wait.min(MAX_RETRY_AFTER));
    backoff.max(floor)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many samples, since the jitter is random: every one must lie in the bounds.
    const SAMPLES: usize = 200;

    fn base(attempts_so_far: u32) -> Duration {
        let doublings = attempts_so_far.saturating_sub(1).min(20);
        FIRST_RETRY_BASE
            .saturating_mul(1 << doublings)
            .min(MAX_RETRY_BASE)
    }

    #[test]
    fn delay_doubles_from_five_seconds_within_jitter_bounds() {
        for attempts in [0, 1, 2, 3, 5, 8, 10, 11, 12, 50, u32::MAX] {
            let low = base(attempts);
            let high = low * 2;
            for _ in 0..SAMPLES {
                let delay = next_attempt_delay(attempts, None);
                assert!(
                    low <= delay && delay <= high.min(MAX_BACKOFF),
                    "attempt {attempts}: {delay:?} not in [{low:?}, {high:?}]"
                );
            }
        }
        assert_eq!(base(1), Duration::from_secs(5));
        assert_eq!(base(2), Duration::from_secs(10));
        assert_eq!(base(3), Duration::from_secs(20));
        assert_eq!(base(12), MAX_RETRY_BASE);
    }

    #[test]
    fn delay_is_jittered() {
        let first = next_attempt_delay(4, None);
        assert!(
            (0..SAMPLES).any(|_| next_attempt_delay(4, None) != first),
            "{SAMPLES} identical delays: no jitter"
        );
    }

    #[test]
    fn delay_is_never_sooner_than_retry_after() {
        let retry_after = Duration::from_secs(7 * 60);
        for attempts in 1..=3 {
            for _ in 0..SAMPLES {
                assert_eq!(next_attempt_delay(attempts, Some(retry_after)), retry_after);
            }
        }
        // A short Retry-After does not shorten the backoff.
        for _ in 0..SAMPLES {
            assert!(next_attempt_delay(10, Some(Duration::from_secs(1))) >= base(10));
        }
    }

    #[test]
    fn retry_after_is_capped_at_a_day() {
        let year = Duration::from_secs(365 * 24 * 60 * 60);
        assert_eq!(next_attempt_delay(1, Some(year)), MAX_RETRY_AFTER);
        assert_eq!(next_attempt_delay(1, Some(Duration::MAX)), MAX_RETRY_AFTER);
    }
}
