//! Schema admission of custom resources, through kube's `Client`: one test per behaviour of the
//! fixture `Widget`'s `openAPIV3Schema` and `x-kubernetes-validations`, each checking the 422
//! Invalid `Status` kube-apiserver would send (reason, causes with field, reason and message).

mod common;

use kube::{
    Api,
    api::{ApiResource, DynamicObject, GroupVersionKind, PostParams},
    core::Status,
};
use serde_json::{Value, json};

/// The notice kube-apiserver appends when a blocking schema error skips the CEL rules.
const RULES_NOT_CHECKED: &str = "Invalid value: null: some validation rules were not checked \
     because the object was invalid; correct the existing errors to complete validation";

/// The server with the fixture CRDs and an `Api` for Widgets in the test's namespace. Keep the
/// target alive as long as the `Api` is used.
async fn widgets() -> (common::Target, Api<DynamicObject>) {
    let target = common::start().await;
    let api = Api::namespaced_with(target.client.clone(), target.ns(), &widget_resource());
    (target, api)
}

fn widget_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("test.example.com", "v1", "Widget");
    ApiResource::from_gvk_with_plural(&gvk, "widgets")
}

/// A Widget named `name` with this spec.
fn widget(name: &str, spec: Value) -> DynamicObject {
    DynamicObject::new(name, &widget_resource()).data(json!({ "spec": spec }))
}

/// A valid spec with `changes` merged over it (a `null` in `changes` is kept as `null`).
fn spec(changes: Value) -> Value {
    let mut spec = json!({"owner": "alice", "size": 3, "color": "green"});
    for (key, value) in changes.as_object().expect("changes is an object") {
        spec[key] = value.clone();
    }
    spec
}

async fn create(api: &Api<DynamicObject>, object: &DynamicObject) -> DynamicObject {
    api.create(&PostParams::default(), object)
        .await
        .unwrap_or_else(|e| panic!("creating {:?} failed: {e}", object.metadata.name))
}

/// Creates `object`, which must be refused as invalid; returns the Status.
async fn create_invalid(api: &Api<DynamicObject>, object: &DynamicObject) -> Status {
    match api.create(&PostParams::default(), object).await {
        Ok(created) => panic!("expected 422, but it was created: {:?}", created.data),
        Err(kube::Error::Api(status)) => *status,
        Err(other) => panic!("expected a 422 Status, got {other}"),
    }
}

/// Asserts a 422 Invalid Status for Widget `name` whose causes are exactly `expected`
/// (`(field, reason, message)`, in order), and whose message lists them as kube-apiserver does.
fn assert_invalid(status: &Status, name: &str, expected: &[(&str, &str, &str)]) {
    assert_eq!(status.code, 422, "{status:?}");
    assert_eq!(status.reason, "Invalid", "{status:?}");
    let details = status.details.as_ref().expect("details");
    assert_eq!(details.kind, "Widget");
    assert_eq!(details.group, "test.example.com");
    assert_eq!(details.name, name);
    let causes: Vec<(&str, &str, &str)> = details
        .causes
        .iter()
        .map(|c| (c.field.as_str(), c.reason.as_str(), c.message.as_str()))
        .collect();
    assert_eq!(causes, expected, "causes of {}", status.message);
    let errors: Vec<String> = expected
        .iter()
        .map(|(field, _, message)| format!("{field}: {message}"))
        .collect();
    let listed = match errors.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    assert_eq!(
        status.message,
        format!("Widget.test.example.com \"{name}\" is invalid: {listed}")
    );
}

fn rules_not_checked() -> (&'static str, &'static str, &'static str) {
    ("<nil>", "FieldValueInvalid", RULES_NOT_CHECKED)
}

#[tokio::test]
async fn a_value_of_the_wrong_type_is_type_invalid() {
    let (_server, api) = widgets().await;
    let status = create_invalid(&api, &widget("w", spec(json!({"size": "big"})))).await;
    assert_invalid(
        &status,
        "w",
        &[
            (
                "spec.size",
                "FieldValueTypeInvalid",
                r#"Invalid value: "string": spec.size in body must be of type integer: "string""#,
            ),
            rules_not_checked(),
        ],
    );
}

#[tokio::test]
async fn a_missing_required_field_is_required_value() {
    let (_server, api) = widgets().await;
    let status = create_invalid(&api, &widget("w", json!({"size": 3}))).await;
    assert_invalid(
        &status,
        "w",
        &[
            ("spec.owner", "FieldValueRequired", "Required value"),
            rules_not_checked(),
        ],
    );
}

#[tokio::test]
async fn a_value_outside_the_enum_is_unsupported() {
    let (_server, api) = widgets().await;
    let status = create_invalid(&api, &widget("w", spec(json!({"color": "purple"})))).await;
    assert_invalid(
        &status,
        "w",
        &[
            (
                "spec.color",
                "FieldValueNotSupported",
                r#"Unsupported value: "purple": supported values: "red", "green", "blue""#,
            ),
            rules_not_checked(),
        ],
    );
    create(&api, &widget("ok", spec(json!({"color": "blue"})))).await;
}

#[tokio::test]
async fn a_string_not_matching_the_pattern_is_invalid() {
    let (_server, api) = widgets().await;
    let status = create_invalid(&api, &widget("w", spec(json!({"code": "abc-1"})))).await;
    // A pattern failure does not block the CEL rules, so no "not checked" notice.
    assert_invalid(
        &status,
        "w",
        &[(
            "spec.code",
            "FieldValueInvalid",
            r#"Invalid value: "abc-1": spec.code in body should match '^[A-Z]{3}-[0-9]+$'"#,
        )],
    );
    let created = create(&api, &widget("ok", spec(json!({"code": "ABC-12"})))).await;
    assert_eq!(created.data["spec"]["code"], "ABC-12");
}

#[tokio::test]
async fn a_malformed_date_time_is_type_invalid() {
    let (_server, api) = widgets().await;
    let status = create_invalid(&api, &widget("w", spec(json!({"startedAt": "yesterday"})))).await;
    assert_invalid(
        &status,
        "w",
        &[
            (
                "spec.startedAt",
                "FieldValueTypeInvalid",
                r#"Invalid value: "yesterday": spec.startedAt in body must be of type date-time: "yesterday""#,
            ),
            rules_not_checked(),
        ],
    );
    let created = create(
        &api,
        &widget("ok", spec(json!({"startedAt": "2024-05-01T10:00:00Z"}))),
    )
    .await;
    assert_eq!(created.data["spec"]["startedAt"], "2024-05-01T10:00:00Z");
}

#[tokio::test]
async fn numbers_outside_minimum_and_maximum_are_invalid() {
    let (_server, api) = widgets().await;
    let status = create_invalid(&api, &widget("low", spec(json!({"size": 0})))).await;
    assert_invalid(
        &status,
        "low",
        &[(
            "spec.size",
            "FieldValueInvalid",
            "Invalid value: 0: spec.size in body should be greater than or equal to 1",
        )],
    );
    let status = create_invalid(&api, &widget("high", spec(json!({"size": 11})))).await;
    assert_invalid(
        &status,
        "high",
        &[(
            "spec.size",
            "FieldValueInvalid",
            "Invalid value: 11: spec.size in body should be less than or equal to 10",
        )],
    );
    create(&api, &widget("min", spec(json!({"size": 1})))).await;
    create(&api, &widget("max", spec(json!({"size": 10})))).await;
}

#[tokio::test]
async fn a_list_longer_than_max_items_is_too_many() {
    let (_server, api) = widgets().await;
    let tags = json!({"tags": ["a", "b", "c", "d"]});
    let status = create_invalid(&api, &widget("w", spec(tags))).await;
    assert_invalid(
        &status,
        "w",
        &[
            (
                "spec.tags",
                "FieldValueTooMany",
                "Too many: 4: must have at most 3 items",
            ),
            rules_not_checked(),
        ],
    );
    create(&api, &widget("ok", spec(json!({"tags": ["a", "b", "c"]})))).await;
}

#[tokio::test]
async fn preserve_unknown_fields_keeps_undeclared_fields_below_it() {
    let (_server, api) = widgets().await;
    let extra = json!({"anything": {"deep": [1, "two", {"three": true}]}, "n": 1.5});
    let created = create(&api, &widget("w", spec(json!({"extra": extra.clone()})))).await;
    assert_eq!(created.data["spec"]["extra"], extra);
    let stored = api.get("w").await.expect("get");
    assert_eq!(stored.data["spec"]["extra"], extra);
}

#[tokio::test]
async fn pruning_drops_undeclared_fields_elsewhere() {
    let (_server, api) = widgets().await;
    let mut object = widget("w", spec(json!({"bogus": {"deep": 1}, "size": 2})));
    object.data["topLevel"] = json!("dropped");
    object.data["status"] = json!({"phase": "Ready", "bogus": 1});
    let created = create(&api, &object).await;
    let stored = api.get("w").await.expect("get");
    for object in [&created, &stored] {
        let spec = object.data["spec"].as_object().expect("spec");
        assert!(!spec.contains_key("bogus"), "spec.bogus kept: {spec:?}");
        assert_eq!(spec["size"], 2, "declared fields stay");
        assert!(object.data.get("topLevel").is_none(), "{:?}", object.data);
        // The status subresource drops status on create anyway.
        assert!(object.data.get("status").is_none(), "{:?}", object.data);
    }
    // An undeclared field of the wrong shape is dropped, not validated.
    create(&api, &widget("w2", spec(json!({"bogus": [true, null]})))).await;
}

#[tokio::test]
async fn defaults_fill_in_missing_fields() {
    let (_server, api) = widgets().await;
    let created = create(&api, &widget("w", spec(json!({})))).await;
    assert_eq!(created.data["spec"]["mode"], "fast");
    assert_eq!(
        api.get("w").await.expect("get").data["spec"]["mode"],
        "fast"
    );
    let explicit = create(&api, &widget("slow", spec(json!({"mode": "slow"})))).await;
    assert_eq!(explicit.data["spec"]["mode"], "slow");
}

#[tokio::test]
async fn int_or_string_accepts_integers_and_strings_only() {
    let (_server, api) = widgets().await;
    let number = create(&api, &widget("number", spec(json!({"port": 8080})))).await;
    assert_eq!(number.data["spec"]["port"], 8080);
    let name = create(&api, &widget("name", spec(json!({"port": "http"})))).await;
    assert_eq!(name.data["spec"]["port"], "http");
    let status = create_invalid(&api, &widget("bool", spec(json!({"port": true})))).await;
    assert_invalid(
        &status,
        "bool",
        &[
            (
                "spec.port",
                "FieldValueTypeInvalid",
                r#"Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#,
            ),
            rules_not_checked(),
        ],
    );
}

#[tokio::test]
async fn nullable_fields_accept_null() {
    let (_server, api) = widgets().await;
    let created = create(&api, &widget("w", spec(json!({"note": null})))).await;
    let kept = created.data["spec"].as_object().expect("spec");
    assert_eq!(kept.get("note"), Some(&Value::Null), "{kept:?}");
    // A null in a field that is not nullable and has no default is dropped instead.
    let dropped = create(&api, &widget("w2", spec(json!({"code": null})))).await;
    let without = dropped.data["spec"].as_object().expect("spec");
    assert!(!without.contains_key("code"), "{without:?}");
    // ... and one with a default gets the default.
    let defaulted = create(&api, &widget("w3", spec(json!({"mode": null})))).await;
    assert_eq!(defaulted.data["spec"]["mode"], "fast");
}

#[tokio::test]
async fn additional_properties_type_the_map_values() {
    let (_server, api) = widgets().await;
    let labels = json!({"labels": {"team": "a", "count": 2}});
    let status = create_invalid(&api, &widget("w", spec(labels))).await;
    assert_invalid(
        &status,
        "w",
        &[
            (
                "spec.labels.count",
                "FieldValueTypeInvalid",
                r#"Invalid value: "integer": spec.labels.count in body must be of type string: "integer""#,
            ),
            rules_not_checked(),
        ],
    );
    let labels = json!({"labels": {"team": "a", "count": "2"}});
    let created = create(&api, &widget("ok", spec(labels))).await;
    assert_eq!(
        created.data["spec"]["labels"],
        json!({"team": "a", "count": "2"})
    );
}

#[tokio::test]
async fn the_spec_level_cel_rule_is_enforced() {
    let (_server, api) = widgets().await;
    let red_and_big = spec(json!({"size": 6, "color": "red"}));
    let status = create_invalid(&api, &widget("w", red_and_big)).await;
    assert_invalid(
        &status,
        "w",
        &[(
            "spec",
            "FieldValueInvalid",
            r#"Invalid value: red widgets are at most size 5"#,
        )],
    );
    create(
        &api,
        &widget("red", spec(json!({"size": 5, "color": "red"}))),
    )
    .await;
    create(
        &api,
        &widget("big", spec(json!({"size": 6, "color": "blue"}))),
    )
    .await;
}

#[tokio::test]
async fn the_transition_rule_makes_owner_immutable_on_update_only() {
    let (_server, api) = widgets().await;
    // On create there is no oldSelf, so the rule does not apply.
    let mut stored = create(&api, &widget("w", spec(json!({"owner": "alice"})))).await;

    stored.data["spec"]["owner"] = json!("bob");
    let status = match api.replace("w", &PostParams::default(), &stored).await {
        Ok(updated) => panic!("owner changed: {:?}", updated.data),
        Err(kube::Error::Api(status)) => *status,
        Err(other) => panic!("expected a 422 Status, got {other}"),
    };
    assert_invalid(
        &status,
        "w",
        &[(
            "spec.owner",
            "FieldValueInvalid",
            r#"Invalid value: "bob": owner is immutable"#,
        )],
    );
    assert_eq!(
        api.get("w").await.expect("get").data["spec"]["owner"],
        "alice"
    );

    // Other fields may change while owner stays.
    stored.data["spec"]["owner"] = json!("alice");
    stored.data["spec"]["size"] = json!(4);
    let updated = api
        .replace("w", &PostParams::default(), &stored)
        .await
        .expect("an update that keeps owner is admitted");
    assert_eq!(updated.data["spec"]["size"], 4);
}

#[tokio::test]
async fn cel_rules_are_skipped_when_the_schema_already_failed() {
    let (_server, api) = widgets().await;
    // Breaks the CEL rule (red, size 6) and maxItems, a blocking error: only the schema error
    // and kube-apiserver's notice are reported, not the rule's message.
    let blocked = spec(json!({"size": 6, "color": "red", "tags": ["a", "b", "c", "d"]}));
    let status = create_invalid(&api, &widget("blocked", blocked)).await;
    assert_invalid(
        &status,
        "blocked",
        &[
            (
                "spec.tags",
                "FieldValueTooMany",
                "Too many: 4: must have at most 3 items",
            ),
            rules_not_checked(),
        ],
    );
    // A pattern failure is not blocking: the rule still runs and both are reported.
    let both = spec(json!({"size": 6, "color": "red", "code": "nope"}));
    let status = create_invalid(&api, &widget("both", both)).await;
    assert_invalid(
        &status,
        "both",
        &[
            (
                "spec.code",
                "FieldValueInvalid",
                r#"Invalid value: "nope": spec.code in body should match '^[A-Z]{3}-[0-9]+$'"#,
            ),
            (
                "spec",
                "FieldValueInvalid",
                r#"Invalid value: red widgets are at most size 5"#,
            ),
        ],
    );
}
