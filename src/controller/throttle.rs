//! How many DELETEs are in flight at once, adapted to what the API server answers: additive
//! increase while it keeps up, multiplicative decrease on a 429 or a 5xx, or when its latency
//! climbs well above the fastest it has been lately (AIMD, as TCP and Netflix's
//! concurrency-limits do). A fixed number is either too few for a burst the server could take
//! or too many for a server already throttling everyone.
//!
//! A batch takes its permits before the Account is read for it, so that its DELETEs go out at
//! once after that read (docs/design.md §4, invariant 3: the read is at most one round trip
//! old when a DELETE is sent). That is why this is not a tower layer around the client, which
//! could hold a DELETE back after the read.

use std::{
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use tokio::sync::Notify;

/// The limits of the adaptive window.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The window never shrinks below this.
    pub min: usize,
    /// Nor grows above this.
    pub max: usize,
    /// Where it starts.
    pub initial: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            min: 1,
            max: 64,
            initial: 16,
        }
    }
}

/// Latency above this many times the recent fastest counts as the server falling behind.
const LATENCY_TOLERANCE: f64 = 3.0;
/// A latency below this is never "falling behind", however fast the fastest was (a test
/// server answers in microseconds, and scheduling noise alone would triple that).
const LATENCY_FLOOR: Duration = Duration::from_millis(50);
/// The window after a decrease.
const DECREASE: f64 = 0.7;
/// The recent fastest latency forgets the past at this rate per sample, so that a server
/// that became slower for good is not seen as overloaded for ever.
const FASTEST_DRIFT: f64 = 1.01;

/// What a DELETE's answer says about the server's load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Any answer that is not about load (success, 404, 409, 403, ...).
    Served,
    /// 429, or a 5xx: the server (or priority and fairness) turned it away.
    Overloaded,
}

/// The adaptive window and the permits in use.
pub struct DeleteLimiter {
    state: Mutex<State>,
    released: Notify,
    limits: Limits,
}

#[derive(Debug)]
struct State {
    window: f64,
    in_flight: usize,
    /// The fastest recent latency, in seconds.
    fastest: Option<f64>,
    /// No second decrease for answers to requests sent before the last one.
    last_decrease: Option<Instant>,
}

/// Permits held by a batch; given back when dropped.
pub struct Permits<'a> {
    limiter: &'a DeleteLimiter,
    count: usize,
    /// When they were granted: an answer to a request sent before a decrease does not
    /// decrease again.
    pub granted: Instant,
    /// Whether they had to wait for room in the window: what was read before them may then
    /// be older than a round trip.
    pub waited: bool,
}

impl Drop for Permits<'_> {
    fn drop(&mut self) {
        let mut state = self.limiter.lock();
        state.in_flight = state.in_flight.saturating_sub(self.count);
        drop(state);
        self.limiter.released.notify_waiters();
    }
}

impl DeleteLimiter {
    /// A limiter within `limits`.
    pub fn new(limits: Limits) -> Self {
        let min = limits.min.max(1);
        let max = limits.max.max(min);
        let limits = Limits {
            min,
            max,
            initial: limits.initial.clamp(min, max),
        };
        Self {
            state: Mutex::new(State {
                window: limits.initial as f64,
                in_flight: 0,
                fastest: None,
                last_decrease: None,
            }),
            released: Notify::new(),
            limits,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Only counts: a state a panic left behind is still a usable one.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many DELETEs may be in flight now.
    pub fn window(&self) -> usize {
        window_of(&self.lock(), &self.limits)
    }

    /// Waits until `count` more DELETEs may be in flight (at most the window: a caller asks
    /// for a batch no larger than [`Self::window`], and a larger one goes alone).
    pub async fn acquire(&self, count: usize) -> Permits<'_> {
        let mut waited = false;
        loop {
            let released = self.released.notified();
            {
                let mut state = self.lock();
                let window = window_of(&state, &self.limits);
                if state.in_flight == 0 || state.in_flight + count <= window {
                    state.in_flight += count;
                    return Permits {
                        limiter: self,
                        count,
                        granted: Instant::now(),
                        waited,
                    };
                }
            }
            released.await;
            waited = true;
        }
    }

    /// Adapts the window to one answer, which took `latency`, to a request sent under
    /// `permits`.
    pub fn observe(&self, permits: &Permits<'_>, answer: Answer, latency: Duration) {
        let mut state = self.lock();
        let seconds = latency.as_secs_f64();
        let fastest = state
            .fastest
            .map_or(seconds, |f| (f * FASTEST_DRIFT).min(seconds));
        state.fastest = Some(fastest);
        let slow = latency > LATENCY_FLOOR && seconds > fastest * LATENCY_TOLERANCE;
        if answer == Answer::Overloaded || slow {
            // One decrease per round of requests: the other answers to requests sent before
            // it tell of the same load.
            if state.last_decrease.is_none_or(|at| permits.granted > at) {
                state.window = (state.window * DECREASE).max(self.limits.min as f64);
                state.last_decrease = Some(Instant::now());
            }
        } else {
            // About one more per window of answers.
            state.window = (state.window + 1.0 / state.window).min(self.limits.max as f64);
        }
    }
}

fn window_of(state: &State, limits: &Limits) -> usize {
    (state.window.floor() as usize).clamp(limits.min, limits.max)
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    const FAST: Duration = Duration::from_millis(2);

    fn limiter() -> DeleteLimiter {
        DeleteLimiter::new(Limits {
            min: 1,
            max: 64,
            initial: 16,
        })
    }

    #[tokio::test]
    async fn the_window_grows_while_the_server_keeps_up_and_stops_at_the_maximum() {
        let limiter = limiter();
        for _ in 0..200 {
            let permits = limiter.acquire(1).await;
            limiter.observe(&permits, Answer::Served, FAST);
        }
        let grown = limiter.window();
        assert!(grown > 16, "{grown}");
        for _ in 0..10_000 {
            let permits = limiter.acquire(1).await;
            limiter.observe(&permits, Answer::Served, FAST);
        }
        assert_eq!(limiter.window(), 64);
    }

    #[tokio::test]
    async fn a_round_of_429s_shrinks_the_window_once_and_each_round_again() {
        let limiter = limiter();
        let round = limiter.acquire(8).await;
        for _ in 0..8 {
            limiter.observe(&round, Answer::Overloaded, FAST);
        }
        assert_eq!(limiter.window(), 11, "16 × 0.7, once for the whole round");
        drop(round);
        let next = limiter.acquire(4).await;
        limiter.observe(&next, Answer::Overloaded, FAST);
        assert_eq!(limiter.window(), 7, "11.2 × 0.7");
        drop(next);
        for _ in 0..20 {
            let permits = limiter.acquire(1).await;
            limiter.observe(&permits, Answer::Overloaded, FAST);
        }
        assert_eq!(limiter.window(), 1, "never below the minimum");
    }

    #[tokio::test]
    async fn rising_latency_shrinks_the_window_and_noise_below_the_floor_does_not() {
        let limiter = limiter();
        let permits = limiter.acquire(1).await;
        limiter.observe(&permits, Answer::Served, Duration::from_micros(100));
        limiter.observe(&permits, Answer::Served, Duration::from_millis(5));
        assert!(limiter.window() >= 16, "5 ms is noise, not load");
        drop(permits);
        let permits = limiter.acquire(1).await;
        limiter.observe(&permits, Answer::Served, Duration::from_millis(20));
        limiter.observe(&permits, Answer::Served, Duration::from_millis(400));
        assert_eq!(limiter.window(), 11);
    }

    #[tokio::test]
    async fn a_batch_waits_for_room_in_the_window() {
        let limiter = DeleteLimiter::new(Limits {
            min: 1,
            max: 4,
            initial: 4,
        });
        let first = limiter.acquire(3).await;
        assert!(!first.waited);
        let waiting = limiter.acquire(2);
        tokio::pin!(waiting);
        assert!(
            futures::poll!(waiting.as_mut()).is_pending(),
            "3 + 2 exceeds the window of 4"
        );
        drop(first);
        let second = waiting.await;
        assert_eq!(second.count, 2);
        assert!(second.waited, "it waited for the first to be given back");
        assert!(
            limiter.acquire(8).now_or_never().is_none(),
            "a batch larger than the window waits until nothing is in flight"
        );
        drop(second);
        assert!(
            limiter.acquire(8).now_or_never().is_some(),
            "then it goes alone"
        );
    }
}
