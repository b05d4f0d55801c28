//! Atomic application of a PatchOp (RFC 7644 §3.5.2): target resolution, the
//! undo journal, and add/remove/replace on every kind of attribute.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::{Map, Value};

use super::journal::{ElementChange, Journal};
use super::{PatchOptions, PatchOutcome, quirks};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::message::{OpKind, PatchOp, PatchOperation};
use crate::path::{AttrPath, Path};
use crate::schema::normalize::{coerce, coerce_single};
use crate::schema::registry::split_urn;
use crate::schema::{AttrRef, Attribute, Mutability, ResourceSchema, Schema, urn};

/// Applies every operation of `patch` to `resource`, in order, or none of them.
///
/// `resource` is the JSON object of a resource of the type `schema` describes.
/// On success the outcome says whether the resource changed; on error the
/// resource is exactly as it was and the error's detail names the failing
/// operation (`Operations[2] (replace emails[type eq "work"].value): …`).
///
/// # Errors
/// - 400 `invalidSyntax`: `schemas` is not the PatchOp URN, `Operations` is empty
///   (strict), or `add`/`replace` has no `value`;
/// - 400 `invalidPath`: a path does not parse, or (strict) names no attribute;
/// - 400 `noTarget`: `remove` without a path, or a value filter that selects nothing
///   (for `remove`, strict only; for `add`/`replace`, when leniency cannot create
///   the value either);
/// - 400 `invalidValue`: a value of the wrong type;
/// - 400 `mutability`: changing a `readOnly` attribute, or an `immutable` one that has
///   a value; removing or unassigning a required attribute (RFC 7644 §3.5.2.2);
/// - 413: more operations than [`PatchOptions::max_operations`] allows.
pub fn apply(
    schema: &ResourceSchema<'_>,
    resource: &mut Value,
    patch: &PatchOp,
    options: &PatchOptions,
) -> Result<PatchOutcome> {
    validate_message(patch, options)?;
    let Value::Object(obj) = resource else {
        return Err(Error::internal("the stored resource is not a JSON object"));
    };
    let mut engine = Engine {
        rs: schema,
        opts: *options,
        obj,
        journal: Journal::default(),
    };
    let ops = &patch.operations;
    let mut i = 0;
    while i < ops.len() {
        let result = match engine.keyed_removals(&ops[i..]) {
            Some(run) => run.map_err(|(k, e)| (i + k, e)).map(|n| i + n),
            None => engine
                .operation(&ops[i])
                .map_err(|e| (i, e))
                .map(|()| i + 1),
        };
        match result {
            Ok(next) => i = next,
            Err((failed, e)) => {
                engine.rollback();
                let op = &ops[failed];
                let path = op
                    .path
                    .as_deref()
                    .map(|p| format!(" {p}"))
                    .unwrap_or_default();
                let detail = format!("Operations[{failed}] ({}{path}): {}", op.op, e.detail());
                return Err(e.with_detail(detail));
            }
        }
    }
    Ok(PatchOutcome {
        changed: engine.changed(),
    })
}

/// Checks a PatchOp's shape before any operation is applied: `schemas`, the
/// number of operations.
pub(crate) fn validate_message(patch: &PatchOp, options: &PatchOptions) -> Result<()> {
    if patch.operations.len() > options.max_operations {
        return Err(Error::payload_too_large(format!(
            "the PatchOp has {} operations, more than the limit of {}",
            patch.operations.len(),
            options.max_operations
        )));
    }
    if patch.operations.is_empty() && !options.lenient {
        return Err(Error::invalid_syntax("the PatchOp has no Operations"));
    }
    let has_urn = patch
        .schemas
        .iter()
        .any(|s| s.eq_ignore_ascii_case(urn::PATCH_OP));
    if !has_urn && (!patch.schemas.is_empty() || !options.lenient) {
        return Err(Error::invalid_syntax(format!(
            "a PatchOp's \"schemas\" must be [\"{}\"]",
            urn::PATCH_OP
        )));
    }
    Ok(())
}

/// What a path points at.
pub(super) enum Target<'r> {
    /// An attribute the schema defines, with the sub-attribute the path ends at.
    Attr(AttrRef<'r>, Option<&'r Attribute>),
    /// A whole extension object, e.g. `urn:…:enterprise:2.0:User`.
    Extension(&'r Schema),
    /// An attribute no schema defines (lenient only): `container` is the extension
    /// URN it was qualified with, if any.
    Unknown {
        container: Option<String>,
        key: String,
    },
}

pub(super) struct Engine<'a, 'r> {
    rs: &'a ResourceSchema<'r>,
    pub(super) opts: PatchOptions,
    pub(super) obj: &'a mut Map<String, Value>,
    /// The undo journal (see [`Journal`]).
    pub(super) journal: Journal,
}

impl<'r> Engine<'_, 'r> {
    /// Records a top-level member as it is, before it is first touched.
    pub(super) fn save(&mut self, key: &str) {
        self.journal.snapshot(self.obj, key);
    }

    fn rollback(&mut self) {
        self.journal.rollback(self.obj);
    }

    fn changed(&self) -> bool {
        self.journal.changed(self.obj)
    }

    fn operation(&mut self, op: &PatchOperation) -> Result<()> {
        let Some(path) = &op.path else {
            if op.op == OpKind::Remove {
                return Err(Error::no_target(
                    "remove needs a \"path\" naming what to remove (RFC 7644 §3.5.2.2)",
                ));
            }
            let Some(Value::Object(attrs)) = &op.value else {
                return Err(Error::invalid_value(
                    "without a \"path\", the \"value\" must be an object of attributes",
                ));
            };
            for (key, value) in attrs {
                self.keyed(op.op, key, value)?;
            }
            return Ok(());
        };
        let path = Path::parse_with(path, &self.opts.filter)?;
        self.at_path(op.op, &path, op.value.as_ref())
    }

    /// One member of a path-less value: an attribute name (URN-qualified, or
    /// dotted when lenient), or an extension URN with an object of its attributes.
    fn keyed(&mut self, op: OpKind, key: &str, value: &Value) -> Result<()> {
        if key.eq_ignore_ascii_case("schemas") {
            // The engine keeps `schemas` in step with the extensions present.
            return Ok(());
        }
        if let Some(ext) = self.rs.extension(key) {
            return self.extension_attrs(op, ext, value);
        }
        let dotted = split_urn(key).1.contains('.');
        if dotted && !self.opts.lenient {
            return Err(Error::invalid_path(format!(
                "the value's key {key:?} is a dotted path; give the attribute as an object, or use \"path\""
            )));
        }
        let path = Path::parse_with(key, &self.opts.filter)?;
        if path.filter().is_some() {
            return Err(Error::invalid_path(format!(
                "the value's key {key:?} has a value filter; use \"path\" for that"
            )));
        }
        self.at_path(op, &path, Some(value))
    }

    /// The attributes of an extension object, each added or replaced.
    fn extension_attrs(&mut self, op: OpKind, ext: &Schema, value: &Value) -> Result<()> {
        let Value::Object(attrs) = value else {
            return Err(Error::invalid_value(format!(
                "the extension {} must be given as an object of its attributes",
                ext.id
            )));
        };
        for (key, v) in attrs {
            if key.eq_ignore_ascii_case("schemas") {
                // Some clients serialise the extension object with its own `schemas`.
                continue;
            }
            let path = Path::parse_with(&format!("{}:{key}", ext.id), &self.opts.filter)?;
            self.at_path(op, &path, Some(v))?;
        }
        Ok(())
    }

    fn at_path(&mut self, op: OpKind, path: &Path, value: Option<&Value>) -> Result<()> {
        if path.attr().name().eq_ignore_ascii_case("schemas")
            && path
                .attr()
                .schema()
                .is_none_or(|s| s.eq_ignore_ascii_case(&self.rs.core().id))
        {
            // `schemas` is kept in step with the extensions present by the engine itself.
            return Ok(());
        }
        let needs_value =
            || Error::invalid_syntax(format!("{op} needs a \"value\" (RFC 7644 §3.5.2)"));
        match self.resolve(path)? {
            Target::Extension(ext) => match op {
                OpKind::Remove => self.remove_extension(ext),
                _ => self.extension_attrs(op, ext, value.ok_or_else(needs_value)?),
            },
            Target::Unknown { container, key } => {
                if container.is_none() {
                    let top = find_key(self.obj, &key)
                        .unwrap_or(Cow::Borrowed(&key))
                        .into_owned();
                    self.save(&top);
                }
                let container = self.raw_container(container.as_deref(), op != OpKind::Remove);
                match container {
                    Some(c) => quirks::raw_operation(op, c, &key, value),
                    None => Ok(()),
                }
            }
            Target::Attr(at, sub) => {
                let result = match op {
                    OpKind::Remove => self.remove(&at, sub, path.filter(), value),
                    _ => self.write(op, &at, sub, path.filter(), value.ok_or_else(needs_value)?),
                };
                self.tidy(&at);
                result
            }
        }
    }

    pub(super) fn resolve(&self, path: &Path) -> Result<Target<'r>> {
        let attr = path.attr();
        if path.filter().is_none() && path.sub_attr().is_none() {
            if let Some(schema) = attr.schema() {
                if let Some(ext) = self.rs.extension(&format!("{schema}:{}", attr.name())) {
                    return Ok(Target::Extension(ext));
                }
            }
        }
        let Some(found) = self.rs.attribute(attr.schema(), attr.name()) else {
            return self.unknown(attr, path);
        };
        let def = found.attribute;
        let sub = match path.sub_attr() {
            Some(name) => Some(def.sub_attribute(name).ok_or_else(|| {
                Error::invalid_path(format!("'{}' has no sub-attribute '{name}'", def.name()))
            })?),
            None => None,
        };
        if let Some(filter) = path.filter() {
            if !(def.is_complex() && def.is_multi_valued()) {
                return Err(Error::invalid_path(format!(
                    "'{}' is not a multi-valued complex attribute, so it cannot take a value filter",
                    def.name()
                )));
            }
            // The same rules as a list filter: types fit, and nothing never-returned.
            filter.check_element(def)?;
        }
        Ok(Target::Attr(found, sub))
    }

    fn unknown(&self, attr: &AttrPath, path: &Path) -> Result<Target<'r>> {
        let undefined = || {
            Error::invalid_path(format!(
                "'{attr}' is not an attribute of the {} resource type",
                self.rs.name()
            ))
        };
        if !self.opts.lenient || path.filter().is_some() || path.sub_attr().is_some() {
            return Err(undefined());
        }
        match attr.schema() {
            Some(s) if s.eq_ignore_ascii_case(&self.rs.core().id) => Err(undefined()),
            Some(s) if self.rs.has_schema(s) => Err(undefined()),
            container => Ok(Target::Unknown {
                container: container.map(str::to_owned),
                key: attr.name().to_owned(),
            }),
        }
    }

    /// The object holding `at`'s value, journaled before it is touched; an
    /// extension object is created (and its URN added to `schemas`) if `create`.
    pub(super) fn container(
        &mut self,
        at: &AttrRef<'_>,
        create: bool,
    ) -> Result<Option<&mut Map<String, Value>>> {
        if !at.extension {
            let key = find_key(self.obj, at.attribute.name())
                .unwrap_or(Cow::Borrowed(at.attribute.name()));
            let key: &str = &key;
            self.save(key);
            return Ok(Some(self.obj));
        }
        let ext_key = find_key(self.obj, at.schema).unwrap_or(Cow::Borrowed(at.schema));
        let ext_key: &str = &ext_key;
        self.save(ext_key);
        if !self.obj.contains_key(ext_key) {
            if !create {
                return Ok(None);
            }
            self.obj
                .insert(ext_key.to_owned(), Value::Object(Map::new()));
            self.add_schema_urn(at.schema);
        }
        match self.obj.get_mut(ext_key) {
            Some(Value::Object(map)) => Ok(Some(map)),
            _ => Err(Error::invalid_value(format!(
                "the resource's {} member is not an object",
                at.schema
            ))),
        }
    }

    /// The object holding an attribute no schema defines: the resource, or an
    /// object under the URN it was qualified with.
    fn raw_container(
        &mut self,
        container: Option<&str>,
        create: bool,
    ) -> Option<&mut Map<String, Value>> {
        let Some(urn) = container else {
            return Some(self.obj);
        };
        let key = find_key(self.obj, urn).unwrap_or(Cow::Borrowed(urn));
        let key: &str = &key;
        self.save(key);
        if !self.obj.contains_key(key) {
            if !create {
                return None;
            }
            self.obj.insert(key.to_owned(), Value::Object(Map::new()));
            self.add_schema_urn(urn);
        }
        match self.obj.get_mut(key) {
            Some(Value::Object(map)) => Some(map),
            _ => None,
        }
    }

    fn add_schema_urn(&mut self, id: &str) {
        let key = find_key(self.obj, "schemas").unwrap_or(Cow::Borrowed("schemas"));
        let key: &str = &key;
        self.save(key);
        let schemas = self
            .obj
            .entry(key)
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = schemas {
            if !list
                .iter()
                .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(id)))
            {
                list.push(Value::String(id.to_owned()));
            }
        }
    }

    fn remove_schema_urn(&mut self, id: &str) {
        let Some(key) = find_key(self.obj, "schemas") else {
            return;
        };
        let key: &str = &key;
        self.save(key);
        if let Some(Value::Array(list)) = self.obj.get_mut(key) {
            list.retain(|s| !s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(id)));
        }
    }

    fn remove_extension(&mut self, ext: &Schema) -> Result<()> {
        if self
            .rs
            .extensions()
            .any(|(s, required)| required && s.id == ext.id)
        {
            return Err(Error::mutability(format!(
                "the extension {} is required and cannot be removed",
                ext.id
            )));
        }
        if let Some(key) = find_key(self.obj, &ext.id) {
            self.save(&key);
            self.obj.remove(key.as_ref());
            self.remove_schema_urn(&ext.id);
        }
        Ok(())
    }

    /// After an operation on `at`: an emptied attribute is removed, and an
    /// emptied extension object with it, URN and all.
    pub(super) fn tidy(&mut self, at: &AttrRef<'_>) {
        let ext_key = at
            .extension
            .then(|| find_key(self.obj, at.schema))
            .flatten()
            .map(Cow::into_owned);
        let container = match &ext_key {
            Some(k) => match self.obj.get(k) {
                Some(Value::Object(map)) => map,
                _ => return,
            },
            None if at.extension => return,
            None => &*self.obj,
        };
        let name = at.attribute.name();
        let emptied = match container.get(name) {
            Some(v) => is_empty(v).then(|| name.to_owned()),
            None => find_key(container, name)
                .filter(|k| container.get(k.as_ref()).is_some_and(is_empty))
                .map(Cow::into_owned),
        };
        if let Some(key) = emptied {
            // Journaled here whatever came before: an operation that failed, or found
            // nothing to do, may have written no entry for the member it leaves.
            let top = ext_key.clone().unwrap_or_else(|| key.clone());
            self.save(&top);
            let container = match &ext_key {
                Some(k) => match self.obj.get_mut(k) {
                    Some(Value::Object(map)) => map,
                    _ => return,
                },
                None => &mut *self.obj,
            };
            container.remove(&key);
        }
        if let Some(k) = ext_key {
            if self.obj.get(&k).is_some_and(is_empty) {
                self.save(&k);
                self.obj.remove(&k);
                self.remove_schema_urn(at.schema);
            }
        }
    }

    /// `add` or `replace` (RFC 7644 §3.5.2.1, §3.5.2.3).
    fn write(
        &mut self,
        op: OpKind,
        at: &AttrRef<'_>,
        sub: Option<&Attribute>,
        filter: Option<&Filter>,
        value: &Value,
    ) -> Result<()> {
        let lenient = self.opts.lenient;
        let attr = at.attribute;
        if op == OpKind::Add && filter.is_none() && sub.is_none() && attr.is_multi_valued() {
            if let Some(result) = self.append_values(at, value) {
                return result;
            }
        }
        if let (false, Some(filter), Some(sub)) = (at.extension, filter, sub) {
            if let Some(done) = self.set_sub_of_selected(attr, sub, filter, value) {
                return done;
            }
        }
        if !at.extension && filter.is_none() && !attr.is_multi_valued() {
            let done = match sub {
                None if !attr.is_complex() => self.replace_simple(op, attr, value).map(Some),
                Some(sub) => self.set_sub_in_place(attr, sub, value),
                None => Ok(None),
            };
            if let Some(()) = done? {
                return Ok(());
            }
        }
        let Some(container) = self.container(at, true)? else {
            return Ok(());
        };
        let key = find_key(container, attr.name()).unwrap_or(Cow::Borrowed(attr.name()));
        let key: &str = &key;
        if attr.mutability() == Mutability::ReadOnly
            && (filter.is_some() || (sub.is_some() && attr.is_multi_valued()))
        {
            return Err(Error::mutability(format!(
                "'{}' is readOnly and cannot be changed",
                attr.name()
            )));
        }
        match (filter, sub) {
            (None, None) if attr.is_multi_valued() => {
                write_list(op, attr, container, key, value)?;
                if attr.is_required() && container.get(key).is_none_or(is_empty) {
                    return Err(Error::mutability(format!(
                        "'{}' is required and cannot be emptied",
                        attr.name()
                    )));
                }
                Ok(())
            }
            (None, None) if attr.is_complex() => {
                let parent = object_slot(container, key, attr)?;
                merge_element(attr, parent, value, lenient)
            }
            (None, None) => replace_member(op, attr, container, value).map(drop),
            (None, Some(sub)) if !attr.is_multi_valued() => {
                let parent = object_slot(container, key, attr)?;
                set_sub(attr, sub, parent, value)
            }
            (filter, sub) => {
                let list = list_slot(container, key, attr)?;
                write_selected(op, attr, sub, filter, list, value, lenient)
            }
        }
    }

    /// `add` or `replace` of a single-valued simple attribute of the core schema:
    /// the old value moves into the journal (RFC 7644 §3.5.2.1, §3.5.2.3).
    fn replace_simple(&mut self, op: OpKind, attr: &Attribute, value: &Value) -> Result<()> {
        if let Some((key, old)) = replace_member(op, attr, self.obj, value)? {
            self.journal.replaced(&key, old);
        }
        Ok(())
    }

    /// A sub-attribute of a single-valued complex attribute of the core schema set
    /// to a value, in an object that is there already: the old sub-value moves into
    /// the journal. `None` when the general path must do it (the object is absent,
    /// or the value unassigns the sub-attribute, which may empty the object).
    fn set_sub_in_place(
        &mut self,
        attr: &Attribute,
        sub: &Attribute,
        value: &Value,
    ) -> Result<Option<()>> {
        let Some(key) = find_key(self.obj, attr.name()) else {
            return Ok(None);
        };
        let Some(Value::Object(parent)) = self.obj.get_mut(key.as_ref()) else {
            return Ok(None);
        };
        let path = [attr.name(), ".", sub.name()].concat();
        let Some(new) = coerce(sub, &path, value.clone())? else {
            return Ok(None);
        };
        if is_empty(&new) {
            return Ok(None);
        }
        let (sub_key, old) = put(sub, &path, parent, Some(new))?;
        self.journal.sub_set(&key, &sub_key, old);
        Ok(Some(()))
    }

    /// A sub-attribute of the values a filter selects in a list of the core schema
    /// set (`emails[type eq "work"].value`), each old sub-value moved into the
    /// journal, and so are the `primary` marks that change. `None` when the general
    /// path must do it (no list, or nothing selected: a value may be created).
    fn set_sub_of_selected(
        &mut self,
        attr: &Attribute,
        sub: &Attribute,
        filter: &Filter,
        value: &Value,
    ) -> Option<Result<()>> {
        if !attr.is_multi_valued() || attr.mutability() == Mutability::ReadOnly {
            return None;
        }
        let key = find_key(self.obj, attr.name())?.into_owned();
        let Some(Value::Array(list)) = self.obj.get_mut(&key) else {
            return None;
        };
        let selected = select(attr, Some(filter), list);
        if selected.is_empty() {
            return None;
        }
        let path = [attr.name(), ".", sub.name()].concat();
        let new = match coerce(sub, &path, value.clone()) {
            Ok(new) => new,
            Err(e) => return Some(Err(e)),
        };
        let mut changes = Vec::with_capacity(selected.len());
        let mut result = Ok(());
        for &i in &selected {
            let Some(Value::Object(element)) = list.get_mut(i) else {
                continue;
            };
            match put(sub, &path, element, new.clone()) {
                Ok((sub_key, old)) => changes.push((i, sub_key.into_owned(), old)),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if result.is_ok() {
            changes.extend(fix_primary(attr, list, &selected));
        }
        self.journal.element_subs(&key, changes);
        Some(result)
    }

    /// `remove` (RFC 7644 §3.5.2.2).
    fn remove(
        &mut self,
        at: &AttrRef<'_>,
        sub: Option<&Attribute>,
        filter: Option<&Filter>,
        value: Option<&Value>,
    ) -> Result<()> {
        let lenient = self.opts.lenient;
        let attr = at.attribute;
        if let (Some(filter), None, false) = (filter, sub, at.extension) {
            if attr.is_multi_valued() {
                return self.remove_selected(at, filter);
            }
        }
        let no_target = || no_target(attr, filter);
        let Some(container) = self.container(at, false)? else {
            return if filter.is_some() && !lenient {
                Err(no_target())
            } else {
                Ok(())
            };
        };
        let Some(key) = find_key(container, attr.name()) else {
            return if filter.is_some() && !lenient {
                Err(no_target())
            } else {
                Ok(())
            };
        };
        let key: &str = &key;
        match (filter, sub) {
            (None, None) => {
                if let (Some(listed), true) = (value, attr.is_multi_valued()) {
                    if !lenient {
                        return Err(Error::invalid_value(format!(
                            "remove takes no \"value\"; select the values to remove with a filter such as {}[value eq \"…\"]",
                            attr.name()
                        )));
                    }
                    let list = list_slot(container, key, attr)?;
                    check_removal(attr)?;
                    return quirks::remove_listed(attr, list, listed);
                }
                if attr.is_required() {
                    return Err(Error::mutability(format!(
                        "'{}' is required and cannot be removed",
                        attr.name()
                    )));
                }
                check_mutability(attr, attr.name(), container.get(key), None)?;
                container.remove(key);
                Ok(())
            }
            (None, Some(sub)) if !attr.is_multi_valued() => {
                let parent = object_slot(container, key, attr)?;
                unset_sub(attr, sub, parent)
            }
            (filter, sub) => {
                let list = list_slot(container, key, attr)?;
                let selected = select(attr, filter, list);
                if selected.is_empty() {
                    return if lenient || filter.is_none() {
                        Ok(())
                    } else {
                        Err(no_target())
                    };
                }
                match sub {
                    Some(sub) => {
                        for &i in &selected {
                            if let Some(Value::Object(element)) = list.get_mut(i) {
                                unset_sub(attr, sub, element)?;
                            }
                        }
                        list.retain(|e| !is_empty(e));
                    }
                    None => {
                        check_removal(attr)?;
                        if attr.is_required() && selected.len() == list.len() {
                            return Err(Error::mutability(format!(
                                "'{}' is required; removing every value would leave it empty",
                                attr.name()
                            )));
                        }
                        let mut i = 0;
                        let mut next = selected.iter().peekable();
                        list.retain(|_| {
                            let keep = next.peek() != Some(&&i);
                            if !keep {
                                next.next();
                            }
                            i += 1;
                            keep
                        });
                    }
                }
                Ok(())
            }
        }
    }
}

pub(super) fn no_target(attr: &Attribute, filter: Option<&Filter>) -> Error {
    match filter {
        Some(f) => Error::no_target(format!(
            "no value of '{}' matches the filter [{f}]",
            attr.name()
        )),
        None => Error::no_target(format!("'{}' has no value", attr.name())),
    }
}

/// `add` or `replace` on a whole multi-valued attribute.
fn write_list(
    op: OpKind,
    attr: &Attribute,
    container: &mut Map<String, Value>,
    key: &str,
    value: &Value,
) -> Result<()> {
    let items = match coerce(attr, attr.name(), value.clone())? {
        Some(Value::Array(items)) => items,
        Some(single) => vec![single],
        None => Vec::new(),
    };
    if op == OpKind::Replace {
        let mut list = Vec::with_capacity(items.len());
        let mut touched = Vec::new();
        append_unique(attr, &mut list, items, &mut touched);
        let new = (!list.is_empty()).then_some(Value::Array(list));
        check_mutability(attr, attr.name(), container.get(key), new.as_ref())?;
        set(container, key, new);
        if let Some(Value::Array(list)) = container.get_mut(key) {
            fix_primary(attr, list, &touched);
        }
        return Ok(());
    }
    let list = list_slot(container, key, attr)?;
    let before = list.len();
    let mut touched = Vec::new();
    let merged = append_unique(attr, list, items, &mut touched);
    if attr.mutability() == Mutability::ReadOnly && (list.len() != before || merged) {
        return Err(Error::mutability(format!("'{}' is readOnly", attr.name())));
    }
    fix_primary(attr, list, &touched);
    Ok(())
}

/// Appends `items` to `list`, merging each into an equal value already there
/// (RFC 7644 §3.5.2.1: an existing value is not added again). Records the
/// indices written in `touched`; returns whether an existing value changed.
fn append_unique(
    attr: &Attribute,
    list: &mut Vec<Value>,
    items: Vec<Value>,
    touched: &mut Vec<usize>,
) -> bool {
    // A few items (the usual member add) are looked up by scanning; many (a
    // replace of a whole list) through a hash index, so both stay linear.
    let mut index: Option<HashMap<String, usize>> = (items.len() > 8).then(|| {
        let mut index = HashMap::with_capacity(list.len() + items.len());
        for (i, e) in list.iter().enumerate() {
            if let Some(key) = quirks::identity_key(attr, e) {
                index.entry(key).or_insert(i);
            }
        }
        index
    });
    let mut changed = false;
    for item in items {
        let key = index
            .as_ref()
            .and_then(|_| quirks::identity_key(attr, &item));
        let existing = match (&index, &key) {
            (Some(index), Some(key)) => index.get(key).copied(),
            _ => list.iter().position(|e| quirks::same_value(attr, e, &item)),
        };
        match existing {
            Some(i) => {
                if let (Some(Value::Object(old)), Value::Object(new)) = (list.get_mut(i), item) {
                    for (k, v) in new {
                        if old.get(&k) != Some(&v) {
                            old.insert(k, v);
                            changed = true;
                        }
                    }
                }
                touched.push(i);
            }
            None => {
                if let (Some(index), Some(key)) = (index.as_mut(), key) {
                    index.insert(key, list.len());
                }
                touched.push(list.len());
                list.push(item);
            }
        }
    }
    changed
}

/// The indices of the values a filter selects (all of them without a filter).
pub(super) fn select(attr: &Attribute, filter: Option<&Filter>, list: &[Value]) -> Vec<usize> {
    let bound = filter.map(|f| f.bind_element(attr));
    list.iter()
        .enumerate()
        .filter(|(_, e)| match &bound {
            None => true,
            Some(f) => e.as_object().is_some_and(|o| f.matches_element(o)),
        })
        .map(|(i, _)| i)
        .collect()
}

/// `add` or `replace` on the values a filter selects, or on a sub-attribute of them.
fn write_selected(
    op: OpKind,
    attr: &Attribute,
    sub: Option<&Attribute>,
    filter: Option<&Filter>,
    list: &mut Vec<Value>,
    value: &Value,
    lenient: bool,
) -> Result<()> {
    let mut selected = select(attr, filter, list);
    let mut created = false;
    if selected.is_empty() {
        let template = match filter {
            None => Some(Map::new()),
            Some(f) if lenient => quirks::element_from_filter(attr, f)?,
            Some(_) => None,
        };
        let Some(template) = template else {
            return Err(no_target(attr, filter));
        };
        list.push(Value::Object(template));
        selected.push(list.len() - 1);
        created = true;
    }
    for &i in &selected {
        let Some(Value::Object(element)) = list.get_mut(i) else {
            continue;
        };
        match sub {
            Some(sub) => set_sub(attr, sub, element, value)?,
            // A value the filter just created keeps what the filter says it is.
            None if op == OpKind::Replace && !created => replace_element(attr, element, value)?,
            None => merge_element(attr, element, value, lenient)?,
        }
    }
    fix_primary(attr, list, &selected);
    Ok(())
}

/// Replaces a whole value of a multi-valued complex attribute (RFC 7644
/// §3.5.2.3), refusing to change its readOnly or immutable sub-attributes.
fn replace_element(
    attr: &Attribute,
    element: &mut Map<String, Value>,
    value: &Value,
) -> Result<()> {
    let Value::Object(new) = coerce_single(attr, attr.name(), value.clone())? else {
        return Err(Error::invalid_value(format!(
            "a value of '{}' must be an object",
            attr.name()
        )));
    };
    for sub in attr.sub_attributes() {
        if matches!(
            sub.mutability(),
            Mutability::ReadOnly | Mutability::Immutable
        ) {
            let path = format!("{}.{}", attr.name(), sub.name());
            let old = find_key(element, sub.name()).and_then(|k| element.get(k.as_ref()));
            let next = find_key(&new, sub.name()).and_then(|k| new.get(k.as_ref()));
            check_mutability(sub, &path, old, next)?;
        }
    }
    *element = new;
    Ok(())
}

/// Merges an object's sub-attributes into a complex value (RFC 7644 §3.5.2.3:
/// sub-attributes not given are left unchanged). Sub-attributes the schema does
/// not define are kept when lenient and refused (400 `invalidPath`) when strict.
fn merge_element(
    attr: &Attribute,
    element: &mut Map<String, Value>,
    value: &Value,
    lenient: bool,
) -> Result<()> {
    let Value::Object(new) = coerce_single(attr, attr.name(), value.clone())? else {
        return Err(Error::invalid_value(format!(
            "'{}' is complex: give an object of its sub-attributes",
            attr.name()
        )));
    };
    for (k, v) in new {
        match attr.sub_attribute(&k) {
            Some(sub) => {
                let path = format!("{}.{}", attr.name(), sub.name());
                let key = find_key(element, sub.name()).unwrap_or(Cow::Borrowed(sub.name()));
                let key: &str = &key;
                check_mutability(sub, &path, element.get(key), Some(&v))?;
                element.insert(key.to_owned(), v);
            }
            None if attr.mutability() == Mutability::ReadOnly => {
                // Nothing a client sends may land inside a readOnly attribute.
                return Err(Error::mutability(format!(
                    "'{}' is readOnly: '{k}' cannot be added to it",
                    attr.name()
                )));
            }
            None if lenient => {
                element.insert(k, v);
            }
            None => {
                return Err(Error::invalid_path(format!(
                    "'{}' has no sub-attribute '{k}'",
                    attr.name()
                )));
            }
        }
    }
    Ok(())
}

fn set_sub(
    attr: &Attribute,
    sub: &Attribute,
    element: &mut Map<String, Value>,
    value: &Value,
) -> Result<()> {
    let path = [attr.name(), ".", sub.name()].concat();
    let new = coerce(sub, &path, value.clone())?;
    put(sub, &path, element, new).map(drop)
}

/// `add` or `replace` of a single-valued simple attribute in `container` (RFC 7644
/// §3.5.2.1, §3.5.2.3): its key as stored and the value it replaced, or `None`
/// when nothing changes (an `add` of null).
fn replace_member<'n>(
    op: OpKind,
    attr: &'n Attribute,
    container: &mut Map<String, Value>,
    value: &Value,
) -> Result<Option<(Cow<'n, str>, Option<Value>)>> {
    let new = coerce(attr, attr.name(), value.clone())?;
    if new.is_none() && op == OpKind::Replace && attr.is_required() {
        return Err(Error::mutability(format!(
            "'{}' is required and cannot be removed",
            attr.name()
        )));
    }
    if new.is_none() && op != OpKind::Replace {
        let existing = find_key(container, attr.name()).and_then(|k| container.get(k.as_ref()));
        check_mutability(attr, attr.name(), existing, None)?;
        return Ok(None);
    }
    put(attr, attr.name(), container, new).map(Some)
}

/// Sets the member `attr` of `container` to `new` (removes it for `None`), spelled
/// as it is stored, once [`check_mutability`] allows it (`path` names it in errors):
/// its key and what it held.
fn put<'n>(
    attr: &'n Attribute,
    path: &str,
    container: &mut Map<String, Value>,
    new: Option<Value>,
) -> Result<(Cow<'n, str>, Option<Value>)> {
    let key = find_key(container, attr.name()).unwrap_or(Cow::Borrowed(attr.name()));
    let old = match (container.get_mut(key.as_ref()), new) {
        (Some(slot), Some(v)) => {
            check_mutability(attr, path, Some(slot), Some(&v))?;
            Some(std::mem::replace(slot, v))
        }
        (None, Some(v)) => {
            check_mutability(attr, path, None, Some(&v))?;
            container.insert(key.clone().into_owned(), v);
            None
        }
        (existing, None) => {
            check_mutability(attr, path, existing.as_deref(), None)?;
            container.remove(key.as_ref())
        }
    };
    Ok((key, old))
}

fn unset_sub(attr: &Attribute, sub: &Attribute, element: &mut Map<String, Value>) -> Result<()> {
    let path = format!("{}.{}", attr.name(), sub.name());
    let Some(key) = find_key(element, sub.name()) else {
        return Ok(());
    };
    let key: &str = &key;
    if sub.is_required() {
        return Err(Error::mutability(format!(
            "'{path}' is required and cannot be removed"
        )));
    }
    check_mutability(sub, &path, element.get(key), None)?;
    element.remove(key);
    Ok(())
}

/// RFC 7643 §2.4: at most one value is primary. When an operation makes a value
/// primary, the server sets `primary` to `false` on the others (RFC 7644 §3.5.2).
///
/// Answers the marks it changed, as they were: (position, key, old value).
fn fix_primary(attr: &Attribute, list: &mut [Value], touched: &[usize]) -> Vec<ElementChange> {
    let mut changed = Vec::new();
    let Some(primary) = attr.sub_attribute("primary") else {
        return changed;
    };
    let is_primary = |v: &Value| {
        v.as_object()
            .and_then(|o| find_key(o, primary.name()).and_then(|k| o.get(k.as_ref())))
            == Some(&Value::Bool(true))
    };
    let Some(&winner) = touched
        .iter()
        .rev()
        .find(|&&i| list.get(i).is_some_and(is_primary))
    else {
        return changed;
    };
    for (i, v) in list.iter_mut().enumerate() {
        if i != winner && is_primary(v) {
            if let Value::Object(o) = v {
                if let Some(k) = find_key(o, primary.name()) {
                    let k = k.into_owned();
                    let old = o.insert(k.clone(), Value::Bool(false));
                    changed.push((i, k, old));
                }
            }
        }
    }
    changed
}

/// Refuses removing values of a `readOnly` or `immutable` attribute.
pub(super) fn check_removal(attr: &Attribute) -> Result<()> {
    match attr.mutability() {
        Mutability::ReadOnly => Err(Error::mutability(format!(
            "'{}' is readOnly and cannot be changed",
            attr.name()
        ))),
        Mutability::Immutable => Err(Error::mutability(format!(
            "'{}' is immutable: its values cannot be removed",
            attr.name()
        ))),
        _ => Ok(()),
    }
}

/// Refuses a change to a `readOnly` attribute, or to an `immutable` one that
/// already has a value. Writing the value it already has is not a change.
fn check_mutability(
    attr: &Attribute,
    path: &str,
    existing: Option<&Value>,
    new: Option<&Value>,
) -> Result<()> {
    let existing = existing.filter(|v| !is_empty(v));
    let new = new.filter(|v| !is_empty(v));
    if existing == new {
        return Ok(());
    }
    match attr.mutability() {
        Mutability::ReadOnly => Err(Error::mutability(format!(
            "'{path}' is readOnly and cannot be changed"
        ))),
        Mutability::Immutable if existing.is_some() => Err(Error::mutability(format!(
            "'{path}' is immutable and already has a value"
        ))),
        _ => Ok(()),
    }
}

fn set(container: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    match value {
        Some(v) => match container.get_mut(key) {
            Some(slot) => *slot = v,
            None => {
                container.insert(key.to_owned(), v);
            }
        },
        None => {
            container.remove(key);
        }
    }
}

/// The object under `key`, created if absent.
fn object_slot<'m>(
    container: &'m mut Map<String, Value>,
    key: &str,
    attr: &Attribute,
) -> Result<&'m mut Map<String, Value>> {
    if !container.contains_key(key) {
        container.insert(key.to_owned(), Value::Object(Map::new()));
    }
    let Some(slot) = container.get_mut(key) else {
        return Err(Error::internal("a member just inserted is missing"));
    };
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(map) => Ok(map),
        _ => Err(Error::invalid_value(format!(
            "the stored value of '{}' is not an object",
            attr.name()
        ))),
    }
}

/// The list under `key`, created if absent (a single stored value becomes a list of one).
pub(super) fn list_slot<'m>(
    container: &'m mut Map<String, Value>,
    key: &str,
    attr: &Attribute,
) -> Result<&'m mut Vec<Value>> {
    if !container.contains_key(key) {
        container.insert(key.to_owned(), Value::Array(Vec::new()));
    }
    let Some(slot) = container.get_mut(key) else {
        return Err(Error::internal("a member just inserted is missing"));
    };
    if !slot.is_array() {
        let single = slot.take();
        *slot = Value::Array(if single.is_null() {
            Vec::new()
        } else {
            vec![single]
        });
    }
    match slot {
        Value::Array(list) => Ok(list),
        _ => Err(Error::invalid_value(format!(
            "the stored value of '{}' is not a list",
            attr.name()
        ))),
    }
}

/// A member's key matched case-insensitively (an exact match first): borrowed when
/// the map uses the name as given, as normalised resources do.
pub(super) fn find_key<'n>(map: &Map<String, Value>, name: &'n str) -> Option<Cow<'n, str>> {
    if map.contains_key(name) {
        return Some(Cow::Borrowed(name));
    }
    map.keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .map(|k| Cow::Owned(k.clone()))
}

/// Unassigned (RFC 7643 §2.5): null, an empty list or an object with nothing in it.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_empty),
        _ => false,
    }
}
