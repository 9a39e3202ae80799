//! Server-side apply, approximated: the applied configuration is merged into the object, and the
//! fields this manager applied last time but leaves out now are removed. Field ownership is
//! recorded per manager in `managedFields[].fieldsV1` in the real format (`{"f:spec": {...}}`).
//!
//! Where it differs from kube-apiserver (also in README.md): every list is atomic (no
//! `listType: map` merging by key); applying a field another manager owns never conflicts;
//! fields set by non-apply writes are not tracked.

use serde_json::{Map, Value, json};

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
