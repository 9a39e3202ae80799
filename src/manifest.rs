//! Reads manifests (multi-document YAML files and directories) into an [`Inventory`] for the
//! offline `plan`, rejecting bad input with a message that names the file and the document.

use std::{
    collections::BTreeMap,
    fmt, fs,
    io::{self, Read},
    path::{Path, PathBuf},
};

use kube::{CustomResourceExt, Resource};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{
    admission,
    api::{API_VERSION, Account, DataProcessor, ErasureReceipt, RetentionPolicy},
    kinds::{BoundKind, KindVisitor, ResourceKind},
    retention::Inventory,
};

/// The path that makes `plan -f -` read standard input, as kubectl does.
pub const STDIN: &str = "-";

/// Core kinds that often sit beside our manifests and that `plan` skips.
const IGNORED_CORE_KINDS: [&str; 3] = ["Namespace", "Secret", "ConfigMap"];

/// Where an object came from: a file and the 1-based position of its document (empty documents
/// are not counted), and of the item within a `kind: List`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The file, or `-` for standard input.
    pub file: PathBuf,
    /// 1-based document number among the file's non-empty documents.
    pub document: usize,
    /// 1-based item number within a `kind: List` document.
    pub item: Option<usize>,
    /// The line the document (or item) starts on, when known.
    pub line: Option<u64>,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, document {}", self.file.display(), self.document)?;
        if let Some(item) = self.item {
            write!(f, ", item {item}")?;
        }
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

/// Why manifests could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A file or directory could not be read.
    #[error("{path}: cannot read: {source}", path = path.display())]
    Io { path: PathBuf, source: io::Error },
    /// A directory held no `*.yaml` or `*.yml` file.
    #[error("{path}: no *.yaml or *.yml files found", path = path.display())]
    NoManifests { path: PathBuf },
    /// A file is not well-formed YAML.
    #[error("{path}: invalid YAML: {message}", path = path.display())]
    Yaml { path: PathBuf, message: String },
    /// A document is not a valid object of a kind `plan` reads.
    #[error("{at}: {object}{message}")]
    Invalid {
        at: Source,
        /// "Kind namespace/name: " when known, else empty.
        object: String,
        message: String,
    },
    /// The same object appears twice.
    #[error("{at}: {kind} {name} is defined twice (first at {first})")]
    Duplicate {
        at: Source,
        first: Box<Source>,
        kind: String,
        name: String,
    },
    /// An Account names a RetentionPolicy that is not among the manifests.
    #[error(
        "{at}: Account {account} refers to RetentionPolicy {policy:?}, which is not among the \
         manifests; add it, or set spec.retentionPolicyRef to an existing policy"
    )]
    PolicyMissing {
        at: Source,
        account: String,
        policy: String,
    },
}

/// Reads every path (files, directories searched recursively for `*.yaml`/`*.yml`, or `-` for
/// standard input) and builds the inventory the engine plans.
pub fn load(paths: &[PathBuf]) -> Result<Inventory, ManifestError> {
    let mut reader = Reader::default();
    for path in paths {
        if path.as_os_str() == STDIN {
            let mut text = String::new();
            io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| ManifestError::Io {
                    path: path.clone(),
                    source,
                })?;
            reader.read_text(path, &text)?;
        } else if path.is_dir() {
            let files = yaml_files(path)?;
            if files.is_empty() {
                return Err(ManifestError::NoManifests { path: path.clone() });
            }
            for file in files {
                reader.read_file(&file)?;
            }
        } else {
            reader.read_file(path)?;
        }
    }
    reader.finish()
}

fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let io_error = |source| ManifestError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error)? {
        let path = entry.map_err(io_error)?.path();
        if path.is_dir() {
            files.extend(yaml_files(&path)?);
        } else if path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            files.push(path);
        }
    }
    // Sorted so that the first of two duplicates is always the same one.
    files.sort();
    Ok(files)
}

/// Accumulates objects across files, remembering where each came from.
#[derive(Default)]
struct Reader {
    inventory: Inventory,
    seen: BTreeMap<(String, String), Source>,
    account_sources: BTreeMap<String, Source>,
}

/// Decodes an object of one bound kind and records it.
struct DecodeBound<'a> {
    reader: &'a mut Reader,
    value: Value,
    source: &'a Source,
}

impl KindVisitor for DecodeBound<'_> {
    type Output = Result<(), ManifestError>;

    fn visit<K: BoundKind>(self) -> Self::Output {
        let object = decode_cel::<K>(self.value, self.source)?;
        self.reader.bound(object, self.source)
    }
}

impl Reader {
    fn read_file(&mut self, path: &Path) -> Result<(), ManifestError> {
        let text = fs::read_to_string(path).map_err(|source| ManifestError::Io {
            path: path.to_owned(),
            source,
        })?;
        self.read_text(path, &text)
    }

    fn read_text(&mut self, path: &Path, text: &str) -> Result<(), ManifestError> {
        // YAML 1.2 booleans only: `country: NO` or `namespace: y` stay strings.
        let options = serde_saphyr::options! { strict_booleans: true };
        let documents: Vec<serde_saphyr::Spanned<Value>> =
            serde_saphyr::from_multiple_with_options(text, options).map_err(|e| {
                ManifestError::Yaml {
                    path: path.to_owned(),
                    message: e.to_string(),
                }
            })?;
        for (index, document) in documents.into_iter().enumerate() {
            let source = Source {
                file: path.to_owned(),
                document: index + 1,
                item: None,
                line: Some(document.referenced.line()),
            };
            self.read_document(document.value, source)?;
        }
        Ok(())
    }

    fn read_document(&mut self, value: Value, source: Source) -> Result<(), ManifestError> {
        let invalid = |object: String, message: String| ManifestError::Invalid {
            at: source.clone(),
            object,
            message,
        };
        let Value::Object(fields) = &value else {
            return Err(invalid(
                String::new(),
                "expected a Kubernetes object (a mapping)".into(),
            ));
        };
        let text = |key: &str| fields.get(key).and_then(Value::as_str).unwrap_or_default();
        let (api_version, kind) = (text("apiVersion"), text("kind"));
        if api_version.is_empty() || kind.is_empty() {
            return Err(invalid(
                String::new(),
                "apiVersion and kind are required".into(),
            ));
        }
        if api_version == "v1" && kind == "List" {
            let items = match fields.get("items") {
                Some(Value::Array(items)) => items.clone(),
                None | Some(Value::Null) => Vec::new(),
                Some(_) => return Err(invalid(String::new(), "items must be a list".into())),
            };
            for (index, item) in items.into_iter().enumerate() {
                let source = Source {
                    item: Some(index + 1),
                    line: None,
                    ..source.clone()
                };
                self.read_document(item, source)?;
            }
            return Ok(());
        }
        if api_version == "v1" && IGNORED_CORE_KINDS.contains(&kind) {
            return Ok(());
        }
        if api_version != API_VERSION {
            let message = if api_version.starts_with("hosting.ecuni.se/") {
                format!("unsupported apiVersion {api_version:?}; plan reads {API_VERSION}")
            } else {
                format!(
                    "unknown kind {kind} ({api_version}); plan reads {API_VERSION} kinds and \
                     skips v1 {}",
                    IGNORED_CORE_KINDS.join(", ")
                )
            };
            return Err(invalid(String::new(), message));
        }
        let kind = kind.to_owned();
        self.read_object(&kind, value, &source)
    }

    /// Reads one object of this API group.
    fn read_object(
        &mut self,
        kind: &str,
        value: Value,
        source: &Source,
    ) -> Result<(), ManifestError> {
        let source = source.clone();
        match kind {
            "Account" => {
                let account: Account = decode_cel(value, &source)?;
                let name = self.register(&account, &source)?;
                self.account_sources.insert(name, source);
                self.inventory.accounts.push(account);
            }
            "RetentionPolicy" => {
                let policy: RetentionPolicy = decode_cel(value, &source)?;
                let name = self.register(&policy, &source)?;
                self.inventory.add_policy(name, policy);
            }
            "DataProcessor" => {
                let processor: DataProcessor = decode_cel(value, &source)?;
                let name = self.register(&processor, &source)?;
                self.inventory.processors.insert(name, processor.spec);
            }
            "ErasureReceipt" => {
                let receipt: ErasureReceipt = decode_cel(value, &source)?;
                self.register(&receipt, &source)?;
                self.inventory.receipts.push(receipt);
            }
            bound if let Ok(kind) = bound.parse::<ResourceKind>() => kind.visit(DecodeBound {
                reader: self,
                value,
                source: &source,
            })?,
            other => {
                return Err(ManifestError::Invalid {
                    at: source,
                    object: String::new(),
                    message: format!("unknown kind {other} in {API_VERSION}"),
                });
            }
        }
        Ok(())
    }

    /// Records a bound object.
    fn bound<K: BoundKind>(&mut self, object: K, source: &Source) -> Result<(), ManifestError> {
        self.register(&object, source)?;
        self.inventory.resources.push(object.facts());
        Ok(())
    }

    /// Checks the object is new and returns its name.
    fn register<K: Resource<DynamicType = ()>>(
        &mut self,
        object: &K,
        source: &Source,
    ) -> Result<String, ManifestError> {
        let kind = K::kind(&()).into_owned();
        let name = qualified_name(object);
        if let Some(first) = self.seen.get(&(kind.clone(), name.clone())) {
            return Err(ManifestError::Duplicate {
                at: source.clone(),
                first: Box::new(first.clone()),
                kind,
                name,
            });
        }
        self.seen.insert((kind, name), source.clone());
        Ok(object.meta().name.clone().unwrap_or_default())
    }

    fn finish(self) -> Result<Inventory, ManifestError> {
        for account in &self.inventory.accounts {
            let policy = &account.spec.retention_policy_ref;
            if !self.inventory.policies.contains_key(policy) {
                let account = account.metadata.name.clone().unwrap_or_default();
                return Err(ManifestError::PolicyMissing {
                    at: self.account_sources[&account].clone(),
                    account,
                    policy: policy.clone(),
                });
            }
        }
        Ok(self.inventory)
    }
}

/// `namespace/name` for namespaced objects, `name` for cluster-scoped ones.
fn qualified_name<K: Resource>(object: &K) -> String {
    let meta = object.meta();
    let name = meta.name.as_deref().unwrap_or_default();
    match &meta.namespace {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name.to_owned(),
    }
}

/// Decodes a document as `K`, with the path of the offending field in the message, and gives
/// namespaced objects without a namespace the `default` one, as kubectl does.
fn decode<K>(value: Value, source: &Source) -> Result<K, ManifestError>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + CustomResourceExt,
{
    let object_label = label::<K>(&value);
    let invalid = |message: String| ManifestError::Invalid {
        at: source.clone(),
        object: object_label.clone(),
        message,
    };
    let crd = K::crd();
    let schema = crd
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .map(|schema| serde_json::to_value(&schema.open_api_v3_schema).unwrap_or_default());
    // Like kubectl's strict field validation: a misspelt `legalHold` must not silently vanish.
    if let Some(schema) = &schema {
        let mut unknown = Vec::new();
        if let Value::Object(fields) = &value {
            for (key, field) in fields {
                match key.as_str() {
                    "apiVersion" | "kind" | "metadata" => {}
                    _ => unknown_fields(
                        field,
                        schema.pointer(&format!("/properties/{key}")),
                        key,
                        &mut unknown,
                    ),
                }
            }
        }
        if !unknown.is_empty() {
            return Err(invalid(format!("unknown field(s): {}", unknown.join(", "))));
        }
    }
    // Checked before the value is consumed, reported after serde's own checks (types,
    // required fields, durations), whose messages say more about those.
    let refused = schema
        .as_ref()
        .map(|schema| admission::violations(schema, &value))
        .unwrap_or_default();
    let mut object: K = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        invalid(if path == "." {
            message
        } else {
            format!("{path}: {message}")
        })
    })?;
    if !refused.is_empty() {
        let problems: Vec<String> = refused
            .iter()
            .map(|v| format!("{}: {}", v.path, v.problem))
            .collect();
        return Err(invalid(problems.join("; ")));
    }
    let meta = object.meta_mut();
    if meta.name.as_deref().unwrap_or_default().is_empty() {
        return Err(invalid("metadata.name is required".into()));
    }
    let namespaced = crd.spec.scope == "Namespaced";
    if namespaced {
        meta.namespace.get_or_insert_with(|| "default".to_owned());
    } else {
        meta.namespace = None;
    }
    Ok(object)
}

/// Like [`decode`], then evaluates the kind's CEL rules as the API server would on create.
fn decode_cel<K>(value: Value, source: &Source) -> Result<K, ManifestError>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + CustomResourceExt + serde::Serialize,
{
    let object: K = decode(value, source)?;
    kube::core::cel::validate_cel(&object).map_err(|errors| ManifestError::Invalid {
        at: source.clone(),
        object: format!("{} {}: ", K::kind(&()), qualified_name(&object)),
        message: errors.to_string(),
    })?;
    Ok(object)
}

/// "Kind namespace/name: " read from the raw document, for messages about it.
fn label<K: Resource<DynamicType = ()>>(value: &Value) -> String {
    let meta = |key: &str| {
        value
            .pointer(&format!("/metadata/{key}"))
            .and_then(Value::as_str)
    };
    match (meta("namespace"), meta("name")) {
        (Some(namespace), Some(name)) => format!("{} {namespace}/{name}: ", K::kind(&())),
        (None, Some(name)) => format!("{} {name}: ", K::kind(&())),
        _ => format!("{}: ", K::kind(&())),
    }
}

/// Collects the paths of fields in `value` that `schema` does not declare. A missing schema
/// (the field itself unknown) makes `path` unknown; `x-kubernetes-preserve-unknown-fields`
/// accepts anything below it.
fn unknown_fields(value: &Value, schema: Option<&Value>, path: &str, unknown: &mut Vec<String>) {
    let Some(schema) = schema else {
        unknown.push(path.to_owned());
        return;
    };
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    match value {
        Value::Object(fields) => {
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, field) in fields {
                let child = schema.pointer(&format!(
                    "/properties/{}",
                    key.replace('~', "~0").replace('/', "~1")
                ));
                unknown_fields(
                    field,
                    child.or(additional),
                    &format!("{path}.{key}"),
                    unknown,
                );
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                unknown_fields(
                    item,
                    schema.get("items"),
                    &format!("{path}[{index}]"),
                    unknown,
                );
            }
        }
        _ => {}
    }
}
