//! What identity providers send beyond the RFC, kept apart from the RFC path so
//! that [`PatchOptions::strict`](super::PatchOptions::strict) can leave it out.

use serde_json::{Map, Value};

use super::engine::find_key;
use crate::error::{Error, Result};
use crate::filter::{CompValue, CompareOp, Filter};
use crate::message::OpKind;
use crate::schema::Attribute;
use crate::schema::normalize::{coerce, coerce_single};
use crate::schema::registry::get_ci;

/// The identity of a value of a multi-valued attribute, for "is this value
/// already there": the `value` sub-attribute of a complex value, or the value
/// itself for a simple attribute, with whether it compares case-exactly. `None`
/// when the value has no such identity (then whole values are compared).
pub(super) fn identity<'v>(attr: &Attribute, element: &'v Value) -> Option<(&'v str, bool)> {
    let (def, v) = if attr.is_complex() {
        (
            attr.sub_attribute("value")?,
            get_ci(element.as_object()?, "value")?,
        )
    } else {
        (attr, element)
    };
    v.as_str().map(|s| (s, def.compares_case_exact()))
}

/// Whether two values of a multi-valued attribute are the same value.
pub(super) fn same_value(attr: &Attribute, a: &Value, b: &Value) -> bool {
    match (identity(attr, a), identity(attr, b)) {
        (Some((x, exact)), Some((y, _))) => same_text(x, y, exact),
        _ => a == b,
    }
}

fn same_text(x: &str, y: &str, case_exact: bool) -> bool {
    if case_exact || x == y {
        return x == y;
    }
    if x.is_ascii() && y.is_ascii() {
        return x.eq_ignore_ascii_case(y);
    }
    x.to_lowercase() == y.to_lowercase()
}

/// An owned key for hashing a value's identity (lower-cased unless case-exact).
pub(super) fn identity_key(attr: &Attribute, element: &Value) -> Option<String> {
    identity(attr, element).map(|(s, exact)| {
        if exact {
            s.to_owned()
        } else {
            s.to_lowercase()
        }
    })
}

/// Entra ID: `{"op": "Remove", "path": "members", "value": [{"value": "id"}]}`
/// removes exactly the listed values, as `members[value eq "id"]` would.
pub(super) fn remove_listed(attr: &Attribute, list: &mut Vec<Value>, listed: &Value) -> Result<()> {
    let listed = match coerce(attr, attr.name(), listed.clone())? {
        Some(Value::Array(items)) => items,
        Some(single) => vec![single],
        None => return Ok(()),
    };
    list.retain(|e| !listed.iter().any(|l| same_value(attr, e, l)));
    Ok(())
}

/// Entra ID: `add`/`replace` on `emails[type eq "work"].value` when there is no
/// work email creates one. The filter must be a conjunction of `eq` tests on
/// sub-attributes, which then say what the new value holds; any other filter
/// gives `None`.
///
/// A filter on the value's identity (its `value` sub-attribute, as in
/// `members[value eq "2819c223"]`) selects values that exist; it never creates one,
/// so a PATCH cannot invent a group member (RFC 7644 §3.5.2.3: no match is `noTarget`).
pub(super) fn element_from_filter(
    attr: &Attribute,
    filter: &Filter,
) -> Result<Option<Map<String, Value>>> {
    let parts: Vec<&Filter> = match filter {
        Filter::And(parts) => parts.iter().collect(),
        single => vec![single],
    };
    let mut element = Map::new();
    for part in parts {
        let Filter::Compare(path, CompareOp::Eq, value) = part else {
            return Ok(None);
        };
        if path.sub_attr().is_some() {
            return Ok(None);
        }
        let Some(sub) = attr.sub_attribute(path.name()) else {
            return Ok(None);
        };
        if sub.name() == "value" {
            return Ok(None);
        }
        let json = match value {
            CompValue::Null => return Ok(None),
            CompValue::Bool(b) => Value::Bool(*b),
            CompValue::Number(n) => Value::Number(n.clone()),
            CompValue::String(s) => Value::String(s.clone()),
        };
        let json = coerce_single(sub, &format!("{}.{}", attr.name(), sub.name()), json)?;
        if element.insert(sub.name().to_owned(), json).is_some() {
            return Ok(None);
        }
    }
    Ok(Some(element))
}

/// An operation on an attribute no schema defines, kept as given.
pub(super) fn raw_operation(
    op: OpKind,
    container: &mut Map<String, Value>,
    name: &str,
    value: Option<&Value>,
) -> Result<()> {
    let key = find_key(container, name)
        .unwrap_or(std::borrow::Cow::Borrowed(name))
        .into_owned();
    match (op, value) {
        (OpKind::Remove, _) => {
            container.remove(&key);
        }
        (_, None) => {
            return Err(Error::invalid_syntax(format!("{op} needs a \"value\"")));
        }
        (_, Some(Value::Null)) => {
            container.remove(&key);
        }
        (OpKind::Add, Some(Value::Array(items))) => match container.get_mut(&key) {
            Some(Value::Array(list)) => {
                for item in items {
                    if !list.contains(item) {
                        list.push(item.clone());
                    }
                }
            }
            _ => {
                container.insert(key, Value::Array(items.clone()));
            }
        },
        (_, Some(v)) => {
            container.insert(key, v.clone());
        }
    }
    Ok(())
}
