//! Route templates for logs and metrics: the endpoint a path names, with ids
//! replaced by `{id}`, so that no user data becomes a label.

use scimkit::Registry;

/// The discovery and protocol endpoints of RFC 7644 §3 that are not resource types.
const FIXED: &[&str] = &[
    "ServiceProviderConfig",
    "ResourceTypes",
    "Schemas",
    "Bulk",
    "Me",
    ".search",
];

/// The template of `path` (relative to the SCIM base): `/Users/2819c223` gives
/// `/Users/{id}`, `/Groups/.search` gives `/Groups/.search`; a path no endpoint
/// serves gives `other`.
pub(crate) fn template(registry: &Registry, path: &str) -> String {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let endpoint = |segment: &str| -> Option<String> {
        if let Some(fixed) = FIXED.iter().find(|f| f.eq_ignore_ascii_case(segment)) {
            return Some((*fixed).to_owned());
        }
        registry.resource_types().find_map(|rt| {
            let endpoint = rt.definition().endpoint.trim_matches('/');
            endpoint
                .eq_ignore_ascii_case(segment)
                .then(|| endpoint.to_owned())
        })
    };
    match segments.as_slice() {
        [] => "/".to_owned(),
        [first] => match endpoint(first) {
            Some(e) => format!("/{e}"),
            None => "other".to_owned(),
        },
        [first, second] => match endpoint(first) {
            Some(e) if second.eq_ignore_ascii_case(".search") => format!("/{e}/.search"),
            Some(e) if e != ".search" && e != "Bulk" => format!("/{e}/{{id}}"),
            _ => "other".to_owned(),
        },
        _ => "other".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_hide_ids_and_bound_the_labels() {
        let r = Registry::core();
        for (path, want) in [
            ("/Users", "/Users"),
            ("/users/2819c223-7f76", "/Users/{id}"),
            ("/Groups/.search", "/Groups/.search"),
            ("/.search", "/.search"),
            (
                "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
                "/Schemas/{id}",
            ),
            ("/ServiceProviderConfig", "/ServiceProviderConfig"),
            ("/", "/"),
            ("/bjensen@example.com", "other"),
            ("/Users/a/b", "other"),
            ("/Bulk/x", "other"),
        ] {
            assert_eq!(template(&r, path), want, "{path}");
        }
    }
}
