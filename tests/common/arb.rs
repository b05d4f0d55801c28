//! Generators of schema-aware filters and hostile users, for properties that compare
//! two ways of answering the same question (the bound and the straightforward filter
//! evaluator today; SQL translations against `Filter::matches` later).

use proptest::prelude::*;
use scimkit::filter::{CompValue, CompareOp, Filter};
use scimkit::path::AttrPath;
use serde_json::{Map, Value, json};

pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const CORE: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

/// Strings that trip up comparisons: case variants, LIKE wildcards, escapes, quotes,
/// letters whose lower case is not ASCII (`Ä`, the Kelvin sign), empty strings,
/// dateTimes at different offsets and things that look like numbers and booleans.
pub const STRINGS: &[&str] = &[
    "",
    "a",
    "A",
    "ann",
    "Ann",
    "ANN",
    "ann@example.com",
    "Ann@Example.COM",
    "bob@example.org",
    "x%y",
    "x_y",
    "xay",
    "x\\y",
    "it's",
    "say \"hi\"",
    "Äpfel",
    "äpfel",
    "\u{212A}elvin",
    "kelvin",
    "Straße",
    "work",
    "Work",
    "home",
    "true",
    "False",
    "42",
    "2011-05-13T04:42:34Z",
    "2011-05-13T06:42:34+02:00",
    "2011-05-13T04:42:35.5Z",
    "2020-01-01T00:00:00-08:00",
    "Employee",
    "employee",
];

/// Attribute paths of the User resource type that exist, in varied spelling, and a
/// few that do not (or that are never returned).
const PATHS: &[&str] = &[
    "userName",
    "USERNAME",
    "displayName",
    "title",
    "nickName",
    "userType",
    "externalId",
    "id",
    "active",
    "name.givenName",
    "name.familyName",
    "name",
    "emails",
    "emails.value",
    "emails.type",
    "emails.primary",
    "phoneNumbers.value",
    "meta.created",
    "meta.lastModified",
    "x509Certificates",
    "password",
    "urn:ietf:params:scim:schemas:core:2.0:User:userName",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
    "employeeNumber",
    "department",
    "costCenter",
    "undefinedAttribute",
];

const SUB_PATHS: &[&str] = &["value", "type", "primary", "display", "VALUE", "nope"];

fn path(text: &str) -> AttrPath {
    AttrPath::parse(text).expect("a valid path")
}

fn value() -> impl Strategy<Value = CompValue> {
    prop_oneof![
        6 => proptest::sample::select(STRINGS).prop_map(CompValue::from),
        1 => Just(CompValue::Null),
        1 => any::<bool>().prop_map(CompValue::Bool),
        1 => (-3i64..50).prop_map(CompValue::from),
        1 => (-3.0f64..50.0).prop_map(|f| CompValue::Number(
            serde_json::Number::from_f64((f * 4.0).round() / 4.0).expect("finite")
        )),
    ]
}

fn op() -> impl Strategy<Value = CompareOp> {
    proptest::sample::select(CompareOp::ALL.to_vec())
}

fn leaf(paths: &'static [&'static str]) -> BoxedStrategy<Filter> {
    let attr = proptest::sample::select(paths).prop_map(path);
    prop_oneof![
        4 => (attr.clone(), op(), value()).prop_map(|(a, o, v)| Filter::Compare(a, o, v)),
        1 => attr.prop_map(Filter::Present),
    ]
    .boxed()
}

fn tree(leaf: BoxedStrategy<Filter>) -> BoxedStrategy<Filter> {
    leaf.prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 2..4).prop_map(Filter::And),
            proptest::collection::vec(inner.clone(), 2..4).prop_map(Filter::Or),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
    })
    .boxed()
}

/// A filter over the User resource type: comparisons, presence, `and`, `or`,
/// `not` and value filters on `emails`, `phoneNumbers` and `x509Certificates`.
pub fn filter() -> BoxedStrategy<Filter> {
    let value_path = (
        proptest::sample::select(&["emails", "phoneNumbers", "x509Certificates", "name"][..]),
        tree(leaf(SUB_PATHS)),
    )
        .prop_map(|(attr, inner)| Filter::ValuePath(AttrPath::new(attr), Box::new(inner)));
    let leaf = prop_oneof![4 => leaf(PATHS), 1 => value_path].boxed();
    tree(leaf)
}

fn string() -> impl Strategy<Value = Value> {
    proptest::sample::select(STRINGS).prop_map(Value::from)
}

fn multi(sub: impl Strategy<Value = Value> + Clone + 'static) -> impl Strategy<Value = Value> {
    proptest::collection::vec(
        (
            string(),
            proptest::option::of(proptest::sample::select(&["work", "home", "Work"][..])),
            proptest::option::of(sub),
        )
            .prop_map(|(value, kind, primary)| {
                let mut m = Map::new();
                m.insert("value".to_owned(), value);
                if let Some(k) = kind {
                    m.insert("type".to_owned(), json!(k));
                }
                if let Some(p) = primary {
                    m.insert("primary".to_owned(), p);
                }
                Value::Object(m)
            }),
        0..4,
    )
    .prop_map(Value::Array)
}

/// A User with a random subset of attributes, each with hostile values: absent or
/// empty, in any case, several emails, dateTimes at several offsets, an enterprise
/// extension, a password, and an attribute no schema defines.
pub fn user() -> BoxedStrategy<Value> {
    let optional = |s: BoxedStrategy<Value>| proptest::option::of(s);
    (
        (
            string(),
            optional(string().boxed()),
            optional(string().boxed()),
            optional(string().boxed()),
            optional(
                prop_oneof![
                    any::<bool>().prop_map(Value::from),
                    Just(json!("True")),
                    Just(Value::Null)
                ]
                .boxed(),
            ),
            optional(
                multi(prop_oneof![
                    any::<bool>().prop_map(Value::from),
                    Just(json!("true"))
                ])
                .boxed(),
            ),
        ),
        (
            optional(multi(Just(json!(true))).boxed()),
            optional(
                (optional(string().boxed()), optional(string().boxed()))
                    .prop_map(|(g, f)| json!({"givenName": g, "familyName": f}))
                    .boxed(),
            ),
            optional(string().boxed()),
            optional(
                (optional(string().boxed()), optional(string().boxed()))
                    .prop_map(|(n, m)| json!({"employeeNumber": n, "manager": {"value": m}}))
                    .boxed(),
            ),
            optional(string().boxed()),
            optional(
                proptest::sample::select(&STRINGS[26..30])
                    .prop_map(Value::from)
                    .boxed(),
            ),
        ),
    )
        .prop_map(
            |(
                (user_name, display, title, external, active, emails),
                (phones, name, password, enterprise, extra, created),
            )| {
                let mut m = Map::new();
                m.insert("schemas".to_owned(), json!([CORE]));
                m.insert("userName".to_owned(), user_name);
                let mut put = |k: &str, v: Option<Value>| {
                    if let Some(v) = v {
                        m.insert(k.to_owned(), v);
                    }
                };
                put("displayName", display);
                put("title", title);
                put("externalId", external);
                put("active", active);
                put("emails", emails);
                put("phoneNumbers", phones);
                put("name", name);
                put("password", password);
                put(ENTERPRISE, enterprise);
                put("undefinedAttribute", extra);
                put(
                    "meta",
                    created.map(|c| json!({"created": c, "lastModified": c})),
                );
                Value::Object(m)
            },
        )
        .boxed()
}
