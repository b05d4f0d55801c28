//! A filter on the derived `groups` silently matched nothing.

use scimkit::service::Request;

#[test]
fn filtering_on_groups_says_how_to_ask_instead() {
    let svc = super::service();
    let (status, err) = super::call(
        &svc,
        Request::new("GET", "/Users?filter=groups.value+eq+%22g1%22"),
    );
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["scimType"], "invalidFilter");
    assert!(
        err["detail"]
            .as_str()
            .is_some_and(|d| d.contains("/Groups?filter=members.value")),
        "{err}"
    );
}
