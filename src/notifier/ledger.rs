//! Which erasure requests an account owes its processors, and what each delivery outcome does
//! to the record of it in `Account.status.processors` (pure: the controller supplies `now`,
//! performs the deliveries and writes the result).
//!
//! One request is owed per (processor, erasure time) of the plan, once that time has come and
//! every resource it names is gone. Its entry is created Pending with the idempotency key of
//! (account, processor, erasure time), so a restarted operator finds the same key in the
//! status. A webhook delivery moves it to Acknowledged (2xx), keeps it Pending with the next
//! attempt after a backoff (408, 429, 5xx, network), or makes it Failed (another 4xx, or a
//! misconfigured endpoint), which is not retried until staff act. A processor without a webhook
//! is Manual until staff confirm it with the annotation [`CONFIRMED_ANNOTATION_PREFIX`]`<name>`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use kube::ResourceExt;

use super::{DeliveryOutcome, idempotency_key, next_attempt_delay};
use crate::{
    api::{Account, NotificationState, NotifiedResource, ProcessorNotification},
    retention::{NotificationDelivery, NotificationPlan, ResourceRef},
};

/// Staff confirm a manual (or failed) erasure request with this annotation on the Account,
/// followed by the processor's name, and the time the processor confirmed as its value
/// (RFC 3339), e.g. `erasure-confirmed.hosting.ecuni.se/pipedrive: "2026-12-03T10:00:00Z"`.
pub const CONFIRMED_ANNOTATION_PREFIX: &str = "erasure-confirmed.hosting.ecuni.se/";

/// Staff have a failed request sent again (after correcting the DataProcessor or its Secret)
/// with this annotation followed by the processor's name, valued with the current time: failed
/// requests last attempted before that time become Pending again.
pub const RETRY_ANNOTATION_PREFIX: &str = "erasure-retry.hosting.ecuni.se/";

/// What staff said through the Account's annotations, by processor name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StaffActions {
    /// Requests the processor confirmed by other means, and when.
    pub confirmed: BTreeMap<String, DateTime<Utc>>,
    /// Failed requests to send again, and since when.
    pub retry: BTreeMap<String, DateTime<Utc>>,
}

/// The ledger after this pass, and the deliveries to attempt now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ledger {
    /// The entries for `status.processors`, sorted by erasure time and processor.
    pub entries: Vec<ProcessorNotification>,
    /// Indexes into `entries` of the Pending requests whose next attempt is due now. Their
    /// entries hold everything a delivery needs (processor, key, erasure time, resources), so a
    /// retry does not depend on the erased resources still being in the plan.
    pub due: Vec<usize>,
    /// When the earliest Pending entry's next attempt is, to wake up for it.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// Brings the stored entries up to date with the plan.
///
/// `remaining` holds the resources still bound; `staff` what staff said through annotations. Entries are never dropped: they are the record that
/// each processor was told.
pub fn ledger(
    account: &str,
    notifications: &[NotificationPlan],
    remaining: &BTreeSet<&ResourceRef>,
    stored: &[ProcessorNotification],
    staff: &StaffActions,
    now: DateTime<Utc>,
) -> Ledger {
    let mut entries: Vec<ProcessorNotification> = stored.to_vec();
    for notification in notifications {
        let erased = notification.at <= now
            && notification
                .resources
                .iter()
                .all(|resource| !remaining.contains(resource));
        if !erased {
            continue;
        }
        let key = idempotency_key(account, &notification.processor, notification.at);
        let known = entries
            .iter()
            .any(|e| e.idempotency_key.as_deref() == Some(key.as_str()));
        if !known {
            entries.push(new_entry(notification, &key, now));
        }
    }
    // Over the entries, not the plan: the data a request names is gone from the plan by then.
    for entry in &mut entries {
        let settleable = matches!(
            entry.state,
            NotificationState::Manual | NotificationState::Failed
        );
        // A confirmation covers the requests whose data was erased by then, not a later one
        // to the same processor (bookkeeping data goes years after the rest).
        if settleable
            && let Some(confirmed) = staff.confirmed.get(&entry.name)
            && entry.erasure_at.is_some_and(|at| *confirmed >= at)
        {
            entry.state = NotificationState::Acknowledged;
            entry.acknowledged_at = Some(*confirmed);
            entry.next_attempt_at = None;
            entry.reason = None;
        }
        if entry.state == NotificationState::Failed
            && let Some(since) = staff.retry.get(&entry.name)
            && entry.last_attempt_at.is_none_or(|last| last < *since)
        {
            entry.state = NotificationState::Pending;
            entry.next_attempt_at = None;
        }
    }
    entries.sort_by(|a, b| (a.erasure_at, &a.name).cmp(&(b.erasure_at, &b.name)));
    let due = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.state == NotificationState::Pending)
        .filter(|(_, e)| e.next_attempt_at.is_none_or(|at| at <= now))
        .map(|(index, _)| index)
        .collect();
    let next_attempt_at = entries
        .iter()
        .filter(|e| e.state == NotificationState::Pending)
        .filter_map(|e| e.next_attempt_at)
        .filter(|at| *at > now)
        .min();
    Ledger {
        entries,
        due,
        next_attempt_at,
    }
}

fn new_entry(
    notification: &NotificationPlan,
    key: &str,
    now: DateTime<Utc>,
) -> ProcessorNotification {
    let (state, reason) = match notification.delivery {
        NotificationDelivery::Webhook => (NotificationState::Pending, None),
        NotificationDelivery::Manual => (
            NotificationState::Manual,
            Some(format!(
                "no webhook: send the erasure request by hand, then annotate the Account with \
                 {CONFIRMED_ANNOTATION_PREFIX}{}",
                notification.processor
            )),
        ),
        NotificationDelivery::UnknownProcessor => (
            NotificationState::Failed,
            Some(format!(
                "no DataProcessor named {:?}: create it or correct the reference",
                notification.processor
            )),
        ),
    };
    ProcessorNotification {
        name: notification.processor.clone(),
        state,
        erasure_at: Some(notification.at),
        idempotency_key: Some(key.to_owned()),
        requested_at: Some(now),
        resources: notification
            .resources
            .iter()
            .map(|r| NotifiedResource {
                kind: r.kind.as_str().to_owned(),
                namespace: r.namespace.clone(),
                name: r.name.clone(),
            })
            .collect(),
        attempts: 0,
        last_attempt_at: None,
        next_attempt_at: None,
        reason,
        acknowledged_at: None,
    }
}

/// What staff said through the Account's annotations. A value that is not an RFC 3339 time
/// says nothing (the conditions keep telling staff what to do).
pub fn staff_actions(account: &Account) -> StaffActions {
    let by_prefix = |prefix: &str| -> BTreeMap<String, DateTime<Utc>> {
        account
            .annotations()
            .iter()
            .filter_map(|(key, value)| {
                let processor = key.strip_prefix(prefix)?;
                let at = DateTime::parse_from_rfc3339(value).ok()?;
                Some((processor.to_owned(), at.with_timezone(&Utc)))
            })
            .collect()
    };
    StaffActions {
        confirmed: by_prefix(CONFIRMED_ANNOTATION_PREFIX),
        retry: by_prefix(RETRY_ANNOTATION_PREFIX),
    }
}

/// Records a failure found before sending (no webhook any more, no readable secret): staff
/// must act, so it is not retried blindly.
pub fn record_failure(entry: &mut ProcessorNotification, reason: &str) {
    entry.state = NotificationState::Failed;
    entry.next_attempt_at = None;
    entry.reason = Some(reason.to_owned());
}

/// Records one delivery attempt's outcome on its entry.
pub fn record_outcome(
    entry: &mut ProcessorNotification,
    outcome: &DeliveryOutcome,
    now: DateTime<Utc>,
) {
    entry.attempts = entry.attempts.saturating_add(1);
    entry.last_attempt_at = Some(now);
    match outcome {
        DeliveryOutcome::Acknowledged => {
            entry.state = NotificationState::Acknowledged;
            entry.acknowledged_at = Some(now);
            entry.next_attempt_at = None;
            entry.reason = None;
        }
        DeliveryOutcome::Retry { retry_after, .. } => {
            let delay = next_attempt_delay(entry.attempts, *retry_after);
            // Whole seconds, rounded up: the status reads cleanly and never promises early.
            let seconds = i64::try_from(delay.as_secs())
                .unwrap_or(i64::MAX)
                .saturating_add(i64::from(delay.subsec_nanos() > 0));
            let delay = TimeDelta::try_seconds(seconds).unwrap_or(TimeDelta::hours(24));
            entry.state = NotificationState::Pending;
            entry.next_attempt_at = Some(now + delay);
            entry.reason = Some(outcome.reason().to_owned());
        }
        DeliveryOutcome::Rejected { .. } | DeliveryOutcome::Misconfigured(_) => {
            entry.state = NotificationState::Failed;
            entry.next_attempt_at = None;
            entry.reason = Some(outcome.reason().to_owned());
        }
    }
}

/// Whether every owed request is settled: acknowledged by its processor or confirmed by staff.
/// The account is not Erased before.
pub fn all_settled(entries: &[ProcessorNotification]) -> bool {
    entries
        .iter()
        .all(|e| e.state == NotificationState::Acknowledged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retention::ResourceKind;

    fn t(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn resource(name: &str) -> ResourceRef {
        ResourceRef {
            kind: ResourceKind::DataRecord,
            namespace: "acme".into(),
            name: name.into(),
        }
    }

    fn notification(processor: &str, at: &str, delivery: NotificationDelivery) -> NotificationPlan {
        NotificationPlan {
            processor: processor.into(),
            at: t(at),
            delivery,
            resources: vec![resource(&format!("{processor}-record"))],
        }
    }

    const GRACE_END: &str = "2026-12-01T00:00:00Z";

    #[test]
    fn a_request_is_owed_once_its_time_has_come_and_its_data_is_gone() {
        let plans = [notification(
            "pipedrive",
            GRACE_END,
            NotificationDelivery::Webhook,
        )];
        let none = StaffActions::default();
        // Before the erasure time: nothing owed.
        let early = ledger(
            "acme",
            &plans,
            &BTreeSet::new(),
            &[],
            &none,
            t("2026-11-30T00:00:00Z"),
        );
        assert!(early.entries.is_empty() && early.due.is_empty());
        // Due, but the record is still there (its deletion failed): not yet.
        let still = resource("pipedrive-record");
        let remaining = BTreeSet::from([&still]);
        let waiting = ledger("acme", &plans, &remaining, &[], &none, t(GRACE_END));
        assert!(waiting.entries.is_empty());
        // Gone: one Pending entry with the stable key, and a delivery due now.
        let owed = ledger("acme", &plans, &BTreeSet::new(), &[], &none, t(GRACE_END));
        assert_eq!(owed.entries.len(), 1);
        let entry = &owed.entries[0];
        assert_eq!(entry.state, NotificationState::Pending);
        let key = idempotency_key("acme", "pipedrive", t(GRACE_END));
        assert_eq!(entry.idempotency_key.as_deref(), Some(key.as_str()));
        assert_eq!(entry.erasure_at, Some(t(GRACE_END)));
        assert_eq!(owed.due, [0]);
        assert_eq!(entry.resources.len(), 1);
        assert_eq!(entry.resources[0].name, "pipedrive-record");
        // Fed its own entries back, the same ledger (idempotent), with no second entry.
        let again = ledger(
            "acme",
            &plans,
            &BTreeSet::new(),
            &owed.entries,
            &none,
            t(GRACE_END),
        );
        assert_eq!(again.entries, owed.entries);
    }

    #[test]
    fn retries_back_off_keep_the_key_and_end_acknowledged() {
        let plans = [notification(
            "pipedrive",
            GRACE_END,
            NotificationDelivery::Webhook,
        )];
        let none = StaffActions::default();
        let gone = BTreeSet::new();
        let mut now = t(GRACE_END);
        let mut entries = ledger("acme", &plans, &gone, &[], &none, now).entries;
        let key = entries[0].idempotency_key.clone();
        for attempt in 1..=3 {
            // From the second attempt on, the erased record is no longer in the plan: the
            // entry alone carries the retry.
            let current: &[NotificationPlan] = if attempt == 1 { &plans } else { &[] };
            let pass = ledger("acme", current, &gone, &entries, &none, now);
            assert_eq!(pass.due, [0], "attempt {attempt} due");
            entries = pass.entries;
            let outcome = DeliveryOutcome::Retry {
                retry_after: None,
                reason: "HTTP 500".into(),
            };
            record_outcome(&mut entries[0], &outcome, now);
            let next = entries[0].next_attempt_at.unwrap();
            assert!(next > now, "attempt {attempt}: a later retry");
            assert_eq!(entries[0].reason.as_deref(), Some("HTTP 500"));
            // Not due again before its time.
            let quiet = ledger(
                "acme",
                &plans,
                &gone,
                &entries,
                &none,
                next - TimeDelta::seconds(1),
            );
            assert!(quiet.due.is_empty());
            assert_eq!(quiet.next_attempt_at, Some(next));
            now = next;
        }
        let pass = ledger("acme", &plans, &gone, &entries, &none, now);
        entries = pass.entries;
        record_outcome(&mut entries[0], &DeliveryOutcome::Acknowledged, now);
        assert_eq!(entries[0].state, NotificationState::Acknowledged);
        assert_eq!(entries[0].attempts, 4);
        assert_eq!(entries[0].acknowledged_at, Some(now));
        assert_eq!(entries[0].idempotency_key, key);
        assert!(all_settled(&entries));
        let settled = ledger(
            "acme",
            &plans,
            &gone,
            &entries,
            &none,
            now + TimeDelta::days(1),
        );
        assert!(settled.due.is_empty() && settled.next_attempt_at.is_none());
    }

    #[test]
    fn a_rejection_fails_without_retrying() {
        let plans = [notification(
            "pipedrive",
            GRACE_END,
            NotificationDelivery::Webhook,
        )];
        let none = StaffActions::default();
        let gone = BTreeSet::new();
        let mut entries = ledger("acme", &plans, &gone, &[], &none, t(GRACE_END)).entries;
        let outcome = DeliveryOutcome::Rejected {
            status: 400,
            reason: "HTTP 400".into(),
        };
        record_outcome(&mut entries[0], &outcome, t(GRACE_END));
        assert_eq!(entries[0].state, NotificationState::Failed);
        let later = ledger(
            "acme",
            &plans,
            &gone,
            &entries,
            &none,
            t("2027-01-01T00:00:00Z"),
        );
        assert!(later.due.is_empty());
        assert!(!all_settled(&later.entries));
    }

    #[test]
    fn a_manual_request_waits_for_the_staffs_confirmation() {
        let plans = [notification(
            "soluno",
            GRACE_END,
            NotificationDelivery::Manual,
        )];
        let gone = BTreeSet::new();
        let owed = ledger(
            "acme",
            &plans,
            &gone,
            &[],
            &StaffActions::default(),
            t(GRACE_END),
        );
        assert_eq!(owed.entries[0].state, NotificationState::Manual);
        assert!(
            owed.entries[0]
                .reason
                .as_deref()
                .unwrap()
                .contains(CONFIRMED_ANNOTATION_PREFIX)
        );
        assert!(owed.due.is_empty(), "nothing is sent");
        assert!(!all_settled(&owed.entries));
        let confirmed = StaffActions {
            confirmed: BTreeMap::from([("soluno".to_owned(), t("2026-12-03T10:00:00Z"))]),
            ..StaffActions::default()
        };
        // By then the erased record is no longer in the plan.
        let done = ledger(
            "acme",
            &[],
            &gone,
            &owed.entries,
            &confirmed,
            t("2026-12-04T00:00:00Z"),
        );
        assert_eq!(done.entries[0].state, NotificationState::Acknowledged);
        assert_eq!(
            done.entries[0].acknowledged_at,
            Some(t("2026-12-03T10:00:00Z"))
        );
        assert!(all_settled(&done.entries));
    }

    #[test]
    fn a_confirmation_does_not_cover_a_later_request_to_the_same_processor() {
        let plans = [
            notification("soluno", GRACE_END, NotificationDelivery::Manual),
            notification(
                "soluno",
                "2034-01-01T00:00:00Z",
                NotificationDelivery::Manual,
            ),
        ];
        let gone = BTreeSet::new();
        let confirmed = StaffActions {
            confirmed: BTreeMap::from([("soluno".to_owned(), t("2026-12-03T10:00:00Z"))]),
            ..StaffActions::default()
        };
        let later = ledger(
            "acme",
            &plans,
            &gone,
            &[],
            &confirmed,
            t("2034-01-01T00:00:00Z"),
        );
        let states: Vec<NotificationState> = later.entries.iter().map(|e| e.state).collect();
        assert_eq!(
            states,
            [NotificationState::Acknowledged, NotificationState::Manual]
        );
    }

    #[test]
    fn each_erasure_time_of_a_processor_is_its_own_request() {
        let plans = [
            notification("pipedrive", GRACE_END, NotificationDelivery::Webhook),
            notification(
                "pipedrive",
                "2034-01-01T00:00:00Z",
                NotificationDelivery::Webhook,
            ),
        ];
        let gone = BTreeSet::new();
        let none = StaffActions::default();
        let first = ledger("acme", &plans, &gone, &[], &none, t(GRACE_END));
        assert_eq!(first.entries.len(), 1);
        let both = ledger(
            "acme",
            &plans,
            &gone,
            &first.entries,
            &none,
            t("2034-01-01T00:00:00Z"),
        );
        assert_eq!(both.entries.len(), 2);
        assert_ne!(
            both.entries[0].idempotency_key,
            both.entries[1].idempotency_key
        );
    }

    #[test]
    fn an_unknown_processor_fails_with_a_reason_staff_can_act_on() {
        let plans = [notification(
            "ghost",
            GRACE_END,
            NotificationDelivery::UnknownProcessor,
        )];
        let owed = ledger(
            "acme",
            &plans,
            &BTreeSet::new(),
            &[],
            &StaffActions::default(),
            t(GRACE_END),
        );
        assert_eq!(owed.entries[0].state, NotificationState::Failed);
        assert!(
            owed.entries[0]
                .reason
                .as_deref()
                .unwrap()
                .contains("no DataProcessor")
        );
        assert!(owed.due.is_empty());
    }
}
