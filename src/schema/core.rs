//! The built-in schema definitions: RFC 7643 §8.7.1 as data, plus the common
//! attributes of §3.1.

use std::sync::OnceLock;

use super::{Attribute, AttributeType, Mutability, Returned, Schema, Uniqueness};

/// RFC 7643 §8.7.1, the User schema representation.
const USER_JSON: &str = include_str!("user.json");
/// RFC 7643 §8.7.1, the Group schema representation.
const GROUP_JSON: &str = include_str!("group.json");
/// RFC 7643 §8.7.1, the Enterprise User schema representation.
const ENTERPRISE_USER_JSON: &str = include_str!("enterprise_user.json");

pub(super) struct Builtin {
    pub(super) user: Schema,
    pub(super) group: Schema,
    pub(super) enterprise_user: Schema,
    pub(super) common: Vec<Attribute>,
}

pub(super) fn builtin() -> &'static Builtin {
    static BUILTIN: OnceLock<Builtin> = OnceLock::new();
    BUILTIN.get_or_init(|| Builtin {
        user: parse(USER_JSON),
        group: parse(GROUP_JSON),
        enterprise_user: parse(ENTERPRISE_USER_JSON),
        common: common_attributes(),
    })
}

fn parse(json: &str) -> Schema {
    // The documents are compiled into the crate and parsed by the unit test below,
    // so this cannot fail on any input a caller controls.
    #[allow(clippy::expect_used)]
    serde_json::from_str(json).expect("built-in schema documents are valid")
}

/// `id`, `externalId`, `meta` and `schemas`: RFC 7643 §3 and §3.1 define them in prose
/// for every resource; these are their characteristics.
fn common_attributes() -> Vec<Attribute> {
    let read_only = |name: &str, t: AttributeType| {
        Attribute::new(name, t)
            .with_required(false)
            .with_mutability(Mutability::ReadOnly)
            .with_returned(Returned::Default)
    };
    vec![
        Attribute::new("id", AttributeType::String)
            .with_description("A unique identifier for a SCIM resource as defined by the service provider.")
            .with_required(false)
            .with_case_exact(true)
            .with_mutability(Mutability::ReadOnly)
            .with_returned(Returned::Always)
            .with_uniqueness(Uniqueness::Server),
        Attribute::new("externalId", AttributeType::String)
            .with_description("A String that is an identifier for the resource as defined by the provisioning client.")
            .with_required(false)
            .with_case_exact(true)
            .with_mutability(Mutability::ReadWrite)
            .with_returned(Returned::Default)
            .with_uniqueness(Uniqueness::None),
        Attribute::complex(
            "meta",
            vec![
                read_only("resourceType", AttributeType::String).with_case_exact(true),
                read_only("created", AttributeType::DateTime),
                read_only("lastModified", AttributeType::DateTime),
                read_only("location", AttributeType::Reference).with_reference_types(["uri"]),
                read_only("version", AttributeType::String).with_case_exact(true),
            ],
        )
        .with_description("A complex attribute containing resource metadata.")
        .with_required(false)
        .with_mutability(Mutability::ReadOnly)
        .with_returned(Returned::Default),
        Attribute::new("schemas", AttributeType::Reference)
            .with_description("The schema URIs of the resource.")
            .with_multi_valued(true)
            .with_required(true)
            .with_case_exact(false)
            .with_mutability(Mutability::ReadWrite)
            .with_returned(Returned::Always)
            .with_reference_types(["uri"]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_documents_parse() {
        let b = builtin();
        assert_eq!(b.user.id, crate::schema::urn::USER);
        assert_eq!(b.group.id, crate::schema::urn::GROUP);
        assert_eq!(b.enterprise_user.id, crate::schema::urn::ENTERPRISE_USER);
    }
}
