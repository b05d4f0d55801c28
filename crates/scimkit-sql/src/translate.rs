//! Filters as SQL over the comparison document (see [`crate::document`]).
//!
//! Every predicate the translation writes is two-valued: a missing attribute makes a
//! comparison false, never `NULL`, so `not` and `ne` mean what they mean in
//! [`Filter::matches`] (a user without `externalId` matches `externalId ne "x"`).
//! Values are always bound parameters, JSON paths included; nothing from a filter is
//! spliced into the SQL text. Strings compare with `instr`, `substr` and `=` rather
//! than `LIKE`, so `%`, `_` and `\` in a value are plain characters.

use scimkit::filter::{CompValue, CompareOp, Filter};
use scimkit::path::AttrPath;
use scimkit::schema::{Attribute, AttributeType, ResourceSchema, Returned};

use crate::document::{fold, instant, parse_bool, parse_datetime};

/// The SQL dialect to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dialect {
    /// SQLite 3.38 or later (JSON functions built in), the comparison document as
    /// JSON text; placeholders `?1`, `?2`, ….
    Sqlite,
    /// PostgreSQL 12 or later, the comparison document as `jsonb`; placeholders `$1`,
    /// `$2`, …; text compared in byte order (`COLLATE "C"`), as Rust compares it.
    Postgres,
}

/// A value bound to a placeholder of the translated SQL.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Param {
    /// Text: a literal, or a JSON path.
    Text(String),
    /// A number, compared as the evaluator compares numbers (`f64`).
    Real(f64),
    /// A list of keys: a JSON path for PostgreSQL's `#>` (`text[]`).
    TextArray(Vec<String>),
}

/// A filter as a SQL condition on the column holding the comparison document.
#[derive(Debug, Clone, PartialEq)]
pub struct Translation {
    /// The condition, for a `WHERE` clause; always true when nothing could be pushed
    /// down.
    pub sql: String,
    /// The values of its placeholders, in order.
    pub params: Vec<Param>,
    /// What the SQL could not express (conjuncts of the filter): evaluate it with
    /// [`Filter::matches`] on the rows returned. The SQL alone then selects a
    /// superset, and the two together select exactly what the filter does.
    pub residual: Option<Filter>,
}

/// Translates `filter` for resources of `schema` whose comparison document is in
/// the column `column` (a trusted identifier: the host's own column name).
///
/// ```
/// use scimkit::{Registry, filter::Filter};
/// use scimkit_sql::{Dialect, Param, translate};
///
/// let registry = Registry::core();
/// let users = registry.resource_type("User").ok_or("no User type")?;
/// let filter: Filter = r#"userName eq "BJensen" and not (externalId sw "x%")"#.parse()?;
/// let t = translate(&filter, &users, "cmp", Dialect::Sqlite);
/// assert!(t.residual.is_none());
/// assert!(t.params.contains(&Param::Text("bjensen".into()))); // folded like the evaluator
/// assert!(t.params.contains(&Param::Text("x%".into()))); // `%` is a plain character
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn translate(
    filter: &Filter,
    schema: &ResourceSchema<'_>,
    column: &str,
    dialect: Dialect,
) -> Translation {
    let mut w = Writer {
        schema,
        column,
        dialect,
        params: Vec::new(),
        aliases: 0,
    };
    let parts: Vec<&Filter> = match filter {
        Filter::And(parts) => parts.iter().collect(),
        f => vec![f],
    };
    let mut sql = Vec::new();
    let mut residual = Vec::new();
    for part in parts {
        let mark = w.params.len();
        match w.filter(part, &Scope::Resource) {
            Some(s) => sql.push(s),
            None => {
                w.params.truncate(mark);
                residual.push(part.clone());
            }
        }
    }
    let residual = match residual.len() {
        0 => None,
        1 => residual.pop(),
        _ => Some(Filter::And(residual)),
    };
    let always = match dialect {
        Dialect::Sqlite => "1",
        Dialect::Postgres => "TRUE",
    };
    Translation {
        sql: if sql.is_empty() {
            always.to_owned()
        } else {
            sql.join(" AND ")
        },
        params: w.params,
        residual,
    }
}

/// Where names resolve: the resource, or one value of a complex attribute (the SQL
/// expression of that value, a JSON object).
enum Scope<'r> {
    Resource,
    Element { attr: &'r Attribute, value: String },
}

/// The comparison one leaf value gets.
enum Test {
    Never,
    Text(CompareOp, String),
    Number(CompareOp, f64),
    Bool(bool),
    Time(CompareOp, String),
}

struct Writer<'a, 'r> {
    schema: &'a ResourceSchema<'r>,
    column: &'a str,
    dialect: Dialect,
    params: Vec<Param>,
    aliases: usize,
}

/// Where a path's leaf values are: the JSON holding them and the path to the
/// attribute, whether it is a list, and the path inside each value.
struct Place<'r> {
    attr: &'r Attribute,
    sub: Option<&'r Attribute>,
    /// The JSON expression the path applies to.
    root: String,
    /// Keys from `root` to the attribute's value.
    path: Vec<String>,
    /// The key inside each value that holds the leaf (`value` implicitly).
    leaf: Option<String>,
}

impl<'r> Writer<'_, 'r> {
    fn bind(&mut self, p: Param) -> String {
        let cast = match (&p, self.dialect) {
            (_, Dialect::Sqlite) => "",
            (Param::Text(_), Dialect::Postgres) => "::text",
            (Param::Real(_), Dialect::Postgres) => "::float8",
            (Param::TextArray(_), Dialect::Postgres) => "::text[]",
        };
        self.params.push(p);
        match self.dialect {
            Dialect::Sqlite => format!("?{}", self.params.len()),
            Dialect::Postgres => format!("${}{cast}", self.params.len()),
        }
    }

    /// A condition that is always false.
    fn never(&self) -> String {
        match self.dialect {
            Dialect::Sqlite => "0".to_owned(),
            Dialect::Postgres => "FALSE".to_owned(),
        }
    }

    fn alias(&mut self) -> String {
        self.aliases += 1;
        format!("j{}", self.aliases)
    }

    /// A path parameter: `$."a"."b"` (each key quoted) for SQLite, the keys as
    /// `text[]` for PostgreSQL.
    fn json_path(&mut self, keys: &[String]) -> String {
        if self.dialect == Dialect::Postgres {
            return self.bind(Param::TextArray(keys.to_vec()));
        }
        let mut path = String::from("$");
        for k in keys {
            path.push_str(".\"");
            for c in k.chars() {
                if c == '"' || c == '\\' {
                    path.push('\\');
                }
                path.push(c);
            }
            path.push('"');
        }
        self.bind(Param::Text(path))
    }

    /// A FROM item named `alias` with one row per value at `path` under `root`: each
    /// item of a list (`list`), or the value itself. Rows have a JSON `value`.
    fn rows(&self, root: &str, path: &str, list: bool, alias: &str) -> String {
        match (self.dialect, list) {
            (Dialect::Sqlite, true) => format!("json_each({root}, {path}) AS {alias}"),
            (Dialect::Sqlite, false) => format!(
                "(SELECT json_extract({root}, {path}) AS value, json_type({root}, {path}) AS type, json_extract({root}, {path}) AS atom) AS {alias}"
            ),
            (Dialect::Postgres, true) => format!(
                "jsonb_array_elements(CASE WHEN jsonb_typeof({root} #> {path}) = 'array' THEN {root} #> {path} ELSE '[]'::jsonb END) AS {alias}(value)"
            ),
            (Dialect::Postgres, false) => format!("(SELECT {root} #> {path} AS value) AS {alias}"),
        }
    }

    /// The rows of the leaf at `key_path` inside the object `alias.value` (a list's
    /// items, or the value itself), named `items`.
    fn leaf_rows(&self, alias: &str, key_path: &str, items: &str) -> String {
        match self.dialect {
            Dialect::Sqlite => format!(
                "json_each(CASE WHEN {alias}.type = 'object' THEN {alias}.value ELSE '{{}}' END, {key_path}) AS {items}"
            ),
            Dialect::Postgres => format!(
                "jsonb_array_elements(CASE jsonb_typeof({alias}.value #> {key_path}) WHEN 'array' THEN {alias}.value #> {key_path} ELSE jsonb_build_array({alias}.value #> {key_path}) END) AS {items}(value)"
            ),
        }
    }

    /// Whether a row's value is an object.
    fn is_object(&self, alias: &str) -> String {
        match self.dialect {
            Dialect::Sqlite => format!("{alias}.type = 'object'"),
            Dialect::Postgres => format!("jsonb_typeof({alias}.value) = 'object'"),
        }
    }

    /// Whether anything inside the JSON `json` (itself included) is present: a
    /// scalar that is not null and not an empty string.
    fn present_inside(&mut self, json: &str) -> String {
        match self.dialect {
            Dialect::Sqlite => {
                let t = self.alias();
                format!(
                    "EXISTS (SELECT 1 FROM json_tree({json}) AS {t} WHERE {t}.type NOT IN ('null', 'object', 'array') AND NOT ({t}.type = 'text' AND {t}.atom = ''))"
                )
            }
            Dialect::Postgres => format!(
                "COALESCE(jsonb_path_exists({json}, 'strict $.** ? (@.type() == \"number\" || @.type() == \"boolean\" || (@.type() == \"string\" && @ != \"\"))'), FALSE)"
            ),
        }
    }

    fn filter(&mut self, f: &Filter, scope: &Scope<'r>) -> Option<String> {
        match f {
            Filter::And(parts) | Filter::Or(parts) => {
                let joiner = if matches!(f, Filter::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                let parts: Option<Vec<String>> =
                    parts.iter().map(|p| self.filter(p, scope)).collect();
                Some(format!("({})", parts?.join(joiner)))
            }
            Filter::Not(inner) => Some(format!("(NOT {})", self.filter(inner, scope)?)),
            Filter::Present(path) => {
                let Some(place) = self.place(scope, path) else {
                    return Some(self.never());
                };
                if place.sub.is_none() && place.attr.is_complex() {
                    // A complex value is present when anything in it is.
                    return Some(self.present_anywhere(&place.root, &place.path));
                }
                Some(self.any_leaf(&place, LeafPredicate::Present))
            }
            Filter::Compare(path, op, value) => {
                let Some(place) = self.place(scope, path) else {
                    return Some(self.never());
                };
                let def = match place.sub {
                    Some(sub) => sub,
                    None if place.attr.is_complex() => {
                        place.attr.sub_attribute("value").unwrap_or(place.attr)
                    }
                    None => place.attr,
                };
                match (op, value) {
                    (CompareOp::Eq, CompValue::Null) => Some(format!(
                        "(NOT {})",
                        self.any_leaf(&place, LeafPredicate::Present)
                    )),
                    (CompareOp::Ne, CompValue::Null) => {
                        Some(self.any_leaf(&place, LeafPredicate::Present))
                    }
                    (CompareOp::Ne, _) => {
                        let test = test(def, CompareOp::Eq, value)?;
                        Some(format!(
                            "(NOT {})",
                            self.any_leaf(&place, LeafPredicate::Test(test))
                        ))
                    }
                    (op, _) => {
                        let test = test(def, *op, value)?;
                        Some(self.any_leaf(&place, LeafPredicate::Test(test)))
                    }
                }
            }
            Filter::ValuePath(path, inner) => {
                if matches!(scope, Scope::Element { .. }) || path.sub_attr().is_some() {
                    return Some(self.never());
                }
                let Some(place) = self.place(scope, path) else {
                    return Some(self.never());
                };
                if !place.attr.is_complex() {
                    return Some(self.never());
                }
                let json_path = self.json_path(&place.path);
                let alias = self.alias();
                let element = format!("{alias}.value");
                let inner_scope = Scope::Element {
                    attr: place.attr,
                    value: element,
                };
                let inner = self.filter(inner, &inner_scope)?;
                // Each value of a list, or the one value of a single complex attribute.
                let rows = self.rows(
                    &place.root,
                    &json_path,
                    place.attr.is_multi_valued(),
                    &alias,
                );
                let object = self.is_object(&alias);
                Some(format!(
                    "EXISTS (SELECT 1 FROM {rows} WHERE {object} AND {inner})"
                ))
            }
        }
    }

    /// Resolves a path as the evaluator does; `None` when it names nothing a filter
    /// may see (undefined, or never returned).
    fn place(&self, scope: &Scope<'r>, path: &AttrPath) -> Option<Place<'r>> {
        let (attr, sub, root, keys) = match scope {
            Scope::Resource => {
                let found = self.schema.attribute(path.schema(), path.name())?;
                let sub = match path.sub_attr() {
                    Some(name) => Some(found.attribute.sub_attribute(name)?),
                    None => None,
                };
                let mut keys = Vec::new();
                if found.extension {
                    keys.push(found.schema.to_owned());
                }
                keys.push(found.attribute.name().to_owned());
                (found.attribute, sub, self.column.to_owned(), keys)
            }
            Scope::Element {
                attr: parent,
                value,
            } => {
                if path.sub_attr().is_some() {
                    return None;
                }
                let attr = parent.sub_attribute(path.name())?;
                (attr, None, value.clone(), vec![attr.name().to_owned()])
            }
        };
        if attr.returned() == Returned::Never
            || sub.is_some_and(|s| s.returned() == Returned::Never)
        {
            return None;
        }
        let leaf = match sub {
            Some(sub) => Some(sub.name().to_owned()),
            None if attr.is_complex() && attr.sub_attribute("value").is_some() => {
                Some("value".to_owned())
            }
            None => None,
        };
        Some(Place {
            attr,
            sub,
            root,
            path: keys,
            leaf,
        })
    }

    /// Whether some leaf value of `place` satisfies `pred`. A leaf list (a
    /// multi-valued attribute's values, or a sub-attribute holding a list) matches
    /// when any of its items does.
    fn any_leaf(&mut self, place: &Place<'_>, pred: LeafPredicate) -> String {
        let path = self.json_path(&place.path);
        let values = self.alias();
        let check = match &place.leaf {
            Some(key) => {
                let key_path = self.json_path(std::slice::from_ref(key));
                let items = self.alias();
                let rows = self.leaf_rows(&values, &key_path, &items);
                let check = self.predicate(&items, &pred);
                format!("EXISTS (SELECT 1 FROM {rows} WHERE {check})")
            }
            None => self.predicate(&values, &pred),
        };
        // Each value of a multi-valued attribute, or the one value of another.
        let rows = self.rows(&place.root, &path, place.attr.is_multi_valued(), &values);
        format!("EXISTS (SELECT 1 FROM {rows} WHERE {check})")
    }

    /// Whether anything at `keys` under `root` is present (RFC 7644 §3.4.2.2 `pr`:
    /// a value that is not null, not an empty string, and, for a list or object,
    /// holds such a value somewhere).
    fn present_anywhere(&mut self, root: &str, keys: &[String]) -> String {
        let path = self.json_path(keys);
        match self.dialect {
            Dialect::Sqlite => {
                let t = self.alias();
                format!(
                    "EXISTS (SELECT 1 FROM json_tree({root}, {path}) AS {t} WHERE {t}.type NOT IN ('null', 'object', 'array') AND NOT ({t}.type = 'text' AND {t}.atom = ''))"
                )
            }
            Dialect::Postgres => self.present_inside(&format!("({root} #> {path})")),
        }
    }

    /// A predicate on the value of the row `row`: two-valued, and never casting a
    /// value of another type.
    fn predicate(&mut self, row: &str, pred: &LeafPredicate) -> String {
        match self.dialect {
            Dialect::Sqlite => self.sqlite_predicate(row, pred),
            Dialect::Postgres => self.postgres_predicate(row, pred),
        }
    }

    fn sqlite_predicate(&mut self, row: &str, pred: &LeafPredicate) -> String {
        let value = format!("{row}.value");
        let kind = format!("{row}.type");
        let atom = format!("{row}.atom");
        match pred {
            LeafPredicate::Present => {
                // A leaf may itself be an object (a complex value compared whole).
                let inside = self.present_inside(&value);
                format!(
                    "(({kind} NOT IN ('null', 'object', 'array') AND NOT ({kind} = 'text' AND {atom} = '')) OR ({kind} IN ('object', 'array') AND {inside}))"
                )
            }
            LeafPredicate::Test(Test::Never) => "0".to_owned(),
            LeafPredicate::Test(Test::Bool(b)) => {
                format!("{kind} = '{}'", if *b { "true" } else { "false" })
            }
            LeafPredicate::Test(Test::Number(op, n)) => {
                let Some(sql_op) = ordering(*op) else {
                    return "0".to_owned();
                };
                let p = self.bind(Param::Real(*n));
                format!("({kind} IN ('integer', 'real') AND {atom} {sql_op} {p})")
            }
            LeafPredicate::Test(Test::Time(op, t)) => {
                let Some(sql_op) = ordering(*op) else {
                    return "0".to_owned();
                };
                let p = self.bind(Param::Text(t.clone()));
                format!("({kind} = 'text' AND {atom} {sql_op} {p})")
            }
            LeafPredicate::Test(Test::Text(op, s)) => {
                let p = self.bind(Param::Text(s.clone()));
                let cond = match op {
                    CompareOp::Co => format!("instr({atom}, {p}) > 0"),
                    CompareOp::Sw => format!("substr({atom}, 1, length({p})) = {p}"),
                    CompareOp::Ew => format!(
                        "length({atom}) >= length({p}) AND substr({atom}, length({atom}) - length({p}) + 1) = {p}"
                    ),
                    op => match ordering(*op) {
                        Some(sql_op) => format!("{atom} {sql_op} {p}"),
                        None => return "0".to_owned(),
                    },
                };
                format!("({kind} = 'text' AND {cond})")
            }
        }
    }

    /// PostgreSQL: every typed comparison sits in a `CASE` on the value's type, so no
    /// cast ever meets a value of another type.
    fn postgres_predicate(&mut self, row: &str, pred: &LeafPredicate) -> String {
        let value = format!("{row}.value");
        let kind = format!("jsonb_typeof({value})");
        let text = format!("({value} #>> '{{}}')");
        match pred {
            LeafPredicate::Present => {
                let inside = self.present_inside(&value);
                format!(
                    "(CASE {kind} WHEN 'string' THEN {text} <> '' WHEN 'number' THEN TRUE WHEN 'boolean' THEN TRUE WHEN 'object' THEN {inside} WHEN 'array' THEN {inside} ELSE FALSE END)"
                )
            }
            LeafPredicate::Test(Test::Never) => "FALSE".to_owned(),
            LeafPredicate::Test(Test::Bool(b)) => format!(
                "COALESCE({kind} = 'boolean' AND {value} = '{}'::jsonb, FALSE)",
                if *b { "true" } else { "false" }
            ),
            LeafPredicate::Test(Test::Number(op, n)) => {
                let Some(sql_op) = ordering(*op) else {
                    return "FALSE".to_owned();
                };
                let p = self.bind(Param::Real(*n));
                format!(
                    "(CASE WHEN {kind} = 'number' THEN {text}::float8 {sql_op} {p} ELSE FALSE END)"
                )
            }
            LeafPredicate::Test(Test::Time(op, t)) => {
                let Some(sql_op) = ordering(*op) else {
                    return "FALSE".to_owned();
                };
                let p = self.bind(Param::Text(t.clone()));
                format!(
                    "(CASE WHEN {kind} = 'string' THEN {text} COLLATE \"C\" {sql_op} {p} ELSE FALSE END)"
                )
            }
            LeafPredicate::Test(Test::Text(op, s)) => {
                let p = self.bind(Param::Text(s.clone()));
                let cond = match op {
                    CompareOp::Co => format!("strpos({text}, {p}) > 0"),
                    CompareOp::Sw => format!("starts_with({text}, {p})"),
                    CompareOp::Ew => format!("right({text}, length({p})) = {p}"),
                    op => match ordering(*op) {
                        Some(sql_op) => format!("{text} COLLATE \"C\" {sql_op} {p}"),
                        None => return "FALSE".to_owned(),
                    },
                };
                format!("(CASE WHEN {kind} = 'string' THEN {cond} ELSE FALSE END)")
            }
        }
    }
}

enum LeafPredicate {
    Present,
    Test(Test),
}

/// The SQL operator for an ordering or equality.
fn ordering(op: CompareOp) -> Option<&'static str> {
    Some(match op {
        CompareOp::Eq => "=",
        CompareOp::Ne => "<>",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        _ => return None,
    })
}

/// The comparison a literal makes with values of `def`, read as the evaluator reads
/// it; `None` for what the comparison document cannot answer (a substring test on a
/// dateTime, which compares the text as sent): that part becomes the residual.
fn test(def: &Attribute, op: CompareOp, expected: &CompValue) -> Option<Test> {
    Some(match def.attr_type() {
        AttributeType::Boolean => match comp_bool(expected) {
            Some(b) if op == CompareOp::Eq => Test::Bool(b),
            _ => Test::Never,
        },
        AttributeType::Integer | AttributeType::Decimal => match comp_f64(expected) {
            Some(n) => Test::Number(op, n),
            None => Test::Never,
        },
        AttributeType::DateTime if op.is_substring() => return None,
        AttributeType::DateTime => match expected.as_str().and_then(parse_datetime) {
            Some(t) => Test::Time(op, instant(&t)),
            None => Test::Never,
        },
        AttributeType::Complex => Test::Never,
        _ => {
            let text = match expected {
                CompValue::String(s) => s.clone(),
                CompValue::Number(n) => n.to_string(),
                CompValue::Bool(b) => b.to_string(),
                CompValue::Null => return Some(Test::Never),
            };
            Test::Text(op, fold(def, &text))
        }
    })
}

fn comp_bool(v: &CompValue) -> Option<bool> {
    match v {
        CompValue::Bool(b) => Some(*b),
        CompValue::String(s) => parse_bool(s),
        _ => None,
    }
}

fn comp_f64(v: &CompValue) -> Option<f64> {
    match v {
        CompValue::Number(n) => n.as_f64(),
        CompValue::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An `ORDER BY` list that orders rows as scimkit's in-memory sort does
/// ([`compare_for_sort`](scimkit::store::compare_for_sort), then `id`).
#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    /// The `ORDER BY` list (without the keywords), ending with the id column.
    pub sql: String,
    /// The values of its placeholders, numbered after `first_param - 1` others.
    pub params: Vec<Param>,
}

/// Orders resources of `schema` as `sort` asks, the way scimkit's in-memory sort
/// does: by type (booleans, then numbers, then dateTimes, then text), then value
/// (text in byte order, already folded unless case-exact), a multi-valued attribute
/// by its primary value or else its first, resources without a value last in
/// ascending order and first in descending, and ties by `id_column` ascending.
/// Placeholders start at `first_param` (one more than the `WHERE` clause used).
///
/// Paging (RFC 7644 §3.4.2.4) follows: without a residual, `LIMIT count OFFSET
/// startIndex - 1` on this order, and `totalResults` from `COUNT(*)` with the same
/// `WHERE`; with a residual, page after evaluating it on the ordered rows.
///
/// ```
/// use scimkit::{Registry, SortOrder, path::AttrPath, store::Sort};
/// use scimkit_sql::{Dialect, order_by};
///
/// let registry = Registry::core();
/// let users = registry.resource_type("User").ok_or("no User type")?;
/// let sort = Sort { by: AttrPath::parse("emails.value")?, order: SortOrder::Descending };
/// let order = order_by(&sort, &users, "cmp", "id", Dialect::Sqlite, 1);
/// assert!(order.sql.ends_with("id ASC"));
/// assert_eq!(order.params.len(), 2); // the paths to `emails` and to `value`
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn order_by(
    sort: &scimkit::store::Sort,
    schema: &ResourceSchema<'_>,
    column: &str,
    id_column: &str,
    dialect: Dialect,
    first_param: usize,
) -> OrderBy {
    let mut w = Writer {
        schema,
        column,
        dialect,
        params: Vec::new(),
        aliases: 0,
    };
    // Placeholders continue the WHERE clause's numbering.
    let offset = first_param.saturating_sub(1);
    let keys = w.sort_keys(sort);
    let dir = match sort.order {
        scimkit::SortOrder::Descending => "DESC",
        _ => "ASC",
    };
    let mut sql = keys
        .iter()
        .map(|k| format!("{k} {dir}"))
        .collect::<Vec<_>>();
    sql.push(match dialect {
        Dialect::Sqlite => format!("{id_column} ASC"),
        // Ids compare in byte order, as Rust compares them.
        Dialect::Postgres => format!("{id_column} COLLATE \"C\" ASC"),
    });
    let mut sql = sql.join(", ");
    if offset > 0 {
        sql = renumber(&sql, dialect, offset, w.params.len());
    }
    OrderBy {
        sql,
        params: w.params,
    }
}

/// Shifts placeholders `?n`/`$n` by `offset`, highest first so none is shifted twice.
fn renumber(sql: &str, dialect: Dialect, offset: usize, count: usize) -> String {
    let mark = match dialect {
        Dialect::Sqlite => "?",
        Dialect::Postgres => "$",
    };
    let mut out = sql.to_owned();
    for n in (1..=count).rev() {
        out = replace_placeholder(&out, mark, n, n + offset);
    }
    out
}

/// Replaces the placeholder `mark n` (not followed by another digit) with `mark m`.
fn replace_placeholder(sql: &str, mark: &str, n: usize, m: usize) -> String {
    let from = format!("{mark}{n}");
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(i) = rest.find(&from) {
        let after = &rest[i + from.len()..];
        out.push_str(&rest[..i]);
        if after.starts_with(|c: char| c.is_ascii_digit()) {
            out.push_str(&from);
        } else {
            out.push_str(&format!("{mark}{m}"));
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

impl Writer<'_, '_> {
    /// The sort keys, most significant first: whether the value is missing, its
    /// type's rank, then its value (one key per SQL type in PostgreSQL).
    fn sort_keys(&mut self, sort: &scimkit::store::Sort) -> Vec<String> {
        let Some(place) = self.place(&Scope::Resource, &sort.by) else {
            return Vec::new();
        };
        let def = match place.sub {
            Some(sub) => sub,
            None if place.attr.is_complex() => match place.attr.sub_attribute("value") {
                Some(v) => v,
                None => return Vec::new(),
            },
            None => place.attr,
        };
        let leaf = self.sort_leaf(&place);
        let rank_of_type = match def.attr_type() {
            AttributeType::Boolean => ("boolean", 0),
            AttributeType::Integer | AttributeType::Decimal => ("number", 1),
            AttributeType::DateTime => ("string", 2),
            _ => ("string", 3),
        };
        match self.dialect {
            Dialect::Sqlite => {
                let kind = format!("json_type({leaf})");
                let typed = match rank_of_type.0 {
                    "boolean" => format!("{kind} IN ('true', 'false')"),
                    "number" => format!("{kind} IN ('integer', 'real')"),
                    _ => format!("{kind} = 'text'"),
                };
                let rank = format!(
                    "(CASE WHEN {leaf} IS NULL OR {kind} = 'null' THEN NULL WHEN {typed} THEN {} ELSE 3 END)",
                    rank_of_type.1
                );
                let value = format!("(CASE WHEN {typed} THEN {leaf} ->> '$' ELSE {leaf} END)");
                vec![format!("({rank} IS NULL)"), rank, value]
            }
            Dialect::Postgres => {
                let kind = format!("jsonb_typeof({leaf})");
                let typed = format!("{kind} = '{}'", rank_of_type.0);
                let rank = format!(
                    "(CASE WHEN {leaf} IS NULL OR {kind} = 'null' THEN NULL WHEN {typed} THEN {} ELSE 3 END)",
                    rank_of_type.1
                );
                let boolean = format!(
                    "(CASE WHEN {kind} = 'boolean' AND {typed} THEN ({leaf} #>> '{{}}')::boolean END)"
                );
                let number = format!(
                    "(CASE WHEN {kind} = 'number' AND {typed} THEN ({leaf} #>> '{{}}')::float8 END)"
                );
                let text = format!(
                    "(CASE WHEN {typed} THEN {leaf} #>> '{{}}' ELSE {leaf}::text END) COLLATE \"C\""
                );
                vec![format!("({rank} IS NULL)"), rank, boolean, number, text]
            }
        }
    }

    /// The JSON of the value a sort compares: the leaf of the primary value of a
    /// multi-valued attribute (else its first), or of the attribute's one value.
    fn sort_leaf(&mut self, place: &Place<'_>) -> String {
        let path = self.json_path(&place.path);
        let root = &place.root;
        let element = match (self.dialect, place.attr.is_multi_valued()) {
            (Dialect::Sqlite, true) => {
                let j = self.alias();
                format!(
                    "(SELECT {root} -> {j}.fullkey FROM json_each({root}, {path}) AS {j} \
                     ORDER BY (CASE WHEN {j}.type = 'object' THEN (CASE WHEN json_type({j}.value, '$.\"primary\"') = 'true' THEN 0 ELSE 1 END) ELSE 1 END), {j}.key LIMIT 1)"
                )
            }
            (Dialect::Sqlite, false) => format!("({root} -> {path})"),
            (Dialect::Postgres, true) => {
                let j = self.alias();
                format!(
                    "(SELECT {j}.value FROM jsonb_array_elements(CASE WHEN jsonb_typeof({root} #> {path}) = 'array' THEN {root} #> {path} ELSE '[]'::jsonb END) WITH ORDINALITY AS {j}(value, i) \
                     ORDER BY (CASE WHEN jsonb_typeof({j}.value) = 'object' AND {j}.value -> 'primary' = 'true'::jsonb THEN 0 ELSE 1 END), {j}.i LIMIT 1)"
                )
            }
            (Dialect::Postgres, false) => format!("({root} #> {path})"),
        };
        match &place.leaf {
            Some(key) => {
                let key_path = self.json_path(std::slice::from_ref(key));
                match self.dialect {
                    Dialect::Sqlite => format!("({element} -> {key_path})"),
                    Dialect::Postgres => format!("({element} #> {key_path})"),
                }
            }
            None => element,
        }
    }
}
