//! The `meta.k8s.io/v1` Table format kubectl asks for
//! (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), built for custom resources the way
//! kube-apiserver's apiextensions `tableconvertor` builds it from a CRD version's
//! `additionalPrinterColumns`, with rows' embedded objects chosen by `includeObject` as the
//! generic handler's `asTable` does.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

/// `metav1.ObjectMeta{}.SwaggerDoc()["name"]`: the Name column's description.
const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

/// `metav1.ObjectMeta{}.SwaggerDoc()["creationTimestamp"]`: the default Age column's description.
const CREATION_TIMESTAMP_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// One additional printer column of a CRD version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterColumn {
    /// The column header (`name`).
    pub name: String,
    /// The OpenAPI type of the cells (`type`): `integer`, `number`, `string`, `boolean` or `date`.
    pub type_: String,
    /// The optional OpenAPI format hint (`format`), e.g. `name`.
    pub format: Option<String>,
    /// The optional human-readable description (`description`).
    pub description: Option<String>,
    /// The simple JSONPath evaluated against each object (`jsonPath`), e.g. `.status.phase`.
    pub json_path: String,
    /// The column's priority (`priority`); kubectl shows priority > 0 only with `-o wide`.
    pub priority: i32,
}

impl PrinterColumn {
    /// Reads one entry of a CRD version's `additionalPrinterColumns` (camelCase JSON: `name`,
    /// `type`, `format`, `description`, `jsonPath`, `priority`). Returns `None` unless `name`,
    /// `type` and `jsonPath` are strings (all three are required by the CRD schema).
    pub fn from_crd_json(value: &Value) -> Option<Self> {
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
        let priority = match value.get("priority") {
            None | Some(Value::Null) => 0,
            Some(p) => i32::try_from(p.as_i64()?).ok()?,
        };
        Some(PrinterColumn {
            name: text("name")?,
            type_: text("type")?,
            format: text("format").filter(|f| !f.is_empty()),
            description: text("description").filter(|d| !d.is_empty()),
            json_path: text("jsonPath")?,
            priority,
        })
    }

    /// The `columnDefinitions` entry kube-apiserver sends for this column. Without a
    /// description it uses `Custom resource definition column (in JSONPath format): <path>`.
    fn definition(&self) -> Value {
        let description = match &self.description {
            Some(d) => d.clone(),
            None => format!(
                "Custom resource definition column (in JSONPath format): {}",
                self.json_path
            ),
        };
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format.clone().unwrap_or_default(),
            "description": description,
            "priority": self.priority,
        })
    }
}

/// The printer columns kube-apiserver serves for a CRD version that declares none: a single
/// `Age` column (type `date`, JSONPath `.metadata.creationTimestamp`, described as ObjectMeta's
/// `creationTimestamp`).
///
/// [`build_table`] always adds the leading `Name` column itself, so a table built from these
/// columns shows `Name` and `Age`, as kube-apiserver does for such a CRD.
pub fn default_columns() -> Vec<PrinterColumn> {
    vec![PrinterColumn {
        name: "Age".to_string(),
        type_: "date".to_string(),
        format: None,
        description: Some(CREATION_TIMESTAMP_DESCRIPTION.to_string()),
        json_path: ".metadata.creationTimestamp".to_string(),
        priority: 0,
    }]
}

/// The printer columns of one CRD version object (an entry of `spec.versions`): its
/// `additionalPrinterColumns`, or [`default_columns`] when it declares none (kube-apiserver's
/// `serveDefaultColumnsIfEmpty`). Entries that cannot be read are skipped.
pub fn columns_for_crd_version(version: &Value) -> Vec<PrinterColumn> {
    let columns: Vec<PrinterColumn> = version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
        .map(|cols| {
            cols.iter()
                .filter_map(PrinterColumn::from_crd_json)
                .collect()
        })
        .unwrap_or_default();
    if columns.is_empty() {
        default_columns()
    } else {
        columns
    }
}

// ---------------------------------------------------------------------------------------------
// JSONPath (the subset of k8s.io/client-go/util/jsonpath that printer columns use)
// ---------------------------------------------------------------------------------------------

/// A literal or relative path on one side of a filter comparison.
#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Path(Vec<Step>),
    Literal(Value),
}

/// `[?(...)]` filter.
#[derive(Debug, Clone, PartialEq)]
struct Filter {
    left: Vec<Step>,
    /// `None` for the existence test `[?(@.x)]`.
    comparison: Option<(String, Operand)>,
}

/// `[start:end:step]`, with Go's `ParamsEntry` semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slice {
    start: Option<i64>,
    end: Option<i64>,
    /// `end` was derived as `start + 1` from a plain index `[n]`.
    end_derived: bool,
    step: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// `.name`; the empty name (`.` alone) selects the current value.
    Field(String),
    /// `.*` or `[*]`.
    Wildcard,
    /// `[n]` or `[a:b:c]`.
    Slice(Slice),
    /// `[a,b]`.
    Union(Vec<Vec<Step>>),
    /// `[?(@.x == "y")]`.
    Filter(Box<Filter>),
    /// `..`.
    Recursive,
    /// A quoted, numeric or boolean literal.
    Literal(Value),
}

struct PathParser<'a> {
    input: &'a str,
    pos: usize,
}

fn is_terminator(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\r' | '\n' | '.' | ',' | '[' | ']' | '$' | '@' | '{' | '}'
    )
}

fn is_alphanumeric(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

impl<'a> PathParser<'a> {
    fn rest(&self) -> &'a str {
        &self.input[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    /// Parses a whole path expression (the text inside `{...}`).
    fn parse(input: &'a str) -> Option<Vec<Step>> {
        let mut parser = PathParser { input, pos: 0 };
        let mut steps = Vec::new();
        loop {
            if parser.rest().starts_with("[?(") {
                steps.push(parser.parse_filter()?);
                continue;
            }
            if parser.rest().starts_with("..") {
                if steps.last() == Some(&Step::Recursive) {
                    return None;
                }
                parser.pos += 2;
                steps.push(Step::Recursive);
                if parser.peek().is_some_and(is_alphanumeric) {
                    steps.push(parser.parse_field());
                }
                continue;
            }
            let Some(c) = parser.bump() else {
                return Some(steps);
            };
            match c {
                ' ' | '@' | '$' => {}
                '\r' | '\n' => return None,
                '[' => steps.push(parser.parse_array()?),
                '"' | '\'' => steps.push(Step::Literal(Value::String(parser.parse_quote(c)?))),
                '.' => steps.push(parser.parse_field()),
                c if c == '+' || c == '-' || c.is_ascii_digit() => {
                    parser.pos -= c.len_utf8();
                    steps.push(Step::Literal(parser.parse_number()?));
                }
                c if is_alphanumeric(c) => {
                    parser.pos -= c.len_utf8();
                    steps.push(Step::Literal(parser.parse_identifier()?));
                }
                _ => return None,
            }
        }
    }

    /// `parseField`: everything up to the next unescaped terminator, backslashes removed.
    fn parse_field(&mut self) -> Step {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c == '\\' {
                self.bump();
                self.bump();
            } else if is_terminator(c) {
                break;
            } else {
                self.bump();
            }
        }
        let raw = &self.input[start..self.pos];
        if raw == "*" {
            Step::Wildcard
        } else {
            Step::Field(raw.replace('\\', ""))
        }
    }

    fn parse_number(&mut self) -> Option<Value> {
        let start = self.pos;
        if matches!(self.peek(), Some('+' | '-')) {
            self.bump();
        }
        while self.peek().is_some_and(|c| c == '.' || c.is_ascii_digit()) {
            self.bump();
        }
        let text = &self.input[start..self.pos];
        if let Ok(i) = text.parse::<i64>() {
            return Some(Value::from(i));
        }
        text.parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
    }

    fn parse_identifier(&mut self) -> Option<Value> {
        let start = self.pos;
        while self.peek().is_some_and(|c| !is_terminator(c)) {
            self.bump();
        }
        match &self.input[start..self.pos] {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            // Identifiers such as `range`/`end` are template keywords printer columns never use.
            _ => None,
        }
    }

    /// `parseQuote`: the opening quote has been consumed.
    fn parse_quote(&mut self, quote: char) -> Option<String> {
        let mut out = String::new();
        loop {
            match self.bump()? {
                '\n' => return None,
                '\\' => match self.bump()? {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    c => out.push(c),
                },
                c if c == quote => return Some(out),
                c => out.push(c),
            }
        }
    }

    /// `parseArray`: the `[` has been consumed.
    fn parse_array(&mut self) -> Option<Step> {
        let start = self.pos;
        let end = start + self.rest().find(']')?;
        let text = &self.input[start..end];
        if text.contains('\n') {
            return None;
        }
        self.pos = end + 1;
        let text = if text == "*" { ":" } else { text };
        let parts: Vec<&str> = text.split(',').collect();
        if parts.len() > 1 {
            let mut union = Vec::new();
            for part in parts {
                union.push(PathParser::parse(&format!("[{}]", part.trim_matches(' ')))?);
            }
            return Some(Step::Union(union));
        }
        if let Some(key) = text
            .strip_prefix('\'')
            .and_then(|t| t.strip_suffix('\''))
            .filter(|k| !k.contains('\''))
        {
            // Go re-parses `['key']` as `.key`, so dots inside the key still split it.
            let steps = PathParser::parse(&format!(".{key}"))?;
            return Some(match <[Step; 1]>::try_from(steps) {
                Ok([step]) => step,
                Err(steps) => Step::Union(vec![steps]),
            });
        }
        parse_slice(text).map(Step::Slice)
    }

    /// `parseFilter`: at `[?(`.
    fn parse_filter(&mut self) -> Option<Step> {
        self.pos += 3;
        let start = self.pos;
        let mut begin = false;
        let mut end = false;
        let mut pair = '"';
        loop {
            let before = self.pos;
            let c = self.bump()?;
            match c {
                '\n' => return None,
                '"' | '\'' => {
                    if !begin {
                        begin = true;
                        pair = c;
                    } else if c == pair && !self.input[..before].ends_with('\\') {
                        end = true;
                    }
                }
                ')' if begin == end => break,
                _ => {}
            }
        }
        if self.bump()? != ']' {
            return None;
        }
        let text = &self.input[start..self.pos - 2];
        // Go matches `^([^!<>=]+)([!<>=]+)(.+?)$`; without a match the filter is an
        // existence test of the whole text.
        let Some((left_text, op, right_text)) = split_filter(text) else {
            return Some(Step::Filter(Box::new(Filter {
                left: PathParser::parse(text)?,
                comparison: None,
            })));
        };
        let left = PathParser::parse(left_text)?;
        let right_steps = PathParser::parse(right_text)?;
        let right = match right_steps.as_slice() {
            [Step::Literal(v)] => Operand::Literal(v.clone()),
            _ => Operand::Path(right_steps),
        };
        Some(Step::Filter(Box::new(Filter {
            left,
            comparison: Some((op.to_string(), right)),
        })))
    }
}

/// Splits a filter expression as `^([^!<>=]+)([!<>=]+)(.+?)$` does.
fn split_filter(text: &str) -> Option<(&str, &str, &str)> {
    let is_op = |c: char| matches!(c, '!' | '<' | '>' | '=');
    let op_start = text.find(is_op)?;
    if op_start == 0 {
        return None;
    }
    let after = &text[op_start..];
    let op_len = after.find(|c| !is_op(c))?;
    let (op, right) = after.split_at(op_len);
    Some((&text[..op_start], op, right))
}

/// The slice operator `^(-?\d*)(:-?\d*)?(:-?\d*)?$` with `ParamsEntry` semantics.
fn parse_slice(text: &str) -> Option<Slice> {
    fn number(s: &str) -> Option<Option<i64>> {
        let digits = s.strip_prefix('-').unwrap_or(s);
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        if s.is_empty() {
            return Some(None);
        }
        s.parse::<i64>().ok().map(Some)
    }
    let mut parts = text.split(':');
    let first = parts.next().unwrap_or("");
    let second = parts.next();
    let third = parts.next();
    if parts.next().is_some() {
        return None;
    }
    let start = number(first)?;
    let (end, end_derived) = match second {
        None => (Some(start.unwrap_or(0) + 1), true),
        Some(s) => (number(s)?, false),
    };
    let step = match third {
        None => None,
        Some(s) => number(s)?,
    };
    Some(Slice {
        start,
        end,
        end_derived,
        step,
    })
}

/// An evaluation failure; kube-apiserver shows such cells as `null`.
struct EvalError;

fn eval_steps(input: Vec<&Value>, steps: &[Step]) -> Result<Vec<Value>, EvalError> {
    let mut current: Vec<Value> = input.into_iter().cloned().collect();
    for step in steps {
        current = eval_step(current, step)?;
    }
    Ok(current)
}

fn eval_step(input: Vec<Value>, step: &Step) -> Result<Vec<Value>, EvalError> {
    let mut out = Vec::new();
    match step {
        Step::Field(name) if name.is_empty() => return Ok(input),
        Step::Field(name) => {
            for value in &input {
                if let Some(found) = value.as_object().and_then(|m| m.get(name)) {
                    out.push(found.clone());
                }
            }
        }
        Step::Wildcard => {
            for value in &input {
                match value {
                    Value::Object(map) => out.extend(map.values().cloned()),
                    Value::Array(items) => out.extend(items.iter().cloned()),
                    _ => {}
                }
            }
        }
        Step::Slice(slice) => {
            for value in &input {
                if value.is_null() {
                    continue;
                }
                let Value::Array(items) = value else {
                    return Err(EvalError);
                };
                out.extend(apply_slice(items, slice)?);
            }
        }
        Step::Union(branches) => {
            for branch in branches {
                let refs: Vec<&Value> = input.iter().collect();
                out.extend(eval_steps(refs, branch)?);
            }
        }
        Step::Recursive => {
            for value in &input {
                collect_recursive(value, &mut out);
            }
        }
        Step::Filter(filter) => {
            for value in &input {
                let Value::Array(items) = value else {
                    return Err(EvalError);
                };
                for item in items {
                    if filter_passes(filter, item)? {
                        out.push(item.clone());
                    }
                }
            }
        }
        // Go's text/number/bool nodes evaluate to themselves whatever the input.
        Step::Literal(literal) => out.push(literal.clone()),
    }
    Ok(out)
}

/// `evalRecursive`: every container with children, itself first, depth first.
fn collect_recursive(value: &Value, out: &mut Vec<Value>) {
    let children: Vec<&Value> = match value {
        Value::Object(map) => map.values().collect(),
        Value::Array(items) => items.iter().collect(),
        _ => Vec::new(),
    };
    if children.is_empty() {
        return;
    }
    out.push(value.clone());
    for child in children {
        collect_recursive(child, out);
    }
}

/// `evalArray` with Go's bounds rules (out of range is an error, not an empty result).
fn apply_slice(items: &[Value], slice: &Slice) -> Result<Vec<Value>, EvalError> {
    let len = i64::try_from(items.len()).map_err(|_| EvalError)?;
    let mut start = slice.start.unwrap_or(0);
    if start < 0 {
        start += len;
    }
    let mut end = slice.end.unwrap_or(len);
    if end < 0 || (end == 0 && slice.end_derived) {
        end += len;
    }
    if start == end {
        return Ok(Vec::new());
    }
    if start >= len || start < 0 || end > len || end < 0 || start > end {
        return Err(EvalError);
    }
    let step = match slice.step {
        None => 1,
        Some(s) if s > 0 => s,
        Some(_) => return Err(EvalError),
    };
    let (start, end, step) = (
        usize::try_from(start).map_err(|_| EvalError)?,
        usize::try_from(end).map_err(|_| EvalError)?,
        usize::try_from(step).map_err(|_| EvalError)?,
    );
    Ok(items[start..end].iter().step_by(step).cloned().collect())
}

fn filter_passes(filter: &Filter, item: &Value) -> Result<bool, EvalError> {
    let lefts = eval_steps(vec![item], &filter.left);
    let Some((op, right)) = &filter.comparison else {
        return Ok(lefts.is_ok_and(|l| !l.is_empty()));
    };
    let lefts = lefts?;
    let left = match lefts.as_slice() {
        [] => return Ok(false),
        [one] => one,
        _ => return Err(EvalError),
    };
    let rights = match right {
        Operand::Literal(v) => vec![v.clone()],
        Operand::Path(steps) => eval_steps(vec![item], steps)?,
    };
    let right = match rights.as_slice() {
        [] => return Ok(false),
        [one] => one,
        _ => return Err(EvalError),
    };
    compare(op, left, right)
}

/// text/template's `eq`/`ne`/`lt`/`le`/`gt`/`ge` on JSON values: same-kind comparisons only.
fn compare(op: &str, left: &Value, right: &Value) -> Result<bool, EvalError> {
    use std::cmp::Ordering;
    let ordering: Option<Ordering> = match (left, right) {
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (Value::Number(a), Value::Number(b)) => {
            let a_int = a.as_i64().map(i128::from).or(a.as_u64().map(i128::from));
            let b_int = b.as_i64().map(i128::from).or(b.as_u64().map(i128::from));
            match (a_int, b_int) {
                (Some(x), Some(y)) => Some(x.cmp(&y)),
                (None, None) => a
                    .as_f64()
                    .zip(b.as_f64())
                    .and_then(|(x, y)| x.partial_cmp(&y)),
                _ => return Err(EvalError),
            }
        }
        (Value::Bool(a), Value::Bool(b)) => match op {
            "==" => return Ok(a == b),
            "!=" => return Ok(a != b),
            _ => return Err(EvalError),
        },
        (Value::Null, Value::Null) => match op {
            "==" => return Ok(true),
            "!=" => return Ok(false),
            _ => return Err(EvalError),
        },
        (Value::Null, _) | (_, Value::Null) => match op {
            "==" => return Ok(false),
            "!=" => return Ok(true),
            _ => return Err(EvalError),
        },
        _ => return Err(EvalError),
    };
    let Some(ordering) = ordering else {
        return Ok(false);
    };
    match op {
        "==" => Ok(ordering == Ordering::Equal),
        "!=" => Ok(ordering != Ordering::Equal),
        "<" => Ok(ordering == Ordering::Less),
        "<=" => Ok(ordering != Ordering::Greater),
        ">" => Ok(ordering == Ordering::Greater),
        ">=" => Ok(ordering != Ordering::Less),
        _ => Err(EvalError),
    }
}

/// Every value a printer-column JSONPath selects, in order, with missing keys allowed
/// (`AllowMissingKeys(true)`). `None` when the path cannot be parsed or evaluating it fails
/// (an index out of range, indexing a non-array, an ill-typed filter comparison).
pub fn eval_json_path_all(object: &Value, path: &str) -> Option<Vec<Value>> {
    let steps = parse_path(path)?;
    eval_steps(vec![object], &steps).ok()
}

/// Parses a printer-column JSONPath; the path may also come wrapped in `{...}`.
fn parse_path(path: &str) -> Option<Vec<Step>> {
    let trimmed = path.trim();
    let inner = trimmed
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(trimmed);
    PathParser::parse(inner)
}

/// Evaluates a CRD printer-column JSONPath such as `.spec.accountRef`, `.status.phase`,
/// `.metadata.annotations.hosting\.ecuni\.se/delete-at` (backslash-escaped dots belong to the
/// key), `.spec.items[0].name`, `.spec.items[-1]`, `.spec.items[*].name` or
/// `.status.conditions[?(@.type=="Ready")].status`.
///
/// Returns the first selected value, which is the only one kube-apiserver puts in a cell, or
/// `None` when nothing is selected (a missing key, an index out of range, an unparsable path).
/// An explicit JSON `null` is returned as `Some(Value::Null)`.
pub fn eval_json_path(object: &Value, path: &str) -> Option<Value> {
    eval_json_path_all(object, path)?.into_iter().next()
}

// ---------------------------------------------------------------------------------------------
// Cells
// ---------------------------------------------------------------------------------------------

/// Formats a float as Go's `%v` does (`strconv.FormatFloat(f, 'g', -1, 64)`).
fn go_format_float(f: f64) -> String {
    if !f.is_finite() {
        return if f.is_nan() {
            "NaN".to_string()
        } else if f > 0.0 {
            "+Inf".to_string()
        } else {
            "-Inf".to_string()
        };
    }
    if f == 0.0 {
        return "0".to_string();
    }
    // Shortest round-trip digits, in scientific form: "d.ddde<exp>". Go's shortest %g uses
    // the exponent form when the exponent is < -4 or >= 6 (eprec = 6).
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        // %e form with at least two exponent digits.
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    format!("{f}")
}

/// `JSONPath.PrintResults` for one value: containers as compact JSON, scalars as text.
fn print_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (None, Some(u), _) => u.to_string(),
            (None, None, Some(f)) => go_format_float(f),
            _ => n.to_string(),
        },
        Value::Null => "null".to_string(),
        Value::Array(_) | Value::Object(_) => serde_json::to_string(value).unwrap_or_default(),
    }
}

/// A float cell as Go's encoding/json writes a float64 (integral values without `.0`).
fn float_cell(f: f64) -> Value {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 {
        // Exact: |f| < 1e15 fits in i64 without rounding.
        return Value::from(f as i64);
    }
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// `metatable.ConvertToHumanReadableDateType` / `duration.HumanDuration`.
fn human_duration(seconds_total: i64) -> String {
    if seconds_total < -1 {
        return "<invalid>".to_string();
    }
    if seconds_total < 0 {
        return "0s".to_string();
    }
    if seconds_total < 60 * 2 {
        return format!("{seconds_total}s");
    }
    let minutes = seconds_total / 60;
    if minutes < 10 {
        let s = seconds_total % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds_total / 3600;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{h}h", hours / 24);
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{dy}d", hours / 24 / 365);
    }
    format!("{}y", hours / 24 / 365)
}

/// The age kube-apiserver prints for an RFC 3339 timestamp (`""`/`"null"` → `<unknown>`,
/// unparsable → `<invalid>`).
fn date_cell(text: &str, now: DateTime<Utc>) -> Value {
    if text.is_empty() || text == "null" {
        return Value::from("<unknown>");
    }
    match DateTime::parse_from_rfc3339(text) {
        Ok(t) => {
            // Go's Duration.Seconds() truncates toward zero.
            let elapsed = now.signed_duration_since(t.with_timezone(&Utc));
            Value::from(human_duration(elapsed.num_seconds()))
        }
        Err(_) => Value::from("<invalid>"),
    }
}

/// One cell of a custom column (`ConvertToTable` + `cellForJSONValue`).
fn cell(column: &PrinterColumn, object: &Value, now: DateTime<Utc>) -> Value {
    let Some(value) = eval_json_path(object, &column.json_path) else {
        return Value::Null;
    };
    match column.type_.as_str() {
        // An explicit null prints as text/template's "<no value>" (PrintResults of a nil).
        "string" if value.is_null() => Value::from("<no value>"),
        "string" => Value::String(print_value(&value)),
        _ if value.is_null() => Value::Null,
        "integer" => match &value {
            Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => Value::from(i),
                (None, Some(u), _) => Value::from(u),
                // Go's int64(float64) truncates toward zero.
                (None, None, Some(f)) => Value::from(f.trunc() as i64),
                _ => Value::Null,
            },
            _ => Value::Null,
        },
        "number" => match value.as_f64() {
            Some(f) => float_cell(f),
            None => Value::Null,
        },
        "boolean" => match value {
            Value::Bool(b) => Value::Bool(b),
            _ => Value::Null,
        },
        "date" => match &value {
            Value::String(s) => date_cell(s, now),
            _ => Value::Null,
        },
        _ => Value::Null,
    }
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

/// Which object each row embeds (kubectl's `includeObject` query parameter).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// `includeObject=None`: rows carry `"object": null`.
    None,
    /// `includeObject=Metadata` (the default): rows carry a `PartialObjectMetadata`.
    #[default]
    Metadata,
    /// `includeObject=Object`: rows carry the whole object.
    Object,
}

impl IncludeObject {
    /// Reads the `includeObject` query parameter: `None`, `Metadata` or `Object`
    /// (case-sensitive); absent, empty or unrecognised values give `Metadata`.
    /// Use [`IncludeObject::parse`] to reject unrecognised values as kube-apiserver does.
    pub fn from_query(value: Option<&str>) -> Self {
        Self::parse(value).unwrap_or_default()
    }

    /// Reads the `includeObject` query parameter strictly: absent or empty gives `Metadata`;
    /// an unrecognised value gives kube-apiserver's Bad Request message
    /// `unrecognized includeObject value: "<value>"`.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value {
            None | Some("" | "Metadata") => Ok(IncludeObject::Metadata),
            Some("None") => Ok(IncludeObject::None),
            Some("Object") => Ok(IncludeObject::Object),
            Some(other) => Err(format!(
                "unrecognized includeObject value: {}",
                serde_json::to_string(other).unwrap_or_default()
            )),
        }
    }
}

/// The `columnDefinitions` kube-apiserver sends: `Name` first, then the given columns.
pub fn column_definitions(columns: &[PrinterColumn]) -> Vec<Value> {
    let mut definitions = vec![json!({
        "name": "Name",
        "type": "string",
        "format": "name",
        "description": NAME_DESCRIPTION,
        "priority": 0,
    })];
    definitions.extend(columns.iter().map(PrinterColumn::definition));
    definitions
}

/// Builds the Table for `objects` (already filtered and paged), evaluating date columns
/// against the current time. See [`build_table_at`].
pub fn build_table(
    columns: &[PrinterColumn],
    objects: &[Value],
    resource_version: &str,
    continue_token: Option<&str>,
    include: IncludeObject,
) -> Value {
    build_table_at(
        columns,
        objects,
        resource_version,
        continue_token,
        include,
        Utc::now(),
    )
}

/// Builds the Table as kube-apiserver does for a custom resource:
/// `{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion","continue"},
/// "columnDefinitions":[...],"rows":[{"cells":[...],"object":...}]}`.
///
/// `columns` are the CRD version's printer columns (use [`columns_for_crd_version`] or
/// [`default_columns`]); a `Name` column is always put first. Empty `resource_version` and
/// absent or empty `continue_token` are omitted, as Go's `ListMeta` omits them.
///
/// Cells: the Name cell is `metadata.name`. Other cells take the first value the JSONPath
/// selects, typed by the column: `string` prints scalars as text and objects/arrays as
/// compact JSON; `integer` gives an integer (floats truncated); `number` a number; `boolean` a
/// bool; `date` the human-readable age relative to `now` (`5m`, `3d4h`; `<invalid>` for an
/// unparsable timestamp). Missing values, values of the wrong type and unknown column types
/// give `null`.
///
/// Rows embed, per `include`: nothing (`null`), a `PartialObjectMetadata`
/// (`{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{...}}`), or the
/// whole object.
pub fn build_table_at(
    columns: &[PrinterColumn],
    objects: &[Value],
    resource_version: &str,
    continue_token: Option<&str>,
    include: IncludeObject,
    now: DateTime<Utc>,
) -> Value {
    let mut metadata = Map::new();
    if !resource_version.is_empty() {
        metadata.insert("resourceVersion".to_string(), Value::from(resource_version));
    }
    if let Some(token) = continue_token.filter(|t| !t.is_empty()) {
        metadata.insert("continue".to_string(), Value::from(token));
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let name = object
                .get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let mut cells = vec![Value::from(name)];
            cells.extend(columns.iter().map(|c| cell(c, object, now)));
            let embedded = match include {
                IncludeObject::None => Value::Null,
                IncludeObject::Metadata => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
                }),
                IncludeObject::Object => object.clone(),
            };
            json!({ "cells": cells, "object": embedded })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": column_definitions(columns),
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        match Utc.with_ymd_and_hms(2025, 3, 10, 12, 0, 0) {
            chrono::LocalResult::Single(t) => t,
            _ => panic!("valid time"),
        }
    }

    fn column(name: &str, type_: &str, path: &str) -> PrinterColumn {
        PrinterColumn {
            name: name.into(),
            type_: type_.into(),
            format: None,
            description: None,
            json_path: path.into(),
            priority: 0,
        }
    }

    fn mailbox(name: &str) -> Value {
        json!({
            "apiVersion": "hosting.ecuni.se/v1alpha1",
            "kind": "Mailbox",
            "metadata": {
                "name": name,
                "namespace": "team-a",
                "resourceVersion": "7",
                "uid": "u-1",
                "creationTimestamp": "2025-03-10T11:55:00Z",
                "labels": {"app": "mail"},
                "annotations": {"hosting.ecuni.se/delete-at": "2025-04-01T00:00:00Z"}
            },
            "spec": {
                "accountRef": "acme",
                "quota": 5,
                "ratio": 0.5,
                "enabled": true,
                "items": [{"name": "first"}, {"name": "second"}],
                "nested": {"b": 1, "a": [1, 2]}
            },
            "status": {
                "phase": "Active",
                "conditions": [
                    {"type": "Synced", "status": "False"},
                    {"type": "Ready", "status": "True", "generation": 3}
                ]
            }
        })
    }

    // ----- printer columns -----

    #[test]
    fn printer_column_reads_crd_json() {
        let full = json!({
            "name": "Delete at", "type": "date", "format": "date-time",
            "description": "When it goes", "jsonPath": ".metadata.annotations.x", "priority": 1
        });
        assert_eq!(
            PrinterColumn::from_crd_json(&full),
            Some(PrinterColumn {
                name: "Delete at".into(),
                type_: "date".into(),
                format: Some("date-time".into()),
                description: Some("When it goes".into()),
                json_path: ".metadata.annotations.x".into(),
                priority: 1,
            })
        );
        let minimal = json!({"name": "Phase", "type": "string", "jsonPath": ".status.phase"});
        assert_eq!(
            PrinterColumn::from_crd_json(&minimal),
            Some(column("Phase", "string", ".status.phase"))
        );
        for missing in ["name", "type", "jsonPath"] {
            let mut broken = minimal.clone();
            if let Some(map) = broken.as_object_mut() {
                map.remove(missing);
            }
            assert_eq!(
                PrinterColumn::from_crd_json(&broken),
                None,
                "without {missing}"
            );
        }
        assert_eq!(
            PrinterColumn::from_crd_json(&json!({"name": 1, "type": "string", "jsonPath": ".a"})),
            None
        );
    }

    #[test]
    fn default_columns_are_age_of_creation_timestamp() {
        let columns = default_columns();
        assert_eq!(columns.len(), 1);
        assert_eq!(columns[0].name, "Age");
        assert_eq!(columns[0].type_, "date");
        assert_eq!(columns[0].json_path, ".metadata.creationTimestamp");
        assert_eq!(columns[0].priority, 0);
        assert!(
            columns[0]
                .description
                .as_deref()
                .is_some_and(|d| d.starts_with("CreationTimestamp is a timestamp"))
        );
    }

    #[test]
    fn columns_for_crd_version_defaults_only_when_none_declared() {
        assert_eq!(
            columns_for_crd_version(&json!({"name": "v1"})),
            default_columns()
        );
        assert_eq!(
            columns_for_crd_version(&json!({"name": "v1", "additionalPrinterColumns": []})),
            default_columns()
        );
        let declared = json!({"name": "v1", "additionalPrinterColumns": [
            {"name": "Account", "type": "string", "jsonPath": ".spec.accountRef"}
        ]});
        assert_eq!(
            columns_for_crd_version(&declared),
            vec![column("Account", "string", ".spec.accountRef")]
        );
    }

    // ----- JSONPath -----

    #[test]
    fn json_path_fields() {
        let obj = mailbox("box");
        assert_eq!(
            eval_json_path(&obj, ".spec.accountRef"),
            Some(json!("acme"))
        );
        assert_eq!(eval_json_path(&obj, ".status.phase"), Some(json!("Active")));
        assert_eq!(eval_json_path(&obj, ".spec.quota"), Some(json!(5)));
        assert_eq!(
            eval_json_path(&obj, ".spec.nested"),
            Some(json!({"b": 1, "a": [1, 2]}))
        );
        assert_eq!(
            eval_json_path(&obj, "{.spec.accountRef}"),
            Some(json!("acme"))
        );
        assert_eq!(
            eval_json_path(&obj, "$.spec.accountRef"),
            Some(json!("acme"))
        );
        assert_eq!(eval_json_path(&obj, "."), Some(obj.clone()));
    }

    #[test]
    fn json_path_missing_values_are_none() {
        let obj = mailbox("box");
        assert_eq!(eval_json_path(&obj, ".spec.nope"), None);
        assert_eq!(eval_json_path(&obj, ".nope.deeper.still"), None);
        assert_eq!(eval_json_path(&obj, ".spec.accountRef.inner"), None);
        assert_eq!(eval_json_path(&json!({"spec": null}), ".spec.x"), None);
        // An explicit null is present.
        assert_eq!(
            eval_json_path(&json!({"spec": {"x": null}}), ".spec.x"),
            Some(Value::Null)
        );
    }

    #[test]
    fn json_path_escaped_dots_belong_to_the_key() {
        let obj = mailbox("box");
        assert_eq!(
            eval_json_path(&obj, r".metadata.annotations.hosting\.ecuni\.se/delete-at"),
            Some(json!("2025-04-01T00:00:00Z"))
        );
        // Without escapes the dots split the key.
        assert_eq!(
            eval_json_path(&obj, ".metadata.annotations.hosting.ecuni.se/delete-at"),
            None
        );
        assert_eq!(
            eval_json_path(&json!({"a.b": {"c": 1}}), r".a\.b.c"),
            Some(json!(1))
        );
    }

    #[test]
    fn json_path_array_indexes_and_slices() {
        let obj = mailbox("box");
        assert_eq!(
            eval_json_path(&obj, ".spec.items[0].name"),
            Some(json!("first"))
        );
        assert_eq!(
            eval_json_path(&obj, ".spec.items[1].name"),
            Some(json!("second"))
        );
        assert_eq!(
            eval_json_path(&obj, ".spec.items[-1].name"),
            Some(json!("second"))
        );
        assert_eq!(
            eval_json_path(&obj, ".spec.items[2].name"),
            None,
            "out of range"
        );
        assert_eq!(
            eval_json_path(&obj, ".spec.items[-3]"),
            None,
            "out of range"
        );
        assert_eq!(
            eval_json_path(&obj, ".spec.accountRef[0]"),
            None,
            "not an array"
        );
        assert_eq!(
            eval_json_path_all(&obj, ".spec.items[*].name"),
            Some(vec![json!("first"), json!("second")])
        );
        assert_eq!(
            eval_json_path(&obj, ".spec.items[*].name"),
            Some(json!("first"))
        );
        assert_eq!(
            eval_json_path_all(&obj, ".spec.items[0:2].name"),
            Some(vec![json!("first"), json!("second")])
        );
        assert_eq!(
            eval_json_path_all(&obj, ".spec.items[1:].name"),
            Some(vec![json!("second")])
        );
        assert_eq!(
            eval_json_path_all(&obj, ".spec.items[::2].name"),
            Some(vec![json!("first")])
        );
        assert_eq!(
            eval_json_path_all(&obj, ".spec.items[1,0].name"),
            Some(vec![json!("second"), json!("first")])
        );
        assert_eq!(eval_json_path_all(&obj, ".spec.items[5:5]"), Some(vec![]));
        assert_eq!(eval_json_path(&obj, ".spec.items[x]"), None, "bad index");
    }

    #[test]
    fn json_path_wildcards_keys_filters_and_recursion() {
        let obj = mailbox("box");
        let mut values = eval_json_path_all(&obj, ".spec.nested.*").unwrap_or_default();
        values.sort_by_key(Value::to_string);
        assert_eq!(values, vec![json!(1), json!([1, 2])]);
        assert_eq!(
            eval_json_path(&obj, ".spec['accountRef']"),
            Some(json!("acme"))
        );
        assert_eq!(
            eval_json_path(&obj, r#".status.conditions[?(@.type=="Ready")].status"#),
            Some(json!("True"))
        );
        assert_eq!(
            eval_json_path(&obj, ".status.conditions[?(@.type == 'Synced')].status"),
            Some(json!("False"))
        );
        assert_eq!(
            eval_json_path(&obj, r#".status.conditions[?(@.type!="Ready")].type"#),
            Some(json!("Synced"))
        );
        assert_eq!(
            eval_json_path(&obj, r#".status.conditions[?(@.type=="Gone")].status"#),
            None
        );
        assert_eq!(
            eval_json_path(&obj, ".status.conditions[?(@.generation)].type"),
            Some(json!("Ready"))
        );
        assert_eq!(
            eval_json_path(&obj, ".status.conditions[?(@.generation>2)].type"),
            Some(json!("Ready"))
        );
        assert_eq!(
            eval_json_path_all(&json!({"a": {"name": 1, "b": {"name": 2}}}), "..name"),
            Some(vec![json!(1), json!(2)])
        );
        assert_eq!(
            eval_json_path(&obj, ".spec.items[?(@.name=="),
            None,
            "unterminated"
        );
    }

    // ----- cells -----

    #[test]
    fn human_duration_matches_apimachinery() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 120, "3h2m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (50 * 3600, "2d2h"),
            (8 * 86400, "8d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (740 * 86400, "2y10d"),
            (8 * 365 * 86400, "8y"),
        ];
        for (seconds, want) in cases {
            assert_eq!(human_duration(seconds), want, "{seconds}s");
        }
    }

    #[test]
    fn go_float_formatting() {
        assert_eq!(go_format_float(0.5), "0.5");
        assert_eq!(go_format_float(123456.5), "123456.5");
        assert_eq!(go_format_float(1234567.5), "1.2345675e+06");
        assert_eq!(go_format_float(0.0001), "0.0001");
        assert_eq!(go_format_float(0.00001), "1e-05");
        assert_eq!(go_format_float(1e21), "1e+21");
    }

    #[test]
    fn cells_are_typed_by_column() {
        let obj = json!({
            "metadata": {"name": "x", "creationTimestamp": "2025-03-10T11:55:00Z"},
            "spec": {"n": 5, "f": 2.7, "neg": -2.7, "s": "text", "b": true, "big": 1234567.5,
                     "obj": {"k": "v"}, "arr": [1, "a"], "bad": "not-a-date", "empty": "",
                     "null": null}
        });
        let cases = [
            ("string", ".spec.s", json!("text")),
            ("string", ".spec.n", json!("5")),
            ("string", ".spec.f", json!("2.7")),
            ("string", ".spec.big", json!("1.2345675e+06")),
            ("string", ".spec.b", json!("true")),
            ("string", ".spec.obj", json!("{\"k\":\"v\"}")),
            ("string", ".spec.arr", json!("[1,\"a\"]")),
            ("string", ".spec.missing", Value::Null),
            ("string", ".spec.null", json!("<no value>")),
            ("integer", ".spec.null", Value::Null),
            ("integer", ".spec.n", json!(5)),
            ("integer", ".spec.f", json!(2)),
            ("integer", ".spec.neg", json!(-2)),
            ("integer", ".spec.s", Value::Null),
            ("number", ".spec.n", json!(5)),
            ("number", ".spec.f", json!(2.7)),
            ("number", ".spec.s", Value::Null),
            ("boolean", ".spec.b", json!(true)),
            ("boolean", ".spec.s", Value::Null),
            ("date", ".metadata.creationTimestamp", json!("5m")),
            ("date", ".spec.bad", json!("<invalid>")),
            ("date", ".spec.empty", json!("<unknown>")),
            ("date", ".spec.n", Value::Null),
            ("date", ".spec.missing", Value::Null),
            ("mystery", ".spec.s", Value::Null),
        ];
        for (type_, path, want) in cases {
            assert_eq!(
                cell(&column("c", type_, path), &obj, now()),
                want,
                "{type_} {path}"
            );
        }
    }

    // ----- includeObject -----

    #[test]
    fn include_object_from_query() {
        assert_eq!(IncludeObject::from_query(None), IncludeObject::Metadata);
        assert_eq!(IncludeObject::from_query(Some("")), IncludeObject::Metadata);
        assert_eq!(
            IncludeObject::from_query(Some("Metadata")),
            IncludeObject::Metadata
        );
        assert_eq!(IncludeObject::from_query(Some("None")), IncludeObject::None);
        assert_eq!(
            IncludeObject::from_query(Some("Object")),
            IncludeObject::Object
        );
        assert_eq!(
            IncludeObject::from_query(Some("object")),
            IncludeObject::Metadata
        );
        assert_eq!(IncludeObject::default(), IncludeObject::Metadata);
        assert_eq!(
            IncludeObject::parse(Some("Object")),
            Ok(IncludeObject::Object)
        );
        assert_eq!(
            IncludeObject::parse(Some("All")),
            Err("unrecognized includeObject value: \"All\"".to_string())
        );
    }

    // ----- the table -----

    fn crd_columns() -> Vec<PrinterColumn> {
        vec![
            column("Account", "string", ".spec.accountRef"),
            PrinterColumn {
                description: Some("When the mailbox is deleted".into()),
                format: Some("date-time".into()),
                priority: 1,
                ..column(
                    "Delete at",
                    "string",
                    r".metadata.annotations.hosting\.ecuni\.se/delete-at",
                )
            },
            column("Quota", "integer", ".spec.quota"),
            column("Missing", "string", ".status.nothing"),
            column("Age", "date", ".metadata.creationTimestamp"),
        ]
    }

    #[test]
    fn table_shape_with_printer_columns() {
        let objects = [mailbox("a"), mailbox("b")];
        let table = build_table_at(
            &crd_columns(),
            &objects,
            "42",
            Some("next-page"),
            IncludeObject::Metadata,
            now(),
        );
        assert_eq!(table["kind"], "Table");
        assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(
            table["metadata"],
            json!({"resourceVersion": "42", "continue": "next-page"})
        );
        let definitions = table["columnDefinitions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let names: Vec<&str> = definitions
            .iter()
            .filter_map(|d| d["name"].as_str())
            .collect();
        assert_eq!(
            names,
            ["Name", "Account", "Delete at", "Quota", "Missing", "Age"]
        );
        assert_eq!(
            definitions[0],
            json!({"name": "Name", "type": "string", "format": "name",
                   "description": NAME_DESCRIPTION, "priority": 0})
        );
        assert_eq!(
            definitions[1],
            json!({"name": "Account", "type": "string", "format": "",
                   "description": "Custom resource definition column (in JSONPath format): .spec.accountRef",
                   "priority": 0})
        );
        assert_eq!(
            definitions[2],
            json!({"name": "Delete at", "type": "string", "format": "date-time",
                   "description": "When the mailbox is deleted", "priority": 1})
        );
        assert_eq!(definitions[3]["type"], "integer");
        let rows = table["rows"].as_array().cloned().unwrap_or_default();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0]["cells"],
            json!(["a", "acme", "2025-04-01T00:00:00Z", 5, null, "5m"])
        );
        assert_eq!(rows[1]["cells"][0], "b");
        assert_eq!(
            rows[0]
                .as_object()
                .map(|r| r.keys().cloned().collect::<Vec<_>>()),
            Some(vec!["cells".to_string(), "object".to_string()])
        );
    }

    #[test]
    fn table_without_printer_columns_shows_name_and_age() {
        let table = build_table_at(
            &default_columns(),
            &[mailbox("a")],
            "3",
            None,
            IncludeObject::Metadata,
            now(),
        );
        let definitions = table["columnDefinitions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(definitions.len(), 2);
        assert_eq!(definitions[0]["name"], "Name");
        assert_eq!(definitions[1]["name"], "Age");
        assert_eq!(definitions[1]["type"], "date");
        assert_eq!(definitions[1]["format"], "");
        assert_eq!(
            definitions[1]["description"],
            CREATION_TIMESTAMP_DESCRIPTION
        );
        assert_eq!(table["rows"][0]["cells"], json!(["a", "5m"]));
        assert_eq!(table["metadata"], json!({"resourceVersion": "3"}));
    }

    #[test]
    fn table_with_no_columns_at_all_still_has_name() {
        let table = build_table_at(
            &[],
            &[mailbox("a")],
            "",
            Some(""),
            IncludeObject::None,
            now(),
        );
        assert_eq!(table["metadata"], json!({}));
        assert_eq!(table["columnDefinitions"].as_array().map(Vec::len), Some(1));
        assert_eq!(table["rows"][0]["cells"], json!(["a"]));
    }

    #[test]
    fn empty_table_has_empty_rows() {
        let table = build_table_at(
            &crd_columns(),
            &[],
            "9",
            None,
            IncludeObject::Metadata,
            now(),
        );
        assert_eq!(table["rows"], json!([]));
        assert_eq!(table["columnDefinitions"].as_array().map(Vec::len), Some(6));
    }

    #[test]
    fn rows_embed_partial_object_metadata_by_default() {
        let object = mailbox("a");
        let table = build_table_at(
            &[],
            std::slice::from_ref(&object),
            "1",
            None,
            IncludeObject::Metadata,
            now(),
        );
        assert_eq!(
            table["rows"][0]["object"],
            json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": object["metadata"],
            })
        );
        assert!(table["rows"][0]["object"].get("spec").is_none());
    }

    #[test]
    fn rows_embed_whole_object_with_include_object() {
        let object = mailbox("a");
        let table = build_table_at(
            &[],
            std::slice::from_ref(&object),
            "1",
            None,
            IncludeObject::Object,
            now(),
        );
        assert_eq!(table["rows"][0]["object"], object);
    }

    #[test]
    fn rows_embed_null_with_include_none() {
        let table = build_table_at(&[], &[mailbox("a")], "1", None, IncludeObject::None, now());
        let row = table["rows"][0].as_object().cloned().unwrap_or_default();
        assert_eq!(row.get("object"), Some(&Value::Null));
        assert_eq!(row.get("cells"), Some(&json!(["a"])));
    }

    #[test]
    fn build_table_uses_the_current_time_for_ages() {
        let created = (Utc::now() - chrono::Duration::seconds(30)).to_rfc3339();
        let object = json!({"metadata": {"name": "a", "creationTimestamp": created}});
        let table = build_table(
            &default_columns(),
            &[object],
            "1",
            None,
            IncludeObject::None,
        );
        let age = table["rows"][0]["cells"][1]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            ["29s", "30s", "31s", "32s"].contains(&age.as_str()),
            "age {age}"
        );
    }
}
