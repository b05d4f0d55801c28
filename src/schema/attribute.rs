//! Attribute definitions and their characteristics (RFC 7643 §2.2, §7).

use serde::{Deserialize, Serialize};

wire_enum! {
    /// An attribute's data type (RFC 7643 §2.3).
    pub enum AttributeType : "attribute type" {
        /// A sequence of characters (§2.3.1).
        String => "string",
        /// `true` or `false` (§2.3.2).
        Boolean => "boolean",
        /// A real number (§2.3.3).
        Decimal => "decimal",
        /// A whole number (§2.3.4).
        Integer => "integer",
        /// An `xsd:dateTime`, e.g. `2008-01-23T04:56:22Z` (§2.3.5).
        DateTime => "dateTime",
        /// Base64-encoded bytes (§2.3.6).
        Binary => "binary",
        /// A URI for a resource (§2.3.7).
        Reference => "reference",
        /// A singular or multi-valued set of sub-attributes (§2.3.8).
        Complex => "complex",
    }
}

wire_enum! {
    /// Whether and how an attribute can be modified (RFC 7643 §7, "mutability").
    pub enum Mutability : "mutability" {
        /// Set by the service provider only.
        ReadOnly => "readOnly",
        /// Freely updated and read.
        ReadWrite => "readWrite",
        /// Set once (at creation or when first assigned), never changed after.
        Immutable => "immutable",
        /// Written, never returned (e.g. `password`).
        WriteOnly => "writeOnly",
    }
}

wire_enum! {
    /// When an attribute is returned in a response (RFC 7643 §7, "returned").
    pub enum Returned : "returned" {
        /// Always returned, whatever `attributes` or `excludedAttributes` say.
        Always => "always",
        /// Never returned.
        Never => "never",
        /// Returned unless excluded by `excludedAttributes` or left out of `attributes`.
        Default => "default",
        /// Returned only when named in `attributes`.
        Request => "request",
    }
}

wire_enum! {
    /// How a value must be unique (RFC 7643 §7, "uniqueness").
    pub enum Uniqueness : "uniqueness" {
        /// No uniqueness enforced.
        None => "none",
        /// Unique within the service provider's current set of resources.
        Server => "server",
        /// Globally unique.
        Global => "global",
    }
}

/// One attribute definition of a [`Schema`](super::Schema) (RFC 7643 §7).
///
/// Characteristics the definition leaves out take the defaults of RFC 7643 §2.2
/// (`required` false, `caseExact` false, `mutability` readWrite, `returned` default,
/// `uniqueness` none); the accessors report the effective value while serialisation
/// writes only what was given, so a definition read from JSON is written back unchanged.
///
/// ```
/// use scimkit::schema::{Attribute, AttributeType, Mutability};
///
/// let badge = Attribute::new("badgeNumber", AttributeType::String)
///     .with_required(true)
///     .with_case_exact(true)
///     .with_mutability(Mutability::Immutable);
/// assert!(badge.is_required());
/// assert!(badge.is_case_exact());
/// assert!(!badge.is_multi_valued());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attribute {
    name: String,
    #[serde(rename = "type")]
    attr_type: AttributeType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    multi_valued: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    required: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    canonical_values: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    case_exact: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mutability: Option<Mutability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    returned: Option<Returned>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uniqueness: Option<Uniqueness>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reference_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub_attributes: Option<Vec<Attribute>>,
}

impl Attribute {
    /// A single-valued attribute of the given type with every other characteristic at its default.
    pub fn new(name: impl Into<String>, attr_type: AttributeType) -> Self {
        Attribute {
            name: name.into(),
            attr_type,
            multi_valued: Some(false),
            description: None,
            required: None,
            canonical_values: None,
            case_exact: None,
            mutability: None,
            returned: None,
            uniqueness: None,
            reference_types: None,
            sub_attributes: None,
        }
    }

    /// A complex attribute with the given sub-attributes.
    pub fn complex(name: impl Into<String>, sub_attributes: Vec<Attribute>) -> Self {
        Attribute::new(name, AttributeType::Complex).with_sub_attributes(sub_attributes)
    }

    /// Sets `multiValued`.
    pub fn with_multi_valued(mut self, yes: bool) -> Self {
        self.multi_valued = Some(yes);
        self
    }

    /// Sets `description`.
    pub fn with_description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// Sets `required`.
    pub fn with_required(mut self, yes: bool) -> Self {
        self.required = Some(yes);
        self
    }

    /// Sets `canonicalValues`.
    pub fn with_canonical_values<I, S>(mut self, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.canonical_values = Some(values.into_iter().map(Into::into).collect());
        self
    }

    /// Sets `caseExact`.
    pub fn with_case_exact(mut self, yes: bool) -> Self {
        self.case_exact = Some(yes);
        self
    }

    /// Sets `mutability`.
    pub fn with_mutability(mut self, m: Mutability) -> Self {
        self.mutability = Some(m);
        self
    }

    /// Sets `returned`.
    pub fn with_returned(mut self, r: Returned) -> Self {
        self.returned = Some(r);
        self
    }

    /// Sets `uniqueness`.
    pub fn with_uniqueness(mut self, u: Uniqueness) -> Self {
        self.uniqueness = Some(u);
        self
    }

    /// Sets `referenceTypes` (e.g. `["User", "Group"]`, `["external"]`, `["uri"]`).
    pub fn with_reference_types<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.reference_types = Some(types.into_iter().map(Into::into).collect());
        self
    }

    /// Sets `subAttributes`.
    pub fn with_sub_attributes(mut self, subs: Vec<Attribute>) -> Self {
        self.sub_attributes = Some(subs);
        self
    }

    /// The attribute's name, in the schema's spelling (e.g. `userName`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The data type.
    pub fn attr_type(&self) -> AttributeType {
        self.attr_type
    }

    /// Whether the attribute holds a list of values.
    pub fn is_multi_valued(&self) -> bool {
        self.multi_valued.unwrap_or(false)
    }

    /// Whether the attribute is complex (has sub-attributes).
    pub fn is_complex(&self) -> bool {
        self.attr_type == AttributeType::Complex
    }

    /// The human-readable description, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Whether a value is required.
    pub fn is_required(&self) -> bool {
        self.required.unwrap_or(false)
    }

    /// The canonical values, if the schema lists any.
    pub fn canonical_values(&self) -> &[String] {
        self.canonical_values.as_deref().unwrap_or_default()
    }

    /// Whether string comparison is case-sensitive.
    pub fn is_case_exact(&self) -> bool {
        self.case_exact.unwrap_or(false)
    }

    /// The effective mutability.
    pub fn mutability(&self) -> Mutability {
        self.mutability.unwrap_or(Mutability::ReadWrite)
    }

    /// The effective `returned` characteristic.
    pub fn returned(&self) -> Returned {
        self.returned.unwrap_or(Returned::Default)
    }

    /// The effective uniqueness.
    pub fn uniqueness(&self) -> Uniqueness {
        self.uniqueness.unwrap_or(Uniqueness::None)
    }

    /// The reference types of a `reference` attribute.
    pub fn reference_types(&self) -> &[String] {
        self.reference_types.as_deref().unwrap_or_default()
    }

    /// The sub-attributes of a complex attribute (empty for simple ones).
    pub fn sub_attributes(&self) -> &[Attribute] {
        self.sub_attributes.as_deref().unwrap_or_default()
    }

    /// Looks up a sub-attribute by name, case-insensitively (RFC 7643 §2.1).
    pub fn sub_attribute(&self, name: &str) -> Option<&Attribute> {
        self.sub_attributes()
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// Whether values of this attribute compare with their case, as filters, sorting
    /// and duplicate detection compare them: `caseExact` for strings; a `binary`
    /// value always; a `reference` unless the schema says `caseExact: false`, since
    /// URIs are case-sensitive in their path. A store that evaluates filters itself
    /// uses this to agree with [`Filter::matches`](crate::filter::Filter::matches).
    pub fn compares_case_exact(&self) -> bool {
        match self.attr_type {
            AttributeType::Binary => true,
            AttributeType::Reference => self.case_exact.unwrap_or(true),
            _ => self.is_case_exact(),
        }
    }
}
