//! Label and field selectors, parsed and matched as kube-apiserver does.
//!
//! The label-selector grammar, its lexer quirks and its error messages follow
//! `k8s.io/apimachinery/pkg/labels` (`Parse`, `NewRequirement`) together with the key and value
//! rules of `k8s.io/apimachinery/pkg/util/validation`. The field-selector grammar and escaping
//! follow `k8s.io/apimachinery/pkg/fields` (`ParseSelector`, `UnescapeValue`), restricted to the
//! field labels kube-apiserver accepts for custom resources (`metadata.name`, and
//! `metadata.namespace` for namespaced kinds).

use crate::go_fmt::go_quote;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::OnceLock;

use regex::Regex;

// ---------------------------------------------------------------------------------------------
// Key and value validation (k8s.io/apimachinery/pkg/util/validation)
// ---------------------------------------------------------------------------------------------

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_MAX_LENGTH: usize = 63;
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_MAX_LENGTH: usize = 63;
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;

/// Compiles `^(?:fmt)$` once per call site.
fn anchored(cell: &'static OnceLock<Option<Regex>>, fmt: &str) -> Option<&'static Regex> {
    cell.get_or_init(|| Regex::new(&format!("^(?:{fmt})$")).ok())
        .as_ref()
}

fn matches_anchored(cell: &'static OnceLock<Option<Regex>>, fmt: &str, value: &str) -> bool {
    anchored(cell, fmt).is_some_and(|re| re.is_match(value))
}

fn qualified_name_matches(value: &str) -> bool {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    matches_anchored(&RE, QUALIFIED_NAME_FMT, value)
}

fn label_value_matches(value: &str) -> bool {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    matches_anchored(&RE, LABEL_VALUE_FMT, value)
}

fn dns1123_subdomain_matches(value: &str) -> bool {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    matches_anchored(&RE, DNS1123_SUBDOMAIN_FMT, value)
}

/// `validation.RegexError`.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut out = format!("{msg} (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push('\'');
        out.push_str(example);
        out.push_str("', ");
    }
    out.push_str("regex used for validation is '");
    out.push_str(fmt);
    out.push_str("')");
    out
}

fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

/// `validation.IsDNS1123Subdomain`.
fn dns1123_subdomain_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !dns1123_subdomain_matches(value) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// `validation.IsQualifiedName`: the rules for a label key.
fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    dns1123_subdomain_errors(prefix)
                        .into_iter()
                        .map(|msg| format!("prefix part {msg}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_ERR_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > QUALIFIED_NAME_MAX_LENGTH {
        errs.push(format!(
            "name part {}",
            max_len_error(QUALIFIED_NAME_MAX_LENGTH)
        ));
    }
    if !qualified_name_matches(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// `validation.IsValidLabelValue`.
fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(max_len_error(LABEL_VALUE_MAX_LENGTH));
    }
    if !label_value_matches(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// `field.Invalid(path, value, detail).Error()`.
fn field_invalid(path: &str, value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: {}: {detail}", go_quote(value))
}

/// `errors.NewAggregate(errs).Error()`.
fn aggregate(errs: Vec<String>) -> Option<String> {
    match errs.len() {
        0 => None,
        1 => errs.into_iter().next(),
        _ => {
            let mut seen = BTreeSet::new();
            let unique: Vec<String> = errs
                .into_iter()
                .filter(|e| seen.insert(e.clone()))
                .collect();
            if unique.len() == 1 {
                unique.into_iter().next()
            } else {
                Some(format!("[{}]", unique.join(", ")))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Label selectors (k8s.io/apimachinery/pkg/labels)
// ---------------------------------------------------------------------------------------------

/// A label-selector operator (`k8s.io/apimachinery/pkg/selection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One AND-ed term of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    operator: Operator,
    /// Sorted and de-duplicated, as Go's `sets.String.List()` yields them.
    values: Vec<String>,
}

impl Requirement {
    /// `labels.NewRequirement`, minus the key check the parser has already done.
    fn new(key: String, operator: Operator, values: Vec<String>) -> Result<Self, String> {
        let mut errs = Vec::new();
        match operator {
            Operator::In | Operator::NotIn => {
                if values.is_empty() {
                    errs.push(
                        "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"
                            .to_string(),
                    );
                }
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => {
                if values.len() != 1 {
                    errs.push(
                        "values: Invalid value: exact-match compatibility requires one single value"
                            .to_string(),
                    );
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !values.is_empty() {
                    errs.push(
                        "values: Invalid value: values set must be empty for exists and does not exist"
                            .to_string(),
                    );
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(
                        "values: Invalid value: for 'Gt', 'Lt' operators, exactly one value is required"
                            .to_string(),
                    );
                }
                for (i, value) in values.iter().enumerate() {
                    if value.parse::<i64>().is_err() {
                        errs.push(field_invalid(
                            &format!("values[{i}]"),
                            value,
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
        }
        for (i, value) in values.iter().enumerate() {
            let value_errs = label_value_errors(value);
            if !value_errs.is_empty() {
                errs.push(field_invalid(
                    &format!("values[{i}][{key}]"),
                    value,
                    &value_errs.join("; "),
                ));
            }
        }
        match aggregate(errs) {
            Some(err) => Err(err),
            None => Ok(Requirement {
                key,
                operator,
                values,
            }),
        }
    }

    fn has_value(&self, value: &str) -> bool {
        self.values.iter().any(|v| v == value)
    }

    /// `Requirement.Matches`.
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let current = labels.get(&self.key);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                current.is_some_and(|v| self.has_value(v))
            }
            Operator::NotIn | Operator::NotEquals => current.is_none_or(|v| !self.has_value(v)),
            Operator::Exists => current.is_some(),
            Operator::DoesNotExist => current.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(Ok(actual)) = current.map(|v| v.parse::<i64>()) else {
                    return false;
                };
                let [wanted] = self.values.as_slice() else {
                    return false;
                };
                let Ok(wanted) = wanted.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    actual > wanted
                } else {
                    actual < wanted
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let (op, parens) = match self.operator {
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
            Operator::Equals => ("=", false),
            Operator::DoubleEquals => ("==", false),
            Operator::NotEquals => ("!=", false),
            Operator::In => (" in ", true),
            Operator::NotIn => (" notin ", true),
            Operator::GreaterThan => (">", false),
            Operator::LessThan => ("<", false),
        };
        f.write_str(op)?;
        if parens {
            f.write_str("(")?;
        }
        f.write_str(&self.values.join(","))?;
        if parens {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A parsed `labelSelector`: the AND of its requirements. The empty selector selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// Sorted by key, as `labels.Parse` sorts them.
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses a `labelSelector` query value as kube-apiserver does (`labels.Parse`).
    ///
    /// Supports `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x, y)`, `a` (exists), `!a`
    /// (does not exist), and `a>1` / `a<1` (integer comparison), comma-separated (AND) and
    /// whitespace tolerant. The empty string selects everything. Keys must be qualified names
    /// (optional DNS-subdomain prefix and `/`, then a name of at most 63 characters of
    /// `[A-Za-z0-9._-]` starting and ending alphanumeric); values may be empty or follow the
    /// name rule. Errors carry kube-apiserver's message, e.g.
    /// `unable to parse requirement: found '', expected: identifier`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parser = Parser::new(text);
        let mut requirements = parser.parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// A selector that selects everything (what an empty `labelSelector` parses to).
    pub fn everything() -> Self {
        LabelSelector::default()
    }

    /// Whether the selector places no restriction on labels.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether an object with these labels is selected. `!=` and `notin` select objects that
    /// lack the key, as in Kubernetes.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical form `labels.Selector.String()` prints (requirements sorted by key).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

/// Lexer tokens of the label-selector grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Error,
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn literal_token(literal: &[u8]) -> Option<Token> {
    Some(match literal {
        b")" => Token::ClosedPar,
        b"," => Token::Comma,
        b"!" => Token::DoesNotExist,
        b"==" => Token::DoubleEquals,
        b"=" => Token::Equals,
        b">" => Token::GreaterThan,
        b"in" => Token::In,
        b"<" => Token::LessThan,
        b"!=" => Token::NotEquals,
        b"notin" => Token::NotIn,
        b"(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special_symbol(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Splits the selector into tokens exactly as `labels.Lexer` does (byte-wise).
fn lex(text: &str) -> Vec<(Token, String)> {
    let bytes = text.as_bytes();
    let mut pos = 0;
    let mut items = Vec::new();
    loop {
        while pos < bytes.len() && is_whitespace(bytes[pos]) {
            pos += 1;
        }
        if pos >= bytes.len() {
            items.push((Token::EndOfString, String::new()));
            return items;
        }
        let start = pos;
        if is_special_symbol(bytes[pos]) {
            // Longest run of special symbols that still forms a known operator.
            let mut last: Option<(Token, usize)> = None;
            while pos < bytes.len() && is_special_symbol(bytes[pos]) {
                match literal_token(&bytes[start..=pos]) {
                    Some(token) => {
                        last = Some((token, pos + 1));
                        pos += 1;
                    }
                    None if last.is_some() => break,
                    None => pos += 1,
                }
            }
            match last {
                Some((token, end)) => {
                    pos = end;
                    items.push((token, text[start..end].to_string()));
                }
                None => {
                    // Unreachable with the current symbol table (every single symbol is an
                    // operator), kept for parity with the Go lexer.
                    items.push((
                        Token::Error,
                        format!("error expected: keyword found '{}'", &text[start..pos]),
                    ));
                }
            }
        } else {
            while pos < bytes.len() && !is_special_symbol(bytes[pos]) && !is_whitespace(bytes[pos])
            {
                pos += 1;
            }
            // Slicing at ASCII delimiters keeps UTF-8 boundaries intact.
            let literal = &text[start..pos];
            let token = literal_token(literal.as_bytes()).unwrap_or(Token::Identifier);
            items.push((token, literal.to_string()));
        }
    }
}

/// Whether `in`/`notin` keep their keyword meaning (`KeyAndOperator`) or read as identifiers
/// (`Values`), as in `labels.ParserContext`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser {
    items: Vec<(Token, String)>,
    position: usize,
}

impl Parser {
    fn new(text: &str) -> Self {
        Parser {
            items: lex(text),
            position: 0,
        }
    }

    fn item(&self, index: usize, context: Context) -> (Token, String) {
        let (token, literal) = self
            .items
            .get(index)
            .cloned()
            .unwrap_or((Token::EndOfString, String::new()));
        let token = match (context, token) {
            (Context::Values, Token::In | Token::NotIn) => Token::Identifier,
            (_, token) => token,
        };
        (token, literal)
    }

    fn lookahead(&self, context: Context) -> (Token, String) {
        self.item(self.position, context)
    }

    fn consume(&mut self, context: Context) -> (Token, String) {
        let item = self.item(self.position, context);
        if self.position < self.items.len() {
            self.position += 1;
        }
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (token, literal) = self.lookahead(Context::Values);
            match token {
                Token::Identifier | Token::DoesNotExist => {
                    let requirement = self
                        .parse_requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(requirement);
                    let (token, literal) = self.consume(Context::Values);
                    match token {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let (next, next_literal) = self.lookahead(Context::Values);
                            if next != Token::Identifier && next != Token::DoesNotExist {
                                return Err(format!(
                                    "found '{next_literal}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => {
                            return Err(format!(
                                "found '{literal}', expected: ',' or 'end of string'"
                            ));
                        }
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => {
                    return Err(format!(
                        "found '{literal}', expected: !, identifier, or 'end of string'"
                    ));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, operator) = self.parse_key_and_infer_operator()?;
        if let Some(operator @ (Operator::Exists | Operator::DoesNotExist)) = operator {
            return Requirement::new(key, operator, Vec::new());
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        Requirement::new(key, operator, values.into_iter().collect())
    }

    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let mut operator = None;
        let (mut token, mut literal) = self.consume(Context::Values);
        if token == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            (token, literal) = self.consume(Context::Values);
        }
        if token != Token::Identifier {
            return Err(format!("found '{literal}', expected: identifier"));
        }
        let key_errs = qualified_name_errors(&literal);
        if !key_errs.is_empty() {
            return Err(field_invalid("<nil>", &literal, &key_errs.join("; ")));
        }
        let (next, _) = self.lookahead(Context::Values);
        if (next == Token::EndOfString || next == Token::Comma)
            && operator != Some(Operator::DoesNotExist)
        {
            operator = Some(Operator::Exists);
        }
        Ok((literal, operator))
    }

    fn parse_operator(&mut self) -> Result<Operator, String> {
        let (token, literal) = self.consume(Context::KeyAndOperator);
        Ok(match token {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => {
                return Err(format!(
                    "found '{literal}', expected: in, notin, =, ==, !=, gt, lt"
                ));
            }
        })
    }

    fn parse_values(&mut self) -> Result<BTreeSet<String>, String> {
        let (token, literal) = self.consume(Context::Values);
        if token != Token::OpenPar {
            return Err(format!("found '{literal}' expected: '('"));
        }
        let (token, literal) = self.lookahead(Context::Values);
        match token {
            Token::Identifier | Token::Comma => {
                let values = self.parse_identifiers_list()?;
                let (token, _) = self.consume(Context::Values);
                if token != Token::ClosedPar {
                    return Err(format!("found '{literal}', expected: ')'"));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(BTreeSet::from([String::new()]))
            }
            _ => Err(format!(
                "found '{literal}', expected: ',', ')' or identifier"
            )),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<BTreeSet<String>, String> {
        let mut values = BTreeSet::new();
        loop {
            let (token, literal) = self.consume(Context::Values);
            match token {
                Token::Identifier => {
                    values.insert(literal);
                    let (next, next_literal) = self.lookahead(Context::Values);
                    match next {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(values),
                        _ => {
                            return Err(format!("found '{next_literal}', expected: ',' or ')'"));
                        }
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.insert(String::new());
                    }
                    let (next, _) = self.lookahead(Context::Values);
                    if next == Token::ClosedPar {
                        values.insert(String::new());
                        return Ok(values);
                    }
                    if next == Token::Comma {
                        self.consume(Context::Values);
                        values.insert(String::new());
                    }
                }
                _ => {
                    return Err(format!("found '{literal}', expected: ',', or identifier"));
                }
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<BTreeSet<String>, String> {
        let (token, _) = self.lookahead(Context::Values);
        if token == Token::EndOfString || token == Token::Comma {
            return Ok(BTreeSet::from([String::new()]));
        }
        let (token, literal) = self.consume(Context::Values);
        if token == Token::Identifier {
            Ok(BTreeSet::from([literal]))
        } else {
            Err(format!("found '{literal}', expected: identifier"))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Field selectors (k8s.io/apimachinery/pkg/fields)
// ---------------------------------------------------------------------------------------------

/// A field a custom resource can be selected by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    Namespace,
}

impl Field {
    fn label(self) -> &'static str {
        match self {
            Field::Name => "metadata.name",
            Field::Namespace => "metadata.namespace",
        }
    }

    fn read(self, object: &serde_json::Value) -> &str {
        let key = match self {
            Field::Name => "name",
            Field::Namespace => "namespace",
        };
        object
            .get("metadata")
            .and_then(|m| m.get(key))
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
    }
}

/// One AND-ed term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldTerm {
    field: Field,
    equal: bool,
    value: String,
}

/// A parsed `fieldSelector`: the AND of `field=value` / `field!=value` terms. The empty selector
/// selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// In the order `fields.ParseSelector` keeps them (terms sorted as raw strings).
    terms: Vec<FieldTerm>,
}

/// `fields.splitTerms`: splits on commas not escaped by a backslash (escapes are kept).
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in selector.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// `fields.splitTerm`: the first `!=`, `==` or `=` splits field from value.
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        let remaining = &term[i..];
        for op in ["!=", "==", "="] {
            if remaining.starts_with(op) {
                return Some((&term[..i], op, &term[i + op.len()..]));
            }
        }
    }
    None
}

/// `fields.UnescapeValue`: resolves `\\`, `\,` and `\=`; rejects other escapes and bare `,`/`=`.
fn unescape_value(value: &str) -> Result<String, String> {
    if !value.contains(['\\', ',', '=']) {
        return Ok(value.to_string());
    }
    let mut out = String::with_capacity(value.len());
    let mut in_slash = false;
    for c in value.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => {
                    return Err(format!(
                        "invalid field selector: invalid escape sequence: \\{c}"
                    ));
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            // Go formats the rune with %v, i.e. as its code point number.
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                ));
            }
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(out)
}

impl FieldSelector {
    /// Parses a `fieldSelector` query value for a namespaced custom resource, as kube-apiserver
    /// does (`fields.ParseSelector` followed by the custom-resource field-label conversion).
    ///
    /// Terms are `field=value`, `field==value` or `field!=value`, comma-separated; values may
    /// contain the escapes `\,`, `\=` and `\\`. Only `metadata.name` and `metadata.namespace`
    /// are supported; any other field yields `field label not supported: <field>`. Whitespace
    /// is not trimmed (kube-apiserver does not trim it either).
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::parse_for_scope(text, true)
    }

    /// Like [`FieldSelector::parse`], with the resource's scope: for a cluster-scoped resource
    /// kube-apiserver rejects `metadata.namespace` (`field label not supported:
    /// metadata.namespace`), as its custom-resource converter does.
    pub fn parse_for_scope(text: &str, namespaced: bool) -> Result<Self, String> {
        let mut parts = split_terms(text);
        parts.sort_unstable();
        let mut raw = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((lhs, op, rhs)) = split_term(part) else {
                return Err(format!(
                    "invalid selector: '{text}'; can't understand '{part}'"
                ));
            };
            let value = unescape_value(rhs)?;
            raw.push((lhs, op != "!=", value));
        }
        let mut terms = Vec::with_capacity(raw.len());
        for (lhs, equal, value) in raw {
            let field = match lhs {
                "metadata.name" => Field::Name,
                "metadata.namespace" if namespaced => Field::Namespace,
                other => return Err(format!("field label not supported: {other}")),
            };
            terms.push(FieldTerm {
                field,
                equal,
                value,
            });
        }
        Ok(FieldSelector { terms })
    }

    /// A selector that selects everything (what an empty `fieldSelector` parses to).
    pub fn everything() -> Self {
        FieldSelector::default()
    }

    /// Whether the selector places no restriction on fields.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether the object (as JSON) is selected. Reads `metadata.name` and
    /// `metadata.namespace`; a cluster-scoped object's namespace is `""`.
    pub fn matches(&self, object: &serde_json::Value) -> bool {
        self.terms
            .iter()
            .all(|term| (term.field.read(object) == term.value) == term.equal)
    }

    /// The name the selector pins with `metadata.name=<x>` (or `==`), if any, as
    /// `Selector.RequiresExactMatch("metadata.name")` reports it.
    pub fn exact_name(&self) -> Option<&str> {
        self.exact(Field::Name)
    }

    /// The namespace the selector pins with `metadata.namespace=<x>` (or `==`), if any.
    pub fn exact_namespace(&self) -> Option<&str> {
        self.exact(Field::Namespace)
    }

    fn exact(&self, field: Field) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && t.equal)
            .map(|t| t.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    /// The canonical form (`field=value` terms with values escaped, comma-separated).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, term) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let escaped = term
                .value
                .replace('\\', "\\\\")
                .replace(',', "\\,")
                .replace('=', "\\=");
            let op = if term.equal { "=" } else { "!=" };
            write!(f, "{}{op}{escaped}", term.field.label())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(text: &str) -> LabelSelector {
        match LabelSelector::parse(text) {
            Ok(s) => s,
            Err(e) => panic!("{text:?} should parse: {e}"),
        }
    }

    fn label_err(text: &str) -> String {
        match LabelSelector::parse(text) {
            Ok(s) => panic!("{text:?} should not parse, got {s:?}"),
            Err(e) => e,
        }
    }

    const NAME_REGEX_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    const VALUE_REGEX_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

    // ----- label selectors: operators -----

    #[test]
    fn empty_and_blank_label_selectors_select_everything() {
        for text in ["", "   ", "\t\n"] {
            let s = sel(text);
            assert!(s.is_empty());
            assert!(s.matches(&labels(&[])));
            assert!(s.matches(&labels(&[("a", "b")])));
        }
        assert_eq!(LabelSelector::everything(), sel(""));
    }

    #[test]
    fn equals_and_double_equals_need_the_value() {
        for text in ["app=web", "app==web"] {
            let s = sel(text);
            assert!(!s.is_empty());
            assert!(s.matches(&labels(&[("app", "web")])), "{text}");
            assert!(!s.matches(&labels(&[("app", "db")])), "{text}");
            assert!(!s.matches(&labels(&[])), "{text}: missing key");
            assert!(!s.matches(&labels(&[("other", "web")])), "{text}");
        }
    }

    #[test]
    fn not_equals_matches_other_values_and_missing_keys() {
        let s = sel("app!=web");
        assert!(!s.matches(&labels(&[("app", "web")])));
        assert!(s.matches(&labels(&[("app", "db")])));
        assert!(s.matches(&labels(&[])));
    }

    #[test]
    fn in_requires_one_of_the_values() {
        let s = sel("env in (prod,staging)");
        assert!(s.matches(&labels(&[("env", "prod")])));
        assert!(s.matches(&labels(&[("env", "staging")])));
        assert!(!s.matches(&labels(&[("env", "dev")])));
        assert!(!s.matches(&labels(&[])));
    }

    #[test]
    fn notin_excludes_the_values_and_matches_missing_keys() {
        let s = sel("env notin (prod, staging)");
        assert!(!s.matches(&labels(&[("env", "prod")])));
        assert!(!s.matches(&labels(&[("env", "staging")])));
        assert!(s.matches(&labels(&[("env", "dev")])));
        assert!(s.matches(&labels(&[])));
    }

    #[test]
    fn bare_key_means_exists() {
        let s = sel("app");
        assert!(s.matches(&labels(&[("app", "")])));
        assert!(s.matches(&labels(&[("app", "x")])));
        assert!(!s.matches(&labels(&[("other", "x")])));
    }

    #[test]
    fn bang_key_means_does_not_exist() {
        let s = sel("!app");
        assert!(!s.matches(&labels(&[("app", "")])));
        assert!(s.matches(&labels(&[("other", "x")])));
        assert!(s.matches(&labels(&[])));
        let spaced = sel("! app");
        assert!(!spaced.matches(&labels(&[("app", "x")])));
    }

    #[test]
    fn greater_and_less_than_compare_integers() {
        let gt = sel("replicas>3");
        assert!(gt.matches(&labels(&[("replicas", "4")])));
        assert!(!gt.matches(&labels(&[("replicas", "3")])));
        assert!(
            !gt.matches(&labels(&[("replicas", "x")])),
            "non-integer label"
        );
        assert!(!gt.matches(&labels(&[])), "missing key");
        let lt = sel("replicas < 3");
        assert!(lt.matches(&labels(&[("replicas", "2")])));
        assert!(!lt.matches(&labels(&[("replicas", "3")])));
    }

    #[test]
    fn comma_separated_requirements_are_anded() {
        let s = sel("app=web,env in (prod),!debug,tier");
        let full = labels(&[("app", "web"), ("env", "prod"), ("tier", "front")]);
        assert!(s.matches(&full));
        let mut with_debug = full.clone();
        with_debug.insert("debug".into(), "1".into());
        assert!(!s.matches(&with_debug));
        let mut wrong_env = full.clone();
        wrong_env.insert("env".into(), "dev".into());
        assert!(!s.matches(&wrong_env));
        let mut no_tier = full;
        no_tier.remove("tier");
        assert!(!s.matches(&no_tier));
    }

    #[test]
    fn whitespace_is_tolerated_everywhere() {
        let s = sel("  app = web ,\tenv   notin ( dev , test )  ,  x  ");
        assert!(s.matches(&labels(&[("app", "web"), ("env", "prod"), ("x", "")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "dev"), ("x", "")])));
        assert_eq!(s.to_string(), "app=web,env notin (dev,test),x");
    }

    #[test]
    fn empty_values_are_allowed() {
        let s = sel("a=");
        assert!(s.matches(&labels(&[("a", "")])));
        assert!(!s.matches(&labels(&[("a", "x")])));
        assert!(!s.matches(&labels(&[])));
        let s = sel("a=,b=c");
        assert!(s.matches(&labels(&[("a", ""), ("b", "c")])));
        let s = sel("a in ()");
        assert!(s.matches(&labels(&[("a", "")])));
        assert!(!s.matches(&labels(&[("a", "x")])));
        let s = sel("a in (,x)");
        assert!(s.matches(&labels(&[("a", "")])));
        assert!(s.matches(&labels(&[("a", "x")])));
        let s = sel("a in (x,,y)");
        assert!(s.matches(&labels(&[("a", "")])));
        assert!(s.matches(&labels(&[("a", "y")])));
        let s = sel("a in (x,)");
        assert!(s.matches(&labels(&[("a", "")])));
    }

    #[test]
    fn in_and_notin_are_identifiers_outside_operator_position() {
        let s = sel("in in (in, notin)");
        assert!(s.matches(&labels(&[("in", "notin")])));
        assert!(!s.matches(&labels(&[("in", "x")])));
        let s = sel("notin=in");
        assert!(s.matches(&labels(&[("notin", "in")])));
    }

    #[test]
    fn prefixed_keys_are_accepted() {
        let s = sel("hosting.ecuni.se/account=acme,app.kubernetes.io/name in (web)");
        assert!(s.matches(&labels(&[
            ("hosting.ecuni.se/account", "acme"),
            ("app.kubernetes.io/name", "web"),
        ])));
        assert!(!s.matches(&labels(&[
            ("account", "acme"),
            ("app.kubernetes.io/name", "web")
        ])));
    }

    #[test]
    fn display_is_sorted_canonical_form() {
        assert_eq!(
            sel("z=1,!b,a in (y,x,x),c!=2,d==3,e notin (q),f,g>5,h<6").to_string(),
            "a in (x,y),!b,c!=2,d==3,e notin (q),f,g>5,h<6,z=1"
        );
    }

    // ----- label selectors: errors -----

    #[test]
    fn syntax_errors_carry_kube_apiserver_messages() {
        let cases = [
            (
                "a b",
                "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
            ),
            (
                "a in x",
                "unable to parse requirement: found 'x' expected: '('",
            ),
            (
                "a in (x",
                "unable to parse requirement: found '', expected: ',' or ')'",
            ),
            (
                "a in (x y)",
                "unable to parse requirement: found 'y', expected: ',' or ')'",
            ),
            (
                "a in (x,=)",
                "unable to parse requirement: found '=', expected: ',', or identifier",
            ),
            (
                "a in =",
                "unable to parse requirement: found '=' expected: '('",
            ),
            (
                "a in (=)",
                "unable to parse requirement: found '=', expected: ',', ')' or identifier",
            ),
            ("a,", "found '', expected: identifier after ','"),
            ("a,,b", "found ',', expected: identifier after ','"),
            (
                "=a",
                "found '=', expected: !, identifier, or 'end of string'",
            ),
            (
                ",a",
                "found ',', expected: !, identifier, or 'end of string'",
            ),
            ("!a=b", "found '=', expected: ',' or 'end of string'"),
            ("a=b=c", "found '=', expected: ',' or 'end of string'"),
            ("a=b c", "found 'c', expected: ',' or 'end of string'"),
            (
                "a=(b)",
                "unable to parse requirement: found '(', expected: identifier",
            ),
            (
                "!",
                "unable to parse requirement: found '', expected: identifier",
            ),
            (
                "! =a",
                "unable to parse requirement: found '=', expected: identifier",
            ),
            // `!=` lexes as one operator.
            (
                "!=a",
                "found '!=', expected: !, identifier, or 'end of string'",
            ),
            (
                "a=!b",
                "unable to parse requirement: found '!', expected: identifier",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(label_err(text), want, "selector {text:?}");
        }
    }

    #[test]
    fn invalid_keys_are_rejected_with_validation_messages() {
        assert_eq!(
            label_err("-a=b"),
            format!(
                "unable to parse requirement: <nil>: Invalid value: \"-a\": name part {NAME_REGEX_MSG}"
            )
        );
        assert_eq!(
            label_err("/a"),
            "unable to parse requirement: <nil>: Invalid value: \"/a\": prefix part must be non-empty"
        );
        assert_eq!(
            label_err("Example.com/a"),
            "unable to parse requirement: <nil>: Invalid value: \"Example.com/a\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
        assert_eq!(
            label_err("example.com/"),
            format!(
                "unable to parse requirement: <nil>: Invalid value: \"example.com/\": name part must be non-empty; name part {NAME_REGEX_MSG}"
            )
        );
        assert_eq!(
            label_err("a/b/c"),
            format!(
                "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name {NAME_REGEX_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )
        );
        let long = "k".repeat(64);
        assert_eq!(
            label_err(&format!("{long}=v")),
            format!(
                "unable to parse requirement: <nil>: Invalid value: \"{long}\": name part must be no more than 63 characters"
            )
        );
        assert!(LabelSelector::parse(&format!("{}=v", "k".repeat(63))).is_ok());
        // Non-ASCII bytes are part of the identifier and fail validation.
        assert!(label_err("äpp=x").contains("Invalid value: \"äpp\""));
    }

    #[test]
    fn invalid_values_are_rejected_with_validation_messages() {
        assert_eq!(
            label_err("a=b_"),
            format!(
                "unable to parse requirement: values[0][a]: Invalid value: \"b_\": {VALUE_REGEX_MSG}"
            )
        );
        let long = "v".repeat(64);
        assert_eq!(
            label_err(&format!("a={long}")),
            format!(
                "unable to parse requirement: values[0][a]: Invalid value: \"{long}\": must be no more than 63 characters"
            )
        );
        assert!(LabelSelector::parse(&format!("a={}", "v".repeat(63))).is_ok());
        // Values are sorted before validation, so indices follow sorted order.
        assert_eq!(
            label_err("a in (ok, z_, -x)"),
            format!(
                "unable to parse requirement: [values[0][a]: Invalid value: \"-x\": {VALUE_REGEX_MSG}, values[2][a]: Invalid value: \"z_\": {VALUE_REGEX_MSG}]"
            )
        );
        assert_eq!(
            label_err("a>b"),
            "unable to parse requirement: values[0]: Invalid value: \"b\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
    }

    #[test]
    fn go_quote_escapes_like_percent_q() {
        assert_eq!(go_quote("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\x01\"");
    }

    // ----- field selectors -----

    fn fsel(text: &str) -> FieldSelector {
        match FieldSelector::parse(text) {
            Ok(s) => s,
            Err(e) => panic!("{text:?} should parse: {e}"),
        }
    }

    fn field_err(text: &str) -> String {
        match FieldSelector::parse(text) {
            Ok(s) => panic!("{text:?} should not parse, got {s:?}"),
            Err(e) => e,
        }
    }

    fn namespaced(name: &str, namespace: &str) -> serde_json::Value {
        json!({"kind": "Mailbox", "metadata": {"name": name, "namespace": namespace}})
    }

    fn cluster_scoped(name: &str) -> serde_json::Value {
        json!({"kind": "Namespace", "metadata": {"name": name}})
    }

    #[test]
    fn empty_field_selector_selects_everything() {
        for text in ["", ",", ",,"] {
            let s = fsel(text);
            assert!(s.is_empty(), "{text:?}");
            assert!(s.matches(&namespaced("a", "ns")));
            assert!(s.matches(&cluster_scoped("a")));
            assert_eq!(s.exact_name(), None);
        }
        assert_eq!(FieldSelector::everything(), fsel(""));
    }

    #[test]
    fn name_equality_operators() {
        for text in ["metadata.name=box", "metadata.name==box"] {
            let s = fsel(text);
            assert!(s.matches(&namespaced("box", "ns")), "{text}");
            assert!(!s.matches(&namespaced("other", "ns")), "{text}");
            assert!(s.matches(&cluster_scoped("box")), "{text}");
            assert!(!s.matches(&cluster_scoped("other")), "{text}");
        }
        let s = fsel("metadata.name!=box");
        assert!(!s.matches(&namespaced("box", "ns")));
        assert!(s.matches(&namespaced("other", "ns")));
        assert!(s.matches(&cluster_scoped("other")));
    }

    #[test]
    fn namespace_terms_on_namespaced_and_cluster_scoped_objects() {
        let s = fsel("metadata.namespace=team-a");
        assert!(s.matches(&namespaced("x", "team-a")));
        assert!(!s.matches(&namespaced("x", "team-b")));
        assert!(!s.matches(&cluster_scoped("x")));
        let s = fsel("metadata.namespace!=team-a");
        assert!(!s.matches(&namespaced("x", "team-a")));
        assert!(s.matches(&namespaced("x", "team-b")));
        assert!(s.matches(&cluster_scoped("x")));
        // A cluster-scoped object's namespace reads as "".
        let s = fsel("metadata.namespace=");
        assert!(s.matches(&cluster_scoped("x")));
        assert!(!s.matches(&namespaced("x", "team-a")));
        assert!(s.matches(&json!({"metadata": {"name": "x", "namespace": ""}})));
        assert!(s.matches(&json!({})), "an object without metadata");
    }

    #[test]
    fn field_terms_are_anded() {
        let s = fsel("metadata.name=box,metadata.namespace=team-a");
        assert!(s.matches(&namespaced("box", "team-a")));
        assert!(!s.matches(&namespaced("box", "team-b")));
        assert!(!s.matches(&namespaced("cat", "team-a")));
        let s = fsel("metadata.name!=a,metadata.name!=b");
        assert!(!s.matches(&namespaced("a", "ns")));
        assert!(!s.matches(&namespaced("b", "ns")));
        assert!(s.matches(&namespaced("c", "ns")));
    }

    #[test]
    fn field_values_support_escapes() {
        let s = fsel(r"metadata.name=a\,b");
        assert!(s.matches(&namespaced("a,b", "ns")));
        assert!(!s.matches(&namespaced("a", "ns")));
        assert_eq!(s.exact_name(), Some("a,b"));
        let s = fsel(r"metadata.name=x\=y,metadata.namespace=n\\s");
        assert!(s.matches(&namespaced("x=y", r"n\s")));
        assert_eq!(s.exact_name(), Some("x=y"));
        assert_eq!(s.exact_namespace(), Some(r"n\s"));
        assert_eq!(s.to_string(), r"metadata.name=x\=y,metadata.namespace=n\\s");
        // An escaped backslash before a comma does not escape the comma.
        let s = fsel(r"metadata.name=a\\,metadata.namespace=b");
        assert!(s.matches(&namespaced(r"a\", "b")));
    }

    #[test]
    fn field_escape_errors() {
        assert_eq!(
            field_err(r"metadata.name=a\b"),
            r"invalid field selector: invalid escape sequence: \b"
        );
        assert_eq!(
            field_err(r"metadata.name=a\"),
            r"invalid field selector: invalid escape sequence: \"
        );
        // Go prints the rune with %v, i.e. its code point.
        assert_eq!(
            field_err("metadata.name=a=b"),
            "invalid field selector: unescaped character in value: 61"
        );
    }

    #[test]
    fn field_syntax_and_support_errors() {
        assert_eq!(
            field_err("metadata.name"),
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        assert_eq!(
            field_err("metadata.name=a,oops"),
            "invalid selector: 'metadata.name=a,oops'; can't understand 'oops'"
        );
        assert_eq!(
            field_err("spec.state=Active"),
            "field label not supported: spec.state"
        );
        assert_eq!(
            field_err("status.phase!=x"),
            "field label not supported: status.phase"
        );
        assert_eq!(field_err("=x"), "field label not supported: ");
        // Whitespace is not trimmed.
        assert_eq!(
            field_err("metadata.name = x"),
            "field label not supported: metadata.name "
        );
        // Syntax errors win over unsupported fields, whatever the order.
        assert_eq!(
            field_err("zzz=1,a"),
            "invalid selector: 'zzz=1,a'; can't understand 'a'"
        );
    }

    #[test]
    fn cluster_scoped_parse_rejects_namespace() {
        assert_eq!(
            FieldSelector::parse_for_scope("metadata.namespace=x", false),
            Err("field label not supported: metadata.namespace".to_string())
        );
        assert!(FieldSelector::parse_for_scope("metadata.name=x", false).is_ok());
        assert!(FieldSelector::parse_for_scope("metadata.namespace=x", true).is_ok());
    }

    #[test]
    fn exact_name_only_for_equality_on_name() {
        assert_eq!(fsel("metadata.name=box").exact_name(), Some("box"));
        assert_eq!(fsel("metadata.name==box").exact_name(), Some("box"));
        assert_eq!(
            fsel("metadata.namespace=ns,metadata.name=box").exact_name(),
            Some("box")
        );
        assert_eq!(fsel("metadata.name!=box").exact_name(), None);
        assert_eq!(fsel("metadata.namespace=box").exact_name(), None);
        assert_eq!(
            fsel("metadata.namespace=box").exact_namespace(),
            Some("box")
        );
        assert_eq!(fsel("metadata.name=").exact_name(), Some(""));
    }
}
