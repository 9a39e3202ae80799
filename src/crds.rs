//! The generated manifests: the CRDs, rendered from the Rust types and checked in under
//! `crds/`, and the chart's list of bound kinds, rendered from the registry
//! ([`crate::kinds`]) and checked in as `charts/retention-operator/templates/_bound-kinds.tpl`.

use std::{fs, io, path::Path};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

use crate::{api::all_crds, kinds::ResourceKind};

const HEADER: &str =
    "# Generated from the Rust types by `retention-operator crds --out-dir crds`. Do not edit.\n";

/// Why the CRDs could not be rendered or written.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    /// A CRD did not serialize to YAML.
    #[error("cannot render CRD {name} as YAML: {source}")]
    Render {
        name: String,
        source: serde_saphyr::SerializeError,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: io::Error },
    /// The API server refused a CRD (RBAC, an invalid change of a stored version, …).
    #[error("cannot apply CRD {name}: {source}")]
    Apply { name: String, source: kube::Error },
    /// A CRD applied was not Established in time.
    #[error("CRD {name} was not Established within {seconds} s")]
    NotEstablished { name: String, seconds: u64 },
}

/// The field manager of CRDs applied by `crds --apply`.
pub const CRD_MANAGER: &str = "retention-operator-crds";

/// How long `crds --apply` waits for each CRD to be Established.
const ESTABLISHED_WITHIN: std::time::Duration = std::time::Duration::from_secs(60);

/// Applies every CRD to the cluster (server-side apply, taking over the fields from any other
/// manager, such as Helm's first install) and waits until each is Established, so that a chart
/// upgrade's new templates find the kinds as this version defines them. Returns their names.
pub async fn apply_all(client: &kube::Client) -> Result<Vec<String>, CrdError> {
    use kube::api::{Api, Patch, PatchParams};
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(CRD_MANAGER).force();
    let mut applied = Vec::new();
    for mut crd in all_crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crd.metadata.managed_fields = None;
        api.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .map_err(|source| CrdError::Apply {
                name: name.clone(),
                source,
            })?;
        applied.push(name);
    }
    for name in &applied {
        wait_established(&api, name).await?;
    }
    Ok(applied)
}

/// Polls the CRD `name` until its Established condition is True.
async fn wait_established(
    api: &kube::Api<CustomResourceDefinition>,
    name: &str,
) -> Result<(), CrdError> {
    let deadline = tokio::time::Instant::now() + ESTABLISHED_WITHIN;
    loop {
        let crd = api.get(name).await.map_err(|source| CrdError::Apply {
            name: name.to_owned(),
            source,
        })?;
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(CrdError::NotEstablished {
                name: name.to_owned(),
                seconds: ESTABLISHED_WITHIN.as_secs(),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// The file name of a CRD under `crds/`: `<plural>.<group>.yaml`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or_default())
}

/// One CRD as a YAML document with the generated-file header.
pub fn render(crd: &CustomResourceDefinition) -> Result<String, CrdError> {
    let yaml = serde_saphyr::to_string(crd).map_err(|source| CrdError::Render {
        name: crd.metadata.name.clone().unwrap_or_default(),
        source,
    })?;
    Ok(format!("{HEADER}{yaml}"))
}

/// Every CRD as one multi-document YAML stream.
pub fn render_all() -> Result<String, CrdError> {
    let documents = all_crds()
        .iter()
        .map(render)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(documents
        .into_iter()
        .map(|doc| format!("---\n{doc}"))
        .collect())
}

/// Writes one file per CRD into `dir`, returning the files written.
pub fn write_all(dir: &Path) -> Result<Vec<String>, CrdError> {
    let io_error = |path: &Path| {
        let path = path.display().to_string();
        move |source| CrdError::Write { path, source }
    };
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let mut written = Vec::new();
    for crd in all_crds() {
        let path = dir.join(file_name(&crd));
        fs::write(&path, render(&crd)?).map_err(io_error(&path))?;
        written.push(path.display().to_string());
    }
    Ok(written)
}

/// Where the chart keeps the generated list of bound kinds, relative to the repository.
pub const CHART_KINDS_PATH: &str = "charts/retention-operator/templates/_bound-kinds.tpl";

/// The chart's named templates that list the bound kinds' resources for its RBAC rules:
/// `retention-operator.stampedResources` (the hosted kinds, whose objects get the schedule
/// annotation), `retention-operator.backupResources` (the rest: watched and deleted only) and
/// `retention-operator.boundStatusResources` (every bound kind's status, as a YAML list).
pub fn render_chart_kinds() -> String {
    let quoted = |hosted: bool| {
        ResourceKind::ALL
            .into_iter()
            .filter(|k| k.is_hosted() == hosted)
            .map(|k| format!("{:?}", k.plural()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let statuses: String = ResourceKind::ALL
        .into_iter()
        .map(|k| format!("- {}/status\n", k.plural()))
        .collect();
    format!(
        "{{{{- /* Generated from the registry of bound kinds by \
         `retention-operator chart-kinds`. Do not edit. */ -}}}}\n\
         {{{{- define \"retention-operator.stampedResources\" -}}}}\n[{}]\n{{{{- end }}}}\n\
         {{{{- define \"retention-operator.backupResources\" -}}}}\n[{}]\n{{{{- end }}}}\n\
         {{{{- define \"retention-operator.boundStatusResources\" -}}}}\n{}{{{{- end }}}}\n",
        quoted(true),
        quoted(false),
        statuses
    )
}
