//! The resource model, schemas and errors against RFC 7643 §8, RFC 7644 §3.12, the
//! bodies in Cube Cloud's published SCIM API reference and what identity providers send.

mod common;

use common::json;
use proptest::prelude::*;
use scimkit::message::{BulkRequest, BulkResponse, ListResponse, PatchOp, SearchRequest};
use scimkit::schema::{
    AttributeType, Mutability, Registry, ResourceType, Returned, Schema, ServiceProviderConfig,
    Uniqueness,
};
use scimkit::{Error, ErrorResponse, Group, ScimType, User};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Deserialises into `T`, serialises back, and requires the same JSON.
fn round_trip<T: Serialize + DeserializeOwned>(doc: &Value) -> T {
    let typed: T = serde_json::from_value(doc.clone()).expect("deserialises");
    let back = serde_json::to_value(&typed).expect("serialises");
    assert_eq!(&back, doc, "round trip changed the document");
    typed
}

/// As [`round_trip`], for a document carrying `password`: it is read, and never
/// written back (`returned: never`, RFC 7643 §4.1.1).
fn round_trip_without_password(doc: &Value) -> User {
    let user: User = serde_json::from_value(doc.clone()).expect("deserialises");
    assert!(user.password.is_some(), "password is read");
    let mut expected = doc.clone();
    expected.as_object_mut().expect("object").remove("password");
    assert_eq!(serde_json::to_value(&user).expect("serialises"), expected);
    user
}

#[test]
fn rfc7643_minimal_user_round_trips() {
    let user: User = round_trip(&json("vectors/rfc7643/minimal-user.json"));
    assert_eq!(user.user_name.as_deref(), Some("bjensen@example.com"));
    let meta = user.meta.expect("meta");
    assert_eq!(meta.resource_type.as_deref(), Some("User"));
    assert_eq!(meta.version.as_deref(), Some(r#"W/"3694e05e9dff590""#));
}

#[test]
fn rfc7643_full_user_round_trips() {
    let user = round_trip_without_password(&json("vectors/rfc7643/full-user.json"));
    let name = user.name.as_ref().expect("name");
    assert_eq!(name.given_name.as_deref(), Some("Barbara"));
    assert_eq!(name.honorific_suffix.as_deref(), Some("III"));
    assert_eq!(user.primary_email(), Some("bjensen@example.com"));
    assert_eq!(user.addresses.len(), 2);
    assert_eq!(user.addresses[0].postal_code.as_deref(), Some("91608"));
    assert_eq!(user.phone_numbers.len(), 2);
    assert_eq!(user.ims[0].kind.as_deref(), Some("aim"));
    assert_eq!(user.photos.len(), 2);
    assert_eq!(user.groups.len(), 3);
    assert_eq!(
        user.groups[0]
            .reference
            .as_deref()
            .map(|r| r.contains("/Groups/")),
        Some(true)
    );
    assert_eq!(user.x509_certificates.len(), 1);
    assert_eq!(user.active, Some(true));
    assert_eq!(
        user.password.as_ref().map(|p| p.secret()),
        Some("t1meMa$heen")
    );
}

#[test]
fn rfc7643_enterprise_user_round_trips() {
    let user = round_trip_without_password(&json("vectors/rfc7643/enterprise-user.json"));
    let ent = user.enterprise.expect("enterprise extension");
    assert_eq!(ent.employee_number.as_deref(), Some("701984"));
    assert_eq!(ent.cost_center.as_deref(), Some("4130"));
    let manager = ent.manager.expect("manager");
    assert_eq!(
        manager.value.as_deref(),
        Some("26118915-6090-4610-87e4-49d8ca9f808d")
    );
    assert_eq!(manager.display_name.as_deref(), Some("John Smith"));
    assert!(manager.reference.is_some());
}

#[test]
fn rfc7643_group_round_trips() {
    let group: Group = round_trip(&json("vectors/rfc7643/group.json"));
    assert_eq!(group.display_name.as_deref(), Some("Tour Guides"));
    assert_eq!(group.members.len(), 2);
    assert_eq!(group.members[0].display.as_deref(), Some("Babs Jensen"));
}

#[test]
fn rfc7643_service_provider_config_round_trips() {
    let spc: ServiceProviderConfig =
        round_trip(&json("vectors/rfc7643/service-provider-config.json"));
    assert!(spc.patch.supported);
    assert!(spc.bulk.supported);
    assert_eq!(spc.bulk.max_operations, 1000);
    assert_eq!(spc.filter.max_results, 200);
    assert_eq!(spc.authentication_schemes.len(), 2);
}

#[test]
fn rfc7643_resource_types_round_trip() {
    let doc = json("vectors/rfc7643/resource-types.json");
    let types: Vec<ResourceType> = round_trip(&doc);
    assert_eq!(types[0].endpoint, "/Users");
    assert_eq!(types[0].schema_extensions.len(), 1);
    assert_eq!(types[1].name, "Group");
}

#[test]
fn rfc7643_schema_representations_round_trip() {
    for file in ["schema-user", "schema-group", "schema-enterprise-user"] {
        let _: Schema = round_trip(&json(&format!("vectors/rfc7643/{file}.json")));
    }
}

#[test]
fn built_in_schemas_are_the_rfc_documents() {
    let cases = [
        (Schema::user(), "schema-user"),
        (Schema::group(), "schema-group"),
        (Schema::enterprise_user(), "schema-enterprise-user"),
    ];
    for (schema, file) in cases {
        let doc = json(&format!("vectors/rfc7643/{file}.json"));
        let mut ours = serde_json::to_value(schema).expect("serialises");
        if file == "schema-group" {
            // The one addition: `members.display`, which RFC 7643 §4.2's examples and
            // every identity provider send, but §8.7.1 does not define.
            let subs = ours["attributes"][1]["subAttributes"]
                .as_array_mut()
                .expect("members has sub-attributes");
            let display = subs
                .iter()
                .position(|s| s["name"] == "display")
                .expect("members.display");
            assert_eq!(subs[display]["mutability"], "readWrite");
            subs.remove(display);
        }
        assert_eq!(ours, doc, "{file}");
    }
}

#[test]
fn rfc7644_messages_round_trip() {
    let _: SearchRequest = round_trip(&json("vectors/rfc7644/search-request.json"));
    let _: BulkRequest = round_trip(&json("vectors/rfc7644/bulk-request.json"));
    let _: BulkResponse = round_trip(&json("vectors/rfc7644/bulk-response.json"));
    for case in json("vectors/rfc7644/list-response.json")
        .as_array()
        .expect("array")
    {
        let _: ListResponse<Value> = round_trip(&case["body"]);
    }
    for case in json("vectors/rfc7644/patch-examples.json")
        .as_array()
        .expect("array")
    {
        let patch: PatchOp = serde_json::from_value(case["body"].clone()).expect("PatchOp");
        assert!(!patch.operations.is_empty(), "{}", case["description"]);
    }
}

#[test]
fn cube_cloud_bodies_round_trip() {
    let req = json("fixtures/requests/cube-cloud-replace-user.json");
    let user: User = round_trip(&req["body"]);
    assert_eq!(user.external_id.as_deref(), Some("00u1abcd"));
    // The response documented on the PUT page, with meta set by the service.
    let response = json!({
        "userName": "ann@example.com",
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "b9f3c2d1",
        "name": {"givenName": "Ann", "familyName": "Lee"},
        "emails": [{"value": "ann@example.com", "primary": true}],
        "active": true,
        "externalId": "00u1abcd",
        "meta": {
            "resourceType": "User",
            "created": "2023-11-07T05:31:56Z",
            "lastModified": "2023-11-07T05:31:56Z",
            "location": "https://acme.cubecloud.dev/api/scim/v2/Users/b9f3c2d1"
        }
    });
    let _: User = round_trip(&response);
    // The PATCH page's example body and its 404 error.
    let patch: PatchOp = serde_json::from_value(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": false}]
    }))
    .expect("PatchOp");
    assert_eq!(patch.operations.len(), 1);
    let not_found = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": "404",
        "detail": "Resource not found."
    });
    let _: ErrorResponse = round_trip(&not_found);
}

fn decode_user(body: Value) -> User {
    Registry::core().decode(body).expect("decodes")
}

#[test]
fn okta_create_user_is_accepted_and_password_never_written() {
    let req = json("fixtures/requests/okta-create-user.json");
    let user = decode_user(req["body"].clone());
    assert_eq!(user.password.as_ref().map(|p| p.secret()), Some("1mz050nq"));
    assert_eq!(format!("{:?}", user.password), "Some(Password([redacted]))");
    let out = serde_json::to_value(&user).expect("serialises");
    assert!(out.get("password").is_none());
    // `"groups": []` is unassigned (RFC 7643 §2.5) and so is not written back.
    assert!(out.get("groups").is_none());
    assert_eq!(out["locale"], "en-US");
}

#[test]
fn okta_replace_user_and_groups_are_accepted() {
    let user = decode_user(json("fixtures/requests/okta-replace-user.json")["body"].clone());
    assert_eq!(
        user.name.and_then(|n| n.middle_name).as_deref(),
        Some("Excited")
    );
    let group: Group = Registry::core()
        .decode(json("fixtures/requests/okta-create-group.json")["body"].clone())
        .expect("group");
    assert_eq!(group.display_name.as_deref(), Some("Test SCIMv2"));
    assert!(group.members.is_empty());
}

#[test]
fn entra_create_user_keeps_client_meta_for_the_service_to_ignore() {
    let user = decode_user(json("fixtures/requests/entra-create-user.json")["body"].clone());
    assert_eq!(
        user.meta.and_then(|m| m.resource_type).as_deref(),
        Some("User")
    );
    assert!(user.roles.is_empty());
    assert_eq!(user.emails[0].primary, Some(true));
}

#[test]
fn entra_manager_as_bare_string_becomes_an_object() {
    let body = json("fixtures/requests/entra-create-user-manager-string.json")["body"].clone();
    let rt = Registry::core();
    let users = rt.resource_type("User").expect("User");
    let normalized = users.normalize(body).expect("normalises");
    assert_eq!(
        normalized["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"],
        json!({"value": "26118915-6090-4610-87e4-49d8ca9f808d"})
    );
    let user: User = serde_json::from_value(normalized).expect("User");
    assert_eq!(
        user.enterprise.and_then(|e| e.department).as_deref(),
        Some("Sales")
    );
}

#[test]
fn entra_group_with_extra_schema_urn_is_accepted_and_kept() {
    let body = json("fixtures/requests/entra-create-group.json")["body"].clone();
    let group: Group = Registry::core().decode(body).expect("group");
    assert_eq!(group.schemas.len(), 2);
    assert_eq!(
        group.schemas[1],
        "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
    );
}

#[test]
fn pascal_case_keys_and_string_booleans_are_normalised() {
    let body = json!({
        "Schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "UserName": "Ann",
        "Active": "False",
        "Name": {"GivenName": "Ann", "FAMILYNAME": "Lee"},
        "Emails": [{"Value": "ann@example.com", "Primary": "True", "Type": "work"}],
        "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER": {"EmployeeNumber": 42},
        "meta": {"resourceType": "User"},
        "nickName": null,
        "customThing": {"Keep": "As Is"}
    });
    let registry = Registry::core();
    let users = registry.resource_type("User").expect("User");
    let normalized = users.normalize(body).expect("normalises");
    assert_eq!(
        normalized,
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "Ann",
            "active": false,
            "name": {"givenName": "Ann", "familyName": "Lee"},
            "emails": [{"value": "ann@example.com", "primary": true, "type": "work"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "42"},
            "meta": {"resourceType": "User"},
            "customThing": {"Keep": "As Is"}
        })
    );
}

#[test]
fn normalisation_rejects_values_it_cannot_read() {
    let registry = Registry::core();
    let users = registry.resource_type("User").expect("User");
    let err = users
        .normalize(json!({"userName": "a", "active": "maybe"}))
        .expect_err("must fail");
    assert_eq!(err.status(), 400);
    assert_eq!(err.scim_type(), Some(ScimType::InvalidValue));
    assert!(err.detail().contains("'active'"), "{}", err.detail());
    assert!(err.detail().contains("boolean"), "{}", err.detail());

    let err = users
        .normalize(json!({"userName": "a", "emails": [{"primary": {"x": 1}}]}))
        .expect_err("must fail");
    assert!(err.detail().contains("emails.primary"), "{}", err.detail());

    let err = users
        .normalize(json!(["not", "an", "object"]))
        .expect_err("must fail");
    assert_eq!(err.scim_type(), Some(ScimType::InvalidSyntax));
}

#[test]
fn unknown_extension_and_attributes_round_trip() {
    let doc = json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:example:params:scim:schemas:extension:acme:2.0:User"
        ],
        "id": "2819c223",
        "userName": "bjensen",
        "favouriteColour": "green",
        "name": {"givenName": "Barbara", "phonetic": "BAR-buh-ruh"},
        "emails": [{"value": "b@example.com", "type": "work", "verified": true}],
        "addresses": [{"locality": "Hollywood", "geo": {"lat": 34.1, "lon": -118.3}}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "department": "Tour Operations",
            "floor": 3,
            "manager": {"value": "26118915", "team": ["a", "b"]}
        },
        "urn:example:params:scim:schemas:extension:acme:2.0:User": {
            "badge": {"number": 1234, "levels": [1, 2, {"deep": [null, true]}]},
            "tags": ["x", "y"]
        }
    });
    let user: User = round_trip(&doc);
    assert_eq!(
        user.extensions.get("favouriteColour"),
        Some(&json!("green"))
    );
    // Through the normalising decoder, too.
    let decoded: User = Registry::core().decode(doc.clone()).expect("decodes");
    assert_eq!(serde_json::to_value(&decoded).expect("serialises"), doc);
    let group_doc = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Ops",
        "members": [{"value": "1", "display": "One", "note": "kept"}],
        "urn:example:params:scim:schemas:extension:acme:2.0:Group": {"costCode": "X1"}
    });
    let _: Group = round_trip(&group_doc);
}

#[test]
fn built_in_schema_characteristics_follow_rfc7643() {
    let registry = Registry::core();
    let users = registry.resource_type("User").expect("User");
    let attr = |name: &str| users.attribute(None, name).expect(name).attribute;

    let user_name = attr("userName");
    assert!(user_name.is_required());
    assert!(!user_name.is_case_exact());
    assert_eq!(user_name.uniqueness(), Uniqueness::Server);

    let id = attr("id");
    assert_eq!(id.mutability(), Mutability::ReadOnly);
    assert_eq!(id.returned(), Returned::Always);
    assert!(id.is_case_exact());

    let password = attr("password");
    assert_eq!(password.mutability(), Mutability::WriteOnly);
    assert_eq!(password.returned(), Returned::Never);

    assert_eq!(attr("groups").mutability(), Mutability::ReadOnly);
    assert!(attr("emails").is_multi_valued());
    assert_eq!(attr("emails").attr_type(), AttributeType::Complex);
    assert_eq!(attr("active").attr_type(), AttributeType::Boolean);
    assert!(attr("externalId").is_case_exact());
    assert_eq!(attr("meta").mutability(), Mutability::ReadOnly);

    let groups = registry.resource_type("Group").expect("Group");
    let members = groups
        .attribute(None, "members")
        .expect("members")
        .attribute;
    assert_eq!(
        members
            .sub_attribute("value")
            .expect("members.value")
            .mutability(),
        Mutability::Immutable
    );
    assert_eq!(
        members
            .sub_attribute("$REF")
            .expect("members.$ref")
            .attr_type(),
        AttributeType::Reference
    );

    let manager = users
        .resolve("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value")
        .expect("manager.value");
    assert!(manager.0.extension);
    assert_eq!(manager.1.map(|a| a.name()), Some("value"));
    let (given, sub) = users.resolve("NAME.GIVENNAME").expect("name.givenName");
    assert_eq!(given.attribute.name(), "name");
    assert_eq!(sub.map(|a| a.name()), Some("givenName"));
    // Extension attributes are also found without their URN.
    assert!(
        users
            .attribute(None, "employeeNumber")
            .expect("employeeNumber")
            .extension
    );
    assert!(
        users
            .attribute(Some("urn:example:nope"), "userName")
            .is_none()
    );
}

#[test]
fn custom_resource_types_resolve_like_built_in_ones() {
    use scimkit::schema::Attribute;
    let mut registry = Registry::core();
    registry.add_schema(Schema::new(
        "urn:example:params:scim:schemas:core:2.0:Device",
        "Device",
        vec![
            Attribute::new("serialNumber", AttributeType::String)
                .with_required(true)
                .with_case_exact(true),
            Attribute::new("enrolled", AttributeType::Boolean),
        ],
    ));
    registry
        .add_resource_type(ResourceType::new(
            "Device",
            "/Devices",
            "urn:example:params:scim:schemas:core:2.0:Device",
        ))
        .expect("registers");
    let devices = registry
        .resource_type_by_endpoint("Devices")
        .expect("Devices");
    let normalized = devices
        .normalize(json!({"SerialNumber": 7, "Enrolled": "true"}))
        .expect("normalises");
    assert_eq!(normalized, json!({"serialNumber": "7", "enrolled": true}));
    let missing = registry.add_resource_type(ResourceType::new("X", "/X", "urn:missing"));
    assert!(missing.is_err());
    let duplicate = registry.add_resource_type(ResourceType::new(
        "User",
        "/People",
        scimkit::schema::urn::USER,
    ));
    assert!(duplicate.is_err());
}

#[test]
fn error_bodies_equal_the_rfc_examples() {
    for case in json("vectors/rfc7644/errors.json")
        .as_array()
        .expect("array")
    {
        let body = &case["body"];
        let wire: ErrorResponse = round_trip(body);
        let err = Error::from(&wire);
        let again = serde_json::to_value(ErrorResponse::from(&err)).expect("serialises");
        assert_eq!(&again, body, "{}", case["section"]);
    }
    let built = serde_json::to_value(ErrorResponse::from(&Error::mutability(
        "Attribute 'id' is readOnly",
    )))
    .expect("serialises");
    assert_eq!(
        built,
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": "400",
            "scimType": "mutability",
            "detail": "Attribute 'id' is readOnly"
        })
    );
}

#[test]
fn error_status_may_be_read_as_a_number() {
    let wire: ErrorResponse = serde_json::from_value(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": 409,
        "scimType": "uniqueness",
        "detail": "userName taken"
    }))
    .expect("reads");
    assert_eq!(wire.status, 409);
    assert_eq!(wire.scim_type, Some(ScimType::Uniqueness));
    assert_eq!(
        serde_json::to_value(&wire).expect("writes")["status"],
        "409"
    );
}

#[test]
fn error_constructors_carry_the_right_status_and_type() {
    let cases: Vec<(Error, u16, Option<ScimType>)> = vec![
        (
            Error::invalid_filter("x"),
            400,
            Some(ScimType::InvalidFilter),
        ),
        (Error::too_many("x"), 400, Some(ScimType::TooMany)),
        (Error::uniqueness("x"), 409, Some(ScimType::Uniqueness)),
        (Error::mutability("x"), 400, Some(ScimType::Mutability)),
        (
            Error::invalid_syntax("x"),
            400,
            Some(ScimType::InvalidSyntax),
        ),
        (Error::invalid_path("x"), 400, Some(ScimType::InvalidPath)),
        (Error::no_target("x"), 400, Some(ScimType::NoTarget)),
        (Error::invalid_value("x"), 400, Some(ScimType::InvalidValue)),
        (Error::invalid_vers("x"), 400, Some(ScimType::InvalidVers)),
        (Error::sensitive("x"), 400, Some(ScimType::Sensitive)),
        (Error::not_found("x"), 404, None),
        (Error::precondition_failed("x"), 412, None),
        (Error::payload_too_large("x"), 413, None),
        (Error::not_implemented("x"), 501, None),
        (Error::unauthorized("x"), 401, None),
        (Error::method_not_allowed("x"), 405, None),
        (Error::unsupported_media_type("x"), 415, None),
    ];
    for (err, status, scim_type) in cases {
        assert_eq!(err.status(), status, "{err}");
        assert_eq!(err.scim_type(), scim_type, "{err}");
        assert_eq!(err.detail(), "x");
    }
}

fn opt_string() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("[ -~]{0,12}")
}

fn multi_value() -> impl Strategy<Value = scimkit::MultiValue> {
    (
        opt_string(),
        opt_string(),
        opt_string(),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(value, display, kind, primary)| scimkit::MultiValue {
            value,
            display,
            kind,
            primary,
            ..Default::default()
        })
}

fn arb_user() -> impl Strategy<Value = User> {
    let names = (opt_string(), opt_string(), opt_string()).prop_map(|(f, g, m)| {
        (f.is_some() || g.is_some() || m.is_some()).then(|| scimkit::Name {
            formatted: f,
            given_name: g,
            middle_name: m,
            ..Default::default()
        })
    });
    let extra = proptest::collection::btree_map("x[a-z]{1,6}", "[a-z]{0,6}", 0..3);
    (
        (opt_string(), opt_string(), opt_string(), opt_string()),
        names,
        proptest::option::of(any::<bool>()),
        proptest::collection::vec(multi_value(), 0..3),
        proptest::collection::vec(multi_value(), 0..2),
        (opt_string(), opt_string()),
        extra,
    )
        .prop_map(
            |(
                (id, external_id, user_name, display_name),
                name,
                active,
                emails,
                roles,
                (dept, manager),
                extra,
            )| {
                let enterprise =
                    (dept.is_some() || manager.is_some()).then(|| scimkit::EnterpriseUser {
                        department: dept,
                        manager: manager.map(|m| scimkit::Manager {
                            value: Some(m),
                            ..Default::default()
                        }),
                        ..Default::default()
                    });
                User {
                    schemas: vec![scimkit::schema::urn::USER.to_owned()],
                    id,
                    external_id,
                    user_name,
                    display_name,
                    name,
                    active,
                    emails,
                    roles,
                    enterprise,
                    extensions: extra
                        .into_iter()
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect(),
                    ..Default::default()
                }
            },
        )
}

proptest! {
    #[test]
    fn arbitrary_users_survive_a_round_trip(user in arb_user()) {
        let json = serde_json::to_string(&user).expect("serialises");
        let back: User = serde_json::from_str(&json).expect("deserialises");
        prop_assert_eq!(&back, &user);
        // And through the normalising decoder.
        let decoded: User = Registry::core().decode(serde_json::from_str(&json).expect("json")).expect("decodes");
        prop_assert_eq!(decoded, user);
    }
}
