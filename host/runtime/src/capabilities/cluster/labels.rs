//! Label selectors as `k8s.io/apimachinery/pkg/labels` parses (`Parse`: its lexer, parser and
//! `NewRequirement` checks) and matches them (`Requirement.Matches`), and metav1
//! `LabelSelector`s as `LabelSelectorAsSelector` turns them into the same requirements.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

/// Label keys and values are at most this long (`LabelValueMaxLength`, the key's name part).
const MAX_NAME: usize = 63;
/// A label key's prefix is a DNS subdomain of at most this length (`DNS1123SubdomainMaxLength`).
const MAX_PREFIX: usize = 253;

/// A label selector: every requirement must match (apimachinery's `internalSelector`); no
/// requirement at all matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Selector {
    requirements: Vec<Requirement>,
}

/// One `key op values` term.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    operator: Operator,
    /// Sorted and without repeats for parsed selectors (apimachinery keeps them in a set).
    values: Vec<String>,
}

/// `k8s.io/apimachinery/pkg/selection.Operator`, the ones a label selector can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// A selector that does not parse: what is wrong and at which byte of the selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SelectorError {
    at: usize,
    problem: String,
}

impl SelectorError {
    fn new(at: usize, problem: impl Into<String>) -> Self {
        Self {
            at,
            problem: problem.into(),
        }
    }

    /// The message naming `selector`, the offset and the problem.
    pub(crate) fn describe(&self, selector: &str) -> String {
        format!(
            "invalid label selector {selector:?} at offset {}: {}",
            self.at, self.problem
        )
    }
}

impl Selector {
    /// Parses `selector` as `labels.Parse` does: comma-separated requirements `key`, `!key`,
    /// `key=value`, `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`, `key>1`,
    /// `key<1`, with spaces, tabs and line breaks allowed between tokens. The empty selector
    /// matches everything.
    ///
    /// # Errors
    /// The first problem met, with apimachinery's wording and the byte offset of the token.
    pub(crate) fn parse(selector: &str) -> Result<Self, SelectorError> {
        let mut lexer = Lexer {
            text: selector,
            pos: 0,
        };
        let mut items = Vec::new();
        loop {
            let item = lexer.lex();
            items.push(item);
            if item.token == Token::EndOfString {
                break;
            }
        }
        let end = selector.len();
        Parser {
            items,
            position: 0,
            end,
        }
        .parse()
    }

    /// A metav1 `LabelSelector` (`matchLabels` and `matchExpressions`), as
    /// `LabelSelectorAsSelector` converts it: no terms at all (or `null`) matches everything.
    ///
    /// # Errors
    /// A malformed selector, an operator other than `In`, `NotIn`, `Exists` and
    /// `DoesNotExist`, or a key or value that is not a valid label.
    pub(crate) fn from_label_selector(value: &Value) -> Result<Self, String> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct LabelSelector {
            #[serde(default)]
            match_labels: Option<BTreeMap<String, String>>,
            #[serde(default)]
            match_expressions: Option<Vec<Expression>>,
        }
        #[derive(Deserialize)]
        struct Expression {
            key: String,
            operator: String,
            #[serde(default)]
            values: Option<Vec<String>>,
        }

        if value.is_null() {
            return Ok(Self::default());
        }
        let selector = LabelSelector::deserialize(value).map_err(|e| e.to_string())?;
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.unwrap_or_default() {
            requirements
                .push(Requirement::new(key, Operator::Equals, vec![value]).map_err(|e| e.problem)?);
        }
        for expression in selector.match_expressions.unwrap_or_default() {
            let operator = match expression.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => return Err(format!("{other:?} is not a valid label selector operator")),
            };
            let values = expression.values.unwrap_or_default();
            requirements
                .push(Requirement::new(expression.key, operator, values).map_err(|e| e.problem)?);
        }
        Ok(Self { requirements })
    }

    /// Whether labels (an object's `metadata.labels`; `None` when it has none) satisfy every
    /// requirement.
    pub(crate) fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl Requirement {
    /// `labels.NewRequirement`'s checks of the operator's values and of every value (the parser
    /// has checked the key already, `from_label_selector` has not).
    fn new(key: String, operator: Operator, values: Vec<String>) -> Result<Self, SelectorError> {
        let problem = |problem: String| SelectorError::new(0, problem);
        if let Err(why) = check_key(&key) {
            return Err(problem(format!("invalid label key {key:?}: {why}")));
        }
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                return Err(problem(
                    "for 'in', 'notin' operators, values set can't be empty".to_owned(),
                ));
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                return Err(problem(
                    "exact-match compatibility requires one single value".to_owned(),
                ));
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return Err(problem(
                    "values set must be empty for exists and does not exist".to_owned(),
                ));
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    return Err(problem(
                        "for 'Gt', 'Lt' operators, exactly one value is required".to_owned(),
                    ));
                }
                if let Some(value) = values.iter().find(|v| v.parse::<i64>().is_err()) {
                    return Err(problem(format!(
                        "invalid value {value:?}: for 'Gt', 'Lt' operators, the value must be \
                         an integer"
                    )));
                }
            }
            _ => {}
        }
        for value in &values {
            if let Err(why) = check_value(value) {
                return Err(problem(format!(
                    "invalid label value {value:?} for key {key:?}: {why}"
                )));
            }
        }
        Ok(Self {
            key,
            operator,
            values,
        })
    }

    /// `Requirement.Matches`: `!=` and `notin` match labels without the key; `gt` and `lt`
    /// compare 64-bit integers and never match a label that is not one.
    fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let value = labels
            .and_then(|labels| labels.get(&self.key))
            .and_then(Value::as_str);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                value.is_some_and(|v| self.has(v))
            }
            Operator::NotIn | Operator::NotEquals => value.is_none_or(|v| !self.has(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(label), [wanted]) = (value, self.values.as_slice()) else {
                    return false;
                };
                let (Ok(label), Ok(wanted)) = (label.parse::<i64>(), wanted.parse::<i64>()) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    label > wanted
                } else {
                    label < wanted
                }
            }
        }
    }

    fn has(&self, value: &str) -> bool {
        self.values.iter().any(|v| v == value)
    }
}

/// `content.IsLabelKey` (a qualified name): an optional DNS-subdomain prefix and `/`, then a
/// name of at most 63 characters of `[A-Za-z0-9._-]` beginning and ending alphanumeric.
pub(crate) fn check_key(key: &str) -> Result<(), String> {
    let mut parts = key.split('/');
    let (prefix, name) = match (parts.next(), parts.next(), parts.next()) {
        (Some(name), None, _) => (None, name),
        (Some(prefix), Some(name), None) => (Some(prefix), name),
        _ => {
            return Err(
                "a valid label key must be a name with an optional DNS subdomain prefix \
                        and '/' (e.g. 'example.com/MyName')"
                    .to_owned(),
            );
        }
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err("prefix part must be non-empty".to_owned());
        }
        if prefix.len() > MAX_PREFIX {
            return Err(format!(
                "prefix part must be no more than {MAX_PREFIX} bytes"
            ));
        }
        if !is_dns_subdomain(prefix) {
            return Err(
                "prefix part a lowercase RFC 1123 subdomain must consist of lower case \
                        alphanumeric characters, '-' or '.', and must start and end with an \
                        alphanumeric character"
                    .to_owned(),
            );
        }
    }
    if name.is_empty() {
        return Err("name part must be non-empty".to_owned());
    }
    if name.len() > MAX_NAME {
        return Err(format!("name part must be no more than {MAX_NAME} bytes"));
    }
    if !is_label_name(name) {
        return Err(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and \
                    must start and end with an alphanumeric character"
                .to_owned(),
        );
    }
    Ok(())
}

/// `validation.IsValidLabelValue`: empty, or at most 63 characters of `[A-Za-z0-9._-]`
/// beginning and ending alphanumeric.
pub(crate) fn check_value(value: &str) -> Result<(), String> {
    if value.len() > MAX_NAME {
        return Err(format!("must be no more than {MAX_NAME} bytes"));
    }
    if !value.is_empty() && !is_label_name(value) {
        return Err(
            "a valid label must be an empty string or consist of alphanumeric \
                    characters, '-', '_' or '.', and must start and end with an alphanumeric \
                    character"
                .to_owned(),
        );
    }
    Ok(())
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_label_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`
fn is_dns_subdomain(name: &str) -> bool {
    name.split('.').all(|label| {
        let bytes = label.as_bytes();
        let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        edge(bytes.first())
            && edge(bytes.last())
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
    })
}

/// The lexer's tokens (apimachinery's `Token`, without `ErrorToken`: every special character
/// alone is a token, so the longest-match scan always finds one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
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

/// A token, its text and the byte offset where it starts.
#[derive(Debug, Clone, Copy)]
struct Item<'a> {
    token: Token,
    literal: &'a str,
    at: usize,
}

fn symbol(text: &str) -> Option<Token> {
    Some(match text {
        ")" => Token::ClosedPar,
        "," => Token::Comma,
        "!" => Token::DoesNotExist,
        "==" => Token::DoubleEquals,
        "=" => Token::Equals,
        ">" => Token::GreaterThan,
        "<" => Token::LessThan,
        "!=" => Token::NotEquals,
        "(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(ch: u8) -> bool {
    matches!(ch, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(ch: u8) -> bool {
    matches!(ch, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// apimachinery's byte lexer. As there, reading yields 0 at the end and a NUL byte reads as
/// the end too.
struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn read(&mut self) -> u8 {
        match self.text.as_bytes().get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => 0,
        }
    }

    /// Only ever called after a `read` that advanced.
    fn unread(&mut self) {
        self.pos = self.pos.saturating_sub(1);
    }

    fn slice(&self, start: usize, end: usize) -> &'a str {
        // Tokens start and end next to ASCII bytes, so these are character boundaries.
        self.text.get(start..end).unwrap_or_default()
    }

    fn lex(&mut self) -> Item<'a> {
        loop {
            let at = self.pos;
            let ch = self.read();
            if is_whitespace(ch) {
                continue;
            }
            if ch == 0 {
                return Item {
                    token: Token::EndOfString,
                    literal: "",
                    at,
                };
            }
            self.unread();
            return if is_special(ch) {
                self.scan_special()
            } else {
                self.scan_identifier()
            };
        }
    }

    /// A run of anything but special characters and whitespace; `in` and `notin` are keywords.
    fn scan_identifier(&mut self) -> Item<'a> {
        let start = self.pos;
        let end = loop {
            let before = self.pos;
            let ch = self.read();
            if ch == 0 {
                break before;
            }
            if is_special(ch) || is_whitespace(ch) {
                self.unread();
                break before;
            }
        };
        let literal = self.slice(start, end);
        let token = match literal {
            "in" => Token::In,
            "notin" => Token::NotIn,
            _ => Token::Identifier,
        };
        Item {
            token,
            literal,
            at: start,
        }
    }

    /// The longest run of special characters that is an operator (`!=` rather than `!`).
    fn scan_special(&mut self) -> Item<'a> {
        let start = self.pos;
        let mut last = None;
        loop {
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if !is_special(ch) {
                self.unread();
                break;
            }
            if let Some(token) = symbol(self.slice(start, self.pos)) {
                last = Some((token, self.pos));
            } else if last.is_some() {
                self.unread();
                break;
            }
        }
        let (token, end) = last.unwrap_or((Token::EndOfString, start));
        Item {
            token,
            literal: self.slice(start, end),
            at: start,
        }
    }
}

/// Where the parser is: `in` and `notin` are values, not operators, where values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser<'a> {
    items: Vec<Item<'a>>,
    position: usize,
    /// The selector's length: where the end-of-string item is when none is left.
    end: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self, context: Context) -> Item<'a> {
        let mut item = self.items.get(self.position).copied().unwrap_or(Item {
            token: Token::EndOfString,
            literal: "",
            at: self.end,
        });
        if context == Context::Values && matches!(item.token, Token::In | Token::NotIn) {
            item.token = Token::Identifier;
        }
        item
    }

    fn next(&mut self, context: Context) -> Item<'a> {
        let item = self.peek(context);
        self.position += 1;
        item
    }

    fn parse(mut self) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        loop {
            let item = self.peek(Context::Values);
            match item.token {
                Token::Identifier | Token::DoesNotExist => {
                    let requirement = self.requirement().map_err(|e| SelectorError {
                        at: e.at,
                        problem: format!("unable to parse requirement: {}", e.problem),
                    })?;
                    requirements.push(requirement);
                    let after = self.next(Context::Values);
                    match after.token {
                        Token::EndOfString => return Ok(Selector { requirements }),
                        Token::Comma => {
                            let following = self.peek(Context::Values);
                            if !matches!(following.token, Token::Identifier | Token::DoesNotExist) {
                                return Err(SelectorError::new(
                                    following.at,
                                    format!(
                                        "found '{}', expected: identifier after ','",
                                        following.literal
                                    ),
                                ));
                            }
                        }
                        _ => {
                            return Err(SelectorError::new(
                                after.at,
                                format!(
                                    "found '{}', expected: ',' or 'end of string'",
                                    after.literal
                                ),
                            ));
                        }
                    }
                }
                Token::EndOfString => return Ok(Selector { requirements }),
                _ => {
                    return Err(SelectorError::new(
                        item.at,
                        format!(
                            "found '{}', expected: !, identifier, or 'end of string'",
                            item.literal
                        ),
                    ));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        let (key, unary) = self.key_and_inferred_operator()?;
        let at = key.at;
        let with_offset = |e: SelectorError| SelectorError { at, ..e };
        if let Some(operator) = unary {
            return Requirement::new(key.literal.to_owned(), operator, Vec::new())
                .map_err(with_offset);
        }
        let operator = self.operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.values()?,
            _ => self.exact_value()?,
        };
        let mut values: Vec<String> = values.into_iter().map(str::to_owned).collect();
        values.sort();
        values.dedup();
        Requirement::new(key.literal.to_owned(), operator, values).map_err(with_offset)
    }

    /// The key, and `Exists`/`DoesNotExist` when the requirement is just `key` or `!key`.
    fn key_and_inferred_operator(&mut self) -> Result<(Item<'a>, Option<Operator>), SelectorError> {
        let mut item = self.next(Context::Values);
        let mut operator = None;
        if item.token == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            item = self.next(Context::Values);
        }
        if item.token != Token::Identifier {
            return Err(SelectorError::new(
                item.at,
                format!("found '{}', expected: identifier", item.literal),
            ));
        }
        if let Err(why) = check_key(item.literal) {
            return Err(SelectorError::new(
                item.at,
                format!("invalid label key {:?}: {why}", item.literal),
            ));
        }
        if matches!(
            self.peek(Context::Values).token,
            Token::EndOfString | Token::Comma
        ) && operator.is_none()
        {
            operator = Some(Operator::Exists);
        }
        Ok((item, operator))
    }

    fn operator(&mut self) -> Result<Operator, SelectorError> {
        let item = self.next(Context::KeyAndOperator);
        Ok(match item.token {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => {
                return Err(SelectorError::new(
                    item.at,
                    format!(
                        "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                        item.literal
                    ),
                ));
            }
        })
    }

    /// `(a,b,c)`; empty entries (`(a,,b)`, `()`) are the empty value.
    fn values(&mut self) -> Result<Vec<&'a str>, SelectorError> {
        let open = self.next(Context::Values);
        if open.token != Token::OpenPar {
            return Err(SelectorError::new(
                open.at,
                format!("found '{}' expected: '('", open.literal),
            ));
        }
        let first = self.peek(Context::Values);
        match first.token {
            Token::Identifier | Token::Comma => {
                let values = self.identifiers()?;
                let close = self.next(Context::Values);
                if close.token != Token::ClosedPar {
                    return Err(SelectorError::new(
                        close.at,
                        format!("found '{}', expected: ')'", first.literal),
                    ));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.next(Context::Values);
                Ok(vec![""])
            }
            _ => Err(SelectorError::new(
                first.at,
                format!(
                    "found '{}', expected: ',', ')' or identifier",
                    first.literal
                ),
            )),
        }
    }

    /// The comma-separated (possibly empty) identifiers up to a `)`, which is left unread.
    fn identifiers(&mut self) -> Result<Vec<&'a str>, SelectorError> {
        let mut values = Vec::new();
        loop {
            let item = self.next(Context::Values);
            match item.token {
                Token::Identifier => {
                    values.push(item.literal);
                    let following = self.peek(Context::Values);
                    match following.token {
                        Token::Comma => {}
                        Token::ClosedPar => return Ok(values),
                        _ => {
                            return Err(SelectorError::new(
                                following.at,
                                format!("found '{}', expected: ',' or ')'", following.literal),
                            ));
                        }
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.push("");
                    }
                    match self.peek(Context::Values).token {
                        Token::ClosedPar => {
                            values.push("");
                            return Ok(values);
                        }
                        Token::Comma => values.push(""),
                        _ => {}
                    }
                }
                _ => {
                    return Err(SelectorError::new(
                        item.at,
                        format!("found '{}', expected: ',', or identifier", item.literal),
                    ));
                }
            }
        }
    }

    /// The one value after `=`, `==`, `!=`, `>` or `<`; nothing before `,` or the end is "".
    fn exact_value(&mut self) -> Result<Vec<&'a str>, SelectorError> {
        if matches!(
            self.peek(Context::Values).token,
            Token::EndOfString | Token::Comma
        ) {
            return Ok(vec![""]);
        }
        let item = self.next(Context::Values);
        if item.token == Token::Identifier {
            return Ok(vec![item.literal]);
        }
        Err(SelectorError::new(
            item.at,
            format!("found '{}', expected: identifier", item.literal),
        ))
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use serde_json::json;

    use super::*;

    fn labels(value: &Value) -> Option<&Map<String, Value>> {
        value.as_object()
    }

    fn matches(selector: &str, value: &Value) -> bool {
        Selector::parse(selector).unwrap().matches(labels(value))
    }

    fn error(selector: &str) -> String {
        Selector::parse(selector).unwrap_err().describe(selector)
    }

    #[test]
    fn equality_operators_need_the_label_and_the_value() {
        let web = json!({"app": "web", "tier": "front"});
        assert!(matches("app=web", &web));
        assert!(matches("app==web", &web));
        assert!(!matches("app=db", &web));
        assert!(!matches("missing=web", &web));
        assert!(matches("app=web,tier=front", &web));
        assert!(!matches("app=web,tier=back", &web));
    }

    #[test]
    fn not_equals_and_notin_match_objects_without_the_label() {
        let web = json!({"app": "web"});
        assert!(matches("tier!=front", &web));
        assert!(matches("tier notin (front,back)", &web));
        assert!(!matches("app!=web", &web));
        assert!(!matches("app notin (web,db)", &web));
        assert!(matches("app notin (db)", &web));
        assert!(Selector::parse("app!=web").unwrap().matches(None));
    }

    #[test]
    fn set_operators_and_existence() {
        let web = json!({"app": "web", "empty": ""});
        assert!(matches("app in (db, web)", &web));
        assert!(!matches("app in (db)", &web));
        assert!(!matches("missing in (web)", &web));
        assert!(matches("app", &web));
        assert!(!matches("missing", &web));
        assert!(matches("!missing", &web));
        assert!(!matches("!app", &web));
        // `()` and empty entries are the empty value.
        assert!(matches("empty in ()", &web));
        assert!(matches("empty in (a,,b)", &web));
        assert!(matches("empty in (a,)", &web));
        assert!(matches("empty=", &web));
        assert!(matches("empty=,app", &web));
        assert!(!matches("app=", &web));
    }

    #[test]
    fn the_documented_example_parses() {
        // From `labels.Parse`'s documentation.
        let selector = Selector::parse("x in (foo,,baz),y,z notin ()").unwrap();
        assert!(selector.matches(labels(&json!({"x": "", "y": "1"}))));
        assert!(selector.matches(labels(&json!({"x": "baz", "y": "", "z": "a"}))));
        assert!(!selector.matches(labels(&json!({"x": "baz", "y": "", "z": ""}))));
        assert!(!selector.matches(labels(&json!({"x": "bar", "y": ""}))));
    }

    #[test]
    fn in_and_notin_are_values_where_values_are_read() {
        let value = json!({"in": "notin"});
        assert!(matches("in in (notin)", &value));
        assert!(matches("in=notin", &value));
        assert!(matches("in", &value));
    }

    #[test]
    fn greater_and_less_than_compare_integers() {
        let value = json!({"replicas": "3", "name": "web"});
        assert!(matches("replicas>1", &value));
        assert!(!matches("replicas>3", &value));
        assert!(matches("replicas<5", &value));
        assert!(!matches("replicas<3", &value));
        assert!(!matches("name>1", &value), "not an integer never matches");
        assert!(
            !matches("missing<5", &value),
            "a missing label never matches"
        );
    }

    #[test]
    fn whitespace_is_tolerated_between_tokens() {
        let value = json!({"app": "web", "tier": "front"});
        assert!(matches(
            "  app = web ,\ttier\nin ( front , back )  ",
            &value
        ));
        assert!(matches(" ! missing ", &value));
        assert!(Selector::parse("").unwrap().matches(None));
        assert!(Selector::parse("   ").unwrap().matches(None));
    }

    #[test]
    fn keys_may_have_a_dns_prefix() {
        let value = json!({"app.kubernetes.io/name": "web"});
        assert!(matches("app.kubernetes.io/name=web", &value));
        assert!(
            error("Example.com/name=web").contains("prefix part a lowercase RFC 1123 subdomain"),
            "{}",
            error("Example.com/name=web")
        );
        assert!(error("/name").contains("prefix part must be non-empty"));
        assert!(error("a/b/c").contains("a valid label key"));
        assert!(error("a/").contains("name part must be non-empty"));
    }

    #[test]
    fn keys_and_values_are_checked() {
        let long = "a".repeat(64);
        assert!(error(&format!("{long}=x")).contains("no more than 63 bytes"));
        assert!(error(&format!("x={long}")).contains("no more than 63 bytes"));
        assert!(Selector::parse(&format!("x={}", "a".repeat(63))).is_ok());
        assert_eq!(
            error("-app=web"),
            "invalid label selector \"-app=web\" at offset 0: unable to parse requirement: \
             invalid label key \"-app\": name part must consist of alphanumeric characters, \
             '-', '_' or '.', and must start and end with an alphanumeric character"
        );
        assert!(error("app=web-").contains("invalid label value \"web-\" for key \"app\""));
        assert!(error("app in (ok,bad$)").contains("invalid label value \"bad$\""));
        assert!(Selector::parse("app=We_b.1-x").is_ok());
    }

    #[test]
    fn parse_errors_name_the_token_and_its_offset() {
        assert_eq!(
            error("app=web,"),
            "invalid label selector \"app=web,\" at offset 8: found '', expected: identifier \
             after ','"
        );
        assert_eq!(
            error("app in web"),
            "invalid label selector \"app in web\" at offset 7: unable to parse requirement: \
             found 'web' expected: '('"
        );
        assert_eq!(
            error("app web"),
            "invalid label selector \"app web\" at offset 4: unable to parse requirement: \
             found 'web', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert!(error("app in (a b)").contains("found 'b', expected: ',' or ')'"));
        assert!(error("app in (a").contains("found '', expected: ',' or ')'"));
        assert!(error("app in (=)").contains("found '=', expected: ',', ')' or identifier"));
        assert!(error("app=(").contains("found '(', expected: identifier"));
        assert!(error(",app").contains("found ',', expected: !, identifier, or 'end of string'"));
        assert!(error("!").contains("found '', expected: identifier"));
        assert!(error("app>x").contains("the value must be an integer"));
        assert!(error("app>").contains("the value must be an integer"));
        // `!key` takes no operator: what follows must end the requirement.
        assert!(error("!app=web").contains("found '=', expected: ',' or 'end of string'"));
        assert!(error("a=b c").contains("found 'c', expected: ',' or 'end of string'"));
    }

    #[test]
    fn longest_operator_wins() {
        // `a===x` lexes as `==` then `=`: a value cannot be an operator.
        assert!(error("a===x").contains("found '=', expected: identifier"));
        // `a!=x` is `a` `!=` `x`, not `a` `!` `=x`.
        let value = json!({"a": "x"});
        assert!(matches("a!=b", &value));
        assert!(!matches("a!=x", &value));
        // `a=!x`: `=` then `!`, which is no value.
        assert!(error("a=!x").contains("found '!', expected: identifier"));
    }

    #[test]
    fn label_selector_objects_are_converted() {
        let selector = Selector::from_label_selector(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "edge"]},
                {"key": "legacy", "operator": "DoesNotExist"},
            ],
        }))
        .unwrap();
        assert!(selector.matches(labels(&json!({"app": "web", "tier": "edge"}))));
        assert!(!selector.matches(labels(&json!({"app": "web", "tier": "back"}))));
        assert!(!selector.matches(labels(&json!({"app": "web", "tier": "edge", "legacy": ""}))));

        let everything = Selector::from_label_selector(&json!({})).unwrap();
        assert!(everything.matches(None));
        assert!(
            Selector::from_label_selector(&Value::Null)
                .unwrap()
                .matches(None)
        );

        let bad = Selector::from_label_selector(&json!({
            "matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}],
        }))
        .unwrap_err();
        assert_eq!(bad, "\"Gt\" is not a valid label selector operator");
        let empty_in = Selector::from_label_selector(&json!({
            "matchExpressions": [{"key": "a", "operator": "In", "values": []}],
        }))
        .unwrap_err();
        assert!(empty_in.contains("values set can't be empty"), "{empty_in}");
        let exists_with_values = Selector::from_label_selector(&json!({
            "matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}],
        }))
        .unwrap_err();
        assert!(
            exists_with_values.contains("must be empty"),
            "{exists_with_values}"
        );
    }
}
