//! The attributes a typed resource does not model, kept so nothing is dropped.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Attributes and extension objects a typed struct has no field for.
///
/// Each typed resource flattens one of these into itself, so that an unknown core
/// attribute or a whole extension object (keyed by its schema URN) survives
/// deserialisation and is written back unchanged.
///
/// ```
/// use scimkit::User;
///
/// let json = serde_json::json!({
///     "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
///                 "urn:example:params:scim:schemas:extension:acme:2.0:User"],
///     "userName": "bjensen",
///     "urn:example:params:scim:schemas:extension:acme:2.0:User": {"badge": {"level": 3}}
/// });
/// let user: User = serde_json::from_value(json.clone())?;
/// let acme = user.extensions.get("urn:example:params:scim:schemas:extension:acme:2.0:User");
/// assert_eq!(acme.and_then(|a| a["badge"]["level"].as_u64()), Some(3));
/// assert_eq!(serde_json::to_value(&user)?, json);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Extensions(Map<String, Value>);

impl Extensions {
    /// An empty set.
    pub fn new() -> Self {
        Extensions(Map::new())
    }

    /// The value under `key`: an exact match first, then a case-insensitive one
    /// (attribute names and schema URNs are case-insensitive, RFC 7643 §2.1).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).or_else(|| {
            self.0
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        })
    }

    /// Mutable access to the value under `key`, matched as [`Extensions::get`] does.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        let found = self.find_key(key)?;
        self.0.get_mut(&found)
    }

    /// Sets `key` to `value`, returning the previous value under that exact key.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) -> Option<Value> {
        self.0.insert(key.into(), value)
    }

    /// Removes the value under `key` (matched as [`Extensions::get`] does) and returns it.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let found = self.find_key(key)?;
        self.0.remove(&found)
    }

    /// Whether a value is stored under `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The entries as a JSON object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    fn find_key(&self, key: &str) -> Option<String> {
        if self.0.contains_key(key) {
            return Some(key.to_owned());
        }
        self.0.keys().find(|k| k.eq_ignore_ascii_case(key)).cloned()
    }
}

impl From<Map<String, Value>> for Extensions {
    fn from(map: Map<String, Value>) -> Self {
        Extensions(map)
    }
}

impl From<Extensions> for Map<String, Value> {
    fn from(e: Extensions) -> Self {
        e.0
    }
}

impl FromIterator<(String, Value)> for Extensions {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Extensions(iter.into_iter().collect())
    }
}
