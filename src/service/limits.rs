//! What one stored resource may hold: values per multi-valued attribute, members
//! per group, and bytes. Checked before anything is written, so a hostile body can
//! neither fill the store nor make every later read of the resource expensive.

use std::io;

use serde_json::{Map, Value};

use super::Service;
use crate::error::{Error, Result};
use crate::schema::{Attribute, Mutability, ResourceSchema, Schema};
use crate::store::Store;

impl<S: Store> Service<S> {
    /// Checks a resource about to be written (or, before normalisation, the body that
    /// will become it) against [`ServiceConfig`](super::ServiceConfig)'s
    /// `max_values`, `max_members` and `max_resource_bytes`.
    ///
    /// # Errors
    /// 400 `invalidValue` naming the attribute and the limit when an attribute has too
    /// many values; 413 when the resource is too large.
    pub(super) fn check_limits(
        &self,
        rt: &ResourceSchema<'_>,
        doc: &Map<String, Value>,
    ) -> Result<()> {
        let core = rt.core();
        let mut bytes = 2usize; // `{}`
        for (key, value) in doc {
            let attr = rt.attribute(Some(&core.id), key).map(|a| a.attribute);
            let is_list = attr.is_some_and(is_reference_list);
            if let Some(ext) = rt.extension(key) {
                if let Value::Object(obj) = value {
                    self.check_counts(ext, obj, &ext.id)?;
                }
            } else {
                self.check_count(attr, key, value, "")?;
            }
            if !is_list {
                bytes = bytes.saturating_add(json_len(key) + json_len(value) + 2);
            }
        }
        let max = self.config.max_resource_bytes;
        if bytes > max {
            return Err(Error::payload_too_large(format!(
                "the {} would take {bytes} bytes, more than the limit of {max} \
                 (members are counted by their own limit instead)",
                rt.name()
            )));
        }
        Ok(())
    }

    /// The counts inside an extension object.
    fn check_counts(&self, schema: &Schema, obj: &Map<String, Value>, prefix: &str) -> Result<()> {
        for (key, value) in obj {
            self.check_count(schema.attribute(key), key, value, prefix)?;
        }
        Ok(())
    }

    /// One member's value count: members (`max_members`) or anything else (`max_values`).
    fn check_count(
        &self,
        attr: Option<&Attribute>,
        key: &str,
        value: &Value,
        prefix: &str,
    ) -> Result<()> {
        let Value::Array(items) = value else {
            return Ok(());
        };
        let (limit, option) = match attr {
            Some(a) if is_reference_list(a) => (self.config.max_members, "max_members"),
            _ => (self.config.max_values, "max_values"),
        };
        if items.len() > limit {
            let name = attr.map_or(key, Attribute::name);
            let name = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}:{name}")
            };
            return Err(Error::invalid_value(format!(
                "'{name}' has {} values, more than the limit of {limit} ({option})",
                items.len()
            )));
        }
        Ok(())
    }
}

/// A list of references to other resources (a group's `members`): multi-valued,
/// complex, writable, with `value` and a `$ref` that names resource types. Such
/// lists have their own, much larger, limit.
pub(super) fn is_reference_list(attr: &Attribute) -> bool {
    attr.is_multi_valued()
        && attr.is_complex()
        && attr.mutability() != Mutability::ReadOnly
        && attr.sub_attribute("value").is_some()
        && attr
            .sub_attribute("$ref")
            .is_some_and(|r| !r.reference_types().is_empty())
}

/// The length of a value written as compact JSON, without writing it anywhere.
fn json_len<T: serde::Serialize + ?Sized>(value: &T) -> usize {
    struct Count(usize);
    impl io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 = self.0.saturating_add(buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing JSON values into a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}
