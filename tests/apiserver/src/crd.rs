//! CustomResourceDefinitions as objects, the way apiextensions-apiserver treats them: the CRD
//! strategy (v1 defaulting, validation, `status.storedVersions`) and the controllers a CRD's
//! life depends on — naming (`status.acceptedNames`, `NamesAccepted`), establishing
//! (`Established`) and finalizing (a deleted CRD's instances are deleted before it goes). The
//! controllers run synchronously inside the write that triggers them (see `Store`), so a kind is
//! served, or gone, by the time the write is answered.

use serde_json::{Map, Value, json};

use crate::{
    registry::ResourceType,
    validation::{FieldError, FieldErrorKind, SchemaValidator},
};

/// The CRD API group.
pub const GROUP: &str = "apiextensions.k8s.io";
/// The CRD resource.
pub const PLURAL: &str = "customresourcedefinitions";
/// The finalizer kube-apiserver adds to a CRD being deleted until its instances are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Whether `t` is the CustomResourceDefinition type itself.
pub fn is_crd_type(t: &ResourceType) -> bool {
    t.group == GROUP && t.plural == PLURAL
}

/// Where a CRD's instances are stored: (spec.group, spec.names.plural).
pub fn instance_storage(crd: &Value) -> (String, String) {
    (
        text(&crd["spec"]["group"]),
        text(&crd["spec"]["names"]["plural"]),
    )
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The name of the version marked `storage: true`, if exactly one is.
fn storage_version(crd: &Value) -> Option<String> {
    let versions = crd["spec"]["versions"].as_array()?;
    let mut storage = versions.iter().filter(|v| v["storage"] == true);
    match (storage.next(), storage.next()) {
        (Some(version), None) => Some(text(&version["name"])),
        _ => None,
    }
}

/// apiextensions v1 defaulting (`SetDefaults_CustomResourceDefinitionSpec`): singular is the
/// lowercased kind, listKind is kind + "List", conversion is `None`.
pub fn default_spec(crd: &mut Value) {
    let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
        let kind = names
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if names
            .get("singular")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            names.insert("singular".into(), json!(kind.to_lowercase()));
        }
        if !kind.is_empty()
            && names
                .get("listKind")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            names.insert("listKind".into(), json!(format!("{kind}List")));
        }
    }
    if spec.get("conversion").is_none_or(Value::is_null) {
        spec.insert("conversion".into(), json!({"strategy": "None"}));
    }
}

fn error(
    field: impl Into<String>,
    kind: FieldErrorKind,
    value: Option<Value>,
    detail: &str,
) -> FieldError {
    FieldError {
        field: field.into(),
        kind,
        value,
        detail: detail.to_owned(),
    }
}

/// The checks of kube-apiserver's CRD validation that decide whether the CRD can be served:
/// names, scope, exactly one storage version, schemas the server can use; on update, an
/// established CRD's scope is immutable and stored versions must stay in `spec.versions`.
pub fn validate(crd: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let spec = &crd["spec"];
    let group = text(&spec["group"]);
    let plural = text(&spec["names"]["plural"]);
    let kind = text(&spec["names"]["kind"]);
    for (field, value) in [
        ("spec.group", &group),
        ("spec.names.plural", &plural),
        ("spec.names.kind", &kind),
    ] {
        if value.is_empty() {
            errors.push(error(field, FieldErrorKind::Required, None, ""));
        }
    }
    let name = text(&crd["metadata"]["name"]);
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        errors.push(error(
            "metadata.name",
            FieldErrorKind::Invalid,
            Some(json!(name)),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let scope = text(&spec["scope"]);
    if scope != "Namespaced" && scope != "Cluster" {
        errors.push(if scope.is_empty() {
            error("spec.scope", FieldErrorKind::Required, None, "")
        } else {
            FieldError::not_supported("spec.scope", json!(scope), &["Cluster", "Namespaced"])
        });
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        errors.push(error("spec.versions", FieldErrorKind::Required, None, ""));
    } else if storage_version(crd).is_none() {
        errors.push(error(
            "spec.versions",
            FieldErrorKind::Invalid,
            None,
            "must have exactly one version marked as storage version",
        ));
    }
    for (index, version) in versions.iter().enumerate() {
        if text(&version["name"]).is_empty() {
            errors.push(error(
                format!("spec.versions[{index}].name"),
                FieldErrorKind::Required,
                None,
                "",
            ));
        }
        if let Some(schema) = version.pointer("/schema/openAPIV3Schema")
            && let Err(message) = SchemaValidator::new(schema.clone())
        {
            errors.push(error(
                format!("spec.versions[{index}].schema.openAPIV3Schema"),
                FieldErrorKind::Invalid,
                None,
                &message,
            ));
        }
    }
    if let Some(old) = old {
        let old_scope = text(&old["spec"]["scope"]);
        if is_condition_true(old, "Established") && scope != old_scope && !scope.is_empty() {
            errors.push(error(
                "spec.scope",
                FieldErrorKind::Invalid,
                Some(json!(scope)),
                "field is immutable",
            ));
        }
        let names: Vec<String> = versions.iter().map(|v| text(&v["name"])).collect();
        for (index, stored) in strings(&crd["status"]["storedVersions"]).iter().enumerate() {
            if !names.contains(stored) {
                errors.push(error(
                    format!("status.storedVersions[{index}]"),
                    FieldErrorKind::Invalid,
                    Some(json!(stored)),
                    "must appear in spec.versions",
                ));
            }
        }
    }
    errors
}

/// The status a new CRD is stored with (`PrepareForCreate`): no conditions and no accepted
/// names yet, the storage version recorded as stored.
pub fn initial_status(crd: &mut Value) {
    let stored: Vec<String> = storage_version(crd).into_iter().collect();
    crd["status"] = json!({
        "acceptedNames": {"plural": "", "kind": ""},
        "storedVersions": stored,
    });
}

/// `PrepareForUpdate`: a new storage version joins `status.storedVersions`.
pub fn record_stored_version(crd: &mut Value) {
    let Some(storage) = storage_version(crd) else {
        return;
    };
    if !crd["status"].is_object() {
        crd["status"] = json!({});
    }
    let mut stored = strings(&crd["status"]["storedVersions"]);
    if !stored.contains(&storage) {
        stored.push(storage);
        crd["status"]["storedVersions"] = json!(stored);
    }
}

fn condition<'a>(crd: &'a Value, kind: &str) -> Option<&'a Value> {
    crd["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// Whether the CRD's condition `kind` has status "True".
pub fn is_condition_true(crd: &Value, kind: &str) -> bool {
    condition(crd, kind).is_some_and(|c| c["status"] == "True")
}

/// Whether the CRD's kind is served: as kube's CRD handler, once its names are accepted or it
/// is established.
pub fn is_served(crd: &Value) -> bool {
    is_condition_true(crd, "NamesAccepted") || is_condition_true(crd, "Established")
}

/// `SetCRDCondition`: replaces the condition of that type, keeping lastTransitionTime when the
/// status does not change.
pub fn set_condition(
    crd: &mut Value,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &str,
) {
    if !crd["status"].is_object() {
        crd["status"] = json!({});
    }
    let mut conditions = crd["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut new = json!({
        "type": kind, "status": status, "lastTransitionTime": now,
        "reason": reason, "message": message,
    });
    match conditions.iter_mut().find(|c| c["type"] == kind) {
        Some(old) => {
            if old["status"] == status {
                new["lastTransitionTime"] = old["lastTransitionTime"].clone();
            }
            *old = new;
        }
        None => conditions.push(new),
    }
    crd["status"]["conditions"] = Value::Array(conditions);
}

/// `equalToAcceptedOrFresh`: a requested name is fine if it is already this CRD's or nobody
/// else in the group has it.
fn fresh(requested: &str, accepted: &str, used: &[String]) -> Result<(), String> {
    if requested == accepted || !used.iter().any(|u| u == requested) {
        Ok(())
    } else {
        Err(format!("{requested:?} is already in use"))
    }
}

/// The naming and establishing controllers: the status `crd` should have, given the other CRDs.
/// Names another CRD of the same group has accepted are refused (NamesAccepted False, the old
/// accepted name kept); a CRD whose names are accepted becomes Established and stays so.
pub fn controlled_status(crd: &Value, others: &[&Value], now: &str) -> Value {
    let group = text(&crd["spec"]["group"]);
    let mut resources: Vec<String> = Vec::new();
    let mut kinds: Vec<String> = Vec::new();
    for other in others
        .iter()
        .filter(|o| o["spec"]["group"] == group.as_str())
    {
        let names = &other["status"]["acceptedNames"];
        resources.push(text(&names["plural"]));
        resources.push(text(&names["singular"]));
        resources.extend(strings(&names["shortNames"]));
        kinds.push(text(&names["kind"]));
        kinds.push(text(&names["listKind"]));
    }
    resources.retain(|r| !r.is_empty());
    kinds.retain(|k| !k.is_empty());
    let requested = &crd["spec"]["names"];
    let accepted = &crd["status"]["acceptedNames"];
    let mut names: Map<String, Value> = accepted.as_object().cloned().unwrap_or_default();
    let mut conflict: Option<(&str, String)> = None;
    for (field, used, reason) in [
        ("plural", &resources, "PluralConflict"),
        ("singular", &resources, "SingularConflict"),
        ("kind", &kinds, "KindConflict"),
        ("listKind", &kinds, "ListKindConflict"),
    ] {
        let wanted = text(&requested[field]);
        match fresh(&wanted, &text(&accepted[field]), used) {
            Ok(()) => {
                if wanted.is_empty() {
                    names.remove(field);
                } else {
                    names.insert(field.into(), json!(wanted));
                }
            }
            Err(message) => conflict = Some((reason, message)),
        }
        // kube checks shortNames between singular and kind; the last conflict found is the
        // one reported, so the order matters.
        if field == "singular" {
            let wanted = strings(&requested["shortNames"]);
            let had = strings(&accepted["shortNames"]);
            if wanted != had {
                let clashes: Vec<String> = wanted
                    .iter()
                    .filter(|s| !had.contains(s))
                    .filter_map(|s| fresh(s, "", &resources).err())
                    .collect();
                match clashes.as_slice() {
                    [] if wanted.is_empty() => {
                        names.remove("shortNames");
                    }
                    [] => {
                        names.insert("shortNames".into(), json!(wanted));
                    }
                    [one] => conflict = Some(("ShortNamesConflict", one.clone())),
                    many => {
                        conflict = Some(("ShortNamesConflict", format!("[{}]", many.join(", "))))
                    }
                }
            }
        }
    }
    match requested.get("categories") {
        Some(categories) if !categories.is_null() => {
            names.insert("categories".into(), categories.clone());
        }
        _ => {
            names.remove("categories");
        }
    }
    let mut out = crd.clone();
    if !out["status"].is_object() {
        out["status"] = json!({});
    }
    out["status"]["acceptedNames"] = Value::Object(names);
    match &conflict {
        None => set_condition(
            &mut out,
            "NamesAccepted",
            "True",
            "NoConflicts",
            "no conflicts found",
            now,
        ),
        Some((reason, message)) => {
            set_condition(&mut out, "NamesAccepted", "False", reason, message, now)
        }
    }
    // The naming controller sets Established False ("Installing") and the establishing
    // controller then True; both happen before any client could act on the first, so only the
    // outcome is stored.
    if conflict.is_none() {
        set_condition(
            &mut out,
            "Established",
            "True",
            "InitialNamesAccepted",
            "the initial names have been accepted",
            now,
        );
    } else if condition(&out, "Established").is_none() {
        set_condition(
            &mut out,
            "Established",
            "False",
            "NotAccepted",
            "not all names are accepted",
            now,
        );
    }
    out
}
