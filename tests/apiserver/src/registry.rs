//! The resource types the server serves: a few built-ins an operator uses, and every version of
//! every CustomResourceDefinition it was given.

use std::{collections::HashMap, fs, path::Path, sync::Arc};

use serde_json::{Value, json};

use crate::{table::PrinterColumn, validation::SchemaValidator};

/// One served resource type (one group/version/plural).
#[derive(Debug)]
pub struct ResourceType {
    /// API group, "" for core.
    pub group: String,
    /// API version, such as `v1alpha1`.
    pub version: String,
    /// Kind, such as `Account`.
    pub kind: String,
    /// Plural resource name used in paths.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Short names for kubectl.
    pub short_names: Vec<String>,
    /// Categories for kubectl (`kubectl get hosting`).
    pub categories: Vec<String>,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Whether `/status` is a subresource (status then changes only through it).
    pub status_subresource: bool,
    /// A custom resource: generation is tracked, strategic merge patch is refused.
    pub custom: bool,
    /// The schema of a custom resource version.
    pub schema: Option<SchemaValidator>,
    /// Printer columns for the Table format.
    pub printer_columns: Vec<PrinterColumn>,
    /// The CRD that defines this type is being deleted: new objects are refused.
    pub terminating: bool,
}

impl ResourceType {
    /// `group/version`, or `v1` for core.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Where objects of this type are stored: versions of one group and plural share storage.
    pub fn storage_key(&self) -> (String, String) {
        (self.group.clone(), self.plural.clone())
    }

    /// The verbs discovery advertises.
    pub fn verbs(&self) -> Vec<&'static str> {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }

    fn builtin(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        status: bool,
    ) -> Self {
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
            singular: kind.to_lowercase(),
            short_names: Vec::new(),
            categories: Vec::new(),
            namespaced,
            status_subresource: status,
            custom: false,
            schema: None,
            printer_columns: Vec::new(),
            terminating: false,
        }
    }
}

/// Why CRDs could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// A file is not YAML.
    #[error("{path}: invalid YAML: {message}")]
    Yaml { path: String, message: String },
    /// A document is not a usable CRD.
    #[error("{path}: {message}")]
    Crd { path: String, message: String },
}

/// All served types.
#[derive(Debug, Default)]
pub struct Registry {
    types: Vec<Arc<ResourceType>>,
    crds: Vec<Value>,
    /// CRD names in the order their kinds were first served, so discovery keeps its order.
    crd_order: Vec<String>,
    /// The types built for each served CRD, with what they were built from: rebuilding (and
    /// recompiling schemas) only when that changes.
    built: HashMap<String, (Value, Vec<Arc<ResourceType>>)>,
}

/// What a CRD's served types depend on: its spec, accepted names and whether it is deleting.
fn crd_basis(crd: &Value) -> Value {
    json!({
        "spec": crd["spec"],
        "acceptedNames": crd["status"]["acceptedNames"],
        "terminating": crd.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()),
    })
}

/// The types of every served version of a CRD (given as JSON). Names come from
/// `status.acceptedNames` once the naming controller has set them, as kube's CRD handler
/// serves the accepted names rather than the requested ones.
pub fn crd_types(crd: &Value) -> Result<Vec<ResourceType>, String> {
    let spec = &crd["spec"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(text).collect())
            .unwrap_or_default()
    };
    let accepted = &crd["status"]["acceptedNames"];
    let names = if text(&accepted["kind"]).is_empty() || text(&accepted["plural"]).is_empty() {
        &spec["names"]
    } else {
        accepted
    };
    let group = text(&spec["group"]);
    let plural = text(&names["plural"]);
    let kind = text(&names["kind"]);
    if group.is_empty() || plural.is_empty() || kind.is_empty() {
        return Err("a CRD needs spec.group, spec.names.plural and spec.names.kind".into());
    }
    let terminating = crd
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null());
    let mut types = Vec::new();
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    for version in versions.iter().filter(|v| v["served"] != false) {
        let schema = match version.pointer("/schema/openAPIV3Schema") {
            Some(schema) => Some(SchemaValidator::new(schema.clone())?),
            None => None,
        };
        let printer_columns = version["additionalPrinterColumns"]
            .as_array()
            .map(|columns| {
                columns
                    .iter()
                    .filter_map(PrinterColumn::from_crd_json)
                    .collect()
            })
            .unwrap_or_default();
        types.push(ResourceType {
            group: group.clone(),
            version: text(&version["name"]),
            kind: kind.clone(),
            plural: plural.clone(),
            singular: names["singular"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map_or_else(|| kind.to_lowercase(), str::to_owned),
            short_names: list(&names["shortNames"]),
            categories: list(&names["categories"]),
            namespaced: spec["scope"] == "Namespaced",
            status_subresource: version.pointer("/subresources/status").is_some(),
            custom: true,
            schema,
            printer_columns,
            terminating,
        });
    }
    Ok(types)
}

impl Registry {
    /// The built-in kinds an operator uses.
    pub fn with_builtins() -> Self {
        let types = [
            ResourceType::builtin("", "v1", "Namespace", "namespaces", false, true),
            ResourceType::builtin("", "v1", "Secret", "secrets", true, false),
            ResourceType::builtin("", "v1", "ConfigMap", "configmaps", true, false),
            ResourceType::builtin(
                "",
                "v1",
                "PersistentVolumeClaim",
                "persistentvolumeclaims",
                true,
                true,
            ),
            ResourceType::builtin("events.k8s.io", "v1", "Event", "events", true, false),
            ResourceType::builtin("coordination.k8s.io", "v1", "Lease", "leases", true, false),
            ResourceType::builtin(
                "apiextensions.k8s.io",
                "v1",
                "CustomResourceDefinition",
                "customresourcedefinitions",
                false,
                true,
            ),
        ];
        let mut registry = Self::default();
        for mut t in types {
            t.short_names = match t.plural.as_str() {
                "namespaces" => vec!["ns".into()],
                "configmaps" => vec!["cm".into()],
                "persistentvolumeclaims" => vec!["pvc".into()],
                "events" => vec!["ev".into()],
                "customresourcedefinitions" => vec!["crd".into(), "crds".into()],
                _ => Vec::new(),
            };
            registry.types.push(Arc::new(t));
        }
        registry
    }

    /// Adds every CRD found in YAML files under `path` (a file or a directory, recursively).
    pub fn load_crds(&mut self, path: &Path) -> Result<(), RegistryError> {
        let io = |source| RegistryError::Io {
            path: path.display().to_string(),
            source,
        };
        if path.is_dir() {
            let mut entries: Vec<_> = fs::read_dir(path)
                .map_err(io)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for entry in entries {
                if entry.is_dir() || entry.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                    self.load_crds(&entry)?;
                }
            }
            return Ok(());
        }
        let text = fs::read_to_string(path).map_err(io)?;
        let documents: Vec<Value> =
            serde_saphyr::from_multiple(&text).map_err(|e| RegistryError::Yaml {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        for document in documents {
            if document["kind"] == "CustomResourceDefinition" {
                self.add_crd(document)
                    .map_err(|message| RegistryError::Crd {
                        path: path.display().to_string(),
                        message,
                    })?;
            }
        }
        Ok(())
    }

    /// Registers every served version of a CRD (given as JSON), loaded before the server
    /// starts; the CRD is stored as an object when the server starts.
    pub fn add_crd(&mut self, crd: Value) -> Result<(), String> {
        let types = crd_types(&crd)?;
        self.types.extend(types.into_iter().map(Arc::new));
        if let Some(name) = crd.pointer("/metadata/name").and_then(Value::as_str) {
            self.crd_order.push(name.to_owned());
        }
        self.crds.push(crd);
        Ok(())
    }

    /// Serves exactly the kinds of the stored CRDs `crds` that are served (names accepted or
    /// established): kinds of new and changed CRDs are (re)built, those of deleted ones go.
    /// Built-in kinds are untouched.
    pub fn sync_crds(&mut self, crds: &[Value]) {
        let served: Vec<&Value> = crds.iter().filter(|c| crate::crd::is_served(c)).collect();
        let name_of = |crd: &Value| {
            crd.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let mut built = HashMap::new();
        for crd in &served {
            let name = name_of(crd);
            let basis = crd_basis(crd);
            let types = match self.built.remove(&name) {
                Some((old_basis, types)) if old_basis == basis => types,
                _ => match crd_types(crd) {
                    Ok(types) => types.into_iter().map(Arc::new).collect(),
                    // Stored CRDs were validated on write; one that still cannot be built is
                    // left unserved rather than failing every later write.
                    Err(error) => {
                        tracing::warn!(crd = %name, %error, "CRD not served");
                        continue;
                    }
                },
            };
            if !self.crd_order.contains(&name) {
                self.crd_order.push(name.clone());
            }
            built.insert(name, (basis, types));
        }
        self.crd_order.retain(|name| built.contains_key(name));
        self.built = built;
        self.types.retain(|t| !t.custom);
        for name in &self.crd_order {
            if let Some((_, types)) = self.built.get(name) {
                self.types.extend(types.iter().cloned());
            }
        }
    }

    /// The CRDs loaded, as JSON, to be served as `customresourcedefinitions` objects.
    pub fn crds(&self) -> &[Value] {
        &self.crds
    }

    /// The type served at group/version/plural.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// The type of a kind (first served version), for ownerReference and event lookups.
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        self.types
            .iter()
            .find(|t| t.api_version() == api_version && t.kind == kind)
            .cloned()
    }

    /// Every served type.
    pub fn types(&self) -> &[Arc<ResourceType>] {
        &self.types
    }

    /// The groups with their versions, in registration order.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in &self.types {
            if t.group.is_empty() {
                continue;
            }
            match groups.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) if !versions.contains(&t.version) => {
                    versions.push(t.version.clone())
                }
                Some(_) => {}
                None => groups.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        groups
    }

    /// The `APIResourceList` of one group version.
    pub fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let types: Vec<_> = self
            .types
            .iter()
            .filter(|t| t.group == group && t.version == version)
            .collect();
        if types.is_empty() {
            return None;
        }
        let mut resources = Vec::new();
        for t in &types {
            let mut entry = json!({
                "name": t.plural,
                "singularName": t.singular,
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": t.verbs(),
            });
            if !t.short_names.is_empty() {
                entry["shortNames"] = json!(t.short_names);
            }
            if !t.categories.is_empty() {
                entry["categories"] = json!(t.categories);
            }
            resources.push(entry);
            if t.status_subresource {
                resources.push(json!({
                    "name": format!("{}/status", t.plural),
                    "singularName": "",
                    "namespaced": t.namespaced,
                    "kind": t.kind,
                    "verbs": ["get", "patch", "update"],
                }));
            }
        }
        let group_version = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": resources,
        }))
    }
}
