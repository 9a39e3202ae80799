//! The controller's side of the erasure requests to processors (issue 5): delivering those due
//! through the [`Notifier`](crate::notifier::Notifier), and telling staff what changed.
//!
//! Which requests are owed and how an outcome changes their record is decided by
//! [`crate::notifier::ledger`]; this module does the I/O: it reads the processor's webhook and
//! its signing secret, sends, and publishes events. Secrets are read for each attempt and never
//! leave this module except inside the signature.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt, runtime::events::EventType};
use tracing::info;

use super::{Context, Error};
use crate::leader::Fenced;
use crate::{
    api::{Account, NotificationState, ProcessorNotification},
    notifier::{
        Endpoint, ErasedResource, ErasureRequest,
        ledger::{Ledger, manual_instruction, record_failure, record_outcome},
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

/// Sends every request the ledger says is due now and records each outcome. Fails only when
/// this replica may no longer lead.
pub async fn deliver_due(
    ctx: &Context,
    account: &Account,
    ledger: &mut Ledger,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let account_name = account.name_any();
    for &index in &ledger.due {
        let Some(entry) = ledger.entries.get_mut(index) else {
            continue;
        };
        let endpoint = match endpoint(ctx, &entry.name).await {
            Ok(endpoint) => endpoint,
            Err(Unsendable::NotLeader) => return Err(Fenced::NotLeader.into()),
            Err(Unsendable::Manual) => {
                // When staff were asked: a confirmation given before covers other requests.
                entry.requested_at.get_or_insert(now);
                entry.state = NotificationState::Manual;
                entry.next_attempt_at = None;
                entry.reason = Some(manual_instruction(&entry.name));
                continue;
            }
            Err(Unsendable::Failed(reason)) => {
                record_failure(entry, reason);
                continue;
            }
            Err(Unsendable::Retry(reason)) => {
                let outcome = crate::notifier::DeliveryOutcome::Retry {
                    retry_after: None,
                    reason,
                };
                record_outcome(entry, &outcome, now);
                continue;
            }
        };
        let Some(erasure_at) = entry.erasure_at else {
            record_failure(entry, "RecordIncomplete");
            continue;
        };
        let resources = entry
            .resources
            .iter()
            .map(|r| ErasedResource {
                kind: r.kind.clone(),
                namespace: r.namespace.clone(),
                name: r.name.clone(),
            })
            .collect();
        // The first attempt dates the request; retries repeat it unchanged.
        let requested_at = *entry.requested_at.get_or_insert(now);
        let request = ErasureRequest::new(
            account_name.clone(),
            account.spec.customer_ref.clone(),
            entry.name.clone(),
            resources,
            REQUEST_REASON,
            erasure_at,
            requested_at,
        );
        // A replica that may no longer lead sends nothing: the new leader sends it.
        if !ctx.fence.permits() {
            return Err(Fenced::NotLeader.into());
        }
        let outcome = ctx.notifier.deliver(&endpoint, &request, now).await;
        info!(
            account = %account_name,
            processor = %entry.name,
            attempt = entry.attempts + 1,
            outcome = outcome.reason(),
            "erasure request sent"
        );
        record_outcome(entry, &outcome, now);
    }
    Ok(())
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

/// Events for what changed in the ledger since the stored status: a request that now needs
/// staff, one the processor acknowledged or staff confirmed, one that failed.
pub async fn report_changes(
    ctx: &Context,
    account: &Account,
    stored: &[ProcessorNotification],
    entries: &[ProcessorNotification],
) {
    for entry in entries {
        let before = stored
            .iter()
            .find(|s| s.idempotency_key == entry.idempotency_key)
            .map(|s| s.state);
        if before == Some(entry.state) {
            continue;
        }
        let processor = &entry.name;
        let count = entry.resources.len();
        let (type_, reason, note) = match entry.state {
            NotificationState::Manual => (
                EventType::Warning,
                "ManualActionRequired",
                format!(
                    "{processor} has no webhook: send it the erasure request for {count} \
                     resources by hand, then confirm with the annotation {}{processor}",
                    crate::notifier::ledger::CONFIRMED_ANNOTATION_PREFIX
                ),
            ),
            NotificationState::Acknowledged => (
                EventType::Normal,
                "ErasureAcknowledged",
                format!("{processor} acknowledged the erasure of {count} resources"),
            ),
            NotificationState::Failed => (
                EventType::Warning,
                "ErasureRequestFailed",
                format!(
                    "the erasure request to {processor} failed ({}): correct the DataProcessor \
                     or its Secret and annotate the Account with {}{processor}, or settle it by \
                     hand",
                    entry.reason.as_deref().unwrap_or("unknown"),
                    crate::notifier::ledger::RETRY_ANNOTATION_PREFIX
                ),
            ),
            // Newly planned, or sent again on the staff's request: nothing to tell yet (each
            // attempt is logged where it is made).
            NotificationState::Pending | NotificationState::Notified => continue,
        };
        ctx.publish(account, None, type_, reason, &note).await;
    }
}
