//! Server-side apply, approximated: the applied configuration is merged into the object, and the
//! fields this manager applied last time but leaves out now are removed. Field ownership is
//! recorded per manager in `managedFields[].fieldsV1` in the real format (`{"f:spec": {...}}`).
//!
//! Conflicts follow kube-apiserver: applying a value to a field another manager owns with a
//! different value is a 409 Conflict unless `force` is set, which takes the field over. A
//! non-apply write (create, update, patch) owns the fields it sets or changes, recorded in its
//! manager's `Update` entry, and takes them away from every other manager.
//!
//! Where it differs from kube-apiserver (also in README.md): every list is atomic (no
//! `listType: map` merging by key).

use serde_json::{Map, Value, json};

use crate::go_fmt::go_quote;

/// The field set of an applied configuration, in `fieldsV1` form: every object key becomes
/// `f:<key>`; any other value (lists included) is a leaf `{}`.
pub fn field_set(config: &Value) -> Value {
    match config {
        Value::Object(map) => {
            let mut set = Map::new();
            for (key, value) in map {
                if matches!(key.as_str(), "apiVersion" | "kind") {
                    continue;
                }
                let child = match value {
                    Value::Object(inner) if !inner.is_empty() => field_set(value),
                    _ => json!({}),
                };
                set.insert(format!("f:{key}"), child);
            }
            Value::Object(set)
        }
        _ => json!({}),
    }
}

/// Applies `config` over `object`: removes what `previous` (the manager's last field set)
/// owned and `config` no longer sets, then merges `config` in. Returns the result.
pub fn apply(object: &Value, config: &Value, previous: Option<&Value>) -> Value {
    let mut result = object.clone();
    if let Some(previous) = previous {
        remove_dropped(&mut result, previous, &field_set(config));
    }
    merge(&mut result, config);
    result
}

/// Removes from `object` the leaves `previous` has and `current` lacks.
fn remove_dropped(object: &mut Value, previous: &Value, current: &Value) {
    let (Some(previous), Some(target)) = (previous.as_object(), object.as_object_mut()) else {
        return;
    };
    for (field, owned) in previous {
        let Some(key) = field.strip_prefix("f:") else {
            continue;
        };
        match current.get(field) {
            None => {
                // Metadata identity is never the manager's to drop.
                if !matches!(key, "metadata" | "name" | "namespace") {
                    target.remove(key);
                }
            }
            Some(still) if owned.as_object().is_some_and(|o| !o.is_empty()) => {
                if let Some(child) = target.get_mut(key) {
                    remove_dropped(child, owned, still);
                }
            }
            Some(_) => {}
        }
    }
}

/// Merges objects key by key; anything else in `config` replaces what is there.
fn merge(target: &mut Value, config: &Value) {
    match (target, config) {
        (Value::Object(target), Value::Object(config)) => {
            for (key, value) in config {
                match target.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge(existing, value)
                    }
                    _ => {
                        target.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (target, config) => *target = config.clone(),
    }
}

/// The leaf paths of a `fieldsV1` set.
fn leaves(set: &Value) -> Vec<Vec<String>> {
    fn walk(set: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        let Some(map) = set.as_object() else {
            return;
        };
        for (field, child) in map {
            let Some(key) = field.strip_prefix("f:") else {
                continue;
            };
            prefix.push(key.to_owned());
            if child.as_object().is_some_and(|c| !c.is_empty()) {
                walk(child, prefix, out);
            } else {
                out.push(prefix.clone());
            }
            prefix.pop();
        }
    }
    let mut out = Vec::new();
    walk(set, &mut Vec::new(), &mut out);
    out
}

fn value_at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(object, |value, key| value.get(key))
}

fn dotted(path: &[String]) -> String {
    path.iter().map(|k| format!(".{k}")).collect()
}

/// Removes one leaf path from a `fieldsV1` set, pruning emptied parents.
fn remove_leaf(set: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let Some(map) = set.as_object_mut() else {
        return;
    };
    let field = format!("f:{first}");
    if rest.is_empty() {
        map.remove(&field);
    } else if let Some(child) = map.get_mut(&field) {
        remove_leaf(child, rest);
        if child.as_object().is_some_and(serde_json::Map::is_empty) {
            map.remove(&field);
        }
    }
}

fn entries_mut(object: &mut Value) -> impl Iterator<Item = &mut Value> {
    object
        .pointer_mut("/metadata/managedFields")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

/// Whether a managedFields entry is `manager`'s applied configuration.
fn is_apply_of(entry: &Value, manager: &str) -> bool {
    entry["operation"] == "Apply" && entry["manager"] == manager
}

/// Metadata the server sets: no manager's field.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "generateName",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// The fields a non-apply write from `old` (`None` for a create) to `new` sets, in `fieldsV1`
/// form: every leaf whose value is new or changed.
pub fn updated_fields(old: Option<&Value>, new: &Value) -> Value {
    fn walk(old: Option<&Value>, new: &Value, depth: usize, in_metadata: bool) -> Option<Value> {
        match new {
            Value::Object(map) if !map.is_empty() => {
                let mut set = Map::new();
                for (key, value) in map {
                    let skipped = match depth {
                        0 => matches!(key.as_str(), "apiVersion" | "kind"),
                        1 => in_metadata && SERVER_METADATA.contains(&key.as_str()),
                        _ => false,
                    };
                    if skipped {
                        continue;
                    }
                    let old_child = old.and_then(|o| o.get(key));
                    let metadata = depth == 0 && key == "metadata";
                    if let Some(child) = walk(old_child, value, depth + 1, metadata) {
                        set.insert(format!("f:{key}"), child);
                    }
                }
                (!set.is_empty()).then_some(Value::Object(set))
            }
            _ => (old != Some(new)).then(|| json!({})),
        }
    }
    walk(old, new, 0, false).unwrap_or_else(|| json!({}))
}

/// Adds the field set `more` to `set`.
pub fn union(set: &mut Value, more: &Value) {
    let Some(more) = more.as_object() else {
        return;
    };
    if !set.is_object() {
        *set = json!({});
    }
    let Some(target) = set.as_object_mut() else {
        return;
    };
    for (field, child) in more {
        match target.get_mut(field) {
            Some(existing) => union(existing, child),
            None => {
                target.insert(field.clone(), child.clone());
            }
        }
    }
}

/// How kube-apiserver names a manager in a conflict: `"name"` for an applier, `"name" using
/// apiVersion` for an updater.
fn printed_manager(entry: &Value) -> String {
    let name = entry["manager"].as_str().unwrap_or_default();
    if entry["operation"] == "Update" {
        let version = entry["apiVersion"].as_str().unwrap_or_default();
        format!("{} using {version}", go_quote(name))
    } else {
        go_quote(name)
    }
}

/// The fields `config` would set that another manager owns with a different value:
/// (that manager as kube-apiserver prints it, `.path`).
pub fn conflicts(object: &Value, config: &Value, manager: &str) -> Vec<(String, String)> {
    let mine = leaves(&field_set(config));
    let mut found = Vec::new();
    let entries = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array);
    for entry in entries.into_iter().flatten() {
        if is_apply_of(entry, manager) {
            continue;
        }
        let other = printed_manager(entry);
        for leaf in leaves(&entry["fieldsV1"]) {
            if mine.contains(&leaf) && value_at(object, &leaf) != value_at(config, &leaf) {
                found.push((other.clone(), dotted(&leaf)));
            }
        }
    }
    found
}

/// Takes the given fields away from every other manager (a forced apply).
pub fn take_over(object: &mut Value, config: &Value, manager: &str) {
    let mine = leaves(&field_set(config));
    for entry in entries_mut(object) {
        if is_apply_of(entry, manager) {
            continue;
        }
        for leaf in &mine {
            remove_leaf(&mut entry["fieldsV1"], leaf);
        }
    }
}

/// After a non-apply write from `old` to `new`: every field whose value changed is no longer
/// owned by whoever owned it (the writer records it as its own next).
pub fn release_changed(new: &mut Value, old: &Value) {
    let snapshot = new.clone();
    for entry in entries_mut(new) {
        for leaf in leaves(&entry["fieldsV1"]) {
            if value_at(old, &leaf) != value_at(&snapshot, &leaf) {
                remove_leaf(&mut entry["fieldsV1"], &leaf);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_set_has_the_fields_v1_shape() {
        let config = json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a", "labels": {"x": "1"}},
                            "spec": {"list": [1, 2], "map": {}}});
        assert_eq!(
            field_set(&config),
            json!({"f:metadata": {"f:name": {}, "f:labels": {"f:x": {}}}, "f:spec": {"f:list": {}, "f:map": {}}})
        );
    }

    #[test]
    fn fields_the_manager_stops_applying_are_removed() {
        let object =
            json!({"spec": {"a": 1, "b": 2, "other": 3}, "status": {"phase": "X", "next": "t"}});
        let previous = json!({"f:status": {"f:phase": {}, "f:next": {}}});
        let config = json!({"status": {"phase": "Y"}});
        let result = apply(&object, &config, Some(&previous));
        assert_eq!(result["status"], json!({"phase": "Y"}));
        assert_eq!(result["spec"], object["spec"], "fields of others stay");
    }

    #[test]
    fn first_apply_only_merges() {
        let object = json!({"spec": {"a": 1}});
        let result = apply(&object, &json!({"spec": {"b": 2}}), None);
        assert_eq!(result["spec"], json!({"a": 1, "b": 2}));
    }

    fn managed(manager: &str, set: Value) -> Value {
        json!({"manager": manager, "operation": "Apply", "fieldsV1": set})
    }

    #[test]
    fn applying_another_managers_value_differently_conflicts() {
        let object = json!({"metadata": {"managedFields": [managed("a", json!({"f:spec": {"f:holder": {}}}))]},
                            "spec": {"holder": "a"}});
        let config = json!({"spec": {"holder": "b"}});
        assert_eq!(
            conflicts(&object, &config, "b"),
            vec![("\"a\"".to_owned(), ".spec.holder".to_owned())]
        );
        assert!(
            conflicts(&object, &json!({"spec": {"holder": "a"}}), "b").is_empty(),
            "same value"
        );
        assert!(conflicts(&object, &config, "a").is_empty(), "own field");
    }

    #[test]
    fn forcing_takes_the_field_over() {
        let mut object = json!({"metadata": {"managedFields": [managed("a", json!({"f:spec": {"f:holder": {}, "f:x": {}}}))]},
                                "spec": {"holder": "a", "x": 1}});
        take_over(&mut object, &json!({"spec": {"holder": "b"}}), "b");
        assert_eq!(
            object["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:spec": {"f:x": {}}})
        );
    }

    #[test]
    fn an_update_releases_the_fields_it_changes() {
        let old = json!({"metadata": {"managedFields": [managed("a", json!({"f:spec": {"f:holder": {}, "f:x": {}}}))]},
                         "spec": {"holder": "a", "x": 1}});
        let mut new = old.clone();
        new["spec"]["holder"] = Value::Null;
        release_changed(&mut new, &old);
        assert_eq!(
            new["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:spec": {"f:x": {}}})
        );
        let config = json!({"spec": {"holder": "b"}});
        assert!(conflicts(&new, &config, "b").is_empty());
    }

    #[test]
    fn an_update_owns_what_it_sets_or_changes() {
        let old = json!({"apiVersion": "v1", "kind": "X",
                         "metadata": {"name": "a", "resourceVersion": "3", "labels": {"x": "1"}},
                         "spec": {"same": 1, "changed": 1, "removed": 1}});
        let mut new = old.clone();
        new["metadata"]["resourceVersion"] = json!("4");
        new["metadata"]["labels"]["y"] = json!("2");
        new["spec"]["changed"] = json!(2);
        new["spec"]["added"] = json!({"deep": [1]});
        new["spec"].as_object_mut().unwrap().remove("removed");
        assert_eq!(
            updated_fields(Some(&old), &new),
            json!({"f:metadata": {"f:labels": {"f:y": {}}},
                   "f:spec": {"f:changed": {}, "f:added": {"f:deep": {}}}})
        );
        assert_eq!(
            updated_fields(None, &old),
            json!({"f:metadata": {"f:labels": {"f:x": {}}},
                   "f:spec": {"f:same": {}, "f:changed": {}, "f:removed": {}}})
        );
    }

    #[test]
    fn a_field_an_update_owns_conflicts_with_an_apply() {
        let update = json!({"manager": "u", "operation": "Update", "apiVersion": "x.io/v1",
                            "fieldsV1": {"f:spec": {"f:holder": {}}}});
        let object = json!({"metadata": {"managedFields": [update]}, "spec": {"holder": "u"}});
        assert_eq!(
            conflicts(&object, &json!({"spec": {"holder": "b"}}), "u"),
            vec![("\"u\" using x.io/v1".to_owned(), ".spec.holder".to_owned())],
            "an Update entry is another owner, even under the applier's name"
        );
    }

    #[test]
    fn union_merges_field_sets() {
        let mut set = json!({"f:spec": {"f:a": {}}});
        union(
            &mut set,
            &json!({"f:spec": {"f:b": {}}, "f:metadata": {"f:labels": {}}}),
        );
        assert_eq!(
            set,
            json!({"f:spec": {"f:a": {}, "f:b": {}}, "f:metadata": {"f:labels": {}}})
        );
    }

    #[test]
    fn lists_are_replaced_whole() {
        let object = json!({"status": {"conditions": [{"type": "A"}, {"type": "B"}]}});
        let result = apply(
            &object,
            &json!({"status": {"conditions": [{"type": "A"}]}}),
            None,
        );
        assert_eq!(result["status"]["conditions"], json!([{"type": "A"}]));
    }
}
