//! Filtering, sorting and paging in memory, for stores that cannot push them down.

use std::cmp::Ordering;

use serde_json::Value;

use super::{ListQuery, Page, Record, Sort};
use crate::message::SortOrder;
use crate::schema::normalize::parse_datetime;
use crate::schema::registry::get_ci;
use crate::schema::{AttributeType, ResourceSchema, Returned};

/// Filters, sorts and pages `records` as `query` says (RFC 7644 §3.4.2), cloning
/// only the records of the page.
///
/// Without a sort the input order is kept, so a store that yields records in a
/// stable order gets stable pages.
pub fn apply_query<'r>(
    records: impl IntoIterator<Item = &'r Record>,
    query: &ListQuery<'_>,
) -> Page {
    let bound = query.filter.map(|f| f.bind(&query.schema));
    let matching = records.into_iter().filter(|r| match &bound {
        Some(f) => f.matches(&r.resource),
        None => true,
    });
    let matching: Vec<&Record> = match (query.sort, query.after) {
        (None, None) => matching.collect(),
        (None, Some(after)) => {
            let all: Vec<&Record> = matching.collect();
            let total = all.len();
            let mut later: Vec<&Record> =
                all.into_iter().filter(|r| r.id.as_str() > after).collect();
            later.sort_by(|a, b| a.id.cmp(&b.id));
            later.truncate(query.count);
            return Page {
                total_results: total,
                records: later.into_iter().cloned().collect(),
            };
        }
        (Some(sort), _) => {
            let mut keyed: Vec<(SortKey, &Record)> = matching
                .map(|r| (sort_key(&query.schema, sort, &r.resource), r))
                .collect();
            keyed.sort_by(|(a, ra), (b, rb)| {
                order(a, b, sort.order).then_with(|| ra.id.cmp(&rb.id))
            });
            keyed.into_iter().map(|(_, r)| r).collect()
        }
    };
    let total_results = matching.len();
    let start = query.start_index.max(1) - 1;
    let records = matching
        .into_iter()
        .skip(start)
        .take(query.count)
        .cloned()
        .collect();
    Page {
        total_results,
        records,
    }
}

/// Compares two resources by a sort (RFC 7644 §3.4.2.3): by the attribute's type
/// and `caseExact`, a multi-valued attribute by its primary (or first) value,
/// resources without a value last when ascending and first when descending.
pub fn compare_for_sort(
    schema: &ResourceSchema<'_>,
    sort: &Sort,
    a: &Value,
    b: &Value,
) -> Ordering {
    order(
        &sort_key(schema, sort, a),
        &sort_key(schema, sort, b),
        sort.order,
    )
}

/// A resource's value for a sort, comparable across resource types.
#[derive(Debug, PartialEq, PartialOrd)]
pub(crate) enum SortKey {
    Bool(bool),
    Number(f64),
    Time(chrono::DateTime<chrono::FixedOffset>),
    Text(String),
    Missing,
}

pub(crate) fn order(a: &SortKey, b: &SortKey, sort_order: SortOrder) -> Ordering {
    let ord = match (a, b) {
        (SortKey::Missing, SortKey::Missing) => Ordering::Equal,
        (SortKey::Missing, _) => Ordering::Greater,
        (_, SortKey::Missing) => Ordering::Less,
        (a, b) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
    };
    match sort_order {
        SortOrder::Descending => ord.reverse(),
        _ => ord,
    }
}

pub(crate) fn sort_key(schema: &ResourceSchema<'_>, sort: &Sort, resource: &Value) -> SortKey {
    let Some(obj) = resource.as_object() else {
        return SortKey::Missing;
    };
    let Some(found) = schema.attribute(sort.by.schema(), sort.by.name()) else {
        return SortKey::Missing;
    };
    if found.attribute.returned() == Returned::Never {
        // Never revealed, not even through the order of results (RFC 7643 §7).
        return SortKey::Missing;
    }
    let Some(raw) = found.value_in(obj) else {
        return SortKey::Missing;
    };
    let attr = found.attribute;
    // A multi-valued attribute sorts by its primary value, or its first.
    let single = match raw {
        Value::Array(items) => items
            .iter()
            .find(|v| v.get("primary") == Some(&Value::Bool(true)))
            .or_else(|| items.first()),
        v => Some(v),
    };
    let Some(single) = single else {
        return SortKey::Missing;
    };
    let (def, leaf) = match (sort.by.sub_attr(), attr.is_complex()) {
        (Some(sub), _) => match (attr.sub_attribute(sub), single.as_object()) {
            (Some(def), _) if def.returned() == Returned::Never => return SortKey::Missing,
            (Some(def), Some(o)) => (def, get_ci(o, sub)),
            _ => return SortKey::Missing,
        },
        (None, true) => match (attr.sub_attribute("value"), single.as_object()) {
            (Some(def), Some(o)) => (def, get_ci(o, "value")),
            _ => return SortKey::Missing,
        },
        (None, false) => (attr, Some(single)),
    };
    let Some(leaf) = leaf else {
        return SortKey::Missing;
    };
    match (def.attr_type(), leaf) {
        (_, Value::Null) => SortKey::Missing,
        (AttributeType::Boolean, Value::Bool(b)) => SortKey::Bool(*b),
        (AttributeType::Integer | AttributeType::Decimal, Value::Number(n)) => {
            n.as_f64().map_or(SortKey::Missing, SortKey::Number)
        }
        (AttributeType::DateTime, Value::String(s)) => match parse_datetime(s) {
            Some(t) => SortKey::Time(t),
            None => SortKey::Text(s.clone()),
        },
        (_, Value::String(s)) if def.compares_case_exact() => SortKey::Text(s.clone()),
        (_, Value::String(s)) => SortKey::Text(s.to_lowercase()),
        (_, other) => SortKey::Text(other.to_string()),
    }
}
