//! Fault injection, switchable at run time: failed requests, latency, cut watch streams.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::RequestRecord;

/// Fails a fraction of matching requests with a chosen status code.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    /// Only this verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`); `None` matches every verb.
    #[serde(default)]
    pub verb: Option<String>,
    /// Only this resource (plural, such as `websites`); `None` matches every resource.
    #[serde(default)]
    pub resource: Option<String>,
    /// Only this subresource (`status`); `None` matches requests with and without one.
    #[serde(default)]
    pub subresource: Option<String>,
    /// Only requests from this client (its `User-Agent`); `None` matches every client.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// Fraction of matching requests that fail, 0.0 to 1.0.
    pub fraction: f64,
    /// The status code: 500, 503, or 429.
    pub code: u16,
    /// `Retry-After` seconds, sent (header and `details.retryAfterSeconds`) with whatever code
    /// the rule answers.
    #[serde(default)]
    pub retry_after_seconds: Option<u64>,
    /// Instead of failing, hold the request this long and then serve it, as a slow network or
    /// an overloaded server does. A client that gives up meanwhile (its timeout) closes the
    /// connection and the request goes with it, unless the rule is `detached`. `code` is then
    /// unused.
    #[serde(default, with = "opt_millis")]
    pub stall: Option<Duration>,
    /// With `stall`: the request is served in a task of its own, so that it takes effect (and
    /// the request log records it) even when the client gave up meanwhile and closed the
    /// connection, as an API server that received a request does; without it, a client that
    /// gives up takes the request with it. The answer is then lost.
    #[serde(default)]
    pub detached: bool,
}

/// What a fault rule does to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Injected {
    /// Answer this status code (with `Retry-After` seconds when set) instead of serving.
    Fail(u16, Option<u64>),
    /// Wait this long, then serve the request (detached: whether or not the client waits).
    Stall(Duration, bool),
}

impl FaultRule {
    /// Fails every matching request with `code`.
    pub fn always(code: u16) -> Self {
        Self {
            verb: None,
            resource: None,
            subresource: None,
            user_agent: None,
            fraction: 1.0,
            code,
            retry_after_seconds: None,
            stall: None,
            detached: false,
        }
    }

    /// Holds every matching request for `stall`, then serves it.
    pub fn stalling(stall: Duration) -> Self {
        Self {
            stall: Some(stall),
            ..Self::always(503)
        }
    }

    /// Serves a stalled request even when its client gives up meanwhile (see `detached`).
    pub fn detached(mut self) -> Self {
        self.detached = true;
        self
    }

    /// Restricts the rule to one verb.
    pub fn verb(mut self, verb: &str) -> Self {
        self.verb = Some(verb.to_owned());
        self
    }

    /// Restricts the rule to one resource.
    pub fn resource(mut self, resource: &str) -> Self {
        self.resource = Some(resource.to_owned());
        self
    }

    /// Restricts the rule to one subresource of the resource (`status`).
    pub fn subresource(mut self, subresource: &str) -> Self {
        self.subresource = Some(subresource.to_owned());
        self
    }

    /// Restricts the rule to one client (by its `User-Agent`): the requests of the others
    /// go through.
    pub fn from_client(mut self, user_agent: &str) -> Self {
        self.user_agent = Some(user_agent.to_owned());
        self
    }

    /// Fails only this fraction of matching requests.
    pub fn fraction(mut self, fraction: f64) -> Self {
        self.fraction = fraction;
        self
    }

    /// Adds a `Retry-After` header.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_seconds = Some(seconds);
        self
    }

    fn matches(&self, request: &RequestRecord) -> bool {
        self.verb.as_deref().is_none_or(|v| v == request.verb)
            && self
                .resource
                .as_deref()
                .is_none_or(|r| r == request.resource)
            && self
                .subresource
                .as_deref()
                .is_none_or(|s| s == request.subresource)
            && self
                .user_agent
                .as_deref()
                .is_none_or(|a| a == request.user_agent)
    }
}

/// Every fault in force.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Faults {
    /// Request failures; the first matching rule that fires wins.
    #[serde(default)]
    pub rules: Vec<FaultRule>,
    /// Latency added to every request.
    #[serde(default, with = "millis")]
    pub latency: Duration,
    /// Watch streams end after this many events. Like the other watch cuts, it applies to
    /// watches started after it is set.
    #[serde(default)]
    pub cut_watch_after_events: Option<usize>,
    /// Watch streams end after this long.
    #[serde(default, with = "opt_millis")]
    pub cut_watch_after: Option<Duration>,
}

impl Faults {
    /// What to do to this request, if a rule fires for it; `rng` decides which fire.
    pub fn injected(&self, request: &RequestRecord, rng: &mut fastrand::Rng) -> Option<Injected> {
        self.rules
            .iter()
            .filter(|rule| rule.matches(request))
            .find(|rule| rng.f64() < rule.fraction)
            .map(|rule| match rule.stall {
                Some(stall) => Injected::Stall(stall, rule.detached),
                None => Injected::Fail(rule.code, rule.retry_after_seconds),
            })
    }
}

/// How many faults the server injected, for campaigns that report them.
#[derive(Debug, Default)]
pub struct FaultCounters {
    /// Requests answered with an injected error.
    pub failed: std::sync::atomic::AtomicU64,
    /// Requests held back by a stall rule (and then served).
    pub stalled: std::sync::atomic::AtomicU64,
    /// Watch streams ended by `cut_watch_after_events` or `cut_watch_after`.
    pub watches_cut: std::sync::atomic::AtomicU64,
    /// Watches that asked for a compacted resourceVersion and got 410 Gone.
    pub watches_expired: std::sync::atomic::AtomicU64,
}

/// A snapshot of [`FaultCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultCount {
    pub failed: u64,
    pub stalled: u64,
    pub watches_cut: u64,
    pub watches_expired: u64,
}

impl FaultCounters {
    /// The counts so far.
    pub fn snapshot(&self) -> FaultCount {
        use std::sync::atomic::Ordering::Relaxed;
        FaultCount {
            failed: self.failed.load(Relaxed),
            stalled: self.stalled.load(Relaxed),
            watches_cut: self.watches_cut.load(Relaxed),
            watches_expired: self.watches_expired.load(Relaxed),
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

mod opt_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}
