//! Fault injection, switchable at run time: failed requests, latency, cut watch streams.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    /// Fraction of matching requests that fail, 0.0 to 1.0.
    pub fraction: f64,
    /// The status code: 500, 503, or 429.
    pub code: u16,
    /// `Retry-After` seconds, sent (header and `details.retryAfterSeconds`) with whatever code
    /// the rule answers.
    #[serde(default)]
    pub retry_after_seconds: Option<u64>,
}

impl FaultRule {
    /// Fails every matching request with `code`.
    pub fn always(code: u16) -> Self {
        Self {
            verb: None,
            resource: None,
            fraction: 1.0,
            code,
            retry_after_seconds: None,
        }
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

    fn matches(&self, verb: &str, resource: &str) -> bool {
        self.verb.as_deref().is_none_or(|v| v == verb)
            && self.resource.as_deref().is_none_or(|r| r == resource)
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
    /// The failure to answer with, if a rule fires for this request.
    pub fn failure(&self, verb: &str, resource: &str) -> Option<(u16, Option<u64>)> {
        self.rules
            .iter()
            .filter(|rule| rule.matches(verb, resource))
            .find(|rule| fastrand::f64() < rule.fraction)
            .map(|rule| (rule.code, rule.retry_after_seconds))
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
