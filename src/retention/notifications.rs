//! Erasure notifications to data processors (GDPR Art. 19): who is told, about what, and when.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{facts::ResourceRef, plan::ResourcePlan};
use crate::api::{DataProcessorSpec, ErasureDelivery};

/// One erasure request to one processor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationPlan {
    /// Name of the DataProcessor.
    pub processor: String,
    /// When the request is sent: when the data it names is erased.
    pub at: DateTime<Utc>,
    /// How the request reaches the processor.
    pub delivery: NotificationDelivery,
    /// The erased resources the processor also held.
    pub resources: Vec<ResourceRef>,
}

/// How an erasure request reaches its processor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum NotificationDelivery {
    /// Signed POST to the processor's webhook.
    Webhook,
    /// Staff send it; the operator raises ManualActionRequired.
    Manual,
    /// No DataProcessor of that name exists: staff must create it or fix the reference.
    UnknownProcessor,
}

/// One request per processor and erasure time, naming every resource erased then.
///
/// Only scheduled erasures notify: data kept indefinitely (a live account, a hold without end)
/// stays with the processor too.
pub fn notifications(
    resources: &[ResourcePlan],
    processors: &BTreeMap<String, DataProcessorSpec>,
) -> Vec<NotificationPlan> {
    let mut batches: BTreeMap<(DateTime<Utc>, &str), Vec<ResourceRef>> = BTreeMap::new();
    for plan in resources {
        let Some(at) = plan.schedule.delete_at else {
            continue;
        };
        for processor in &plan.processors {
            batches
                .entry((at, processor.as_str()))
                .or_default()
                .push(plan.resource.clone());
        }
    }
    batches
        .into_iter()
        .map(|((at, processor), mut resources)| {
            resources.sort();
            let delivery = match processors.get(processor).map(DataProcessorSpec::delivery) {
                Some(ErasureDelivery::Webhook) => NotificationDelivery::Webhook,
                Some(ErasureDelivery::Manual) => NotificationDelivery::Manual,
                None => NotificationDelivery::UnknownProcessor,
            };
            NotificationPlan {
                processor: processor.to_owned(),
                at,
                delivery,
                resources,
            }
        })
        .collect()
}
