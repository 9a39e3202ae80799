//! The controller's side of the erasure requests to processors: delivering those due
//! through the [`Notifier`](crate::notifier::Notifier) from a pool of their own ([`Deliveries`]),
//! never from a reconcile worker, and telling staff what changed.
//!
//! Which requests are owed, every change to their record and what staff are told about them
//! are decided by [`crate::notifier::ledger`]; this module does the I/O: it reads the
//! processor's webhook and its signing secret, sends, and publishes events. Secrets are read for
//! each attempt and never leave this module except inside the signature.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex, PoisonError},
};

use chrono::{DateTime, TimeDelta, Utc};
use futures::channel::mpsc;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, ResourceExt,
    runtime::{events::EventType, reflector::ObjectRef},
};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use super::{
    context::{Context, Error, spawn_cancellable},
    guarded::Guarded,
};
use crate::{
    api::{Account, NotificationState, ProcessorNotification},
    audit::{AuditAction, AuditRecord},
    leader::Fenced,
    notifier::{
        DeliveryOutcome, Endpoint, ErasedResource, ErasureRequest,
        breaker::{Admission, Breakers},
        ledger::{
            self, CONFIRMED_ANNOTATION_PREFIX, Ledger, RETRY_ANNOTATION_PREFIX, StaffInstruction,
            staff_instruction,
        },
    },
};

/// The reason given to the processor in every request.
const REQUEST_REASON: &str = "the customer's account was terminated; no legal basis remains for \
                              the data named (GDPR Art. 17 and 19)";

/// Why a request cannot be sent now.
enum Unsendable {
    /// The processor has no webhook (any more): staff must send it.
    Manual,
    /// Staff must fix something first (reason for the status); not retried blindly.
    Failed(&'static str),
    /// Reading the secret failed in a way that may pass (reason for the status).
    Retry(String),
    /// This replica may no longer lead.
    NotLeader,
}

/// Deliveries under way, off the reconcile workers: a slow or hung endpoint holds one of the
/// pool's slots (at most [`PER_PROCESSOR`] of them per processor), never a worker that deletes,
/// and a processor whose endpoint keeps failing to answer is left alone as a whole for a while
/// (its [circuit breaker](crate::notifier::breaker)). A finished delivery wakes its account,
/// whose next pass records the outcome. Outcomes live in memory only: after a restart an
/// unrecorded one is simply sent again, with the same idempotency key.
pub struct Deliveries {
    state: Mutex<Pool>,
    slots: Arc<Semaphore>,
    wake: mpsc::UnboundedSender<ObjectRef<Guarded<Account>>>,
}

/// Deliveries of the whole operator at once.
pub const SLOTS: usize = 16;
/// Deliveries to one processor at once.
pub const PER_PROCESSOR: usize = 4;
/// How long a finished outcome waits for its account's next pass before it is forgotten.
const KEEP_FINISHED: TimeDelta = TimeDelta::hours(1);

#[derive(Default)]
struct Pool {
    /// Idempotency key → processor, of the deliveries under way.
    in_flight: HashMap<String, String>,
    /// Deliveries under way per processor.
    per_processor: HashMap<String, usize>,
    /// Finished deliveries not yet recorded, by idempotency key.
    finished: HashMap<String, Finished>,
    /// Accounts waiting for a slot of a processor, woken when one frees.
    waiting: HashMap<String, BTreeSet<String>>,
    breakers: Breakers,
}

/// The outcome of a finished delivery and when it ended.
struct Finished {
    outcome: DeliveryOutcome,
    at: DateTime<Utc>,
}

/// Whether a delivery may start now.
enum Start {
    /// It may.
    Go,
    /// It is already under way.
    InFlight,
    /// The processor's slots are all taken; the account is woken when one frees.
    Busy,
    /// The processor's breaker is open until then.
    Open(DateTime<Utc>),
}

impl Deliveries {
    /// An empty pool that wakes accounts through `wake`.
    pub fn new(wake: mpsc::UnboundedSender<ObjectRef<Guarded<Account>>>) -> Self {
        Self {
            state: Mutex::new(Pool::default()),
            slots: Arc::new(Semaphore::new(SLOTS)),
            wake,
        }
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The outcome of the finished delivery of `key`, once.
    fn take_finished(&self, key: &str, now: DateTime<Utc>) -> Option<Finished> {
        let mut pool = self.pool();
        pool.finished.retain(|_, f| now - f.at < KEEP_FINISHED);
        pool.finished.remove(key)
    }

    /// Whether the delivery of `key` to `processor` for `account` may start; when it may, it
    /// is counted as under way from here on (see [`Deliveries::finish`]).
    fn start(&self, key: &str, processor: &str, account: &str, now: DateTime<Utc>) -> Start {
        let mut pool = self.pool();
        if pool.in_flight.contains_key(key) {
            return Start::InFlight;
        }
        let running = pool.per_processor.get(processor).copied().unwrap_or(0);
        let admitted = match pool.breakers.admission(processor, now) {
            Admission::Open(until) => return Start::Open(until),
            Admission::OneAtATime => running == 0,
            Admission::Closed => running < PER_PROCESSOR,
        };
        if !admitted {
            pool.waiting
                .entry(processor.to_owned())
                .or_default()
                .insert(account.to_owned());
            return Start::Busy;
        }
        pool.in_flight.insert(key.to_owned(), processor.to_owned());
        *pool.per_processor.entry(processor.to_owned()).or_default() += 1;
        Start::Go
    }

    /// Ends the delivery of `key` (with its outcome, or `None` when it was not made) and wakes
    /// its account and every account waiting for a slot of the processor.
    fn finish(&self, key: &str, account: &str, finished: Option<Finished>) {
        let woken = {
            let mut pool = self.pool();
            let Some(processor) = pool.in_flight.remove(key) else {
                return;
            };
            if let Some(count) = pool.per_processor.get_mut(&processor) {
                *count = count.saturating_sub(1);
            }
            if let Some(finished) = finished {
                let opened = pool
                    .breakers
                    .record(&processor, &finished.outcome, finished.at);
                if let Some(until) = opened {
                    warn!(
                        %processor,
                        until = %crate::clock::rfc3339(until),
                        reason = finished.outcome.reason(),
                        "the processor's endpoint keeps failing: no requests are sent to it until then"
                    );
                }
                pool.finished.insert(key.to_owned(), finished);
            }
            let mut woken = pool.waiting.remove(&processor).unwrap_or_default();
            woken.insert(account.to_owned());
            woken
        };
        for account in woken {
            // Fails only when the controller has stopped.
            let _ = self.wake.unbounded_send(ObjectRef::new(&account));
        }
    }
}

/// Starts the delivery of every request the ledger says is due now, off this worker, and
/// records the outcome of each that finished since the last pass. Fails only when this replica
/// may no longer lead.
pub async fn deliver_due(
    ctx: &Arc<Context>,
    account: &Account,
    ledger: &mut Ledger,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let account_name = account.name_any();
    for &index in &ledger.due {
        if let Some(entry) = ledger.entries.get_mut(index) {
            deliver_one(ctx, account, &account_name, entry, now).await?;
        }
    }
    Ok(())
}

/// One due request: records its finished delivery, or starts one when it may go now, or
/// records why it cannot.
async fn deliver_one(
    ctx: &Arc<Context>,
    account: &Account,
    account_name: &str,
    entry: &mut ProcessorNotification,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let Some(key) = entry.idempotency_key.clone() else {
        ledger::mark_unsendable(entry, RECORD_INCOMPLETE);
        return Ok(());
    };
    if let Some(done) = ctx.deliveries.take_finished(&key, now) {
        info!(
            account = %account_name,
            processor = %entry.name,
            attempt = entry.attempts + 1,
            outcome = done.outcome.reason(),
            "erasure request sent"
        );
        ledger::record_outcome(entry, &done.outcome, done.at);
        return Ok(());
    }
    let Some(erasure_at) = entry.erasure_at else {
        ledger::mark_unsendable(entry, RECORD_INCOMPLETE);
        return Ok(());
    };
    // Whether it may go is decided before anything is read for it: nothing is read for a
    // request under way, or for a processor whose breaker is open.
    match ctx.deliveries.start(&key, &entry.name, account_name, now) {
        Start::Go => {}
        Start::InFlight | Start::Busy => return Ok(()),
        Start::Open(until) => {
            ledger::defer(entry, until, PROCESSOR_UNREACHABLE);
            return Ok(());
        }
    }
    let endpoint = match endpoint(ctx, &entry.name).await {
        Ok(endpoint) => endpoint,
        Err(unsendable) => {
            // Not sent after all: the slot is free again.
            ctx.deliveries.finish(&key, account_name, None);
            return record_unsendable(entry, unsendable, now);
        }
    };
    let request = erasure_request(account, account_name, entry, erasure_at, now);
    spawn_cancellable(
        &ctx.cancel,
        deliver(ctx.clone(), account_name.to_owned(), key, endpoint, request),
    );
    Ok(())
}

/// Why a request's record cannot be sent as it is: it lacks its key or erasure time.
const RECORD_INCOMPLETE: &str = "RecordIncomplete";

/// Records why a due request cannot be sent now. Fails only when this replica may no longer
/// lead.
fn record_unsendable(
    entry: &mut ProcessorNotification,
    unsendable: Unsendable,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    match unsendable {
        Unsendable::NotLeader => return Err(Fenced::NotLeader.into()),
        Unsendable::Manual => ledger::mark_manual(entry, now),
        Unsendable::Failed(reason) => ledger::mark_unsendable(entry, reason),
        // Counted as an attempt, so it backs off like a delivery that failed the same way.
        Unsendable::Retry(reason) => ledger::retry_later(entry, &reason, None, now),
    }
    Ok(())
}

/// The request for `entry` as it is sent now.
fn erasure_request(
    account: &Account,
    account_name: &str,
    entry: &mut ProcessorNotification,
    erasure_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> ErasureRequest {
    let resources = entry
        .resources
        .iter()
        .map(|r| ErasedResource {
            kind: r.kind.clone(),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
        })
        .collect();
    let requested_at = ledger::start_attempt(entry, now);
    ErasureRequest::new(
        account_name,
        account.spec.customer_ref.clone(),
        entry.name.clone(),
        resources,
        REQUEST_REASON,
        erasure_at,
        requested_at,
    )
}

/// Why a due request waits without an attempt: its processor's endpoint kept failing to answer.
pub const PROCESSOR_UNREACHABLE: &str = "ProcessorUnreachable";

/// One delivery, in the pool: waits for a slot, then sends if this replica still leads.
async fn deliver(
    ctx: Arc<Context>,
    account: String,
    key: String,
    endpoint: Endpoint,
    request: ErasureRequest,
) {
    let Ok(_slot) = ctx.deliveries.slots.clone().acquire_owned().await else {
        return ctx.deliveries.finish(&key, &account, None);
    };
    // A replica that may no longer lead sends nothing: the new leader sends it.
    if !ctx.fence.permits() {
        return ctx.deliveries.finish(&key, &account, None);
    }
    let outcome = ctx
        .notifier
        .deliver(&endpoint, &request, ctx.clock.now())
        .await;
    let finished = Finished {
        outcome,
        at: ctx.clock.now(),
    };
    ctx.deliveries.finish(&key, &account, Some(finished));
}

/// The processor's webhook and signing secret, read now (a rotated secret takes effect at the
/// next attempt).
async fn endpoint(ctx: &Context, processor: &str) -> Result<Endpoint, Unsendable> {
    let Some(spec) = ctx.stores.processor(processor) else {
        return Err(Unsendable::Failed("DataProcessorNotFound"));
    };
    let Some(webhook) = &spec.erasure.webhook else {
        return Err(Unsendable::Manual);
    };
    let reference = &webhook.secret_ref;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &reference.namespace);
    let secret = match ctx.act(secrets.get_opt(&reference.name)).await {
        Ok(Some(secret)) => secret,
        Ok(None) => return Err(Unsendable::Failed("SecretNotFound")),
        Err(error) if error.is_status(403) => {
            return Err(Unsendable::Failed("SecretForbidden"));
        }
        Err(error) if error.not_leader() => return Err(Unsendable::NotLeader),
        Err(error) => {
            return Err(Unsendable::Retry(format!(
                "SecretUnreadable {}",
                error.reason()
            )));
        }
    };
    let Some(value) = secret.data.as_ref().and_then(|d| d.get(&reference.key)) else {
        return Err(Unsendable::Failed("SecretKeyMissing"));
    };
    Ok(Endpoint {
        url: webhook.url.clone(),
        secret: value.0.clone(),
        ca_bundle_pem: webhook
            .ca_bundle
            .as_ref()
            .map(|pem| pem.as_bytes().to_vec()),
    })
}

/// Events and audit records for what changed in the ledger since the stored status: a request
/// that now needs staff, one the processor acknowledged or staff confirmed, one that failed,
/// one staff had sent again, one withdrawn. Told again when the status write after it failed.
pub async fn report_changes(
    ctx: &Context,
    account: &Account,
    stored: &[ProcessorNotification],
    entries: &[ProcessorNotification],
    now: DateTime<Utc>,
) {
    // One event per kind of news, however many processors it concerns.
    let mut news: Vec<(EventType, &str, Vec<String>)> = Vec::new();
    for entry in entries {
        let before = stored
            .iter()
            .find(|s| s.idempotency_key == entry.idempotency_key)
            .map(|s| s.state);
        if before == Some(entry.state) {
            continue;
        }
        if let Some(action) = audit_action(before, entry.state) {
            audit_request(action, account, entry, now);
        }
        let processor = &entry.name;
        let count = entry.resources.len();
        let (type_, reason, note) = match entry.state {
            NotificationState::Manual => (
                EventType::Warning,
                "ManualActionRequired",
                staff_instruction(StaffInstruction::ManualEvent {
                    processor,
                    resources: count,
                }),
            ),
            NotificationState::Acknowledged => (
                EventType::Normal,
                "ErasureAcknowledged",
                format!("{processor} acknowledged the erasure of {count} resources"),
            ),
            NotificationState::Failed => (
                EventType::Warning,
                "ErasureRequestFailed",
                staff_instruction(StaffInstruction::FailedEvent {
                    processor,
                    reason: entry.reason.as_deref(),
                }),
            ),
            // Newly planned, or sent again on the staff's request: nothing to tell yet (each
            // attempt is logged where it is made).
            NotificationState::Pending | NotificationState::Notified => continue,
        };
        match news.iter_mut().find(|(_, r, _)| *r == reason) {
            Some((_, _, notes)) => notes.push(note),
            None => news.push((type_, reason, vec![note])),
        }
    }
    for (type_, reason, notes) in news {
        let note = super::events::truncate(notes.join("; "));
        ctx.publish(account, None, type_, reason, &note).await;
    }
    for withdrawn in stored.iter().filter(|s| {
        !entries
            .iter()
            .any(|e| e.idempotency_key == s.idempotency_key)
    }) {
        audit_request(
            AuditAction::ErasureRequestWithdrawn,
            account,
            withdrawn,
            now,
        );
    }
}

/// The audit action of a request's change of state: only Manual and Failed requests can be
/// settled by staff (`ledger::confirm`), and only Failed ones sent again on their request.
fn audit_action(before: Option<NotificationState>, now: NotificationState) -> Option<AuditAction> {
    use NotificationState::{Acknowledged, Failed, Manual, Notified, Pending};
    match (before, now) {
        (Some(Manual | Failed), Acknowledged) => Some(AuditAction::ErasureRequestConfirmed),
        (_, Acknowledged) => Some(AuditAction::ErasureRequestAcknowledged),
        (_, Failed) => Some(AuditAction::ErasureRequestFailed),
        (_, Manual) => Some(AuditAction::ErasureRequestManual),
        (Some(Failed), Pending) => Some(AuditAction::ErasureRequestRetried),
        (_, Pending | Notified) => None,
    }
}

/// The audit record of an erasure request: to the processor, about the account's data erased
/// at the request's time.
fn audit_request(
    action: AuditAction,
    account: &Account,
    entry: &ProcessorNotification,
    now: DateTime<Utc>,
) {
    let count = entry.resources.len();
    let detail = match (action, entry.reason.as_deref()) {
        (AuditAction::ErasureRequestFailed, Some(reason)) => {
            format!("{count} resources; {reason}")
        }
        (AuditAction::ErasureRequestConfirmed, _) => format!(
            "{count} resources; confirmed by staff with annotation {CONFIRMED_ANNOTATION_PREFIX}{}",
            entry.name
        ),
        (AuditAction::ErasureRequestRetried, _) => format!(
            "{count} resources; sent again at the staff's request (annotation {RETRY_ANNOTATION_PREFIX}{})",
            entry.name
        ),
        _ => format!("{count} resources"),
    };
    AuditRecord::new(action, now, "DataProcessor", None, &entry.name)
        .account(&account.name_any())
        .delete_at(entry.erasure_at)
        .idempotency_key(entry.idempotency_key.as_deref())
        .detail(detail)
        .emit();
}
