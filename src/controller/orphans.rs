//! Reports the objects the account controller cannot plan (docs/design.md §4, invariant 5):
//! objects whose `accountRef` names no existing Account, and objects that cannot be read.
//! Neither is ever deleted.
//!
//! The watches of the bound kinds hand every such object over as a [`Suspect`] the moment they
//! see it. An unbound object gets the condition `Bound=False` (reason `AccountNotFound`) on its
//! status and a Warning event `Unbound`; the condition is the durable record, so a restarted
//! operator does not report it again, and the account controller turns it to `Bound=True` once
//! the Account exists. A malformed object gets a Warning event `MalformedResource`, once per
//! version of it per operator run (its status cannot safely be written); the Account it claims
//! also shows it in the condition `MalformedResources`.

use std::{collections::HashSet, sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::{
    Api, Resource, ResourceExt,
    runtime::{
        events::EventType,
        reflector::{ObjectRef, Store},
    },
};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::{
    cluster,
    compact::Body,
    context::{Context, Error},
    guarded::Guarded,
};
use crate::status::set_condition;
use crate::{
    api::{API_VERSION, Account, Condition, ConditionStatus},
    retention::ResourceRef,
};

/// Condition type on a bound object: whether its Account exists.
pub const BOUND: &str = "Bound";

/// Malformed object versions remembered as reported; beyond this the memory is cleared (a
/// repeated event is better than unbounded growth).
const MAX_REMEMBERED: usize = 10_000;

/// Whether the conditions say the object was found unbound.
pub fn is_marked_unbound(conditions: &[Condition]) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == BOUND && c.status == ConditionStatus::False)
}

/// An object to look at: its Account is not (yet) in the cache, or it cannot be read.
#[derive(Clone, Debug)]
pub struct Suspect {
    resource: ResourceRef,
    uid: String,
    resource_version: String,
    /// The Account it claims, if that can be read.
    account: Option<String>,
    /// Where reading it failed; `None` when it is readable.
    malformed_field: Option<String>,
    /// Its status conditions (readable objects only).
    conditions: Vec<Condition>,
}

impl Suspect {
    /// A cached object (`body`, `uid`, `resource_version`) as a suspect, or `None` when it is
    /// readable and its Account is cached.
    pub fn of(
        body: &Body,
        uid: &str,
        resource_version: &str,
        accounts: &Store<Guarded<Account>>,
    ) -> Option<Self> {
        let (malformed_field, conditions) = match body {
            Body::Readable { facts, conditions } => {
                if accounts.get(&ObjectRef::new(&facts.account)).is_some() {
                    return None;
                }
                (None, conditions.clone())
            }
            Body::Malformed { field, .. } => (Some(field.clone()), Vec::new()),
        };
        Some(Self {
            resource: body.reference().clone(),
            uid: uid.to_owned(),
            resource_version: resource_version.to_owned(),
            account: body.claimed_account().map(str::to_owned),
            malformed_field,
            conditions,
        })
    }
}

/// Looks at every suspect once the caches have synced (before, every Account would look
/// missing), until the watches end. At that moment every cached object is looked at once;
/// after it, the watches hand over each suspect as they see it. A look that fails (the API
/// server refused a write) is tried again after `RETRY_AFTER`, so no report is lost.
pub async fn report(
    ctx: Arc<Context>,
    accounts: Store<Guarded<Account>>,
    mut ready: watch::Receiver<bool>,
    mut suspects: mpsc::UnboundedReceiver<Suspect>,
) {
    if ready.wait_for(|ready| *ready).await.is_err() {
        return;
    }
    let mut reported: HashSet<(String, String)> = HashSet::new();
    let mut failed: Vec<Suspect> = Vec::new();
    for suspect in ctx.stores.suspects(&accounts) {
        look_or_keep(&ctx, &accounts, &mut reported, suspect, &mut failed).await;
    }
    loop {
        let suspect = tokio::select! {
            next = suspects.recv() => match next {
                Some(suspect) => suspect,
                None => return,
            },
            () = tokio::time::sleep(RETRY_AFTER), if !failed.is_empty() => {
                for suspect in std::mem::take(&mut failed) {
                    look_or_keep(&ctx, &accounts, &mut reported, suspect, &mut failed).await;
                }
                continue;
            }
        };
        look_or_keep(&ctx, &accounts, &mut reported, suspect, &mut failed).await;
    }
}

/// How soon a failed look is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

async fn look_or_keep(
    ctx: &Context,
    accounts: &Store<Guarded<Account>>,
    reported: &mut HashSet<(String, String)>,
    suspect: Suspect,
    failed: &mut Vec<Suspect>,
) {
    if let Err(error) = look_at(ctx, accounts, reported, &suspect).await {
        ctx.metrics.error("orphans", error.reason());
        warn!(resource = %suspect.resource, reason = error.reason(), %error, "cannot report an unplannable object; will retry");
        failed.push(suspect);
    }
}

async fn look_at(
    ctx: &Context,
    accounts: &Store<Guarded<Account>>,
    reported: &mut HashSet<(String, String)>,
    suspect: &Suspect,
) -> Result<(), Error> {
    let account = match &suspect.account {
        Some(name) => match accounts.get(&ObjectRef::new(name)) {
            Some(cached) => Some(cached),
            // The Account's watch event may simply lag behind the object's: ask the API.
            None => ctx
                .act(Api::<Guarded<Account>>::all(ctx.client.clone()).get_opt(name))
                .await?
                .map(Arc::new),
        },
        None => None,
    };
    match (&suspect.malformed_field, account) {
        (Some(field), account) => {
            let key = (suspect.uid.clone(), suspect.resource_version.clone());
            if reported.contains(&key) {
                return Ok(());
            }
            if reported.len() >= MAX_REMEMBERED {
                reported.clear();
            }
            reported.insert(key);
            info!(resource = %suspect.resource, field, "malformed object: never deleted");
            let note = format!(
                "{} cannot be read at {field} (it does not match this operator's schema): it is \
                 never deleted, and its account's erasure cannot complete until it is corrected \
                 or removed",
                suspect.resource
            );
            match account {
                Some(account) => {
                    ctx.publish_regarding(
                        &account.object_ref(&()),
                        Some(&suspect.resource),
                        EventType::Warning,
                        "MalformedResource",
                        &note,
                    )
                    .await;
                }
                None => publish_on_object(ctx, suspect, "MalformedResource", &note).await,
            }
        }
        (None, Some(_)) => {}
        (None, None) => {
            if is_marked_unbound(&suspect.conditions) {
                return Ok(());
            }
            let account = suspect.account.as_deref().unwrap_or_default();
            let message = format!(
                "Account {account:?} does not exist: this resource is never deleted while it is \
                 unbound"
            );
            let mut conditions = suspect.conditions.clone();
            set_condition(
                &mut conditions,
                BOUND,
                ConditionStatus::False,
                "AccountNotFound",
                &message,
                None,
                ctx.clock.now(),
            );
            ctx.act(cluster::set_conditions(
                &ctx.client,
                &suspect.resource,
                &conditions,
            ))
            .await?;
            info!(resource = %suspect.resource, "unbound object: never deleted");
            publish_on_object(ctx, suspect, "Unbound", &message).await;
        }
    }
    Ok(())
}

/// A Warning event on the bound object itself (`kubectl describe` shows it there).
async fn publish_on_object(ctx: &Context, suspect: &Suspect, reason: &str, note: &str) {
    let regarding = ObjectReference {
        api_version: Some(API_VERSION.to_owned()),
        kind: Some(suspect.resource.kind.as_str().to_owned()),
        namespace: Some(suspect.resource.namespace.clone()),
        name: Some(suspect.resource.name.clone()),
        uid: Some(suspect.uid.clone()).filter(|uid| !uid.is_empty()),
        resource_version: Some(suspect.resource_version.clone()),
        ..ObjectReference::default()
    };
    ctx.publish_regarding(&regarding, None, EventType::Warning, reason, note)
        .await;
}

/// The account controller's part: objects marked unbound while their Account did not exist
/// are marked bound again.
pub async fn mark_bound(
    ctx: &Context,
    account: &Account,
    marked: &[(ResourceRef, Vec<Condition>)],
) -> Result<(), Error> {
    for (resource, conditions) in marked {
        let mut conditions = conditions.clone();
        set_condition(
            &mut conditions,
            BOUND,
            ConditionStatus::True,
            "AccountFound",
            &format!("bound to Account {:?}", account.name_any()),
            None,
            ctx.clock.now(),
        );
        ctx.act(cluster::set_conditions(&ctx.client, resource, &conditions))
            .await?;
    }
    Ok(())
}
