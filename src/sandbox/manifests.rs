//! What the sandbox loads: the examples built into the binary, or the user's files, each
//! document created as it is, except that every processor's webhook points at the sandbox's
//! receiver and gets a signing Secret.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};

use kube::api::{Api, DynamicObject, GroupVersionKind, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::SandboxError;
use super::receiver::Receiver;

/// The examples, as `examples/` holds them (a test keeps the list complete).
pub const EXAMPLES: [(&str, &str); 9] = [
    (
        "00-retention-policy.yaml",
        include_str!("../../examples/00-retention-policy.yaml"),
    ),
    (
        "01-data-processors.yaml",
        include_str!("../../examples/01-data-processors.yaml"),
    ),
    (
        "10-namespaces.yaml",
        include_str!("../../examples/10-namespaces.yaml"),
    ),
    (
        "20-account-active.yaml",
        include_str!("../../examples/20-account-active.yaml"),
    ),
    (
        "21-account-grace-period.yaml",
        include_str!("../../examples/21-account-grace-period.yaml"),
    ),
    (
        "22-account-terminated-long-ago.yaml",
        include_str!("../../examples/22-account-terminated-long-ago.yaml"),
    ),
    (
        "23-account-legal-hold.yaml",
        include_str!("../../examples/23-account-legal-hold.yaml"),
    ),
    (
        "24-account-consent-withdrawn.yaml",
        include_str!("../../examples/24-account-consent-withdrawn.yaml"),
    ),
    (
        "25-account-closing.yaml",
        include_str!("../../examples/25-account-closing.yaml"),
    ),
];

/// The documents of the examples, in file order.
pub fn examples() -> Result<Vec<Value>, SandboxError> {
    let mut documents = Vec::new();
    for (name, text) in EXAMPLES {
        documents.extend(parse(Path::new(name), text)?);
    }
    Ok(documents)
}

/// The documents of `paths`: files, and the `.yaml`/`.yml` files of directories in name
/// order.
pub fn read(paths: &[PathBuf]) -> Result<Vec<Value>, SandboxError> {
    let mut documents = Vec::new();
    for path in paths {
        let files = if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| SandboxError::Read(path.clone(), e.to_string()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            files.sort();
            files
        } else {
            vec![path.clone()]
        };
        for file in files {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| SandboxError::Read(file.clone(), e.to_string()))?;
            documents.extend(parse(&file, &text)?);
        }
    }
    Ok(documents)
}

fn parse(file: &Path, text: &str) -> Result<Vec<Value>, SandboxError> {
    let options = serde_saphyr::options! { strict_booleans: true };
    let parsed: Vec<Value> = serde_saphyr::from_multiple_with_options(text, options)
        .map_err(|e| SandboxError::Read(file.to_owned(), e.to_string()))?;
    Ok(parsed.into_iter().filter(|d| !d.is_null()).collect())
}

/// Points every processor's webhook at `receiver` (trusting its CA), and returns the
/// signing Secrets those webhooks name, each with a key made now.
pub fn redirect_webhooks(documents: &mut [Value], receiver: &Receiver) -> Vec<Value> {
    let mut secrets = Vec::new();
    for document in documents.iter_mut() {
        if document["kind"] != "DataProcessor" {
            continue;
        }
        let name = document["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let Some(webhook) = document
            .pointer_mut("/spec/erasure/webhook")
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        webhook.insert("url".into(), receiver.url_for(&name).into());
        webhook.insert("caBundle".into(), receiver.ca_pem().into());
        let secret_ref = webhook.get("secretRef").cloned().unwrap_or(Value::Null);
        if let (Some(namespace), Some(secret), Some(key)) = (
            secret_ref["namespace"].as_str(),
            secret_ref["name"].as_str(),
            secret_ref["key"].as_str(),
        ) {
            // `data`, base64: `stringData` is a convenience of the real API server's write
            // path, which the in-memory one does not imitate.
            let data = k8s_openapi::ByteString(signing_key().into_bytes());
            secrets.push(json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": secret, "namespace": namespace},
                "data": {key: data},
            }));
        }
    }
    secrets
}

/// 32 random bytes, hex: a signing key for a receiver that checks no signature. The standard
/// library's per-process random hasher keys are random enough for that.
fn signing_key() -> String {
    (0..4)
        .map(|_| format!("{:016x}", RandomState::new().build_hasher().finish()))
        .collect()
}

/// Creates every document: Namespaces first, then cluster-scoped objects, then namespaced
/// ones, so that each finds what it names. A namespace that already exists is fine.
pub async fn create_all(client: &Client, documents: &[Value]) -> Result<usize, SandboxError> {
    let rank = |d: &Value| {
        if d["kind"] == "Namespace" {
            0
        } else if d["metadata"]["namespace"].is_string() {
            2
        } else {
            1
        }
    };
    let mut ordered: Vec<&Value> = documents.iter().collect();
    ordered.sort_by_key(|d| rank(d));
    let namespaces: Vec<Value> = ordered
        .iter()
        .filter_map(|d| d["metadata"]["namespace"].as_str())
        .map(|n| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}))
        .collect();
    for document in namespaces.iter().chain(ordered.iter().copied()) {
        create(client, document).await?;
    }
    Ok(ordered.len())
}

async fn create(client: &Client, document: &Value) -> Result<(), SandboxError> {
    let kind = document["kind"].as_str().unwrap_or_default();
    let api_version = document["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let object: DynamicObject = serde_json::from_value(document.clone())
        .map_err(|e| SandboxError::Create(kind.to_owned(), String::new(), e.to_string()))?;
    let name = object.name_any();
    let failed =
        |e: kube::Error| SandboxError::Create(kind.to_owned(), name.clone(), e.to_string());
    let (resource, _) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(failed)?;
    let api: Api<DynamicObject> = match object.namespace() {
        Some(namespace) => Api::namespaced_with(client.clone(), &namespace, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if kind == "Namespace" && status.code == 409 => Ok(()),
        Err(error) => Err(failed(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_is_built_in() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("examples/")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
            .collect();
        on_disk.sort();
        let built_in: Vec<String> = EXAMPLES.iter().map(|(n, _)| (*n).to_owned()).collect();
        assert_eq!(built_in, on_disk);
        for (name, text) in EXAMPLES {
            let on_disk = std::fs::read_to_string(dir.join(name)).expect("readable");
            assert_eq!(text, on_disk, "{name}");
        }
        assert!(examples().expect("the examples parse").len() > 40);
    }

    #[test]
    fn signing_keys_are_64_hex_digits_and_differ() {
        let (a, b) = (signing_key(), signing_key());
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
