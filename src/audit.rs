//! The audit trail (docs/audit.md): one JSON line for everything the operator does to data or
//! to how data is erased — a deletion, a schedule set or cancelled, an erasure request's
//! outcome, a staff annotation applied, a suspension or brake change, a receipt written or
//! deleted. The lines are a stable interface for log pipelines: every line has every field of
//! [`AuditRecord`] (`null` where it does not apply), and its `action` is one of
//! [`AuditAction::ALL`]. They name objects and accounts and never hold personal data or
//! secrets: no customerRef, no address, no webhook URL, no key.
//!
//! A record is a `tracing` event with target [`TARGET`] whose one field, `record`, holds the
//! line; [`layer`] writes that line as it is, the same in text and JSON log formats, and
//! whatever `RUST_LOG` says (an audit trail that a log level can switch off is none).

use std::{fmt, io::Write};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    Layer,
    filter::{FilterFn, Filtered},
    fmt::MakeWriter,
    layer::Context as LayerContext,
};

use crate::{clock::rfc3339, retention::ResourceRef};

/// The tracing target of audit records.
pub const TARGET: &str = "audit";

/// The version of the line's schema, raised on any change a log pipeline could notice (a field
/// renamed or removed, a value's meaning changed); new actions do not raise it.
pub const SCHEMA_VERSION: u32 = 1;

/// What the operator did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditAction {
    /// A deletion time was written on an object (`deleteAt`), or moved.
    ScheduleSet,
    /// An object's scheduled deletion was called off (`deleteAt`: the time it had).
    ScheduleCancelled,
    /// The operator's DELETE of a due object succeeded.
    Deleted,
    /// A due or recorded deletion found its object already gone (deleted by an earlier pass
    /// cut short before it logged, or by someone else).
    FoundDeleted,
    /// A processor acknowledged an erasure request.
    ErasureRequestAcknowledged,
    /// Staff confirmed a manual or failed erasure request (annotation
    /// `erasure-confirmed.hosting.ecuni.se/<processor>`).
    ErasureRequestConfirmed,
    /// An erasure request failed and waits for staff.
    ErasureRequestFailed,
    /// An erasure request was handed to staff (the processor has no webhook).
    ErasureRequestManual,
    /// Staff had a failed erasure request sent again (annotation
    /// `erasure-retry.hosting.ecuni.se/<processor>`).
    ErasureRequestRetried,
    /// An owed erasure request was withdrawn before it was sent (the account's data stays).
    ErasureRequestWithdrawn,
    /// The account's RetentionPolicy was suspended: nothing of it is erased.
    ErasureSuspended,
    /// The suspension was lifted.
    ErasureResumed,
    /// The policy's mass-deletion brake engaged.
    BrakeEngaged,
    /// A person released the brake (annotation `hosting.ecuni.se/brake-released-at`, or a
    /// changed limit).
    BrakeReleased,
    /// An ErasureReceipt was written.
    ReceiptWritten,
    /// An ErasureReceipt was deleted at the end of its `keepFor`.
    ReceiptDeleted,
}

impl AuditAction {
    /// Every action, in the order docs/audit.md lists them.
    pub const ALL: [Self; 16] = [
        Self::ScheduleSet,
        Self::ScheduleCancelled,
        Self::Deleted,
        Self::FoundDeleted,
        Self::ErasureRequestAcknowledged,
        Self::ErasureRequestConfirmed,
        Self::ErasureRequestFailed,
        Self::ErasureRequestManual,
        Self::ErasureRequestRetried,
        Self::ErasureRequestWithdrawn,
        Self::ErasureSuspended,
        Self::ErasureResumed,
        Self::BrakeEngaged,
        Self::BrakeReleased,
        Self::ReceiptWritten,
        Self::ReceiptDeleted,
    ];

    /// The action as it appears in the line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ScheduleSet => "schedule-set",
            Self::ScheduleCancelled => "schedule-cancelled",
            Self::Deleted => "deleted",
            Self::FoundDeleted => "found-deleted",
            Self::ErasureRequestAcknowledged => "erasure-request-acknowledged",
            Self::ErasureRequestConfirmed => "erasure-request-confirmed",
            Self::ErasureRequestFailed => "erasure-request-failed",
            Self::ErasureRequestManual => "erasure-request-manual",
            Self::ErasureRequestRetried => "erasure-request-retried",
            Self::ErasureRequestWithdrawn => "erasure-request-withdrawn",
            Self::ErasureSuspended => "erasure-suspended",
            Self::ErasureResumed => "erasure-resumed",
            Self::BrakeEngaged => "brake-engaged",
            Self::BrakeReleased => "brake-released",
            Self::ReceiptWritten => "receipt-written",
            Self::ReceiptDeleted => "receipt-deleted",
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of the audit trail. Field order is the line's order; every field is always
/// present (`null` when it does not apply).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// Always [`TARGET`]: tells audit lines from other log lines.
    pub target: String,
    /// [`SCHEMA_VERSION`].
    pub version: u32,
    /// When, by the operator's clock (RFC 3339, UTC).
    pub time: String,
    /// What was done.
    pub action: AuditAction,
    /// The kind of the object acted on.
    pub kind: String,
    /// Its namespace (`null` for cluster-scoped kinds).
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// Its uid, when known.
    pub uid: Option<String>,
    /// The account it belongs to (`null` for a RetentionPolicy's brake).
    pub account: Option<String>,
    /// The rule that decided, in the operator's words.
    pub rule: Option<String>,
    /// The deletion time the action concerns (RFC 3339, UTC).
    pub delete_at: Option<String>,
    /// An erasure request's idempotency key (the processor receives it with the request).
    pub idempotency_key: Option<String>,
    /// More about the action, in words; never personal data.
    pub detail: Option<String>,
}

impl AuditRecord {
    /// A record of `action` on the object `kind` `namespace`/`name` at `time`.
    pub fn new(
        action: AuditAction,
        time: DateTime<Utc>,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Self {
        Self {
            target: TARGET.to_owned(),
            version: SCHEMA_VERSION,
            time: rfc3339(time),
            action,
            kind: kind.to_owned(),
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
            uid: None,
            account: None,
            rule: None,
            delete_at: None,
            idempotency_key: None,
            detail: None,
        }
    }

    /// A record of `action` on a bound object of `account`.
    pub fn on(
        action: AuditAction,
        time: DateTime<Utc>,
        resource: &ResourceRef,
        account: &str,
    ) -> Self {
        Self::new(
            action,
            time,
            resource.kind.as_str(),
            Some(&resource.namespace),
            &resource.name,
        )
        .account(account)
    }

    /// With the object's uid.
    #[must_use]
    pub fn uid(mut self, uid: Option<&str>) -> Self {
        self.uid = uid.map(str::to_owned);
        self
    }

    /// With the account.
    #[must_use]
    pub fn account(mut self, account: &str) -> Self {
        self.account = Some(account.to_owned());
        self
    }

    /// With the rule that decided.
    #[must_use]
    pub fn rule(mut self, rule: &str) -> Self {
        self.rule = Some(rule.to_owned());
        self
    }

    /// With the deletion time concerned.
    #[must_use]
    pub fn delete_at(mut self, at: Option<DateTime<Utc>>) -> Self {
        self.delete_at = at.map(rfc3339);
        self
    }

    /// With an erasure request's idempotency key.
    #[must_use]
    pub fn idempotency_key(mut self, key: Option<&str>) -> Self {
        self.idempotency_key = key.map(str::to_owned);
        self
    }

    /// With more words.
    #[must_use]
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The line as written.
    pub fn line(&self) -> String {
        // A struct of strings and numbers always serializes; the fallback keeps the trail's
        // shape should that ever change.
        serde_json::to_string(self).unwrap_or_else(|error| {
            format!(
                r#"{{"target":"{TARGET}","version":{SCHEMA_VERSION},"action":"{}","detail":"unserializable: {error}"}}"#,
                self.action
            )
        })
    }

    /// Writes the record to the audit trail.
    pub fn emit(&self) {
        let line = self.line();
        tracing::info!(target: TARGET, record = line.as_str());
    }
}

/// The layer that writes audit records, one line each, to `writer`, and nothing else. Install
/// it beside the log layer, which leaves the target [`TARGET`] out ([`not_audit`]).
pub fn layer<S, W>(writer: W) -> Filtered<AuditLayer<W>, FilterFn, S>
where
    S: Subscriber,
    W: for<'w> MakeWriter<'w> + 'static,
{
    AuditLayer { writer }.with_filter(FilterFn::new(|metadata| metadata.target() == TARGET))
}

/// The filter that keeps audit records out of the ordinary log.
pub fn not_audit() -> FilterFn {
    FilterFn::new(|metadata| metadata.target() != TARGET)
}

/// Writes each audit record's line as it is.
pub struct AuditLayer<W> {
    writer: W,
}

impl<S, W> Layer<S> for AuditLayer<W>
where
    S: Subscriber,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_event(&self, event: &Event<'_>, _: LayerContext<'_, S>) {
        let mut visitor = RecordField(None);
        event.record(&mut visitor);
        if let Some(mut line) = visitor.0 {
            line.push('\n');
            // One write per line, so that lines of concurrent passes never interleave. A
            // failing log stream has nowhere to report to.
            let _ = self.writer.make_writer().write_all(line.as_bytes());
        }
    }
}

/// Takes the `record` field of an event.
struct RecordField(Option<String>);

impl Visit for RecordField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "record" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "record" && self.0.is_none() {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::{layer::SubscriberExt, registry::Registry};

    use super::*;
    use crate::kinds::ResourceKind;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn deleted() -> AuditRecord {
        let time = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .to_utc();
        let resource = ResourceRef {
            kind: ResourceKind::Website,
            namespace: "hosting".to_owned(),
            name: "www".to_owned(),
        };
        AuditRecord::on(AuditAction::Deleted, time, &resource, "acme")
            .uid(Some("uid-1"))
            .rule("grace period 30d after termination")
            .delete_at(Some(time))
    }

    /// Runs `emit` under a subscriber with the log layer (text or JSON) and the audit layer
    /// writing to separate buffers.
    fn captured(json: bool, emit: impl FnOnce()) -> (String, String) {
        let (log, audit) = (Buffer::default(), Buffer::default());
        let (log_writer, audit_writer) = (log.clone(), audit.clone());
        let fmt = tracing_subscriber::fmt::layer().with_writer(move || log_writer.clone());
        let fmt: Box<dyn Layer<Registry> + Send + Sync> = if json {
            Box::new(fmt.json().with_filter(not_audit()))
        } else {
            Box::new(fmt.with_filter(not_audit()))
        };
        let subscriber = Registry::default()
            .with(fmt)
            .with(layer(move || audit_writer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("an ordinary line");
            emit();
        });
        let text = |b: &Buffer| String::from_utf8(b.0.lock().unwrap().clone()).unwrap();
        (text(&log), text(&audit))
    }

    #[test]
    fn a_record_is_the_same_json_line_in_text_and_json_logs_and_only_in_the_trail() {
        for json in [false, true] {
            let (log, audit) = captured(json, || deleted().emit());
            assert_eq!(
                audit,
                format!("{}\n", deleted().line()),
                "json logs: {json}"
            );
            assert!(log.contains("an ordinary line"));
            assert!(
                !log.contains("uid-1"),
                "the record stays out of the log: {log}"
            );
        }
    }

    #[test]
    fn every_field_is_present_in_order_and_null_when_it_does_not_apply() {
        let line = deleted().line();
        assert!(line.starts_with(r#"{"target":"audit","version":1,"time":"2026-12-01T10:00:00Z","action":"deleted","kind":"Website","namespace":"hosting","name":"www","uid":"uid-1","account":"acme""#), "{line}");
        let brake = AuditRecord::new(
            AuditAction::BrakeEngaged,
            Utc::now(),
            "RetentionPolicy",
            None,
            "default",
        );
        let value: serde_json::Value = serde_json::from_str(&brake.line()).unwrap();
        let object = value.as_object().unwrap();
        assert_eq!(object.len(), 13);
        for field in [
            "namespace",
            "uid",
            "account",
            "rule",
            "deleteAt",
            "idempotencyKey",
            "detail",
        ] {
            assert_eq!(object[field], serde_json::Value::Null, "{field}");
        }
        let back: AuditRecord = serde_json::from_value(value).unwrap();
        assert_eq!(back, brake);
    }

    #[test]
    fn actions_serialize_as_their_names() {
        for action in AuditAction::ALL {
            assert_eq!(
                serde_json::to_value(action).unwrap(),
                serde_json::Value::String(action.as_str().to_owned())
            );
        }
    }
}
