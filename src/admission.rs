//! The value checks the API server makes against a CRD's `openAPIV3Schema` on admission and
//! that deserialising into the Rust types does not make: patterns, string lengths, numeric
//! bounds, list and map sizes, enumerations and the `date-time` and `date` formats.
//!
//! `plan` runs them on every document, so that what `plan` accepts the API server accepts and
//! the reverse: without them, `accountRef: ""`, a 7-digit count or a takenAt in year 10000
//! would be planned offline and refused (422) by the cluster. Types, required fields and enums
//! are also checked by serde with its own messages; CEL rules by kube's validator.
//!
//! The semantics are those of kube-apiserver's OpenAPI validation (`k8s.io/kube-openapi`):
//! lengths count Unicode characters, patterns are RE2 (Rust's `regex` matches RE2 for the
//! ASCII patterns the CRDs use), a date-time is go-openapi's `strfmt.IsDateTime` (RFC 3339
//! with a four-digit year, `t` and `z` in either case). Values are never quoted in the
//! messages: a webhook URL may carry credentials.

use std::collections::HashMap;

use regex::Regex;
use serde_json::Value;

/// One value the schema refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Where, as `spec.backups.keepDaily` or `spec.hostnames[0]`.
    pub path: String,
    /// What the schema requires, such as `must be at most 999999`.
    pub problem: String,
}

/// Every violation of `schema` (an `openAPIV3Schema`, as JSON) by `object`, a whole document.
/// `metadata` is left to its own checks, as the API server does for custom resources.
pub fn violations(schema: &Value, object: &Value) -> Vec<Violation> {
    let mut checker = Checker::default();
    if let (Some(properties), Value::Object(fields)) = (schema.get("properties"), object) {
        for (key, value) in fields {
            if key == "metadata" {
                continue;
            }
            if let Some(child) = properties.get(key) {
                checker.node(child, value, key);
            }
        }
    }
    // By path, as the API server lists them, whatever the order of the document's keys.
    checker.found.sort_by(|a, b| a.path.cmp(&b.path));
    checker.found
}

#[derive(Default)]
struct Checker {
    /// Compiled once per pattern and document.
    patterns: HashMap<String, Option<Regex>>,
    found: Vec<Violation>,
}

impl Checker {
    fn refuse(&mut self, path: &str, problem: String) {
        self.found.push(Violation {
            path: path.to_owned(),
            problem,
        });
    }

    /// Checks `value` against the schema node `schema`; a value of the wrong type is left to
    /// serde, which reports it.
    fn node(&mut self, schema: &Value, value: &Value, path: &str) {
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !value.is_null()
            && !allowed.iter().any(|a| same_value(a, value))
        {
            self.refuse(
                path,
                "must be one of the values the schema lists".to_owned(),
            );
        }
        match value {
            Value::String(text) => self.string(schema, text, path),
            Value::Number(number) => {
                if let Some(number) = number.as_f64() {
                    self.number(schema, number, path);
                }
            }
            Value::Array(items) => {
                self.size(schema, items.len(), "minItems", "maxItems", "items", path);
                if let Some(item_schema) = schema.get("items").filter(|s| s.is_object()) {
                    for (index, item) in items.iter().enumerate() {
                        self.node(item_schema, item, &format!("{path}[{index}]"));
                    }
                }
            }
            Value::Object(fields) => {
                let count = fields.len();
                self.size(
                    schema,
                    count,
                    "minProperties",
                    "maxProperties",
                    "keys",
                    path,
                );
                let properties = schema.get("properties");
                let additional = schema.get("additionalProperties").filter(|s| s.is_object());
                for (key, field) in fields {
                    let child = properties.and_then(|p| p.get(key)).or(additional);
                    if let Some(child) = child {
                        self.node(child, field, &format!("{path}.{key}"));
                    }
                }
            }
            Value::Null | Value::Bool(_) => {}
        }
    }

    fn string(&mut self, schema: &Value, text: &str, path: &str) {
        let length = text.chars().count();
        if let Some(max) = bound(schema, "maxLength")
            && length as f64 > max
        {
            self.refuse(path, format!("must be at most {max} characters long"));
        }
        if let Some(min) = bound(schema, "minLength")
            && (length as f64) < min
        {
            self.refuse(path, format!("must be at least {min} characters long"));
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
            let compiled = self
                .patterns
                .entry(pattern.to_owned())
                .or_insert_with(|| Regex::new(pattern).ok());
            match compiled {
                Some(regex) if regex.is_match(text) => {}
                Some(_) => self.refuse(path, format!("must match the pattern {pattern}")),
                None => self.refuse(path, format!("the schema's pattern {pattern} is invalid")),
            }
        }
        let format_ok = match schema.get("format").and_then(Value::as_str) {
            Some("date-time") => is_date_time(text),
            Some("date") => is_date(text),
            _ => true,
        };
        if !format_ok {
            let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
            let example = if format == "date" {
                "2026-12-31"
            } else {
                "2026-11-01T00:00:00Z"
            };
            self.refuse(
                path,
                format!("must be a {format} such as {example} (a year of four digits)"),
            );
        }
    }

    fn number(&mut self, schema: &Value, number: f64, path: &str) {
        let exclusive = |key: &str| schema.get(key) == Some(&Value::Bool(true));
        if let Some(min) = bound(schema, "minimum") {
            if exclusive("exclusiveMinimum") && number <= min {
                self.refuse(path, format!("must be greater than {min}"));
            } else if number < min {
                self.refuse(path, format!("must be at least {min}"));
            }
        }
        if let Some(max) = bound(schema, "maximum") {
            if exclusive("exclusiveMaximum") && number >= max {
                self.refuse(path, format!("must be less than {max}"));
            } else if number > max {
                self.refuse(path, format!("must be at most {max}"));
            }
        }
    }

    fn size(&mut self, schema: &Value, size: usize, min: &str, max: &str, what: &str, at: &str) {
        if let Some(max) = bound(schema, max)
            && size as f64 > max
        {
            self.refuse(at, format!("must have at most {max} {what}"));
        }
        if let Some(min) = bound(schema, min)
            && (size as f64) < min
        {
            self.refuse(at, format!("must have at least {min} {what}"));
        }
    }
}

/// A numeric keyword of the schema node.
fn bound(schema: &Value, key: &str) -> Option<f64> {
    schema.get(key).and_then(Value::as_f64)
}

/// JSON equality, with numbers compared by value (`1` equals `1.0`).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// go-openapi's `strfmt.IsDate`: Go's `time.Parse("2006-01-02", s)`.
fn is_date(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let (Some(year), Some(month), Some(day)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// go-openapi's `strfmt.IsDateTime`: lower-cased and split at `t`, a valid date, then a time
/// `hh:mm:ss`, an optional fraction, and `z` or a `±hh:mm` offset.
fn is_date_time(text: &str) -> bool {
    let lower = text.to_lowercase();
    let mut parts = lower.split('t');
    let (Some(date), Some(time)) = (parts.next(), parts.next()) else {
        return false;
    };
    if !is_date(date) {
        return false;
    }
    let t: Vec<char> = time.chars().collect();
    let two_digits = |i: usize| -> Option<u32> {
        Some(t.get(i)?.to_digit(10)? * 10 + t.get(i + 1)?.to_digit(10)?)
    };
    let (Some(hour), Some(minute), Some(second)) = (two_digits(0), two_digits(3), two_digits(6))
    else {
        return false;
    };
    if t.get(2) != Some(&':') || t.get(5) != Some(&':') || hour > 23 || minute > 59 || second > 59 {
        return false;
    }
    let is_zone = |z: &[char]| {
        z == ['z']
            || (z.len() == 6
                && matches!(z[0], '+' | '-')
                && z[1].is_ascii_digit()
                && z[2].is_ascii_digit()
                && z[3] == ':'
                && z[4].is_ascii_digit()
                && z[5].is_ascii_digit())
    };
    let rest = &t[8..];
    if is_zone(rest) {
        return true;
    }
    // go-openapi's fraction is any one character followed by digits.
    let Some(after) = rest.get(1..) else {
        return false;
    };
    let digits = after.iter().take_while(|c| c.is_ascii_digit()).count();
    digits > 0 && is_zone(&after[digits..])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn problems(schema: Value, value: Value) -> Vec<String> {
        violations(
            &json!({"properties": {"spec": schema}}),
            &json!({"spec": value}),
        )
        .into_iter()
        .map(|v| format!("{}: {}", v.path, v.problem))
        .collect()
    }

    #[test]
    fn strings_are_checked_for_length_pattern_and_format() {
        let name = json!({"type": "string", "maxLength": 5, "pattern": "^[a-z]+$"});
        assert!(problems(name.clone(), json!("acme")).is_empty());
        assert_eq!(
            problems(name.clone(), json!("")),
            ["spec: must match the pattern ^[a-z]+$"]
        );
        assert_eq!(
            problems(name, json!("abcdef")),
            ["spec: must be at most 5 characters long"]
        );
        let at_least = json!({"type": "string", "minLength": 1});
        assert_eq!(
            problems(at_least, json!("")),
            ["spec: must be at least 1 characters long"]
        );
        let date_time = json!({"type": "string", "format": "date-time"});
        for good in [
            "2026-11-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2026-11-01t00:00:00.5+02:00",
        ] {
            assert!(
                problems(date_time.clone(), json!(good)).is_empty(),
                "{good}"
            );
        }
        for bad in [
            "+10000-01-01T00:00:00Z",
            "2026-11-01 00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-01T24:00:00Z",
            "2026-11-01T00:00:00",
        ] {
            assert_eq!(problems(date_time.clone(), json!(bad)).len(), 1, "{bad}");
        }
        let date = json!({"type": "string", "format": "date"});
        assert!(problems(date.clone(), json!("2028-02-29")).is_empty());
        for bad in ["+10000-12-31", "2027-02-29", "31/12/2026"] {
            assert_eq!(problems(date.clone(), json!(bad)).len(), 1, "{bad}");
        }
    }

    #[test]
    fn numbers_are_checked_against_their_bounds() {
        let count = json!({"type": "integer", "minimum": 0.0, "maximum": 999999.0});
        for good in [0, 7, 999_999] {
            assert!(problems(count.clone(), json!(good)).is_empty(), "{good}");
        }
        assert_eq!(
            problems(count.clone(), json!(1_000_000)),
            ["spec: must be at most 999999"]
        );
        assert_eq!(
            problems(count.clone(), json!(1_099_511_627_776_u64)),
            ["spec: must be at most 999999"]
        );
        assert_eq!(problems(count, json!(-1)), ["spec: must be at least 0"]);
    }

    #[test]
    fn nested_values_enums_and_sizes_are_checked_with_their_paths() {
        let schema = json!({
            "type": "object",
            "properties": {
                "hosts": {"type": "array", "maxItems": 1,
                          "items": {"type": "string", "pattern": "^[a-z.]+$"}},
                "state": {"type": "string", "enum": ["Active", "Terminated"]},
            },
            "additionalProperties": {"type": "integer", "maximum": 1.0},
        });
        let found = problems(
            schema,
            json!({"hosts": ["a.example", "B"], "state": "Closed", "extra": 2}),
        );
        assert_eq!(
            found,
            [
                "spec.extra: must be at most 1",
                "spec.hosts: must have at most 1 items",
                "spec.hosts[1]: must match the pattern ^[a-z.]+$",
                "spec.state: must be one of the values the schema lists",
            ]
        );
    }

    #[test]
    fn metadata_is_not_checked_and_values_are_never_quoted() {
        let schema = json!({"properties": {
            "metadata": {"type": "object", "maxProperties": 0},
            "spec": {"properties": {"url": {"type": "string", "pattern": "^https://[^@]+$"}}},
        }});
        let object = json!({"metadata": {"name": "x"},
                            "spec": {"url": "https://user:s3cret@host/"}});
        let found = violations(&schema, &object);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, "spec.url");
        assert!(!found[0].problem.contains("s3cret"), "{:?}", found[0]);
    }
}
