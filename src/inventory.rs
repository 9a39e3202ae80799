//! `retention-operator inventory ACCOUNT`: everything stored about one account, with its
//! schedule (the customer's right of access, GDPR Art. 15).
//!
//! [`collect`] reads the Account, its RetentionPolicy, the DataProcessors its objects name and
//! every object bound to it from the API server into a one-account [`Inventory`]; the caller
//! plans it with the same engine as `plan` and the operator, and renders it with
//! [`crate::report`] ([`table`] adds which processors hold a copy). A one-off command, so it
//! LISTs (paginated) instead of watching. Nothing is logged: the output holds only what the
//! objects themselves hold, for the customer's own request.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
};

use futures::future::BoxFuture;
use kube::{
    Client, Resource,
    api::{Api, ApiResource, DynamicObject, ListParams},
};
use serde::de::DeserializeOwned;

use crate::{
    api::{Account, DataProcessor, ErasureReceipt, RECEIPT_ACCOUNT_LABEL, RetentionPolicy},
    kinds::{BoundKind, KindVisitor, ResourceKind},
    report,
    retention::{BoundResource, Inventory, Plan, brake::BrakeState},
};

/// Objects per LIST page.
const PAGE: u32 = 500;

/// Why an account's inventory cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The name cannot be an Account's (bad input).
    #[error(
        "{0:?} is not a valid Account name (lowercase letters, digits, '-' and '.', at most 253)"
    )]
    InvalidName(String),
    /// No Account of that name exists (bad input).
    #[error("Account {0:?} does not exist")]
    AccountNotFound(String),
    /// An object of the account does not match its kind's schema. Only the object and the
    /// field are named, never the value.
    #[error("{object} is malformed at `{path}`; fix it and ask again")]
    Malformed {
        /// Kind, namespace and name.
        object: String,
        /// Where in the object deserialization failed.
        path: String,
    },
    /// The API server could not be reached or refused a request.
    #[error("{}", api_message(action, error))]
    Api {
        /// What was being read.
        action: String,
        /// What went wrong.
        error: kube::Error,
    },
}

impl InventoryError {
    /// The process exit code: 2 for input the user must fix, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::InvalidName(_) | Self::AccountNotFound(_) => 2,
            Self::Malformed { .. } | Self::Api { .. } => 1,
        }
    }
}

fn api_message(action: &str, error: &kube::Error) -> String {
    match error {
        kube::Error::Api(_) => {
            format!("the API server refused to {action}: {}", error_chain(error))
        }
        _ => format!(
            "cannot reach the cluster to {action}: {}",
            error_chain(error)
        ),
    }
}

/// An error and its causes on one line, without repeating a cause its parent already quotes.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            let _ = write!(text, ": {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// Reads everything bound to `account` into an inventory with that one Account, its
/// RetentionPolicy (absent when it does not exist, so planning reports it), the DataProcessors
/// its objects name, and its bound objects of every kind in every namespace.
pub async fn collect(client: &Client, account: &str) -> Result<Inventory, InventoryError> {
    if !is_valid_name(account) {
        return Err(InventoryError::InvalidName(account.to_owned()));
    }
    let account_object: Account = get::<Account>(client, account)
        .await?
        .ok_or_else(|| InventoryError::AccountNotFound(account.to_owned()))?;
    let policy_name = account_object.spec.retention_policy_ref.clone();
    let every_kind = ResourceKind::ALL
        .map(|kind| {
            kind.visit(ListBound {
                client,
                account: Some(account),
            })
        })
        .into_iter();
    let (policy, bound, processors, receipts) = futures::try_join!(
        get::<RetentionPolicy>(client, &policy_name),
        futures::future::try_join_all(every_kind),
        list::<DataProcessor>(client),
        receipts(client, Some(account)),
    )?;
    let resources: Vec<BoundResource> = bound.into_iter().flatten().collect();
    let named: BTreeSet<&str> = resources
        .iter()
        .filter_map(BoundResource::hosted_facts)
        .flat_map(|facts| facts.processors.iter().map(String::as_str))
        .collect();
    let mut processor_specs = BTreeMap::new();
    for object in processors {
        let name = object.metadata.name.clone().unwrap_or_default();
        // Only the processors this account's data names; a malformed unrelated one must not
        // stand in the way of the customer's request.
        if named.contains(name.as_str()) {
            let processor: DataProcessor = typed(&object)?;
            processor_specs.insert(name, processor.spec);
        }
    }
    Ok(Inventory {
        accounts: vec![account_object],
        brakes: policy
            .iter()
            .map(|policy| (policy_name.clone(), BrakeState::of(policy)))
            .collect(),
        policies: policy
            .map(|policy| (policy_name, policy.spec))
            .into_iter()
            .collect(),
        processors: processor_specs,
        resources,
        receipts,
    })
}

/// The plan of an inventory as a table: `report`'s table, and then which processors hold a
/// copy of each object (the table itself names them only at their erasure notice).
pub fn table(plan: &Plan) -> String {
    let mut out = report::table(plan);
    for account in &plan.accounts {
        let held: Vec<_> = account
            .resources
            .iter()
            .filter(|r| !r.processors.is_empty())
            .collect();
        if held.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "\nAlso held by data processors (account {}):",
            account.name
        );
        for resource in held {
            let _ = writeln!(
                out,
                "  {}: {}",
                resource.resource,
                resource.processors.join(", ")
            );
        }
    }
    out
}

/// A Kubernetes object name (an RFC 1123 subdomain), so a name never bends the request path.
fn is_valid_name(name: &str) -> bool {
    let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 253
        && name.starts_with(alphanumeric)
        && name.ends_with(alphanumeric)
        && name
            .chars()
            .all(|c| alphanumeric(c) || c == '-' || c == '.')
}

fn api_resource<K: Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

/// Names an object for messages: kind, then namespace/name or name.
fn describe(kind: &str, object: &DynamicObject) -> String {
    let name = object.metadata.name.as_deref().unwrap_or_default();
    match object.metadata.namespace.as_deref() {
        Some(namespace) => format!("{kind} {namespace}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// Converts an object read untyped, so that a malformed object is reported by name and field.
fn typed<K>(object: &DynamicObject) -> Result<K, InventoryError>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    let malformed = |path: String| InventoryError::Malformed {
        object: describe(&K::kind(&()), object),
        path,
    };
    let value = serde_json::to_value(object).map_err(|_| malformed(".".to_owned()))?;
    serde_path_to_error::deserialize(value).map_err(|e| malformed(e.path().to_string()))
}

/// GETs a cluster-scoped object; `None` when it does not exist.
async fn get<K>(client: &Client, name: &str) -> Result<Option<K>, InventoryError>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    let resource = api_resource::<K>();
    let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
    let object = api
        .get_opt(name)
        .await
        .map_err(|error| InventoryError::Api {
            action: format!("read {} {name:?}", resource.kind),
            error,
        })?;
    object.as_ref().map(typed).transpose()
}

/// LISTs every object of a kind in every namespace, page by page, untyped.
async fn list<K>(client: &Client) -> Result<Vec<DynamicObject>, InventoryError>
where
    K: Resource<DynamicType = ()>,
{
    list_selected::<K>(client, ListParams::default()).await
}

/// The ErasureReceipts (of one account, with `account`), typed. None when the cluster does
/// not know the kind yet (CRDs older than receipts): there are none then.
pub async fn receipts(
    client: &Client,
    account: Option<&str>,
) -> Result<Vec<ErasureReceipt>, InventoryError> {
    let params = match account {
        Some(name) => ListParams::default().labels(&format!("{RECEIPT_ACCOUNT_LABEL}={name}")),
        None => ListParams::default(),
    };
    match list_selected::<ErasureReceipt>(client, params).await {
        Ok(objects) => objects.iter().map(typed).collect(),
        Err(InventoryError::Api {
            error: kube::Error::Api(status),
            ..
        }) if status.code == 404 => Ok(Vec::new()),
        Err(error) => Err(error),
    }
}

/// LISTs the objects of a kind that `params` selects, in every namespace, page by page.
async fn list_selected<K>(
    client: &Client,
    params: ListParams,
) -> Result<Vec<DynamicObject>, InventoryError>
where
    K: Resource<DynamicType = ()>,
{
    let resource = api_resource::<K>();
    let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
    let mut objects = Vec::new();
    let mut params = params.limit(PAGE);
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|error| InventoryError::Api {
                action: format!("list {}.{}", resource.plural, resource.group),
                error,
            })?;
        objects.extend(page.items);
        match page.metadata.continue_.filter(|token| !token.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(objects),
        }
    }
}

/// Reads everything the operator plans from the cluster (`plan --cluster`): every Account,
/// RetentionPolicy (with its brake's count), DataProcessor and bound object, as `plan -f`
/// would read them from the same objects exported as manifests. LISTs only; writes nothing.
pub async fn collect_cluster(client: &Client) -> Result<Inventory, InventoryError> {
    let every_kind = ResourceKind::ALL
        .map(|kind| {
            kind.visit(ListBound {
                client,
                account: None,
            })
        })
        .into_iter();
    let (accounts, policies, processors, bound, receipts) = futures::try_join!(
        list::<Account>(client),
        list::<RetentionPolicy>(client),
        list::<DataProcessor>(client),
        futures::future::try_join_all(every_kind),
        receipts(client, None),
    )?;
    let mut inventory = Inventory {
        receipts,
        accounts: accounts
            .iter()
            .map(typed::<Account>)
            .collect::<Result<_, _>>()?,
        resources: bound.into_iter().flatten().collect(),
        ..Inventory::default()
    };
    for object in &policies {
        let policy: RetentionPolicy = typed(object)?;
        let name = object.metadata.name.clone().unwrap_or_default();
        inventory.add_policy(name, policy);
    }
    for object in &processors {
        let processor: DataProcessor = typed(object)?;
        let name = object.metadata.name.clone().unwrap_or_default();
        inventory.processors.insert(name, processor.spec);
    }
    Ok(inventory)
}

/// Lists the objects of one bound kind that `spec.accountRef` binds to the account (every
/// object of the kind without one).
struct ListBound<'a> {
    client: &'a Client,
    account: Option<&'a str>,
}

impl<'a> KindVisitor for ListBound<'a> {
    type Output = BoxFuture<'a, Result<Vec<BoundResource>, InventoryError>>;

    fn visit<K: BoundKind>(self) -> Self::Output {
        Box::pin(bound::<K>(self.client, self.account))
    }
}

/// Every object of a bound kind whose `spec.accountRef` names the account. Objects of other
/// accounts are not converted, so one of them being malformed does not matter here.
async fn bound<K: BoundKind>(
    client: &Client,
    account: Option<&str>,
) -> Result<Vec<BoundResource>, InventoryError> {
    list::<K>(client)
        .await?
        .iter()
        .filter(|o| {
            account.is_none_or(|account| {
                o.data.pointer("/spec/accountRef").and_then(|v| v.as_str()) == Some(account)
            })
        })
        .map(|o| typed::<K>(o).map(|object| object.facts()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_rfc_1123_subdomains() {
        for good in ["acme", "acme-2", "a.b", "0"] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in [
            "",
            "Acme",
            "a/b",
            "-a",
            "a-",
            "a_b",
            "../x",
            &"a".repeat(254),
        ] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn bad_input_exits_2_and_cluster_trouble_exits_1() {
        assert_eq!(InventoryError::AccountNotFound("x".into()).exit_code(), 2);
        assert_eq!(InventoryError::InvalidName("X".into()).exit_code(), 2);
        let malformed = InventoryError::Malformed {
            object: "Website a/b".into(),
            path: "spec".into(),
        };
        assert_eq!(malformed.exit_code(), 1);
    }
}
