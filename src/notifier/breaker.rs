//! A circuit breaker per processor: an endpoint that keeps failing to answer (timeouts, refused,
//! reset or failed connections and TLS handshakes) is left alone for a while as a whole,
//! instead of holding a delivery slot for every request owed to it. An HTTP answer of any
//! status is an answer: the per-request backoff deals with 5xx and 429. Pure: the caller passes
//! `now`.
//!
//! Closed: deliveries go. After one unanswered attempt, one delivery at a time (so the requests
//! woken by that failure do not all start on an endpoint that may be hung). After [`THRESHOLD`]
//! in a row it opens for [`FIRST_OPEN`], doubling with every reopening up to [`MAX_OPEN`]. Once
//! that time has passed it is half-open: one trial delivery goes; an answer closes the breaker,
//! another failure opens it again.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

use super::delivery::DeliveryOutcome;

/// Failures in a row that open the breaker.
pub const THRESHOLD: u32 = 3;
/// How long the breaker first stays open.
pub const FIRST_OPEN: TimeDelta = TimeDelta::seconds(30);
/// The longest it stays open.
pub const MAX_OPEN: TimeDelta = TimeDelta::minutes(10);

/// The breakers of every processor, by name.
#[derive(Debug, Default)]
pub struct Breakers(HashMap<String, Breaker>);

#[derive(Debug, Default)]
struct Breaker {
    /// Failures in a row.
    failures: u32,
    /// Times it opened in a row (the next opening lasts longer).
    openings: u32,
    /// While open: until when.
    open_until: Option<DateTime<Utc>>,
}

/// Whether a delivery to a processor may start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Closed: deliveries go.
    Closed,
    /// Open: nothing goes before this time.
    Open(DateTime<Utc>),
    /// Failing, or half-open: one delivery at a time, if none is under way.
    OneAtATime,
}

impl Breakers {
    /// Whether a delivery to `processor` may start at `now`.
    pub fn admission(&self, processor: &str, now: DateTime<Utc>) -> Admission {
        match self.0.get(processor) {
            None => Admission::Closed,
            Some(breaker) => match breaker.open_until {
                Some(until) if now < until => Admission::Open(until),
                _ => Admission::OneAtATime,
            },
        }
    }

    /// Records the outcome of a delivery to `processor` that ended at `now`; when this opens
    /// the breaker, until when.
    pub fn record(
        &mut self,
        processor: &str,
        outcome: &DeliveryOutcome,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if !unanswered(outcome) {
            // It answered (acknowledged, or refused): reachable, so closed.
            self.0.remove(processor);
            return None;
        }
        let breaker = self.0.entry(processor.to_owned()).or_default();
        breaker.failures = breaker.failures.saturating_add(1);
        let trial_failed = breaker.open_until.is_some_and(|until| now >= until);
        if breaker.failures >= THRESHOLD || trial_failed {
            let factor = 1_i32 << breaker.openings.min(8);
            let open_for = (FIRST_OPEN * factor).min(MAX_OPEN);
            breaker.open_until = Some(now + open_for);
            breaker.openings = breaker.openings.saturating_add(1);
            breaker.failures = 0;
            return breaker.open_until;
        }
        None
    }
}

/// Whether an outcome means the endpoint did not answer: a transient failure without an HTTP
/// status (every HTTP answer's reason starts with "HTTP").
fn unanswered(outcome: &DeliveryOutcome) -> bool {
    match outcome {
        DeliveryOutcome::Retry { reason, .. } => !reason.starts_with("HTTP"),
        DeliveryOutcome::Acknowledged
        | DeliveryOutcome::Rejected { .. }
        | DeliveryOutcome::Misconfigured(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn timeout() -> DeliveryOutcome {
        DeliveryOutcome::Retry {
            retry_after: None,
            reason: "Timeout".into(),
        }
    }

    #[test]
    fn it_opens_after_three_failures_in_a_row_and_a_trial_closes_it() {
        let mut breakers = Breakers::default();
        assert_eq!(breakers.admission("hung", t(0)), Admission::Closed);
        for i in 0..THRESHOLD - 1 {
            breakers.record("hung", &timeout(), t(i.into()));
            assert_eq!(
                breakers.admission("hung", t(i.into())),
                Admission::OneAtATime,
                "one at a time once an attempt went unanswered"
            );
        }
        breakers.record("hung", &timeout(), t(10));
        assert_eq!(breakers.admission("hung", t(10)), Admission::Open(t(40)));
        assert_eq!(
            breakers.admission("other", t(10)),
            Admission::Closed,
            "per processor"
        );
        assert_eq!(breakers.admission("hung", t(39)), Admission::Open(t(40)));
        assert_eq!(
            breakers.admission("hung", t(40)),
            Admission::OneAtATime,
            "half-open"
        );
        // The trial fails: open again, twice as long.
        breakers.record("hung", &timeout(), t(45));
        assert_eq!(breakers.admission("hung", t(45)), Admission::Open(t(105)));
        // The next trial succeeds: closed, and the next opening starts short again.
        breakers.record("hung", &DeliveryOutcome::Acknowledged, t(110));
        assert_eq!(breakers.admission("hung", t(110)), Admission::Closed);
        for i in 0..THRESHOLD {
            breakers.record("hung", &timeout(), t(120 + i64::from(i)));
        }
        assert_eq!(breakers.admission("hung", t(122)), Admission::Open(t(152)));
    }

    #[test]
    fn any_http_answer_resets_the_count() {
        let mut breakers = Breakers::default();
        let rate_limited = DeliveryOutcome::Retry {
            retry_after: None,
            reason: "HTTP 429".into(),
        };
        let server_error = DeliveryOutcome::Retry {
            retry_after: None,
            reason: "HTTP 503".into(),
        };
        let refused = DeliveryOutcome::Rejected {
            status: 400,
            reason: "HTTP 400".into(),
        };
        for answer in [
            rate_limited,
            server_error,
            refused,
            DeliveryOutcome::Acknowledged,
        ] {
            breakers.record("p", &timeout(), t(0));
            breakers.record("p", &timeout(), t(1));
            breakers.record("p", &answer, t(2));
            assert_eq!(
                breakers.admission("p", t(2)),
                Admission::Closed,
                "{answer:?}"
            );
            // The count starts over: two more failures do not open it.
            breakers.record("p", &timeout(), t(3));
            breakers.record("p", &timeout(), t(4));
            assert_eq!(
                breakers.admission("p", t(4)),
                Admission::OneAtATime,
                "{answer:?}"
            );
            breakers.record("p", &answer, t(5));
        }
    }

    #[test]
    fn openings_are_capped() {
        let mut breakers = Breakers::default();
        let mut now = t(0);
        for _ in 0..THRESHOLD {
            breakers.record("p", &timeout(), now);
        }
        for _ in 0..20 {
            let Admission::Open(until) = breakers.admission("p", now) else {
                panic!("open")
            };
            assert!(until - now <= MAX_OPEN);
            now = until;
            breakers.record("p", &timeout(), now);
        }
        assert_eq!(
            breakers.admission("p", now),
            Admission::Open(now + MAX_OPEN)
        );
    }
}
