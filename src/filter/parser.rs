//! The filter and path parser: a single pass over the input with no
//! backtracking, bounded in length and nesting depth.

use std::fmt;

use serde_json::Number;

use super::ast::{CompValue, CompareOp, Filter};
use crate::error::Error;
use crate::path::{AttrPath, Path};
use crate::schema::registry::split_urn;

/// Limits and the entry point for parsing filters and paths.
///
/// [`Filter::parse`](super::Filter::parse) uses the defaults; a host that
/// accepts longer or deeper filters sets its own:
///
/// ```
/// use scimkit::filter::FilterOptions;
///
/// let options = FilterOptions::default().max_len(64).max_depth(4);
/// assert!(options.parse(r#"userName eq "bjensen""#).is_ok());
/// let err = options.parse("((((((title pr))))))").unwrap_err();
/// assert!(err.to_string().contains("nested more than 4 levels"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterOptions {
    max_len: usize,
    max_depth: usize,
}

impl FilterOptions {
    /// The default maximum input length, in bytes.
    pub const DEFAULT_MAX_LEN: usize = 8 * 1024;
    /// The default maximum nesting depth of parentheses, `not` and value filters.
    pub const DEFAULT_MAX_DEPTH: usize = 32;
    /// The highest nesting depth [`max_depth`](Self::max_depth) accepts. Parsing,
    /// printing, checking, evaluating, cloning, comparing and dropping a filter
    /// nested this deep is proven (by a test) to fit a 2 MiB thread stack in an
    /// unoptimised build; a larger setting is lowered to it.
    pub const MAX_DEPTH: usize = 128;

    /// Sets the maximum input length in bytes.
    pub fn max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    /// Sets the maximum nesting depth, at most [`MAX_DEPTH`](Self::MAX_DEPTH): no
    /// setting lets a nested filter overflow the stack.
    ///
    /// ```
    /// use scimkit::filter::FilterOptions;
    ///
    /// let deep = format!("{}title pr{}", "not (".repeat(200), ")".repeat(200));
    /// let err = FilterOptions::default().max_depth(10_000).parse(&deep).unwrap_err();
    /// assert!(err.to_string().contains("nested more than 128 levels"));
    /// ```
    pub fn max_depth(mut self, max_depth: usize) -> Self {
        self.max_depth = max_depth.min(Self::MAX_DEPTH);
        self
    }

    /// Parses a filter with these limits.
    ///
    /// # Errors
    /// A [`FilterError`] naming the byte offset and what was expected there.
    pub fn parse(&self, input: &str) -> Result<Filter, FilterError> {
        let mut p = Parser::new(input, self)?;
        let filter = p.or_expr(false)?;
        p.skip_ws();
        if !p.at_end() {
            return Err(p.expected("\"and\", \"or\" or the end of the filter", None));
        }
        Ok(filter)
    }
}

impl Default for FilterOptions {
    fn default() -> Self {
        FilterOptions {
            max_len: Self::DEFAULT_MAX_LEN,
            max_depth: Self::DEFAULT_MAX_DEPTH,
        }
    }
}

/// A filter or path that does not parse: where, and what went wrong.
///
/// Displays as, for example, `expected a comparison operator (eq, ne, co, sw, ew, gt,
/// lt, ge, le) or pr after "userName" at offset 9, found "equals"`.
/// Converts into a 400 `invalidFilter` [`Error`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    offset: usize,
    kind: FilterErrorKind,
}

/// What went wrong in a [`FilterError`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FilterErrorKind {
    /// The input is empty or only whitespace.
    Empty,
    /// The input is longer than the limit.
    TooLong {
        /// The input's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Parentheses, `not` or value filters nest deeper than the limit.
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// Something other than what the grammar allows here.
    Expected {
        /// What the grammar allows.
        expected: &'static str,
        /// The text just before, for context.
        after: Option<String>,
        /// What was found instead.
        found: String,
    },
    /// A string literal without its closing quote.
    UnterminatedString,
    /// A backslash escape JSON does not define, or a broken `\u` escape.
    InvalidEscape(String),
    /// A number that is not a JSON number.
    InvalidNumber(String),
    /// An attribute name that does not follow `ALPHA *(ALPHA / DIGIT / "-" / "_")`.
    InvalidAttributeName(String),
    /// A value filter inside a value filter.
    NestedValueFilter,
}

impl FilterError {
    fn new(offset: usize, kind: FilterErrorKind) -> Self {
        FilterError { offset, kind }
    }

    /// The byte offset in the input where the problem is.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// What went wrong.
    pub fn kind(&self) -> &FilterErrorKind {
        &self.kind
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.offset;
        match &self.kind {
            FilterErrorKind::Empty => write!(f, "the expression is empty"),
            FilterErrorKind::TooLong { len, max } => {
                write!(
                    f,
                    "the expression is {len} bytes long, more than the limit of {max}"
                )
            }
            FilterErrorKind::TooDeep { max } => write!(
                f,
                "parentheses, \"not\" and value filters are nested more than {max} levels deep at offset {at}"
            ),
            FilterErrorKind::Expected {
                expected,
                after,
                found,
            } => {
                write!(f, "expected {expected}")?;
                if let Some(after) = after {
                    write!(f, " after {after:?}")?;
                }
                write!(f, " at offset {at}, found {found}")
            }
            FilterErrorKind::UnterminatedString => {
                write!(f, "the string starting at offset {at} has no closing quote")
            }
            FilterErrorKind::InvalidEscape(esc) => write!(f, "invalid escape {esc} at offset {at}"),
            FilterErrorKind::InvalidNumber(n) => write!(f, "invalid number {n:?} at offset {at}"),
            FilterErrorKind::InvalidAttributeName(name) => write!(
                f,
                "invalid attribute name {name:?} at offset {at}: a name starts with a letter and has only letters, digits, '-' and '_'"
            ),
            FilterErrorKind::NestedValueFilter => {
                write!(
                    f,
                    "a value filter cannot contain another value filter, at offset {at}"
                )
            }
        }
    }
}

impl std::error::Error for FilterError {}

impl From<FilterError> for Error {
    fn from(e: FilterError) -> Self {
        Error::invalid_filter(format!("invalid filter: {e}"))
    }
}

pub(crate) fn parse_attr_path(
    input: &str,
    options: &FilterOptions,
) -> Result<AttrPath, FilterError> {
    let mut p = Parser::new(input, options)?;
    p.skip_ws();
    let attr = p.attr_path("an attribute name", None)?;
    p.skip_ws();
    if !p.at_end() {
        return Err(p.expected("the end of the attribute path", Some(attr.to_string())));
    }
    Ok(attr)
}

pub(crate) fn parse_path(input: &str, options: &FilterOptions) -> Result<Path, FilterError> {
    // Most paths are one plain attribute name (`active`, `members`) or a name and a
    // sub-attribute (`name.familyName`): no parser needed.
    if input.len() <= options.max_len {
        let name_end = match input.split_once('.') {
            None if is_valid_name(input) => Some(input.len()),
            Some((name, sub)) if is_valid_name(name) && is_valid_name(sub) => Some(name.len()),
            _ => None,
        };
        if let Some(end) = name_end {
            return Ok(Path::attribute(AttrPath::from_text(input, 0, end)));
        }
    }
    let mut p = Parser::new(input, options)?;
    p.skip_ws();
    let attr_start = p.pos;
    let attr = p.attr_path("an attribute name", None)?;
    let path = if p.peek() == Some(b'[') {
        if attr.sub_attr().is_some() {
            return Err(FilterError::new(
                attr_start,
                FilterErrorKind::Expected {
                    expected: "a value filter on a top-level attribute",
                    after: None,
                    found: format!("the sub-attribute path {:?}", attr.to_string()),
                },
            ));
        }
        let filter = p.value_filter()?;
        let sub = if p.peek() == Some(b'.') {
            p.pos += 1;
            Some(p.sub_attr_name()?)
        } else {
            None
        };
        Path::value(attr, filter, sub)
    } else {
        Path::attribute(attr)
    };
    p.skip_ws();
    if !p.at_end() {
        return Err(p.expected("the end of the path", Some(path.to_string())));
    }
    Ok(path)
}

struct Parser<'a> {
    input: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
    max_depth: usize,
}

/// The bytes a word (an attribute path, an operator, a keyword) is made of.
const WORD_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(c, b'_' | b'-' | b':' | b'.' | b'$' | b'%' | b'/');
        b += 1;
    }
    table
};

fn is_word_byte(b: u8) -> bool {
    WORD_BYTES[b as usize]
}

/// The bytes an attribute name continues with (RFC 7643 §2.1 `nameChar`).
const NAME_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-');
        b += 1;
    }
    table
};

fn is_valid_name(name: &str) -> bool {
    match name.as_bytes() {
        [first, rest @ ..] if first.is_ascii_alphabetic() => {
            rest.iter().all(|&b| NAME_BYTES[b as usize])
        }
        _ => name.eq_ignore_ascii_case("$ref"),
    }
}

impl<'a> Parser<'a> {
    fn new(input: &'a str, options: &FilterOptions) -> Result<Self, FilterError> {
        if input.len() > options.max_len {
            return Err(FilterError::new(
                0,
                FilterErrorKind::TooLong {
                    len: input.len(),
                    max: options.max_len,
                },
            ));
        }
        if input.trim().is_empty() {
            return Err(FilterError::new(0, FilterErrorKind::Empty));
        }
        Ok(Parser {
            input,
            bytes: input.as_bytes(),
            pos: 0,
            depth: 0,
            max_depth: options.max_depth,
        })
    }

    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// The word at the current position, without consuming it.
    fn peek_word(&self) -> &'a str {
        let end = self.bytes[self.pos..]
            .iter()
            .position(|&b| !is_word_byte(b))
            .map_or(self.bytes.len(), |n| self.pos + n);
        &self.input[self.pos..end]
    }

    /// Describes what is at the current position, for error messages.
    fn found(&self) -> String {
        if self.at_end() {
            return "the end of the input".to_owned();
        }
        let word = self.peek_word();
        if !word.is_empty() {
            let short: String = word.chars().take(32).collect();
            return format!("{short:?}");
        }
        match self.input[self.pos..].chars().next() {
            Some(c) => format!("{:?}", c.to_string()),
            None => "the end of the input".to_owned(),
        }
    }

    fn expected(&self, expected: &'static str, after: Option<String>) -> FilterError {
        FilterError::new(
            self.pos,
            FilterErrorKind::Expected {
                expected,
                after,
                found: self.found(),
            },
        )
    }

    fn enter(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(FilterError::new(
                self.pos,
                FilterErrorKind::TooDeep {
                    max: self.max_depth,
                },
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Consumes `keyword` (case-insensitively) if it is the next whole word.
    fn eat_keyword(&mut self, keyword: &str) -> bool {
        if self.at_keyword(keyword) {
            self.pos += keyword.len();
            true
        } else {
            false
        }
    }

    /// Whether the word at the current position is `keyword`, in any case.
    fn at_keyword(&self, keyword: &str) -> bool {
        let end = self.pos + keyword.len();
        self.bytes
            .get(self.pos..end)
            .is_some_and(|w| w.eq_ignore_ascii_case(keyword.as_bytes()))
            && !self.bytes.get(end).copied().is_some_and(is_word_byte)
    }

    /// `or_expr := and_expr ("or" and_expr)*`
    fn or_expr(&mut self, in_value_filter: bool) -> Result<Filter, FilterError> {
        let first = self.and_expr(in_value_filter)?;
        self.skip_ws();
        if !self.eat_keyword("or") {
            return Ok(first);
        }
        let mut parts = Vec::with_capacity(4);
        parts.push(first);
        loop {
            parts.push(self.and_expr(in_value_filter)?);
            self.skip_ws();
            if !self.eat_keyword("or") {
                return Ok(Filter::Or(parts));
            }
        }
    }

    /// `and_expr := unary ("and" unary)*`
    fn and_expr(&mut self, in_value_filter: bool) -> Result<Filter, FilterError> {
        let first = self.unary(in_value_filter)?;
        self.skip_ws();
        if !self.eat_keyword("and") {
            return Ok(first);
        }
        let mut parts = Vec::with_capacity(4);
        parts.push(first);
        loop {
            parts.push(self.unary(in_value_filter)?);
            self.skip_ws();
            if !self.eat_keyword("and") {
                return Ok(Filter::And(parts));
            }
        }
    }

    /// `unary := "not" "(" or_expr ")" | "(" or_expr ")" | attr_expr`
    fn unary(&mut self, in_value_filter: bool) -> Result<Filter, FilterError> {
        self.skip_ws();
        if self.at_end() {
            return Err(self.expected("an attribute name, \"not\" or \"(\"", None));
        }
        if self.at_keyword("not") {
            let word = "not";
            let save = self.pos;
            self.pos += word.len();
            self.skip_ws();
            if self.peek() == Some(b'(') {
                let inner = self.group(in_value_filter)?;
                return Ok(Filter::Not(Box::new(inner)));
            }
            self.pos = save;
            if matches!(
                self.bytes.get(save + word.len()),
                None | Some(b' ' | b'\t' | b'\n' | b'\r')
            ) {
                // `not` followed by something other than `(`: only an attribute could be
                // named `not`, so tell the user what `not` needs.
                let after_ws = {
                    let mut q = save + word.len();
                    while matches!(self.bytes.get(q), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                        q += 1;
                    }
                    q
                };
                let next = self.input[after_ws..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("");
                let is_operator =
                    next.parse::<CompareOp>().is_ok() || next.eq_ignore_ascii_case("pr");
                if !is_operator {
                    self.pos = after_ws;
                    return Err(self.expected("\"(\"", Some("not".to_owned())));
                }
            }
        }
        if self.peek() == Some(b'(') {
            return self.group(in_value_filter);
        }
        self.attr_expr(in_value_filter)
    }

    /// `"(" or_expr ")"`, at the opening parenthesis.
    fn group(&mut self, in_value_filter: bool) -> Result<Filter, FilterError> {
        self.enter()?;
        self.pos += 1;
        let inner = self.or_expr(in_value_filter)?;
        self.skip_ws();
        if self.peek() != Some(b')') {
            return Err(self.expected("\")\" to close the group", None));
        }
        self.pos += 1;
        self.leave();
        Ok(inner)
    }

    /// `attr_expr := attrPath ("pr" | compareOp compValue | "[" valFilter "]" ["." sub (op value | "pr")])`
    fn attr_expr(&mut self, in_value_filter: bool) -> Result<Filter, FilterError> {
        let attr = self.attr_path("an attribute name, \"not\" or \"(\"", None)?;
        if self.peek() == Some(b'[') {
            if in_value_filter {
                return Err(FilterError::new(
                    self.pos,
                    FilterErrorKind::NestedValueFilter,
                ));
            }
            if attr.sub_attr().is_some() {
                return Err(self.expected("a comparison operator or pr", Some(attr.to_string())));
            }
            let inner = self.value_filter()?;
            if self.peek() == Some(b'.') {
                // Entra ID: `emails[type eq "work"].value eq "x"` means
                // `emails[type eq "work" and value eq "x"]`.
                self.pos += 1;
                let sub = self.sub_attr_name()?;
                let sub_path = AttrPath::new(sub);
                let cond = self.condition(sub_path)?;
                return Ok(Filter::ValuePath(attr, Box::new(inner.and(cond))));
            }
            return Ok(Filter::ValuePath(attr, Box::new(inner)));
        }
        self.condition(attr)
    }

    /// After an attribute path: `pr` or `compareOp compValue`.
    fn condition(&mut self, attr: AttrPath) -> Result<Filter, FilterError> {
        self.skip_ws();
        let word = self.peek_word();
        if word.eq_ignore_ascii_case("pr") {
            self.pos += word.len();
            return Ok(Filter::Present(attr));
        }
        let Ok(op) = word.parse::<CompareOp>() else {
            return Err(self.expected(
                "a comparison operator (eq, ne, co, sw, ew, gt, lt, ge, le) or pr",
                Some(attr.to_string()),
            ));
        };
        self.pos += word.len();
        self.skip_ws();
        let value = self.comp_value(op)?;
        Ok(Filter::Compare(attr, op, value))
    }

    /// `"[" valFilter "]"`, at the opening bracket.
    fn value_filter(&mut self) -> Result<Filter, FilterError> {
        self.enter()?;
        self.pos += 1;
        let inner = self.or_expr(true)?;
        self.skip_ws();
        if self.peek() != Some(b']') {
            return Err(self.expected("\"]\" to close the value filter", None));
        }
        self.pos += 1;
        self.leave();
        Ok(inner)
    }

    /// An attribute path word: `[urn ":"] name ["." sub]`.
    fn attr_path(
        &mut self,
        expected: &'static str,
        after: Option<String>,
    ) -> Result<AttrPath, FilterError> {
        let start = self.pos;
        let word = self.peek_word();
        if word.is_empty() {
            return Err(self.expected(expected, after));
        }
        let (_, rest) = split_urn(word);
        let rest_start = start + (word.len() - rest.len());
        let (name, sub) = match rest.split_once('.') {
            Some((n, s)) => (n, Some(s)),
            None => (rest, None),
        };
        if !is_valid_name(name) {
            let bad = if rest.is_empty() { word } else { name };
            return Err(FilterError::new(
                rest_start,
                FilterErrorKind::InvalidAttributeName(bad.to_owned()),
            ));
        }
        if let Some(sub) = sub {
            if !is_valid_name(sub) {
                return Err(FilterError::new(
                    rest_start + name.len() + 1,
                    FilterErrorKind::InvalidAttributeName(sub.to_owned()),
                ));
            }
        }
        self.pos += word.len();
        let name_at = word.len() - rest.len();
        Ok(AttrPath::from_text(word, name_at, name_at + name.len()))
    }

    /// A sub-attribute name after `].`.
    fn sub_attr_name(&mut self) -> Result<String, FilterError> {
        let start = self.pos;
        let word = self.peek_word();
        if word.is_empty() {
            return Err(self.expected("a sub-attribute name after \"].\"", None));
        }
        if !is_valid_name(word) {
            return Err(FilterError::new(
                start,
                FilterErrorKind::InvalidAttributeName(word.to_owned()),
            ));
        }
        self.pos += word.len();
        Ok(word.to_owned())
    }

    /// `compValue := false / null / true / number / string`
    fn comp_value(&mut self, op: CompareOp) -> Result<CompValue, FilterError> {
        match self.peek() {
            Some(b'"') => self.string().map(CompValue::String),
            Some(b'-' | b'0'..=b'9') => self.number().map(CompValue::Number),
            _ => {
                let word = self.peek_word();
                let value = if word.eq_ignore_ascii_case("true") {
                    CompValue::Bool(true)
                } else if word.eq_ignore_ascii_case("false") {
                    CompValue::Bool(false)
                } else if word.eq_ignore_ascii_case("null") {
                    CompValue::Null
                } else {
                    return Err(self.expected(
                        "a value (a quoted string, a number, true, false or null)",
                        Some(op.to_string()),
                    ));
                };
                self.pos += word.len();
                Ok(value)
            }
        }
    }

    /// A JSON string, at the opening quote.
    fn string(&mut self) -> Result<String, FilterError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = &self.input[self.pos..];
            let Some(i) = rest.bytes().position(|b| b == b'"' || b == b'\\') else {
                return Err(FilterError::new(start, FilterErrorKind::UnterminatedString));
            };
            out.push_str(&rest[..i]);
            self.pos += i;
            if self.bytes[self.pos] == b'"' {
                self.pos += 1;
                return Ok(out);
            }
            let esc_start = self.pos;
            let Some(&e) = self.bytes.get(self.pos + 1) else {
                return Err(FilterError::new(start, FilterErrorKind::UnterminatedString));
            };
            self.pos += 2;
            match e {
                b'"' => out.push('"'),
                b'\\' => out.push('\\'),
                b'/' => out.push('/'),
                b'b' => out.push('\u{8}'),
                b'f' => out.push('\u{c}'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'u' => {
                    let c = self.unicode_escape(esc_start)?;
                    out.push(c);
                }
                _ => {
                    let shown: String = self.input[esc_start..].chars().take(2).collect();
                    return Err(FilterError::new(
                        esc_start,
                        FilterErrorKind::InvalidEscape(shown),
                    ));
                }
            }
        }
    }

    /// After `\u`: four hex digits, and a low surrogate escape after a high one.
    fn unicode_escape(&mut self, esc_start: usize) -> Result<char, FilterError> {
        let bad = |p: &Self| {
            let shown: String = p.input[esc_start..].chars().take(12).collect();
            FilterError::new(esc_start, FilterErrorKind::InvalidEscape(shown))
        };
        let hex4 = |p: &mut Self| -> Option<u32> {
            let digits = p.input.get(p.pos..p.pos + 4)?;
            if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            p.pos += 4;
            u32::from_str_radix(digits, 16).ok()
        };
        let Some(first) = hex4(self) else {
            return Err(bad(self));
        };
        match first {
            0xD800..=0xDBFF => {
                if self.input.get(self.pos..self.pos + 2) != Some("\\u") {
                    return Err(bad(self));
                }
                self.pos += 2;
                match hex4(self) {
                    Some(low @ 0xDC00..=0xDFFF) => {
                        let c = 0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00);
                        char::from_u32(c).ok_or_else(|| bad(self))
                    }
                    _ => Err(bad(self)),
                }
            }
            0xDC00..=0xDFFF => Err(bad(self)),
            c => char::from_u32(c).ok_or_else(|| bad(self)),
        }
    }

    /// A JSON number.
    fn number(&mut self) -> Result<Number, FilterError> {
        let start = self.pos;
        let end = self.bytes[start..]
            .iter()
            .position(|&b| !(b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')))
            .map_or(self.bytes.len(), |n| start + n);
        let text = &self.input[start..end];
        let number = text
            .parse::<Number>()
            .ok()
            .filter(|_| is_json_number(text))
            .ok_or_else(|| {
                FilterError::new(start, FilterErrorKind::InvalidNumber(text.to_owned()))
            })?;
        self.pos = end;
        Ok(number)
    }
}

/// The JSON number grammar (RFC 8259 §6): `-? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?`.
fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}
