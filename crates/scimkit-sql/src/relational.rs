//! Filters and sorts as SQL over a host's own tables: a [`Mapping`] from SCIM
//! attributes to columns, declared and checked once.
//!
//! A host whose users already live in `users` and `user_emails` tables maps each
//! attribute it keeps to a column (single-valued attributes and sub-attributes of
//! single-valued complex attributes, extensions included) or to a child table joined
//! by key (multi-valued attributes). [`Mapping::translate`] then writes a `WHERE`
//! condition on those tables that selects exactly what
//! [`Filter::matches`](scimkit::filter::Filter::matches) selects on the resources the
//! host builds from the same rows, and [`Mapping::order_by`] an `ORDER BY` that orders
//! them as scimkit's in-memory sort does.
//!
//! # What the columns hold
//! The comparison follows the attribute's type in the schema (RFC 7643 §2.3):
//!
//! | type | SQLite | PostgreSQL |
//! |---|---|---|
//! | string, reference, binary | `TEXT` | `text` / `varchar` (deterministic collation) |
//! | boolean | `INTEGER` 1 or 0 | `boolean` |
//! | integer, decimal | `INTEGER` / `REAL` | any numeric type (compared as `float8`, as the evaluator compares `f64`) |
//! | dateTime | `TEXT` written by [`instant_text`](crate::instant_text) | `timestamptz` |
//!
//! `NULL` is an absent value. A complex value exists when one of its mapped columns is
//! not `NULL`, and it holds exactly its mapped sub-attributes: build resources from
//! the rows by that rule and the two sides agree.
//!
//! # Case
//! A string attribute that is not `caseExact` compares ignoring case, by one rule:
//! Rust's `str::to_lowercase`. SQL's `lower()` is not that rule (SQLite's folds ASCII
//! only; the Kelvin sign `K` folds to `k` in Rust), so such an attribute is compared
//! in SQL only through a *folded* column the host writes with
//! [`fold_text`](crate::fold_text) next to the original (or an expression the host
//! knows to be equal, such as `lower(col)` on ASCII-only data). Without one, the
//! comparison is left to the residual (or refused, see [`Unmapped`]); `pr` and
//! case-exact attributes need no folded column.

use std::fmt;

use scimkit::Error;
use scimkit::filter::{CompValue, CompareOp, Filter};
use scimkit::path::AttrPath;
use scimkit::schema::{Attribute, AttributeType, ResourceSchema, Returned};
use scimkit::store::Sort;

use crate::Dialect;
use crate::params::{Param, Params};
use crate::text::SqlPiece;
use crate::translate::{OrderBy, Ph, Test, TextCond, Translation, ordering, test};

/// A column of the host's table, and the column (or expression) holding its
/// case-folded text, for string attributes compared ignoring case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    name: String,
    folded: Option<String>,
}

impl Column {
    /// The column `name`, an SQL identifier the host trusts (`[A-Za-z_][A-Za-z0-9_]*`,
    /// checked when the mapping is built).
    pub fn new(name: impl Into<String>) -> Self {
        Column {
            name: name.into(),
            folded: None,
        }
    }

    /// The column holding [`fold_text`](crate::fold_text) of this one's value, which
    /// case-insensitive comparisons and sorts use.
    #[must_use]
    pub fn folded(mut self, name: impl Into<String>) -> Self {
        self.folded = Some(name.into());
        self
    }
}

impl From<&str> for Column {
    fn from(name: &str) -> Self {
        Column::new(name)
    }
}

impl From<String> for Column {
    fn from(name: String) -> Self {
        Column::new(name)
    }
}

/// A child table holding the values of a multi-valued attribute, one row each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    table: String,
    key: String,
    order: Option<String>,
    columns: Vec<(String, Column)>,
}

impl Child {
    /// The table `table`, whose column `key` holds the id of the resource a row
    /// belongs to.
    pub fn new(table: impl Into<String>, key: impl Into<String>) -> Self {
        Child {
            table: table.into(),
            key: key.into(),
            order: None,
            columns: Vec::new(),
        }
    }

    /// The column giving the values' order within a resource (the order the host
    /// lists them in), which sorting by this attribute needs: scimkit sorts by the
    /// primary value, or else the first.
    #[must_use]
    pub fn order(mut self, column: impl Into<String>) -> Self {
        self.order = Some(column.into());
        self
    }

    /// The column holding sub-attribute `sub` of each value (`value` for the values
    /// themselves of a multi-valued attribute that is not complex).
    #[must_use]
    pub fn column(mut self, sub: impl Into<String>, column: impl Into<Column>) -> Self {
        self.columns.push((sub.into(), column.into()));
        self
    }
}

/// What a filter that names something the mapping cannot compare gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Unmapped {
    /// The part of the filter that names it becomes the [`Translation::residual`],
    /// which the host evaluates on the rows returned (the default).
    #[default]
    Residual,
    /// 400 `invalidFilter` naming the attribute, for hosts that do not evaluate
    /// residual filters.
    Reject,
}

/// A mapping that does not fit the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError {
    path: String,
    reason: &'static str,
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot map `{}`: {}", self.path, self.reason)
    }
}

impl std::error::Error for MappingError {}

/// A column of a single-valued attribute, or of a sub-attribute of a single-valued
/// complex one, under canonical names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Leaf {
    schema: String,
    attr: String,
    sub: Option<String>,
    column: Column,
}

/// A child table under its attribute's canonical names, its sub-attribute names
/// canonical too.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MappedChild {
    schema: String,
    attr: String,
    child: Child,
}

/// Where a host keeps one resource type's attributes (see the [module
/// documentation](self)).
///
/// ```
/// use scimkit::{Registry, filter::Filter};
/// use scimkit_sql::{Child, Column, Dialect, Mapping, Param};
///
/// let registry = Registry::core();
/// let users = registry.resource_type("User").ok_or("no User type")?;
/// let mapping = Mapping::builder(&users, "users", "id")
///     .column("userName", Column::new("user_name").folded("user_name_folded"))
///     .column("externalId", "external_id")
///     .column("active", "active")
///     .child(
///         "emails",
///         Child::new("user_emails", "user_id")
///             .order("position")
///             .column("value", Column::new("value").folded("value_folded"))
///             .column("type", Column::new("type").folded("type_folded")),
///     )
///     .build()?;
/// let filter: Filter =
///     r#"emails[type eq "work" and value co "@EXAMPLE.com"] and active eq true"#.parse()?;
/// let t = mapping.translate(&filter, &users, Dialect::Sqlite)?;
/// assert!(t.sql.starts_with("EXISTS (SELECT 1 FROM user_emails AS scim_c1 WHERE scim_c1.user_id = users.id AND"));
/// // Folded as the evaluator folds, and bound, never spliced into the SQL.
/// assert_eq!(t.params, [Param::Text("work"), Param::Text("@example.com"), Param::Bool(true)]);
/// assert!(t.residual.is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    table: String,
    id: String,
    leaves: Vec<Leaf>,
    children: Vec<MappedChild>,
    unmapped: Unmapped,
}

/// Declares a [`Mapping`]; [`build`](MappingBuilder::build) checks it against the
/// schema.
#[derive(Debug)]
pub struct MappingBuilder<'s, 'r> {
    schema: &'s ResourceSchema<'r>,
    mapping: Mapping,
    error: Option<MappingError>,
}

/// Whether `name` is a plain SQL identifier.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether values of `def` are text.
fn is_text(def: &Attribute) -> bool {
    !matches!(
        def.attr_type(),
        AttributeType::Boolean
            | AttributeType::Integer
            | AttributeType::Decimal
            | AttributeType::DateTime
            | AttributeType::Complex
    )
}

impl Mapping {
    /// Starts a mapping for resources of `schema` kept in the table `table` (the
    /// name or alias the host's query gives it) with their ids in the column `id`.
    /// The aliases the SQL introduces start with `scim_`, which the table's name
    /// must not.
    pub fn builder<'s, 'r>(
        schema: &'s ResourceSchema<'r>,
        table: impl Into<String>,
        id: impl Into<String>,
    ) -> MappingBuilder<'s, 'r> {
        let mut builder = MappingBuilder {
            schema,
            mapping: Mapping {
                table: table.into(),
                id: id.into(),
                leaves: Vec::new(),
                children: Vec::new(),
                unmapped: Unmapped::default(),
            },
            error: None,
        };
        for name in [builder.mapping.table.clone(), builder.mapping.id.clone()] {
            builder.check_identifier(&name);
        }
        if builder
            .mapping
            .table
            .to_ascii_lowercase()
            .starts_with("scim_")
        {
            let table = builder.mapping.table.clone();
            builder.fail(
                &table,
                "names starting with `scim_` are the translation's aliases",
            );
        }
        let id = builder.mapping.id.clone();
        builder.column("id", id)
    }

    fn leaf(&self, schema: &str, attr: &str, sub: Option<&str>) -> Option<&Column> {
        self.leaves
            .iter()
            .find(|l| l.schema == schema && l.attr == attr && l.sub.as_deref() == sub)
            .map(|l| &l.column)
    }

    fn child(&self, schema: &str, attr: &str) -> Option<&Child> {
        self.children
            .iter()
            .find(|c| c.schema == schema && c.attr == attr)
            .map(|c| &c.child)
    }

    /// Translates `filter` into a condition on the mapped tables (RFC 7644
    /// §3.4.2.2), for `SELECT … FROM {table} WHERE {sql}`.
    ///
    /// Every value is a bound parameter; every comparison is two-valued, so `ne`,
    /// `not` and absent values mean what they mean in
    /// [`Filter::matches`](scimkit::filter::Filter::matches). What the mapping
    /// cannot compare becomes the residual, or with [`Unmapped::Reject`] a 400
    /// `invalidFilter`.
    ///
    /// # Errors
    /// Only with [`Unmapped::Reject`]: 400 `invalidFilter` naming what cannot be
    /// compared.
    pub fn translate(
        &self,
        filter: &Filter,
        schema: &ResourceSchema<'_>,
        dialect: Dialect,
    ) -> Result<Translation, Error> {
        let mut w = Writer {
            m: self,
            schema,
            dialect,
            out: String::with_capacity(256),
            params: Params::new(),
            aliases: 0,
            why: None,
        };
        let parts: &[Filter] = match filter {
            Filter::And(parts) => parts,
            f => std::slice::from_ref(f),
        };
        let mut residual = Vec::new();
        let mut written = 0;
        for part in parts {
            let (text, params) = (w.out.len(), w.params.mark());
            if written > 0 {
                w.out.push_str(" AND ");
            }
            if w.filter(part, Scope::Resource) {
                written += 1;
                continue;
            }
            if self.unmapped == Unmapped::Reject {
                let why = w.why.take().unwrap_or_default();
                return Err(Error::invalid_filter(format!(
                    "this server cannot evaluate {why}; remove that part of the filter"
                )));
            }
            w.out.truncate(text);
            w.params.rewind(params);
            residual.push(part.clone());
        }
        if written == 0 {
            w.out.push_str(w.always());
        }
        let residual = match residual.len() {
            0 => None,
            1 => residual.pop(),
            _ => Some(Filter::And(residual)),
        };
        Ok(Translation {
            sql: w.out.into(),
            params: w.params,
            residual,
        })
    }

    /// An `ORDER BY` list (without the keywords) that orders rows as scimkit's
    /// in-memory sort does ([`compare_for_sort`](scimkit::store::compare_for_sort),
    /// then id): resources without a value last in ascending order and first in
    /// descending, text in byte order (folded unless `caseExact`), a multi-valued
    /// attribute by its primary value or else its first. It binds no parameters.
    ///
    /// `None` when the mapping cannot order by `sort` in SQL: the attribute has no
    /// column, a case-insensitive one has no folded column, or a child table has no
    /// [`order`](Child::order) column. Sort the rows in memory then, or refuse.
    ///
    /// ```
    /// use scimkit::{Registry, SortOrder, path::AttrPath, store::Sort};
    /// use scimkit_sql::{Column, Dialect, Mapping};
    ///
    /// let registry = Registry::core();
    /// let users = registry.resource_type("User").ok_or("no User type")?;
    /// let mapping = Mapping::builder(&users, "users", "id")
    ///     .column("userName", Column::new("user_name").folded("user_name_folded"))
    ///     .build()?;
    /// let sort = Sort { by: AttrPath::parse("userName")?, order: SortOrder::Ascending };
    /// let order = mapping.order_by(&sort, &users, Dialect::Postgres).ok_or("in memory")?;
    /// assert_eq!(
    ///     order.sql,
    ///     r#"(users.user_name_folded IS NULL) ASC, users.user_name_folded COLLATE "C" ASC, users.id COLLATE "C" ASC"#
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn order_by(
        &self,
        sort: &Sort,
        schema: &ResourceSchema<'_>,
        dialect: Dialect,
    ) -> Option<OrderBy> {
        let dir = match sort.order {
            scimkit::SortOrder::Descending => "DESC",
            _ => "ASC",
        };
        let (table, id) = (&self.table, &self.id);
        let tie = match dialect {
            Dialect::Sqlite => format!("{table}.{id} COLLATE BINARY ASC"),
            Dialect::Postgres => format!("{table}.{id} COLLATE \"C\" ASC"),
        };
        let key = match self.sort_key(sort, schema, dialect)? {
            Some(key) => key,
            // Every resource sorts as missing: by id alone.
            None => return Some(OrderBy { sql: tie }),
        };
        Some(OrderBy {
            sql: format!(
                "({} IS NULL) {dir}, {} {dir}, {tie}",
                key.value, key.ordered
            ),
        })
    }

    /// The SQL value `sort` orders by: `Some(None)` when every resource sorts as
    /// missing (an undefined or never-returned attribute), `None` when it cannot be
    /// written.
    fn sort_key(
        &self,
        sort: &Sort,
        schema: &ResourceSchema<'_>,
        dialect: Dialect,
    ) -> Option<Option<SortKey>> {
        let by = &sort.by;
        let Some(found) = schema.attribute(by.schema(), by.name()) else {
            return Some(None);
        };
        let attr = found.attribute;
        if attr.returned() == Returned::Never {
            return Some(None);
        }
        let def = match (by.sub_attr(), attr.is_complex()) {
            (Some(sub), _) => match attr.sub_attribute(sub) {
                Some(def) if def.returned() != Returned::Never => def,
                _ => return Some(None),
            },
            (None, true) => match attr.sub_attribute("value") {
                Some(def) => def,
                None => return Some(None),
            },
            (None, false) => attr,
        };
        let leaf = attr.is_complex().then(|| def.name());
        let case_exact = !is_text(def) || def.compares_case_exact();
        let pick = |column: &Column| {
            if case_exact {
                Some(column.name.clone())
            } else {
                column.folded.clone()
            }
        };
        let value = if attr.is_multi_valued() {
            let child = self.child(found.schema, attr.name())?;
            let order = child.order.as_ref()?;
            let column = child_column(child, leaf.unwrap_or("value"))?;
            let column = pick(column)?;
            let primary = match child_column(child, "primary") {
                Some(p) if attr.is_complex() => {
                    format!("(CASE WHEN scim_s.{} THEN 0 ELSE 1 END), ", p.name)
                }
                _ => String::new(),
            };
            format!(
                "(SELECT scim_s.{column} FROM {} AS scim_s WHERE scim_s.{} = {}.{} ORDER BY {primary}scim_s.{order} LIMIT 1)",
                child.table, child.key, self.table, self.id
            )
        } else {
            let column = self.leaf(found.schema, attr.name(), leaf)?;
            format!("{}.{}", self.table, pick(column)?)
        };
        let ordered = match (dialect, def.attr_type()) {
            (Dialect::Postgres, AttributeType::Integer | AttributeType::Decimal) => {
                format!("CAST({value} AS float8)")
            }
            (_, AttributeType::Boolean | AttributeType::Integer | AttributeType::Decimal)
            | (Dialect::Postgres, AttributeType::DateTime) => value.clone(),
            (Dialect::Sqlite, _) => format!("{value} COLLATE BINARY"),
            (Dialect::Postgres, _) => format!("{value} COLLATE \"C\""),
        };
        Some(Some(SortKey { value, ordered }))
    }
}

/// A sort's SQL value, and that value as `ORDER BY` compares it.
struct SortKey {
    value: String,
    ordered: String,
}

fn child_column<'c>(child: &'c Child, sub: &str) -> Option<&'c Column> {
    child.columns.iter().find(|(s, _)| s == sub).map(|(_, c)| c)
}

impl MappingBuilder<'_, '_> {
    fn fail(&mut self, path: &str, reason: &'static str) {
        if self.error.is_none() {
            self.error = Some(MappingError {
                path: path.to_owned(),
                reason,
            });
        }
    }

    fn check_identifier(&mut self, name: &str) {
        if !is_identifier(name) {
            self.fail(name, "not a plain SQL identifier ([A-Za-z_][A-Za-z0-9_]*)");
        }
    }

    fn check_column(&mut self, path: &str, def: &Attribute, column: &Column) {
        self.check_identifier(&column.name);
        if let Some(folded) = &column.folded {
            self.check_identifier(folded);
            if !is_text(def) || def.compares_case_exact() {
                self.fail(
                    path,
                    "a folded column is for string attributes that are not caseExact",
                );
            }
        }
    }

    /// Maps a single-valued attribute (`userName`, an extension's
    /// `urn:…:User:employeeNumber`) or a sub-attribute of a single-valued complex
    /// one (`name.givenName`, `meta.created`) to a column of the table.
    #[must_use]
    pub fn column(mut self, path: &str, column: impl Into<Column>) -> Self {
        let column = column.into();
        let Some((found, sub)) = self.schema.resolve(path) else {
            self.fail(path, "the schema has no such attribute");
            return self;
        };
        let attr = found.attribute;
        let def = sub.unwrap_or(attr);
        if attr.is_multi_valued() {
            self.fail(path, "a multi-valued attribute maps to a child table");
            return self;
        }
        if def.is_complex() {
            self.fail(path, "a complex attribute maps through its sub-attributes");
            return self;
        }
        self.check_column(path, def, &column);
        let leaf = Leaf {
            schema: found.schema.to_owned(),
            attr: attr.name().to_owned(),
            sub: sub.map(|s| s.name().to_owned()),
            column,
        };
        if self
            .mapping
            .leaf(&leaf.schema, &leaf.attr, leaf.sub.as_deref())
            .is_some()
        {
            self.fail(path, "mapped twice");
        }
        self.mapping.leaves.push(leaf);
        self
    }

    /// Maps a multi-valued attribute (`emails`, `members`) to a child table.
    #[must_use]
    pub fn child(mut self, path: &str, child: Child) -> Self {
        let Some((found, None)) = self.schema.resolve(path) else {
            self.fail(path, "the schema has no such attribute");
            return self;
        };
        let attr = found.attribute;
        if !attr.is_multi_valued() {
            self.fail(path, "only a multi-valued attribute maps to a child table");
            return self;
        }
        let mut canonical = Child {
            columns: Vec::new(),
            ..child.clone()
        };
        for name in [Some(&child.table), Some(&child.key), child.order.as_ref()]
            .into_iter()
            .flatten()
        {
            self.check_identifier(name);
        }
        for (sub, column) in child.columns {
            let def = if attr.is_complex() {
                attr.sub_attribute(&sub)
            } else {
                // The values themselves of a simple multi-valued attribute.
                sub.eq_ignore_ascii_case("value").then_some(attr)
            };
            let Some(def) = def else {
                self.fail(path, "a child column names no sub-attribute of it");
                return self;
            };
            self.check_column(path, def, &column);
            let name = if attr.is_complex() {
                def.name()
            } else {
                "value"
            };
            if child_column(&canonical, name).is_some() {
                self.fail(path, "a sub-attribute is mapped twice");
            }
            canonical.columns.push((name.to_owned(), column));
        }
        if self.mapping.child(found.schema, attr.name()).is_some() {
            self.fail(path, "mapped twice");
        }
        self.mapping.children.push(MappedChild {
            schema: found.schema.to_owned(),
            attr: attr.name().to_owned(),
            child: canonical,
        });
        self
    }

    /// What a filter naming an attribute the mapping cannot compare gets
    /// ([`Unmapped::Residual`] unless set).
    #[must_use]
    pub fn unmapped(mut self, unmapped: Unmapped) -> Self {
        self.mapping.unmapped = unmapped;
        self
    }

    /// Checks the mapping: every path names an attribute of the schema, in the
    /// place it can go, once; every name is a plain identifier; folded columns only
    /// on string attributes that are not `caseExact`.
    ///
    /// # Errors
    /// The first problem found.
    pub fn build(self) -> Result<Mapping, MappingError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.mapping),
        }
    }
}

/// Where names resolve: the resource, or one value of a complex attribute.
#[derive(Clone, Copy)]
enum Scope<'r, 'm> {
    Resource,
    Element {
        attr: &'r Attribute,
        schema: &'r str,
        row: Row<'m>,
    },
}

/// Where the columns of a complex value are: a child table's row, or the
/// resource's own row.
#[derive(Clone, Copy)]
enum Row<'m> {
    Child(&'m Child, usize),
    Inline,
}

/// What a filter path names.
enum Place<'r, 'm> {
    /// Nothing a filter may see: the comparison is false.
    Nothing,
    /// Something the mapping does not cover.
    Unmapped,
    /// A leaf: the columns holding it, and where.
    Leaf {
        attr: &'r Attribute,
        sub: Option<&'r Attribute>,
        /// The schema and canonical attribute name, for the mapping's look-ups.
        key: (&'r str, &'r str),
        /// The child table, for a multi-valued attribute at the resource.
        child: Option<&'m Child>,
        /// The alias (or table) that qualifies the columns.
        row: Row<'m>,
    },
}

/// The predicate one leaf column gets.
enum LeafPredicate {
    Present,
    Test(Test),
}

struct Writer<'m, 'a, 'r> {
    m: &'m Mapping,
    schema: &'a ResourceSchema<'r>,
    dialect: Dialect,
    out: String,
    params: Params,
    aliases: usize,
    /// Why the last part could not be written.
    why: Option<String>,
}

impl<'m, 'r> Writer<'m, '_, 'r> {
    fn bind(&mut self, p: Param<'_>) -> Ph {
        crate::translate::bind(&mut self.params, self.dialect, p)
    }

    fn never(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "0",
            Dialect::Postgres => "FALSE",
        }
    }

    fn always(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "1",
            Dialect::Postgres => "TRUE",
        }
    }

    fn unmapped(&mut self, what: fmt::Arguments<'_>) -> bool {
        self.why = Some(what.to_string());
        false
    }

    /// The qualifier of a row's columns.
    fn qualifier(&self, row: Row<'_>) -> Qualifier<'m> {
        match row {
            Row::Child(_, alias) => Qualifier::Alias(alias),
            Row::Inline => Qualifier::Table(&self.m.table),
        }
    }

    /// Writes the condition for `f`; `false` when it cannot be written (the reason
    /// in `why`; the caller drops what was written).
    fn filter(&mut self, f: &Filter, scope: Scope<'r, 'm>) -> bool {
        match f {
            Filter::And(parts) | Filter::Or(parts) => {
                let joiner = if matches!(f, Filter::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                self.out.push('(');
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(joiner);
                    }
                    if !self.filter(p, scope) {
                        return false;
                    }
                }
                self.out.push(')');
                true
            }
            Filter::Not(inner) => {
                self.out.push_str("(NOT ");
                let ok = self.filter(inner, scope);
                self.out.push(')');
                ok
            }
            Filter::Present(path) => match self.place(scope, path) {
                Place::Nothing => {
                    self.out.push_str(self.never());
                    true
                }
                Place::Unmapped => self.unmapped(format_args!("`{path}`")),
                Place::Leaf {
                    attr,
                    sub,
                    key,
                    child,
                    row,
                } => self.in_rows(child, row, |w, row| {
                    if sub.is_none() && attr.is_complex() {
                        // A complex value is present when anything in it is.
                        w.any_column(attr, key, row, path, true)
                    } else {
                        w.leaf(attr, sub, key, row, path, &LeafPredicate::Present)
                    }
                }),
            },
            Filter::Compare(path, op, value) => {
                let (attr, sub, key, child, row) = match self.place(scope, path) {
                    Place::Nothing => {
                        self.out.push_str(self.never());
                        return true;
                    }
                    Place::Unmapped => return self.unmapped(format_args!("`{path}`")),
                    Place::Leaf {
                        attr,
                        sub,
                        key,
                        child,
                        row,
                    } => (attr, sub, key, child, row),
                };
                let def = match sub {
                    Some(sub) => sub,
                    None if attr.is_complex() => attr.sub_attribute("value").unwrap_or(attr),
                    None => attr,
                };
                let (negate, pred) = match (op, value) {
                    (CompareOp::Eq, CompValue::Null) => (true, LeafPredicate::Present),
                    (CompareOp::Ne, CompValue::Null) => (false, LeafPredicate::Present),
                    (CompareOp::Ne, _) => match test(def, CompareOp::Eq, value) {
                        Some(t) => (true, LeafPredicate::Test(t)),
                        None => return self.unmapped(format_args!("`{op}` on `{path}`")),
                    },
                    (op, _) => match test(def, *op, value) {
                        Some(t) => (false, LeafPredicate::Test(t)),
                        None => return self.unmapped(format_args!("`{op}` on `{path}`")),
                    },
                };
                if let LeafPredicate::Test(Test::Text(_, text) | Test::Time(_, text)) = &pred {
                    if text.contains('\0') {
                        return self.unmapped(format_args!("a value holding NUL"));
                    }
                }
                if negate {
                    self.out.push_str("(NOT ");
                }
                let leaf_sub = match sub {
                    Some(sub) => Some(sub),
                    None if attr.is_complex() => attr.sub_attribute("value"),
                    None => None,
                };
                let ok = self.in_rows(child, row, |w, row| {
                    if def.is_complex() {
                        match pred {
                            // `eq null` / `ne null` on a complex value: whether
                            // anything in it is present.
                            LeafPredicate::Present => w.any_column(attr, key, row, path, true),
                            // Compared whole, it equals nothing.
                            LeafPredicate::Test(_) => {
                                w.out.push_str(w.never());
                                true
                            }
                        }
                    } else {
                        w.leaf(attr, leaf_sub, key, row, path, &pred)
                    }
                });
                if negate {
                    self.out.push(')');
                }
                ok
            }
            Filter::ValuePath(path, inner) => {
                if matches!(scope, Scope::Element { .. }) || path.sub_attr().is_some() {
                    self.out.push_str(self.never());
                    return true;
                }
                let (attr, key, child) = match self.place(scope, path) {
                    Place::Nothing => {
                        self.out.push_str(self.never());
                        return true;
                    }
                    Place::Unmapped => return self.unmapped(format_args!("`{path}`")),
                    Place::Leaf {
                        attr, key, child, ..
                    } => (attr, key, child),
                };
                if !attr.is_complex() {
                    self.out.push_str(self.never());
                    return true;
                }
                if let Some(child) = child {
                    let alias = self.alias();
                    self.exists(child, alias);
                    let ok = self.filter(
                        inner,
                        Scope::Element {
                            attr,
                            schema: key.0,
                            row: Row::Child(child, alias),
                        },
                    );
                    self.out.push(')');
                    return ok;
                }
                // A single complex value: it exists, and the filter holds on its
                // columns.
                self.out.push('(');
                if !self.any_column(attr, key, Row::Inline, path, false) {
                    return false;
                }
                self.out.push_str(" AND ");
                let ok = self.filter(
                    inner,
                    Scope::Element {
                        attr,
                        schema: key.0,
                        row: Row::Inline,
                    },
                );
                self.out.push(')');
                ok
            }
        }
    }

    fn alias(&mut self) -> usize {
        self.aliases += 1;
        self.aliases
    }

    /// Opens `EXISTS (SELECT 1 FROM child AS cN WHERE cN.key = table.id AND `.
    fn exists(&mut self, child: &Child, alias: usize) {
        let (table, id) = (&self.m.table, &self.m.id);
        sql!(
            self.out,
            "EXISTS (SELECT 1 FROM ",
            child.table,
            " AS scim_c",
            alias,
            " WHERE scim_c",
            alias,
            ".",
            child.key,
            " = ",
            table,
            ".",
            id,
            " AND "
        );
    }

    /// Writes `body` for the row of a single-valued attribute, or inside `EXISTS`
    /// over the rows of a child table.
    fn in_rows(
        &mut self,
        child: Option<&'m Child>,
        row: Row<'m>,
        body: impl FnOnce(&mut Self, Row<'m>) -> bool,
    ) -> bool {
        let Some(child) = child else {
            return body(self, row);
        };
        let alias = self.alias();
        self.exists(child, alias);
        let ok = body(self, Row::Child(child, alias));
        self.out.push(')');
        ok
    }

    /// Resolves a path as the evaluator does.
    fn place(&self, scope: Scope<'r, 'm>, path: &AttrPath) -> Place<'r, 'm> {
        let (attr, sub, key, child, row) = match scope {
            Scope::Resource => {
                let Some(found) = self.schema.attribute(path.schema(), path.name()) else {
                    return Place::Nothing;
                };
                let attr = found.attribute;
                let sub = match path.sub_attr() {
                    Some(name) => match attr.sub_attribute(name) {
                        Some(sub) => Some(sub),
                        None => return Place::Nothing,
                    },
                    None => None,
                };
                let key = (found.schema, attr.name());
                let child = if attr.is_multi_valued() {
                    match self.m.child(key.0, key.1) {
                        Some(child) => Some(child),
                        None => return self.hidden_or(attr, sub, Place::Unmapped),
                    }
                } else {
                    None
                };
                (attr, sub, key, child, Row::Inline)
            }
            Scope::Element {
                attr: parent,
                schema,
                row,
            } => {
                if path.sub_attr().is_some() {
                    return Place::Nothing;
                }
                let Some(sub) = parent.sub_attribute(path.name()) else {
                    return Place::Nothing;
                };
                (parent, Some(sub), (schema, parent.name()), None, row)
            }
        };
        self.hidden_or(
            attr,
            sub,
            Place::Leaf {
                attr,
                sub,
                key,
                child,
                row,
            },
        )
    }

    /// `Nothing` for a never-returned attribute, else `place`.
    fn hidden_or(
        &self,
        attr: &Attribute,
        sub: Option<&Attribute>,
        place: Place<'r, 'm>,
    ) -> Place<'r, 'm> {
        if attr.returned() == Returned::Never
            || sub.is_some_and(|s| s.returned() == Returned::Never)
        {
            Place::Nothing
        } else {
            place
        }
    }

    /// The column of sub-attribute `sub` (or of the attribute itself) in `row`.
    fn column(
        &self,
        sub: Option<&Attribute>,
        key: (&str, &str),
        row: Row<'m>,
    ) -> Option<&'m Column> {
        match row {
            Row::Child(child, _) => child_column(child, sub.map_or("value", |s| s.name())),
            Row::Inline => self.m.leaf(key.0, key.1, sub.map(|s| s.name())),
        }
    }

    /// Writes whether any mapped column of the complex value in `row` is present
    /// (`present`), or holds anything at all (the value exists).
    fn any_column(
        &mut self,
        attr: &'r Attribute,
        key: (&'r str, &'r str),
        row: Row<'m>,
        path: &AttrPath,
        present: bool,
    ) -> bool {
        let q = self.qualifier(row);
        let columns: Vec<(&Attribute, &Column)> = attr
            .sub_attributes()
            .iter()
            .filter(|s| s.returned() != Returned::Never)
            .filter_map(|s| Some((s, self.column(Some(s), key, row)?)))
            .collect();
        if columns.is_empty() {
            return self.unmapped(format_args!("`{path}`"));
        }
        self.out.push('(');
        for (i, (def, column)) in columns.into_iter().enumerate() {
            if i > 0 {
                self.out.push_str(" OR ");
            }
            let c = &column.name;
            if present && is_text(def) {
                sql!(
                    self.out,
                    "(",
                    q,
                    ".",
                    c,
                    " IS NOT NULL AND ",
                    q,
                    ".",
                    c,
                    " <> '')"
                );
            } else {
                sql!(self.out, q, ".", c, " IS NOT NULL");
            }
        }
        self.out.push(')');
        true
    }

    /// Writes a two-valued predicate on the column of one leaf.
    fn leaf(
        &mut self,
        attr: &'r Attribute,
        sub: Option<&'r Attribute>,
        key: (&'r str, &'r str),
        row: Row<'m>,
        path: &AttrPath,
        pred: &LeafPredicate,
    ) -> bool {
        let def = sub.unwrap_or(attr);
        let Some(column) = self.column(sub, key, row) else {
            return self.unmapped(format_args!("`{path}`"));
        };
        let q = self.qualifier(row);
        let test = match pred {
            LeafPredicate::Present => {
                let c = &column.name;
                if is_text(def) {
                    sql!(
                        self.out,
                        "(",
                        q,
                        ".",
                        c,
                        " IS NOT NULL AND ",
                        q,
                        ".",
                        c,
                        " <> '')"
                    );
                } else {
                    sql!(self.out, q, ".", c, " IS NOT NULL");
                }
                return true;
            }
            LeafPredicate::Test(test) => test,
        };
        let c = match test {
            Test::Text(..) if !def.compares_case_exact() => match &column.folded {
                Some(folded) => folded,
                None => {
                    return self.unmapped(format_args!(
                        "`{path}` ignoring case (its mapping has no folded column)"
                    ));
                }
            },
            _ => &column.name,
        };
        let pg = self.dialect == Dialect::Postgres;
        match test {
            Test::Never => self.out.push_str(self.never()),
            Test::Bool(b) => {
                let p = self.bind(Param::Bool(*b));
                sql!(
                    self.out,
                    "(",
                    q,
                    ".",
                    c,
                    " IS NOT NULL AND ",
                    q,
                    ".",
                    c,
                    " = ",
                    p,
                    ")"
                );
            }
            Test::Number(op, n) => match ordering(*op) {
                Some(sql_op) => {
                    let p = self.bind(Param::Real(*n));
                    if pg {
                        sql!(
                            self.out,
                            "(",
                            q,
                            ".",
                            c,
                            " IS NOT NULL AND CAST(",
                            q,
                            ".",
                            c,
                            " AS float8) ",
                            sql_op,
                            " ",
                            p,
                            ")"
                        );
                    } else {
                        sql!(
                            self.out,
                            "(",
                            q,
                            ".",
                            c,
                            " IS NOT NULL AND ",
                            q,
                            ".",
                            c,
                            " ",
                            sql_op,
                            " ",
                            p,
                            ")"
                        );
                    }
                }
                None => self.out.push_str(self.never()),
            },
            Test::Time(op, t) => match ordering(*op) {
                Some(sql_op) => {
                    if pg && !t.ends_with("000Z") {
                        // timestamptz keeps microseconds: a finer literal would be
                        // rounded, so it is compared in memory.
                        return self.unmapped(format_args!(
                            "`{path}` against an instant finer than a microsecond"
                        ));
                    }
                    let p = self.bind(Param::Text(t));
                    if pg {
                        sql!(
                            self.out,
                            "(",
                            q,
                            ".",
                            c,
                            " IS NOT NULL AND ",
                            q,
                            ".",
                            c,
                            " ",
                            sql_op,
                            " ",
                            p,
                            "::timestamptz)"
                        );
                    } else {
                        sql!(
                            self.out,
                            "(",
                            q,
                            ".",
                            c,
                            " IS NOT NULL AND ",
                            q,
                            ".",
                            c,
                            " COLLATE BINARY ",
                            sql_op,
                            " ",
                            p,
                            ")"
                        );
                    }
                }
                None => self.out.push_str(self.never()),
            },
            Test::Text(op, s) => {
                let Some(cond) = TextCond::of(*op) else {
                    self.out.push_str(self.never());
                    return true;
                };
                let p = self.bind(Param::Text(s));
                sql!(self.out, "(", q, ".", c, " IS NOT NULL AND ");
                match (cond, pg) {
                    (TextCond::Contains, false) => {
                        sql!(self.out, "instr(", q, ".", c, ", ", p, ") > 0")
                    }
                    (TextCond::Contains, true) => {
                        sql!(self.out, "strpos(", q, ".", c, ", ", p, ") > 0")
                    }
                    (TextCond::Starts, false) => {
                        sql!(
                            self.out,
                            "substr(",
                            q,
                            ".",
                            c,
                            ", 1, length(",
                            p,
                            ")) = ",
                            p
                        )
                    }
                    (TextCond::Starts, true) => {
                        sql!(self.out, "starts_with(", q, ".", c, ", ", p, ")")
                    }
                    (TextCond::Ends, false) => sql!(
                        self.out,
                        "length(",
                        q,
                        ".",
                        c,
                        ") >= length(",
                        p,
                        ") AND substr(",
                        q,
                        ".",
                        c,
                        ", length(",
                        q,
                        ".",
                        c,
                        ") - length(",
                        p,
                        ") + 1) = ",
                        p
                    ),
                    (TextCond::Ends, true) => {
                        sql!(self.out, "right(", q, ".", c, ", length(", p, ")) = ", p)
                    }
                    (TextCond::Order("="), true) => sql!(self.out, q, ".", c, " = ", p),
                    (TextCond::Order(sql_op), true) => {
                        sql!(self.out, q, ".", c, " COLLATE \"C\" ", sql_op, " ", p)
                    }
                    (TextCond::Order(sql_op), false) => {
                        sql!(self.out, q, ".", c, " COLLATE BINARY ", sql_op, " ", p)
                    }
                }
                self.out.push(')');
            }
        }
        true
    }
}

/// What qualifies a column: the table, or a child row's alias.
#[derive(Clone, Copy)]
enum Qualifier<'m> {
    Table(&'m str),
    Alias(usize),
}

impl SqlPiece for Qualifier<'_> {
    fn push_to(&self, out: &mut String) {
        match self {
            Qualifier::Table(t) => out.push_str(t),
            Qualifier::Alias(a) => sql!(*out, "scim_c", a),
        }
    }
}
