//! The policy's duration syntax: an integer of at most six digits and one unit of s, m, h, d
//! or w (`30d`, `12h`).

use std::{borrow::Cow, fmt, str::FromStr};

use chrono::TimeDelta;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The regular expression the CRD schema enforces; [`RetentionDuration::from_str`] accepts the same.
///
/// Six digits at most: 999999w (about 19,000 years) is longer than any retention, and a longer
/// number is a typo or an attempt to mean "for ever", which must be refused, not scheduled
/// past any representable date.
pub const DURATION_PATTERN: &str = "^[0-9]{1,6}[smhdw]$";

/// The most digits a duration's number may have.
pub const MAX_DURATION_DIGITS: usize = 6;

/// A duration as written in a RetentionPolicy, such as `30d`.
///
/// Days are 24 hours and weeks 7 days: all retention arithmetic is in UTC, so there is no
/// daylight-saving ambiguity.
///
/// ```
/// use chrono::TimeDelta;
/// use retention_operator::api::RetentionDuration;
///
/// let grace: RetentionDuration = "30d".parse().unwrap();
/// assert_eq!(grace.to_delta(), Some(TimeDelta::days(30)));
/// assert!("30 days".parse::<RetentionDuration>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RetentionDuration {
    amount: u64,
    unit: DurationUnit,
}

/// The unit of a [`RetentionDuration`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DurationUnit {
    Seconds,
    Minutes,
    Hours,
    Days,
    Weeks,
}

impl DurationUnit {
    fn suffix(self) -> char {
        match self {
            Self::Seconds => 's',
            Self::Minutes => 'm',
            Self::Hours => 'h',
            Self::Days => 'd',
            Self::Weeks => 'w',
        }
    }

    fn seconds(self) -> u64 {
        match self {
            Self::Seconds => 1,
            Self::Minutes => 60,
            Self::Hours => 3_600,
            Self::Days => 86_400,
            Self::Weeks => 604_800,
        }
    }
}

/// Why a string is not a [`RetentionDuration`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {input:?}: expected an integer of at most 6 digits and one unit of s, m, \
     h, d or w, such as 30d"
)]
pub struct InvalidDuration {
    input: String,
}

impl RetentionDuration {
    /// A duration of `amount` units.
    pub const fn new(amount: u64, unit: DurationUnit) -> Self {
        Self { amount, unit }
    }

    /// The duration as a chrono delta, or `None` when it is too large to represent (only for
    /// one built with [`RetentionDuration::new`]: six digits always fit).
    ///
    /// Callers treat `None` as later than any date: an absurdly long retention must not wrap
    /// into a short one.
    pub fn to_delta(self) -> Option<TimeDelta> {
        let seconds = self.amount.checked_mul(self.unit.seconds())?;
        TimeDelta::try_seconds(i64::try_from(seconds).ok()?)
    }
}

impl FromStr for RetentionDuration {
    type Err = InvalidDuration;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidDuration {
            input: input.to_owned(),
        };
        let Some(suffix) = input.chars().last() else {
            return Err(invalid());
        };
        let digits = &input[..input.len() - suffix.len_utf8()];
        let unit = match suffix {
            's' => DurationUnit::Seconds,
            'm' => DurationUnit::Minutes,
            'h' => DurationUnit::Hours,
            'd' => DurationUnit::Days,
            'w' => DurationUnit::Weeks,
            _ => return Err(invalid()),
        };
        if digits.is_empty()
            || digits.len() > MAX_DURATION_DIGITS
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(invalid());
        }
        let amount = digits.parse().map_err(|_| invalid())?;
        Ok(Self { amount, unit })
    }
}

impl TryFrom<String> for RetentionDuration {
    type Error = InvalidDuration;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<RetentionDuration> for String {
    fn from(value: RetentionDuration) -> Self {
        value.to_string()
    }
}

impl fmt::Display for RetentionDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.amount, self.unit.suffix())
    }
}

impl JsonSchema for RetentionDuration {
    fn schema_name() -> Cow<'static, str> {
        "RetentionDuration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "An integer of at most 6 digits and one unit of s, m, h, d (24h) or w (7d), such as 30d.",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        let cases = [
            ("45s", TimeDelta::seconds(45)),
            ("10m", TimeDelta::minutes(10)),
            ("12h", TimeDelta::hours(12)),
            ("30d", TimeDelta::days(30)),
            ("4w", TimeDelta::weeks(4)),
            ("0d", TimeDelta::zero()),
        ];
        for (text, expected) in cases {
            let parsed: RetentionDuration = text.parse().unwrap();
            assert_eq!(parsed.to_delta(), Some(expected), "{text}");
            assert_eq!(parsed.to_string(), text);
        }
    }

    /// Durations of the schema's limit and beyond, and the shapes around them.
    const EDGES: [&str; 24] = [
        "",
        "d",
        "30",
        "30D",
        "1.5d",
        "-1d",
        "30 d",
        " 30d",
        "30dd",
        "1y",
        "P30D",
        "３0d",
        "30é",
        "999999d",
        "999999w",
        "000000s",
        "0000001d",
        "1000000d",
        "9999999s",
        "99999999999d",
        "99999999999999999999d",
        "+30d",
        "١٢d",
        "30d\n",
    ];

    #[test]
    fn rejects_what_the_schema_rejects() {
        for text in [
            "",
            "d",
            "30",
            "30D",
            "1.5d",
            "-1d",
            "30 d",
            " 30d",
            "30dd",
            "1y",
            "P30D",
            "３0d",
            "30é",
            "0000001d",
            "1000000d",
            "99999999999d",
            "99999999999999999999d",
        ] {
            assert!(
                text.parse::<RetentionDuration>().is_err(),
                "{text:?} was accepted"
            );
        }
    }

    #[test]
    fn at_most_six_digits_and_the_message_says_so() {
        let longest: RetentionDuration = "999999w".parse().unwrap();
        assert_eq!(longest.to_delta(), Some(TimeDelta::weeks(999_999)));
        let error = "99999999999d".parse::<RetentionDuration>().unwrap_err();
        assert!(error.to_string().contains("at most 6 digits"), "{error}");
    }

    #[test]
    fn the_parser_accepts_exactly_what_the_schema_pattern_accepts() {
        let pattern = regex::Regex::new(DURATION_PATTERN).unwrap();
        for text in EDGES {
            assert_eq!(
                text.parse::<RetentionDuration>().is_ok(),
                pattern.is_match(text),
                "{text:?}: parser and schema disagree"
            );
        }
    }

    #[test]
    fn overflowing_durations_have_no_delta() {
        let huge = RetentionDuration::new(u64::MAX, DurationUnit::Weeks);
        assert_eq!(huge.to_delta(), None);
    }
}
