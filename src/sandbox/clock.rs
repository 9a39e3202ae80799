//! The sandbox's clock: from a chosen instant, `speed` times faster than real time, and the
//! ticks that make the operator look at every account again as that time flies by.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use futures::Stream;

use crate::clock::Clock;

/// The fastest the sandbox ticks: more often only costs reconciles.
const MIN_TICK: Duration = Duration::from_millis(20);
/// The slowest: a person watching a slow sandbox still sees things happen on time.
const MAX_TICK: Duration = Duration::from_millis(500);
/// How much sandbox time a tick may let pass: a deletion shows at most this late.
const SANDBOX_TIME_PER_TICK: f64 = 3600.0;

/// A clock that stands at `from` until [`ScaledClock::start`], then runs `speed` times real
/// time. It waits for the operator: started before its caches have synced, a fast clock would
/// have days pass before the operator could see any of them.
#[derive(Clone, Debug)]
pub struct ScaledClock {
    from: DateTime<Utc>,
    started: Arc<OnceLock<Instant>>,
    speed: f64,
}

impl ScaledClock {
    /// A clock standing at `from`.
    pub fn new(from: DateTime<Utc>, speed: f64) -> Self {
        Self {
            from,
            started: Arc::new(OnceLock::new()),
            speed,
        }
    }

    /// Sets it running (every clone with it); a clock already running runs on.
    pub fn start(&self) {
        let _ = self.started.set(Instant::now());
    }

    /// Real time since the start; none before it.
    fn elapsed(&self) -> Duration {
        self.started.get().map(Instant::elapsed).unwrap_or_default()
    }

    /// The sandbox time after `real` has passed since the start.
    pub fn at(&self, real: Duration) -> DateTime<Utc> {
        let nanos = real.as_secs_f64() * self.speed * 1e9;
        // Past what i64 nanoseconds hold (292 years of sandbox time) the clock stands still:
        // no sandbox runs that long.
        let passed = if nanos < 9.0e18 {
            #[allow(clippy::cast_possible_truncation)]
            TimeDelta::nanoseconds(nanos as i64)
        } else {
            TimeDelta::nanoseconds(i64::MAX)
        };
        self.from.checked_add_signed(passed).unwrap_or(self.from)
    }

    /// The real time it takes for the sandbox clock to reach `at` from the start.
    pub fn real_until(&self, at: DateTime<Utc>) -> Duration {
        let sandbox = (at - self.from).to_std().unwrap_or_default();
        Duration::from_secs_f64(sandbox.as_secs_f64() / self.speed)
    }

    /// How often the operator is told that time moved: an hour of sandbox time, within
    /// 20 ms to 500 ms of real time.
    pub fn tick(&self) -> Duration {
        Duration::from_secs_f64(SANDBOX_TIME_PER_TICK / self.speed).clamp(MIN_TICK, MAX_TICK)
    }

    /// A tick every [`ScaledClock::tick`], forever.
    pub fn ticks(&self) -> Pin<Box<dyn Stream<Item = ()> + Send>> {
        let tick = self.tick();
        Box::pin(futures::stream::unfold((), move |()| async move {
            tokio::time::sleep(tick).await;
            Some(((), ()))
        }))
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> DateTime<Utc> {
        self.at(self.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("a time")
    }

    #[test]
    fn a_day_of_sandbox_time_passes_in_a_second_at_speed_86400() {
        let clock = ScaledClock::new(at("2026-11-23T00:00:00Z"), 86_400.0);
        assert_eq!(clock.at(Duration::from_secs(1)), at("2026-11-24T00:00:00Z"));
        assert_eq!(
            clock.at(Duration::from_millis(500)),
            at("2026-11-23T12:00:00Z")
        );
        assert_eq!(
            clock.real_until(at("2026-12-23T00:00:00Z")),
            Duration::from_secs(30)
        );
        assert_eq!(clock.real_until(at("2026-11-01T00:00:00Z")), Duration::ZERO);
    }

    #[test]
    fn the_clock_stands_until_started() {
        let clock = ScaledClock::new(at("2026-11-23T00:00:00Z"), 86_400.0);
        let clone = clock.clone();
        assert_eq!(clone.now(), at("2026-11-23T00:00:00Z"));
        clock.start();
        // Busy-wait on the monotonic clock (no sleep) until time has visibly passed.
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(1) {
            std::hint::spin_loop();
        }
        assert!(
            clone.now() > at("2026-11-23T00:00:00Z"),
            "clones run with it"
        );
    }

    #[test]
    fn ticks_let_an_hour_pass_within_bounds() {
        let day_per_second = ScaledClock::new(at("2026-11-23T00:00:00Z"), 86_400.0);
        assert_eq!(day_per_second.tick(), Duration::from_secs_f64(1.0 / 24.0));
        let real_time = ScaledClock::new(at("2026-11-23T00:00:00Z"), 1.0);
        assert_eq!(real_time.tick(), MAX_TICK);
        let very_fast = ScaledClock::new(at("2026-11-23T00:00:00Z"), 1e9);
        assert_eq!(very_fast.tick(), MIN_TICK);
    }
}
