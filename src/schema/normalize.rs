//! Schema-driven normalisation: one step that makes what clients send look like
//! what the RFC specifies, before anything else reads it.

use serde_json::{Map, Number, Value};

use super::registry::split_urn;
use super::{AttrRef, Attribute, AttributeType, ResourceSchema, Schema};
use crate::error::{Error, Result};

impl ResourceSchema<'_> {
    /// Canonicalises a resource's JSON by its schemas.
    ///
    /// - Attribute names are matched case-insensitively (RFC 7643 §2.1) and
    ///   rewritten in the schema's spelling (`UserName` → `userName`), including
    ///   sub-attributes and extension URNs used as keys.
    /// - URN-qualified names (RFC 7644 §3.10) are the attributes they name:
    ///   `urn:…:core:2.0:User:password` is `password`, `urn:…:enterprise:2.0:User:department`
    ///   goes into the extension object, `urn:…:User:name.givenName` into `name`. The
    ///   same attribute given twice with different values is an error.
    /// - Values are coerced to the attribute's type where the intent is clear:
    ///   `"True"`/`"false"` to booleans, numeric strings to numbers, numbers to
    ///   strings, a single value to a one-element list for a multi-valued
    ///   attribute, and a bare string to `{"value": …}` for a complex attribute
    ///   with a `value` sub-attribute (Entra ID's `manager`).
    /// - `null` and empty lists are unassigned (RFC 7643 §2.5) and removed.
    /// - Everything the schemas do not define is kept as it is.
    ///
    /// # Errors
    /// 400 `invalidSyntax` when the document is not an object; 400 `invalidValue`
    /// naming the attribute when a value cannot be read as its type.
    pub fn normalize(&self, value: Value) -> Result<Value> {
        let Value::Object(input) = value else {
            return Err(Error::invalid_syntax("a resource must be a JSON object"));
        };
        let core = &self.core().id;
        let mut out = Map::new();
        for (key, value) in input {
            if let Some(attr) = self.attribute(Some(core), &key) {
                if let Some(v) = coerce(attr.attribute, attr.attribute.name(), value)? {
                    merge(&mut out, attr.attribute.name(), v)?;
                }
            } else if let Some(ext) = self.extension(&key) {
                if value.is_null() {
                    continue;
                }
                let Value::Object(obj) = value else {
                    return Err(Error::invalid_value(format!(
                        "the extension {} must be a JSON object",
                        ext.id
                    )));
                };
                let obj = normalize_members(&ext.attributes, None, obj)?;
                merge(&mut out, &ext.id, Value::Object(obj))?;
            } else if let Some((at, sub)) = self.qualified(&key) {
                // RFC 7644 §3.10: `urn:…:User:password`, `urn:…:enterprise:2.0:User:manager`
                // or `urn:…:User:name.givenName` names the attribute as the short form does.
                let attr = at.attribute;
                let value = match sub {
                    None => coerce(attr, attr.name(), value)?,
                    Some(sub) => {
                        let path = format!("{}.{}", attr.name(), sub.name());
                        coerce(sub, &path, value)?.map(|v| {
                            let mut obj = Map::new();
                            obj.insert(sub.name().to_owned(), v);
                            Value::Object(obj)
                        })
                    }
                };
                let Some(value) = value else { continue };
                if at.extension {
                    let mut obj = Map::new();
                    obj.insert(attr.name().to_owned(), value);
                    merge(&mut out, at.schema, Value::Object(obj))?;
                } else {
                    merge(&mut out, attr.name(), value)?;
                }
            } else {
                merge(&mut out, &key, value)?;
            }
        }
        Ok(Value::Object(out))
    }

    /// A key qualified by the URN of the core schema or of an extension, resolved
    /// to its attribute and, for `name.sub`, a sub-attribute of a single complex one.
    fn qualified(&self, key: &str) -> Option<(AttrRef<'_>, Option<&Attribute>)> {
        split_urn(key).0?;
        let (at, sub) = self.resolve(key)?;
        // `emails.value` would not say which email: only a single complex attribute's
        // sub-attribute can be named so.
        (sub.is_none() || !at.attribute.is_multi_valued()).then_some((at, sub))
    }
}

/// Puts a normalised member into `out`. The same attribute given twice (`userName`
/// and `urn:…:User:userName`) is merged when the values agree or are objects with
/// distinct members; different values are 400 `invalidValue`.
fn merge(out: &mut Map<String, Value>, key: &str, value: Value) -> Result<()> {
    match out.get_mut(key) {
        None => {
            out.insert(key.to_owned(), value);
            Ok(())
        }
        Some(existing) if *existing == value => Ok(()),
        Some(Value::Object(existing)) => match value {
            Value::Object(more) => {
                for (k, v) in more {
                    merge(existing, &k, v).map_err(|_| given_twice(&format!("{key}.{k}")))?;
                }
                Ok(())
            }
            _ => Err(given_twice(key)),
        },
        Some(_) => Err(given_twice(key)),
    }
}

fn given_twice(key: &str) -> Error {
    Error::invalid_value(format!(
        "'{key}' is given twice with different values (attribute names are case-insensitive, \
         and a URN-qualified name is the same attribute as the short one)"
    ))
}

impl Schema {
    /// Canonicalises an object holding this schema's attributes (an extension
    /// object, or a resource of a type without common attributes); see
    /// [`ResourceSchema::normalize`].
    ///
    /// # Errors
    /// 400 `invalidValue` naming the attribute whose value cannot be read as its type.
    pub fn normalize_object(&self, obj: Map<String, Value>) -> Result<Map<String, Value>> {
        normalize_members(&self.attributes, None, obj)
    }
}

/// Renames and coerces the members of an object described by `attrs`; unknown
/// members are kept. `parent` is the enclosing attribute's name, for messages.
fn normalize_members(
    attrs: &[Attribute],
    parent: Option<&str>,
    obj: Map<String, Value>,
) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for (key, value) in obj {
        match attrs.iter().find(|a| a.name().eq_ignore_ascii_case(&key)) {
            Some(attr) => {
                let path = match parent {
                    Some(p) => format!("{p}.{}", attr.name()),
                    None => attr.name().to_owned(),
                };
                if let Some(v) = coerce(attr, &path, value)? {
                    merge(&mut out, attr.name(), v)?;
                }
            }
            None => merge(&mut out, &key, value)?,
        }
    }
    Ok(out)
}

/// Coerces a whole attribute value (a list for a multi-valued attribute).
/// `Ok(None)` means unassigned.
pub(crate) fn coerce(attr: &Attribute, path: &str, value: Value) -> Result<Option<Value>> {
    if value.is_null() {
        return Ok(None);
    }
    if !attr.is_multi_valued() {
        return coerce_single(attr, path, value).map(Some);
    }
    let items = match value {
        Value::Array(items) => items,
        single => vec![single],
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if !item.is_null() {
            out.push(coerce_single(attr, path, item)?);
        }
    }
    Ok((!out.is_empty()).then_some(Value::Array(out)))
}

/// Coerces one value (an element, for a multi-valued attribute) to the
/// attribute's type.
pub(crate) fn coerce_single(attr: &Attribute, path: &str, value: Value) -> Result<Value> {
    let wrong = |value: &Value| {
        Error::invalid_value(format!(
            "attribute '{path}' expects {}, got {}",
            expected(attr),
            describe(value)
        ))
    };
    match attr.attr_type() {
        AttributeType::String | AttributeType::Reference | AttributeType::Binary => match value {
            Value::String(_) => Ok(value),
            Value::Number(n) if attr.attr_type() == AttributeType::String => {
                Ok(Value::String(n.to_string()))
            }
            Value::Bool(b) if attr.attr_type() == AttributeType::String => {
                Ok(Value::String(b.to_string()))
            }
            other => Err(wrong(&other)),
        },
        AttributeType::Boolean => match value {
            Value::Bool(_) => Ok(value),
            Value::String(ref s) => match s.trim() {
                t if t.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
                t if t.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
                _ => Err(wrong(&value)),
            },
            other => Err(wrong(&other)),
        },
        AttributeType::Integer => match value {
            Value::Number(ref n) if n.is_i64() || n.is_u64() => Ok(value),
            Value::Number(ref n) => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Value::from(f as i64)),
                _ => Err(wrong(&value)),
            },
            Value::String(ref s) => s
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| wrong(&value)),
            other => Err(wrong(&other)),
        },
        AttributeType::Decimal => match value {
            Value::Number(_) => Ok(value),
            Value::String(ref s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| wrong(&value)),
            other => Err(wrong(&other)),
        },
        AttributeType::DateTime => match value {
            Value::String(ref s) if parse_datetime(s).is_some() => Ok(value),
            other => Err(wrong(&other)),
        },
        AttributeType::Complex => match value {
            Value::Object(obj) => {
                normalize_members(attr.sub_attributes(), Some(path), obj).map(Value::Object)
            }
            Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                match attr.sub_attribute("value") {
                    Some(sub) => {
                        let mut obj = Map::new();
                        let v = coerce_single(sub, &format!("{path}.value"), value)?;
                        obj.insert(sub.name().to_owned(), v);
                        Ok(Value::Object(obj))
                    }
                    None => Err(wrong(&value)),
                }
            }
            other => Err(wrong(&other)),
        },
    }
}

/// Parses an `xsd:dateTime` as RFC 7643 §2.3.5 uses it: RFC 3339 with a time zone,
/// any number of fractional digits (.NET sends seven).
pub(crate) fn parse_datetime(s: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(s.trim()).ok()
}

fn expected(attr: &Attribute) -> &'static str {
    match attr.attr_type() {
        AttributeType::String => "a string",
        AttributeType::Boolean => "a boolean (true or false)",
        AttributeType::Decimal => "a decimal number",
        AttributeType::Integer => "an integer",
        AttributeType::DateTime => "a dateTime such as \"2024-05-13T04:42:34Z\"",
        AttributeType::Binary => "a base64 string",
        AttributeType::Reference => "a URI string",
        AttributeType::Complex => "a JSON object",
    }
}

/// A short description of a JSON value for error messages.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.chars().count() > 40 => {
            let short: String = s.chars().take(40).collect();
            format!("the string \"{short}…\"")
        }
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}
