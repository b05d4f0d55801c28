//! scimkit-server over real HTTP: it is started as a child process on an ephemeral
//! loopback port with a SQLite file in a temporary folder, and driven the way Okta
//! and Entra ID drive it.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Server, fixture, header, temp_db};

#[test]
fn okta_and_entra_flows_over_http_and_data_survives_a_restart() {
    let (dir, db) = temp_db("flows");
    let server = Server::start(&db, &[]);

    // Connectivity checks.
    let (status, _, body) = server.request(
        "GET",
        "/Users?filter=userName+eq+%22non-existent+user%22",
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(body["totalResults"], 0);

    // Okta: create, look up ignoring case, PUT, deactivate.
    let (status, headers, user) = server.request(
        "POST",
        "/Users",
        Some(&fixture("requests/okta-create-user")["body"]),
    );
    assert_eq!(status, 201, "{user}");
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/scim+json")
    );
    let id = user["id"].as_str().expect("id").to_owned();
    let location = header(&headers, "location").expect("Location").to_owned();
    assert!(
        location.ends_with(&format!("/scim/v2/Users/{id}")),
        "{location}"
    );
    assert_eq!(user["meta"]["location"], json!(location));
    let (_, _, found) = server.request(
        "GET",
        "/Users?filter=userName%20eq%20%22TEST.USER%40okta.local%22&startIndex=1&count=100",
        None,
    );
    assert_eq!(found["totalResults"], 1);
    assert_eq!(found["Resources"][0]["id"], json!(id));
    let mut put = fixture("requests/okta-replace-user")["body"].clone();
    put["id"] = json!(id);
    let (status, _, replaced) = server.request("PUT", &format!("/Users/{id}"), Some(&put));
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["name"]["middleName"], "Excited");
    let (status, _, deactivated) = server.request(
        "PATCH",
        &format!("/Users/{id}"),
        Some(&fixture("patch/okta-deactivate")["request"]),
    );
    assert_eq!(status, 200);
    assert_eq!(deactivated["active"], false);

    // Entra: create a user and a group, membership changes, group rename.
    let (status, _, entra_user) = server.request(
        "POST",
        "/Users",
        Some(&fixture("requests/entra-create-user")["body"]),
    );
    assert_eq!(status, 201, "{entra_user}");
    let entra_id = entra_user["id"].as_str().expect("id").to_owned();
    let (status, _, group) = server.request(
        "POST",
        "/Groups",
        Some(&fixture("requests/entra-create-group")["body"]),
    );
    assert_eq!(status, 201, "{group}");
    let gid = group["id"].as_str().expect("id").to_owned();
    let mut add = fixture("patch/entra-add-member")["request"].clone();
    add["Operations"][0]["value"][0]["value"] = json!(entra_id);
    let (status, headers, _) = server.request("PATCH", &format!("/Groups/{gid}"), Some(&add));
    assert_eq!(
        status, 204,
        "a membership change answers 204 on this server"
    );
    assert_eq!(header(&headers, "etag"), Some("W/\"2\""));
    let (status, _, g) = server.request("GET", &format!("/Groups/{gid}"), None);
    assert_eq!(status, 200);
    assert_eq!(g["members"], json!([{"value": entra_id}]));
    let (status, _, g) = server.request(
        "GET",
        &format!("/Groups/{gid}?excludedAttributes=members"),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(g["displayName"], "displayName");
    assert!(g.get("members").is_none());
    let (_, _, u) = server.request("GET", &format!("/Users/{entra_id}"), None);
    assert_eq!(u["groups"][0]["value"], json!(gid));
    assert_eq!(u["groups"][0]["display"], "displayName");
    let (_, _, by_member) = server.request(
        "GET",
        &format!("/Groups?filter=members%5Bvalue+eq+%22{entra_id}%22%5D"),
        None,
    );
    assert_eq!(by_member["totalResults"], 1);
    let update = fixture("patch/entra-update-user")["request"].clone();
    let (status, _, patched) =
        server.request("PATCH", &format!("/Users/{entra_id}"), Some(&update));
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["emails"][0]["value"], "updatedEmail@microsoft.com");

    // Restart on the same file: everything is still there.
    server.stop();
    let server = Server::start(&db, &["--base-path", "/api/scim/v2"]);
    assert_eq!(server.base, "/api/scim/v2");
    let (status, _, again) = server.request("GET", &format!("/Users/{id}"), None);
    assert_eq!(status, 200);
    assert_eq!(again["active"], false);
    assert_eq!(again["name"]["middleName"], "Excited");
    let (status, _, g) = server.request("GET", &format!("/Groups/{gid}"), None);
    assert_eq!(status, 200);
    assert_eq!(g["members"], json!([{"value": entra_id}]));
    let (_, _, users) = server.request("GET", "/Users", None);
    assert_eq!(users["totalResults"], 2);
    // Uniqueness holds across the restart, ignoring case.
    let (status, _, dup) = server.request("POST", "/Users", Some(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "TEST.USER@okta.local"})));
    assert_eq!(status, 409, "{dup}");
    assert_eq!(dup["scimType"], "uniqueness");
    // Delete the user: it leaves the group.
    let (status, _, _) = server.request("DELETE", &format!("/Users/{entra_id}"), None);
    assert_eq!(status, 204);
    let (status, _, g) = server.request("GET", &format!("/Groups/{gid}"), None);
    assert_eq!(status, 200);
    assert_eq!(g["id"], json!(gid));
    assert!(g.get("members").is_none(), "{g}");
    server.stop();
    drop(dir);
}

#[test]
fn authentication_and_media_types() {
    let (dir, db) = temp_db("auth");
    let server = Server::start(&db, &[]);
    let users = format!("{}/Users", server.base);
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Basic dGVzdDp0ZXN0"),
        Some("Bearer"),
    ] {
        let headers: Vec<(&str, &str)> =
            auth.map(|a| vec![("Authorization", a)]).unwrap_or_default();
        let (status, h, body) = server.raw("GET", &users, None, &headers);
        assert_eq!(status, 401, "{auth:?}");
        assert_eq!(
            header(&h, "www-authenticate").map(|v| v.starts_with("Bearer")),
            Some(true)
        );
        assert_eq!(
            body["schemas"],
            json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
        );
        assert_eq!(body["status"], "401");
    }
    let bearer = format!("Bearer {}", server.token);
    let lower = format!("bearer {}", server.token);
    let (status, _, _) = server.raw("GET", &users, None, &[("Authorization", &lower)]);
    assert_eq!(status, 200, "the scheme is case-insensitive");
    let body =
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "media"})
            .to_string();
    let (status, _, err) = server.raw(
        "POST",
        &users,
        Some(body.clone()),
        &[("Authorization", &bearer), ("Content-Type", "text/plain")],
    );
    assert_eq!(status, 415, "{err}");
    let (status, _, _) = server.raw(
        "POST",
        &users,
        Some(body),
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json; charset=utf-8"),
        ],
    );
    assert_eq!(status, 201);
    let (status, _, err) = server.raw(
        "POST",
        &users,
        Some("{broken".to_owned()),
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/scim+json"),
        ],
    );
    assert_eq!(status, 400);
    assert_eq!(err["scimType"], "invalidSyntax");
    let (status, _, err) = server.raw("GET", "/elsewhere", None, &[("Authorization", &bearer)]);
    assert_eq!(status, 404);
    assert_eq!(err["status"], "404");
    // A body declared larger than the limit is refused before it is read.
    let (status, _, err) = server.declared_length("POST", &users, 3 * 1024 * 1024, &bearer);
    assert_eq!(status, 413, "{err}");
    assert_eq!(err["status"], "413");
    assert_eq!(status, 413);
    let (status, _, spc) = server.request("GET", "/ServiceProviderConfig", None);
    assert_eq!(status, 200);
    assert_eq!(spc["authenticationSchemes"][0]["type"], "oauthbearertoken");
    server.stop();
    drop(dir);
}

#[test]
fn concurrent_member_adds_over_http_lose_nothing() {
    let (dir, db) = temp_db("concurrency");
    let server = Server::start(&db, &[]);
    let (_, _, group) = server.request("POST", "/Groups", Some(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Crowd"})));
    let gid = group["id"].as_str().expect("id").to_owned();
    std::thread::scope(|scope| {
        for client in 0..8 {
            let server = &server;
            let gid = &gid;
            scope.spawn(move || {
                for i in 0..50 {
                    let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("c{client}-m{i}")});
                    let (status, _, user) = server.request("POST", "/Users", Some(&user));
                    assert_eq!(status, 201, "{user}");
                    let uid = user["id"].as_str().expect("id");
                    let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]});
                    let (status, _, body) = server.request("PATCH", &format!("/Groups/{gid}?excludedAttributes=members"), Some(&op));
                    assert_eq!(status, 204, "{body}");
                }
            });
        }
    });
    let (_, _, g) = server.request("GET", &format!("/Groups/{gid}"), None);
    let members = g["members"].as_array().expect("members");
    assert_eq!(members.len(), 400);
    assert_eq!(g["meta"]["version"], "W/\"401\"");
    server.stop();
    drop(dir);
}

#[test]
fn first_key_base_url_and_memory_database() {
    let server = Server::spawn(&[
        "--db",
        ":memory:",
        "--base-path",
        "/api/scim/v2/",
        "--base-url",
        "https://scim.example.com/api/scim/v2",
    ]);
    let token = server
        .first_key
        .clone()
        .expect("the first start prints a key");
    assert!(token.starts_with("scim_") && token.len() == 69, "{token}");
    assert_eq!(server.base, "/api/scim/v2");
    let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a"});
    let (status, headers, user) = server.request_as(&token, "POST", "/Users", Some(&body));
    assert_eq!(status, 201, "{user}");
    let id = user["id"].as_str().expect("id");
    let location = format!("https://scim.example.com/api/scim/v2/Users/{id}");
    assert_eq!(header(&headers, "location"), Some(location.as_str()));
    assert_eq!(user["meta"]["location"], json!(location));
    assert_eq!(server.request_as("scim_0000", "GET", "/Users", None).0, 401);
    // Only the base path is served; a path that merely starts with it is not.
    let bearer = format!("Bearer {token}");
    let (status, _, _) = server.raw(
        "GET",
        "/api/scim/v2x/Users",
        None,
        &[("Authorization", &bearer)],
    );
    assert_eq!(status, 404);
    server.stop();
}

#[test]
fn sqlite_store_semantics_over_http() {
    let (dir, db) = temp_db("semantics");
    let server = Server::start(&db, &[]);
    let user = |i: usize| json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("user{i:02}@example.com"), "displayName": format!("User {i:02}"), "externalId": format!("Ext-{i:02}")});
    let mut ids = Vec::new();
    for i in 0..25 {
        let (status, _, body) = server.request("POST", "/Users", Some(&user(i)));
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    let count = |filter: &str| {
        let (status, _, body) = server.request("GET", &format!("/Users?filter={filter}"), None);
        assert_eq!(status, 200, "{filter}: {body}");
        body["totalResults"].as_u64().expect("totalResults")
    };
    // Pushed down, with the schema's caseExact.
    assert_eq!(count("userName+eq+%22USER07@EXAMPLE.COM%22"), 1);
    assert_eq!(count("displayName+eq+%22user+07%22"), 1);
    assert_eq!(count("externalId+eq+%22Ext-07%22"), 1);
    assert_eq!(
        count("externalId+eq+%22ext-07%22"),
        0,
        "externalId is caseExact"
    );
    assert_eq!(count(&format!("id+eq+%22{}%22", ids[3])), 1);
    assert_eq!(
        count("userName+eq+%22user01@example.com%22+or+userName+eq+%22user02@example.com%22"),
        2
    );
    assert_eq!(
        count("userName+eq+%22user01@example.com%22+and+externalId+eq+%22Ext-02%22"),
        0
    );
    // Evaluated in memory.
    assert_eq!(count("userName+sw+%22USER1%22"), 10);
    assert_eq!(count("not+(externalId+pr)"), 0);
    // Paging: stable, complete, with totals.
    let mut seen = Vec::new();
    for start in [1, 11, 21] {
        let (_, _, page) =
            server.request("GET", &format!("/Users?startIndex={start}&count=10"), None);
        assert_eq!(page["totalResults"], 25);
        assert_eq!(page["startIndex"], start);
        for r in page["Resources"].as_array().expect("Resources") {
            seen.push(r["id"].as_str().expect("id").to_owned());
        }
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "pages in id order, each user once");
    let (_, _, desc) = server.request(
        "GET",
        "/Users?sortBy=userName&sortOrder=descending&count=1",
        None,
    );
    assert_eq!(desc["Resources"][0]["userName"], "user24@example.com");
    // If-Match, and a PATCH that fails part-way changes nothing.
    let id = &ids[0];
    let bearer = format!("Bearer {}", server.token);
    let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "replace", "path": "displayName", "value": "Changed"},
        {"op": "replace", "path": "active", "value": "maybe"}
    ]});
    let (status, _, err) = server.request("PATCH", &format!("/Users/{id}"), Some(&op));
    assert_eq!(status, 400);
    assert_eq!(err["scimType"], "invalidValue");
    let (_, headers, before) = server.request("GET", &format!("/Users/{id}"), None);
    assert_eq!(before["displayName"], "User 00");
    assert_eq!(header(&headers, "etag"), Some("W/\"1\""));
    let good = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "displayName", "value": "Changed"}]});
    let stale = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/scim+json"),
        ("If-Match", "W/\"7\""),
    ];
    let target = format!("{}/Users/{id}", server.base);
    let (status, _, _) = server.raw("PATCH", &target, Some(good.to_string()), &stale);
    assert_eq!(status, 412);
    let fresh = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/scim+json"),
        ("If-Match", "W/\"1\""),
    ];
    let (status, _, after) = server.raw("PATCH", &target, Some(good.to_string()), &fresh);
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["meta"]["version"], "W/\"2\"");
    // 405 with a SCIM body and Allow.
    let (status, headers, err) = server.request("DELETE", "/Users", None);
    assert_eq!(status, 405);
    assert_eq!(err["status"], "405");
    assert!(header(&headers, "allow").is_some());
    // One log line per request: route template (no ids, no query), method, status.
    std::thread::sleep(Duration::from_millis(100));
    let log = server.log_lines();
    assert!(
        log.iter()
            .any(|l| l.contains("method=DELETE route=/Users") && l.contains("status=405")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("method=PATCH route=/Users/{id}") && l.contains("status=412")),
        "{log:?}"
    );
    assert!(
        !log.iter().any(|l| l.contains("example.com")),
        "filter values stay out of the logs: {log:?}"
    );
    server.stop();
    drop(dir);
}
