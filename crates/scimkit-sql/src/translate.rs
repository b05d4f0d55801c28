//! Filters as SQL over the comparison document (see [`crate::document`]).
//!
//! Every predicate the translation writes is two-valued: a missing attribute makes a
//! comparison false, never `NULL`, so `not` and `ne` mean what they mean in
//! [`Filter::matches`] (a user without `externalId` matches `externalId ne "x"`).
//! Values are always bound parameters, JSON paths included; nothing from a filter is
//! spliced into the SQL text. Strings compare with `instr`, `substr` and `=` rather
//! than `LIKE`, so `%`, `_` and `\` in a value are plain characters.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use scimkit::filter::{CompValue, CompareOp, Filter};
use scimkit::path::AttrPath;
use scimkit::schema::{Attribute, AttributeType, ResourceSchema, Returned, SharedResourceSchema};

use crate::document::{fold_text, instant_into, parse_bool};
use crate::params::{Param, Params, Slot};
use crate::template::{
    MARK, Numbers, Outcome, Shape, Shapes, Template, each_leaf_pair, has_value_path, op_code,
    push_mark, shape_hash,
};
use crate::text::SqlPiece;

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

/// A filter as a SQL condition on the column holding the comparison document.
#[derive(Debug, Clone, PartialEq)]
pub struct Translation {
    /// The condition, for a `WHERE` clause; always true when nothing could be pushed
    /// down. A [`Translator`] shares one text between the translations of a shape
    /// of filter whose values get the same placeholders.
    pub sql: Arc<str>,
    /// The values of its placeholders, in order: `params.get(i)` is placeholder
    /// `i + 1` (`?1`, `$1`, …). Every placeholder up to `params.len()` appears in
    /// `sql`, some more than once (an index guard and the exact test after it share
    /// one).
    pub params: Params,
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
/// assert!(t.params.iter().any(|p| p == Param::Text("bjensen"))); // folded like the evaluator
/// assert!(t.params.iter().any(|p| p == Param::Text("x%"))); // `%` is a plain character
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn translate(
    filter: &Filter,
    schema: &ResourceSchema<'_>,
    column: &str,
    dialect: Dialect,
) -> Translation {
    translate_indexed(filter, schema, column, &NO_INDEXES, dialect)
}

/// [`translate`], with the guards written for `indexes` (see
/// [`Translator::with_key_column`] and [`Translator::with_containment_on`]).
fn translate_indexed(
    filter: &Filter,
    schema: &ResourceSchema<'_>,
    column: &str,
    indexes: &Indexes,
    dialect: Dialect,
) -> Translation {
    let mut w = Writer::sized(schema, column, dialect, leaves(filter));
    w.indexes = indexes;
    let residual = w.top(filter);
    Translation {
        sql: w.out.into(),
        params: w.params,
        residual,
    }
}

/// What a translation writes its index guards on, besides the document column.
#[derive(Debug, Clone, Default)]
struct Indexes {
    /// Attributes whose comparison values a column of their own holds, and that
    /// column (see [`Translator::with_key_column`]).
    keyed: Vec<(String, String)>,
    /// PostgreSQL: the expression containment guards are written on, and the
    /// top-level keys of the document it leaves out (see
    /// [`Translator::with_containment_on`]); `None`: the document column, whole.
    containment: Option<(String, Vec<String>)>,
}

/// No key columns, containment on the document column.
static NO_INDEXES: Indexes = Indexes {
    keyed: Vec::new(),
    containment: None,
};

/// Translates filters for one resource type and document column, again and again:
/// what [`translate`] answers, faster. It keeps the SQL of each *shape* of filter it
/// translates (the filter without its values: identity providers send a few shapes,
/// such as `userName eq "…"`, with ever new values) and afterwards only computes the
/// parameters and fills in their placeholder numbers. Share one per resource type
/// (it is `Sync`). It keeps at most [`Translator::MAX_SHAPES`] shapes, and starts
/// over when it has more, so clients that send many shapes cost time, not memory.
///
/// ```
/// use std::sync::Arc;
/// use scimkit::{Registry, filter::Filter, schema::SharedResourceSchema};
/// use scimkit_sql::{Dialect, Translator, translate};
///
/// let users = SharedResourceSchema::new(Arc::new(Registry::core()), "User").ok_or("no User")?;
/// let translator = Translator::new(users.clone(), "cmp", Dialect::Postgres);
/// for text in [r#"userName eq "bjensen""#, r#"userName eq "jsmith""#] {
///     let filter: Filter = text.parse()?;
///     // The same SQL and parameters as a translation from scratch.
///     assert_eq!(translator.translate(&filter), translate(&filter, &users.get(), "cmp", Dialect::Postgres));
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Translator {
    schema: SharedResourceSchema,
    column: String,
    /// What the guards are written on.
    indexes: Indexes,
    dialect: Dialect,
    shapes: RwLock<Shapes>,
}

impl fmt::Debug for Translator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Translator")
            .field("resource_type", &self.schema.get().name())
            .field("column", &self.column)
            .field("indexes", &self.indexes)
            .field("dialect", &self.dialect)
            .finish_non_exhaustive()
    }
}

impl Translator {
    /// How many shapes of filter a translator keeps.
    pub const MAX_SHAPES: usize = 1024;

    /// A translator for resources of `schema` whose comparison document is in the
    /// column `column` (a trusted identifier: the host's own column name).
    pub fn new(schema: SharedResourceSchema, column: impl Into<String>, dialect: Dialect) -> Self {
        Translator {
            schema,
            column: column.into(),
            indexes: Indexes::default(),
            dialect,
            shapes: RwLock::new(Shapes::default()),
        }
    }

    /// Says that the column `column` (a trusted identifier, or a trusted SQL
    /// expression such as PostgreSQL's `(cmp #>> '{userName}')`) holds, in every
    /// row, the comparison value of the single-valued, top-level attribute
    /// `attribute` (as the schema names it): what the document column holds at its
    /// path, kept in step by the host. The index guards of equality and prefix
    /// comparisons on that attribute (`userName eq "…"`, `externalId sw "…"`) are
    /// then written on `column` (in byte order on PostgreSQL: `COLLATE "C"`), which
    /// a btree index answers, instead of as containment; their exact tests still
    /// read the document. In SQLite an index on a column, unlike one on an
    /// expression of the document, is not rewritten by writes that leave the
    /// attribute as it was.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use scimkit::{Registry, filter::Filter, schema::SharedResourceSchema};
    /// use scimkit_sql::{Dialect, Translator};
    ///
    /// let users = SharedResourceSchema::new(Arc::new(Registry::core()), "User").ok_or("no User")?;
    /// let translator = Translator::new(users, "cmp", Dialect::Sqlite)
    ///     .with_key_column("userName", "k_user_name");
    /// let filter: Filter = r#"userName eq "bjensen""#.parse()?;
    /// assert!(translator.translate(&filter).sql.starts_with("(k_user_name = ?1 AND "));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_key_column(mut self, attribute: &str, column: &str) -> Self {
        self.indexes.keyed.retain(|(a, _)| a != attribute);
        self.indexes
            .keyed
            .push((attribute.to_owned(), column.to_owned()));
        // Shapes recorded before wrote the guards on the document.
        self.shapes = RwLock::new(Shapes::default());
        self
    }

    /// PostgreSQL: writes the containment guards (`@>`, which a GIN index answers)
    /// on `expression` instead of the document column: a trusted SQL expression
    /// that is the comparison document without its top-level keys `omitted` (an
    /// attribute as the schema names it, or an extension's URN), such as
    /// `(cmp - '{id,userName,meta}'::text[])`, the expression of a GIN index.
    /// Such an index holds fewer entries per row, each of which a write of a row
    /// inserts again, when the attributes left out are better answered by an
    /// index of their own (an `id` or `userName` equality by a key column or an
    /// expression index, see [`Translator::with_key_column`]) or by none (the
    /// times in `meta` are compared by ranges, which containment cannot answer).
    /// A comparison on an omitted attribute gets no containment guard: its key
    /// column's equality guard if it has one, else none. The translations select
    /// the same rows either way.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use scimkit::{Registry, filter::Filter, schema::SharedResourceSchema};
    /// use scimkit_sql::{Dialect, Translator};
    ///
    /// let users = SharedResourceSchema::new(Arc::new(Registry::core()), "User").ok_or("no User")?;
    /// let translator = Translator::new(users, "cmp", Dialect::Postgres)
    ///     .with_key_column("userName", "(cmp #>> '{userName}')")
    ///     .with_containment_on("(cmp - '{id,userName,meta}'::text[])", &["id", "userName", "meta"]);
    /// let email: Filter = r#"emails[value eq "bjensen@example.com"]"#.parse()?;
    /// assert!(translator.translate(&email).sql.starts_with("((cmp - '{id,userName,meta}'::text[]) @> $1::text::jsonb AND "));
    /// let user: Filter = r#"userName eq "bjensen""#.parse()?;
    /// assert!(translator.translate(&user).sql.starts_with(r#"((cmp #>> '{userName}') COLLATE "C" = $1::text AND "#));
    /// let created: Filter = r#"meta.created eq "2011-05-13T04:42:34Z""#.parse()?;
    /// assert!(!translator.translate(&created).sql.contains("@>"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_containment_on(mut self, expression: &str, omitted: &[&str]) -> Self {
        let omitted = omitted.iter().map(|k| (*k).to_owned()).collect();
        self.indexes.containment = Some((expression.to_owned(), omitted));
        // Shapes recorded before wrote the guards on the document.
        self.shapes = RwLock::new(Shapes::default());
        self
    }

    /// The resource type's schemas.
    pub fn schema(&self) -> ResourceSchema<'_> {
        self.schema.get()
    }

    /// The dialect written.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Translates `filter`: exactly what [`translate`] answers for this translator's
    /// schema, column and dialect (with the guards its key columns take, if it has
    /// any: see [`Translator::with_key_column`]).
    pub fn translate(&self, filter: &Filter) -> Translation {
        let schema = self.schema.get();
        let hash = shape_hash(filter);
        {
            let shapes = self.shapes.read().unwrap_or_else(PoisonError::into_inner);
            for shape in shapes.candidates(hash) {
                let mut w = Writer::for_shape(&schema, &self.column, self.dialect, shape);
                w.indexes = &self.indexes;
                if let Some(t) = w.replay(shape, filter) {
                    return t;
                }
            }
        }
        let translation =
            translate_indexed(filter, &schema, &self.column, &self.indexes, self.dialect);
        if let Some(shape) = self.record(&schema, filter, &translation) {
            let forgotten = self
                .shapes
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(hash, shape, Self::MAX_SHAPES);
            drop(forgotten);
        }
        translation
    }

    /// Records the shape of `filter`, whose translation is `expected`: kept only if
    /// replaying it gives exactly that translation.
    fn record(
        &self,
        schema: &ResourceSchema<'_>,
        filter: &Filter,
        expected: &Translation,
    ) -> Option<Shape> {
        if expected.residual.is_some() || has_value_path(filter) {
            return None;
        }
        let mut w = Writer::sized(schema, &self.column, self.dialect, leaves(filter));
        w.indexes = &self.indexes;
        w.recording = Some(Recording {
            replayable: true,
            ..Recording::default()
        });
        let residual = w.top(filter);
        let recording = w.recording.take()?;
        if residual.is_some() || !recording.replayable {
            return None;
        }
        let mut shape = Shape {
            texts: expected.params.text_len(),
            filter: filter.clone(),
            template: Template::parse(&w.out, self.dialect, recording.params)?,
            leaves: recording.leaves.into_boxed_slice(),
        };
        let mut check = Writer::sized(schema, &self.column, self.dialect, 0);
        check.indexes = &self.indexes;
        let mut numbers = Numbers::new();
        if !check.bind_shape(&shape, filter, &mut numbers)
            || check.finish(&shape, &numbers) != *expected
        {
            return None;
        }
        // The text to share: filled in with the numbers values get when no two of
        // different comparisons are equal (these values may have been).
        let mut usual = Writer::sized(schema, &self.column, self.dialect, 0);
        usual.indexes = &self.indexes;
        usual.distinct = true;
        let mut numbers = Numbers::new();
        if usual.bind_shape(&shape, filter, &mut numbers) {
            shape.template.settle(&numbers);
        }
        Some(shape)
    }

    /// Orders as [`order_by`] does, on this translator's column.
    pub fn order_by(&self, sort: &scimkit::store::Sort, id_column: &str) -> OrderBy {
        order_by(
            sort,
            &self.schema.get(),
            &self.column,
            id_column,
            self.dialect,
        )
    }
}

/// How many comparisons `filter` makes (its depth is bounded by the parser).
fn leaves(filter: &Filter) -> usize {
    match filter {
        Filter::And(parts) | Filter::Or(parts) => parts.iter().map(leaves).sum(),
        Filter::Not(inner) | Filter::ValuePath(_, inner) => leaves(inner),
        Filter::Compare(..) | Filter::Present(_) => 1,
    }
}

/// Where names resolve: the resource, or one value of a complex attribute (the row
/// `alias` of its values).
#[derive(Clone, Copy)]
enum Scope<'r> {
    Resource,
    Element { attr: &'r Attribute, alias: Alias },
}

/// The comparison one leaf value gets, its texts owned (or, replaying a shape,
/// written where the parameters keep theirs: see [`Texts`]).
#[derive(Clone)]
pub(crate) enum Test<T = String> {
    Never,
    Text(CompareOp, T),
    Number(CompareOp, f64),
    Bool(bool),
    Time(CompareOp, T),
}

#[derive(Clone)]
enum LeafPredicate<T = String> {
    Present,
    Test(Test<T>),
}

/// A placeholder, written in the dialect's form.
#[derive(Clone, Copy)]
pub(crate) struct Ph {
    pub(crate) n: usize,
    pub(crate) cast: &'static str,
    pub(crate) dialect: Dialect,
}

impl fmt::Display for Ph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.push_to(&mut out);
        f.write_str(&out)
    }
}

impl SqlPiece for Ph {
    fn push_to(&self, out: &mut String) {
        if self.n & MARK != 0 {
            push_mark(out, self.n);
            out.push_str(self.cast);
            return;
        }
        match self.dialect {
            Dialect::Sqlite => sql!(*out, "?", self.n),
            Dialect::Postgres => sql!(*out, "$", self.n, self.cast),
        }
    }
}

/// A JSON path written as an SQL literal: `'$."urn:…"."name"'` for SQLite,
/// `ARRAY['urn:…', 'name']` for PostgreSQL. Its keys are canonical names from the
/// schema (which the host trusts, like its column names), never text from a request;
/// they are quoted all the same.
#[derive(Clone, Copy)]
pub(crate) struct JsonPath<'k> {
    first: Option<&'k str>,
    last: &'k str,
    dialect: Dialect,
}

impl SqlPiece for JsonPath<'_> {
    fn push_to(&self, out: &mut String) {
        let keys = self.first.into_iter().chain(std::iter::once(self.last));
        match self.dialect {
            Dialect::Sqlite => {
                out.push_str("'$");
                for key in keys {
                    out.push_str(".\"");
                    if !key.bytes().any(|b| matches!(b, b'"' | b'\\' | b'\'')) {
                        out.push_str(key);
                        out.push('"');
                        continue;
                    }
                    for c in key.chars() {
                        match c {
                            '"' | '\\' => {
                                out.push('\\');
                                out.push(c);
                            }
                            '\'' => out.push_str("''"),
                            c => out.push(c),
                        }
                    }
                    out.push('"');
                }
                out.push('\'');
            }
            Dialect::Postgres => {
                out.push_str("ARRAY[");
                for (i, key) in keys.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push('\'');
                    if !key.bytes().any(|b| b == b'\'') {
                        out.push_str(key);
                        out.push('\'');
                        continue;
                    }
                    for c in key.chars() {
                        if c == '\'' {
                            out.push('\'');
                        }
                        out.push(c);
                    }
                    out.push('\'');
                }
                out.push(']');
            }
        }
    }
}

impl fmt::Display for JsonPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.push_to(&mut out);
        f.write_str(&out)
    }
}

/// Where one JSON value is: a row of a subquery (its `value`, `type` and `atom`
/// columns), or a path under a root, read in place.
#[derive(Clone, Copy)]
enum RowRef<'k> {
    Alias(Alias),
    At { root: Root<'k>, path: JsonPath<'k> },
}

/// The value's JSON (SQLite: JSON text or a scalar; PostgreSQL: `jsonb`).
#[derive(Clone, Copy)]
struct Val<'k>(RowRef<'k>);

/// SQLite: the value's JSON type (`json_each`'s `type`).
#[derive(Clone, Copy)]
struct Ty<'k>(RowRef<'k>);

/// SQLite: the value as an SQL scalar (`json_each`'s `atom`).
#[derive(Clone, Copy)]
struct Atom<'k>(RowRef<'k>);

impl SqlPiece for Val<'_> {
    fn push_to(&self, out: &mut String) {
        match self.0 {
            RowRef::Alias(a) => sql!(*out, a, ".value"),
            RowRef::At { root, path } => match path.dialect {
                Dialect::Sqlite => sql!(*out, "json_extract(", root, ", ", path, ")"),
                Dialect::Postgres => sql!(*out, "(", root, " #> ", path, ")"),
            },
        }
    }
}

impl fmt::Display for Val<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.push_to(&mut out);
        f.write_str(&out)
    }
}

impl SqlPiece for Ty<'_> {
    fn push_to(&self, out: &mut String) {
        match self.0 {
            RowRef::Alias(a) => sql!(*out, a, ".type"),
            RowRef::At { root, path } => sql!(*out, "json_type(", root, ", ", path, ")"),
        }
    }
}

impl SqlPiece for Atom<'_> {
    fn push_to(&self, out: &mut String) {
        match self.0 {
            RowRef::Alias(a) => sql!(*out, a, ".atom"),
            RowRef::At { root, path } => sql!(*out, "json_extract(", root, ", ", path, ")"),
        }
    }
}

/// A row alias of a subquery.
#[derive(Clone, Copy)]
struct Alias(usize);

impl fmt::Display for Alias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "j{}", self.0)
    }
}

impl SqlPiece for Alias {
    fn push_to(&self, out: &mut String) {
        sql!(*out, "j", self.0);
    }
}

/// The JSON a path starts from: the document column, or a row's value.
#[derive(Clone, Copy)]
enum Root<'a> {
    Column(&'a str),
    Value(Alias),
}

impl fmt::Display for Root<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Root::Column(c) => f.write_str(c),
            Root::Value(a) => write!(f, "{a}.value"),
        }
    }
}

impl SqlPiece for Root<'_> {
    fn push_to(&self, out: &mut String) {
        match self {
            Root::Column(c) => out.push_str(c),
            Root::Value(a) => sql!(*out, a, ".value"),
        }
    }
}

/// Where a path's leaf values are.
struct Place<'r, 'a> {
    attr: &'r Attribute,
    sub: Option<&'r Attribute>,
    /// The JSON expression the path applies to.
    root: Root<'a>,
    /// The extension holding the attribute, if any, then the attribute.
    keys: (Option<&'r str>, &'r str),
    /// The key inside each value that holds the leaf (`value` implicitly).
    leaf: Option<&'r str>,
}

struct Writer<'a, 'r> {
    schema: &'a ResourceSchema<'r>,
    column: &'a str,
    /// What the guards are written on.
    indexes: &'a Indexes,
    dialect: Dialect,
    out: String,
    params: Params,
    aliases: usize,
    /// While a shape is recorded: placeholders are written as marks.
    recording: Option<Recording>,
    /// Replaying a shape as if no two values of different comparisons were equal
    /// (to find the placeholder numbers most values get).
    distinct: bool,
}

/// What recording a shape of filter gathers.
#[derive(Default)]
struct Recording {
    /// How many parameters were bound.
    params: usize,
    /// Each comparison, in the order written.
    leaves: Vec<Outcome>,
    /// Whether the shape can be replayed (value filters cannot: their containment
    /// document gathers several comparisons).
    replayable: bool,
}

/// A comparison of a filter, resolved.
#[derive(Clone)]
enum Leaf<T = String> {
    /// `pr`.
    Present,
    /// A test on the values, or its negation (`ne`, `eq null`).
    Compare {
        negate: bool,
        pred: LeafPredicate<T>,
    },
}

/// What a recorded comparison needs to translate new values: what it reads of its
/// attribute, the kind of guard it writes, and its shape (see [`shape`]).
#[derive(Debug, Clone)]
pub(crate) struct Recipe {
    def: Def,
    guard: GuardKind,
    shape: u32,
}

impl Recipe {
    /// Its shape: what, besides its attribute, decides its text.
    pub(crate) fn shape(&self) -> u32 {
        self.shape
    }
}

/// A guard without its values.
#[derive(Debug, Clone, Copy)]
enum GuardKind {
    None,
    Containment,
    Equality,
    Prefix,
}

impl GuardKind {
    /// The guard of `leaf` (a text test, or none), its upper bound written to
    /// `texts`: a prefix without a range (empty, or nothing after it) gets none.
    #[inline]
    fn apply<X: Texts>(&self, leaf: &Leaf<X::Text>, texts: &mut X) -> Guard<X::Text> {
        let text = match leaf {
            Leaf::Compare {
                pred: LeafPredicate::Test(Test::Text(_, text)),
                ..
            } => text,
            _ => return Guard::None,
        };
        match self {
            GuardKind::None => Guard::None,
            GuardKind::Containment => Guard::Containment,
            GuardKind::Equality => Guard::Equality,
            GuardKind::Prefix => texts.after_prefix(text).map_or(Guard::None, Guard::Prefix),
        }
    }
}

/// What a comparison binds before its test: the guard that lets an index answer.
#[derive(Clone)]
enum Guard<T = String> {
    None,
    /// PostgreSQL: jsonb containment (`@>`) of the text where the place has it.
    Containment,
    /// Equality on the attribute's key column, or (SQLite) on its indexed
    /// expression.
    Equality,
    /// A prefix as a range, up to this text.
    Prefix(T),
}

/// Where the texts a comparison compares with are written: owned strings for a
/// translation written directly ([`Owned`]), the parameters' own buffer for a
/// replayed one (so that binding them allocates nothing).
pub(crate) trait Texts {
    /// A text written.
    type Text;

    /// The text `write` appends to the buffer it is given; `None` if it answers
    /// `false` (having appended nothing).
    fn write(&mut self, write: impl FnOnce(&mut String) -> bool) -> Option<Self::Text>;

    /// The first text after every text that starts with `prefix` (see
    /// [`after_prefix`]).
    fn after_prefix(&mut self, prefix: &Self::Text) -> Option<Self::Text>;
}

/// Texts as owned strings.
pub(crate) struct Owned;

impl Texts for Owned {
    type Text = String;

    #[inline]
    fn write(&mut self, write: impl FnOnce(&mut String) -> bool) -> Option<String> {
        let mut text = String::new();
        write(&mut text).then_some(text)
    }

    fn after_prefix(&mut self, prefix: &String) -> Option<String> {
        after_prefix(prefix)
    }
}

impl Texts for Params {
    type Text = Slot;

    #[inline]
    fn write(&mut self, write: impl FnOnce(&mut String) -> bool) -> Option<Slot> {
        self.write_slot(write)
    }

    #[inline]
    fn after_prefix(&mut self, prefix: &Slot) -> Option<Slot> {
        let (at, next) = prefix_end(self.slot(prefix))?;
        Some(self.derive_slot(prefix, at, next))
    }
}

/// Appends `s` as the evaluator compares it: folded ([`fold_text`]) unless
/// `case_exact`; `false`, having appended nothing, if `bindable` and it holds NUL
/// (which databases cannot bind).
#[inline]
fn fold_into(out: &mut String, s: &str, case_exact: bool, bindable: bool) -> bool {
    // ASCII without NUL, the common case, told in one pass that also tells
    // whether there is anything to fold.
    let (plain, upper) = ascii_class(s.as_bytes());
    if plain {
        let start = out.len();
        out.push_str(s);
        if upper && !case_exact {
            if let Some(appended) = out.get_mut(start..) {
                appended.make_ascii_lowercase();
            }
        }
        return true;
    }
    if bindable && s.contains('\0') {
        return false;
    }
    match case_exact {
        true => out.push_str(s),
        false => out.push_str(&fold_text(s)),
    }
    true
}

impl<'a, 'r> Writer<'a, 'r> {
    fn new(schema: &'a ResourceSchema<'r>, column: &'a str, dialect: Dialect) -> Self {
        Writer::sized(schema, column, dialect, 0)
    }

    /// A writer with room for the SQL of about `leaves` comparisons, so that the
    /// text is not copied as it grows.
    fn sized(
        schema: &'a ResourceSchema<'r>,
        column: &'a str,
        dialect: Dialect,
        leaves: usize,
    ) -> Self {
        let per_leaf = match dialect {
            Dialect::Sqlite => 256,
            Dialect::Postgres => 384,
        };
        let (text, params) = (leaves.clamp(4, 256) * per_leaf, leaves.min(256) * 2);
        Writer::with_capacity(
            schema,
            column,
            dialect,
            text,
            Params::with_capacity(params, params * 16),
        )
    }

    /// A writer with room for the parameters of `shape` (the SQL text is the
    /// template's: see [`Template::replay`]).
    fn for_shape(
        schema: &'a ResourceSchema<'r>,
        column: &'a str,
        dialect: Dialect,
        shape: &Shape,
    ) -> Self {
        // Room for texts somewhat longer than the recorded ones (up to a point: a
        // shape recorded with a huge value does not make every replay reserve
        // as much).
        let texts = shape.texts.min(4096) + 64;
        let params = Params::with_capacity(shape.template.params, texts);
        Writer::with_capacity(schema, column, dialect, 0, params)
    }

    fn with_capacity(
        schema: &'a ResourceSchema<'r>,
        column: &'a str,
        dialect: Dialect,
        text: usize,
        params: Params,
    ) -> Self {
        Writer {
            schema,
            column,
            indexes: &NO_INDEXES,
            dialect,
            out: String::with_capacity(text),
            params,
            aliases: 0,
            recording: None,
            distinct: false,
        }
    }

    fn bind(&mut self, p: Param<'_>) -> Ph {
        if let Some(r) = &mut self.recording {
            r.params += 1;
            return Ph {
                n: MARK | (r.params - 1),
                cast: cast(&p, self.dialect),
                dialect: self.dialect,
            };
        }
        bind(&mut self.params, self.dialect, p)
    }

    fn alias(&mut self) -> Alias {
        self.aliases += 1;
        Alias(self.aliases)
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

    /// The JSON path to `keys` (an extension's URN, then a name; or one name), all
    /// canonical names from the schema, never from the request.
    fn json_path<'k>(&self, first: Option<&'k str>, last: &'k str) -> JsonPath<'k> {
        JsonPath {
            first,
            last,
            dialect: self.dialect,
        }
    }

    fn place_path<'k>(&self, place: &Place<'k, '_>) -> JsonPath<'k> {
        self.json_path(place.keys.0, place.keys.1)
    }

    /// Writes the condition for `filter`, each of its conjuncts that SQL can express;
    /// answers the others (the residual).
    fn top(&mut self, filter: &Filter) -> Option<Filter> {
        let parts = match filter {
            Filter::And(parts) => parts.as_slice(),
            f => std::slice::from_ref(f),
        };
        let mut residual = Vec::new();
        let mut written = 0;
        for part in parts {
            let (text, params) = (self.out.len(), self.params.mark());
            if written > 0 {
                self.out.push_str(" AND ");
            }
            if self.filter(part, Scope::Resource) {
                written += 1;
            } else {
                self.out.truncate(text);
                self.params.rewind(params);
                residual.push(part.clone());
            }
        }
        if written == 0 {
            self.out.push_str(self.always());
        }
        match residual.len() {
            0 => None,
            1 => residual.pop(),
            _ => Some(Filter::And(residual)),
        }
    }

    /// Writes the condition for `f`; `false` when it cannot be expressed (the caller
    /// then drops what was written).
    fn filter(&mut self, f: &Filter, scope: Scope<'r>) -> bool {
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
            Filter::Present(path) => {
                let Some(place) = self.place(scope, path) else {
                    self.note(Outcome::Never);
                    self.out.push_str(self.never());
                    return true;
                };
                self.leaf(scope, &place, Leaf::Present);
                true
            }
            Filter::Compare(path, op, value) => {
                let Some(place) = self.place(scope, path) else {
                    self.note(Outcome::Never);
                    self.out.push_str(self.never());
                    return true;
                };
                let Some(leaf) = comparison(&place, *op, value) else {
                    return false;
                };
                self.leaf(scope, &place, leaf);
                true
            }
            Filter::ValuePath(path, inner) => {
                if let Some(r) = &mut self.recording {
                    r.replayable = false;
                }
                if matches!(scope, Scope::Element { .. }) || path.sub_attr().is_some() {
                    self.out.push_str(self.never());
                    return true;
                }
                let Some(place) = self.place(scope, path) else {
                    self.out.push_str(self.never());
                    return true;
                };
                if !place.attr.is_complex() {
                    self.out.push_str(self.never());
                    return true;
                }
                // PostgreSQL: `emails[value eq "x" and type eq "work"]` is also jsonb
                // containment of one element, which a GIN index answers.
                let containment = self.element_containment(&place, inner);
                let guarded = containment.is_some();
                if let Some(doc) = containment {
                    let p = self.bind(Param::Text(&doc));
                    let target = self.containment_target();
                    sql!(self.out, "(", target, " @> ", p, "::jsonb AND ");
                }
                let path = self.place_path(&place);
                let alias = self.alias();
                self.out.push_str("EXISTS (SELECT 1 FROM ");
                // Each value of a list, or the one value of a single complex attribute.
                self.rows(place.root, path, place.attr.is_multi_valued(), alias);
                self.out.push_str(" WHERE ");
                self.is_object(alias);
                self.out.push_str(" AND ");
                let ok = self.filter(
                    inner,
                    Scope::Element {
                        attr: place.attr,
                        alias,
                    },
                );
                self.out.push(')');
                if guarded {
                    self.out.push(')');
                }
                ok
            }
        }
    }

    /// Notes what a comparison wrote, while a shape is recorded.
    fn note(&mut self, outcome: Outcome) {
        if let Some(r) = &mut self.recording {
            r.leaves.push(outcome);
        }
    }

    /// Writes a comparison (noting where and what it is, while a shape is recorded).
    fn leaf(&mut self, scope: Scope<'r>, place: &Place<'_, '_>, leaf: Leaf) {
        let kind = self.guard_kind(place, &leaf);
        let guard = kind.apply(&leaf, &mut Owned);
        if self.recording.is_some() {
            let recipe = match scope {
                Scope::Resource => Some(Recipe {
                    def: Def::of(leaf_def(place)),
                    guard: kind,
                    shape: shape(&leaf, &guard),
                }),
                Scope::Element { .. } => None,
            };
            if let Some(r) = &mut self.recording {
                match recipe {
                    Some(recipe) => r.leaves.push(Outcome::Leaf(recipe)),
                    None => r.replayable = false,
                }
            }
        }
        self.write_leaf(place, leaf, guard)
    }

    /// The kind of index guard a comparison of this form at `place` gets before its
    /// exact test, whatever its value ([`GuardKind::apply`] gives the guard).
    fn guard_kind(&self, place: &Place<'_, '_>, leaf: &Leaf) -> GuardKind {
        let Leaf::Compare {
            negate: false,
            pred: LeafPredicate::Test(Test::Text(op, _)),
        } = leaf
        else {
            return GuardKind::None;
        };
        match op {
            CompareOp::Eq if self.key_column(place).is_some() => GuardKind::Equality,
            CompareOp::Eq if self.dialect == Dialect::Postgres => {
                if self.contains(place) {
                    GuardKind::Containment
                } else {
                    GuardKind::None
                }
            }
            CompareOp::Eq if self.indexable(place) => GuardKind::Equality,
            CompareOp::Sw if self.indexable(place) => GuardKind::Prefix,
            _ => GuardKind::None,
        }
    }

    /// Writes a comparison (its text and its parameters).
    fn write_leaf(&mut self, place: &Place<'_, '_>, leaf: Leaf, guard: Guard) {
        let (negate, pred) = match leaf {
            Leaf::Present if place.sub.is_none() && place.attr.is_complex() => {
                // A complex value is present when anything in it is.
                return self.present_anywhere(place);
            }
            Leaf::Present => return self.any_leaf(place, LeafPredicate::Present),
            Leaf::Compare { negate, pred } => (negate, pred),
        };
        if negate {
            self.out.push_str("(NOT ");
        }
        // PostgreSQL: string equality also as jsonb containment, which a GIN index
        // on the document answers; SQLite: as equality on the attribute's
        // expression (or its key column), which an index answers; and a prefix as
        // a range, which a btree index on the attribute answers. The exact test
        // follows.
        let text = match &pred {
            LeafPredicate::Test(Test::Text(_, text)) => text.as_str(),
            _ => "",
        };
        let guarded = match guard {
            Guard::None => false,
            Guard::Containment => {
                self.containment(place, text);
                true
            }
            Guard::Equality => {
                self.equality(place, text);
                true
            }
            Guard::Prefix(upper) => {
                self.prefix_range(place, text, &upper);
                true
            }
        };
        self.any_leaf(place, pred);
        if guarded {
            self.out.push(')');
        }
        if negate {
            self.out.push(')');
        }
    }

    /// Translates `filter` by the recorded `shape`, if it is one: binds what
    /// [`Writer::write_leaf`] would, comparison by comparison in the same order, and
    /// fills in the template. `None` when `filter` has another shape, or when a value
    /// gives a comparison another form than the recorded one (an empty prefix, a
    /// number that is not one, …).
    fn replay(&mut self, shape: &Shape, filter: &Filter) -> Option<Translation> {
        let mut placeholders = Numbers::new();
        if !self.bind_shape(shape, filter, &mut placeholders) {
            return None;
        }
        Some(self.finish(shape, &placeholders))
    }

    /// Binds the parameters of `filter` by the recorded `shape` (see
    /// [`Writer::replay`]), adding their placeholder numbers to `placeholders` in
    /// the order the template's holes take them; `false` if `filter` does not
    /// replay by it.
    fn bind_shape(&mut self, shape: &Shape, filter: &Filter, placeholders: &mut Numbers) -> bool {
        self.out.clear();
        self.params.clear();
        let mut leaves = shape.leaves.iter();
        let whole = each_leaf_pair(&shape.filter, filter, &mut |f| {
            let recipe = match leaves.next() {
                Some(Outcome::Leaf(recipe)) => recipe,
                Some(Outcome::Never) => return true,
                None => return false,
            };
            // Its texts go straight to the parameters' buffer.
            let leaf = match f {
                Filter::Present(_) => Leaf::Present,
                Filter::Compare(_, op, value) => {
                    match comparison_as(recipe.def, *op, value, &mut self.params) {
                        Some(leaf) => leaf,
                        None => return false,
                    }
                }
                _ => return false,
            };
            // The guard these values get (the shape tells if it is the recorded one).
            let guard = recipe.guard.apply(&leaf, &mut self.params);
            if self::shape(&leaf, &guard) != recipe.shape {
                return false;
            }
            self.bind_leaf(leaf, guard, placeholders);
            true
        });
        whole && leaves.next().is_none() && placeholders.len() == Some(shape.template.params)
    }

    /// The translation of the parameters bound, by `shape`'s template.
    fn finish(&mut self, shape: &Shape, placeholders: &Numbers) -> Translation {
        Translation {
            sql: shape.template.replay(placeholders),
            params: std::mem::take(&mut self.params),
            residual: None,
        }
    }

    /// Binds a comparison's parameters as [`Writer::write_leaf`] does, adding their
    /// placeholder numbers to `placeholders`.
    #[inline]
    fn bind_leaf(&mut self, leaf: Leaf<Slot>, guard: Guard<Slot>, placeholders: &mut Numbers) {
        let test = match leaf {
            Leaf::Compare {
                pred: LeafPredicate::Test(test),
                ..
            } => test,
            Leaf::Compare { .. } | Leaf::Present => return,
        };
        let params = &mut self.params;
        let distinct = self.distinct;
        // A text of its own: the placeholder of an equal one bound just before, if
        // any (unless values are taken as distinct).
        let fresh = |params: &mut Params, text: Slot| match distinct {
            false => params.bind_slot(text),
            true => params.push_slot(text),
        };
        match (guard, test) {
            // The guard binds the test's text; the test binds it again.
            (Guard::Containment | Guard::Equality, Test::Text(op, text)) => {
                let n = fresh(params, text);
                placeholders.push(n);
                if TextCond::of(op).is_some() {
                    placeholders.push(params.bind_again(n));
                }
            }
            (Guard::Prefix(upper), Test::Text(op, text)) => {
                let n = fresh(params, text);
                placeholders.push(n);
                placeholders.push(fresh(params, upper));
                if TextCond::of(op).is_some() {
                    placeholders.push(params.bind_again(n));
                }
            }
            // What `sqlite_predicate` and `postgres_predicate` bind.
            (_, Test::Number(op, n)) if ordering(op).is_some() => {
                placeholders.push(params.bind(Param::Real(n)));
            }
            (_, Test::Time(op, t)) if ordering(op).is_some() => {
                placeholders.push(fresh(params, t));
            }
            (_, Test::Text(op, t)) if TextCond::of(op).is_some() => {
                placeholders.push(fresh(params, t));
            }
            _ => {}
        }
    }

    /// Resolves a path as the evaluator does; `None` when it names nothing a filter
    /// may see (undefined, or never returned).
    fn place(&self, scope: Scope<'r>, path: &AttrPath) -> Option<Place<'r, 'a>> {
        let (attr, sub, root, keys) = match scope {
            Scope::Resource => {
                let found = self.schema.attribute(path.schema(), path.name())?;
                let sub = match path.sub_attr() {
                    Some(name) => Some(found.attribute.sub_attribute(name)?),
                    None => None,
                };
                let ext = found.extension.then_some(found.schema);
                (
                    found.attribute,
                    sub,
                    Root::Column(self.column),
                    (ext, found.attribute.name()),
                )
            }
            Scope::Element {
                attr: parent,
                alias,
            } => {
                if path.sub_attr().is_some() {
                    return None;
                }
                let attr = parent.sub_attribute(path.name())?;
                (attr, None, Root::Value(alias), (None, attr.name()))
            }
        };
        if attr.returned() == Returned::Never
            || sub.is_some_and(|s| s.returned() == Returned::Never)
        {
            return None;
        }
        let leaf = match sub {
            Some(sub) => Some(sub.name()),
            None if attr.is_complex() && attr.sub_attribute("value").is_some() => Some("value"),
            None => None,
        };
        Some(Place {
            attr,
            sub,
            root,
            keys,
            leaf,
        })
    }

    /// PostgreSQL, on the document column: writes `(doc @> {"emails": [{"value":
    /// text}]} AND `, the jsonb a resource whose value at `place` equals `text`
    /// contains (built in SQL around the bound text), which a GIN index on the
    /// document answers.
    fn containment(&mut self, place: &Place<'_, '_>, text: &str) {
        let p = self.bind(Param::Text(text));
        let (ext, name) = place.keys;
        let target = self.containment_target();
        sql!(self.out, "(", target, " @> ");
        let mut close = 0;
        for key in ext.into_iter().chain([name]) {
            self.out.push_str("jsonb_build_object(");
            push_sql_literal(&mut self.out, key);
            self.out.push_str(", ");
            close += 1;
        }
        if place.attr.is_multi_valued() {
            self.out.push_str("jsonb_build_array(");
            close += 1;
        }
        if let Some(leaf) = place.leaf {
            self.out.push_str("jsonb_build_object(");
            push_sql_literal(&mut self.out, leaf);
            self.out.push_str(", ");
            close += 1;
        }
        p.push_to(&mut self.out);
        for _ in 0..close {
            self.out.push(')');
        }
        self.out.push_str(" AND ");
    }

    /// A single-valued simple attribute: writes `(value >= prefix AND value < the
    /// first text after every text with that prefix AND ` (byte order), a range a
    /// btree index answers: on `(doc #>> '{attr}') COLLATE "C"` in PostgreSQL, on
    /// `json_extract(doc, '$."attr"')` in SQLite, or on the attribute's key column
    /// ([`Translator::with_key_column`]). The path is
    /// written as a literal (from the schema, not the request) so that the planner
    /// can match the index expression.
    fn prefix_range(&mut self, place: &Place<'_, '_>, prefix: &str, upper: &str) {
        let path = self.place_path(place);
        let lo = self.bind(Param::Text(prefix));
        let hi = self.bind(Param::Text(upper));
        let column = self.column;
        if let Some(key) = self.key_column(place) {
            let collate = self.byte_order();
            sql!(
                self.out, "(", key, collate, " >= ", lo, " AND ", key, collate, " < ", hi, " AND "
            );
            return;
        }
        match self.dialect {
            Dialect::Postgres => sql!(
                self.out,
                "((",
                column,
                " #>> ",
                path,
                ") COLLATE \"C\" >= ",
                lo,
                " AND (",
                column,
                " #>> ",
                path,
                ") COLLATE \"C\" < ",
                hi,
                " AND "
            ),
            // Text compares in byte order, which is code point order in UTF-8.
            Dialect::Sqlite => sql!(
                self.out,
                "(json_extract(",
                column,
                ", ",
                path,
                ") >= ",
                lo,
                " AND json_extract(",
                column,
                ", ",
                path,
                ") < ",
                hi,
                " AND "
            ),
        }
    }

    /// A single-valued simple attribute: writes `(key_column = value AND ` (in
    /// byte order on PostgreSQL: `COLLATE "C"`) when it has a key column, else (on
    /// SQLite) `(json_extract(doc, path) = value AND `, which an index on that
    /// column or expression answers (implied by the exact test that follows).
    fn equality(&mut self, place: &Place<'_, '_>, text: &str) {
        let path = self.place_path(place);
        let p = self.bind(Param::Text(text));
        let column = self.column;
        if let Some(key) = self.key_column(place) {
            let collate = self.byte_order();
            sql!(self.out, "(", key, collate, " = ", p, " AND ");
            return;
        }
        match self.dialect {
            Dialect::Sqlite => sql!(
                self.out,
                "(json_extract(",
                column,
                ", ",
                path,
                ") = ",
                p,
                " AND "
            ),
            // PostgreSQL guards equality by containment unless a key column
            // holds the value; this form, on the expression, is as true.
            Dialect::Postgres => sql!(
                self.out,
                "((",
                column,
                " #>> ",
                path,
                ") COLLATE \"C\" = ",
                p,
                " AND "
            ),
        }
    }

    /// What makes a key column compare in byte order: `COLLATE "C"` on
    /// PostgreSQL; nothing on SQLite, whose text compares so already.
    fn byte_order(&self) -> &'static str {
        match self.dialect {
            Dialect::Postgres => " COLLATE \"C\"",
            Dialect::Sqlite => "",
        }
    }

    /// The key column holding the value at `place`, if it has one (see
    /// [`Translator::with_key_column`]).
    fn key_column(&self, place: &Place<'_, '_>) -> Option<&'a str> {
        if place.keys.0.is_some() || !self.indexable(place) {
            return None;
        }
        self.indexes
            .keyed
            .iter()
            .find(|(attribute, _)| attribute == place.keys.1)
            .map(|(_, column)| column.as_str())
    }

    /// PostgreSQL: whether a containment guard can select the values at `place`:
    /// they are in the document column, and in the expression containment guards
    /// are written on ([`Translator::with_containment_on`]).
    fn contains(&self, place: &Place<'_, '_>) -> bool {
        let Root::Column(_) = place.root else {
            return false;
        };
        let Some((_, omitted)) = &self.indexes.containment else {
            return true;
        };
        let top = place.keys.0.unwrap_or(place.keys.1);
        !omitted.iter().any(|k| k == top)
    }

    /// The expression containment guards are written on (see
    /// [`Translator::with_containment_on`]): the document column, by default.
    fn containment_target(&self) -> &'a str {
        match &self.indexes.containment {
            Some((expression, _)) => expression,
            None => self.column,
        }
    }

    /// Whether `place` is one value at one path of the document column, which an
    /// expression index can hold.
    fn indexable(&self, place: &Place<'_, '_>) -> bool {
        matches!(place.root, Root::Column(_))
            && !place.attr.is_multi_valued()
            && place.leaf.is_none()
            && place.sub.is_none()
    }

    /// The containment document of a value filter that is `eq` on strings only
    /// (one test, or several joined by `and`): one value holding all of them.
    fn element_containment(&self, place: &Place<'_, '_>, inner: &Filter) -> Option<String> {
        if self.dialect != Dialect::Postgres
            || !place.attr.is_multi_valued()
            || !self.contains(place)
        {
            return None;
        }
        let parts: Vec<&Filter> = match inner {
            Filter::And(parts) => parts.iter().collect(),
            f => vec![f],
        };
        let mut element: Vec<(&str, String)> = Vec::with_capacity(parts.len());
        for part in parts {
            let Filter::Compare(path, CompareOp::Eq, value @ CompValue::String(_)) = part else {
                return None;
            };
            if path.sub_attr().is_some() || path.schema().is_some() {
                return None;
            }
            let sub = place.attr.sub_attribute(path.name())?;
            let Some(Test::Text(_, text)) = test(sub, CompareOp::Eq, value) else {
                return None;
            };
            if sub.returned() == Returned::Never || element.iter().any(|(k, _)| *k == sub.name()) {
                return None;
            }
            element.push((sub.name(), text));
        }
        // {"ext": {"name": [{"sub": "text", …}]}}
        let (ext, name) = place.keys;
        let mut doc = String::with_capacity(64);
        let mut close = String::new();
        for key in ext.into_iter().chain([name]) {
            doc.push('{');
            push_json_string(&mut doc, key);
            doc.push(':');
            close.push('}');
        }
        doc.push_str("[{");
        for (i, (key, text)) in element.iter().enumerate() {
            if i > 0 {
                doc.push(',');
            }
            push_json_string(&mut doc, key);
            doc.push(':');
            push_json_string(&mut doc, text);
        }
        doc.push_str("}]");
        doc.push_str(&close);
        Some(doc)
    }

    /// Writes a FROM item named `alias` with one row per value at `path` under
    /// `root`: each item of a list (`list`), or the value itself.
    fn rows(&mut self, root: Root<'_>, path: JsonPath<'_>, list: bool, alias: Alias) {
        match (self.dialect, list) {
            (Dialect::Sqlite, true) => {
                sql!(self.out, "json_each(", root, ", ", path, ") AS ", alias)
            }
            (Dialect::Sqlite, false) => sql!(
                self.out,
                "(SELECT json_extract(",
                root,
                ", ",
                path,
                ") AS value, json_type(",
                root,
                ", ",
                path,
                ") AS type, json_extract(",
                root,
                ", ",
                path,
                ") AS atom) AS ",
                alias
            ),
            (Dialect::Postgres, true) => sql!(
                self.out,
                "jsonb_array_elements(CASE WHEN jsonb_typeof(",
                root,
                " #> ",
                path,
                ") = 'array' THEN ",
                root,
                " #> ",
                path,
                " ELSE '[]'::jsonb END) AS ",
                alias,
                "(value)"
            ),
            (Dialect::Postgres, false) => {
                sql!(
                    self.out,
                    "(SELECT ",
                    root,
                    " #> ",
                    path,
                    " AS value) AS ",
                    alias
                )
            }
        }
    }

    /// Writes the rows of the leaf at `key` inside the object `alias.value` (a
    /// list's items, or the value itself), named `items`.
    fn leaf_rows(&mut self, alias: Alias, key: JsonPath<'_>, items: Alias) {
        match self.dialect {
            Dialect::Sqlite => sql!(
                self.out,
                "json_each(CASE WHEN ",
                alias,
                ".type = 'object' THEN ",
                alias,
                ".value ELSE '{}' END, ",
                key,
                ") AS ",
                items
            ),
            Dialect::Postgres => sql!(
                self.out,
                "jsonb_array_elements(CASE jsonb_typeof(",
                alias,
                ".value #> ",
                key,
                ") WHEN 'array' THEN ",
                alias,
                ".value #> ",
                key,
                " ELSE jsonb_build_array(",
                alias,
                ".value #> ",
                key,
                ") END) AS ",
                items,
                "(value)"
            ),
        }
    }

    /// Writes whether a row's value is an object.
    fn is_object(&mut self, alias: Alias) {
        match self.dialect {
            Dialect::Sqlite => sql!(self.out, alias, ".type = 'object'"),
            Dialect::Postgres => sql!(self.out, "jsonb_typeof(", alias, ".value) = 'object'"),
        }
    }

    /// Writes whether anything inside the JSON `json` (itself included) is present:
    /// a scalar that is not null and not an empty string.
    fn present_inside(&mut self, json: impl SqlPiece) {
        match self.dialect {
            Dialect::Sqlite => {
                let t = self.alias();
                sql!(
                    self.out,
                    "EXISTS (SELECT 1 FROM json_tree(",
                    json,
                    ") AS ",
                    t,
                    " WHERE ",
                    t,
                    ".type NOT IN ('null', 'object', 'array') AND NOT (",
                    t,
                    ".type = 'text' AND ",
                    t,
                    ".atom = ''))"
                );
            }
            Dialect::Postgres => sql!(
                self.out,
                "COALESCE(jsonb_path_exists(",
                json,
                ", 'strict $.** ? (@.type() == \"number\" || @.type() == \"boolean\" || (@.type() == \"string\" && @ != \"\"))'), FALSE)"
            ),
        }
    }

    /// Writes whether anything at the place is present (RFC 7644 §3.4.2.2 `pr` on a
    /// complex attribute: a value somewhere in it that is not null and not empty).
    fn present_anywhere(&mut self, place: &Place<'_, '_>) {
        let path = self.place_path(place);
        let root = place.root;
        match self.dialect {
            Dialect::Sqlite => self.present_inside((root, ", ", path)),
            Dialect::Postgres => self.present_inside(("(", root, " #> ", path, ")")),
        }
    }

    /// Writes whether some leaf value of `place` satisfies `pred`. A leaf list (a
    /// multi-valued attribute's values, or a sub-attribute holding a list) matches
    /// when any of its items does.
    fn any_leaf(&mut self, place: &Place<'_, '_>, pred: LeafPredicate) {
        let path = self.place_path(place);
        if !place.attr.is_multi_valued() && place.leaf.is_none() {
            // One value at one path: compared where it is.
            self.predicate(
                RowRef::At {
                    root: place.root,
                    path,
                },
                pred,
            );
            return;
        }
        let values = self.alias();
        self.out.push_str("EXISTS (SELECT 1 FROM ");
        // Each value of a multi-valued attribute, or the one value of another.
        self.rows(place.root, path, place.attr.is_multi_valued(), values);
        self.out.push_str(" WHERE ");
        match place.leaf {
            Some(key) => {
                let key = self.json_path(None, key);
                let items = self.alias();
                self.out.push_str("EXISTS (SELECT 1 FROM ");
                self.leaf_rows(values, key, items);
                self.out.push_str(" WHERE ");
                self.predicate(RowRef::Alias(items), pred);
                self.out.push(')');
            }
            None => self.predicate(RowRef::Alias(values), pred),
        }
        self.out.push(')');
    }

    /// Writes a predicate on the value of the row `row`: two-valued, and never
    /// casting a value of another type.
    fn predicate(&mut self, row: RowRef<'_>, pred: LeafPredicate) {
        match (self.dialect, row) {
            // A missing value's `json_type` is NULL, which `NOT` would keep NULL.
            (Dialect::Sqlite, RowRef::At { .. }) => {
                self.out.push_str("COALESCE(");
                self.sqlite_predicate(row, pred);
                self.out.push_str(", 0)");
            }
            (Dialect::Sqlite, RowRef::Alias(_)) => self.sqlite_predicate(row, pred),
            // Every test sits in a CASE or COALESCE that turns NULL into FALSE.
            (Dialect::Postgres, _) => self.postgres_predicate(row, pred),
        }
    }

    fn sqlite_predicate(&mut self, row: RowRef<'_>, pred: LeafPredicate) {
        let test = match pred {
            LeafPredicate::Present => {
                // A leaf may itself be an object (a complex value compared whole).
                sql!(
                    self.out,
                    "((",
                    Ty(row),
                    " NOT IN ('null', 'object', 'array') AND NOT (",
                    Ty(row),
                    " = 'text' AND ",
                    Atom(row),
                    " = '')) OR (",
                    Ty(row),
                    " IN ('object', 'array') AND "
                );
                match row {
                    // Walked inside the document: the value alone may be a bare
                    // string, which is not JSON text.
                    RowRef::At { root, path } => self.present_inside((root, ", ", path)),
                    RowRef::Alias(_) => self.present_inside(Val(row)),
                }
                self.out.push_str("))");
                return;
            }
            LeafPredicate::Test(test) => test,
        };
        match test {
            Test::Never => self.out.push('0'),
            Test::Bool(b) => sql!(self.out, Ty(row), " = '", b, "'"),
            Test::Number(op, n) => match ordering(op) {
                Some(sql_op) => {
                    let p = self.bind(Param::Real(n));
                    sql!(
                        self.out,
                        "(",
                        Ty(row),
                        " IN ('integer', 'real') AND ",
                        Atom(row),
                        " ",
                        sql_op,
                        " ",
                        p,
                        ")"
                    );
                }
                None => self.out.push('0'),
            },
            Test::Time(op, t) => match ordering(op) {
                Some(sql_op) => {
                    let p = self.bind(Param::Text(&t));
                    sql!(
                        self.out,
                        "(",
                        Ty(row),
                        " = 'text' AND ",
                        Atom(row),
                        " ",
                        sql_op,
                        " ",
                        p,
                        ")"
                    );
                }
                None => self.out.push('0'),
            },
            Test::Text(op, s) => {
                let Some(cond) = TextCond::of(op) else {
                    self.out.push('0');
                    return;
                };
                let p = self.bind(Param::Text(&s));
                match cond {
                    TextCond::Contains => sql!(
                        self.out,
                        "(",
                        Ty(row),
                        " = 'text' AND instr(",
                        Atom(row),
                        ", ",
                        p,
                        ") > 0)"
                    ),
                    TextCond::Starts => sql!(
                        self.out,
                        "(",
                        Ty(row),
                        " = 'text' AND substr(",
                        Atom(row),
                        ", 1, length(",
                        p,
                        ")) = ",
                        p,
                        ")"
                    ),
                    TextCond::Ends => sql!(
                        self.out,
                        "(",
                        Ty(row),
                        " = 'text' AND length(",
                        Atom(row),
                        ") >= length(",
                        p,
                        ") AND substr(",
                        Atom(row),
                        ", length(",
                        Atom(row),
                        ") - length(",
                        p,
                        ") + 1) = ",
                        p,
                        ")"
                    ),
                    TextCond::Order(sql_op) => sql!(
                        self.out,
                        "(",
                        Ty(row),
                        " = 'text' AND ",
                        Atom(row),
                        " ",
                        sql_op,
                        " ",
                        p,
                        ")"
                    ),
                }
            }
        }
    }

    /// PostgreSQL: every typed comparison sits in a `CASE` on the value's type, so no
    /// cast ever meets a value of another type.
    fn postgres_predicate(&mut self, row: RowRef<'_>, pred: LeafPredicate) {
        let test = match pred {
            LeafPredicate::Present => {
                sql!(
                    self.out,
                    "(CASE jsonb_typeof(",
                    Val(row),
                    ") WHEN 'string' THEN (",
                    Val(row),
                    " #>> '{}') <> '' WHEN 'number' THEN TRUE WHEN 'boolean' THEN TRUE WHEN 'object' THEN "
                );
                self.present_inside(Val(row));
                self.out.push_str(" WHEN 'array' THEN ");
                self.present_inside(Val(row));
                self.out.push_str(" ELSE FALSE END)");
                return;
            }
            LeafPredicate::Test(test) => test,
        };
        match test {
            Test::Never => self.out.push_str("FALSE"),
            Test::Bool(b) => sql!(
                self.out,
                "COALESCE(jsonb_typeof(",
                Val(row),
                ") = 'boolean' AND ",
                Val(row),
                " = '",
                b,
                "'::jsonb, FALSE)"
            ),
            Test::Number(op, n) => match ordering(op) {
                Some(sql_op) => {
                    let p = self.bind(Param::Real(n));
                    sql!(
                        self.out,
                        "(CASE WHEN jsonb_typeof(",
                        Val(row),
                        ") = 'number' THEN (",
                        Val(row),
                        " #>> '{}')::float8 ",
                        sql_op,
                        " ",
                        p,
                        " ELSE FALSE END)"
                    );
                }
                None => self.out.push_str("FALSE"),
            },
            Test::Time(op, t) => match ordering(op) {
                Some(sql_op) => {
                    let p = self.bind(Param::Text(&t));
                    sql!(
                        self.out,
                        "(CASE WHEN jsonb_typeof(",
                        Val(row),
                        ") = 'string' THEN (",
                        Val(row),
                        " #>> '{}') COLLATE \"C\" ",
                        sql_op,
                        " ",
                        p,
                        " ELSE FALSE END)"
                    );
                }
                None => self.out.push_str("FALSE"),
            },
            Test::Text(op, s) => {
                let Some(cond) = TextCond::of(op) else {
                    self.out.push_str("FALSE");
                    return;
                };
                let p = self.bind(Param::Text(&s));
                sql!(
                    self.out,
                    "(CASE WHEN jsonb_typeof(",
                    Val(row),
                    ") = 'string' THEN "
                );
                match cond {
                    TextCond::Contains => {
                        sql!(self.out, "strpos((", Val(row), " #>> '{}'), ", p, ") > 0")
                    }
                    TextCond::Starts => {
                        sql!(self.out, "starts_with((", Val(row), " #>> '{}'), ", p, ")")
                    }
                    TextCond::Ends => sql!(
                        self.out,
                        "right((",
                        Val(row),
                        " #>> '{}'), length(",
                        p,
                        ")) = ",
                        p
                    ),
                    TextCond::Order(sql_op) => sql!(
                        self.out,
                        "(",
                        Val(row),
                        " #>> '{}') COLLATE \"C\" ",
                        sql_op,
                        " ",
                        p
                    ),
                }
                self.out.push_str(" ELSE FALSE END)");
            }
        }
    }
}

/// Resolves a comparison on `place` as the evaluator reads it; `None` when SQL cannot
/// answer it (it becomes the residual).
fn comparison(place: &Place<'_, '_>, op: CompareOp, value: &CompValue) -> Option<Leaf> {
    comparison_as(Def::of(leaf_def(place)), op, value, &mut Owned)
}

/// The attribute whose values a comparison at `place` reads: the sub-attribute,
/// or a complex attribute's `value`.
fn leaf_def<'r>(place: &Place<'r, '_>) -> &'r Attribute {
    match place.sub {
        Some(sub) => sub,
        None if place.attr.is_complex() => place.attr.sub_attribute("value").unwrap_or(place.attr),
        None => place.attr,
    }
}

/// [`comparison`] of an attribute as [`Def`] describes it, its texts written to
/// `texts`.
#[inline]
fn comparison_as<X: Texts>(
    def: Def,
    op: CompareOp,
    value: &CompValue,
    texts: &mut X,
) -> Option<Leaf<X::Text>> {
    let (negate, op) = match (op, value) {
        (CompareOp::Eq, CompValue::Null) => (true, None),
        (CompareOp::Ne, CompValue::Null) => (false, None),
        (CompareOp::Ne, _) => (true, Some(CompareOp::Eq)),
        (op, _) => (false, Some(op)),
    };
    let pred = match op {
        // Databases cannot bind text holding NUL: such a test is evaluated in
        // memory (a dateTime's instant is written here, without NUL).
        Some(op) => LeafPredicate::Test(test_with(def, op, value, true, texts)?),
        None => LeafPredicate::Present,
    };
    Some(Leaf::Compare { negate, pred })
}

/// What, besides the attribute, decides a comparison's text: the kind of test,
/// its operator, its negation and its guard.
#[inline]
fn shape<T>(leaf: &Leaf<T>, guard: &Guard<T>) -> u32 {
    let (kind, op, negate) = match leaf {
        Leaf::Present => (0, None, false),
        Leaf::Compare { negate, pred } => {
            let (kind, op) = match pred {
                LeafPredicate::Present => (1, None),
                LeafPredicate::Test(Test::Never) => (2, None),
                LeafPredicate::Test(Test::Bool(b)) => (3 + u32::from(*b), None),
                LeafPredicate::Test(Test::Number(op, _)) => (5, Some(*op)),
                LeafPredicate::Test(Test::Time(op, _)) => (6, Some(*op)),
                LeafPredicate::Test(Test::Text(op, _)) => (7, Some(*op)),
            };
            (kind, op, *negate)
        }
    };
    let op = op.map_or(0, op_code);
    let guard = match guard {
        Guard::None => 0,
        Guard::Containment => 1,
        Guard::Equality => 2,
        Guard::Prefix(_) => 3,
    };
    ((kind * 16 + op) * 2 + u32::from(negate)) * 4 + guard
}

/// The type cast PostgreSQL's placeholder of `p` carries.
#[inline]
fn cast(p: &Param<'_>, dialect: Dialect) -> &'static str {
    match (p, dialect) {
        (_, Dialect::Sqlite) => "",
        (Param::Text(_), Dialect::Postgres) => "::text",
        (Param::Real(_), Dialect::Postgres) => "::float8",
        (Param::Bool(_), Dialect::Postgres) => "::boolean",
    }
}

/// Binds `p` (see [`Params::bind`]) and answers its placeholder.
#[inline]
pub(crate) fn bind(params: &mut Params, dialect: Dialect, p: Param<'_>) -> Ph {
    Ph {
        n: params.bind(p),
        cast: cast(&p, dialect),
        dialect,
    }
}

/// Appends `s` as an SQL string literal (`'it''s'`).
fn push_sql_literal(out: &mut String, s: &str) {
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    out.push('\'');
}

/// Appends `s` as a JSON string (RFC 8259 §7).
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    // What must be escaped is ASCII, and no byte of a longer UTF-8 character is.
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < b' ') {
        out.push_str(s);
    } else {
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if c < ' ' => {
                    out.push_str("\\u00");
                    let n = c as u32;
                    for d in [n >> 4, n & 0xF] {
                        out.push(char::from_digit(d, 16).unwrap_or('0'));
                    }
                }
                c => out.push(c),
            }
        }
    }
    out.push('"');
}

/// The first text, in code point order, after every text that starts with `prefix`:
/// the prefix with its last character moved to the next one (carrying past the
/// highest); `None` when there is none.
pub(crate) fn after_prefix(prefix: &str) -> Option<String> {
    let (at, next) = prefix_end(prefix)?;
    let kept = prefix.get(..at).unwrap_or_default();
    let mut upper = String::with_capacity(kept.len() + next.len_utf8());
    upper.push_str(kept);
    upper.push(next);
    Some(upper)
}

/// Whether `s` is ASCII without NUL, and if so whether it has an uppercase
/// letter: eight bytes at a time.
#[inline]
fn ascii_class(s: &[u8]) -> (bool, bool) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let (mut other, mut upper) = (0, 0);
    let mut classify = |w: u64| {
        // A high bit: a byte past ASCII, or (the classic test) a zero byte.
        other |= (w | (w.wrapping_sub(ONES) & !w)) & HIGH;
        // Bytes below 0x80 (no carry between them): + 0x3F sets the high bit of
        // those from `A` on, + 0x25 of those past `Z`.
        upper |= w.wrapping_add(0x3F * ONES) & !w.wrapping_add(0x25 * ONES) & HIGH;
    };
    let word = |at: usize| {
        s.get(at..at.saturating_add(8))
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_le_bytes)
    };
    if s.len() >= 8 {
        let mut at = 0;
        while let Some(w) = word(at) {
            classify(w);
            at += 8;
        }
        // The last bytes, in the word that ends with them (some seen twice).
        if at != s.len() {
            if let Some(w) = word(s.len() - 8) {
                classify(w);
            }
        }
    } else {
        let mut w = [b' '; 8];
        for (to, &b) in w.iter_mut().zip(s) {
            *to = b;
        }
        classify(u64::from_le_bytes(w));
    }
    (other == 0, upper != 0)
}

/// [`after_prefix`] as where the prefix is cut (a byte offset) and the character
/// put there.
#[inline]
fn prefix_end(prefix: &str) -> Option<(usize, char)> {
    for (at, last) in prefix.char_indices().rev() {
        let mut next = u32::from(last) + 1;
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            return Some((at, c));
        }
    }
    None
}

/// What a string comparison does in SQL.
pub(crate) enum TextCond {
    Contains,
    Starts,
    Ends,
    Order(&'static str),
}

impl TextCond {
    pub(crate) fn of(op: CompareOp) -> Option<TextCond> {
        Some(match op {
            CompareOp::Co => TextCond::Contains,
            CompareOp::Sw => TextCond::Starts,
            CompareOp::Ew => TextCond::Ends,
            op => TextCond::Order(ordering(op)?),
        })
    }
}

/// The SQL operator for an ordering or equality.
pub(crate) fn ordering(op: CompareOp) -> Option<&'static str> {
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
pub(crate) fn test(def: &Attribute, op: CompareOp, expected: &CompValue) -> Option<Test> {
    test_as(Def::of(def), op, expected)
}

/// What a comparison reads of the attribute it compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Def {
    kind: AttributeType,
    case_exact: bool,
}

impl Def {
    fn of(def: &Attribute) -> Def {
        Def {
            kind: def.attr_type(),
            case_exact: def.compares_case_exact(),
        }
    }
}

/// [`test`] of an attribute as [`Def`] describes it.
#[inline]
fn test_as(def: Def, op: CompareOp, expected: &CompValue) -> Option<Test> {
    test_with(def, op, expected, false, &mut Owned)
}

/// [`test_as`], its texts written to `texts`; with `bindable`, `None` for text
/// holding NUL too (databases cannot bind it), found in the same pass that folds
/// it.
#[inline]
fn test_with<X: Texts>(
    def: Def,
    op: CompareOp,
    expected: &CompValue,
    bindable: bool,
    texts: &mut X,
) -> Option<Test<X::Text>> {
    Some(match def.kind {
        AttributeType::Boolean => match comp_bool(expected) {
            Some(b) if op == CompareOp::Eq => Test::Bool(b),
            _ => Test::Never,
        },
        AttributeType::Integer | AttributeType::Decimal => match comp_f64(expected) {
            Some(n) => Test::Number(op, n),
            None => Test::Never,
        },
        AttributeType::DateTime if op.is_substring() => return None,
        AttributeType::DateTime => match expected
            .as_str()
            .and_then(|s| texts.write(|out| instant_into(out, s)))
        {
            Some(t) => Test::Time(op, t),
            None => Test::Never,
        },
        AttributeType::Complex => Test::Never,
        _ => {
            let text = match expected {
                CompValue::String(s) => {
                    texts.write(|out| fold_into(out, s, def.case_exact, bindable))?
                }
                CompValue::Number(n) => {
                    let n = n.to_string();
                    texts.write(|out| fold_into(out, &n, def.case_exact, bindable))?
                }
                CompValue::Bool(b) => texts.write(|out| {
                    out.push_str(if *b { "true" } else { "false" });
                    true
                })?,
                CompValue::Null => return Some(Test::Never),
            };
            Test::Text(op, text)
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
    /// The `ORDER BY` list (without the keywords), ending with the id column. It
    /// has no placeholders: the JSON paths in it are canonical names from the
    /// schema, written as literals.
    pub sql: String,
}

/// Orders resources of `schema` as `sort` asks, the way scimkit's in-memory sort
/// does: by type (booleans, then numbers, then dateTimes, then text), then value
/// (text in byte order, already folded unless case-exact), a multi-valued attribute
/// by its primary value or else its first, resources without a value last in
/// ascending order and first in descending, and ties by `id_column` ascending.
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
/// let order = order_by(&sort, &users, "cmp", "id", Dialect::Sqlite);
/// assert!(order.sql.ends_with("id ASC"));
/// assert!(order.sql.contains(r#"'$."emails"'"#)); // a path from the schema
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn order_by(
    sort: &scimkit::store::Sort,
    schema: &ResourceSchema<'_>,
    column: &str,
    id_column: &str,
    dialect: Dialect,
) -> OrderBy {
    let mut w = Writer::new(schema, column, dialect);
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
    OrderBy {
        sql: sql.join(", "),
    }
}

impl Writer<'_, '_> {
    /// The sort keys, most significant first: whether the value is missing, its
    /// type's rank, then its value (one key per SQL type in PostgreSQL).
    fn sort_keys(&mut self, sort: &scimkit::store::Sort) -> Vec<String> {
        let Some(place) = self.place(Scope::Resource, &sort.by) else {
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
    fn sort_leaf(&mut self, place: &Place<'_, '_>) -> String {
        let path = self.place_path(place);
        let root = place.root;
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
                let key_path = self.json_path(None, key);
                match self.dialect {
                    Dialect::Sqlite => format!("({element} -> {key_path})"),
                    Dialect::Postgres => format!("({element} #> {key_path})"),
                }
            }
            None => element,
        }
    }
}

#[cfg(test)]
#[allow(dead_code)] // the user generators are for other properties
#[path = "../../../tests/common/arb.rs"]
mod arb;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::same_shape;
    use scimkit::Registry;
    use std::sync::Arc;

    #[test]
    fn after_prefix_is_the_first_text_past_every_extension() {
        assert_eq!(after_prefix("ab").as_deref(), Some("ac"));
        assert_eq!(after_prefix("Ä").as_deref(), Some("Å"));
        assert_eq!(after_prefix("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(after_prefix("x\u{D7FF}").as_deref(), Some("x\u{E000}"));
        assert_eq!(after_prefix("\u{10FFFF}\u{10FFFF}"), None);
        assert_eq!(after_prefix(""), None);
    }

    /// Text holding NUL cannot be bound: its comparison is left to the residual,
    /// whatever the attribute's case rule and the text's other characters.
    #[test]
    fn text_holding_nul_is_the_residual() {
        let registry = Registry::core();
        let users = registry.resource_type("User").unwrap();
        for text in [
            "userName eq \"a\u{0}b\"",
            "id eq \"a\u{0}\"",
            "displayName co \"Ä\u{0}\"",
            "externalId ne \"\u{0}\"",
        ] {
            let filter: Filter = text.parse().unwrap();
            for dialect in [Dialect::Sqlite, Dialect::Postgres] {
                let t = translate(&filter, &users, "cmp", dialect);
                assert_eq!(t.residual.as_ref(), Some(&filter), "{text}");
                assert!(t.params.is_empty(), "{text}");
            }
        }
    }

    /// A shape is recorded once, then replayed; one with a value filter is not.
    #[test]
    fn translator_records_each_shape_once() {
        let users = SharedResourceSchema::new(Arc::new(Registry::core()), "User").unwrap();
        let f = |text: &str| text.parse::<Filter>().unwrap();
        let first = f(concat!(
            r#"userName eq "a" and title sw "b" and emails.value co "c" and name pr and "#,
            r#"(meta.created gt "2011-05-13T04:42:34Z" or not (active eq true)) and "#,
            r#"nope eq "x" and userName eq "a""#
        ));
        let second = f(concat!(
            r#"userName eq "d" and title sw "e" and emails.value co "f" and name pr and "#,
            r#"(meta.created gt "2012-05-13T04:42:34+02:00" or not (active eq true)) and "#,
            r#"nope eq "y" and userName eq "g""#
        ));
        let value_filter = f(r#"emails[type eq "work"] and userName eq "d""#);
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let translator = Translator::new(users.clone(), "cmp", dialect);
            let kept = || {
                translator
                    .shapes
                    .read()
                    .unwrap()
                    .find(shape_hash(&first), &first)
                    .is_some()
            };
            assert_eq!(
                translator.translate(&first),
                translate(&first, &users.get(), "cmp", dialect)
            );
            assert!(kept());
            assert_eq!(
                translator.translate(&second),
                translate(&second, &users.get(), "cmp", dialect)
            );
            assert_eq!(
                translator.translate(&value_filter),
                translate(&value_filter, &users.get(), "cmp", dialect)
            );
            assert!(
                translator
                    .shapes
                    .read()
                    .unwrap()
                    .find(shape_hash(&value_filter), &value_filter)
                    .is_none()
            );
        }
    }

    /// The word-at-a-time test agrees with a byte-at-a-time one, at every length
    /// and place of the bytes around its boundaries.
    #[test]
    fn ascii_class_agrees_with_bytes() {
        let bytes = [
            0u8, 1, b' ', b'@', b'A', b'M', b'Z', b'[', b'`', b'a', b'z', 0x7F, 0x80, 0xC3, 0xFF,
        ];
        let mut seed = 0x2545_F491_4F6C_DD1D_u64;
        for len in 0..=40 {
            for _ in 0..400 {
                let s: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        // Mostly plain letters, so that the rare bytes stand alone.
                        match seed % 8 {
                            0 => bytes[(seed >> 8) as usize % bytes.len()],
                            _ => b'a' + (seed >> 8) as u8 % 26,
                        }
                    })
                    .collect();
                let plain = s.iter().all(|&b| (1..0x80).contains(&b));
                let upper = plain && s.iter().any(u8::is_ascii_uppercase);
                let (got_plain, got_upper) = ascii_class(&s);
                assert_eq!((got_plain, got_plain && got_upper), (plain, upper), "{s:?}");
            }
        }
    }

    /// A replay shares the recorded text when its values get the recorded
    /// placeholders, and fills the holes when values repeat otherwise (one text
    /// bound once, used twice).
    #[test]
    fn replays_share_or_fill_the_text() {
        let users = SharedResourceSchema::new(Arc::new(Registry::core()), "User").unwrap();
        let f = |text: &str| text.parse::<Filter>().unwrap();
        let recorded = f(r#"userName eq "a" and title sw "B" and displayName eq "d""#);
        let same = f(r#"userName eq "x" and title sw "Y" and displayName eq "w""#);
        // `title`'s prefix `b`, `displayName`'s `b` is the same text: one placeholder.
        let repeated = f(r#"userName eq "x" and title sw "b" and displayName eq "B""#);
        let long = "q".repeat(40);
        let longer = f(&format!(
            r#"userName eq "x" and title sw "{long}" and displayName eq "z""#
        ));
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let translator = Translator::new(users.clone(), "cmp", dialect);
            // The first is written directly, and its shape recorded.
            assert_eq!(
                translator.translate(&recorded),
                translate(&recorded, &users.get(), "cmp", dialect)
            );
            let first = translator.translate(&same);
            let second = translator.translate(&same);
            assert!(Arc::ptr_eq(&first.sql, &second.sql));
            for filter in [&same, &repeated, &longer] {
                let direct = translate(filter, &users.get(), "cmp", dialect);
                assert_eq!(translator.translate(filter), direct, "{filter}");
            }
            let t = translator.translate(&repeated);
            assert!(t.params.len() < translator.translate(&same).params.len());
            // Recorded with values that repeat (the prefix's upper bound `c` is
            // the next comparison's text): the shared text is still the one for
            // values that do not.
            let translator = Translator::new(users.clone(), "cmp", dialect);
            let coincide = f(r#"userName eq "a" and title sw "b" and displayName eq "c""#);
            translator.translate(&coincide);
            let first = translator.translate(&same);
            assert!(Arc::ptr_eq(&first.sql, &translator.translate(&same).sql));
            assert_eq!(first, translate(&same, &users.get(), "cmp", dialect));
            assert_eq!(
                translator.translate(&coincide),
                translate(&coincide, &users.get(), "cmp", dialect)
            );
            let t = translator.translate(&longer);
            assert!(
                t.params
                    .iter()
                    .any(|p| p == Param::Text(&format!("{}r", &long[1..])))
            );
        }
    }

    /// Under one hash: a shape recorded again in the same form is kept once, in
    /// other forms beside it, and at most four are kept (the oldest goes).
    #[test]
    fn shapes_under_one_hash_are_bounded() {
        let users = SharedResourceSchema::new(Arc::new(Registry::core()), "User").unwrap();
        let translator = Translator::new(users.clone(), "cmp", Dialect::Sqlite);
        let schema = users.get();
        let record = |text: &str| {
            let f: Filter = text.parse().unwrap();
            let t = translate(&f, &schema, "cmp", Dialect::Sqlite);
            translator.record(&schema, &f, &t).unwrap()
        };
        let mut shapes = Shapes::default();
        let hash = 7;
        assert!(
            shapes
                .insert(hash, record(r#"active eq "true""#), 100)
                .is_empty()
        );
        // The same form again: kept once.
        assert_eq!(
            shapes
                .insert(hash, record(r#"active eq "TRUE""#), 100)
                .len(),
            1
        );
        // Other forms of the same shape: kept beside it.
        assert!(
            shapes
                .insert(hash, record(r#"active eq "false""#), 100)
                .is_empty()
        );
        assert!(
            shapes
                .insert(hash, record(r#"active eq "x""#), 100)
                .is_empty()
        );
        assert_eq!(shapes.candidates(hash).len(), 3);
        assert!(
            shapes
                .insert(hash, record(r#"title eq "x""#), 100)
                .is_empty()
        );
        // A fifth: the oldest goes.
        let forgotten = shapes.insert(hash, record(r#"nickName pr"#), 100);
        assert_eq!(forgotten.len(), 1);
        assert_eq!(
            forgotten.first().map(|s| s.filter.to_string()),
            Some(r#"active eq "true""#.to_owned())
        );
        assert_eq!(shapes.candidates(hash).len(), 4);
        // Past the most shapes, every other goes.
        assert_eq!(shapes.insert(8, record(r#"userName pr"#), 4).len(), 4);
        assert_eq!(
            (shapes.candidates(hash).len(), shapes.candidates(8).len()),
            (0, 1)
        );
        // Forms that alternate are both replayed.
        let forms: Vec<Filter> = [r#"userName sw "a""#, "userName sw \"\u{10FFFF}\""]
            .iter()
            .map(|t| t.parse().unwrap())
            .collect();
        for f in forms.iter().chain(&forms) {
            assert_eq!(
                translator.translate(f),
                translate(f, &schema, "cmp", Dialect::Sqlite)
            );
        }
        let kept = translator.shapes.read().unwrap();
        assert_eq!(kept.candidates(shape_hash(&forms[0])).len(), 2);
        for f in &forms {
            let replayed = kept.candidates(shape_hash(f)).iter().find_map(|shape| {
                Writer::sized(&schema, "cmp", Dialect::Sqlite, 0).replay(shape, f)
            });
            assert_eq!(
                replayed,
                Some(translate(f, &schema, "cmp", Dialect::Sqlite))
            );
        }
    }

    /// `f` with its values replaced, in order, by `values` (cycled).
    fn with_values(f: &Filter, values: &[CompValue], next: &mut usize) -> Filter {
        match f {
            Filter::And(parts) => {
                Filter::And(parts.iter().map(|p| with_values(p, values, next)).collect())
            }
            Filter::Or(parts) => {
                Filter::Or(parts.iter().map(|p| with_values(p, values, next)).collect())
            }
            Filter::Not(inner) => Filter::Not(Box::new(with_values(inner, values, next))),
            Filter::ValuePath(p, inner) => {
                Filter::ValuePath(p.clone(), Box::new(with_values(inner, values, next)))
            }
            Filter::Compare(p, op, v) => {
                let value = values.get(*next % values.len().max(1)).unwrap_or(v).clone();
                *next += 1;
                Filter::Compare(p.clone(), *op, value)
            }
            Filter::Present(p) => Filter::Present(p.clone()),
        }
    }

    fn value() -> impl proptest::strategy::Strategy<Value = CompValue> {
        use proptest::prelude::*;
        prop_oneof![
            6 => proptest::sample::select(arb::STRINGS).prop_map(CompValue::from),
            1 => Just(CompValue::Null),
            1 => any::<bool>().prop_map(CompValue::Bool),
            1 => (-3i64..50).prop_map(CompValue::from),
            1 => Just("\u{10FFFF}").prop_map(CompValue::from),
            1 => Just("a\u{0}b").prop_map(CompValue::from),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3_000))]

        /// A recorded shape replayed with other values translates exactly as
        /// `translate` does, or declines (and the translator writes it afresh).
        #[test]
        fn replays_are_exact(
            filter in arb::filter(),
            values in proptest::collection::vec(value(), 1..8),
        ) {
            let users = SharedResourceSchema::new(Arc::new(Registry::core()), "User").unwrap();
            let other = with_values(&filter, &values, &mut 0);
            for dialect in [Dialect::Sqlite, Dialect::Postgres] {
                let translator = Translator::new(users.clone(), "cmp", dialect);
                let direct = translate(&filter, &users.get(), "cmp", dialect);
                proptest::prop_assert_eq!(translator.translate(&filter), direct.clone());
                let shapes = translator.shapes.read().unwrap();
                let Some(shape) = shapes.find(shape_hash(&filter), &filter) else {
                    // Only filters with a residual or a value filter are not kept.
                    proptest::prop_assert!(direct.residual.is_some() || has_value_path(&filter), "{}", filter);
                    continue;
                };
                let schema = users.get();
                // Replaying the recorded filter gives its own translation.
                let mut w = Writer::sized(&schema, "cmp", dialect, 0);
                proptest::prop_assert_eq!(w.replay(shape, &filter), Some(direct));
                if !same_shape(&filter, &other) {
                    let mut w = Writer::sized(&schema, "cmp", dialect, 0);
                    proptest::prop_assert!(w.replay(shape, &other).is_none(), "{} / {}", filter, other);
                } else {
                    let expected = translate(&other, &schema, "cmp", dialect);
                    let mut w = Writer::sized(&schema, "cmp", dialect, 0);
                    if let Some(replayed) = w.replay(shape, &other) {
                        proptest::prop_assert_eq!(replayed, expected, "{} / {}", filter, other);
                    }
                    drop(shapes);
                    proptest::prop_assert_eq!(translator.translate(&other), translate(&other, &schema, "cmp", dialect));
                }
            }
        }
    }
}
