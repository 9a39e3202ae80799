//! The resource types the server serves: a few built-ins an operator uses, and every version of
//! every CustomResourceDefinition it was given.

use std::{fs, path::Path, sync::Arc};

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

    /// Registers every served version of a CRD (given as JSON).
    pub fn add_crd(&mut self, crd: Value) -> Result<(), String> {
        let spec = &crd["spec"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let list = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| a.iter().map(text).collect())
                .unwrap_or_default()
        };
        let group = text(&spec["group"]);
        let names = &spec["names"];
        let plural = text(&names["plural"]);
        let kind = text(&names["kind"]);
        if group.is_empty() || plural.is_empty() || kind.is_empty() {
            return Err("a CRD needs spec.group, spec.names.plural and spec.names.kind".into());
        }
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
            self.types.push(Arc::new(ResourceType {
                group: group.clone(),
                version: text(&version["name"]),
                kind: kind.clone(),
                plural: plural.clone(),
                singular: names["singular"]
                    .as_str()
                    .map_or_else(|| kind.to_lowercase(), str::to_owned),
                short_names: list(&names["shortNames"]),
                categories: list(&names["categories"]),
                namespaced: spec["scope"] == "Namespaced",
                status_subresource: version.pointer("/subresources/status").is_some(),
                custom: true,
                schema,
                printer_columns,
            }));
        }
        self.crds.push(crd);
        Ok(())
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
