//! Which erasure requests an account owes its processors, and what each delivery outcome does
//! to the record of it in `Account.status.processors` (pure: the controller supplies `now`,
//! performs the deliveries and writes the result).
//!
//! Every erasure the plan schedules for data a processor also holds gets its entry as soon as
//! it is planned: Pending, with the idempotency key of (account, processor, erasure time) and
//! its next attempt at the erasure time. Recording it before the data goes means no crash
//! between a deletion and the next status write can lose the request. It is sent once its time
//! has come and every resource it names is gone; an entry never sent whose erasure the plan no
//! longer schedules (a reactivation, a legal hold) is dropped.
//!
//! At its due time the controller resolves the processor: a webhook is sent to, and the outcome
//! moves the entry to Acknowledged (2xx), keeps it Pending with the next attempt after a
//! backoff (408, 429, 5xx, network), or makes it Failed (another 4xx, a misconfigured
//! endpoint), which is not retried until staff ask ([`RETRY_ANNOTATION_PREFIX`]). A processor
//! without a webhook makes it Manual until staff confirm ([`CONFIRMED_ANNOTATION_PREFIX`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use kube::ResourceExt;

use super::{DeliveryOutcome, follow_up_key, idempotency_key, next_attempt_delay};
use crate::{
    api::{Account, NotificationState, NotifiedResource, ProcessorNotification},
    retention::{NotificationPlan, ResourceRef},
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
/// `bound` holds the resources still bound to the account; `staff` what staff said through
/// annotations. Entries that were sent are never dropped: they are the record that each
/// processor was told.
pub fn ledger(
    account: &str,
    notifications: &[NotificationPlan],
    bound: &BTreeSet<&ResourceRef>,
    stored: &[ProcessorNotification],
    staff: &StaffActions,
    now: DateTime<Utc>,
) -> Ledger {
    let bound: BTreeSet<(&str, &str, &str)> = bound
        .iter()
        .map(|r| (r.kind.as_str(), r.namespace.as_str(), r.name.as_str()))
        .collect();
    let still_bound = |entry: &ProcessorNotification| {
        entry
            .resources
            .iter()
            .any(|r| bound.contains(&(r.kind.as_str(), r.namespace.as_str(), r.name.as_str())))
    };
    // One request per processor and erasure time, plus a follow-up for data of that time that
    // came after the request was sent.
    let planned_now = |entry: &ProcessorNotification| {
        notifications
            .iter()
            .any(|n| n.processor == entry.name && Some(n.at) == entry.erasure_at)
    };
    // An entry never sent whose erasure is no longer planned, while its data is still there,
    // was cancelled (reactivation, legal hold) or moved to another time (another key).
    let mut entries: Vec<ProcessorNotification> = stored
        .iter()
        .filter(|e| planned_now(e) || !never_sent(e) || !still_bound(e))
        .cloned()
        .collect();
    for notification in notifications {
        let same_request = |e: &ProcessorNotification| {
            e.name == notification.processor && e.erasure_at == Some(notification.at)
        };
        let group: Vec<usize> = (0..entries.len())
            .filter(|&i| same_request(&entries[i]))
            .collect();
        if group.is_empty() {
            let key = idempotency_key(account, &notification.processor, notification.at);
            entries.push(new_entry(
                notification,
                notified(&notification.resources),
                key,
            ));
            continue;
        }
        // Everything of this erasure time the processor held must be named to it: objects
        // bound after the first plan of a termination too (GDPR Art. 19).
        let named: BTreeSet<&NotifiedResource> =
            group.iter().flat_map(|&i| &entries[i].resources).collect();
        let missing: Vec<NotifiedResource> = notified(&notification.resources)
            .into_iter()
            .filter(|r| !named.contains(r))
            .collect();
        if missing.is_empty() {
            continue;
        }
        // A request not sent yet names them too; once every request of that time was sent
        // (or handed to staff), a follow-up names what came later.
        match group.iter().find(|&&i| never_sent(&entries[i])) {
            Some(&open) => {
                let resources = &mut entries[open].resources;
                resources.extend(missing);
                resources.sort();
            }
            None => {
                let mut sequence = group.len() + 1;
                let key = loop {
                    let key =
                        follow_up_key(account, &notification.processor, notification.at, sequence);
                    if !entries
                        .iter()
                        .any(|e| e.idempotency_key.as_deref() == Some(key.as_str()))
                    {
                        break key;
                    }
                    sequence += 1;
                };
                entries.push(new_entry(notification, missing, key));
            }
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
        // Nor one handed to staff after the confirmation was given (a follow-up).
        if settleable
            && let Some(confirmed) = staff.confirmed.get(&entry.name)
            && entry.erasure_at.is_some_and(|at| *confirmed >= at)
            && entry.requested_at.is_none_or(|asked| *confirmed >= asked)
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
        .filter(|(_, e)| !still_bound(e))
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

/// A request never sent to anyone (neither delivered nor handed to staff): it can still name
/// more, or be dropped.
fn never_sent(entry: &ProcessorNotification) -> bool {
    entry.state == NotificationState::Pending && entry.attempts == 0
}

/// Resources as a request names them, sorted.
fn notified(resources: &[ResourceRef]) -> Vec<NotifiedResource> {
    let mut notified: Vec<NotifiedResource> = resources
        .iter()
        .map(|r| NotifiedResource {
            kind: r.kind.as_str().to_owned(),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
        })
        .collect();
    notified.sort();
    notified
}

fn new_entry(
    notification: &NotificationPlan,
    resources: Vec<NotifiedResource>,
    key: String,
) -> ProcessorNotification {
    ProcessorNotification {
        name: notification.processor.clone(),
        state: NotificationState::Pending,
        erasure_at: Some(notification.at),
        idempotency_key: Some(key),
        // Set by the first attempt: when the request was first built.
        requested_at: None,
        resources,
        attempts: 0,
        last_attempt_at: None,
        next_attempt_at: Some(notification.at),
        reason: None,
        acknowledged_at: None,
    }
}

/// What staff are told to do for a processor without a webhook.
pub fn manual_instruction(processor: &str) -> String {
    format!(
        "no webhook: send the erasure request by hand, then annotate the Account with \
         {CONFIRMED_ANNOTATION_PREFIX}{processor}"
    )
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

/// Puts a due request off until `until` without an attempt (its processor's circuit breaker is
/// open): it stays Pending, with `reason` saying why.
pub fn record_deferral(entry: &mut ProcessorNotification, until: DateTime<Utc>, reason: &str) {
    entry.state = NotificationState::Pending;
    entry.next_attempt_at = Some(until);
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
    use crate::kinds::ResourceKind;
    use crate::retention::NotificationDelivery;

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

    fn notification(processor: &str, at: &str) -> NotificationPlan {
        NotificationPlan {
            processor: processor.into(),
            at: t(at),
            delivery: NotificationDelivery::Webhook,
            resources: vec![resource(&format!("{processor}-record"))],
        }
    }

    const GRACE_END: &str = "2026-12-01T00:00:00Z";

    fn pass(
        plans: &[NotificationPlan],
        bound: &[ResourceRef],
        stored: &[ProcessorNotification],
        staff: &StaffActions,
        now: &str,
    ) -> Ledger {
        let bound: BTreeSet<&ResourceRef> = bound.iter().collect();
        ledger("acme", plans, &bound, stored, staff, t(now))
    }

    #[test]
    fn a_request_is_recorded_when_planned_and_due_once_its_data_is_gone() {
        let plans = [notification("pipedrive", GRACE_END)];
        let none = StaffActions::default();
        let record = [resource("pipedrive-record")];
        // Planned: recorded at once, Pending until the erasure time, not due.
        let early = pass(&plans, &record, &[], &none, "2026-11-02T00:00:00Z");
        assert_eq!(early.entries.len(), 1);
        let entry = &early.entries[0];
        assert_eq!(entry.state, NotificationState::Pending);
        let key = idempotency_key("acme", "pipedrive", t(GRACE_END));
        assert_eq!(entry.idempotency_key.as_deref(), Some(key.as_str()));
        assert_eq!(entry.erasure_at, Some(t(GRACE_END)));
        assert_eq!(entry.next_attempt_at, Some(t(GRACE_END)));
        assert_eq!(entry.resources.len(), 1);
        assert_eq!(entry.resources[0].name, "pipedrive-record");
        assert!(early.due.is_empty());
        // Its time has come but the record is still there (its deletion failed): not yet.
        let waiting = pass(&plans, &record, &early.entries, &none, GRACE_END);
        assert!(waiting.due.is_empty());
        // Gone: due, and the ledger is otherwise unchanged (idempotent).
        let owed = pass(&plans, &[], &early.entries, &none, GRACE_END);
        assert_eq!(owed.due, [0]);
        assert_eq!(owed.entries, early.entries);
    }

    /// A plan at `at` naming `names` for `processor`.
    fn notification_of(processor: &str, at: &str, names: &[&str]) -> NotificationPlan {
        NotificationPlan {
            processor: processor.into(),
            at: t(at),
            delivery: NotificationDelivery::Webhook,
            resources: names.iter().map(|n| resource(n)).collect(),
        }
    }

    fn names(entry: &ProcessorNotification) -> Vec<&str> {
        entry.resources.iter().map(|r| r.name.as_str()).collect()
    }

    /// GDPR Art. 19: a request not yet sent names everything of its erasure time that the
    /// processor held, objects bound after the first plan of the termination included.
    #[test]
    fn a_request_not_yet_sent_names_objects_bound_after_it_was_planned() {
        let none = StaffActions::default();
        let first = [notification_of("hook", GRACE_END, &["a"])];
        let planned = pass(&first, &[resource("a")], &[], &none, "2026-11-02T00:00:00Z");
        let key = planned.entries[0].idempotency_key.clone();
        // Two more objects for the same processor, bound four seconds later.
        let later = [notification_of("hook", GRACE_END, &["a", "b", "c"])];
        let bound = [resource("a"), resource("b"), resource("c")];
        let grown = pass(
            &later,
            &bound,
            &planned.entries,
            &none,
            "2026-11-02T00:00:04Z",
        );
        assert_eq!(grown.entries.len(), 1, "still one request");
        assert_eq!(names(&grown.entries[0]), ["a", "b", "c"]);
        assert_eq!(grown.entries[0].idempotency_key, key, "the same request");
        // Idempotent.
        let again = pass(
            &later,
            &bound,
            &grown.entries,
            &none,
            "2026-11-02T00:00:05Z",
        );
        assert_eq!(again.entries, grown.entries);
        // Due once all three are gone, naming all three.
        let owed = pass(&later, &[], &grown.entries, &none, GRACE_END);
        assert_eq!(owed.due, [0]);
    }

    /// Data of the same erasure time that comes after the request was sent gets a follow-up
    /// request with a key of its own, naming only what came later.
    #[test]
    fn data_bound_after_the_request_was_sent_gets_a_follow_up() {
        let none = StaffActions::default();
        let first = [notification_of("hook", GRACE_END, &["a"])];
        let mut sent = pass(&first, &[], &[], &none, GRACE_END).entries;
        record_outcome(&mut sent[0], &DeliveryOutcome::Acknowledged, t(GRACE_END));
        let later = [notification_of("hook", GRACE_END, &["a", "late"])];
        let follow = pass(
            &later,
            &[resource("late")],
            &sent,
            &none,
            "2026-12-01T00:00:10Z",
        );
        assert_eq!(follow.entries.len(), 2);
        assert_eq!(
            follow.entries[0], sent[0],
            "the sent request is kept as it was"
        );
        let follow_up = &follow.entries[1];
        assert_eq!(names(follow_up), ["late"]);
        assert_eq!(follow_up.state, NotificationState::Pending);
        assert_eq!(
            follow_up.idempotency_key,
            Some(follow_up_key("acme", "hook", t(GRACE_END), 2))
        );
        assert_ne!(follow_up.idempotency_key, sent[0].idempotency_key);
        assert!(follow.due.is_empty(), "not before its data is gone");
        let owed = pass(&later, &[], &follow.entries, &none, "2026-12-01T00:00:20Z");
        assert_eq!(owed.due, [1]);
        // Another after that is the third.
        let mut both = owed.entries.clone();
        record_outcome(&mut both[1], &DeliveryOutcome::Acknowledged, t(GRACE_END));
        let latest = [notification_of("hook", GRACE_END, &["a", "late", "later"])];
        let third = pass(
            &latest,
            &[resource("later")],
            &both,
            &none,
            "2026-12-01T00:01:00Z",
        );
        assert_eq!(third.entries.len(), 3);
        assert_eq!(names(&third.entries[2]), ["later"]);
        assert_eq!(
            third.entries[2].idempotency_key,
            Some(follow_up_key("acme", "hook", t(GRACE_END), 3))
        );
    }

    /// A staff confirmation covers what staff were asked before they gave it, not a follow-up
    /// handed to them afterwards.
    #[test]
    fn a_confirmation_does_not_settle_a_follow_up_asked_for_after_it() {
        let none = StaffActions::default();
        let first = [notification_of("soluno", GRACE_END, &["a"])];
        let mut entries = pass(&first, &[], &[], &none, GRACE_END).entries;
        entries[0].state = NotificationState::Manual;
        entries[0].requested_at = Some(t(GRACE_END));
        let confirmed = StaffActions {
            confirmed: BTreeMap::from([("soluno".to_owned(), t("2026-12-02T00:00:00Z"))]),
            ..StaffActions::default()
        };
        let later = [notification_of("soluno", GRACE_END, &["a", "late"])];
        let mut follow = pass(&later, &[], &entries, &confirmed, "2026-12-03T00:00:00Z").entries;
        assert_eq!(follow[0].state, NotificationState::Acknowledged);
        assert_eq!(follow[1].state, NotificationState::Pending);
        // Handed to staff on the 3rd: the confirmation of the 2nd does not cover it.
        follow[1].state = NotificationState::Manual;
        follow[1].requested_at = Some(t("2026-12-03T00:00:00Z"));
        let waiting = pass(&later, &[], &follow, &confirmed, "2026-12-04T00:00:00Z");
        assert_eq!(waiting.entries[1].state, NotificationState::Manual);
        let again = StaffActions {
            confirmed: BTreeMap::from([("soluno".to_owned(), t("2026-12-05T00:00:00Z"))]),
            ..StaffActions::default()
        };
        let done = pass(&later, &[], &follow, &again, "2026-12-05T00:00:01Z");
        assert!(all_settled(&done.entries));
    }

    #[test]
    fn a_cancelled_erasure_drops_its_request_unless_it_was_sent() {
        let plans = [notification("pipedrive", GRACE_END)];
        let none = StaffActions::default();
        let record = [resource("pipedrive-record")];
        let planned = pass(&plans, &record, &[], &none, "2026-11-02T00:00:00Z");
        // Reactivated: nothing planned, the record is still there.
        let cancelled = pass(
            &[],
            &record,
            &planned.entries,
            &none,
            "2026-11-03T00:00:00Z",
        );
        assert!(cancelled.entries.is_empty());
        // Once sent, the record of it stays, whatever the plan says.
        let mut sent = pass(&plans, &[], &planned.entries, &none, GRACE_END).entries;
        record_outcome(&mut sent[0], &DeliveryOutcome::Acknowledged, t(GRACE_END));
        let kept = pass(&[], &record, &sent, &none, "2026-12-02T00:00:00Z");
        assert_eq!(kept.entries, sent);
    }

    #[test]
    fn retries_back_off_keep_the_key_and_end_acknowledged() {
        let plans = [notification("pipedrive", GRACE_END)];
        let none = StaffActions::default();
        let mut now = t(GRACE_END);
        let mut entries = pass(&plans, &[], &[], &none, GRACE_END).entries;
        let key = entries[0].idempotency_key.clone();
        for attempt in 1..=3 {
            // From the second attempt on, the erased record is no longer in the plan: the
            // entry alone carries the retry.
            let current: &[NotificationPlan] = if attempt == 1 { &plans } else { &[] };
            let bound = BTreeSet::new();
            let round = ledger("acme", current, &bound, &entries, &none, now);
            assert_eq!(round.due, [0], "attempt {attempt} due");
            entries = round.entries;
            let outcome = DeliveryOutcome::Retry {
                retry_after: None,
                reason: "HTTP 500".into(),
            };
            record_outcome(&mut entries[0], &outcome, now);
            let next = entries[0].next_attempt_at.unwrap();
            assert!(next > now, "attempt {attempt}: a later retry");
            assert_eq!(next.timestamp_subsec_nanos(), 0, "whole seconds");
            assert_eq!(entries[0].reason.as_deref(), Some("HTTP 500"));
            // Not due again before its time.
            let quiet = ledger(
                "acme",
                &[],
                &bound,
                &entries,
                &none,
                next - TimeDelta::seconds(1),
            );
            assert!(quiet.due.is_empty());
            assert_eq!(quiet.next_attempt_at, Some(next));
            now = next;
        }
        let bound = BTreeSet::new();
        entries = ledger("acme", &[], &bound, &entries, &none, now).entries;
        record_outcome(&mut entries[0], &DeliveryOutcome::Acknowledged, now);
        assert_eq!(entries[0].state, NotificationState::Acknowledged);
        assert_eq!(entries[0].attempts, 4);
        assert_eq!(entries[0].acknowledged_at, Some(now));
        assert_eq!(entries[0].idempotency_key, key);
        assert!(all_settled(&entries));
        let settled = ledger(
            "acme",
            &[],
            &bound,
            &entries,
            &none,
            now + TimeDelta::days(1),
        );
        assert!(settled.due.is_empty() && settled.next_attempt_at.is_none());
    }

    #[test]
    fn a_rejection_fails_without_retrying_until_staff_ask() {
        let plans = [notification("pipedrive", GRACE_END)];
        let none = StaffActions::default();
        let mut entries = pass(&plans, &[], &[], &none, GRACE_END).entries;
        let outcome = DeliveryOutcome::Rejected {
            status: 400,
            reason: "HTTP 400".into(),
        };
        record_outcome(&mut entries[0], &outcome, t(GRACE_END));
        assert_eq!(entries[0].state, NotificationState::Failed);
        let later = pass(&[], &[], &entries, &none, "2027-01-01T00:00:00Z");
        assert!(later.due.is_empty());
        assert!(!all_settled(&later.entries));
        // Staff correct the endpoint and ask for a retry: sent again, with the same key.
        let retry = StaffActions {
            retry: BTreeMap::from([("pipedrive".to_owned(), t("2026-12-02T00:00:00Z"))]),
            ..StaffActions::default()
        };
        let again = pass(&[], &[], &later.entries, &retry, "2026-12-02T00:00:00Z");
        assert_eq!(again.due, [0]);
        assert_eq!(again.entries[0].idempotency_key, entries[0].idempotency_key);
        // A retry asked for before the last attempt does not repeat it.
        let mut failed_again = again.entries.clone();
        record_outcome(&mut failed_again[0], &outcome, t("2026-12-02T00:00:01Z"));
        let stale = pass(&[], &[], &failed_again, &retry, "2026-12-03T00:00:00Z");
        assert!(stale.due.is_empty());
        assert_eq!(stale.entries[0].state, NotificationState::Failed);
    }

    #[test]
    fn a_refused_destination_fails_like_a_misconfiguration_and_names_no_address() {
        let plans = [notification("pipedrive", GRACE_END)];
        let none = StaffActions::default();
        let mut entries = pass(&plans, &[], &[], &none, GRACE_END).entries;
        let outcome =
            DeliveryOutcome::Misconfigured(crate::notifier::ConfigurationError::DestinationRefused);
        record_outcome(&mut entries[0], &outcome, t(GRACE_END));
        assert_eq!(entries[0].state, NotificationState::Failed);
        assert_eq!(entries[0].reason.as_deref(), Some("DestinationRefused"));
        assert_eq!(entries[0].next_attempt_at, None);
        let later = pass(&[], &[], &entries, &none, "2027-01-01T00:00:00Z");
        assert!(later.due.is_empty(), "not retried until staff ask");
    }

    #[test]
    fn a_manual_request_waits_for_the_staffs_confirmation() {
        let plans = [notification("soluno", GRACE_END)];
        let none = StaffActions::default();
        let mut entries = pass(&plans, &[], &[], &none, GRACE_END).entries;
        // The controller found no webhook at the due time.
        entries[0].state = NotificationState::Manual;
        entries[0].reason = Some(manual_instruction("soluno"));
        assert!(
            entries[0]
                .reason
                .as_deref()
                .unwrap()
                .contains(CONFIRMED_ANNOTATION_PREFIX)
        );
        let waiting = pass(&[], &[], &entries, &none, "2026-12-02T00:00:00Z");
        assert!(waiting.due.is_empty(), "nothing is sent");
        assert!(!all_settled(&waiting.entries));
        let confirmed = StaffActions {
            confirmed: BTreeMap::from([("soluno".to_owned(), t("2026-12-03T10:00:00Z"))]),
            ..StaffActions::default()
        };
        let done = pass(&[], &[], &entries, &confirmed, "2026-12-04T00:00:00Z");
        assert_eq!(done.entries[0].state, NotificationState::Acknowledged);
        assert_eq!(
            done.entries[0].acknowledged_at,
            Some(t("2026-12-03T10:00:00Z"))
        );
        assert!(all_settled(&done.entries));
    }

    #[test]
    fn each_erasure_time_of_a_processor_is_its_own_request_and_confirmation() {
        let plans = [
            notification("soluno", GRACE_END),
            notification("soluno", "2034-01-01T00:00:00Z"),
        ];
        let none = StaffActions::default();
        let mut entries = pass(&plans, &[], &[], &none, GRACE_END).entries;
        assert_eq!(entries.len(), 2);
        assert_ne!(entries[0].idempotency_key, entries[1].idempotency_key);
        for entry in &mut entries {
            entry.state = NotificationState::Manual;
        }
        // A confirmation covers what was erased by then, not the bookkeeping data of 2034.
        let confirmed = StaffActions {
            confirmed: BTreeMap::from([("soluno".to_owned(), t("2026-12-03T10:00:00Z"))]),
            ..StaffActions::default()
        };
        let later = pass(&plans, &[], &entries, &confirmed, "2034-01-01T00:00:00Z");
        let states: Vec<NotificationState> = later.entries.iter().map(|e| e.state).collect();
        assert_eq!(
            states,
            [NotificationState::Acknowledged, NotificationState::Manual]
        );
    }
}
