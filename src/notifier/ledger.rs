//! Which erasure requests an account owes its processors, every change to the record of each in
//! `Account.status.processors`, and what staff are told to do about one (pure: the controller
//! supplies `now`, performs the deliveries and writes the result).
//!
//! Every erasure the plan schedules for data a processor also holds gets its entry as soon as
//! it is planned: Pending, with the idempotency key of (account, processor, erasure time) and
//! its next attempt at the erasure time. Recording it before the data goes means no crash
//! between a deletion and the next status write can lose the request. It is sent once its time
//! has come and every resource it names is gone; an entry never sent whose erasure the plan no
//! longer schedules (a reactivation, a legal hold) names only what already went, and is dropped
//! when nothing did.
//!
//! At its due time the controller resolves the processor: a webhook is sent to, and the outcome
//! moves the entry to Acknowledged (2xx), keeps it Pending with the next attempt after a
//! backoff (408, 429, 5xx, network), or makes it Failed (another 4xx, a misconfigured
//! endpoint), which is not retried until staff ask ([`RETRY_ANNOTATION_PREFIX`]). A processor
//! without a webhook makes it Manual until staff confirm ([`CONFIRMED_ANNOTATION_PREFIX`]).
//!
//! Each of these changes is one function here, so the controller never sets a state itself:
//!
//! | change | function |
//! |---|---|
//! | owed: planned, not yet sent | `owe` (through [`update_ledger`]) |
//! | names what came later, not yet sent | `name_also` (through [`update_ledger`]) |
//! | no longer planned, never sent: names only what went, dropped if nothing did | `is_cancelled`, `withdraw_still_bound` (through [`update_ledger`]) |
//! | an attempt starts (dates the request) | [`start_attempt`] |
//! | acknowledged by the processor | [`acknowledge`] (or [`record_outcome`]) |
//! | transient failure: retry after a backoff | [`retry_later`] (or [`record_outcome`]) |
//! | refused or misconfigured: failed | [`fail`] (or [`record_outcome`]) |
//! | not sendable as recorded or configured | [`mark_unsendable`] |
//! | put off without an attempt | [`defer`] |
//! | handed to staff (no webhook) | [`mark_manual`] |
//! | confirmed by staff | [`confirm`] (through [`update_ledger`]) |
//! | sent again at the staff's request | [`retry_on_request`] (through [`update_ledger`]) |
//!
//! Notified is reserved (webhooks acknowledge with their answer): nothing here produces it.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use chrono::{DateTime, TimeDelta, Utc};
use kube::ResourceExt;

use super::{
    backoff::next_attempt_delay,
    delivery::DeliveryOutcome,
    request::{follow_up_key, idempotency_key},
};
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

/// Brings the stored entries up to date with the plan and what staff said, and finds the
/// requests due now.
///
/// `bound` holds the resources still bound to the account; `staff` what staff said through
/// annotations. Entries that were sent are never dropped: they are the record that each
/// processor was told.
pub fn update_ledger(
    account: &str,
    notifications: &[NotificationPlan],
    bound: &BTreeSet<&ResourceRef>,
    stored: &[ProcessorNotification],
    staff: &StaffActions,
    now: DateTime<Utc>,
) -> Ledger {
    let bound = StillBound::new(bound);
    let mut entries: Vec<ProcessorNotification> = stored
        .iter()
        .filter_map(|e| {
            if is_cancelled(e, notifications, &bound) {
                withdraw_still_bound(e, &bound)
            } else {
                Some(e.clone())
            }
        })
        .collect();
    for notification in notifications {
        owe_planned(account, notification, &mut entries);
    }
    // Over the entries, not the plan: the data a request names is gone from the plan by then.
    for entry in &mut entries {
        if let Some(&confirmed_at) = staff.confirmed.get(&entry.name) {
            confirm(entry, confirmed_at);
        }
        if let Some(&since) = staff.retry.get(&entry.name) {
            retry_on_request(entry, since);
        }
    }
    entries.sort_by(|a, b| (a.erasure_at, &a.name).cmp(&(b.erasure_at, &b.name)));
    let due = due_now(&entries, &bound, now);
    let next_attempt_at = next_attempt_after(&entries, now);
    Ledger {
        entries,
        due,
        next_attempt_at,
    }
}

/// The resources still bound to the account, compared by kind, namespace and name.
struct StillBound<'a>(BTreeSet<(&'a str, &'a str, &'a str)>);

impl<'a> StillBound<'a> {
    fn new(bound: &BTreeSet<&'a ResourceRef>) -> Self {
        Self(
            bound
                .iter()
                .map(|&r| (r.kind.as_str(), r.namespace.as_str(), r.name.as_str()))
                .collect(),
        )
    }

    /// Whether any resource the request names is still bound: its data is not gone yet.
    fn names_any(&self, entry: &ProcessorNotification) -> bool {
        entry.resources.iter().any(|r| self.names(r))
    }

    /// Whether this resource is still bound.
    fn names(&self, resource: &NotifiedResource) -> bool {
        self.0.contains(&(
            resource.kind.as_str(),
            resource.namespace.as_str(),
            resource.name.as_str(),
        ))
    }
}

/// Whether a stored request was cancelled: never sent, while (some of) its data is still
/// there, and its erasure is no longer planned (a reactivation, a legal hold) or moved to
/// another time (which is another key). It then keeps only what already went
/// ([`withdraw_still_bound`]), or is dropped.
fn is_cancelled(
    entry: &ProcessorNotification,
    notifications: &[NotificationPlan],
    bound: &StillBound<'_>,
) -> bool {
    // One request per processor and erasure time, plus a follow-up for data of that time that
    // came after the request was sent.
    let planned = notifications
        .iter()
        .any(|n| n.processor == entry.name && Some(n.at) == entry.erasure_at);
    !planned && never_sent(entry) && bound.names_any(entry)
}

/// A cancelled request names only what already went: that erasure happened, and the processor
/// is still owed the request for it (GDPR Art. 19), under its erasure time's key. With nothing
/// gone, the request is dropped.
fn withdraw_still_bound(
    entry: &ProcessorNotification,
    bound: &StillBound<'_>,
) -> Option<ProcessorNotification> {
    let gone: Vec<NotifiedResource> = entry
        .resources
        .iter()
        .filter(|r| !bound.names(r))
        .cloned()
        .collect();
    (!gone.is_empty()).then(|| ProcessorNotification {
        resources: gone,
        ..entry.clone()
    })
}

/// Makes every resource of `notification` named in a request: a new one when its processor and
/// erasure time have none yet, else what no request names is added to the one not sent yet or,
/// when all were sent, to a follow-up.
fn owe_planned(
    account: &str,
    notification: &NotificationPlan,
    entries: &mut Vec<ProcessorNotification>,
) {
    let group: Vec<usize> = (0..entries.len())
        .filter(|&i| {
            entries[i].name == notification.processor
                && entries[i].erasure_at == Some(notification.at)
        })
        .collect();
    if group.is_empty() {
        let key = idempotency_key(account, &notification.processor, notification.at);
        entries.push(owe(notification, notified(&notification.resources), key));
        return;
    }
    // Everything of this erasure time the processor held must be named to it: objects bound
    // after the first plan of a termination too (GDPR Art. 19).
    let named: BTreeSet<&NotifiedResource> =
        group.iter().flat_map(|&i| &entries[i].resources).collect();
    let missing: Vec<NotifiedResource> = notified(&notification.resources)
        .into_iter()
        .filter(|r| !named.contains(r))
        .collect();
    if missing.is_empty() {
        return;
    }
    // A request not sent yet names them too; once every request of that time was sent (or
    // handed to staff), a follow-up names what came later.
    match group.iter().find(|&&i| never_sent(&entries[i])) {
        Some(&open) => name_also(&mut entries[open], missing),
        None => {
            let key = unused_follow_up_key(account, notification, group.len() + 1, entries);
            entries.push(owe(notification, missing, key));
        }
    }
}

/// The first follow-up key from `sequence` on that no entry holds yet.
fn unused_follow_up_key(
    account: &str,
    notification: &NotificationPlan,
    mut sequence: usize,
    entries: &[ProcessorNotification],
) -> String {
    loop {
        let key = follow_up_key(account, &notification.processor, notification.at, sequence);
        if !entries
            .iter()
            .any(|e| e.idempotency_key.as_deref() == Some(key.as_str()))
        {
            return key;
        }
        sequence += 1;
    }
}

/// Indexes of the Pending requests whose next attempt has come and whose data is gone.
fn due_now(
    entries: &[ProcessorNotification],
    bound: &StillBound<'_>,
    now: DateTime<Utc>,
) -> Vec<usize> {
    entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.state == NotificationState::Pending)
        .filter(|(_, e)| e.next_attempt_at.is_none_or(|at| at <= now))
        .filter(|(_, e)| !bound.names_any(e))
        .map(|(index, _)| index)
        .collect()
}

/// The earliest next attempt of a Pending request after `now`.
fn next_attempt_after(
    entries: &[ProcessorNotification],
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    entries
        .iter()
        .filter(|e| e.state == NotificationState::Pending)
        .filter_map(|e| e.next_attempt_at)
        .filter(|at| *at > now)
        .min()
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

/// A request owed from now on: Pending, first attempted at its erasure time.
fn owe(
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

/// A request not sent yet names `more` too (sorted with the rest), so one request names
/// everything of its erasure time.
fn name_also(entry: &mut ProcessorNotification, more: Vec<NotifiedResource>) {
    entry.resources.extend(more);
    entry.resources.sort();
}

/// An attempt starts now: the first one dates the request, and retries repeat that date so the
/// processor receives the same request every time. Returns the request's date.
pub fn start_attempt(entry: &mut ProcessorNotification, now: DateTime<Utc>) -> DateTime<Utc> {
    *entry.requested_at.get_or_insert(now)
}

/// Counts an attempt that ended `at`.
fn count_attempt(entry: &mut ProcessorNotification, at: DateTime<Utc>) {
    entry.attempts = entry.attempts.saturating_add(1);
    entry.last_attempt_at = Some(at);
}

/// Records one delivery attempt's outcome on its entry.
pub fn record_outcome(
    entry: &mut ProcessorNotification,
    outcome: &DeliveryOutcome,
    at: DateTime<Utc>,
) {
    match outcome {
        DeliveryOutcome::Acknowledged => acknowledge(entry, at),
        DeliveryOutcome::Retry { retry_after, .. } => {
            retry_later(entry, outcome.reason(), *retry_after, at);
        }
        DeliveryOutcome::Rejected { .. } | DeliveryOutcome::Misconfigured(_) => {
            fail(entry, outcome.reason(), at);
        }
    }
}

/// The processor acknowledged the attempt that ended `at`: settled.
pub fn acknowledge(entry: &mut ProcessorNotification, at: DateTime<Utc>) {
    count_attempt(entry, at);
    entry.state = NotificationState::Acknowledged;
    entry.acknowledged_at = Some(at);
    entry.next_attempt_at = None;
    entry.reason = None;
}

/// An attempt that ended `at` failed in a way that may pass (`reason`): it stays Pending and is
/// tried again after a backoff that grows with the attempts, not before `retry_after` when the
/// receiver gave one.
pub fn retry_later(
    entry: &mut ProcessorNotification,
    reason: &str,
    retry_after: Option<Duration>,
    at: DateTime<Utc>,
) {
    count_attempt(entry, at);
    let delay = next_attempt_delay(entry.attempts, retry_after);
    // Whole seconds, rounded up: the status reads cleanly and never promises early.
    let seconds = i64::try_from(delay.as_secs())
        .unwrap_or(i64::MAX)
        .saturating_add(i64::from(delay.subsec_nanos() > 0));
    let delay = TimeDelta::try_seconds(seconds).unwrap_or(TimeDelta::hours(24));
    entry.state = NotificationState::Pending;
    entry.next_attempt_at = Some(at + delay);
    entry.reason = Some(reason.to_owned());
}

/// The processor refused the attempt that ended `at`, or its endpoint is misconfigured
/// (`reason`): staff must act, so it is not retried until they ask.
pub fn fail(entry: &mut ProcessorNotification, reason: &str, at: DateTime<Utc>) {
    count_attempt(entry, at);
    entry.state = NotificationState::Failed;
    entry.next_attempt_at = None;
    entry.reason = Some(reason.to_owned());
}

/// A request that cannot be sent, found before any attempt (`reason`: its record is incomplete,
/// its processor or Secret is missing or unreadable for good): Failed like a refused one, so
/// staff act instead of it being retried blindly, but no attempt is counted.
pub fn mark_unsendable(entry: &mut ProcessorNotification, reason: &str) {
    entry.state = NotificationState::Failed;
    entry.next_attempt_at = None;
    entry.reason = Some(reason.to_owned());
}

/// Puts a due request off until `until` without an attempt (its processor's circuit breaker is
/// open): it stays Pending, with `reason` saying why.
pub fn defer(entry: &mut ProcessorNotification, until: DateTime<Utc>, reason: &str) {
    entry.state = NotificationState::Pending;
    entry.next_attempt_at = Some(until);
    entry.reason = Some(reason.to_owned());
}

/// Hands the request to staff (its processor has no webhook): Manual, with what they must do as
/// its reason, until they confirm it. It is dated when staff were first asked, as a confirmation
/// given before then does not cover it.
pub fn mark_manual(entry: &mut ProcessorNotification, now: DateTime<Utc>) {
    entry.requested_at.get_or_insert(now);
    entry.state = NotificationState::Manual;
    entry.next_attempt_at = None;
    entry.reason = Some(staff_instruction(StaffInstruction::ManualReason {
        processor: &entry.name,
    }));
}

/// Staff confirmed that the processor erased the data at `confirmed_at`: a Manual or Failed
/// request is settled when the confirmation covers it. It covers the requests whose data was
/// erased by then, not a later one to the same processor (bookkeeping data goes years after the
/// rest), nor one handed to staff after it was given (a follow-up).
pub fn confirm(entry: &mut ProcessorNotification, confirmed_at: DateTime<Utc>) {
    let settleable = matches!(
        entry.state,
        NotificationState::Manual | NotificationState::Failed
    );
    if settleable
        && entry.erasure_at.is_some_and(|at| confirmed_at >= at)
        && entry.requested_at.is_none_or(|asked| confirmed_at >= asked)
    {
        entry.state = NotificationState::Acknowledged;
        entry.acknowledged_at = Some(confirmed_at);
        entry.next_attempt_at = None;
        entry.reason = None;
    }
}

/// Staff asked at `since` for failed requests to be sent again: a Failed request last attempted
/// before then is Pending and due at once. A request that failed again after they asked is not
/// repeated.
pub fn retry_on_request(entry: &mut ProcessorNotification, since: DateTime<Utc>) {
    if entry.state == NotificationState::Failed
        && entry.last_attempt_at.is_none_or(|last| last < since)
    {
        entry.state = NotificationState::Pending;
        entry.next_attempt_at = None;
    }
}

/// What staff are told to do about a request that waits for them, and where it is said.
///
/// The texts differ by place on purpose: a request's `reason` sits beside its processor's name,
/// so it does not repeat it; an Event is about one request and names its processor, resource
/// count and failure; a condition covers every waiting request, so it names the processors and
/// writes the annotation as `<processor>`, and also says what the annotation's value must be.
#[derive(Clone, Copy, Debug)]
pub enum StaffInstruction<'a> {
    /// The `reason` of a Manual request in `status.processors`.
    ManualReason {
        /// The processor without a webhook.
        processor: &'a str,
    },
    /// The `ManualActionRequired` Event when a request is handed to staff.
    ManualEvent {
        /// The processor without a webhook.
        processor: &'a str,
        /// How many resources the request names.
        resources: usize,
    },
    /// The message of the Account's `ManualActionRequired` condition.
    ManualCondition {
        /// The processors whose requests wait for staff (joined with `, `).
        processors: &'a [String],
    },
    /// The `ErasureRequestFailed` Event when a request fails.
    FailedEvent {
        /// The processor that refused the request or cannot be sent to.
        processor: &'a str,
        /// Why it failed (the request's `reason`).
        reason: Option<&'a str>,
    },
    /// The message of the Account's `ErasureRequestsFailed` condition.
    FailedCondition {
        /// The failed requests, each as its processor and reason (joined with `; `).
        requests: &'a [String],
    },
}

/// The text of a staff instruction (see [`StaffInstruction`]).
pub fn staff_instruction(instruction: StaffInstruction<'_>) -> String {
    const CONFIRMED: &str = CONFIRMED_ANNOTATION_PREFIX;
    const RETRY: &str = RETRY_ANNOTATION_PREFIX;
    match instruction {
        StaffInstruction::ManualReason { processor } => format!(
            "no webhook: send the erasure request by hand, then annotate the Account with \
             {CONFIRMED}{processor}"
        ),
        StaffInstruction::ManualEvent {
            processor,
            resources,
        } => format!(
            "{processor} has no webhook: send it the erasure request for {resources} resources \
             by hand, then confirm with the annotation {CONFIRMED}{processor}"
        ),
        StaffInstruction::ManualCondition { processors } => format!(
            "send the erasure request by hand to {}, then annotate the Account with \
             {CONFIRMED}<processor> set to the time the processor confirmed",
            processors.join(", ")
        ),
        StaffInstruction::FailedEvent { processor, reason } => format!(
            "the erasure request to {processor} failed ({}): correct the DataProcessor or its \
             Secret and annotate the Account with {RETRY}{processor}, or settle it by hand",
            reason.unwrap_or("unknown")
        ),
        StaffInstruction::FailedCondition { requests } => format!(
            "erasure requests failed for {}: correct the DataProcessor or its Secret and annotate \
             the Account with {RETRY}<processor> set to the current time to send again, or \
             settle the request by hand and confirm with {CONFIRMED}<processor>",
            requests.join("; ")
        ),
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
        update_ledger("acme", plans, &bound, stored, staff, t(now))
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
        mark_manual(&mut entries[0], t(GRACE_END));
        let confirmed = StaffActions {
            confirmed: BTreeMap::from([("soluno".to_owned(), t("2026-12-02T00:00:00Z"))]),
            ..StaffActions::default()
        };
        let later = [notification_of("soluno", GRACE_END, &["a", "late"])];
        let mut follow = pass(&later, &[], &entries, &confirmed, "2026-12-03T00:00:00Z").entries;
        assert_eq!(follow[0].state, NotificationState::Acknowledged);
        assert_eq!(follow[1].state, NotificationState::Pending);
        // Handed to staff on the 3rd: the confirmation of the 2nd does not cover it.
        mark_manual(&mut follow[1], t("2026-12-03T00:00:00Z"));
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

    /// A reactivation between two deletions of one erasure time calls off the erasure of what
    /// is still there, not the request for what already went: the processor must still be told
    /// to erase its copy of that (GDPR Art. 19), and only of that.
    #[test]
    fn a_cancelled_erasure_still_owes_the_request_for_what_already_went() {
        let none = StaffActions::default();
        let plans = [notification_of("hook", GRACE_END, &["gone", "kept"])];
        let both = [resource("gone"), resource("kept")];
        let planned = pass(&plans, &both, &[], &none, "2026-11-02T00:00:00Z");
        let key = planned.entries[0].idempotency_key.clone();
        // "gone" was deleted at the erasure time; then the account was reactivated.
        let reactivated = pass(
            &[],
            &[resource("kept")],
            &planned.entries,
            &none,
            "2026-12-01T00:00:05Z",
        );
        assert_eq!(reactivated.entries.len(), 1, "{:?}", reactivated.entries);
        let entry = &reactivated.entries[0];
        assert_eq!(names(entry), ["gone"], "names only what was erased");
        assert_eq!(entry.idempotency_key, key, "the erasure time's key");
        assert_eq!(entry.erasure_at, Some(t(GRACE_END)));
        assert_eq!(reactivated.due, [0], "sent now: its data is gone");
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
            let round = update_ledger("acme", current, &bound, &entries, &none, now);
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
            let quiet = update_ledger(
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
        entries = update_ledger("acme", &[], &bound, &entries, &none, now).entries;
        record_outcome(&mut entries[0], &DeliveryOutcome::Acknowledged, now);
        assert_eq!(entries[0].state, NotificationState::Acknowledged);
        assert_eq!(entries[0].attempts, 4);
        assert_eq!(entries[0].acknowledged_at, Some(now));
        assert_eq!(entries[0].idempotency_key, key);
        assert!(all_settled(&entries));
        let settled = update_ledger(
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
        let outcome = DeliveryOutcome::Misconfigured(
            crate::notifier::delivery::ConfigurationError::DestinationRefused,
        );
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
        mark_manual(&mut entries[0], t(GRACE_END));
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
            mark_manual(entry, t(GRACE_END));
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

    /// A request planned at GRACE_END and owed, as the ledger records it.
    fn owed() -> ProcessorNotification {
        let plans = [notification("pipedrive", GRACE_END)];
        pass(&plans, &[], &[], &StaffActions::default(), GRACE_END)
            .entries
            .remove(0)
    }

    #[test]
    fn an_owed_request_waits_for_its_erasure_time_and_names_more_sorted() {
        let plan = notification_of("hook", GRACE_END, &["b"]);
        let mut entry = owe(&plan, notified(&plan.resources), "key".into());
        assert_eq!(entry.state, NotificationState::Pending);
        assert_eq!(entry.next_attempt_at, Some(t(GRACE_END)));
        assert_eq!(entry.attempts, 0);
        assert_eq!(entry.requested_at, None, "dated by its first attempt");
        assert!(never_sent(&entry));
        let more = notified(&[resource("c"), resource("a")]);
        name_also(&mut entry, more);
        assert_eq!(names(&entry), ["a", "b", "c"]);
    }

    #[test]
    fn only_a_request_never_sent_unplanned_and_with_its_data_still_there_is_cancelled() {
        let plans = [notification("pipedrive", GRACE_END)];
        let record = [resource("pipedrive-record")];
        let refs: BTreeSet<&ResourceRef> = record.iter().collect();
        let bound = StillBound::new(&refs);
        let gone = StillBound::new(&BTreeSet::new());
        let entry = owed();
        assert!(is_cancelled(&entry, &[], &bound));
        assert!(!is_cancelled(&entry, &plans, &bound), "still planned");
        assert!(!is_cancelled(&entry, &[], &gone), "its data is gone: owed");
        let moved = [notification("pipedrive", "2026-12-02T00:00:00Z")];
        assert!(is_cancelled(&entry, &moved, &bound), "moved to another key");
        let mut sent = entry.clone();
        retry_later(&mut sent, "HTTP 500", None, t(GRACE_END));
        assert!(
            !is_cancelled(&sent, &[], &bound),
            "the record that it was sent"
        );
        let mut manual = entry;
        mark_manual(&mut manual, t(GRACE_END));
        assert!(!is_cancelled(&manual, &[], &bound), "handed to staff");
    }

    #[test]
    fn an_attempt_dates_the_request_once() {
        let mut entry = owed();
        assert_eq!(start_attempt(&mut entry, t(GRACE_END)), t(GRACE_END));
        let later = t("2026-12-02T00:00:00Z");
        assert_eq!(start_attempt(&mut entry, later), t(GRACE_END));
        assert_eq!(entry.requested_at, Some(t(GRACE_END)));
        assert_eq!(entry.attempts, 0, "counted when it ends");
    }

    #[test]
    fn an_acknowledgement_counts_the_attempt_and_settles() {
        let mut entry = owed();
        retry_later(&mut entry, "HTTP 503", None, t(GRACE_END));
        let at = t("2026-12-01T00:10:00Z");
        acknowledge(&mut entry, at);
        assert_eq!(entry.state, NotificationState::Acknowledged);
        assert_eq!(entry.attempts, 2);
        assert_eq!(entry.last_attempt_at, Some(at));
        assert_eq!(entry.acknowledged_at, Some(at));
        assert_eq!(entry.next_attempt_at, None);
        assert_eq!(entry.reason, None);
    }

    #[test]
    fn a_transient_failure_is_retried_after_the_backoff_or_retry_after() {
        let at = t(GRACE_END);
        let mut entry = owed();
        retry_later(&mut entry, "SecretUnreadable Timeout", None, at);
        assert_eq!(entry.state, NotificationState::Pending);
        assert_eq!(entry.attempts, 1);
        assert_eq!(entry.last_attempt_at, Some(at));
        assert_eq!(entry.reason.as_deref(), Some("SecretUnreadable Timeout"));
        let next = entry.next_attempt_at.unwrap();
        assert!(
            next >= at + TimeDelta::seconds(5),
            "at least the first backoff"
        );
        assert!(
            next <= at + TimeDelta::seconds(10),
            "within the first backoff"
        );
        let hour = Duration::from_secs(3600);
        retry_later(&mut entry, "HTTP 429", Some(hour), at);
        assert_eq!(entry.attempts, 2);
        assert!(entry.next_attempt_at.unwrap() >= at + TimeDelta::hours(1));
        assert_eq!(entry.reason.as_deref(), Some("HTTP 429"));
    }

    #[test]
    fn a_failure_counts_the_attempt_an_unsendable_request_does_not() {
        let at = t(GRACE_END);
        let mut failed = owed();
        fail(&mut failed, "HTTP 400", at);
        assert_eq!(failed.state, NotificationState::Failed);
        assert_eq!(failed.attempts, 1);
        assert_eq!(failed.last_attempt_at, Some(at));
        assert_eq!(failed.next_attempt_at, None);
        assert_eq!(failed.reason.as_deref(), Some("HTTP 400"));
        let mut unsendable = owed();
        mark_unsendable(&mut unsendable, "SecretNotFound");
        assert_eq!(unsendable.state, NotificationState::Failed);
        assert_eq!(unsendable.attempts, 0);
        assert_eq!(unsendable.last_attempt_at, None);
        assert_eq!(unsendable.next_attempt_at, None);
        assert_eq!(unsendable.reason.as_deref(), Some("SecretNotFound"));
    }

    #[test]
    fn a_deferral_keeps_the_request_pending_until_then_without_an_attempt() {
        let mut entry = owed();
        let until = t("2026-12-01T00:05:00Z");
        defer(&mut entry, until, "ProcessorUnreachable");
        assert_eq!(entry.state, NotificationState::Pending);
        assert_eq!(entry.next_attempt_at, Some(until));
        assert_eq!(entry.attempts, 0);
        assert_eq!(entry.reason.as_deref(), Some("ProcessorUnreachable"));
    }

    #[test]
    fn a_manual_request_is_dated_when_staff_are_first_asked_and_says_what_to_do() {
        let mut entry = owed();
        mark_manual(&mut entry, t(GRACE_END));
        mark_manual(&mut entry, t("2026-12-02T00:00:00Z"));
        assert_eq!(entry.state, NotificationState::Manual);
        assert_eq!(entry.requested_at, Some(t(GRACE_END)));
        assert_eq!(entry.next_attempt_at, None);
        assert_eq!(entry.attempts, 0);
        assert_eq!(
            entry.reason.as_deref(),
            Some(
                "no webhook: send the erasure request by hand, then annotate the Account with \
                 erasure-confirmed.hosting.ecuni.se/pipedrive"
            )
        );
    }

    #[test]
    fn a_confirmation_settles_only_what_it_covers() {
        let confirmed_at = t("2026-12-03T00:00:00Z");
        let mut pending = owed();
        confirm(&mut pending, confirmed_at);
        assert_eq!(
            pending.state,
            NotificationState::Pending,
            "not asked of staff"
        );
        let mut asked_later = owed();
        mark_manual(&mut asked_later, t("2026-12-04T00:00:00Z"));
        confirm(&mut asked_later, confirmed_at);
        assert_eq!(asked_later.state, NotificationState::Manual);
        let mut failed = owed();
        fail(&mut failed, "HTTP 400", t(GRACE_END));
        confirm(&mut failed, confirmed_at);
        assert_eq!(failed.state, NotificationState::Acknowledged);
        assert_eq!(failed.acknowledged_at, Some(confirmed_at));
        assert_eq!(failed.reason, None);
        let mut manual = owed();
        mark_manual(&mut manual, t(GRACE_END));
        confirm(&mut manual, t("2026-11-30T00:00:00Z"));
        assert_eq!(
            manual.state,
            NotificationState::Manual,
            "before its erasure"
        );
        confirm(&mut manual, confirmed_at);
        assert_eq!(manual.state, NotificationState::Acknowledged);
        assert_eq!(manual.next_attempt_at, None);
    }

    #[test]
    fn a_retry_on_request_reopens_only_a_failure_attempted_before_it() {
        let mut failed = owed();
        fail(&mut failed, "HTTP 400", t("2026-12-02T00:00:00Z"));
        retry_on_request(&mut failed, t("2026-12-02T00:00:00Z"));
        assert_eq!(
            failed.state,
            NotificationState::Failed,
            "asked before it failed"
        );
        retry_on_request(&mut failed, t("2026-12-03T00:00:00Z"));
        assert_eq!(failed.state, NotificationState::Pending);
        assert_eq!(failed.next_attempt_at, None, "due at once");
        assert_eq!(failed.reason.as_deref(), Some("HTTP 400"));
        let mut manual = owed();
        mark_manual(&mut manual, t(GRACE_END));
        retry_on_request(&mut manual, t("2026-12-03T00:00:00Z"));
        assert_eq!(manual.state, NotificationState::Manual, "only failures");
    }

    #[test]
    fn an_outcome_is_recorded_as_its_transition() {
        let at = t(GRACE_END);
        let outcomes = [
            DeliveryOutcome::Acknowledged,
            DeliveryOutcome::Rejected {
                status: 403,
                reason: "HTTP 403".into(),
            },
            DeliveryOutcome::Misconfigured(crate::notifier::delivery::ConfigurationError::NotHttps),
        ];
        for outcome in &outcomes {
            let (mut recorded, mut direct) = (owed(), owed());
            record_outcome(&mut recorded, outcome, at);
            match outcome {
                DeliveryOutcome::Acknowledged => acknowledge(&mut direct, at),
                _ => fail(&mut direct, outcome.reason(), at),
            }
            assert_eq!(recorded, direct, "{outcome}");
        }
        let mut retried = owed();
        let outcome = DeliveryOutcome::Retry {
            retry_after: Some(Duration::from_secs(7200)),
            reason: "HTTP 503".into(),
        };
        record_outcome(&mut retried, &outcome, at);
        assert_eq!(retried.state, NotificationState::Pending);
        assert_eq!(retried.reason.as_deref(), Some("HTTP 503"));
        assert_eq!(retried.next_attempt_at, Some(at + TimeDelta::hours(2)));
    }

    #[test]
    fn staff_instructions_read_as_each_place_needs() {
        let text = |instruction| staff_instruction(instruction);
        assert_eq!(
            text(StaffInstruction::ManualReason {
                processor: "soluno"
            }),
            "no webhook: send the erasure request by hand, then annotate the Account with \
             erasure-confirmed.hosting.ecuni.se/soluno"
        );
        assert_eq!(
            text(StaffInstruction::ManualEvent {
                processor: "soluno",
                resources: 3,
            }),
            "soluno has no webhook: send it the erasure request for 3 resources by hand, then \
             confirm with the annotation erasure-confirmed.hosting.ecuni.se/soluno"
        );
        let processors = ["soluno".to_owned(), "fortnox".to_owned()];
        assert_eq!(
            text(StaffInstruction::ManualCondition {
                processors: &processors,
            }),
            "send the erasure request by hand to soluno, fortnox, then annotate the Account with \
             erasure-confirmed.hosting.ecuni.se/<processor> set to the time the processor \
             confirmed"
        );
        assert_eq!(
            text(StaffInstruction::FailedEvent {
                processor: "hook",
                reason: Some("HTTP 400"),
            }),
            "the erasure request to hook failed (HTTP 400): correct the DataProcessor or its \
             Secret and annotate the Account with erasure-retry.hosting.ecuni.se/hook, or settle \
             it by hand"
        );
        assert!(
            text(StaffInstruction::FailedEvent {
                processor: "hook",
                reason: None,
            })
            .contains("failed (unknown)")
        );
        let requests = [
            "hook (HTTP 400)".to_owned(),
            "crm (SecretNotFound)".to_owned(),
        ];
        assert_eq!(
            text(StaffInstruction::FailedCondition {
                requests: &requests,
            }),
            "erasure requests failed for hook (HTTP 400); crm (SecretNotFound): correct the \
             DataProcessor or its Secret and annotate the Account with \
             erasure-retry.hosting.ecuni.se/<processor> set to the current time to send again, \
             or settle the request by hand and confirm with \
             erasure-confirmed.hosting.ecuni.se/<processor>"
        );
    }
}
