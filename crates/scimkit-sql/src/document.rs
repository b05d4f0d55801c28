//! The comparison document: what a SQL filter compares, computed in Rust.
//!
//! SQL and Rust disagree on almost every comparison a SCIM filter makes: SQLite's
//! `lower()` folds ASCII only, PostgreSQL's depends on the collation, neither compares
//! dateTimes at different offsets by instant, and both let `NULL` leak through `NOT`.
//! So the SQL never folds or parses anything. Next to each resource a store keeps
//! this document, built by the same rules [`Filter::matches`](scimkit::filter::Filter)
//! uses:
//!
//! - every attribute the schema defines, under its canonical name (extension
//!   attributes inside the extension's URN key); attributes no schema defines and
//!   never-returned ones (`password`) are left out, as filters cannot match them;
//! - strings of attributes that are not `caseExact` lower-cased with Rust's
//!   `str::to_lowercase`, the one case-folding rule of both sides (literals are
//!   folded the same way before they are bound);
//! - dateTimes as the UTC instant in a fixed-width form, so comparing text compares
//!   instants (`2011-05-13T06:42:34+02:00` equals `2011-05-13T04:42:34Z`); an empty
//!   dateTime is unassigned, and one that does not parse is kept as `true`, present
//!   but equal to nothing;
//! - numbers as the `f64` the evaluator compares, booleans as booleans (also when
//!   sent as `"True"`), every multi-valued attribute as a list;
//! - sub-attributes no schema defines kept as they are, since they make a complex
//!   value present.
//!
//! Build it from the normalised resource (what scimkit's service stores), and again
//! on every write.

use chrono::{DateTime, FixedOffset, Utc};
use scimkit::schema::{Attribute, AttributeType, ResourceSchema, Returned};
use serde_json::{Map, Number, Value};

/// The comparison document of a resource (see the [module documentation](self)).
///
/// ```
/// use scimkit::Registry;
/// use scimkit_sql::comparison_document;
/// use serde_json::json;
///
/// let registry = Registry::core();
/// let users = registry.resource_type("User").ok_or("no User type")?;
/// let user = json!({
///     "userName": "BJensen", "password": "t1meMa$heen",
///     "meta": {"created": "2011-05-13T06:42:34+02:00"},
///     "emails": [{"value": "Babs@Example.com", "primary": true}]
/// });
/// let doc = comparison_document(&users, &user);
/// assert_eq!(doc["userName"], "bjensen");
/// assert_eq!(doc["meta"]["created"], "2011-05-13T04:42:34.000000000Z");
/// assert_eq!(doc["emails"][0]["value"], "babs@example.com");
/// assert!(doc.get("password").is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn comparison_document(schema: &ResourceSchema<'_>, resource: &Value) -> Value {
    let mut out = Map::new();
    let Some(obj) = resource.as_object() else {
        return Value::Object(out);
    };
    let core = &schema.core().id;
    for (key, value) in obj {
        if let Some(found) = schema.attribute(Some(core), key) {
            if let Some(v) = attribute(found.attribute, value) {
                out.insert(found.attribute.name().to_owned(), v);
            }
        } else if let Some(ext) = schema.extension(key) {
            let Some(members) = value.as_object() else {
                continue;
            };
            let mut inner = Map::new();
            for (k, v) in members {
                if let Some(attr) = ext.attribute(k) {
                    if let Some(v) = attribute(attr, v) {
                        inner.insert(attr.name().to_owned(), v);
                    }
                }
            }
            out.insert(ext.id.clone(), Value::Object(inner));
        }
    }
    Value::Object(out)
}

/// A whole attribute; `None` when filters never see it.
fn attribute(attr: &Attribute, value: &Value) -> Option<Value> {
    if attr.returned() == Returned::Never {
        return None;
    }
    Some(if attr.is_multi_valued() {
        match value {
            Value::Array(items) => Value::Array(items.iter().map(|v| single(attr, v)).collect()),
            Value::Null => Value::Null,
            single_value => Value::Array(vec![single(attr, single_value)]),
        }
    } else {
        single(attr, value)
    })
}

/// One value (an element, for a multi-valued attribute).
fn single(attr: &Attribute, value: &Value) -> Value {
    if !attr.is_complex() {
        return leaf(attr, value);
    }
    let Value::Object(obj) = value else {
        return value.clone();
    };
    let mut out = Map::new();
    for (k, v) in obj {
        match attr.sub_attribute(k) {
            Some(sub) if sub.returned() == Returned::Never => {}
            Some(sub) => {
                let v = match v {
                    Value::Array(items) => {
                        Value::Array(items.iter().map(|i| leaf(sub, i)).collect())
                    }
                    v => leaf(sub, v),
                };
                out.insert(sub.name().to_owned(), v);
            }
            // Not compared, but it makes the value present.
            None => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// A simple value in the form SQL compares.
fn leaf(def: &Attribute, value: &Value) -> Value {
    match def.attr_type() {
        AttributeType::Boolean => match value {
            Value::String(s) => match parse_bool(s) {
                Some(b) => Value::Bool(b),
                None => value.clone(),
            },
            v => v.clone(),
        },
        AttributeType::Integer | AttributeType::Decimal => {
            let f = match value {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            match f.and_then(Number::from_f64) {
                Some(n) => Value::Number(n),
                None => value.clone(),
            }
        }
        AttributeType::DateTime => match value {
            Value::String(s) if s.is_empty() => Value::Null,
            Value::String(s) => match parse_datetime(s) {
                Some(t) => Value::String(instant(&t)),
                None => Value::Bool(true),
            },
            v => v.clone(),
        },
        AttributeType::Complex => value.clone(),
        // String, reference, binary, and any type a later RFC adds: text.
        _ => match value {
            Value::String(s) => Value::String(fold(def, s)),
            v => v.clone(),
        },
    }
}

/// A string as compared for `def`: lower-cased unless case-exact.
pub(crate) fn fold(def: &Attribute, s: &str) -> String {
    if def.compares_case_exact() {
        s.to_owned()
    } else {
        fold_text(s)
    }
}

/// Text as scimkit compares it ignoring case: Rust's `str::to_lowercase`, the one
/// case-folding rule of the evaluator and of every SQL translation. Write it into the
/// folded column of a [`Mapping`](crate::Mapping) (SQL's `lower()` folds differently
/// beyond ASCII).
///
/// ```
/// assert_eq!(scimkit_sql::fold_text("\u{212A}elvin ÄPFEL"), "kelvin äpfel");
/// ```
pub fn fold_text(s: &str) -> String {
    if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        s.to_lowercase()
    }
}

/// An instant as the fixed-width UTC text whose order is the instants' order
/// (`2011-05-13T04:42:34.000000000Z`): what a SQLite dateTime column of a
/// [`Mapping`](crate::Mapping) holds.
///
/// ```
/// let t = chrono::DateTime::parse_from_rfc3339("2011-05-13T06:42:34+02:00")?;
/// assert_eq!(scimkit_sql::instant_text(&t), "2011-05-13T04:42:34.000000000Z");
/// # Ok::<(), chrono::ParseError>(())
/// ```
pub fn instant_text<Tz: chrono::TimeZone>(t: &DateTime<Tz>) -> String {
    use chrono::{Datelike, Timelike};
    let t = t.with_timezone(&Utc);
    let year = t.year();
    if !(0..=9999).contains(&year) {
        // Outside four digits, chrono's own form; such years do not order as
        // text with the others (nor does anything else compare them).
        return t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string();
    }
    let mut out = String::with_capacity(30);
    let push = crate::text::push_number;
    push(&mut out, year as usize, 4);
    out.push('-');
    push(&mut out, t.month() as usize, 2);
    out.push('-');
    push(&mut out, t.day() as usize, 2);
    out.push('T');
    push(&mut out, t.hour() as usize, 2);
    out.push(':');
    push(&mut out, t.minute() as usize, 2);
    out.push(':');
    // A leap second is nanoseconds past 999,999,999, as chrono keeps it.
    let nanos = t.nanosecond();
    push(&mut out, (t.second() + nanos / 1_000_000_000) as usize, 2);
    out.push('.');
    push(&mut out, (nanos % 1_000_000_000) as usize, 9);
    out.push('Z');
    out
}

/// `xsd:dateTime` as scimkit reads it: RFC 3339 with a time zone, trimmed.
pub(crate) fn parse_datetime(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s.trim()).ok()
}

/// An instant as fixed-width UTC text, whose order is the instants' order.
pub(crate) fn instant(t: &DateTime<FixedOffset>) -> String {
    instant_text(t)
}

/// The instant of an `xsd:dateTime` (RFC 3339, as [`parse_datetime`] reads it) as
/// [`instant_text`] writes it; `None` when it is not one.
#[cfg(test)]
fn instant_of(s: &str) -> Option<String> {
    let mut out = String::with_capacity(30);
    instant_into(&mut out, s).then_some(out)
}

/// Appends the instant of `s`, an `xsd:dateTime` (RFC 3339, as [`parse_datetime`]
/// reads it), to `out` as [`instant_text`] writes it; `false`, having appended
/// nothing, when it is not one.
pub(crate) fn instant_into(out: &mut String, s: &str) -> bool {
    if let Some(seconds) = utc_seconds(s.trim()) {
        out.push_str(seconds);
        out.push_str(".000000000Z");
        return true;
    }
    match parse_datetime(s) {
        Some(t) => {
            out.push_str(&instant(&t));
            true
        }
        None => false,
    }
}

/// The common form `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds, no leap second)
/// read without chrono: its instant is its text up to the seconds, then zero
/// nanoseconds; answers that text. `None` for anything else, valid or not (chrono
/// decides those).
fn utc_seconds(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    if b.len() != 20 {
        return None;
    }
    let digits = |from: usize, to: usize| -> Option<u32> {
        b.get(from..to)?.iter().try_fold(0, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let punctuation = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'Z'),
    ];
    if punctuation.iter().any(|&(i, c)| b.get(i) != Some(&c)) {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 7)?, digits(8, 10)?);
    let (hour, minute, second) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    s.get(..19)
}

/// `true`/`false` in any case, as the evaluator reads booleans sent as strings.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast reading of the common form answers what chrono answers.
    #[test]
    fn utc_seconds_agrees_with_chrono() {
        let mut texts = vec![
            "2011-05-13T04:42:34Z".to_owned(),
            "2011-05-13T04:42:34z".to_owned(),
            "2011-05-13t04:42:34Z".to_owned(),
            "2011-05-13 04:42:34Z".to_owned(),
            "2011-05-13T04:42:60Z".to_owned(),
            "2011-05-13T24:00:00Z".to_owned(),
            "0000-01-01T00:00:00Z".to_owned(),
            "9999-12-31T23:59:59Z".to_owned(),
            "2011-5-13T04:42:34Z".to_owned(),
            "2011-05-13T04:42:34+00:00".to_owned(),
            "2011-05-13T04:42:3ZZ".to_owned(),
            "２011-05-13T04:42:34Z".to_owned(),
        ];
        for year in [1900, 2000, 2023, 2024, 2100] {
            for month in 0..=13 {
                for day in [0, 1, 28, 29, 30, 31, 32] {
                    texts.push(format!("{year:04}-{month:02}-{day:02}T23:59:59Z"));
                }
            }
        }
        for text in &texts {
            let chrono = parse_datetime(text).map(|t| instant(&t));
            assert_eq!(instant_of(text), chrono, "{text}");
            if let Some(fast) = utc_seconds(text) {
                assert_eq!(Some(format!("{fast}.000000000Z")), chrono, "{text}");
            }
        }
        assert!(utc_seconds("2024-02-29T00:00:00Z").is_some());
    }

    /// The hand-written form is chrono's `%Y-%m-%dT%H:%M:%S%.9fZ`, leap seconds and
    /// the ends of the four-digit years included.
    #[test]
    fn instant_text_is_chronos_form() -> Result<(), chrono::ParseError> {
        for text in [
            "2011-05-13T06:42:34+02:00",
            "2011-05-13T04:42:35.5Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "2016-12-31T23:59:60.25Z",
            "1970-01-01T00:00:00.000000001-08:00",
        ] {
            let t = DateTime::parse_from_rfc3339(text)?;
            let chrono = t
                .with_timezone(&Utc)
                .format("%Y-%m-%dT%H:%M:%S%.9fZ")
                .to_string();
            assert_eq!(instant_text(&t), chrono, "{text}");
        }
        Ok(())
    }
}
