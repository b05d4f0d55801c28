//! The registry of schemas and resource types, and attribute name resolution.

use serde_json::{Map, Value};

use super::{Attribute, ResourceType, Schema, urn};
use crate::error::{Error, Result};
use crate::resource::Resource;

/// The schemas and resource types a service knows, with case-insensitive
/// attribute resolution for each resource type (RFC 7643 §2.1, §3, §6).
///
/// [`Registry::core`] (also `Default`) holds the RFC's User (with the Enterprise
/// extension) and Group. A host adds its own schemas and resource types, and they
/// are handled exactly like the built-in ones.
///
/// ```
/// use scimkit::schema::{Attribute, AttributeType, Registry, ResourceType, Schema};
///
/// let mut registry = Registry::core();
/// registry.add_schema(Schema::new(
///     "urn:example:params:scim:schemas:core:2.0:Device",
///     "Device",
///     vec![Attribute::new("serialNumber", AttributeType::String).with_required(true)],
/// ));
/// registry.add_resource_type(ResourceType::new(
///     "Device",
///     "/Devices",
///     "urn:example:params:scim:schemas:core:2.0:Device",
/// ))?;
/// let devices = registry.resource_type_by_endpoint("/devices").ok_or("not found")?;
/// assert!(devices.attribute(None, "serialnumber").is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Registry {
    schemas: Vec<Schema>,
    types: Vec<TypeEntry>,
}

#[derive(Debug, Clone)]
struct TypeEntry {
    definition: ResourceType,
    core: usize,
    extensions: Vec<(usize, bool)>,
}

/// Why a resource type could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The resource type names a schema that was not added first.
    #[error("resource type {resource_type:?} uses schema {schema:?}, which is not registered")]
    UnknownSchema {
        /// The resource type's name.
        resource_type: String,
        /// The missing schema's URN.
        schema: String,
    },
    /// A resource type with the same name or endpoint is already registered.
    #[error("a resource type named {0:?} or with the same endpoint is already registered")]
    Duplicate(String),
}

impl Default for Registry {
    fn default() -> Self {
        Registry::core()
    }
}

impl Registry {
    /// A registry with no schemas and no resource types.
    pub fn empty() -> Self {
        Registry {
            schemas: Vec::new(),
            types: Vec::new(),
        }
    }

    /// The core registry: the User schema with the Enterprise User extension at
    /// `/Users`, and the Group schema at `/Groups` (RFC 7643 §8.6, §8.7.1).
    pub fn core() -> Self {
        let mut registry = Registry::empty();
        registry
            .add_schema(Schema::user().clone())
            .add_schema(Schema::group().clone())
            .add_schema(Schema::enterprise_user().clone());
        let user = ResourceType::new("User", "/Users", urn::USER)
            .with_description("User Account")
            .with_extension(urn::ENTERPRISE_USER, false);
        let group = ResourceType::new("Group", "/Groups", urn::GROUP).with_description("Group");
        for rt in [user, group] {
            // Both types use schemas added just above and have distinct names.
            let _ = registry.add_resource_type(rt);
        }
        registry
    }

    /// Adds a schema, replacing one with the same URN.
    pub fn add_schema(&mut self, schema: Schema) -> &mut Self {
        match self
            .schemas
            .iter()
            .position(|s| s.id.eq_ignore_ascii_case(&schema.id))
        {
            Some(i) => self.schemas[i] = schema,
            None => self.schemas.push(schema),
        }
        self
    }

    /// Adds a resource type whose core and extension schemas are already registered.
    ///
    /// # Errors
    /// [`RegistryError::UnknownSchema`] when a schema is missing,
    /// [`RegistryError::Duplicate`] when the name or endpoint is taken.
    pub fn add_resource_type(
        &mut self,
        definition: ResourceType,
    ) -> Result<&mut Self, RegistryError> {
        let find = |id: &str| {
            self.schema_index(id)
                .ok_or_else(|| RegistryError::UnknownSchema {
                    resource_type: definition.name.clone(),
                    schema: id.to_owned(),
                })
        };
        let core = find(&definition.schema)?;
        let extensions = definition
            .schema_extensions
            .iter()
            .map(|e| find(&e.schema).map(|i| (i, e.required)))
            .collect::<Result<Vec<_>, _>>()?;
        if self.types.iter().any(|t| {
            t.definition.name.eq_ignore_ascii_case(&definition.name)
                || t.definition
                    .endpoint
                    .eq_ignore_ascii_case(&definition.endpoint)
        }) {
            return Err(RegistryError::Duplicate(definition.name));
        }
        self.types.push(TypeEntry {
            definition,
            core,
            extensions,
        });
        Ok(self)
    }

    fn schema_index(&self, id: &str) -> Option<usize> {
        self.schemas
            .iter()
            .position(|s| s.id.eq_ignore_ascii_case(id))
    }

    /// The schema with this URN, matched case-insensitively.
    pub fn schema(&self, id: &str) -> Option<&Schema> {
        self.schema_index(id).map(|i| &self.schemas[i])
    }

    /// Every registered schema, in the order added.
    pub fn schemas(&self) -> impl Iterator<Item = &Schema> {
        self.schemas.iter()
    }

    /// Every registered resource type, in the order added.
    pub fn resource_types(&self) -> impl Iterator<Item = ResourceSchema<'_>> {
        self.types.iter().map(move |entry| ResourceSchema {
            registry: self,
            entry,
        })
    }

    /// The resource type with this name (e.g. `User`), matched case-insensitively.
    pub fn resource_type(&self, name: &str) -> Option<ResourceSchema<'_>> {
        self.resource_types()
            .find(|t| t.definition().name.eq_ignore_ascii_case(name))
    }

    /// The resource type served at this endpoint (e.g. `/Users` or `Users`),
    /// matched case-insensitively.
    pub fn resource_type_by_endpoint(&self, endpoint: &str) -> Option<ResourceSchema<'_>> {
        let want = endpoint.trim_start_matches('/');
        self.resource_types().find(|t| {
            t.definition()
                .endpoint
                .trim_start_matches('/')
                .eq_ignore_ascii_case(want)
        })
    }

    /// The resource type whose core schema a JSON resource lists in `schemas`.
    pub fn resource_type_of(&self, resource: &Value) -> Option<ResourceSchema<'_>> {
        let schemas = get_ci(resource.as_object()?, "schemas")?.as_array()?;
        self.resource_types().find(|t| {
            schemas
                .iter()
                .filter_map(Value::as_str)
                .any(|s| s.eq_ignore_ascii_case(&t.core().id))
        })
    }

    /// The resource type a typed resource belongs to; a 500 if it is not registered,
    /// since that is the host's configuration, not the client's request.
    pub(crate) fn schema_of<R: Resource>(&self) -> Result<ResourceSchema<'_>> {
        self.resource_type(R::RESOURCE_TYPE).ok_or_else(|| {
            Error::internal(format!(
                "resource type {} is not registered",
                R::RESOURCE_TYPE
            ))
        })
    }

    /// Reads a typed resource from what a client sent: normalised by the schema
    /// first (attribute names in any case, booleans as strings, a bare-string
    /// `manager`; see [`ResourceSchema::normalize`]), then deserialised.
    ///
    /// ```
    /// use scimkit::{User, schema::Registry};
    ///
    /// let body = serde_json::json!({
    ///     "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    ///     "UserName": "ann@example.com",
    ///     "Active": "True"
    /// });
    /// let user: User = Registry::core().decode(body)?;
    /// assert_eq!(user.user_name.as_deref(), Some("ann@example.com"));
    /// assert_eq!(user.active, Some(true));
    /// # Ok::<(), scimkit::Error>(())
    /// ```
    ///
    /// # Errors
    /// 400 `invalidValue` when a value does not fit its attribute's type;
    /// 400 `invalidSyntax` when the document is not a JSON object.
    pub fn decode<R: Resource>(&self, value: Value) -> Result<R> {
        let value = self.schema_of::<R>()?.normalize(value)?;
        serde_json::from_value(value).map_err(|e| Error::invalid_value(e.to_string()))
    }
}

/// One resource type with its schemas: the view that resolves attribute names.
#[derive(Debug, Clone, Copy)]
pub struct ResourceSchema<'r> {
    registry: &'r Registry,
    entry: &'r TypeEntry,
}

/// A resource type's schemas holding a share of its registry, for keeping in a
/// struct (a [`ResourceSchema`] borrows the registry it came from).
///
/// ```
/// use std::sync::Arc;
/// use scimkit::Registry;
/// use scimkit::schema::SharedResourceSchema;
///
/// struct Provisioner {
///     users: SharedResourceSchema,
/// }
///
/// let registry = Arc::new(Registry::core());
/// let p = Provisioner { users: SharedResourceSchema::new(registry, "User").ok_or("no User")? };
/// assert!(p.users.get().attribute(None, "USERNAME").is_some());
/// # Ok::<(), &str>(())
/// ```
#[derive(Debug, Clone)]
pub struct SharedResourceSchema {
    registry: std::sync::Arc<Registry>,
    index: usize,
}

impl SharedResourceSchema {
    /// The resource type named `name` (case-insensitively) in `registry`.
    pub fn new(registry: std::sync::Arc<Registry>, name: &str) -> Option<Self> {
        let index = registry
            .types
            .iter()
            .position(|t| t.definition.name.eq_ignore_ascii_case(name))?;
        Some(SharedResourceSchema { registry, index })
    }

    /// The schemas, borrowed for as long as this value lives.
    pub fn get(&self) -> ResourceSchema<'_> {
        ResourceSchema {
            registry: &self.registry,
            entry: &self.registry.types[self.index],
        }
    }

    /// The registry.
    pub fn registry(&self) -> &std::sync::Arc<Registry> {
        &self.registry
    }
}

/// An attribute found by [`ResourceSchema::attribute`]: its definition and the
/// schema that defines it.
#[derive(Debug, Clone, Copy)]
pub struct AttrRef<'r> {
    /// The URN of the schema that defines the attribute (the core schema for the
    /// common attributes `id`, `externalId`, `meta` and `schemas`).
    pub schema: &'r str,
    /// The attribute's definition.
    pub attribute: &'r Attribute,
    /// Whether the attribute lives in an extension object, keyed by `schema`.
    pub extension: bool,
}

impl<'r> AttrRef<'r> {
    /// The attribute's value in a resource's JSON object, matching names
    /// case-insensitively.
    pub fn value_in<'v>(&self, resource: &'v Map<String, Value>) -> Option<&'v Value> {
        let container = if self.extension {
            get_ci(resource, self.schema)?.as_object()?
        } else {
            resource
        };
        get_ci(container, self.attribute.name())
    }
}

impl<'r> ResourceSchema<'r> {
    /// The resource type's definition, as `/ResourceTypes` serves it.
    pub fn definition(&self) -> &'r ResourceType {
        &self.entry.definition
    }

    /// The resource type's name, e.g. `User`.
    pub fn name(&self) -> &'r str {
        &self.entry.definition.name
    }

    /// The core schema.
    pub fn core(&self) -> &'r Schema {
        &self.registry.schemas[self.entry.core]
    }

    /// The extension schemas, each with whether it is required.
    pub fn extensions(&self) -> impl Iterator<Item = (&'r Schema, bool)> + 'r {
        let registry = self.registry;
        self.entry
            .extensions
            .iter()
            .map(move |&(i, required)| (&registry.schemas[i], required))
    }

    /// The extension schema with this URN, matched case-insensitively.
    pub fn extension(&self, id: &str) -> Option<&'r Schema> {
        self.extensions()
            .map(|(s, _)| s)
            .find(|s| s.id.eq_ignore_ascii_case(id))
    }

    /// Whether `id` is the core schema's URN or one of the extensions'.
    pub fn has_schema(&self, id: &str) -> bool {
        self.core().id.eq_ignore_ascii_case(id) || self.extension(id).is_some()
    }

    /// Resolves a top-level attribute, case-insensitively.
    ///
    /// With a schema URN, the attribute is looked up in that schema only (the
    /// common attributes count as the core schema's). Without one, the common and
    /// core attributes come first; then, leniently, an attribute of an extension
    /// whose name no core attribute has.
    pub fn attribute(&self, schema: Option<&str>, name: &str) -> Option<AttrRef<'r>> {
        let core = self.core();
        let in_core = || {
            Schema::common_attributes()
                .iter()
                .chain(core.attributes.iter())
                .find(|a| a.name().eq_ignore_ascii_case(name))
                .map(|attribute| AttrRef {
                    schema: &core.id,
                    attribute,
                    extension: false,
                })
        };
        let in_extension = |ext: &'r Schema| {
            ext.attribute(name).map(|attribute| AttrRef {
                schema: &ext.id,
                attribute,
                extension: true,
            })
        };
        match schema {
            Some(id) if core.id.eq_ignore_ascii_case(id) => in_core(),
            Some(id) => self.extension(id).and_then(in_extension),
            None => in_core().or_else(|| self.extensions().find_map(|(ext, _)| in_extension(ext))),
        }
    }

    /// Resolves a dotted, optionally URN-qualified attribute name such as
    /// `name.givenName` or
    /// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`.
    /// Returns the attribute and, if named, its sub-attribute.
    pub fn resolve(&self, path: &str) -> Option<(AttrRef<'r>, Option<&'r Attribute>)> {
        let (schema, rest) = split_urn(path);
        let (name, sub) = match rest.split_once('.') {
            Some((name, sub)) => (name, Some(sub)),
            None => (rest, None),
        };
        let attr = self.attribute(schema, name)?;
        match sub {
            None => Some((attr, None)),
            Some(sub) => {
                let sub = attr.attribute.sub_attribute(sub)?;
                Some((attr, Some(sub)))
            }
        }
    }
}

/// Splits `urn:…:Schema:attr.sub` into the URN and `attr.sub`. A name that does
/// not start with `urn:` has no URN.
pub(crate) fn split_urn(path: &str) -> (Option<&str>, &str) {
    let is_urn = path.len() > 4
        && path
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("urn:"));
    if !is_urn {
        return (None, path);
    }
    match path.rfind(':') {
        Some(i) => (Some(&path[..i]), &path[i + 1..]),
        None => (None, path),
    }
}

/// A JSON object member matched case-insensitively (an exact match first, as
/// normalised documents use the schema's spelling).
///
/// Resources are small objects read many times (a filter over every user, a scan
/// over every member), so a small object is searched by key length first: only
/// keys of the right length are read, where a tree search would read several.
pub(crate) fn get_ci<'v>(map: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    if map.len() <= 16 {
        let mut folded = None;
        for (k, v) in map {
            if k.len() == key.len() {
                if k == key {
                    return Some(v);
                }
                if folded.is_none() && k.eq_ignore_ascii_case(key) {
                    folded = Some(v);
                }
            }
        }
        return folded;
    }
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}
