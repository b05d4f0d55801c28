//! List parameters (RFC 7644 §3.4.2) and attribute projection (§3.4.2.5, with
//! RFC 7643 §7 `returned`).

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::filter::{Filter, FilterOptions};
use crate::message::{SearchRequest, SortOrder};
use crate::path::AttrPath;
use crate::schema::{Attribute, ResourceSchema, Returned, Schema};
use crate::store::{Projection, Sort};

/// The list parameters as they arrived, from a query string or a SearchRequest.
#[derive(Debug, Default)]
pub(crate) struct ListParams {
    pub(crate) filter: Option<String>,
    pub(crate) start_index: Option<String>,
    pub(crate) count: Option<String>,
    pub(crate) cursor: Option<String>,
    pub(crate) sort_by: Option<String>,
    pub(crate) sort_order: Option<String>,
    pub(crate) attributes: Option<String>,
    pub(crate) excluded: Option<String>,
}

impl ListParams {
    /// Reads a query string: parameter names in any case, `+` or `%20` for spaces.
    pub(crate) fn from_query(query: &str) -> Self {
        let mut p = ListParams::default();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match name.to_ascii_lowercase().as_str() {
                "filter" => &mut p.filter,
                "startindex" => &mut p.start_index,
                "count" => &mut p.count,
                "cursor" => &mut p.cursor,
                "sortby" => &mut p.sort_by,
                "sortorder" => &mut p.sort_order,
                "attributes" => &mut p.attributes,
                "excludedattributes" => &mut p.excluded,
                _ => continue,
            };
            *slot = Some(value.into_owned());
        }
        p
    }

    /// Reads a SearchRequest body (RFC 7644 §3.4.3).
    pub(crate) fn from_search(s: SearchRequest) -> Self {
        let join = |v: Vec<String>| (!v.is_empty()).then(|| v.join(","));
        ListParams {
            filter: s.filter,
            start_index: s.start_index.map(|n| n.to_string()),
            count: s.count.map(|n| n.to_string()),
            cursor: s.cursor,
            sort_by: s.sort_by,
            sort_order: s.sort_order.map(|o| o.to_string()),
            attributes: join(s.attributes),
            excluded: join(s.excluded_attributes),
        }
    }
}

/// Validated list parameters.
#[derive(Debug)]
pub(crate) struct ListPlan {
    pub(crate) filter: Option<Filter>,
    pub(crate) sort: Option<Sort>,
    pub(crate) start_index: usize,
    /// Whether the client gave a `startIndex`.
    pub(crate) start_index_given: bool,
    pub(crate) count: usize,
    /// Whether the client gave a `count`.
    pub(crate) count_given: bool,
    /// The `cursor` parameter, if given (empty for a first page; RFC 9865 §2).
    pub(crate) cursor: Option<String>,
    pub(crate) projection: Projection,
}

/// Parses and checks list parameters against a resource type.
pub(crate) fn plan(
    params: &ListParams,
    schema: Option<&ResourceSchema<'_>>,
    filter_options: &FilterOptions,
    max_results: usize,
) -> Result<ListPlan> {
    let filter = match params.filter.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => {
            let f = filter_options.parse(text)?;
            if let Some(rs) = schema {
                f.check(rs)?;
            }
            Some(f)
        }
    };
    let number = |name: &str, v: &Option<String>| -> Result<Option<i64>> {
        match v.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) => s
                .parse::<i64>()
                .map(Some)
                .map_err(|_| Error::invalid_value(format!("{name} must be an integer, got {s:?}"))),
        }
    };
    // RFC 7644 §3.4.2.4: startIndex below 1 is 1; count below 0 is 0; count above
    // the server's maximum is the maximum.
    let start_index = number("startIndex", &params.start_index)?
        .unwrap_or(1)
        .max(1);
    let count = number("count", &params.count)?
        .map_or(max_results, |c| {
            usize::try_from(c.max(0)).unwrap_or(max_results)
        })
        .min(max_results);
    let sort_order = match params.sort_order.as_deref().map(str::trim) {
        None | Some("") => SortOrder::Ascending,
        Some(s) => s.parse().map_err(|e: String| Error::invalid_value(e))?,
    };
    let sort = match params.sort_by.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => {
            let by =
                AttrPath::parse(s).map_err(|e| Error::invalid_value(format!("sortBy: {e}")))?;
            Some(Sort {
                by,
                order: sort_order,
            })
        }
    };
    Ok(ListPlan {
        filter,
        sort,
        start_index: usize::try_from(start_index).unwrap_or(usize::MAX),
        start_index_given: given(&params.start_index),
        count,
        count_given: given(&params.count),
        cursor: params.cursor.as_deref().map(|c| c.trim().to_owned()),
        projection: projection(params.attributes.as_deref(), params.excluded.as_deref())?,
    })
}

/// Whether a parameter was given with a value.
fn given(param: &Option<String>) -> bool {
    param.as_deref().is_some_and(|s| !s.trim().is_empty())
}

/// The attribute `sortBy` names in `rt`, if `rt` has it.
///
/// # Errors
/// 400 `invalidValue` when it names a never-returned attribute (RFC 7643 §7): sorting
/// by `password` would reveal it through the order of the results.
pub(crate) fn sort_attribute<'r>(
    rt: &ResourceSchema<'r>,
    sort: &Sort,
) -> Result<Option<&'r Attribute>> {
    let Some(found) = rt.attribute(sort.by.schema(), sort.by.name()) else {
        return Ok(None);
    };
    let sub = match sort.by.sub_attr() {
        Some(name) => found.attribute.sub_attribute(name),
        None => None,
    };
    if found.attribute.returned() == Returned::Never
        || sub.is_some_and(|s| s.returned() == Returned::Never)
    {
        let name = match sub {
            Some(sub) => format!("{}.{}", found.attribute.name(), sub.name()),
            None => found.attribute.name().to_owned(),
        };
        return Err(Error::invalid_value(format!(
            "sortBy names '{name}', which is never returned (RFC 7643 §7), so results cannot be sorted by it"
        )));
    }
    Ok(Some(sub.unwrap_or(found.attribute)))
}

/// Checks that `sortBy` names an attribute of `rt` that may be revealed.
///
/// # Errors
/// 400 `invalidValue` naming the attribute.
pub(crate) fn check_sort(rt: &ResourceSchema<'_>, sort: &Sort) -> Result<()> {
    match sort_attribute(rt, sort)? {
        Some(_) => Ok(()),
        None => Err(Error::invalid_value(format!(
            "sortBy '{}' names no attribute of {}",
            sort.by,
            rt.name()
        ))),
    }
}

/// Parses `attributes` and `excludedAttributes` (comma-separated attribute paths).
pub(crate) fn projection(attributes: Option<&str>, excluded: Option<&str>) -> Result<Projection> {
    let list = |name: &str, s: Option<&str>| -> Result<Vec<AttrPath>> {
        s.unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| AttrPath::parse(p).map_err(|e| Error::invalid_value(format!("{name}: {e}"))))
            .collect()
    };
    Ok(Projection {
        attributes: list("attributes", attributes)?,
        excluded: list("excludedAttributes", excluded)?,
    })
}

/// What of one attribute a projection keeps.
enum Keep {
    Drop,
    All,
    /// Only these sub-attributes (and those returned `always`).
    Subs(Vec<String>),
}

/// Applies `returned` and the projection to a resource's JSON (RFC 7644 §3.4.2.5,
/// RFC 7643 §7): `never` is always dropped, `always` always kept, `request` kept
/// only when asked for; `attributes` keeps only what it names, `excludedAttributes`
/// drops what it names.
pub(crate) fn project(
    rs: &ResourceSchema<'_>,
    resource: &mut Map<String, Value>,
    proj: &Projection,
) {
    let core_id = rs.core().id.clone();
    let keys: Vec<String> = resource.keys().cloned().collect();
    for key in keys {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if let Some(ext) = rs.extension(&key) {
            let whole_listed = proj.attributes.iter().any(|p| names_schema(p, &ext.id));
            let whole_excluded = proj.excluded.iter().any(|p| names_schema(p, &ext.id));
            let keep = match resource.get_mut(&key) {
                Some(Value::Object(inner)) if !whole_excluded => {
                    let any_listed = whole_listed || proj.attributes.is_empty();
                    project_schema(ext, &ext.id, inner, proj, any_listed);
                    !inner.is_empty()
                }
                _ => false,
            };
            if !keep {
                resource.remove(&key);
            }
            continue;
        }
        match rs.attribute(Some(&core_id), &key) {
            Some(found) => {
                let keep = decide(found.attribute, &core_id, proj, proj.attributes.is_empty());
                apply_keep(resource, &key, found.attribute, keep);
            }
            None => {
                // Attributes no schema defines are returned by default.
                let listed = proj
                    .attributes
                    .iter()
                    .any(|p| p.name().eq_ignore_ascii_case(&key));
                let excluded = proj
                    .excluded
                    .iter()
                    .any(|p| p.name().eq_ignore_ascii_case(&key));
                if excluded || (!proj.attributes.is_empty() && !listed) {
                    resource.remove(&key);
                }
            }
        }
    }
}

/// Whether a path names a whole schema: `urn:…:enterprise:2.0:User`.
fn names_schema(p: &AttrPath, schema_id: &str) -> bool {
    match p.schema() {
        Some(s) => {
            p.sub_attr().is_none() && format!("{s}:{}", p.name()).eq_ignore_ascii_case(schema_id)
        }
        None => false,
    }
}

fn project_schema(
    schema: &Schema,
    id: &str,
    obj: &mut Map<String, Value>,
    proj: &Projection,
    all_listed: bool,
) {
    let keys: Vec<String> = obj.keys().cloned().collect();
    for key in keys {
        if let Some(attr) = schema.attribute(&key) {
            let keep = decide(attr, id, proj, all_listed);
            apply_keep(obj, &key, attr, keep);
        } else if !all_listed {
            obj.remove(&key);
        }
    }
}

fn path_names(p: &AttrPath, attr: &Attribute, schema_id: &str) -> bool {
    p.name().eq_ignore_ascii_case(attr.name())
        && p.schema().is_none_or(|s| s.eq_ignore_ascii_case(schema_id))
}

fn decide(attr: &Attribute, schema_id: &str, proj: &Projection, all_listed: bool) -> Keep {
    match attr.returned() {
        Returned::Never => return Keep::Drop,
        Returned::Always => return Keep::All,
        _ => {}
    }
    let listed: Vec<&AttrPath> = proj
        .attributes
        .iter()
        .filter(|p| path_names(p, attr, schema_id))
        .collect();
    let excluded: Vec<&AttrPath> = proj
        .excluded
        .iter()
        .filter(|p| path_names(p, attr, schema_id))
        .collect();
    if excluded.iter().any(|p| p.sub_attr().is_none()) {
        return Keep::Drop;
    }
    let wanted = if listed.is_empty() {
        all_listed && attr.returned() != Returned::Request
    } else {
        true
    };
    if !wanted {
        return Keep::Drop;
    }
    let listed_subs: Vec<String> = listed
        .iter()
        .filter_map(|p| p.sub_attr().map(str::to_owned))
        .collect();
    let whole = listed.iter().any(|p| p.sub_attr().is_none());
    if !whole && !listed_subs.is_empty() {
        return Keep::Subs(listed_subs);
    }
    let excluded_subs: Vec<String> = excluded
        .iter()
        .filter_map(|p| p.sub_attr().map(str::to_owned))
        .collect();
    if excluded_subs.is_empty() {
        return Keep::All;
    }
    let subs = attr
        .sub_attributes()
        .iter()
        .map(|s| s.name().to_owned())
        .filter(|n| !excluded_subs.iter().any(|e| e.eq_ignore_ascii_case(n)))
        .collect();
    Keep::Subs(subs)
}

fn apply_keep(obj: &mut Map<String, Value>, key: &str, attr: &Attribute, keep: Keep) {
    match keep {
        Keep::Drop => {
            obj.remove(key);
        }
        Keep::All => strip_never(obj.get_mut(key), attr, None),
        Keep::Subs(subs) => {
            strip_never(obj.get_mut(key), attr, Some(&subs));
            if obj.get(key).is_some_and(|v| match v {
                Value::Object(o) => o.is_empty(),
                Value::Array(a) => a.iter().all(|e| e.as_object().is_some_and(Map::is_empty)),
                _ => false,
            }) {
                obj.remove(key);
            }
        }
    }
}

/// Within a complex value, drops sub-attributes returned `never` (and `request`
/// ones not asked for), and with `only`, every sub-attribute not named there
/// except those returned `always`.
fn strip_never(value: Option<&mut Value>, attr: &Attribute, only: Option<&[String]>) {
    if !attr.is_complex() {
        return;
    }
    let keep_sub = |name: &str| match attr.sub_attribute(name) {
        Some(sub) => match sub.returned() {
            Returned::Never => false,
            Returned::Always => true,
            Returned::Request => {
                only.is_some_and(|o| o.iter().any(|n| n.eq_ignore_ascii_case(name)))
            }
            _ => only.is_none_or(|o| o.iter().any(|n| n.eq_ignore_ascii_case(name))),
        },
        None => only.is_none_or(|o| o.iter().any(|n| n.eq_ignore_ascii_case(name))),
    };
    let strip = |v: &mut Value| {
        if let Value::Object(o) = v {
            o.retain(|k, _| keep_sub(k));
        }
    };
    match value {
        Some(Value::Array(items)) => items.iter_mut().for_each(strip),
        Some(v) => strip(v),
        None => {}
    }
}
