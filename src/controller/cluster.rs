//! Reading, stamping and deleting bound objects of any kind through one dynamic API, so the
//! account controller does not repeat itself per kind.

use chrono::{DateTime, SecondsFormat, Utc};
use kube::{
    Client,
    api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions},
};
use serde_json::json;

use super::Error;
use crate::{
    api::{
        Backup, Condition, DELETE_AT_ANNOTATION, DataRecord, Database, Domain, Mailbox, Website,
    },
    retention::{BoundResource, ResourceKind, ResourceRef, Schedule},
};

/// The field manager the operator writes with.
pub const MANAGER: &str = "retention-operator";

fn api_resource(kind: ResourceKind) -> ApiResource {
    match kind {
        ResourceKind::Website => ApiResource::erase::<Website>(&()),
        ResourceKind::Database => ApiResource::erase::<Database>(&()),
        ResourceKind::Mailbox => ApiResource::erase::<Mailbox>(&()),
        ResourceKind::Domain => ApiResource::erase::<Domain>(&()),
        ResourceKind::DataRecord => ApiResource::erase::<DataRecord>(&()),
        ResourceKind::Backup => ApiResource::erase::<Backup>(&()),
    }
}

fn api(client: &Client, resource: &ResourceRef) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        &resource.namespace,
        &api_resource(resource.kind),
    )
}

/// An object as read from the API server just now: its facts and its uid.
pub struct Fresh {
    /// What the rules read of it.
    pub bound: BoundResource,
    /// Its uid, for the delete precondition.
    pub uid: String,
}

/// Reads the object from the API server (not a cache); `None` when it is gone.
pub async fn fetch(client: &Client, resource: &ResourceRef) -> Result<Option<Fresh>, Error> {
    let Some(object) = api(client, resource).get_opt(&resource.name).await? else {
        return Ok(None);
    };
    let uid = object.metadata.uid.clone().unwrap_or_default();
    let value = serde_json::to_value(&object)?;
    let bound = match resource.kind {
        ResourceKind::Website => BoundResource::from(&serde_json::from_value::<Website>(value)?),
        ResourceKind::Database => BoundResource::from(&serde_json::from_value::<Database>(value)?),
        ResourceKind::Mailbox => BoundResource::from(&serde_json::from_value::<Mailbox>(value)?),
        ResourceKind::Domain => BoundResource::from(&serde_json::from_value::<Domain>(value)?),
        ResourceKind::DataRecord => {
            BoundResource::from(&serde_json::from_value::<DataRecord>(value)?)
        }
        ResourceKind::Backup => BoundResource::from(&serde_json::from_value::<Backup>(value)?),
    };
    Ok(Some(Fresh { bound, uid }))
}

/// Deletes the object with a uid precondition, so a newer object of the same name is never
/// deleted in its place. 404 counts as done.
pub async fn delete(client: &Client, resource: &ResourceRef, uid: &str) -> Result<(), Error> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    unless_gone(api(client, resource).delete(&resource.name, &params).await).map(drop)
}

/// The outcome of a write to an object that may have gone meanwhile: `Ok(false)` when it had
/// (404), which leaves nothing to do.
pub fn unless_gone<T>(result: Result<T, kube::Error>) -> Result<bool, Error> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(error) => Err(error.into()),
    }
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Replaces the conditions on the object's status (the operator is their only writer).
pub async fn set_conditions(
    client: &Client,
    resource: &ResourceRef,
    conditions: &[Condition],
) -> Result<(), Error> {
    let patch = json!({"status": {"conditions": conditions}});
    let result = api(client, resource)
        .patch_status(
            &resource.name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await;
    unless_gone(result).map(drop)
}

/// Stamps (or, with `None`, removes) the durable schedule on the object: the delete-at
/// annotation on hosted kinds, `status.expiresAt` and `expiryReason` on backups.
pub async fn stamp(
    client: &Client,
    resource: &ResourceRef,
    schedule: Option<&Schedule>,
) -> Result<(), Error> {
    let api = api(client, resource);
    let at = schedule.and_then(|s| s.delete_at).map(timestamp);
    let params = PatchParams::default();
    let result = if resource.kind == ResourceKind::Backup {
        let reason = schedule
            .filter(|s| s.delete_at.is_some())
            .map(|s| s.reason.clone());
        let patch = json!({"status": {"expiresAt": at, "expiryReason": reason}});
        api.patch_status(&resource.name, &params, &Patch::Merge(&patch))
            .await
    } else {
        let patch = json!({"metadata": {"annotations": {DELETE_AT_ANNOTATION: at}}});
        api.patch(&resource.name, &params, &Patch::Merge(&patch))
            .await
    };
    unless_gone(result).map(drop)
}
