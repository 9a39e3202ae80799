//! Admission of a custom resource against its CRD version's `openAPIV3Schema`, as kube-apiserver
//! does it.
//!
//! [`SchemaValidator::admit`] runs, in kube-apiserver's order:
//!
//! 1. structural pruning (`apiextensions-apiserver/pkg/apiserver/schema/pruning`): fields the
//!    schema does not declare are dropped, except below `x-kubernetes-preserve-unknown-fields`,
//!    and `apiVersion`, `kind` and `metadata` at the root and in embedded resources;
//! 2. null handling and defaulting (`schema/defaulting`): a `null` in a field that is not
//!    `nullable` is replaced by the field's `default`, or dropped when it has none; then missing
//!    fields receive their `default`s ([`kube_cel::apply_defaults`]);
//! 3. OpenAPI value validation, with the wording of `k8s.io/kube-openapi/pkg/validation` as
//!    converted to field errors by `apiextensions-apiserver/pkg/apiserver/validation`;
//! 4. `x-kubernetes-validations` CEL rules through kube-cel, unless step 3 found an error that
//!    kube-apiserver treats as blocking (`hasBlockingErr` in the customresource strategy).
//!
//! [`FieldError`] renders exactly as `k8s.io/apimachinery/pkg/util/validation/field.Error`, and
//! [`invalid_status`] builds the 422 `metav1.Status` of `apierrors.NewInvalid`.
//!
//! Faithful quirks worth knowing: a `null` in a `nullable` field that has an `enum` is rejected
//! (go-openapi's enum check never matches null); CEL rules are not evaluated on null values; a
//! failed rule shows the value it judged (`Invalid value: "bob": ...`), or no value for an
//! object or array (`Invalid value: <message>`), and a rule that cannot be evaluated shows the
//! node's schema type, as kube-apiserver 1.37 does; a null bad value prints as `null`.
//!
//! Known differences from kube-apiserver: validation ratcheting on update (unchanged invalid
//! fields are accepted there) is not implemented; of the string formats only `date-time` and
//! `date` are checked; `x-kubernetes-list-type` uniqueness and embedded-resource `metadata`
//! are not validated; patterns use Rust's `regex`, whose `\d`, `\w` and `\s` are Unicode-aware
//! where Go's are ASCII-only.

use crate::go_fmt::go_quote;
use std::collections::HashMap;
use std::fmt;

use kube_cel::{CompiledSchema, ErrorKind as CelErrorKind, ValidationError};
use regex::Regex;
use serde_json::{Map, Number, Value, json};

// ---------------------------------------------------------------------------------------------
// Field errors (k8s.io/apimachinery/pkg/util/validation/field)
// ---------------------------------------------------------------------------------------------

/// The kind of a [`FieldError`], one per `field.ErrorType`.
///
/// kube-apiserver has no "too short" type: a `minLength` violation is [`FieldErrorKind::Invalid`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldErrorKind {
    /// `FieldValueNotFound`: a referenced value does not exist.
    NotFound,
    /// `FieldValueRequired`: a required field is missing.
    Required,
    /// `FieldValueDuplicate`: a value that must be unique is repeated.
    Duplicate,
    /// `FieldValueInvalid`: a malformed or out-of-range value.
    Invalid,
    /// `FieldValueNotSupported`: a value outside an enumeration.
    NotSupported,
    /// `FieldValueForbidden`: a value that is not allowed in this situation.
    Forbidden,
    /// `FieldValueTooLong`: a string longer than `maxLength`.
    TooLong,
    /// `FieldValueTooMany`: a list or object with too many items.
    TooMany,
    /// `InternalError`: a failure not caused by the request.
    Internal,
    /// `FieldValueTypeInvalid`: a value of the wrong type or string format.
    TypeInvalid,
}

impl FieldErrorKind {
    /// The `reason` of a Status cause, `field.ErrorType` as a string.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotFound => "FieldValueNotFound",
            Self::Required => "FieldValueRequired",
            Self::Duplicate => "FieldValueDuplicate",
            Self::Invalid => "FieldValueInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Forbidden => "FieldValueForbidden",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::Internal => "InternalError",
            Self::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// The human label that starts the message, `field.ErrorType.String()`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NotFound => "Not found",
            Self::Required => "Required value",
            Self::Duplicate => "Duplicate value",
            Self::Invalid | Self::TypeInvalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
            Self::Forbidden => "Forbidden",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::Internal => "Internal error",
        }
    }

    /// Whether kube-apiserver skips CEL rules when schema validation reported this kind
    /// (`hasBlockingErr`): the object is too malformed for the rules to be meaningful.
    fn blocks_cel(&self) -> bool {
        matches!(
            self,
            Self::NotSupported | Self::Required | Self::TooLong | Self::TooMany | Self::TypeInvalid
        )
    }
}

/// One invalid field, as kube-apiserver reports it in a 422 Status cause.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// The field path, such as `spec.gracePeriod` or `spec.hostnames[0]`; `<nil>` for errors
    /// about the object as a whole, as Go prints a nil `*field.Path`.
    pub field: String,
    /// What is wrong.
    pub kind: FieldErrorKind,
    /// The bad value shown in the message; `None` leaves it out (Go's `omitValue`). Ignored for
    /// `Required`, `Forbidden`, `TooLong` and `Internal`, whose messages never show a value.
    pub value: Option<Value>,
    /// The explanation after the value; may be empty.
    pub detail: String,
}

impl FieldError {
    /// A `field.Invalid` error.
    pub fn invalid(field: impl Into<String>, value: Value, detail: impl Into<String>) -> Self {
        Self::new(field, FieldErrorKind::Invalid, Some(value), detail)
    }

    /// A `field.Required` error.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(field, FieldErrorKind::Required, None, detail)
    }

    /// A `field.Forbidden` error.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(field, FieldErrorKind::Forbidden, None, detail)
    }

    /// A `field.Duplicate` error.
    pub fn duplicate(field: impl Into<String>, value: Value) -> Self {
        Self::new(field, FieldErrorKind::Duplicate, Some(value), "")
    }

    /// A `field.NotSupported` error listing the supported values.
    pub fn not_supported<S: AsRef<str>>(
        field: impl Into<String>,
        value: Value,
        supported: &[S],
    ) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| go_quote(s.as_ref())).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(field, FieldErrorKind::NotSupported, Some(value), detail)
    }

    /// A `field.TooLong` error for a string longer than `max_length` (negative: unknown).
    pub fn too_long(field: impl Into<String>, max_length: i64) -> Self {
        let detail = if max_length >= 0 {
            format!("may not be more than {max_length} bytes")
        } else {
            "value is too long".to_string()
        };
        Self::new(field, FieldErrorKind::TooLong, None, detail)
    }

    /// A `field.TooMany` error for `actual` items where at most `max` are allowed (negative:
    /// unknown).
    pub fn too_many(field: impl Into<String>, actual: i64, max: i64) -> Self {
        let detail = if max >= 0 {
            format!("must have at most {max} items")
        } else {
            "too many items".to_string()
        };
        let value = (actual >= 0).then(|| Value::from(actual));
        Self::new(field, FieldErrorKind::TooMany, value, detail)
    }

    /// A `field.TypeInvalid` error.
    pub fn type_invalid(field: impl Into<String>, value: Value, detail: impl Into<String>) -> Self {
        Self::new(field, FieldErrorKind::TypeInvalid, Some(value), detail)
    }

    /// A `field.InternalError`.
    pub fn internal(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(field, FieldErrorKind::Internal, None, detail)
    }

    fn new(
        field: impl Into<String>,
        kind: FieldErrorKind,
        value: Option<Value>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            kind,
            value,
            detail: detail.into(),
        }
    }

    /// The message without the field, `field.Error.ErrorBody()`: what a Status cause carries,
    /// e.g. `Unsupported value: "Closed": supported values: "Active", "Suspended"`.
    pub fn body(&self) -> String {
        let label = self.kind.label();
        let mut s = match (self.kind, &self.value) {
            (
                FieldErrorKind::Required
                | FieldErrorKind::Forbidden
                | FieldErrorKind::TooLong
                | FieldErrorKind::Internal,
                _,
            )
            | (_, None) => label.to_string(),
            (_, Some(value)) => format!("{label}: {}", go_value(value)),
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }

    /// The full message, `field.Error.Error()`: `<field>: <body>`, e.g.
    /// `spec.accountRef: Required value`.
    pub fn message(&self) -> String {
        format!("{}: {}", self.field, self.body())
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for FieldError {}

/// The 422 Invalid `metav1.Status` for these errors, as `apierrors.NewInvalid` builds it.
///
/// The message is `<Kind>.<group> "<name>" is invalid: <err>` for one distinct error and
/// `... is invalid: [<err1>, <err2>]` for several (repeated messages are listed once, as
/// `field.ErrorList.ToAggregate` does); every error still gets a cause.
pub fn invalid_status(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> Value {
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let mut distinct: Vec<String> = Vec::new();
    for error in errors {
        let message = error.message();
        if !distinct.contains(&message) {
            distinct.push(message);
        }
    }
    let message = match distinct.as_slice() {
        [] => format!("{qualified} {} is invalid", go_quote(name)),
        [one] => format!("{qualified} {} is invalid: {one}", go_quote(name)),
        many => format!(
            "{qualified} {} is invalid: [{}]",
            go_quote(name),
            many.join(", ")
        ),
    };
    let causes: Vec<Value> = errors
        .iter()
        .map(|error| {
            let mut cause = Map::new();
            cause.insert("reason".into(), error.kind.reason().into());
            cause.insert("message".into(), error.body().into());
            // `field` is omitempty in metav1.StatusCause.
            if !error.field.is_empty() {
                cause.insert("field".into(), error.field.clone().into());
            }
            Value::Object(cause)
        })
        .collect();
    let mut details = Map::new();
    // name and group are omitempty in metav1.StatusDetails.
    if !name.is_empty() {
        details.insert("name".into(), name.into());
    }
    if !group.is_empty() {
        details.insert("group".into(), group.into());
    }
    details.insert("kind".into(), kind.into());
    details.insert("causes".into(), Value::Array(causes));
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Invalid",
        "details": Value::Object(details),
        "code": 422,
    })
}

// ---------------------------------------------------------------------------------------------
// The schema validator
// ---------------------------------------------------------------------------------------------

/// Fields kept at the root and in `x-kubernetes-embedded-resource` objects even when the
/// schema does not declare them.
const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// String formats kube-apiserver validates (`apiextensions-apiserver/pkg/apiserver/validation`
/// `supportedFormats`, dashes removed as go-openapi normalises names). Any other `format`
/// (`int32`, `uint32`, `int64`, `double`, ...) is stripped from the schema before validation.
const SUPPORTED_FORMATS: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
];

/// A CRD version's schema, with its CEL rules and patterns compiled once.
#[derive(Debug)]
pub struct SchemaValidator {
    schema: Value,
    compiled: CompiledSchema,
    patterns: HashMap<String, Regex>,
}

impl SchemaValidator {
    /// Prepares `open_api_v3_schema` for admission. Fails, as kube-apiserver would refuse the
    /// CRD, when the schema is not an object, a `pattern` is not a valid regular expression, or
    /// a CEL rule does not compile.
    pub fn new(open_api_v3_schema: Value) -> Result<Self, String> {
        if !open_api_v3_schema.is_object() {
            return Err("openAPIV3Schema must be an object".to_string());
        }
        let mut patterns = HashMap::new();
        let mut problems = Vec::new();
        collect_patterns(
            &open_api_v3_schema,
            "openAPIV3Schema",
            &mut patterns,
            &mut problems,
        );
        let compiled = kube_cel::compile_schema(&open_api_v3_schema);
        collect_compilation_errors(&compiled, &mut problems);
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        Ok(Self {
            schema: open_api_v3_schema,
            compiled,
            patterns,
        })
    }

    /// The schema this validator was built from.
    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// What kube-apiserver does to a create (`old` = `None`) or update (`old` = the stored
    /// object) body: prune undeclared fields, default, validate against the schema, then run
    /// the CEL rules (transition rules only on update).
    ///
    /// Returns the pruned and defaulted object, or every error found: schema errors sorted by
    /// field, then either the CEL rule errors or, when a schema error is of a kind that blocks
    /// CEL (`Required`, `NotSupported`, `TooLong`, `TooMany`, `TypeInvalid`), kube-apiserver's
    /// `<nil>: Invalid value: null: some validation rules were not checked ...` notice.
    pub fn admit(&self, object: Value, old: Option<&Value>) -> Result<Value, Vec<FieldError>> {
        let mut object = object;
        let mut unknown = Vec::new();
        prune_root(&mut object, &self.schema, &mut unknown);
        fix_nulls(&mut object, Some(&self.schema));
        let object = kube_cel::apply_defaults(&self.schema, &object);

        let mut errors = Vec::new();
        self.validate_node(&self.schema, &object, "", true, &mut errors);
        // Stable: errors of one field keep the validators' order (type before enum, ...).
        errors.sort_by(|a, b| a.field.cmp(&b.field));

        if errors.iter().any(|e| e.kind.blocks_cel()) {
            errors.push(FieldError::invalid(
                "<nil>",
                Value::Null,
                "some validation rules were not checked because the object was invalid; \
                 correct the existing errors to complete validation",
            ));
            return Err(errors);
        }

        // The stored object was pruned and defaulted when it was written; prune it again so a
        // hand-seeded old object compares the way a stored one would.
        let old = old.map(|old| {
            let mut old = old.clone();
            prune_root(&mut old, &self.schema, &mut Vec::new());
            fix_nulls(&mut old, Some(&self.schema));
            old
        });
        if let Err(cel_errors) = kube_cel::validate_compiled(&self.compiled, &object, old.as_ref())
        {
            let mut nodes = Vec::new();
            collect_cel_nodes(&self.schema, &object, "", "", &mut nodes);
            let mut mapped: Vec<FieldError> = cel_errors
                .iter()
                .filter_map(|e| cel_field_error(e, &nodes))
                .collect();
            // kube-cel walks properties in hash order; sort so the output is deterministic.
            mapped.sort_by(|a, b| a.field.cmp(&b.field));
            errors.extend(mapped);
        }

        if errors.is_empty() {
            Ok(object)
        } else {
            Err(errors)
        }
    }

    /// The paths of the fields pruning would drop from `object`, such as `spec.foo` or
    /// `spec.items[0].bar`, sorted: what kube-apiserver reports as `unknown field "<path>"` under
    /// `fieldValidation=Strict` (error) or `Warn` (warning).
    pub fn unknown_fields(&self, object: &Value) -> Vec<String> {
        let mut object = object.clone();
        let mut unknown = Vec::new();
        prune_root(&mut object, &self.schema, &mut unknown);
        unknown.sort();
        unknown
    }

    // -----------------------------------------------------------------------------------------
    // OpenAPI value validation (k8s.io/kube-openapi/pkg/validation/validate)
    // -----------------------------------------------------------------------------------------

    /// Validates `data` against the schema node `s` at `path`, in `SchemaValidator.Validate`'s
    /// order: type, allOf/anyOf/oneOf/not, string, format, number, array, enum, object.
    /// `path` is the Go validator's path (it may start with `.` below a root map); the field of
    /// the reported error is derived from it as apiextensions-apiserver does.
    fn validate_node(
        &self,
        s: &Value,
        data: &Value,
        path: &str,
        root: bool,
        errs: &mut Vec<FieldError>,
    ) {
        if data.is_null() {
            // Only the type and enum validators look at null.
            if let Some(e) = type_error(s, data, path) {
                errs.push(e);
            }
            enum_error(s, data, path, errs);
            return;
        }
        if let Some(e) = type_error(s, data, path) {
            errs.push(e);
        }
        self.validate_composition(s, data, path, errs);
        if let Value::String(text) = data {
            self.validate_string(s, text, path, errs);
            validate_format(s, text, path, errs);
        }
        if let Value::Number(n) = data {
            validate_number(s, n, path, errs);
        }
        if let Value::Array(items) = data {
            self.validate_array(s, items, path, errs);
        }
        enum_error(s, data, path, errs);
        if let Value::Object(map) = data {
            self.validate_object(s, map, path, root, errs);
        }
    }

    fn validate_string(&self, s: &Value, text: &str, path: &str, errs: &mut Vec<FieldError>) {
        // The string validator stops at its first failure.
        let length = text.chars().count() as i64;
        if let Some(max) = schema_int(s, "maxLength")
            && length > max
        {
            errs.push(FieldError::too_long(field_of(path), max));
            return;
        }
        if let Some(min) = schema_int(s, "minLength")
            && length < min
        {
            errs.push(FieldError::invalid(
                field_of(path),
                Value::from(text),
                format!("{path} in body should be at least {min} chars long"),
            ));
            return;
        }
        if let Some(pattern) = s.get("pattern").and_then(Value::as_str)
            && !pattern.is_empty()
            && let Some(re) = self.patterns.get(pattern)
            && !re.is_match(text)
        {
            errs.push(FieldError::invalid(
                field_of(path),
                Value::from(text),
                format!("{path} in body should match '{pattern}'"),
            ));
        }
    }

    fn validate_array(&self, s: &Value, items: &[Value], path: &str, errs: &mut Vec<FieldError>) {
        if let Some(item_schema) = s.get("items").filter(|i| i.is_object()) {
            for (i, item) in items.iter().enumerate() {
                self.validate_node(item_schema, item, &format!("{path}[{i}]"), false, errs);
            }
        }
        let size = items.len() as i64;
        if let Some(min) = schema_int(s, "minItems")
            && size < min
        {
            errs.push(FieldError::invalid(
                field_of(path),
                Value::from(size),
                format!("{path} in body should have at least {min} items"),
            ));
        }
        if let Some(max) = schema_int(s, "maxItems")
            && size > max
        {
            errs.push(FieldError::too_many(field_of(path), size, max));
        }
        if s.get("uniqueItems") == Some(&Value::Bool(true))
            && items
                .iter()
                .enumerate()
                .any(|(i, a)| items[..i].contains(a))
        {
            // DuplicateItems carries no value, which the conversion turns into "".
            errs.push(FieldError::invalid(
                field_of(path),
                Value::from(""),
                format!("{path} in body shouldn't contain duplicates"),
            ));
        }
    }

    fn validate_object(
        &self,
        s: &Value,
        map: &Map<String, Value>,
        path: &str,
        root: bool,
        errs: &mut Vec<FieldError>,
    ) {
        let count = map.len() as i64;
        // The property-count checks return before anything else of the object is validated.
        if let Some(min) = schema_int(s, "minProperties")
            && count < min
        {
            errs.push(FieldError::invalid(
                field_of(path),
                Value::from(count),
                format!("{path} in body should have at least {min} properties"),
            ));
            return;
        }
        if let Some(max) = schema_int(s, "maxProperties")
            && count > max
        {
            errs.push(FieldError::too_many(field_of(path), count, max));
            return;
        }
        let properties = s.get("properties").and_then(Value::as_object);
        if let Some(additional) = s.get("additionalProperties").filter(|a| a.is_object()) {
            for (key, value) in map {
                if properties.is_some_and(|p| p.contains_key(key)) {
                    continue;
                }
                // Go joins map keys with "." even at the root, giving ".key".
                self.validate_node(additional, value, &format!("{path}.{key}"), false, errs);
            }
        }
        if let Some(properties) = properties {
            for (name, property) in properties {
                if root && name == "metadata" {
                    // ObjectMeta is validated by the generic registry, not by the CRD schema.
                    continue;
                }
                if let Some(value) = map.get(name) {
                    self.validate_node(property, value, &join_path(path, name), false, errs);
                }
            }
        }
        if let Some(required) = s.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !map.contains_key(name) {
                    errs.push(FieldError::required(
                        field_of(&format!("{path}.{name}")),
                        "",
                    ));
                }
            }
        }
    }

    /// `allOf`, `anyOf`, `oneOf` and `not` (`schemaPropsValidator`). Their own messages are not
    /// `errors.Validation`s, so apiextensions-apiserver reports them on the nil path with the
    /// value `""`.
    fn validate_composition(
        &self,
        s: &Value,
        data: &Value,
        path: &str,
        errs: &mut Vec<FieldError>,
    ) {
        let branch_errors = |branch: &Value| {
            let mut found = Vec::new();
            self.validate_node(branch, data, path, false, &mut found);
            found
        };
        let composite = |detail: String| FieldError::invalid("<nil>", Value::from(""), detail);

        if let Some(branches) = s
            .get("anyOf")
            .and_then(Value::as_array)
            .filter(|b| !b.is_empty())
        {
            let results: Vec<Vec<FieldError>> = branches.iter().map(branch_errors).collect();
            if results.iter().all(|r| !r.is_empty()) {
                errs.push(composite(format!(
                    "{} must validate at least one schema (anyOf)",
                    go_quote(path)
                )));
                // go-openapi reports the branch with the most passing checks; the one with the
                // fewest errors is the closest cheap stand-in.
                if let Some(best) = results.into_iter().min_by_key(Vec::len) {
                    errs.extend(best);
                }
            }
        }
        if let Some(branches) = s
            .get("oneOf")
            .and_then(Value::as_array)
            .filter(|b| !b.is_empty())
        {
            let results: Vec<Vec<FieldError>> = branches.iter().map(branch_errors).collect();
            let valid = results.iter().filter(|r| r.is_empty()).count();
            if valid != 1 {
                let found = if valid == 0 {
                    "Found none valid".to_string()
                } else {
                    format!("Found {valid} valid alternatives")
                };
                errs.push(composite(format!(
                    "{} must validate one and only one schema (oneOf). {found}",
                    go_quote(path)
                )));
                if valid == 0
                    && let Some(best) = results.into_iter().min_by_key(Vec::len)
                {
                    errs.extend(best);
                }
            }
        }
        if let Some(branches) = s
            .get("allOf")
            .and_then(Value::as_array)
            .filter(|b| !b.is_empty())
        {
            let mut valid = 0;
            for branch in branches {
                let found = branch_errors(branch);
                if found.is_empty() {
                    valid += 1;
                }
                errs.extend(found);
            }
            if valid != branches.len() {
                // No separator before "Found none valid": go-openapi's format string has none.
                let found = if valid == 0 { "Found none valid" } else { "" };
                errs.push(composite(format!(
                    "{} must validate all the schemas (allOf){found}",
                    go_quote(path)
                )));
            }
        }
        if let Some(not) = s.get("not").filter(|n| n.is_object())
            && branch_errors(not).is_empty()
        {
            errs.push(composite(format!(
                "{} must not validate the schema (not)",
                go_quote(path)
            )));
        }
    }
}

/// The JSON type a schema node accepts: `type`, or `integer,string` for
/// `x-kubernetes-int-or-string` (as `ConvertJSONSchemaPropsWithPostProcess` sets it).
fn schema_types(s: &Value) -> Vec<&str> {
    if s.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        return vec!["integer", "string"];
    }
    match s.get("type").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => vec![t],
        _ => Vec::new(),
    }
}

/// The node's `format` if kube-apiserver keeps it (see [`SUPPORTED_FORMATS`]).
fn supported_format(s: &Value) -> Option<&str> {
    let format = s.get("format").and_then(Value::as_str)?;
    let normalized = format.replace('-', "");
    SUPPORTED_FORMATS
        .contains(&normalized.as_str())
        .then_some(format)
}

fn is_nullable(s: &Value) -> bool {
    s.get("nullable") == Some(&Value::Bool(true))
}

/// The JSON type and the go-openapi "format" of a decoded value (Go decodes JSON integers to
/// `int64` and other numbers to `float64`).
fn data_type(data: &Value) -> (&'static str, &'static str) {
    match data {
        Value::Null => ("null", ""),
        Value::Bool(_) => ("boolean", ""),
        Value::Number(n) => match number(n) {
            Num::Int(_) => ("integer", "int64"),
            Num::Float(_) => ("number", "float64"),
        },
        Value::String(_) => ("string", ""),
        Value::Array(_) => ("array", ""),
        Value::Object(_) => ("object", ""),
    }
}

/// go-openapi's `typeValidator`, quirks included: with a supported `format`, a non-string,
/// non-array value of the wrong type is reported against the format name, and an array passes a
/// string-with-format node.
fn type_error(s: &Value, data: &Value, path: &str) -> Option<FieldError> {
    let types = schema_types(s);
    let format = supported_format(s);
    if types.is_empty() && format.is_none() {
        return None;
    }
    let invalid = |type_name: String, value: &str| {
        Some(FieldError::type_invalid(
            field_of(path),
            Value::from(value),
            format!(
                "{path} in body must be of type {type_name}: {}",
                go_quote(value)
            ),
        ))
    };
    if data.is_null() {
        if !types.is_empty() && !types.contains(&"null") && !is_nullable(s) {
            return invalid(types.join(","), "null");
        }
        return None;
    }
    let (data_type, data_format) = data_type(data);
    let is_float_int = data_type == "number"
        && data.as_f64().is_some_and(is_json_integer)
        && types.contains(&"integer");
    let is_int_float = data_type == "integer" && types.contains(&"number");
    let string_or_array = matches!(data, Value::String(_) | Value::Array(_));
    if let Some(format) = format {
        if !(string_or_array || types.contains(&data_type) || is_float_int || is_int_float) {
            return invalid(format.to_string(), data_format);
        }
        if !types.contains(&"number") && !types.contains(&"integer") && string_or_array {
            return None;
        }
    }
    if !(types.contains(&data_type) || is_float_int || is_int_float) {
        return invalid(types.join(","), data_type);
    }
    None
}

/// go-openapi's `basicCommonValidator`: a value must equal one of `enum`, after Go's type
/// conversion to the enum value's type. Null never matches, so a nullable enum rejects null.
fn enum_error(s: &Value, data: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(values) = s
        .get("enum")
        .and_then(Value::as_array)
        .filter(|v| !v.is_empty())
    else {
        return;
    };
    if values.iter().any(|allowed| enum_matches(data, allowed)) {
        return;
    }
    let supported: Vec<String> = values
        .iter()
        .map(|v| match v {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        })
        .collect();
    errs.push(FieldError::not_supported(
        field_of(path),
        data.clone(),
        &supported,
    ));
}

fn enum_matches(data: &Value, allowed: &Value) -> bool {
    match (data, allowed) {
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Number(d), Value::Number(a)) => match (number(d), number(a)) {
            (Num::Int(d), Num::Int(a)) => d == a,
            // Go converts a float64 to int64 by truncation before comparing.
            (Num::Float(d), Num::Int(a)) => d.is_finite() && d.trunc() as i64 == a,
            (Num::Int(d), Num::Float(a)) => d as f64 == a,
            (Num::Float(d), Num::Float(a)) => d == a,
        },
        _ => data == allowed,
    }
}

/// Checks a string against its `format`; of kube-apiserver's formats only `date-time` and
/// `date` are checked here.
fn validate_format(s: &Value, text: &str, path: &str, errs: &mut Vec<FieldError>) {
    let Some(format) = supported_format(s) else {
        return;
    };
    let valid = match format.replace('-', "").as_str() {
        "datetime" => is_date_time(text),
        "date" => is_date(text),
        _ => true,
    };
    if !valid {
        errs.push(FieldError::type_invalid(
            field_of(path),
            Value::from(text),
            format!(
                "{path} in body must be of type {format}: {}",
                go_quote(text)
            ),
        ));
    }
}

/// go-openapi's `numberValidator`: multipleOf, minimum, maximum, in that order. An integer
/// value is compared with the bound truncated to an integer, and the message shows it so.
fn validate_number(s: &Value, n: &Number, path: &str, errs: &mut Vec<FieldError>) {
    let value = number(n);
    let shown = Value::Number(n.clone());
    let bound = |key: &str| s.get(key).and_then(Value::as_f64);
    let flag = |key: &str| s.get(key) == Some(&Value::Bool(true));

    if let Some(factor) = bound("multipleOf") {
        let failed = if factor < 0.0 {
            Some(format!(
                "factor MultipleOf declared for {path} must be positive: {}",
                go_float(factor)
            ))
        } else {
            match value {
                Num::Int(i) if factor as i64 != 0 => {
                    let f = factor as i64;
                    (i % f != 0).then(|| format!("{path} in body should be a multiple of {f}"))
                }
                _ => {
                    let data = value.as_f64();
                    let ratio = if factor < 1.0 {
                        1.0 / factor * data
                    } else {
                        data / factor
                    };
                    (!is_json_integer(ratio)).then(|| {
                        format!(
                            "{path} in body should be a multiple of {}",
                            go_float(factor)
                        )
                    })
                }
            }
        };
        if let Some(detail) = failed {
            errs.push(FieldError::invalid(field_of(path), shown.clone(), detail));
        }
    }
    if let Some(min) = bound("minimum") {
        let exclusive = flag("exclusiveMinimum");
        let (fails, shown_min) = match value {
            Num::Int(i) => {
                let m = min as i64;
                (if exclusive { i <= m } else { i < m }, m.to_string())
            }
            Num::Float(f) => (if exclusive { f <= min } else { f < min }, go_float(min)),
        };
        if fails {
            let relation = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            errs.push(FieldError::invalid(
                field_of(path),
                shown.clone(),
                format!("{path} in body should be {relation} {shown_min}"),
            ));
        }
    }
    if let Some(max) = bound("maximum") {
        let exclusive = flag("exclusiveMaximum");
        let (fails, shown_max) = match value {
            Num::Int(i) => {
                let m = max as i64;
                (if exclusive { i >= m } else { i > m }, m.to_string())
            }
            Num::Float(f) => (if exclusive { f >= max } else { f > max }, go_float(max)),
        };
        if fails {
            let relation = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            errs.push(FieldError::invalid(
                field_of(path),
                shown,
                format!("{path} in body should be {relation} {shown_max}"),
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pruning and null handling (apiextensions-apiserver/pkg/apiserver/schema/{pruning,defaulting})
// ---------------------------------------------------------------------------------------------

fn preserves_unknown(s: &Value) -> bool {
    s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
}

fn is_embedded(s: &Value) -> bool {
    s.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true))
}

/// The schema of an object's values not declared in `properties`: `Some(None)` for
/// `additionalProperties: true` (a map without a value schema), `None` when there is no map.
fn additional_schema(s: &Value) -> Option<Option<&Value>> {
    match s.get("additionalProperties")? {
        Value::Bool(false) => None,
        schema @ Value::Object(_) => Some(Some(schema)),
        _ => Some(None),
    }
}

/// `pruning.Prune` with `root = true`: the root keeps `apiVersion`, `kind` and `metadata`.
fn prune_root(object: &mut Value, schema: &Value, unknown: &mut Vec<String>) {
    if preserves_unknown(schema) {
        skip_prune(object, Some(schema), true, "", unknown);
    } else {
        prune(object, Some(schema), true, "", unknown);
    }
}

/// Drops every field `s` does not declare, recording its path in `unknown`.
fn prune(x: &mut Value, s: Option<&Value>, embedded: bool, path: &str, unknown: &mut Vec<String>) {
    if let Some(schema) = s
        && preserves_unknown(schema)
    {
        skip_prune(x, s, embedded, path, unknown);
        return;
    }
    match x {
        Value::Object(map) => {
            let embedded = embedded || s.is_some_and(is_embedded);
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                if embedded && META_FIELDS.contains(&key.as_str()) {
                    continue;
                }
                let child_path = join_path(path, &key);
                let property = s
                    .and_then(|s| s.get("properties"))
                    .and_then(|p| p.get(&key));
                let child_schema = match (property, s.and_then(additional_schema)) {
                    (Some(property), _) => Some(Some(property)),
                    (None, Some(additional)) => Some(additional),
                    (None, None) => None,
                };
                match (child_schema, map.get_mut(&key)) {
                    (Some(child_schema), Some(child)) => {
                        prune(child, child_schema, false, &child_path, unknown);
                    }
                    _ => {
                        map.remove(&key);
                        unknown.push(child_path);
                    }
                }
            }
        }
        Value::Array(items) => {
            let item_schema = s.and_then(|s| s.get("items")).filter(|i| i.is_object());
            for (i, item) in items.iter_mut().enumerate() {
                prune(item, item_schema, false, &format!("{path}[{i}]"), unknown);
            }
        }
        _ => {}
    }
}

/// Below `x-kubernetes-preserve-unknown-fields`: undeclared fields stay, declared ones are
/// still pruned by their own schema.
fn skip_prune(
    x: &mut Value,
    s: Option<&Value>,
    embedded: bool,
    path: &str,
    unknown: &mut Vec<String>,
) {
    let Some(schema) = s else {
        return;
    };
    match x {
        Value::Object(map) => {
            let embedded = embedded || is_embedded(schema);
            let properties = schema.get("properties");
            let additional = additional_schema(schema);
            for (key, child) in map.iter_mut() {
                if embedded && META_FIELDS.contains(&key.as_str()) {
                    continue;
                }
                let child_path = join_path(path, key);
                if let Some(property) = properties.and_then(|p| p.get(key)) {
                    prune(child, Some(property), false, &child_path, unknown);
                } else if let Some(additional) = additional {
                    prune(child, additional, false, &child_path, unknown);
                }
            }
        }
        Value::Array(items) => {
            let item_schema = schema.get("items").filter(|i| i.is_object());
            for (i, item) in items.iter_mut().enumerate() {
                skip_prune(item, item_schema, false, &format!("{path}[{i}]"), unknown);
            }
        }
        _ => {}
    }
}

/// `PruneNonNullableNullsWithoutDefaults` followed by the null half of `defaulting.Default`: a
/// `null` where the schema is not `nullable` becomes the field's `default`, or is dropped from
/// its object when there is none (a null list item without a default stays, and fails type
/// validation). Filling in missing fields is left to [`kube_cel::apply_defaults`].
fn fix_nulls(x: &mut Value, s: Option<&Value>) {
    let Some(schema) = s else {
        return;
    };
    match x {
        Value::Object(map) => {
            let properties = schema.get("properties");
            let additional = additional_schema(schema).flatten();
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let child_schema = properties.and_then(|p| p.get(&key)).or(additional);
                let Some(child) = map.get_mut(&key) else {
                    continue;
                };
                match child_schema {
                    Some(cs) if child.is_null() && !is_nullable(cs) => match cs.get("default") {
                        Some(default) => *child = default.clone(),
                        None => {
                            map.remove(&key);
                        }
                    },
                    _ => fix_nulls(child, child_schema),
                }
            }
        }
        Value::Array(items) => {
            let item_schema = schema.get("items").filter(|i| i.is_object());
            for item in items.iter_mut() {
                if let Some(is) = item_schema
                    && item.is_null()
                    && !is_nullable(is)
                    && let Some(default) = is.get("default")
                {
                    *item = default.clone();
                }
                fix_nulls(item, item_schema);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// CEL rules
// ---------------------------------------------------------------------------------------------

/// A schema node carrying `x-kubernetes-validations`, at a path kube-cel visits.
struct CelNode {
    path: String,
    /// The node's `type`, which kube-apiserver shows as the "value" of a rule that could not
    /// be evaluated.
    type_name: String,
    /// The node's value, which kube-apiserver shows as the value of a failed rule unless the
    /// node is an object or an array.
    value: Value,
    is_null: bool,
    /// Each rule with its static message.
    rules: Vec<(String, Option<String>)>,
}

/// Walks schema and object the way kube-cel's validator does, recording rule-carrying nodes.
fn collect_cel_nodes(
    s: &Value,
    value: &Value,
    path: &str,
    inherited_type: &str,
    out: &mut Vec<CelNode>,
) {
    let own_type = s
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or(inherited_type);
    if let Some(rules) = s.get("x-kubernetes-validations").and_then(Value::as_array) {
        let rules: Vec<(String, Option<String>)> = rules
            .iter()
            .filter_map(|r| {
                let rule = r.get("rule")?.as_str()?.to_string();
                let message = r.get("message").and_then(Value::as_str).map(str::to_string);
                Some((rule, message))
            })
            .collect();
        out.push(CelNode {
            path: path.to_string(),
            type_name: own_type.to_string(),
            value: value.clone(),
            is_null: value.is_null(),
            rules,
        });
    }
    let properties = s.get("properties").and_then(Value::as_object);
    if let (Some(properties), Some(map)) = (properties, value.as_object()) {
        for (name, property) in properties {
            if let Some(child) = map.get(name) {
                collect_cel_nodes(property, child, &join_path(path, name), "", out);
            }
        }
    }
    if let (Some(items), Some(list)) = (s.get("items").filter(|i| i.is_object()), value.as_array())
    {
        for (i, item) in list.iter().enumerate() {
            collect_cel_nodes(items, item, &format!("{path}[{i}]"), "", out);
        }
    }
    if !preserves_unknown(s)
        && let (Some(additional), Some(map)) = (
            s.get("additionalProperties").filter(|a| a.is_object()),
            value.as_object(),
        )
    {
        for (key, child) in map {
            if properties.is_some_and(|p| p.contains_key(key)) {
                continue;
            }
            collect_cel_nodes(additional, child, &join_path(path, key), "", out);
        }
    }
    for keyword in ["allOf", "oneOf", "anyOf"] {
        for branch in s
            .get(keyword)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            collect_cel_nodes(branch, value, path, own_type, out);
        }
    }
}

/// Maps one kube-cel failure to the error kube-apiserver's CEL validator reports, or `None`
/// for a rule on a null value, which kube-apiserver does not evaluate.
fn cel_field_error(error: &ValidationError, nodes: &[CelNode]) -> Option<FieldError> {
    let path = error
        .field_path
        .strip_prefix('.')
        .unwrap_or(&error.field_path);
    // The rule's node: the deepest recorded node holding this rule whose path is the error's
    // path or, for a rule with `fieldPath`, a prefix of it.
    let node = nodes
        .iter()
        .filter(|n| n.rules.iter().any(|(rule, _)| *rule == error.rule))
        .filter(|n| {
            n.path.is_empty()
                || path == n.path
                || path
                    .strip_prefix(n.path.as_str())
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
        })
        .max_by_key(|n| n.path.len());
    if node.is_some_and(|n| n.is_null) {
        return None;
    }
    let type_value = Value::from(node.map_or("", |n| n.type_name.as_str()));
    let field = if path.is_empty() {
        "<nil>".to_string()
    } else {
        path.to_string()
    };
    let rule_or_message = node
        .and_then(|n| n.rules.iter().find(|(rule, _)| *rule == error.rule))
        .and_then(|(_, message)| message.as_deref())
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .unwrap_or(error.rule.trim());
    let detail = error.message.trim().to_string();
    // A failed rule shows the value it judged, or none for an object or array (Go's
    // field.OmitValueType).
    let judged = match node {
        Some(n) if matches!(n.type_name.as_str(), "object" | "array") => None,
        Some(n) => Some(n.value.clone()),
        None => Some(type_value.clone()),
    };
    Some(match error.kind {
        CelErrorKind::ValidationFailure => match error.reason.as_deref() {
            Some("FieldValueForbidden") => FieldError::forbidden(field, detail),
            Some("FieldValueRequired") => FieldError::required(field, detail),
            Some("FieldValueDuplicate") => {
                FieldError::new(field, FieldErrorKind::Duplicate, judged, "")
            }
            _ => FieldError::new(field, FieldErrorKind::Invalid, judged, detail),
        },
        CelErrorKind::EvaluationError => {
            let cause = std::error::Error::source(error).map_or(detail, |e| e.to_string());
            // cel-go's messages ("no such key: a") start lower-case, cel-rust's capitalised.
            let cause = lowercase_first(&cause);
            FieldError::invalid(
                field,
                type_value,
                format!("{cause} evaluating rule: {rule_or_message}"),
            )
        }
        // A rule that could not be evaluated here (kube-cel lacks a macro) or returned no bool.
        CelErrorKind::UnsupportedReference | CelErrorKind::InvalidResult => {
            FieldError::invalid(field, type_value, detail)
        }
        _ => FieldError::internal(field, detail),
    })
}

// ---------------------------------------------------------------------------------------------
// Schema preparation
// ---------------------------------------------------------------------------------------------

/// Compiles every `pattern` in the schema, recording the ones that do not compile.
fn collect_patterns(
    s: &Value,
    at: &str,
    patterns: &mut HashMap<String, Regex>,
    problems: &mut Vec<String>,
) {
    let Some(node) = s.as_object() else {
        return;
    };
    if let Some(pattern) = node.get("pattern").and_then(Value::as_str)
        && !patterns.contains_key(pattern)
    {
        match Regex::new(pattern) {
            Ok(re) => {
                patterns.insert(pattern.to_string(), re);
            }
            Err(e) => problems.push(format!(
                "{at}.pattern: invalid regular expression {pattern:?}: {e}"
            )),
        }
    }
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            collect_patterns(
                property,
                &format!("{at}.properties[{name}]"),
                patterns,
                problems,
            );
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(child) = node.get(key) {
            collect_patterns(child, &format!("{at}.{key}"), patterns, problems);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for (i, branch) in node
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            collect_patterns(branch, &format!("{at}.{key}[{i}]"), patterns, problems);
        }
    }
}

fn collect_compilation_errors(compiled: &CompiledSchema, problems: &mut Vec<String>) {
    problems.extend(
        compiled
            .compilation_errors()
            .iter()
            .map(|e| format!("x-kubernetes-validations: {e}")),
    );
    for child in compiled.properties.values() {
        collect_compilation_errors(child, problems);
    }
    for child in compiled
        .items
        .iter()
        .chain(compiled.additional_properties.iter())
    {
        collect_compilation_errors(child, problems);
    }
    for child in compiled
        .all_of
        .iter()
        .chain(&compiled.one_of)
        .chain(&compiled.any_of)
    {
        collect_compilation_errors(child, problems);
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

/// A JSON number as Go decodes it: `int64` when it is an integer that fits, else `float64`.
fn number(n: &Number) -> Num {
    match n.as_i64() {
        Some(i) => Num::Int(i),
        None => Num::Float(n.as_f64().unwrap_or(f64::NAN)),
    }
}

/// go-openapi's `swag.IsFloat64AJSONInteger`, without its relative-epsilon slack.
fn is_json_integer(f: f64) -> bool {
    const MAX_JSON_INTEGER: f64 = 9_007_199_254_740_991.0;
    f.is_finite() && f.abs() <= MAX_JSON_INTEGER && f.fract() == 0.0
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn schema_int(s: &Value, key: &str) -> Option<i64> {
    let v = s.get(key)?;
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

fn join_path(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}.{name}")
    }
}

/// The field of an error at a Go validator path: the leading `.` trimmed, and the root as Go
/// prints a nil path.
fn field_of(path: &str) -> String {
    let trimmed = path.strip_prefix('.').unwrap_or(path);
    if trimmed.is_empty() {
        "<nil>".to_string()
    } else {
        trimmed.to_string()
    }
}

/// A value as `field.Error.ErrorBody` prints it: strings quoted (`%q`), numbers and booleans
/// bare (`%v`), anything else (null, objects, lists) as JSON.
fn go_value(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::String(text) => go_quote(text),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match number(n) {
            Num::Int(i) => i.to_string(),
            Num::Float(f) => go_float(f),
        },
        other => other.to_string(),
    }
}

/// A `float64` as Go's `%v` prints it: shortest representation, exponent form below 1e-4 and
/// from 1e21 (`1e+21`, `1e-05`).
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let scientific = format!("{f:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return format!("{f}");
    };
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if f != 0.0 && !(-4..21).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        format!("{f}")
    }
}

/// go-openapi's `strfmt.IsDate`: Go's `time.Parse("2006-01-02", s)`.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let (Some(year), Some(month), Some(day)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// go-openapi's `strfmt.IsDateTime`: lower-cased and split at `t`, a valid date, then
/// `^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$` with the hour at
/// most 23 and minute and second at most 59.
fn is_date_time(s: &str) -> bool {
    if s.len() < 4 {
        return false;
    }
    let lower = s.to_lowercase();
    let parts: Vec<&str> = lower.split('t').collect();
    if parts.len() < 2 || !is_date(parts[0]) {
        return false;
    }
    let t: Vec<char> = parts[1].chars().collect();
    let two_digits = |i: usize| -> Option<u32> {
        let (a, b) = (t.get(i)?.to_digit(10)?, t.get(i + 1)?.to_digit(10)?);
        Some(a * 10 + b)
    };
    let (Some(hour), Some(minute), Some(second)) = (two_digits(0), two_digits(3), two_digits(6))
    else {
        return false;
    };
    if t.get(2) != Some(&':') || t.get(5) != Some(&':') || hour > 23 || minute > 59 || second > 59 {
        return false;
    }
    let is_zone = |z: &[char]| {
        z == ['z']
            || (z.len() == 6
                && matches!(z[0], '+' | '-')
                && z[1].is_ascii_digit()
                && z[2].is_ascii_digit()
                && z[3] == ':'
                && z[4].is_ascii_digit()
                && z[5].is_ascii_digit())
    };
    let rest = &t[8..];
    if is_zone(rest) {
        return true;
    }
    // The optional fraction is any one character followed by digits.
    let Some(after) = rest.get(1..) else {
        return false;
    };
    let digits = after.iter().take_while(|c| c.is_ascii_digit()).count();
    digits > 0 && is_zone(&after[digits..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd_schema(yaml: &str) -> Value {
        let crd: Value = serde_saphyr::from_str(yaml).expect("CRD YAML parses");
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
    }

    fn account() -> SchemaValidator {
        SchemaValidator::new(crd_schema(include_str!(
            "../../../crds/accounts.hosting.ecuni.se.yaml"
        )))
        .expect("Account schema compiles")
    }

    fn website() -> SchemaValidator {
        SchemaValidator::new(crd_schema(include_str!(
            "../../../crds/websites.hosting.ecuni.se.yaml"
        )))
        .expect("Website schema compiles")
    }

    fn retention_policy() -> SchemaValidator {
        SchemaValidator::new(crd_schema(include_str!(
            "../../../crds/retentionpolicies.hosting.ecuni.se.yaml"
        )))
        .expect("RetentionPolicy schema compiles")
    }

    fn data_record() -> SchemaValidator {
        SchemaValidator::new(crd_schema(include_str!(
            "../../../crds/datarecords.hosting.ecuni.se.yaml"
        )))
        .expect("DataRecord schema compiles")
    }

    fn inline(schema: Value) -> SchemaValidator {
        SchemaValidator::new(schema).expect("inline schema compiles")
    }

    /// An inline schema with one property `x` under `spec`.
    fn spec_x(x: Value) -> SchemaValidator {
        inline(json!({
            "type": "object",
            "properties": {"spec": {"type": "object", "properties": {"x": x}}}
        }))
    }

    fn messages(result: Result<Value, Vec<FieldError>>) -> Vec<String> {
        result
            .expect_err("object is rejected")
            .iter()
            .map(FieldError::message)
            .collect()
    }

    fn admit_x(validator: &SchemaValidator, x: Value) -> Result<Value, Vec<FieldError>> {
        validator.admit(json!({"spec": {"x": x}}), None)
    }

    fn valid_account() -> Value {
        json!({
            "apiVersion": "hosting.ecuni.se/v1alpha1",
            "kind": "Account",
            "metadata": {"name": "acme"},
            "spec": {"customerRef": "c-1"}
        })
    }

    fn valid_policy() -> Value {
        json!({
            "apiVersion": "hosting.ecuni.se/v1alpha1",
            "kind": "RetentionPolicy",
            "metadata": {"name": "default"},
            "spec": {
                "gracePeriod": "30d",
                "backups": {"keepDaily": 7, "keepWeekly": 4, "keepMonthly": 12}
            }
        })
    }

    fn valid_website() -> Value {
        json!({
            "apiVersion": "hosting.ecuni.se/v1alpha1",
            "kind": "Website",
            "metadata": {"name": "shop", "namespace": "acme"},
            "spec": {"accountRef": "acme", "hostnames": ["shop.example"]}
        })
    }

    // --- pruning -------------------------------------------------------------------------

    #[test]
    fn prunes_undeclared_fields_and_keeps_type_and_object_meta() {
        let mut object = valid_website();
        object["spec"]["colour"] = json!("blue");
        object["extra"] = json!(1);
        object["metadata"]["labels"] = json!({"a": "b"});
        let admitted = website().admit(object, None).expect("admitted");
        assert_eq!(admitted["spec"].get("colour"), None);
        assert_eq!(admitted.get("extra"), None);
        assert_eq!(admitted["apiVersion"], "hosting.ecuni.se/v1alpha1");
        assert_eq!(admitted["kind"], "Website");
        assert_eq!(
            admitted["metadata"],
            json!({"name": "shop", "namespace": "acme", "labels": {"a": "b"}})
        );
    }

    #[test]
    fn rules_see_the_pruned_object() {
        // Without pruning first, the undeclared field would make self != oldSelf.
        let validator = inline(json!({
            "type": "object",
            "properties": {"spec": {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "spec is immutable"}]
            }}
        }));
        let old = json!({"spec": {"a": "x"}});
        assert!(
            validator
                .admit(json!({"spec": {"a": "x", "bogus": [1]}}), Some(&old))
                .is_ok()
        );
        assert_eq!(
            messages(validator.admit(json!({"spec": {"a": "y"}}), Some(&old))),
            vec![r#"spec: Invalid value: spec is immutable"#]
        );
    }

    #[test]
    fn preserve_unknown_fields_keeps_undeclared_but_prunes_declared_children() {
        let validator = inline(json!({
            "type": "object",
            "properties": {"spec": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}}
            }}
        }));
        let admitted = validator
            .admit(
                json!({"spec": {"free": {"any": [1]}, "known": {"a": "x", "b": "dropped"}}}),
                None,
            )
            .expect("admitted");
        assert_eq!(
            admitted["spec"],
            json!({"free": {"any": [1]}, "known": {"a": "x"}})
        );
    }

    #[test]
    fn unknown_fields_lists_pruned_paths() {
        let validator = inline(json!({
            "type": "object",
            "properties": {"spec": {"type": "object", "properties": {
                "list": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
                "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {}}}
            }}}
        }));
        let object = json!({
            "apiVersion": "v1", "kind": "K", "metadata": {"x": 1}, "top": 1,
            "spec": {"foo": 1, "list": [{"a": "x", "bar": 2}], "map": {"k": {"z": 3}}}
        });
        assert_eq!(
            validator.unknown_fields(&object),
            vec!["spec.foo", "spec.list[0].bar", "spec.map.k.z", "top"]
        );
        assert!(account().unknown_fields(&valid_account()).is_empty());
    }

    // --- nulls and defaults --------------------------------------------------------------

    #[test]
    fn applies_defaults_from_real_crds() {
        let admitted = account().admit(valid_account(), None).expect("admitted");
        assert_eq!(admitted["spec"]["state"], "Active");
        assert_eq!(admitted["spec"]["retentionPolicyRef"], "default");

        let admitted = retention_policy()
            .admit(valid_policy(), None)
            .expect("admitted");
        assert_eq!(admitted["spec"]["bookkeeping"], json!({"years": 7}));

        let admitted = website().admit(valid_website(), None).expect("admitted");
        assert_eq!(admitted["spec"]["legalBasis"], "Contract");
    }

    #[test]
    fn defaults_inside_list_items() {
        let mut object = valid_account();
        object["status"] = json!({"conditions": [{
            "type": "Ready", "status": "True", "reason": "Ok", "lastTransitionTime": "2024-01-01T00:00:00Z"
        }]});
        let admitted = account().admit(object, None).expect("admitted");
        assert_eq!(admitted["status"]["conditions"][0]["message"], "");
    }

    #[test]
    fn non_nullable_null_is_defaulted_or_dropped_and_nullable_null_is_kept() {
        let mut object = valid_account();
        object["spec"]["state"] = Value::Null; // not nullable, has a default
        object["spec"]["consents"] = Value::Null; // not nullable, no default
        object["spec"]["legalHold"] = Value::Null; // nullable
        let admitted = account().admit(object, None).expect("admitted");
        assert_eq!(admitted["spec"]["state"], "Active");
        assert_eq!(admitted["spec"].get("consents"), None);
        assert_eq!(admitted["spec"].get("legalHold"), Some(&Value::Null));
    }

    #[test]
    fn null_list_item_is_not_dropped_and_fails_type_validation() {
        let mut object = valid_website();
        object["spec"]["hostnames"] = json!(["a.example", null]);
        assert_eq!(
            messages(website().admit(object, None)),
            vec![
                r#"spec.hostnames[1]: Invalid value: "null": spec.hostnames[1] in body must be of type string: "null""#,
                r#"<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"#,
            ]
        );
    }

    #[test]
    fn defaults_are_applied_before_cel_rules() {
        let validator = inline(json!({
            "type": "object",
            "properties": {"spec": {
                "type": "object",
                "properties": {"x": {"type": "string", "default": "d"}},
                "x-kubernetes-validations": [{"rule": "!has(self.x)", "message": "x must be absent"}]
            }}
        }));
        assert_eq!(
            messages(validator.admit(json!({"spec": {}}), None)),
            vec![r#"spec: Invalid value: x must be absent"#]
        );
    }

    // --- schema keywords, with kube-apiserver's wording ------------------------------------

    #[test]
    fn required() {
        let mut object = valid_website();
        object["spec"]
            .as_object_mut()
            .expect("spec")
            .remove("accountRef");
        let errors = website().admit(object, None).expect_err("rejected");
        assert_eq!(errors[0].message(), "spec.accountRef: Required value");
        assert_eq!(errors[0].kind.reason(), "FieldValueRequired");

        let errors = website()
            .admit(json!({"metadata": {"name": "x"}}), None)
            .expect_err("rejected");
        assert_eq!(errors[0].message(), "spec: Required value");
    }

    #[test]
    fn enum_not_supported() {
        let mut object = valid_account();
        object["spec"]["state"] = json!("Closed");
        let errors = account().admit(object, None).expect_err("rejected");
        assert_eq!(
            errors[0].message(),
            r#"spec.state: Unsupported value: "Closed": supported values: "Active", "Suspended", "Terminated""#
        );
        assert_eq!(errors[0].kind, FieldErrorKind::NotSupported);
    }

    #[test]
    fn enum_of_numbers_quotes_supported_values_and_compares_numerically() {
        let validator = spec_x(json!({"type": "integer", "enum": [1, 2]}));
        assert!(admit_x(&validator, json!(2)).is_ok());
        assert_eq!(
            messages(admit_x(&validator, json!(3)))[0],
            r#"spec.x: Unsupported value: 3: supported values: "1", "2""#
        );
    }

    #[test]
    fn nullable_enum_still_rejects_null_as_kube_openapi_does() {
        let mut object = valid_account();
        object["status"] = json!({"phase": null});
        assert_eq!(
            messages(account().admit(object, None))[0],
            r#"status.phase: Unsupported value: null: supported values: "Active", "Suspended", "GracePeriod", "Erasing", "Retained", "Erased", "OnHold""#
        );
    }

    #[test]
    fn pattern() {
        let mut object = valid_policy();
        object["spec"]["gracePeriod"] = json!("30days");
        let errors = retention_policy()
            .admit(object, None)
            .expect_err("rejected");
        assert_eq!(
            errors.iter().map(FieldError::message).collect::<Vec<_>>(),
            vec![
                r#"spec.gracePeriod: Invalid value: "30days": spec.gracePeriod in body should match '^[0-9]{1,6}[smhdw]$'"#
            ]
        );
        assert_eq!(errors[0].kind.reason(), "FieldValueInvalid");
    }

    #[test]
    fn type_mismatch() {
        let mut object = valid_policy();
        object["spec"]["backups"]["keepDaily"] = json!("string");
        let errors = retention_policy()
            .admit(object, None)
            .expect_err("rejected");
        assert_eq!(
            errors[0].message(),
            r#"spec.backups.keepDaily: Invalid value: "string": spec.backups.keepDaily in body must be of type integer: "string""#
        );
        assert_eq!(errors[0].kind.reason(), "FieldValueTypeInvalid");
    }

    #[test]
    fn type_of_objects_arrays_booleans_and_non_integral_numbers() {
        let object = json!({"metadata": {"name": "x"}, "spec": "flat"});
        assert_eq!(
            messages(website().admit(object, None))[0],
            r#"spec: Invalid value: "string": spec in body must be of type object: "string""#
        );
        let mut object = valid_website();
        object["spec"]["hostnames"] = json!({"a": 1});
        assert_eq!(
            messages(website().admit(object, None))[0],
            r#"spec.hostnames: Invalid value: "object": spec.hostnames in body must be of type array: "object""#
        );
        let mut object = valid_policy();
        object["spec"]["backups"]["keepDaily"] = json!(1.5);
        assert_eq!(
            messages(retention_policy().admit(object, None))[0],
            r#"spec.backups.keepDaily: Invalid value: "number": spec.backups.keepDaily in body must be of type integer: "number""#
        );
        let mut object = valid_policy();
        object["spec"]["backups"]["keepDaily"] = json!(true);
        assert_eq!(
            messages(retention_policy().admit(object, None))[0],
            r#"spec.backups.keepDaily: Invalid value: "boolean": spec.backups.keepDaily in body must be of type integer: "boolean""#
        );
    }

    #[test]
    fn integral_float_is_an_integer_and_integer_is_a_number() {
        let mut object = valid_policy();
        object["spec"]["backups"]["keepDaily"] = json!(7.0);
        assert!(retention_policy().admit(object, None).is_ok());
        let validator = spec_x(json!({"type": "number"}));
        assert!(admit_x(&validator, json!(3)).is_ok());
        assert!(admit_x(&validator, json!(3.25)).is_ok());
        assert_eq!(
            messages(admit_x(&validator, json!("3")))[0],
            r#"spec.x: Invalid value: "string": spec.x in body must be of type number: "string""#
        );
    }

    #[test]
    fn maximum_and_minimum() {
        let mut object = valid_policy();
        object["spec"]["bookkeeping"] = json!({"years": 101});
        assert_eq!(
            messages(retention_policy().admit(object, None)),
            vec![
                "spec.bookkeeping.years: Invalid value: 101: spec.bookkeeping.years in body should be less than or equal to 100"
            ]
        );
        let mut object = valid_policy();
        object["spec"]["bookkeeping"] = json!({"years": 0});
        assert_eq!(
            messages(retention_policy().admit(object, None)),
            vec![
                "spec.bookkeeping.years: Invalid value: 0: spec.bookkeeping.years in body should be greater than or equal to 1"
            ]
        );
        let mut object = valid_policy();
        object["spec"]["backups"]["keepWeekly"] = json!(-1);
        assert_eq!(
            messages(retention_policy().admit(object, None)),
            vec![
                "spec.backups.keepWeekly: Invalid value: -1: spec.backups.keepWeekly in body should be greater than or equal to 0"
            ]
        );
    }

    #[test]
    fn exclusive_bounds_and_float_values() {
        let validator = spec_x(json!({
            "type": "number", "minimum": 0.5, "exclusiveMinimum": true, "maximum": 2, "exclusiveMaximum": true
        }));
        assert!(admit_x(&validator, json!(1.5)).is_ok());
        assert_eq!(
            messages(admit_x(&validator, json!(0.5))),
            vec!["spec.x: Invalid value: 0.5: spec.x in body should be greater than 0.5"]
        );
        assert_eq!(
            messages(admit_x(&validator, json!(2.0))),
            vec!["spec.x: Invalid value: 2: spec.x in body should be less than 2"]
        );
        // An integer value is compared with the bound truncated to an integer, as Go does.
        assert_eq!(
            messages(admit_x(&validator, json!(0))),
            vec!["spec.x: Invalid value: 0: spec.x in body should be greater than 0"]
        );
    }

    #[test]
    fn multiple_of() {
        let validator = spec_x(json!({"type": "number", "multipleOf": 0.5}));
        assert!(admit_x(&validator, json!(1.5)).is_ok());
        assert!(admit_x(&validator, json!(2)).is_ok());
        assert_eq!(
            messages(admit_x(&validator, json!(1.25))),
            vec!["spec.x: Invalid value: 1.25: spec.x in body should be a multiple of 0.5"]
        );
        let validator = spec_x(json!({"type": "integer", "multipleOf": 5}));
        assert_eq!(
            messages(admit_x(&validator, json!(12))),
            vec!["spec.x: Invalid value: 12: spec.x in body should be a multiple of 5"]
        );
    }

    #[test]
    fn date_time_format() {
        let mut object = valid_account();
        object["spec"]["terminatedAt"] = json!("last week");
        let errors = account().admit(object, None).expect_err("rejected");
        assert_eq!(
            errors[0].message(),
            r#"spec.terminatedAt: Invalid value: "last week": spec.terminatedAt in body must be of type date-time: "last week""#
        );
        assert_eq!(errors[0].kind, FieldErrorKind::TypeInvalid);
        for good in [
            "2024-01-01T00:00:00Z",
            "2024-02-29t23:59:59.123456+02:00",
            "2024-01-01T00:00:00-05:00",
        ] {
            let mut object = valid_account();
            // The CRD's CEL rule wants terminatedAt exactly with Terminated.
            object["spec"]["state"] = json!("Terminated");
            object["spec"]["terminatedAt"] = json!(good);
            assert!(
                account().admit(object, None).is_ok(),
                "{good} is a date-time"
            );
        }
        for bad in [
            "2023-02-29T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01 00:00:00Z",
            "2024-01-01T00:00:00",
        ] {
            let mut object = valid_account();
            object["spec"]["terminatedAt"] = json!(bad);
            assert!(
                account().admit(object, None).is_err(),
                "{bad} is not a date-time"
            );
        }
    }

    #[test]
    fn date_format() {
        let record = |date: &str| {
            json!({
                "metadata": {"name": "r"},
                "spec": {"accountRef": "acme", "category": "invoices", "bookkeeping": {"fiscalYearEnd": date}}
            })
        };
        assert!(data_record().admit(record("2024-12-31"), None).is_ok());
        assert_eq!(
            messages(data_record().admit(record("2024-13-01"), None))[0],
            r#"spec.bookkeeping.fiscalYearEnd: Invalid value: "2024-13-01": spec.bookkeeping.fiscalYearEnd in body must be of type date: "2024-13-01""#
        );
        assert!(data_record().admit(record("2024-1-01"), None).is_err());
    }

    #[test]
    fn non_string_on_a_formatted_string_is_reported_against_the_format() {
        let mut object = valid_account();
        object["spec"]["terminatedAt"] = json!(5);
        assert_eq!(
            messages(account().admit(object, None))[0],
            r#"spec.terminatedAt: Invalid value: "int64": spec.terminatedAt in body must be of type date-time: "int64""#
        );
    }

    #[test]
    fn unsupported_formats_are_ignored() {
        // uint32 is not a format kube-apiserver knows; it is stripped, not enforced.
        let count = spec_x(json!({"type": "integer", "format": "uint32", "minimum": 0.0}));
        assert!(admit_x(&count, json!(5_000_000_000_i64)).is_ok());
    }

    #[test]
    fn min_length_is_invalid_and_max_length_is_too_long() {
        let mut object = valid_account();
        object["spec"]["customerRef"] = json!("");
        let errors = account().admit(object, None).expect_err("rejected");
        assert_eq!(
            errors[0].message(),
            r#"spec.customerRef: Invalid value: "": spec.customerRef in body should be at least 1 chars long"#
        );
        assert_eq!(errors[0].kind, FieldErrorKind::Invalid);

        let validator = spec_x(json!({"type": "string", "maxLength": 3, "pattern": "^[^A-Z]+$"}));
        assert!(
            admit_x(&validator, json!("åäö")).is_ok(),
            "length counts characters"
        );
        let errors = admit_x(&validator, json!("abcd")).expect_err("rejected");
        assert_eq!(
            errors[0].message(),
            "spec.x: Too long: may not be more than 3 bytes"
        );
        assert_eq!(errors[0].kind.reason(), "FieldValueTooLong");
        // The string validator stops at the first failure: no pattern error as well.
        assert_eq!(messages(admit_x(&validator, json!("ABCD"))).len(), 2); // too long + <nil>
    }

    #[test]
    fn min_and_max_items_and_unique_items() {
        let validator = spec_x(json!({
            "type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2, "uniqueItems": true
        }));
        assert!(admit_x(&validator, json!(["a", "b"])).is_ok());
        assert_eq!(
            messages(admit_x(&validator, json!([]))),
            vec!["spec.x: Invalid value: 0: spec.x in body should have at least 1 items"]
        );
        let errors = admit_x(&validator, json!(["a", "b", "c"])).expect_err("rejected");
        assert_eq!(
            errors[0].message(),
            "spec.x: Too many: 3: must have at most 2 items"
        );
        assert_eq!(errors[0].kind.reason(), "FieldValueTooMany");
        assert_eq!(
            messages(admit_x(&validator, json!(["a", "a"]))),
            vec![r#"spec.x: Invalid value: "": spec.x in body shouldn't contain duplicates"#]
        );
    }

    #[test]
    fn items_are_validated_with_indexed_paths() {
        let mut object = valid_website();
        object["spec"]["hostnames"] = json!(["ok.example", 1]);
        assert_eq!(
            messages(website().admit(object, None))[0],
            r#"spec.hostnames[1]: Invalid value: "integer": spec.hostnames[1] in body must be of type string: "integer""#
        );
    }

    #[test]
    fn additional_properties_maps() {
        let mut object = valid_account();
        object["spec"]["consents"] = json!({"newsletter": true, "marketing": "yes"});
        assert_eq!(
            messages(account().admit(object, None))[0],
            r#"spec.consents.marketing: Invalid value: "string": spec.consents.marketing in body must be of type boolean: "string""#
        );
        let mut object = valid_account();
        object["status"] =
            json!({"resources": {"Website": {"bound": 1, "deleted": 0, "retained": 0}}});
        assert_eq!(
            messages(account().admit(object, None))[0],
            "status.resources.Website.scheduled: Required value"
        );
    }

    #[test]
    fn min_and_max_properties() {
        let validator = spec_x(json!({
            "type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1, "maxProperties": 2
        }));
        assert!(admit_x(&validator, json!({"a": "1"})).is_ok());
        assert_eq!(
            messages(admit_x(&validator, json!({}))),
            vec!["spec.x: Invalid value: 0: spec.x in body should have at least 1 properties"]
        );
        assert_eq!(
            messages(admit_x(&validator, json!({"a": "1", "b": "2", "c": 3})))[0],
            "spec.x: Too many: 3: must have at most 2 items"
        );
    }

    #[test]
    fn int_or_string() {
        let validator = spec_x(json!({"x-kubernetes-int-or-string": true}));
        assert!(admit_x(&validator, json!(80)).is_ok());
        assert!(admit_x(&validator, json!("http")).is_ok());
        assert_eq!(
            messages(admit_x(&validator, json!(true)))[0],
            r#"spec.x: Invalid value: "boolean": spec.x in body must be of type integer,string: "boolean""#
        );
        assert_eq!(
            messages(admit_x(&validator, json!(1.5)))[0],
            r#"spec.x: Invalid value: "number": spec.x in body must be of type integer,string: "number""#
        );
    }

    #[test]
    fn nullable() {
        let validator = spec_x(json!({"type": "string", "nullable": true}));
        assert_eq!(
            admit_x(&validator, Value::Null).expect("admitted")["spec"]["x"],
            Value::Null
        );
        let validator = inline(json!({
            "type": "object",
            "properties": {"spec": {"type": "object", "properties": {
                "x": {"type": "array", "items": {"type": "integer", "nullable": true}}
            }}}
        }));
        assert!(admit_x(&validator, json!([1, null])).is_ok());
    }

    #[test]
    fn any_of_one_of_all_of_and_not() {
        let validator = spec_x(json!({
            "type": "string",
            "anyOf": [{"pattern": "^a"}, {"pattern": "^b"}]
        }));
        assert!(admit_x(&validator, json!("bee")).is_ok());
        assert_eq!(
            messages(admit_x(&validator, json!("cat"))),
            vec![
                r#"<nil>: Invalid value: "": "spec.x" must validate at least one schema (anyOf)"#,
                r#"spec.x: Invalid value: "cat": spec.x in body should match '^a'"#,
            ]
        );
        let validator =
            spec_x(json!({"type": "string", "oneOf": [{"pattern": "a"}, {"pattern": "b"}]}));
        assert!(admit_x(&validator, json!("a")).is_ok());
        assert_eq!(
            messages(admit_x(&validator, json!("ab"))),
            vec![
                r#"<nil>: Invalid value: "": "spec.x" must validate one and only one schema (oneOf). Found 2 valid alternatives"#
            ]
        );
        let validator =
            spec_x(json!({"type": "string", "allOf": [{"minLength": 2}, {"pattern": "^a"}]}));
        assert_eq!(
            messages(admit_x(&validator, json!("b"))),
            vec![
                r#"<nil>: Invalid value: "": "spec.x" must validate all the schemas (allOf)Found none valid"#,
                r#"spec.x: Invalid value: "b": spec.x in body should be at least 2 chars long"#,
                r#"spec.x: Invalid value: "b": spec.x in body should match '^a'"#,
            ]
        );
        let validator = spec_x(json!({"type": "string", "not": {"pattern": "^forbidden$"}}));
        assert_eq!(
            messages(admit_x(&validator, json!("forbidden"))),
            vec![r#"<nil>: Invalid value: "": "spec.x" must not validate the schema (not)"#]
        );
    }

    #[test]
    fn metadata_is_not_validated_against_the_schema() {
        let validator = inline(json!({
            "type": "object",
            "properties": {"metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 1}}}}
        }));
        assert!(
            validator
                .admit(json!({"metadata": {"name": "long-name"}}), None)
                .is_ok()
        );
    }

    #[test]
    fn schema_errors_are_sorted_by_field() {
        // The object validator reports properties before missing required fields, so without
        // sorting spec.backups would come last.
        let object = json!({
            "metadata": {"name": "p"},
            "spec": {"gracePeriod": "soon", "bookkeeping": {"years": 500}}
        });
        let fields: Vec<String> = retention_policy()
            .admit(object, None)
            .expect_err("rejected")
            .into_iter()
            .map(|e| e.field)
            .collect();
        // The blocking-error notice stays last, as kube-apiserver appends it.
        assert_eq!(
            fields,
            vec![
                "spec.backups",
                "spec.bookkeeping.years",
                "spec.gracePeriod",
                "<nil>"
            ]
        );
    }

    // --- CEL rules -----------------------------------------------------------------------

    #[test]
    fn transition_rule_is_skipped_on_create_and_enforced_on_update() {
        let validator = website();
        let created = validator
            .admit(valid_website(), None)
            .expect("create ignores oldSelf rules");
        assert!(
            validator.admit(created.clone(), Some(&created)).is_ok(),
            "unchanged accountRef"
        );

        let mut changed = created.clone();
        changed["spec"]["accountRef"] = json!("other");
        let errors = validator
            .admit(changed, Some(&created))
            .expect_err("accountRef is immutable");
        assert_eq!(
            errors.iter().map(FieldError::message).collect::<Vec<_>>(),
            vec![r#"spec.accountRef: Invalid value: "other": accountRef is immutable"#]
        );
        assert_eq!(errors[0].kind.reason(), "FieldValueInvalid");
    }

    #[test]
    fn transition_rule_is_skipped_when_the_old_object_lacks_the_field() {
        let validator = inline(json!({
            "type": "object",
            "properties": {"spec": {"type": "object", "properties": {
                "x": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}
            }}}
        }));
        assert!(
            validator
                .admit(json!({"spec": {"x": "a"}}), Some(&json!({"spec": {}})))
                .is_ok()
        );
        assert_eq!(
            messages(validator.admit(
                json!({"spec": {"x": "a"}}),
                Some(&json!({"spec": {"x": "b"}}))
            )),
            vec![r#"spec.x: Invalid value: "a": failed rule: self == oldSelf"#]
        );
    }

    #[test]
    fn rule_reason_required_on_an_object() {
        let mut object = valid_website();
        object["spec"]["legalBasis"] = json!("Consent");
        let errors = website()
            .admit(object.clone(), None)
            .expect_err("consentPurpose missing");
        assert_eq!(
            errors.iter().map(FieldError::message).collect::<Vec<_>>(),
            vec!["spec: Required value: consentPurpose is required when legalBasis is Consent"]
        );
        assert_eq!(errors[0].kind, FieldErrorKind::Required);
        object["spec"]["consentPurpose"] = json!("analytics");
        assert!(website().admit(object, None).is_ok());
    }

    #[test]
    fn rule_reasons_forbidden_and_duplicate_and_root_rules() {
        let validator = inline(json!({
            "type": "object",
            "x-kubernetes-validations": [{"rule": "self.spec.a != 'root'", "message": "no root"}],
            "properties": {"spec": {"type": "object", "properties": {
                "a": {"type": "string", "x-kubernetes-validations": [
                    {"rule": "self != 'f'", "message": "f is forbidden", "reason": "FieldValueForbidden"},
                    {"rule": "self != 'd'", "message": "d", "reason": "FieldValueDuplicate"}
                ]}
            }}}
        }));
        assert_eq!(
            messages(validator.admit(json!({"spec": {"a": "f"}}), None)),
            vec!["spec.a: Forbidden: f is forbidden"]
        );
        assert_eq!(
            messages(validator.admit(json!({"spec": {"a": "d"}}), None)),
            vec![r#"spec.a: Duplicate value: "d""#]
        );
        assert_eq!(
            messages(validator.admit(json!({"spec": {"a": "root"}}), None)),
            vec![r#"<nil>: Invalid value: no root"#]
        );
    }

    #[test]
    fn rule_field_path_reports_on_the_target_but_judges_the_node() {
        let validator = inline(json!({
            "type": "object",
            "properties": {"spec": {
                "type": "object",
                "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
                "x-kubernetes-validations": [{"rule": "self.min <= self.max", "message": "max below min", "fieldPath": ".max"}]
            }}
        }));
        assert_eq!(
            messages(validator.admit(json!({"spec": {"min": 2, "max": 1}}), None)),
            vec![r#"spec.max: Invalid value: max below min"#]
        );
    }

    #[test]
    fn rule_evaluation_error() {
        let validator = inline(json!({
            "type": "object",
            "properties": {"spec": {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "x-kubernetes-validations": [{"rule": "self.a == 'x'"}]
            }}
        }));
        let errors = validator
            .admit(json!({"spec": {}}), None)
            .expect_err("no such key");
        // cel-go's error text is lower-case ("no such key: a"); cel-rust's is capitalised.
        assert_eq!(
            errors.iter().map(FieldError::message).collect::<Vec<_>>(),
            vec![r#"spec: Invalid value: "object": no such key: a evaluating rule: self.a == 'x'"#]
        );
    }

    #[test]
    fn rules_on_null_values_are_not_evaluated() {
        let validator = spec_x(json!({
            "type": "string", "nullable": true,
            "x-kubernetes-validations": [{"rule": "self.size() > 2"}]
        }));
        assert!(admit_x(&validator, Value::Null).is_ok());
        assert_eq!(
            messages(admit_x(&validator, json!("ab"))),
            vec![r#"spec.x: Invalid value: "ab": failed rule: self.size() > 2"#]
        );
    }

    #[test]
    fn blocking_schema_errors_skip_cel_rules() {
        let mut object = valid_website();
        object["spec"]["legalBasis"] = json!("Consent"); // the CEL rule would fail
        object["spec"]["hostnames"] = json!([1]); // TypeInvalid blocks CEL
        assert_eq!(
            messages(website().admit(object, None)),
            vec![
                r#"spec.hostnames[0]: Invalid value: "integer": spec.hostnames[0] in body must be of type string: "integer""#,
                r#"<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"#,
            ]
        );
    }

    #[test]
    fn non_blocking_schema_errors_still_run_cel_rules() {
        let validator = inline(json!({
            "type": "object",
            "properties": {"spec": {
                "type": "object",
                "properties": {"a": {"type": "string", "pattern": "^[a-z]+$"}, "b": {"type": "integer"}},
                "x-kubernetes-validations": [{"rule": "self.b > 0", "message": "b must be positive"}]
            }}
        }));
        assert_eq!(
            messages(validator.admit(json!({"spec": {"a": "A", "b": 0}}), None)),
            vec![
                r#"spec.a: Invalid value: "A": spec.a in body should match '^[a-z]+$'"#,
                r#"spec: Invalid value: b must be positive"#,
            ]
        );
    }

    // --- construction ------------------------------------------------------------------------

    #[test]
    fn new_rejects_broken_schemas() {
        assert!(SchemaValidator::new(json!("string")).is_err());
        let bad_pattern = SchemaValidator::new(
            json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "("}}}),
        );
        assert!(bad_pattern.expect_err("bad pattern").contains("pattern"));
        let bad_rule = SchemaValidator::new(json!({"type": "object", "properties": {"a": {
            "type": "string", "x-kubernetes-validations": [{"rule": "self >="}]
        }}}));
        assert!(bad_rule.is_err());
    }

    #[test]
    fn validator_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SchemaValidator>();
    }

    // --- messages and Status ---------------------------------------------------------------

    #[test]
    fn field_error_bodies_follow_error_body() {
        assert_eq!(
            FieldError::required("spec.a", "").message(),
            "spec.a: Required value"
        );
        assert_eq!(
            FieldError::required("spec.a", "why").body(),
            "Required value: why"
        );
        assert_eq!(
            FieldError::forbidden("spec.a", "no").body(),
            "Forbidden: no"
        );
        assert_eq!(
            FieldError::duplicate("spec.a[1]", json!("x")).body(),
            r#"Duplicate value: "x""#
        );
        assert_eq!(
            FieldError::too_long("spec.a", 1).body(),
            "Too long: may not be more than 1 bytes"
        );
        assert_eq!(
            FieldError::too_long("spec.a", -1).body(),
            "Too long: value is too long"
        );
        assert_eq!(
            FieldError::too_many("spec.a", 3, 2).body(),
            "Too many: 3: must have at most 2 items"
        );
        assert_eq!(
            FieldError::too_many("spec.a", -1, -1).body(),
            "Too many: too many items"
        );
        assert_eq!(
            FieldError::internal("spec.a", "boom").body(),
            "Internal error: boom"
        );
        assert_eq!(
            FieldError::invalid("spec.a", json!(true), "d").body(),
            "Invalid value: true: d"
        );
        assert_eq!(
            FieldError::invalid("spec.a", Value::Null, "d").body(),
            r#"Invalid value: null: d"#
        );
        assert_eq!(
            FieldError::not_supported("spec.a", json!("x"), &["a", "b"]).body(),
            r#"Unsupported value: "x": supported values: "a", "b""#
        );
        let omitted = FieldError {
            field: "f".into(),
            kind: FieldErrorKind::Invalid,
            value: None,
            detail: "d".into(),
        };
        assert_eq!(omitted.body(), "Invalid value: d");
        assert_eq!(omitted.to_string(), "f: Invalid value: d");
    }

    #[test]
    fn reasons() {
        let all = [
            (FieldErrorKind::NotFound, "FieldValueNotFound"),
            (FieldErrorKind::Required, "FieldValueRequired"),
            (FieldErrorKind::Duplicate, "FieldValueDuplicate"),
            (FieldErrorKind::Invalid, "FieldValueInvalid"),
            (FieldErrorKind::NotSupported, "FieldValueNotSupported"),
            (FieldErrorKind::Forbidden, "FieldValueForbidden"),
            (FieldErrorKind::TooLong, "FieldValueTooLong"),
            (FieldErrorKind::TooMany, "FieldValueTooMany"),
            (FieldErrorKind::Internal, "InternalError"),
            (FieldErrorKind::TypeInvalid, "FieldValueTypeInvalid"),
        ];
        for (kind, reason) in all {
            assert_eq!(kind.reason(), reason);
        }
    }

    #[test]
    fn values_print_as_go_does() {
        assert_eq!(go_value(&json!(101)), "101");
        assert_eq!(go_value(&json!(-1)), "-1");
        assert_eq!(go_value(&json!(2.0)), "2");
        assert_eq!(go_value(&json!(0.5)), "0.5");
        assert_eq!(go_value(&json!(1e21)), "1e+21");
        assert_eq!(go_value(&json!(1.5e-7)), "1.5e-07");
        assert_eq!(go_value(&json!(0.0001)), "0.0001");
        assert_eq!(go_value(&json!(123456789.25)), "123456789.25");
        assert_eq!(go_value(&json!("a\"b\\c\n\u{1}")), r#""a\"b\\c\n\x01""#);
        assert_eq!(go_value(&json!("åäö")), "\"åäö\"");
    }

    #[test]
    fn invalid_status_for_one_error() {
        let errors = vec![FieldError::required("spec.accountRef", "")];
        assert_eq!(
            invalid_status("Website", "hosting.ecuni.se", "shop", &errors),
            json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "Website.hosting.ecuni.se \"shop\" is invalid: spec.accountRef: Required value",
                "reason": "Invalid",
                "details": {
                    "name": "shop",
                    "group": "hosting.ecuni.se",
                    "kind": "Website",
                    "causes": [{"reason": "FieldValueRequired", "message": "Required value", "field": "spec.accountRef"}]
                },
                "code": 422
            })
        );
    }

    #[test]
    fn invalid_status_for_several_errors_lists_distinct_messages_once() {
        let mut object = valid_policy();
        object["spec"]["gracePeriod"] = json!("30days");
        object["spec"]["backups"]["keepDaily"] = json!("string");
        let mut errors = retention_policy()
            .admit(object, None)
            .expect_err("rejected");
        errors.push(errors[0].clone());
        let status = invalid_status("RetentionPolicy", "hosting.ecuni.se", "default", &errors);
        assert_eq!(
            status["message"],
            concat!(
                r#"RetentionPolicy.hosting.ecuni.se "default" is invalid: ["#,
                r#"spec.backups.keepDaily: Invalid value: "string": spec.backups.keepDaily in body must be of type integer: "string", "#,
                r#"spec.gracePeriod: Invalid value: "30days": spec.gracePeriod in body should match '^[0-9]{1,6}[smhdw]$', "#,
                r#"<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation]"#
            )
        );
        let causes = status["details"]["causes"].as_array().expect("causes");
        assert_eq!(causes.len(), 4);
        assert_eq!(
            causes[1],
            json!({
                "reason": "FieldValueInvalid",
                "message": r#"Invalid value: "30days": spec.gracePeriod in body should match '^[0-9]{1,6}[smhdw]$'"#,
                "field": "spec.gracePeriod"
            })
        );
        assert_eq!(causes[0]["reason"], "FieldValueTypeInvalid");
        assert_eq!(causes[2]["field"], "<nil>");
    }

    #[test]
    fn invalid_status_for_the_core_group() {
        let status = invalid_status(
            "ConfigMap",
            "",
            "cm",
            &[FieldError::forbidden("data", "no")],
        );
        assert_eq!(
            status["message"],
            "ConfigMap \"cm\" is invalid: data: Forbidden: no"
        );
        assert_eq!(status["details"].get("group"), None);
        assert_eq!(
            invalid_status("ConfigMap", "", "cm", &[])["message"],
            "ConfigMap \"cm\" is invalid"
        );
    }

    #[test]
    fn date_and_date_time_parsers() {
        assert!(is_date("2000-02-29"));
        assert!(!is_date("1900-02-29"));
        assert!(!is_date("2024-04-31"));
        assert!(!is_date("2024-00-10"));
        assert!(is_date_time("2024-01-01T00:00:00.5Z"));
        assert!(is_date_time("2024-01-01T12:30:00+05:30"));
        assert!(!is_date_time("2024-01-01T12:60:00Z"));
        assert!(!is_date_time("2024-01-01T12:30:00+0530"));
        assert!(!is_date_time("2024-01-01T12:30Z"));
    }
}
