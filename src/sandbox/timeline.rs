//! What the sandbox prints: the operator's audit trail (docs/audit.md) and the Accounts'
//! phases, one line each in the sandbox's time, and a summary at the end.
//!
//! The lines come from the audit records the operator writes anyway, taken off the tracing
//! subscriber by [`layer`]: the timeline shows what the operator did, not what the sandbox
//! thinks it did.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use futures::channel::mpsc;
use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::audit::TARGET;

/// One thing that happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Happening {
    /// An audit record, as the operator wrote it.
    Audit(Value),
    /// An Account's phase changed (`from` is `None` the first time it is seen).
    Phase {
        /// When, by the sandbox's clock.
        at: DateTime<Utc>,
        /// The Account.
        account: String,
        /// The phase before.
        from: Option<String>,
        /// The phase now.
        to: String,
    },
}

/// The tracing layer that hands every audit record to the timeline.
pub struct AuditToTimeline {
    sender: mpsc::UnboundedSender<Happening>,
}

/// A layer for the subscriber, and the end the timeline reads from.
pub fn layer() -> (AuditToTimeline, mpsc::UnboundedReceiver<Happening>) {
    let (sender, receiver) = mpsc::unbounded();
    (AuditToTimeline { sender }, receiver)
}

impl AuditToTimeline {
    /// Another sender into the same timeline, for the phases.
    pub fn sender(&self) -> mpsc::UnboundedSender<Happening> {
        self.sender.clone()
    }
}

impl<S: Subscriber> Layer<S> for AuditToTimeline {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let mut record = RecordField(None);
        event.record(&mut record);
        if let Some(Ok(value)) = record.0.map(|line| serde_json::from_str(&line)) {
            // A timeline nobody reads any more (the sandbox is ending) drops the line.
            let _ = self.sender.unbounded_send(Happening::Audit(value));
        }
    }
}

struct RecordField(Option<String>);

impl Visit for RecordField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "record" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

/// A time as the timeline shows it: to the minute, UTC.
fn minute(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M").to_string()
}

fn text<'a>(record: &'a Value, field: &str) -> Option<&'a str> {
    record.get(field).and_then(Value::as_str)
}

fn time_of(record: &Value, field: &str) -> Option<String> {
    text(record, field)
        .and_then(|t| t.parse::<DateTime<Utc>>().ok())
        .map(minute)
}

/// `Kind namespace/name`, or `Kind name` for a cluster-scoped object.
fn object(record: &Value) -> String {
    let kind = text(record, "kind").unwrap_or("?");
    let name = text(record, "name").unwrap_or("?");
    match text(record, "namespace") {
        Some(namespace) => format!("{kind} {namespace}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// The timeline's line for a happening.
pub fn line(happening: &Happening) -> String {
    match happening {
        Happening::Phase {
            at,
            account,
            from,
            to,
        } => {
            let change = match from {
                Some(from) => format!("phase {from} -> {to}"),
                None => format!("phase {to}"),
            };
            format!("{}  {account:<20} {change}", minute(*at))
        }
        Happening::Audit(record) => audit_line(record),
    }
}

fn audit_line(record: &Value) -> String {
    let when = time_of(record, "time").unwrap_or_default();
    let account = text(record, "account").unwrap_or("-");
    let action = text(record, "action").unwrap_or("?");
    let rule = text(record, "rule").unwrap_or_default();
    let detail = text(record, "detail").unwrap_or_default();
    let due = time_of(record, "deleteAt").unwrap_or_default();
    let name = text(record, "name").unwrap_or("?");
    let what = match action {
        "schedule-set" => format!("scheduled  {} for {due}: {rule}", object(record)),
        "schedule-cancelled" => format!("cancelled  {}: {detail}", object(record)),
        "deleted" => format!("DELETED    {} (due {due}): {rule}", object(record)),
        "found-deleted" => format!("gone       {} (due {due})", object(record)),
        "erasure-request-acknowledged" => {
            format!("processor {name} acknowledged the erasure request ({detail})")
        }
        "erasure-request-manual" => {
            format!("processor {name} has no webhook: staff must send the erasure request")
        }
        "erasure-request-failed" => format!("erasure request to {name} failed: {detail}"),
        "erasure-request-confirmed" => format!("staff confirmed the erasure request to {name}"),
        "erasure-request-retried" => format!("staff had the erasure request to {name} sent again"),
        "erasure-request-withdrawn" => format!("erasure request to {name} withdrawn: {detail}"),
        "erasure-suspended" => "erasure suspended by its RetentionPolicy".to_owned(),
        "erasure-resumed" => "erasure resumed".to_owned(),
        "brake-engaged" => format!("BRAKE ENGAGED on RetentionPolicy {name}: {detail}"),
        "brake-released" => format!("brake released on RetentionPolicy {name}: {detail}"),
        "receipt-written" => format!("receipt    ErasureReceipt {name} ({detail})"),
        "receipt-deleted" => format!("receipt    ErasureReceipt {name} deleted at its expiry"),
        other => format!("{other} {}", object(record)),
    };
    format!("{when}  {account:<20} {what}")
}

/// What the summary counts.
#[derive(Debug, Default)]
pub struct Tally {
    /// Audit actions by name.
    pub actions: BTreeMap<String, usize>,
    /// Deletions by kind.
    pub deleted: BTreeMap<String, usize>,
    /// Each Account's last phase.
    pub phases: BTreeMap<String, String>,
}

impl Tally {
    /// Counts a happening.
    pub fn count(&mut self, happening: &Happening) {
        match happening {
            Happening::Audit(record) => {
                let action = text(record, "action").unwrap_or("?");
                *self.actions.entry(action.to_owned()).or_default() += 1;
                if action == "deleted" || action == "found-deleted" {
                    let kind = text(record, "kind").unwrap_or("?");
                    *self.deleted.entry(kind.to_owned()).or_default() += 1;
                }
            }
            Happening::Phase { account, to, .. } => {
                self.phases.insert(account.clone(), to.clone());
            }
        }
    }

    /// The summary printed at the end.
    pub fn summary(&self, from: DateTime<Utc>, until: DateTime<Utc>) -> String {
        let count = |action: &str| self.actions.get(action).copied().unwrap_or_default();
        let mut out = String::new();
        let _ = writeln!(out, "Summary of {} to {}:", minute(from), minute(until));
        let _ = writeln!(out, "  schedules set:        {}", count("schedule-set"));
        let deleted: usize = self.deleted.values().sum();
        let kinds: Vec<String> = self
            .deleted
            .iter()
            .map(|(kind, n)| format!("{n} {kind}"))
            .collect();
        let _ = writeln!(
            out,
            "  objects erased:       {deleted} ({})",
            kinds.join(", ")
        );
        let _ = writeln!(
            out,
            "  erasure requests:     {} acknowledged by a processor, {} for staff (no webhook), {} failed",
            count("erasure-request-acknowledged"),
            count("erasure-request-manual"),
            count("erasure-request-failed")
        );
        let _ = writeln!(out, "  receipts written:     {}", count("receipt-written"));
        let _ = writeln!(out, "  accounts:");
        for (account, phase) in &self.phases {
            let _ = writeln!(out, "    {account:<20} {phase}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: &str) -> Happening {
        Happening::Audit(serde_json::from_str(json).expect("JSON"))
    }

    #[test]
    fn audit_records_read_as_lines_a_person_can_follow() {
        let deleted = record(
            r#"{"target":"audit","version":1,"time":"2026-12-02T00:00:03Z","action":"deleted","kind":"Website","namespace":"hosting","name":"www","uid":"5b1c","account":"acme","rule":"grace period 30d after termination","deleteAt":"2026-12-02T00:00:00Z","idempotencyKey":null,"detail":null}"#,
        );
        assert_eq!(
            line(&deleted),
            "2026-12-02 00:00  acme                 DELETED    Website hosting/www (due \
             2026-12-02 00:00): grace period 30d after termination"
        );
        let acknowledged = record(
            r#"{"target":"audit","version":1,"time":"2026-12-02T00:00:01Z","action":"erasure-request-acknowledged","kind":"DataProcessor","namespace":null,"name":"key-systems","uid":null,"account":"acme","rule":null,"deleteAt":"2026-12-02T00:00:00Z","idempotencyKey":"0d6e","detail":"1 resources"}"#,
        );
        assert_eq!(
            line(&acknowledged),
            "2026-12-02 00:00  acme                 processor key-systems acknowledged the \
             erasure request (1 resources)"
        );
        let phase = Happening::Phase {
            at: "2026-12-02T00:00:00Z".parse().expect("a time"),
            account: "acme".into(),
            from: Some("Erasing".into()),
            to: "Erased".into(),
        };
        assert_eq!(
            line(&phase),
            "2026-12-02 00:00  acme                 phase Erasing -> Erased"
        );

        let mut tally = Tally::default();
        for happening in [&deleted, &acknowledged, &phase] {
            tally.count(happening);
        }
        let summary = tally.summary(
            "2026-11-23T00:00:00Z".parse().expect("a time"),
            "2026-12-24T00:00:00Z".parse().expect("a time"),
        );
        assert!(
            summary.contains("objects erased:       1 (1 Website)"),
            "{summary}"
        );
        assert!(
            summary.contains("1 acknowledged by a processor"),
            "{summary}"
        );
        assert!(summary.contains("acme                 Erased"), "{summary}");
    }
}
