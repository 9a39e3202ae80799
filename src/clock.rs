//! Time: where the shell reads it, and the one way the operator writes it ([`rfc3339`]).
//! Production reads the system clock; tests inject a manual clock so multi-year schedules run
//! without waiting.

use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use futures::{Stream, stream};
use tokio::sync::watch;

/// A time as the operator writes it everywhere (status, events, logs, annotations, plan
/// output, erasure requests): RFC 3339 in UTC, whole seconds, with `Z`, e.g.
/// `2026-12-01T00:00:00Z`.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until a test moves it; every move is announced, so a controller
/// can look again at once instead of sleeping through a jump of months.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
    moved: watch::Sender<()>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(start),
            moved: watch::Sender::new(()),
        }
    }

    /// Sets the time. Moving it backwards is allowed: tests of clock skew need it.
    pub fn set(&self, now: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = now;
        self.moved.send_replace(());
    }

    /// Moves the time forward by `delta`.
    pub fn advance(&self, delta: TimeDelta) {
        {
            let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
            *now += delta;
        }
        self.moved.send_replace(());
    }

    /// A stream that yields once after each later move of the clock (moves in quick
    /// succession may be announced once).
    pub fn moves(&self) -> impl Stream<Item = ()> + Send + 'static {
        let mut receiver = self.moved.subscribe();
        receiver.mark_unchanged();
        stream::unfold(receiver, |mut receiver| async move {
            receiver.changed().await.ok()?;
            Some(((), receiver))
        })
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = "2026-11-01T00:00:00Z".parse().unwrap();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(TimeDelta::days(30));
        assert_eq!(
            clock.now(),
            "2026-12-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        clock.set(start);
        assert_eq!(clock.now(), start);
    }
}
