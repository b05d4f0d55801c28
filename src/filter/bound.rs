//! A filter bound to a schema: every attribute path resolved once and every literal
//! read and case-folded once, so that evaluating it over many resources does no
//! schema look-ups and no allocation on the common paths.
//!
//! The result is always the one [`Filter::matches`] gives (a property test holds
//! the two together); this is only the fast way to get it.

use serde_json::{Map, Value};

use super::ast::{CompValue, CompareOp, Filter};
use super::eval::{
    as_bool, as_f64, comp_bool, comp_f64, compare_exact, is_present, ordering_matches,
};
use crate::path::AttrPath;
use crate::schema::normalize::parse_datetime;
use crate::schema::registry::get_ci;
use crate::schema::{Attribute, AttributeType, ResourceSchema, Returned};

/// A [`Filter`] bound to the schema it is evaluated by ([`Filter::bind`]).
///
/// ```
/// use scimkit::{Registry, filter::Filter};
/// use serde_json::json;
///
/// let registry = Registry::core();
/// let users = registry.resource_type("User").ok_or("no User type")?;
/// let filter: Filter = r#"userName eq "BJENSEN" and emails[type eq "work"]"#.parse()?;
/// let bound = filter.bind(&users);
/// let people = [
///     json!({"userName": "bjensen", "emails": [{"type": "work", "value": "b@x"}]}),
///     json!({"userName": "jsmith"}),
/// ];
/// let found: Vec<bool> = people.iter().map(|p| bound.matches(p)).collect();
/// assert_eq!(found, [true, false]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct BoundFilter<'r> {
    root: Node<'r>,
}

impl Filter {
    /// Binds the filter to a resource type's schema for evaluating it over many
    /// resources; [`BoundFilter::matches`] answers exactly as [`Filter::matches`].
    pub fn bind<'r>(&self, schema: &ResourceSchema<'r>) -> BoundFilter<'r> {
        BoundFilter {
            root: bind(self, Scope::Resource(*schema)),
        }
    }

    /// Binds a value filter (its names are sub-attributes of `attr`), for selecting
    /// values of a multi-valued complex attribute.
    pub(crate) fn bind_element<'r>(&self, attr: &'r Attribute) -> BoundFilter<'r> {
        BoundFilter {
            root: bind(self, Scope::Element(attr)),
        }
    }
}

/// A value filter that is one case-folded string equality on a sub-attribute
/// (`members[value eq "2819c223"]`): it can be answered through a hash index.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyTest<'b> {
    /// The sub-attribute compared.
    pub(crate) name: &'b str,
    /// The literal as compared: lower-cased unless `case_exact`.
    pub(crate) key: &'b str,
    pub(crate) case_exact: bool,
}

impl KeyTest<'_> {
    /// The keys an element's sub-attribute values compare by; the element matches
    /// the test exactly when one of them equals [`KeyTest::key`].
    pub(crate) fn element_keys<'v>(
        &self,
        element: &'v Map<String, Value>,
    ) -> impl Iterator<Item = std::borrow::Cow<'v, str>> + 'v {
        let case_exact = self.case_exact;
        let values: &'v [Value] = match get_ci(element, self.name) {
            Some(Value::Array(items)) => items,
            Some(v) => std::slice::from_ref(v),
            None => &[],
        };
        values.iter().filter_map(Value::as_str).map(move |s| {
            if case_exact {
                std::borrow::Cow::Borrowed(s)
            } else {
                std::borrow::Cow::Owned(s.to_lowercase())
            }
        })
    }
}

impl<'r> BoundFilter<'r> {
    /// The filter as a [`KeyTest`], if it is one string `eq` on a sub-attribute.
    pub(crate) fn key_test(&self) -> Option<KeyTest<'_>> {
        match &self.root {
            Node::Compare {
                get:
                    Getter {
                        extension: None,
                        name,
                        leaf: None,
                    },
                negate: false,
                test:
                    Test::Text {
                        op: CompareOp::Eq,
                        literal,
                        case_exact,
                        ..
                    },
            } => Some(KeyTest {
                name,
                key: literal,
                case_exact: *case_exact,
            }),
            _ => None,
        }
    }
}

impl BoundFilter<'_> {
    /// Whether the resource matches, as [`Filter::matches`] would answer.
    pub fn matches(&self, resource: &Value) -> bool {
        resource.as_object().is_some_and(|o| self.root.eval(o))
    }

    /// Whether one value of the complex attribute the filter was bound to matches.
    pub(crate) fn matches_element(&self, element: &Map<String, Value>) -> bool {
        self.root.eval(element)
    }
}

#[derive(Clone, Copy)]
enum Scope<'r> {
    Resource(ResourceSchema<'r>),
    Element(&'r Attribute),
}

/// Where a path's values are: an optional extension object, the attribute, and
/// the sub-attribute whose values are compared (named, or `value` implicitly).
#[derive(Debug, Clone)]
struct Getter<'r> {
    extension: Option<&'r str>,
    name: &'r str,
    leaf: Option<&'r str>,
}

impl<'r> Getter<'r> {
    /// The attribute's raw value.
    fn raw<'v>(&self, obj: &'v Map<String, Value>) -> Option<&'v Value> {
        let container = match self.extension {
            Some(urn) => get_ci(obj, urn)?.as_object()?,
            None => obj,
        };
        get_ci(container, self.name)
    }

    /// Whether `f` holds for some leaf value of the path.
    fn any(&self, raw: &Value, f: &mut impl FnMut(&Value) -> bool) -> bool {
        let mut visit = |element: &Value| match self.leaf {
            Some(name) => match element.as_object().and_then(|o| get_ci(o, name)) {
                Some(Value::Array(items)) => items.iter().any(&mut *f),
                Some(v) => f(v),
                None => false,
            },
            None => f(element),
        };
        match raw {
            Value::Array(items) => items.iter().any(visit),
            v => visit(v),
        }
    }
}

/// The comparison one value gets, its literal read once.
#[derive(Debug, Clone)]
enum Test {
    /// Nothing compares true (a literal that cannot be the attribute's type).
    Never,
    Bool(bool),
    Number(CompareOp, f64),
    Time(CompareOp, chrono::DateTime<chrono::FixedOffset>),
    /// A string comparison; `literal` is lower-cased unless `case_exact`.
    Text {
        op: CompareOp,
        literal: String,
        case_exact: bool,
        ascii: bool,
    },
}

impl Test {
    fn new(def: &Attribute, op: CompareOp, expected: &CompValue) -> Test {
        match def.attr_type() {
            AttributeType::Boolean => match comp_bool(expected) {
                Some(b) if op == CompareOp::Eq => Test::Bool(b),
                _ => Test::Never,
            },
            AttributeType::Integer | AttributeType::Decimal => match comp_f64(expected) {
                Some(e) => Test::Number(op, e),
                None => Test::Never,
            },
            AttributeType::DateTime if !op.is_substring() => {
                match expected.as_str().and_then(parse_datetime) {
                    Some(e) => Test::Time(op, e),
                    None => Test::Never,
                }
            }
            AttributeType::Complex => Test::Never,
            _ => {
                let literal = match expected {
                    CompValue::String(s) => s.clone(),
                    CompValue::Number(n) => n.to_string(),
                    CompValue::Bool(b) => b.to_string(),
                    CompValue::Null => return Test::Never,
                };
                let case_exact = def.compares_case_exact();
                let literal = if case_exact {
                    literal
                } else {
                    literal.to_lowercase()
                };
                Test::Text {
                    op,
                    ascii: literal.is_ascii(),
                    literal,
                    case_exact,
                }
            }
        }
    }

    fn matches(&self, actual: &Value) -> bool {
        match self {
            Test::Never => false,
            Test::Bool(e) => as_bool(actual) == Some(*e),
            Test::Number(op, e) => as_f64(actual)
                .and_then(|a| a.partial_cmp(e))
                .is_some_and(|ord| ordering_matches(*op, ord)),
            Test::Time(op, e) => actual
                .as_str()
                .and_then(parse_datetime)
                .is_some_and(|a| ordering_matches(*op, a.cmp(e))),
            Test::Text {
                op,
                literal,
                case_exact,
                ascii,
            } => {
                let Some(a) = actual.as_str() else {
                    return false;
                };
                if *case_exact {
                    return compare_exact(a, literal, *op);
                }
                if *ascii && a.is_ascii() {
                    let (a, e) = (a.as_bytes(), literal.as_bytes());
                    return match op {
                        CompareOp::Eq => a.eq_ignore_ascii_case(e),
                        CompareOp::Ne => !a.eq_ignore_ascii_case(e),
                        CompareOp::Sw => a.len() >= e.len() && a[..e.len()].eq_ignore_ascii_case(e),
                        CompareOp::Ew => {
                            a.len() >= e.len() && a[a.len() - e.len()..].eq_ignore_ascii_case(e)
                        }
                        CompareOp::Co => {
                            e.is_empty() || a.windows(e.len()).any(|w| w.eq_ignore_ascii_case(e))
                        }
                        _ => {
                            // Ordering: the lower-cased bytes, compared without a copy.
                            let folded = a.iter().map(u8::to_ascii_lowercase);
                            ordering_matches(*op, folded.cmp(e.iter().copied()))
                        }
                    };
                }
                compare_exact(&a.to_lowercase(), literal, *op)
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Node<'r> {
    /// Matches nothing: an attribute the schema does not define (or never returns).
    False,
    /// `op` against a literal; `Ne` is "no value equals", as in [`Filter::matches`].
    Compare {
        get: Getter<'r>,
        negate: bool,
        test: Test,
    },
    /// `eq null` (`negate`: `ne null`): whether no value is present.
    Null {
        get: Getter<'r>,
        negate: bool,
    },
    /// `pr`; `whole` for a complex attribute named without a sub-attribute.
    Present {
        get: Getter<'r>,
        whole: bool,
    },
    And(Vec<Node<'r>>),
    Or(Vec<Node<'r>>),
    Not(Box<Node<'r>>),
    /// `attr[inner]`.
    Within {
        get: Getter<'r>,
        inner: Box<Node<'r>>,
    },
}

impl Node<'_> {
    fn eval(&self, obj: &Map<String, Value>) -> bool {
        match self {
            Node::False => false,
            Node::And(parts) => parts.iter().all(|p| p.eval(obj)),
            Node::Or(parts) => parts.iter().any(|p| p.eval(obj)),
            Node::Not(inner) => !inner.eval(obj),
            Node::Compare { get, negate, test } => {
                let found = get
                    .raw(obj)
                    .is_some_and(|raw| get.any(raw, &mut |v| test.matches(v)));
                found != *negate
            }
            Node::Null { get, negate } => {
                let present = get
                    .raw(obj)
                    .is_some_and(|raw| get.any(raw, &mut is_present));
                present == *negate
            }
            Node::Present { get, whole } => match get.raw(obj) {
                None => false,
                Some(raw) if *whole => match raw {
                    Value::Array(items) => items.iter().any(is_present),
                    v => is_present(v),
                },
                Some(raw) => get.any(raw, &mut is_present),
            },
            Node::Within { get, inner } => {
                let matches = |v: &Value| v.as_object().is_some_and(|o| inner.eval(o));
                match get.raw(obj) {
                    Some(Value::Array(items)) => items.iter().any(matches),
                    Some(v) => matches(v),
                    None => false,
                }
            }
        }
    }
}

/// The attribute, the sub-attribute it names and the getter for a path; `None`
/// when the schema does not define it or never returns it.
fn resolve<'r>(
    scope: Scope<'r>,
    path: &AttrPath,
) -> Option<(&'r Attribute, Option<&'r Attribute>, Getter<'r>)> {
    let (attr, sub, extension) = match scope {
        Scope::Resource(rs) => {
            let found = rs.attribute(path.schema(), path.name())?;
            let sub = match path.sub_attr() {
                Some(name) => Some(found.attribute.sub_attribute(name)?),
                None => None,
            };
            (
                found.attribute,
                sub,
                found.extension.then_some(found.schema),
            )
        }
        Scope::Element(parent) => {
            if path.sub_attr().is_some() {
                return None;
            }
            (parent.sub_attribute(path.name())?, None, None)
        }
    };
    if attr.returned() == Returned::Never || sub.is_some_and(|s| s.returned() == Returned::Never) {
        return None;
    }
    let leaf = match sub {
        Some(sub) => Some(sub.name()),
        None if attr.is_complex() && attr.sub_attribute("value").is_some() => Some("value"),
        None => None,
    };
    let getter = Getter {
        extension,
        name: attr.name(),
        leaf,
    };
    Some((attr, sub, getter))
}

/// The operands of an `and` or `or`, bound and in the order that evaluates the
/// cheap ones first: evaluation has no effects, so the answer is the same in any
/// order, and `all`/`any` stop at the first operand that decides it.
fn cheapest_first<'r>(parts: &[Filter], scope: Scope<'r>) -> Vec<Node<'r>> {
    let mut nodes: Vec<Node<'r>> = parts.iter().map(|p| bind(p, scope)).collect();
    nodes.sort_by_key(Node::cost);
    nodes
}

impl Node<'_> {
    /// Roughly how many members one evaluation looks up: one for an attribute,
    /// more inside an extension or a complex value (whose values may be a list).
    fn cost(&self) -> u32 {
        let get_cost = |get: &Getter<'_>| {
            1 + u32::from(get.extension.is_some()) + 2 * u32::from(get.leaf.is_some())
        };
        match self {
            Node::False => 0,
            Node::Compare { get, .. } | Node::Null { get, .. } => get_cost(get),
            Node::Present { get, whole } => get_cost(get) + 2 * u32::from(*whole),
            Node::And(parts) | Node::Or(parts) => {
                parts.iter().map(Node::cost).fold(0, u32::saturating_add)
            }
            Node::Not(inner) => inner.cost(),
            Node::Within { get, inner } => {
                get_cost(get).saturating_add(inner.cost().saturating_mul(2)) + 2
            }
        }
    }
}

fn bind<'r>(filter: &Filter, scope: Scope<'r>) -> Node<'r> {
    match filter {
        Filter::And(parts) => Node::And(cheapest_first(parts, scope)),
        Filter::Or(parts) => Node::Or(cheapest_first(parts, scope)),
        Filter::Not(inner) => Node::Not(Box::new(bind(inner, scope))),
        Filter::Present(path) => match resolve(scope, path) {
            Some((attr, sub, get)) => Node::Present {
                whole: sub.is_none() && attr.is_complex(),
                get,
            },
            None => Node::False,
        },
        Filter::Compare(path, op, expected) => {
            let Some((attr, sub, get)) = resolve(scope, path) else {
                return Node::False;
            };
            let def = match sub {
                Some(sub) => sub,
                None if attr.is_complex() => attr.sub_attribute("value").unwrap_or(attr),
                None => attr,
            };
            match (op, expected) {
                (CompareOp::Eq, CompValue::Null) => Node::Null { get, negate: false },
                (CompareOp::Ne, CompValue::Null) => Node::Null { get, negate: true },
                (CompareOp::Ne, _) => Node::Compare {
                    get,
                    negate: true,
                    test: Test::new(def, CompareOp::Eq, expected),
                },
                (op, _) => Node::Compare {
                    get,
                    negate: false,
                    test: Test::new(def, *op, expected),
                },
            }
        }
        Filter::ValuePath(path, inner) => match resolve(scope, path) {
            Some((attr, None, get)) if attr.is_complex() => Node::Within {
                get: Getter { leaf: None, ..get },
                inner: Box::new(bind(inner, Scope::Element(attr))),
            },
            _ => Node::False,
        },
    }
}
