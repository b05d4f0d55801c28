//! The filter language and PATCH paths (RFC 7644 §3.4.2.2, §3.5.2): parsing,
//! printing, errors, limits and schema-aware evaluation.

mod common;

use std::time::Duration;

use common::{json, text};
use proptest::prelude::*;
use scimkit::filter::{CompValue, CompareOp, Filter, FilterErrorKind, FilterOptions};
use scimkit::path::{AttrPath, Path};
use scimkit::{Error, Registry, ScimType};
use serde_json::{Value, json};

fn parse(s: &str) -> Filter {
    Filter::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

/// Parses, prints, re-parses: the tree and the text are stable.
fn assert_round_trip(s: &str) -> Filter {
    let f = parse(s);
    let printed = f.to_string();
    let again = Filter::parse(&printed).unwrap_or_else(|e| panic!("{printed:?}: {e}"));
    assert_eq!(again, f, "{s:?} printed as {printed:?}");
    assert_eq!(again.to_string(), printed);
    f
}

fn matches(filter: &str, resource: &Value) -> bool {
    let registry = Registry::core();
    let rt = registry.resource_type_of(resource).expect("resource type");
    let f = parse(filter);
    f.check(&rt).unwrap_or_else(|e| panic!("{filter:?}: {e}"));
    f.matches(&rt, resource)
}

#[test]
fn rfc_examples_parse_print_and_evaluate_against_the_full_user() {
    let full = json("vectors/rfc7643/full-user.json");
    let enterprise = json("vectors/rfc7643/enterprise-user.json");
    let filters = json("vectors/rfc7644/filters.json");
    let expected = [
        false, false, false, false, true, false, true, false, true, true, true, false, true, false,
        true, true, true,
    ];
    let filters: Vec<&str> = filters
        .as_array()
        .expect("array")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(filters.len(), expected.len());
    for (f, want) in filters.iter().zip(expected) {
        assert_round_trip(f);
        assert_eq!(matches(f, &full), want, "{f}");
    }
    // The same RFC filters with values that do select Babs.
    assert!(matches(r#"userName sw "B""#, &full));
    assert!(matches(
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "bJ""#,
        &full
    ));
    assert!(matches(r#"name.familyName co "ens""#, &full));
    assert!(matches(
        r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
        &enterprise
    ));
    assert!(matches(
        r#"meta.lastModified gt "2011-05-13T04:42:33Z""#,
        &full
    ));
    assert!(matches(
        r#"meta.lastModified lt "2011-05-13T04:42:35Z""#,
        &full
    ));
    // Offsets are honoured: 06:42:34+02:00 is the same instant.
    assert!(matches(
        r#"meta.lastModified eq "2011-05-13T06:42:34+02:00""#,
        &full
    ));
    assert!(matches(
        r#"meta.lastModified ge "2011-05-13T06:42:34+02:00""#,
        &full
    ));
    assert!(!matches(
        r#"meta.lastModified gt "2011-05-13T06:42:34+02:00""#,
        &full
    ));
}

#[test]
fn fixture_filters_all_parse_and_round_trip() {
    let mut count = 0;
    for line in text("fixtures/filters.txt").lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        assert_round_trip(line);
        count += 1;
    }
    assert!(count >= 29, "only {count} filters read");
}

#[test]
fn provider_lookups_evaluate_as_providers_expect() {
    let okta_user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "40734ae655284ad3abcc",
        "userName": "Test.User@okta.local",
        "externalId": "4d32ab19-ae09-4236-82fa-15768bc48a08",
        "displayName": "Test User",
        "emails": [{"type": "work", "value": "user@contoso.com"}],
        "roles": [{"primary": true, "display": "Admin", "value": "admin"}],
        "meta": {"lastModified": "2021-09-23T19:35:41.9Z"}
    });
    // Okta: userName matches regardless of case.
    assert!(matches(r#"userName eq "test.user@okta.local""#, &okta_user));
    // Entra: ids and externalIds are caseExact.
    assert!(matches(
        r#"externalId eq "4d32ab19-ae09-4236-82fa-15768bc48a08""#,
        &okta_user
    ));
    assert!(!matches(
        r#"externalId eq "4D32AB19-AE09-4236-82FA-15768BC48A08""#,
        &okta_user
    ));
    assert!(matches(r#"id eq "40734ae655284ad3abcc""#, &okta_user));
    assert!(!matches(r#"id eq "40734AE655284AD3ABCC""#, &okta_user));
    assert!(matches(r#"displayName eq "test user""#, &okta_user));
    // Entra: a value path, a sub-attribute and a comparison.
    let f = parse(r#"emails[type eq "work"].value eq "user@contoso.com""#);
    assert_eq!(
        f.to_string(),
        r#"emails[type eq "work" and value eq "user@contoso.com"]"#
    );
    assert!(matches(
        r#"emails[type eq "work"].value eq "user@contoso.com""#,
        &okta_user
    ));
    assert!(!matches(
        r#"emails[type eq "home"].value eq "user@contoso.com""#,
        &okta_user
    ));
    // Entra: booleans compared as strings.
    assert!(matches(
        r#"roles[primary eq "True"].display eq "Admin""#,
        &okta_user
    ));
    assert!(!matches(r#"roles[primary eq "False"]"#, &okta_user));
    // Entra: seven fractional digits.
    assert!(matches(
        r#"meta.lastModified ge "2021-09-23T19:35:41.8420572Z""#,
        &okta_user
    ));
    assert!(!matches(
        r#"meta.lastModified ge "2021-09-23T19:35:41.9000001Z""#,
        &okta_user
    ));
}

#[test]
fn group_membership_lookups() {
    let group = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Ops",
        "members": [{"value": "2819c223-7f76-453a-919d-413861904646"}, {"value": "902c246b"}]
    });
    assert!(matches(
        r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#,
        &group
    ));
    assert!(matches(r#"members.value eq "902c246b""#, &group));
    // RFC 7643 §8.7.1 gives members.value caseExact false.
    assert!(matches(r#"members.value eq "902C246B""#, &group));
    assert!(matches(r#"members pr"#, &group));
    assert!(!matches(r#"members[value eq "nobody"]"#, &group));
}

#[test]
fn evaluation_honours_the_schema() {
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "userName": "bjensen",
        "title": "",
        "nickName": "Babs",
        "active": true,
        "emails": [{"value": "b@Example.com", "type": "work"}, {"value": "babs@home.org", "type": "home"}],
        "phoneNumbers": [],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984",
            "manager": {"value": "26118915"}
        },
        "x-custom": "kept"
    });
    // pr: empty string and empty list are not present.
    assert!(!matches("title pr", &user));
    assert!(!matches("phoneNumbers pr", &user));
    assert!(matches("nickName pr", &user));
    assert!(!matches("not (nickName pr)", &user));
    // A multi-valued complex attribute without a sub-attribute compares `value`.
    assert!(matches(r#"emails co "example.com""#, &user));
    assert!(matches(r#"emails ew "HOME.ORG""#, &user));
    assert!(matches(r#"emails.type eq "home""#, &user));
    // Booleans.
    assert!(matches("active eq true", &user));
    assert!(matches(r#"active eq "True""#, &user));
    assert!(!matches("active eq false", &user));
    assert!(matches("active ne false", &user));
    // Extension attributes, qualified or not.
    assert!(matches(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915""#,
        &user
    ));
    assert!(matches(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber sw "70""#,
        &user
    ));
    assert!(matches(r#"employeeNumber eq "701984""#, &user));
    // Keywords and attribute names in any case.
    assert!(matches(r#"USERNAME EQ "BJENSEN" AND NOT(Title Pr)"#, &user));
    // Attributes the schema does not define match nothing, whatever the operator.
    assert!(!matches(r#"x-custom eq "kept""#, &user));
    assert!(!matches(r#"favouriteColour eq "green""#, &user));
    assert!(!matches(r#"favouriteColour ne "green""#, &user));
    assert!(matches(r#"not (favouriteColour eq "green")"#, &user));
    // null: eq null is "not present".
    assert!(matches("title eq null", &user));
    assert!(!matches("nickName eq null", &user));
    // Lexical ordering on strings, honouring caseExact=false.
    assert!(matches(r#"userName gt "BJ""#, &user));
    assert!(matches(r#"userName lt "C""#, &user));
    // and binds tighter than or.
    assert!(matches(
        r#"userName eq "x" and title pr or nickName pr"#,
        &user
    ));
    assert!(!matches(
        r#"userName eq "x" and (title pr or nickName pr)"#,
        &user
    ));
}

#[test]
fn numbers_compare_numerically() {
    let mut registry = Registry::core();
    use scimkit::schema::{Attribute, AttributeType, ResourceType, Schema};
    registry.add_schema(Schema::new(
        "urn:example:params:scim:schemas:core:2.0:Device",
        "Device",
        vec![
            Attribute::new("ports", AttributeType::Integer),
            Attribute::new("weight", AttributeType::Decimal),
            Attribute::new("firmware", AttributeType::Binary),
        ],
    ));
    registry
        .add_resource_type(ResourceType::new(
            "Device",
            "/Devices",
            "urn:example:params:scim:schemas:core:2.0:Device",
        ))
        .expect("registers");
    let rt = registry.resource_type("Device").expect("Device");
    let device = json!({"ports": 10, "weight": 2.5});
    let m = |f: &str| {
        let f = parse(f);
        f.check(&rt).expect("valid");
        f.matches(&rt, &device)
    };
    assert!(m("ports gt 9"));
    assert!(!m("ports gt 10"));
    assert!(m("ports ge 10"));
    assert!(m("ports eq 10.0"));
    assert!(m("weight lt 2.75"));
    assert!(m("weight gt -1e2"));
    assert!(
        m("ports lt 1e2"),
        "100 > 10 numerically, although \"1e2\" < \"10\" lexically"
    );
    let invalid = |f: &str| parse(f).check(&rt).expect_err(f).scim_type();
    assert_eq!(
        invalid("firmware gt \"AAAA\""),
        Some(ScimType::InvalidFilter)
    );
    assert_eq!(invalid("ports co 1"), Some(ScimType::InvalidFilter));
    assert_eq!(invalid("ports eq \"ten\""), Some(ScimType::InvalidFilter));
}

#[test]
fn invalid_operator_and_type_combinations_are_invalid_filter() {
    let registry = Registry::core();
    let users = registry.resource_type("User").expect("User");
    for f in [
        "active gt true",
        "active le false",
        r#"active co "tr""#,
        r#"active eq "maybe""#,
        r#"meta.lastModified gt "yesterday""#,
        r#"userName[value eq "x"]"#,
        r#"name eq "Barbara""#,
        r#"userName gt null"#,
    ] {
        let err: Error = parse(f).check(&users).expect_err(f);
        assert_eq!(err.status(), 400, "{f}");
        assert_eq!(err.scim_type(), Some(ScimType::InvalidFilter), "{f}");
    }
}

/// (input, offset, a phrase of the message)
const MALFORMED: &[(&str, usize, &str)] = &[
    ("", 0, "empty"),
    ("   ", 0, "empty"),
    ("userName", 8, "expected a comparison operator"),
    ("userName ", 9, "found the end of the input"),
    (r#"userName equals "x""#, 9, "found \"equals\""),
    (r#"userName eq"#, 11, "expected a value"),
    (r#"userName eq "#, 12, "expected a value"),
    (r#"userName eq bjensen"#, 12, "expected a value"),
    (r#"userName eq "bjensen"#, 12, "no closing quote"),
    (r#"userName eq "bj\"#, 12, "no closing quote"),
    (r#"userName eq "a\qb""#, 14, "invalid escape \\q"),
    (r#"userName eq "\u12""#, 13, "invalid escape"),
    (r#"userName eq "\uZZZZ""#, 13, "invalid escape"),
    (r#"userName eq "\ud800""#, 13, "invalid escape"),
    (r#"userName eq "\ud800\u0041""#, 13, "invalid escape"),
    (r#"userName eq "\udc00""#, 13, "invalid escape"),
    (r#"userName eq 01"#, 12, "invalid number"),
    (r#"userName eq 1."#, 12, "invalid number"),
    (r#"userName eq -"#, 12, "invalid number"),
    (r#"userName eq 1e"#, 12, "invalid number"),
    (
        r#"userName eq "a" junk"#,
        16,
        "expected \"and\", \"or\" or the end",
    ),
    (r#"userName eq "a" and"#, 19, "expected an attribute name"),
    (r#"userName eq "a" or "#, 19, "expected an attribute name"),
    (
        r#"userName eq "a" and or title pr"#,
        23,
        "after \"or\" at offset 23, found \"title\"",
    ),
    (r#"title pr "x""#, 9, "expected \"and\", \"or\""),
    (r#"title pr pr"#, 9, "expected \"and\", \"or\""),
    (r#"(title pr"#, 9, "\")\" to close the group"),
    (r#"((title pr)"#, 11, "\")\" to close the group"),
    (r#"title pr)"#, 8, "expected \"and\", \"or\" or the end"),
    (r#"()"#, 1, "expected an attribute name"),
    (r#"not"#, 3, "expected \"(\" after \"not\""),
    (
        r#"not title pr and x pr"#,
        4,
        "expected \"(\" after \"not\"",
    ),
    (r#"not ("#, 5, "expected an attribute name"),
    (
        r#"emails[type eq "work""#,
        21,
        "\"]\" to close the value filter",
    ),
    (r#"emails[]"#, 7, "expected an attribute name"),
    (r#"emails[type eq "work"]]"#, 22, "expected \"and\", \"or\""),
    (
        r#"emails[type[value eq "x"] pr]"#,
        11,
        "cannot contain another value filter",
    ),
    (
        r#"emails.type[value eq "x"]"#,
        11,
        "expected a comparison operator",
    ),
    (r#"emails[type eq "work"]."#, 23, "sub-attribute name"),
    (
        r#"emails[type eq "work"].value"#,
        28,
        "expected a comparison operator",
    ),
    (r#"1userName eq "a""#, 0, "invalid attribute name"),
    (r#"user$name eq "a""#, 0, "invalid attribute name"),
    (r#"name.given.name eq "a""#, 5, "invalid attribute name"),
    (r#"name. eq "a""#, 5, "invalid attribute name"),
    (
        r#"urn:ietf:params:scim:schemas:core:2.0:User: eq "a""#,
        43,
        "invalid attribute name",
    ),
    (
        r#"userName eq "a" and (title pr))"#,
        30,
        "expected \"and\", \"or\"",
    ),
    (r#"userName = "a""#, 9, "expected a comparison operator"),
    (
        r#"userName eq "a" && title pr"#,
        16,
        "expected \"and\", \"or\"",
    ),
    (r#"[type eq "work"]"#, 0, "expected an attribute name"),
    (r#"userName eq tru"#, 12, "expected a value"),
    ("\"bjensen\"", 0, "expected an attribute name"),
];

#[test]
fn malformed_filters_are_invalid_filter_with_an_offset() {
    assert!(MALFORMED.len() >= 40);
    let mut wrong = Vec::new();
    for &(input, offset, phrase) in MALFORMED {
        let err = match Filter::parse(input) {
            Ok(f) => panic!("{input:?} parsed as {f:?}"),
            Err(e) => e,
        };
        let message = err.to_string();
        if err.offset() != offset || !message.contains(phrase) {
            wrong.push(format!(
                "{input:?}: got offset {} {message:?}; want {offset} {phrase:?}",
                err.offset()
            ));
        }
        let scim: Error = err.into();
        assert_eq!(scim.status(), 400);
        assert_eq!(scim.scim_type(), Some(ScimType::InvalidFilter));
        assert!(scim.detail().contains(&message));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn exact_messages() {
    let cases = [
        (
            r#"userName equals "bjensen""#,
            r#"expected a comparison operator (eq, ne, co, sw, ew, gt, lt, ge, le) or pr after "userName" at offset 9, found "equals""#,
        ),
        (
            r#"userName eq "bj"#,
            "the string starting at offset 12 has no closing quote",
        ),
        (
            r#"(title pr"#,
            r#"expected ")" to close the group at offset 9, found the end of the input"#,
        ),
        (
            r#"title pr and"#,
            r#"expected an attribute name, "not" or "(" at offset 12, found the end of the input"#,
        ),
    ];
    for (input, message) in cases {
        assert_eq!(Filter::parse(input).expect_err(input).to_string(), message);
    }
}

#[test]
fn limits_stop_hostile_input_quickly() {
    let start = std::time::Instant::now();
    for unit in ["(", "not(", "not (", "emails["] {
        let deep = unit.repeat(100_000) + "title pr";
        let err = Filter::parse(&deep).expect_err("too long");
        assert!(
            matches!(err.kind(), FilterErrorKind::TooLong { .. }),
            "{err}"
        );
        // With the length limit lifted, the depth limit answers.
        let unlimited = FilterOptions::default().max_len(usize::MAX);
        let err = unlimited.parse(&deep).expect_err("too deep");
        if unit == "emails[" {
            assert!(
                matches!(err.kind(), FilterErrorKind::NestedValueFilter),
                "{err}"
            );
        } else {
            assert!(
                matches!(err.kind(), FilterErrorKind::TooDeep { .. }),
                "{err}"
            );
        }
        let scim: Error = err.into();
        assert_eq!(scim.scim_type(), Some(ScimType::InvalidFilter));
    }
    // A long flat chain is fine: no recursion per operand.
    let chain = vec![r#"userName eq "a""#; 5_000].join(" or ");
    let f = FilterOptions::default()
        .max_len(usize::MAX)
        .parse(&chain)
        .expect("parses");
    match &f {
        Filter::Or(parts) => assert_eq!(parts.len(), 5_000),
        other => panic!("{other:?}"),
    }
    let depth_ok = "(".repeat(32) + "title pr" + &")".repeat(32);
    assert!(Filter::parse(&depth_ok).is_ok());
    let depth_bad = "(".repeat(33) + "title pr" + &")".repeat(33);
    assert!(Filter::parse(&depth_bad).is_err());
    // Generous bound: this guards against quadratic or exponential behaviour, not speed.
    assert!(start.elapsed() < Duration::from_secs(20));
}

#[test]
fn json_literals() {
    let f = parse(r#"displayName eq "a\"b\\c\/d\n\t\u00e9\ud83d\ude00""#);
    assert_eq!(
        f,
        Filter::eq(AttrPath::new("displayName"), "a\"b\\c/d\n\té😀")
    );
    assert_round_trip(r#"displayName eq "a\"b\\c\/d\n\t\u00e9\ud83d\ude00""#);
    for (text, value) in [
        ("x eq 42", CompValue::Number(42.into())),
        (
            "x eq -0.5",
            CompValue::Number(serde_json::Number::from_f64(-0.5).expect("finite")),
        ),
        (
            "x eq 1e3",
            CompValue::Number("1e3".parse().expect("number")),
        ),
        (
            "x eq 2.5E-3",
            CompValue::Number("2.5E-3".parse().expect("number")),
        ),
        ("x eq true", CompValue::Bool(true)),
        ("x eq FALSE", CompValue::Bool(false)),
        ("x eq null", CompValue::Null),
        ("x eq \"\"", CompValue::String(String::new())),
    ] {
        assert_eq!(
            parse(text),
            Filter::Compare(AttrPath::new("x"), CompareOp::Eq, value),
            "{text}"
        );
        assert_round_trip(text);
    }
    // `not(` without a space, and no space before a string.
    assert_eq!(parse("not(title pr)"), parse("not (title pr)"));
    assert_eq!(
        parse(r#"members[value eq"2819c223"]"#),
        parse(r#"members[value eq "2819c223"]"#)
    );
}

#[test]
fn patch_paths_parse_and_print() {
    for (input, attr, filtered, sub) in [
        ("userName", "userName", false, None),
        ("name.familyName", "name", false, Some("familyName")),
        ("members", "members", false, None),
        (r#"members[value eq "2819c223"]"#, "members", true, None),
        (
            r#"emails[type eq "work"].value"#,
            "emails",
            true,
            Some("value"),
        ),
        (
            r#"addresses[type eq "work"].streetAddress"#,
            "addresses",
            true,
            Some("streetAddress"),
        ),
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
            "manager",
            false,
            None,
        ),
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
            "manager",
            false,
            Some("value"),
        ),
        (
            r#"members[value eq "a" or value eq "b"]"#,
            "members",
            true,
            None,
        ),
    ] {
        let path = Path::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(path.attr().name(), attr, "{input}");
        assert_eq!(path.filter().is_some(), filtered, "{input}");
        assert_eq!(path.sub_attr(), sub, "{input}");
        assert_eq!(path.to_string(), input);
        assert_eq!(Path::parse(&path.to_string()).expect("reparses"), path);
    }
    let qualified =
        Path::parse("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department")
            .expect("parses");
    assert_eq!(
        qualified.attr().schema(),
        Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
    );
}

#[test]
fn malformed_paths_are_invalid_path() {
    for (input, offset) in [
        ("", 0),
        ("emails[type eq \"work\"", 21),
        ("emails[type eq]", 14),
        ("name.givenName[value eq \"x\"]", 0),
        ("emails[type eq \"work\"].", 23),
        ("emails[type eq \"work\"]x", 22),
        ("1abc", 0),
        ("user name", 5),
        ("members[value eq \"a\"] and x", 22),
    ] {
        let err = Path::parse(input).expect_err(input);
        assert_eq!(err.offset(), offset, "{input:?}: {err}");
        let scim: Error = err.into();
        assert_eq!(scim.status(), 400);
        assert_eq!(scim.scim_type(), Some(ScimType::InvalidPath), "{input}");
    }
}

// ---- properties ----

fn arb_name() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z0-9_-]{0,8}".prop_filter("not a keyword", |s| {
        !["and", "or", "not", "pr", "true", "false", "null"]
            .iter()
            .any(|k| s.eq_ignore_ascii_case(k))
    })
}

fn arb_attr() -> impl Strategy<Value = AttrPath> {
    (
        proptest::option::of(prop_oneof![
            Just("urn:ietf:params:scim:schemas:core:2.0:User".to_owned()),
            Just("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".to_owned()),
        ]),
        arb_name(),
        proptest::option::of(arb_name()),
    )
        .prop_map(|(schema, name, sub)| {
            let mut a = AttrPath::new(name);
            if let Some(s) = schema {
                a = a.with_schema(s);
            }
            if let Some(s) = sub {
                a = a.with_sub_attr(s);
            }
            a
        })
}

fn arb_value() -> impl Strategy<Value = CompValue> {
    prop_oneof![
        Just(CompValue::Null),
        any::<bool>().prop_map(CompValue::Bool),
        any::<i64>().prop_map(|n| CompValue::Number(n.into())),
        (-1.0e9f64..1.0e9)
            .prop_map(|f| CompValue::Number(serde_json::Number::from_f64(f).expect("finite"))),
        any::<String>().prop_map(CompValue::String),
    ]
}

fn arb_op() -> impl Strategy<Value = CompareOp> {
    proptest::sample::select(CompareOp::ALL.to_vec())
}

fn arb_filter_in(value_filter: bool) -> BoxedStrategy<Filter> {
    let attr = if value_filter {
        arb_name().prop_map(AttrPath::new).boxed()
    } else {
        arb_attr().boxed()
    };
    let leaf = prop_oneof![
        (attr.clone(), arb_op(), arb_value()).prop_map(|(a, o, v)| Filter::Compare(a, o, v)),
        attr.prop_map(Filter::Present),
    ];
    leaf.prop_recursive(4, 24, 4, move |inner| {
        let mut options = vec![
            proptest::collection::vec(inner.clone(), 2..4)
                .prop_map(Filter::And)
                .boxed(),
            proptest::collection::vec(inner.clone(), 2..4)
                .prop_map(Filter::Or)
                .boxed(),
            inner.clone().prop_map(|f| Filter::Not(Box::new(f))).boxed(),
        ];
        if !value_filter {
            options.push(
                (arb_name(), arb_filter_in(true))
                    .prop_map(|(n, f)| Filter::ValuePath(AttrPath::new(n), Box::new(f)))
                    .boxed(),
            );
        }
        proptest::strategy::Union::new(options)
    })
    .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_filters_round_trip_through_display(f in arb_filter_in(false)) {
        let printed = f.to_string();
        let parsed = FilterOptions::default().max_len(usize::MAX).parse(&printed);
        prop_assert_eq!(parsed.as_ref().ok(), Some(&f), "{} -> {:?}", printed, parsed);
    }

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        let _ = Filter::parse(&s);
        let _ = Path::parse(&s);
        let _ = AttrPath::parse(&s);
    }

    #[test]
    fn filter_like_strings_never_panic(s in r#"[a-z\[\]()".:\\ 0-9eEu+-]{0,64}"#) {
        if let Ok(f) = Filter::parse(&s) {
            let registry = Registry::core();
            let users = registry.resource_type("User").expect("User");
            let _ = f.check(&users);
            let _ = f.matches(&users, &json("vectors/rfc7643/full-user.json"));
            prop_assert_eq!(Filter::parse(&f.to_string()).ok(), Some(f));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// The bound evaluator (used to filter lists and select PATCH targets) answers
    /// exactly as the straightforward one, on schema-aware filters and hostile users.
    #[test]
    fn the_bound_evaluator_agrees_with_matches(
        f in common::arb::filter(),
        users in proptest::collection::vec(common::arb::user(), 1..6),
    ) {
        let registry = Registry::core();
        let schema = registry.resource_type("User").expect("User");
        let bound = f.bind(&schema);
        for user in &users {
            prop_assert_eq!(bound.matches(user), f.matches(&schema, user), "{} on {}", f, user);
        }
    }
}
