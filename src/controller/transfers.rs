//! The `ThirdCountryTransfer` condition on each DataProcessor (GDPR Chapter V): True, with a
//! Warning event `ThirdCountryTransfer` when it turns so, while the processor is established
//! outside the EU/EEA and names no `transferMechanism`; False otherwise.
//!
//! The processors' watch hands over the name of every processor whose spec changed; once the
//! caches have synced every cached processor is looked at once. The condition is computed by
//! [`processor_conditions`] (a pure function) and written only when it differs from what is
//! stored; the stored condition is the durable record, so a restarted operator does not warn
//! again. The Accounts whose data such a processor holds show it on their own condition
//! (`crate::status`), from the plan.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        events::EventType,
        reflector::{ObjectRef, Store},
    },
};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::{
    context::{Context, Error},
    guarded::Guarded,
};
use crate::{
    api::{Condition, ConditionStatus, DataProcessor, DataProcessorSpec, is_eea},
    retention::transfers::THIRD_COUNTRY_TRANSFER,
    status::set_condition,
};

/// Reason of `ThirdCountryTransfer=True`, and of the Warning event.
pub const NO_TRANSFER_MECHANISM: &str = "NoTransferMechanism";

/// How soon a failed look is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The processor's conditions with `ThirdCountryTransfer` brought up to date (`stored` as it
/// is when nothing changed, so a steady state writes nothing).
pub fn processor_conditions(
    spec: &DataProcessorSpec,
    stored: &[Condition],
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> Vec<Condition> {
    let (status, reason, message) = match spec.transfer_mechanism {
        _ if is_eea(&spec.country) => (
            ConditionStatus::False,
            "WithinEEA",
            format!("established in {}, within the EU/EEA", spec.country),
        ),
        Some(mechanism) => (
            ConditionStatus::False,
            "TransferMechanismDeclared",
            format!(
                "established in {}, outside the EU/EEA; transfers rely on {}",
                spec.country,
                mechanism.as_str()
            ),
        ),
        None => (
            ConditionStatus::True,
            NO_TRANSFER_MECHANISM,
            format!(
                "{} is established in {}, outside the EU/EEA, and no transferMechanism is \
                 declared: personal data sent to it is a third-country transfer without a \
                 safeguard (GDPR Chapter V)",
                spec.legal_name, spec.country
            ),
        ),
    };
    let mut conditions = stored.to_vec();
    set_condition(
        &mut conditions,
        THIRD_COUNTRY_TRANSFER,
        status,
        reason,
        &message,
        generation,
        now,
    );
    conditions
}

/// Whether the conditions say the processor is flagged.
fn flagged(conditions: &[Condition]) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == THIRD_COUNTRY_TRANSFER && c.status == ConditionStatus::True)
}

/// Looks at every cached processor once the caches have synced, then at each processor the
/// watch hands over, until the watch ends. A look that fails is tried again after
/// `RETRY_AFTER`.
pub async fn report(
    ctx: Arc<Context>,
    processors: Store<Guarded<DataProcessor>>,
    mut ready: watch::Receiver<bool>,
    mut changed: mpsc::UnboundedReceiver<String>,
) {
    if ready.wait_for(|ready| *ready).await.is_err() {
        return;
    }
    let mut failed: BTreeSet<String> = BTreeSet::new();
    let everything: Vec<String> = processors.state().iter().map(|p| p.name_any()).collect();
    for name in everything {
        look_or_keep(&ctx, &processors, name, &mut failed).await;
    }
    loop {
        let name = tokio::select! {
            next = changed.recv() => match next {
                Some(name) => name,
                None => return,
            },
            () = tokio::time::sleep(RETRY_AFTER), if !failed.is_empty() => {
                for name in std::mem::take(&mut failed) {
                    look_or_keep(&ctx, &processors, name, &mut failed).await;
                }
                continue;
            }
        };
        look_or_keep(&ctx, &processors, name, &mut failed).await;
    }
}

async fn look_or_keep(
    ctx: &Context,
    processors: &Store<Guarded<DataProcessor>>,
    name: String,
    failed: &mut BTreeSet<String>,
) {
    if let Err(error) = look_at(ctx, processors, &name).await {
        ctx.metrics.error("transfers", error.reason());
        warn!(processor = %name, reason = error.reason(), %error, "cannot write the ThirdCountryTransfer condition; will retry");
        failed.insert(name);
    }
}

/// The conditions stored on the processor.
fn stored_conditions(processor: &DataProcessor) -> Vec<Condition> {
    processor
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default()
}

/// Writes the processor's condition when it changed, and warns when it turned True. A
/// processor that is gone or cannot be read is left alone.
async fn look_at(
    ctx: &Context,
    processors: &Store<Guarded<DataProcessor>>,
    name: &str,
) -> Result<(), Error> {
    // The cache first: most looks find the condition current and send no request.
    let Some(cached) = processors.get(&ObjectRef::new(name)) else {
        return Ok(());
    };
    let Ok(processor) = &cached.0 else {
        return Ok(());
    };
    let stored = stored_conditions(processor);
    let now = ctx.clock.now();
    if processor_conditions(&processor.spec, &stored, processor.metadata.generation, now) == stored
    {
        return Ok(());
    }
    // The cache may lag behind this reporter's own last write: the decision is made on the
    // object as stored now, and written over that version only, so that each change is written,
    // and warned of, once.
    let api: Api<Guarded<DataProcessor>> = Api::all(ctx.client.clone());
    let Some(fresh) = ctx.act(api.get_opt(name)).await? else {
        return Ok(());
    };
    let Ok(processor) = &fresh.0 else {
        return Ok(());
    };
    let stored = stored_conditions(processor);
    let conditions =
        processor_conditions(&processor.spec, &stored, processor.metadata.generation, now);
    if conditions == stored {
        return Ok(());
    }
    let patch = json!({
        "metadata": {"resourceVersion": processor.metadata.resource_version},
        "status": {"conditions": conditions},
    });
    match ctx
        .act(api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)))
        .await
    {
        Ok(_) => {}
        // Gone meanwhile, or changed: the change's watch event brings it back here.
        Err(error) if error.is_status(404) || error.is_status(409) => return Ok(()),
        Err(error) => return Err(error),
    }
    if flagged(&conditions) && !flagged(&stored) {
        warn_of_transfer(ctx, name, processor).await;
    }
    Ok(())
}

/// The Warning event `ThirdCountryTransfer` on the processor.
async fn warn_of_transfer(ctx: &Context, name: &str, processor: &DataProcessor) {
    let spec = &processor.spec;
    info!(processor = %name, country = %spec.country, "third-country transfer without a transfer mechanism");
    let note = format!(
        "{} ({}) is established outside the EU/EEA and declares no transferMechanism: personal \
         data sent to it is a third-country transfer without a safeguard (GDPR Chapter V); \
         declare the mechanism (AdequacyDecision, StandardContractualClauses or \
         BindingCorporateRules) or end the transfer",
        spec.legal_name, spec.country
    );
    ctx.publish_regarding(
        &processor.object_ref(&()),
        None,
        EventType::Warning,
        THIRD_COUNTRY_TRANSFER,
        &note,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ErasureChannel, TransferMechanism};

    fn spec(country: &str, mechanism: Option<TransferMechanism>) -> DataProcessorSpec {
        DataProcessorSpec {
            legal_name: "Example Inc.".to_owned(),
            country: country.to_owned(),
            purposes: Vec::new(),
            transfer_mechanism: mechanism,
            erasure: ErasureChannel::default(),
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn only(conditions: &[Condition]) -> (&ConditionStatus, &str) {
        let c = conditions
            .iter()
            .find(|c| c.type_ == THIRD_COUNTRY_TRANSFER)
            .unwrap();
        (&c.status, c.reason.as_str())
    }

    #[test]
    fn the_condition_says_why_a_processor_is_or_is_not_flagged() {
        let now = at("2026-11-23T00:00:00Z");
        let marked = processor_conditions(&spec("US", None), &[], Some(1), now);
        assert_eq!(
            only(&marked),
            (&ConditionStatus::True, NO_TRANSFER_MECHANISM)
        );
        assert!(marked[0].message.contains("Example Inc."));
        assert!(marked[0].message.contains("US"));
        assert!(flagged(&marked));
        let within = processor_conditions(&spec("SE", None), &[], Some(1), now);
        assert_eq!(only(&within), (&ConditionStatus::False, "WithinEEA"));
        let declared = processor_conditions(
            &spec("US", Some(TransferMechanism::BindingCorporateRules)),
            &marked,
            Some(2),
            at("2026-11-24T00:00:00Z"),
        );
        assert_eq!(
            only(&declared),
            (&ConditionStatus::False, "TransferMechanismDeclared")
        );
        assert_eq!(declared[0].last_transition_time, at("2026-11-24T00:00:00Z"));
        assert!(!flagged(&declared));
    }

    #[test]
    fn a_current_condition_is_left_as_stored() {
        let stored =
            processor_conditions(&spec("US", None), &[], Some(1), at("2026-11-01T00:00:00Z"));
        let again = processor_conditions(
            &spec("US", None),
            &stored,
            Some(1),
            at("2026-11-23T00:00:00Z"),
        );
        assert_eq!(again, stored);
    }
}
