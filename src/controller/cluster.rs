//! Reading, stamping and deleting bound objects of any kind through one dynamic API, so the
//! account controller does not repeat itself per kind.

use kube::{
    Client,
    api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions},
};
use serde_json::json;

use super::context::{Error, ObjectVersion};
use crate::{
    api::{Condition, DELETE_AT_ANNOTATION},
    kinds::{BoundKind, KindVisitor, ResourceKind},
    retention::{BoundResource, ResourceRef, Schedule},
};

/// The field manager the operator writes with.
pub const MANAGER: &str = "retention-operator";

fn api(client: &Client, resource: &ResourceRef) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        &resource.namespace,
        &resource.kind.api_resource(),
    )
}

/// An object as the API server returned it just now: its facts and its version.
pub struct Fresh {
    /// What the rules read of it.
    pub bound: BoundResource,
    /// Its uid and resourceVersion, for a delete conditional on both.
    pub version: ObjectVersion,
}

/// The facts and version of an object returned by the API server.
fn fresh(kind: ResourceKind, object: &DynamicObject) -> Result<Fresh, Error> {
    struct Facts(serde_json::Value);
    impl KindVisitor for Facts {
        type Output = Result<BoundResource, serde_json::Error>;
        fn visit<K: BoundKind>(self) -> Self::Output {
            Ok(serde_json::from_value::<K>(self.0)?.facts())
        }
    }
    let bound = kind.visit(Facts(serde_json::to_value(object)?))?;
    let version = ObjectVersion::of(&object.metadata).ok_or(Error::MissingVersion)?;
    Ok(Fresh { bound, version })
}

/// What a conditional delete came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    /// This request deleted the object (or started its deletion).
    ByThisRequest,
    /// The object was already gone (404): deleted earlier, by anyone; not this request's.
    AlreadyGone,
}

/// Deletes exactly the version of the object the decision was made on: conditional on both
/// its uid (a newer object of the same name is never deleted in its place) and its
/// resourceVersion (an object changed since is not deleted on the old decision; the API server
/// answers 409, and the caller reads it again and decides again).
pub async fn delete(
    client: &Client,
    resource: &ResourceRef,
    version: &ObjectVersion,
) -> Result<Deleted, Error> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(version.uid.clone()),
            resource_version: Some(version.resource_version.clone()),
        }),
        ..DeleteParams::default()
    };
    match unless_gone(api(client, resource).delete(&resource.name, &params).await)? {
        true => Ok(Deleted::ByThisRequest),
        false => Ok(Deleted::AlreadyGone),
    }
}

/// The uid of the object as the API server holds it now, or `None` when it is gone. A list
/// selecting its name: the operator is granted list on bound kinds, not get.
pub async fn uid_of(client: &Client, resource: &ResourceRef) -> Result<Option<String>, Error> {
    let params = ListParams::default().fields(&format!("metadata.name={}", resource.name));
    let objects = api(client, resource).list(&params).await?;
    Ok(objects
        .items
        .into_iter()
        .find(|o| o.metadata.name.as_deref() == Some(resource.name.as_str()))
        .and_then(|o| o.metadata.uid))
}

/// Whether the API server holds any object, of any bound kind in any namespace, whose
/// `spec.accountRef` names `account` (readable or not): read page by page from the server,
/// never from a cache.
pub async fn anything_bound_to(client: &Client, account: &str) -> Result<bool, Error> {
    const PAGE: u32 = 500;
    for kind in ResourceKind::ALL {
        let api = Api::<DynamicObject>::all_with(client.clone(), &kind.api_resource());
        let mut params = ListParams::default().limit(PAGE);
        loop {
            let page = api.list(&params).await?;
            let claims = |object: &DynamicObject| {
                object
                    .data
                    .pointer("/spec/accountRef")
                    .and_then(|v| v.as_str())
                    == Some(account)
            };
            if page.items.iter().any(claims) {
                return Ok(true);
            }
            match page.metadata.continue_.filter(|token| !token.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
    }
    Ok(false)
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
/// annotation on hosted kinds, `status.expiresAt` and `expiryReason` on backups. The object as
/// written, or `None` when it is gone.
pub async fn stamp(
    client: &Client,
    resource: &ResourceRef,
    schedule: Option<&Schedule>,
) -> Result<Option<Fresh>, Error> {
    let api = api(client, resource);
    let at = schedule
        .and_then(|s| s.delete_at)
        .map(crate::clock::rfc3339);
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
    match result {
        Ok(object) => fresh(resource.kind, &object).map(Some),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(error) => Err(error.into()),
    }
}
