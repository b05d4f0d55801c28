//! Service scenarios that every store must pass: provisioning lifecycles as Okta and
//! Entra ID perform them, paging, projection, conditional requests, uniqueness per
//! tenant, concurrency, discovery and error paths. `tests/service.rs` runs them on
//! `MemoryStore`; the SQL stores' tests run them on PostgreSQL and SQLite.
#![allow(dead_code)]

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use scimkit::events::EventLog;
use scimkit::service::{FixedClock, Request, Response, Service, ServiceConfig};
use scimkit::store::Store;
use serde_json::{Value, json};

use super::{json, text};

pub fn clock() -> Arc<FixedClock> {
    Arc::new(FixedClock::new(
        Utc.with_ymd_and_hms(2024, 5, 13, 4, 42, 34)
            .single()
            .expect("time"),
    ))
}

pub fn tenant() -> String {
    "acme".to_owned()
}

pub async fn call<S: Store<Context = String>>(
    svc: &Service<S>,
    req: Request,
) -> (u16, Value, Response) {
    let resp = svc.handle(&tenant(), req).await;
    let body = resp.json_body().unwrap_or(Value::Null);
    (resp.status, body, resp)
}

pub fn post(path: &str, body: &Value) -> Request {
    Request::new("POST", path).with_json(body)
}

pub fn fixture(name: &str) -> Value {
    json(&format!("fixtures/{name}.json"))
}

pub fn assert_error(status: u16, body: &Value, want_status: u16, scim_type: Option<&str>) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(
        body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"]),
        "{body}"
    );
    assert_eq!(body["status"], json!(want_status.to_string()), "{body}");
    assert_eq!(
        body.get("scimType").and_then(Value::as_str),
        scim_type,
        "{body}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
}

pub async fn okta_provisioning_lifecycle<S: Store<Context = String>>(svc: Service<S>) {
    // Test Connector Configuration: a lookup that matches nothing.
    let (status, body, resp) = call(
        &svc,
        Request::new(
            "GET",
            "/Users?filter=userName%20eq%20%22test.user%40okta.local%22&startIndex=1&count=100",
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(resp.header("Content-Type"), Some("application/scim+json"));
    assert_eq!(
        body,
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 0, "itemsPerPage": 0, "startIndex": 1, "Resources": []})
    );

    // Create.
    let create = fixture("requests/okta-create-user")["body"].clone();
    let (status, user, resp) = call(&svc, post("/Users", &create)).await;
    assert_eq!(status, 201, "{user}");
    let id = user["id"].as_str().expect("id").to_owned();
    let location = format!("https://example.com/scim/v2/Users/{id}");
    assert_eq!(resp.header("Location"), Some(location.as_str()));
    assert_eq!(resp.header("ETag"), Some("W/\"1\""));
    assert_eq!(
        user,
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": id,
            "userName": "test.user@okta.local",
            "name": {"givenName": "Test", "familyName": "User"},
            "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
            "displayName": "Test User",
            "locale": "en-US",
            "externalId": "00ujl29u0le5T6Aj10h7",
            "active": true,
            "meta": {
                "resourceType": "User",
                "created": "2024-05-13T04:42:34Z",
                "lastModified": "2024-05-13T04:42:34Z",
                "location": location,
                "version": "W/\"1\""
            }
        })
    );

    // Look up by userName, ignoring case, as Okta does.
    let (status, list, _) = call(
        &svc,
        Request::new(
            "GET",
            "/Users?filter=userName%20eq%20%22TEST.USER%40okta.local%22&startIndex=1&count=100",
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["totalResults"], 1);
    assert_eq!(list["Resources"][0], user);

    // Update by PUT after GET, with id and meta in the body (read-only, ignored).
    let mut put = fixture("requests/okta-replace-user")["body"].clone();
    put["id"] = json!(id);
    let (status, updated, resp) = call(
        &svc,
        Request::new("PUT", &format!("/Users/{id}")).with_json(&put),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(resp.header("ETag"), Some("W/\"2\""));
    assert_eq!(
        updated["name"],
        json!({"givenName": "Another", "middleName": "Excited", "familyName": "User"})
    );
    assert_eq!(updated["meta"]["created"], "2024-05-13T04:42:34Z");
    assert!(
        updated.get("displayName").is_none(),
        "PUT replaces: attributes left out are gone"
    );
    assert!(updated.get("password").is_none());

    // Deactivate.
    let deactivate = fixture("patch/okta-deactivate")["request"].clone();
    let (status, patched, _) = call(
        &svc,
        Request::new("PATCH", &format!("/Users/{id}")).with_json(&deactivate),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(patched["active"], false);
    assert_eq!(patched["meta"]["version"], "W/\"3\"");
    // Again: nothing changes, the version stays.
    let (_, again, _) = call(
        &svc,
        Request::new("PATCH", &format!("/Users/{id}")).with_json(&deactivate),
    )
    .await;
    assert_eq!(again["meta"]["version"], "W/\"3\"");

    // Push a group, rename it, change memberships.
    let (status, group, _) = call(
        &svc,
        post("/Groups", &fixture("requests/okta-create-group")["body"]),
    )
    .await;
    assert_eq!(status, 201);
    let gid = group["id"].as_str().expect("id").to_owned();
    assert!(group.get("members").is_none());
    let mut rename = fixture("patch/okta-group-rename")["request"].clone();
    rename["Operations"][0]["value"]["id"] = json!(gid);
    rename["Operations"][0]["value"]["displayName"] = json!("Renamed");
    let (status, renamed, _) = call(
        &svc,
        Request::new("PATCH", &format!("/Groups/{gid}")).with_json(&rename),
    )
    .await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["displayName"], "Renamed");

    let push = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "members", "value": [{"value": id, "display": "test.user@okta.local"}]}]
    });
    let (status, pushed, _) = call(
        &svc,
        Request::new("PATCH", &format!("/Groups/{gid}")).with_json(&push),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        pushed["members"],
        json!([{"value": id, "display": "test.user@okta.local"}])
    );

    // The user's groups are derived from memberships.
    let (_, fetched, _) = call(&svc, Request::new("GET", &format!("/Users/{id}"))).await;
    assert_eq!(
        fetched["groups"],
        json!([{"value": gid, "$ref": format!("https://example.com/scim/v2/Groups/{gid}"), "display": "Renamed", "type": "direct"}])
    );

    // Remove the member: the user's groups follow.
    let remove = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]
    });
    let (status, _, _) = call(
        &svc,
        Request::new("PATCH", &format!("/Groups/{gid}")).with_json(&remove),
    )
    .await;
    assert_eq!(status, 200);
    let (_, fetched, _) = call(&svc, Request::new("GET", &format!("/Users/{id}"))).await;
    assert!(fetched.get("groups").is_none(), "{fetched}");

    // Delete both.
    let (status, _, resp) = call(&svc, Request::new("DELETE", &format!("/Users/{id}"))).await;
    assert_eq!(status, 204);
    assert!(resp.body.is_empty());
    let (status, body, _) = call(&svc, Request::new("GET", &format!("/Users/{id}"))).await;
    assert_error(status, &body, 404, None);
    let (status, _, _) = call(&svc, Request::new("DELETE", &format!("/Groups/{gid}"))).await;
    assert_eq!(status, 204);
}

pub async fn entra_provisioning_lifecycle<S: Store<Context = String>>(svc: Service<S>) {
    // Test Connection: a filter that matches nothing, encoded with '+'.
    let (status, body, _) = call(
        &svc,
        Request::new("GET", "/Users?filter=userName+eq+%22non-existent+user%22"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["totalResults"], 0);
    assert_eq!(body["Resources"], json!([]));

    // Create with client meta, empty roles, the enterprise extension.
    let (status, user, _) = call(
        &svc,
        post("/Users", &fixture("requests/entra-create-user")["body"]),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    let id = user["id"].as_str().expect("id").to_owned();
    assert_eq!(user["meta"]["resourceType"], "User");
    assert_eq!(user["meta"]["created"], "2024-05-13T04:42:34Z");
    assert!(user.get("roles").is_none());
    assert_eq!(user["name"]["formatted"], "givenName familyName");

    // Look up by the raw query string Entra sends.
    let (status, list, _) = call(
        &svc,
        Request::new(
            "GET",
            "/Users?filter=userName eq \"Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1\"",
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["totalResults"], 1);
    assert_eq!(list["Resources"][0]["id"], json!(id));
    let (_, list, _) = call(
        &svc,
        Request::new(
            "GET",
            "/Users?filter=externalId+eq+%220a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef%22",
        ),
    )
    .await;
    assert_eq!(list["totalResults"], 1);

    // Manager as a bare string on another user.
    let (status, other, _) = call(
        &svc,
        post(
            "/Users",
            &fixture("requests/entra-create-user-manager-string")["body"],
        ),
    )
    .await;
    assert_eq!(status, 201, "{other}");
    assert_eq!(
        other["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        json!({"department": "Sales", "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}})
    );

    // Update by PATCH, as Entra sends it, then disable.
    let update = fixture("patch/entra-update-user")["request"].clone();
    let (status, patched, _) = call(
        &svc,
        Request::new("PATCH", &format!("/Users/{id}")).with_json(&update),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        patched["emails"],
        json!([{"primary": true, "type": "work", "value": "updatedEmail@microsoft.com"}])
    );
    assert_eq!(patched["name"]["familyName"], "updatedFamilyName");
    assert_eq!(
        patched["userName"],
        "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"
    );
    assert_eq!(patched["active"], false);
    let disable = fixture("patch/entra-disable-user-string-bool")["request"].clone();
    let (status, disabled, _) = call(
        &svc,
        Request::new("PATCH", &format!("/Users/{id}")).with_json(&disable),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(disabled["active"], false);

    // Groups: create with the extra schema URN, look up excluding members, add and remove members.
    let (status, group, _) = call(
        &svc,
        post("/Groups", &fixture("requests/entra-create-group")["body"]),
    )
    .await;
    assert_eq!(status, 201, "{group}");
    let gid = group["id"].as_str().expect("id").to_owned();
    assert_eq!(
        group["schemas"],
        json!([
            "urn:ietf:params:scim:schemas:core:2.0:Group",
            "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
        ])
    );
    let (status, found, _) = call(
        &svc,
        Request::new(
            "GET",
            "/Groups?excludedAttributes=members&filter=displayName eq \"displayName\"",
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(found["totalResults"], 1);

    let mut add = fixture("patch/entra-add-member")["request"].clone();
    add["Operations"][0]["value"][0]["value"] = json!(id);
    let (status, with_member, _) = call(
        &svc,
        Request::new("PATCH", &format!("/Groups/{gid}")).with_json(&add),
    )
    .await;
    assert_eq!(status, 200, "{with_member}");
    assert_eq!(with_member["members"], json!([{"value": id}]));
    let (_, g, _) = call(
        &svc,
        Request::new("GET", &format!("/Groups/{gid}?excludedAttributes=members")),
    )
    .await;
    assert!(g.get("members").is_none());
    assert_eq!(g["displayName"], "displayName");

    let mut remove = fixture("patch/entra-remove-member-default")["request"].clone();
    remove["Operations"][0]["value"][0]["value"] = json!(id);
    let (status, without, _) = call(
        &svc,
        Request::new("PATCH", &format!("/Groups/{gid}")).with_json(&remove),
    )
    .await;
    assert_eq!(status, 200);
    assert!(without.get("members").is_none(), "{without}");

    // Rename, add and remove in one request.
    let mixed = fixture("patch/entra-group-rename-add-remove")["request"].clone();
    let (status, renamed, _) = call(
        &svc,
        Request::new("PATCH", &format!("/Groups/{gid}")).with_json(&mixed),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        renamed["displayName"],
        "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"
    );
    assert!(renamed.get("members").is_none());

    // Delete the user, then the group.
    assert_eq!(
        call(&svc, Request::new("DELETE", &format!("/Users/{id}")))
            .await
            .0,
        204
    );
    assert_eq!(
        call(&svc, Request::new("DELETE", &format!("/Groups/{gid}")))
            .await
            .0,
        204
    );
    let (status, body, _) = call(&svc, Request::new("DELETE", &format!("/Groups/{gid}"))).await;
    assert_error(status, &body, 404, None);
}

pub async fn deleting_a_user_removes_it_from_groups<S: Store<Context = String>>(svc: Service<S>) {
    let (_, u, _) = call(
        &svc,
        post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a"}),
        ),
    )
    .await;
    let uid = u["id"].as_str().expect("id");
    let (_, other, _) = call(
        &svc,
        post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "b"}),
        ),
    )
    .await;
    let other = other["id"].as_str().expect("id");
    let (_, g, _) = call(&svc, post("/Groups", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "G", "members": [{"value": uid}, {"value": other}]}))).await;
    let gid = g["id"].as_str().expect("id");
    assert_eq!(
        call(&svc, Request::new("DELETE", &format!("/Users/{uid}")))
            .await
            .0,
        204
    );
    let (_, g, _) = call(&svc, Request::new("GET", &format!("/Groups/{gid}"))).await;
    assert_eq!(g["members"], json!([{"value": other}]));
}

/// A group nested in another (RFC 7643 §4.2: members may be groups) leaves it when
/// it is deleted, whatever the store: no parent lists a member that is gone.
pub async fn deleting_a_group_removes_it_from_its_parents<S: Store<Context = String>>(
    svc: Service<S>,
) {
    let (_, u, _) = call(
        &svc,
        post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "nested"}),
        ),
    )
    .await;
    let uid = u["id"].as_str().expect("id");
    let group = |name: &str, members: Value| {
        post(
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name, "members": members}),
        )
    };
    let (status, child, _) = call(&svc, group("Child", json!([{"value": uid}]))).await;
    assert_eq!(status, 201, "{child}");
    let cid = child["id"].as_str().expect("id");
    let (status, parent, _) = call(
        &svc,
        group(
            "Parent",
            json!([{"value": cid, "type": "Group"}, {"value": uid, "type": "User"}]),
        ),
    )
    .await;
    assert_eq!(status, 201, "{parent}");
    let pid = parent["id"].as_str().expect("id");
    let (_, other, _) = call(&svc, group("Other", json!([{"value": cid}]))).await;
    let oid = other["id"].as_str().expect("id");

    let (status, body, _) = call(&svc, Request::new("DELETE", &format!("/Groups/{cid}"))).await;
    assert_eq!(status, 204, "{body}");
    let (_, parent, _) = call(&svc, Request::new("GET", &format!("/Groups/{pid}"))).await;
    let values: Vec<&str> = parent["members"]
        .as_array()
        .map(|m| m.iter().filter_map(|v| v["value"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(values, [uid], "{parent}");
    // A group whose only member was the deleted one has no members left.
    let (_, other, _) = call(&svc, Request::new("GET", &format!("/Groups/{oid}"))).await;
    assert!(
        other["members"].as_array().is_none_or(|m| m.is_empty()),
        "{other}"
    );
    let (_, filtered, _) = call(
        &svc,
        Request::new(
            "GET",
            &format!("/Groups?filter=members.value+eq+%22{cid}%22"),
        ),
    )
    .await;
    assert_eq!(filtered["totalResults"], 0, "{filtered}");
}

pub async fn every_fixture_query_is_understood<S: Store<Context = String>>(svc: Service<S>) {
    let (_, u, _) = call(&svc, post("/Users", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "test.user@okta.local", "displayName": "BobIsAmazing"}))).await;
    let (_, g, _) = call(&svc, post("/Groups", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "displayName"}))).await;
    let gid = g["id"].as_str().expect("id").to_owned();
    for line in text("fixtures/queries.txt").lines() {
        let Some(rest) = line.strip_prefix("GET ") else {
            continue;
        };
        let rest = rest.replace("40734ae655284ad3abcc", &gid);
        let (status, body, _) = call(&svc, Request::new("GET", &rest)).await;
        assert_eq!(status, 200, "{line}: {body}");
        if rest.contains("BobIsAmazing")
            || rest.contains("test.user%40okta")
            || rest.contains("filter=displayName")
        {
            assert_eq!(body["totalResults"], 1, "{line}: {body}");
        }
        if rest.contains("startindex=0") {
            assert_eq!(body["startIndex"], 1, "{line}");
        }
    }
    let _ = u;
}

pub async fn paging_is_stable_and_counted<S: Store<Context = String>>(svc: Service<S>) {
    for i in 0..250 {
        let (status, _, _) = call(&svc, post("/Users", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("user{i:03}")}))).await;
        assert_eq!(status, 201);
    }
    let mut seen = Vec::new();
    for (start, expected_items) in [(1, 100), (101, 100), (201, 50)] {
        let (status, page, _) = call(
            &svc,
            Request::new("GET", &format!("/Users?startIndex={start}&count=100")),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(page["totalResults"], 250);
        assert_eq!(page["startIndex"], start);
        assert_eq!(page["itemsPerPage"], expected_items);
        let ids: Vec<String> = page["Resources"]
            .as_array()
            .expect("Resources")
            .iter()
            .map(|r| r["id"].as_str().expect("id").to_owned())
            .collect();
        assert_eq!(ids.len(), expected_items);
        seen.extend(ids);
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 250, "pages overlap or skip");
    // The same page twice is the same.
    let (_, a, _) = call(&svc, Request::new("GET", "/Users?startIndex=101&count=100")).await;
    let (_, b, _) = call(&svc, Request::new("GET", "/Users?startIndex=101&count=100")).await;
    assert_eq!(a, b);
    // count=0 gives only the total; count above the maximum is capped; past the end is empty.
    let (_, zero, _) = call(&svc, Request::new("GET", "/Users?count=0")).await;
    assert_eq!(zero["totalResults"], 250);
    assert_eq!(zero["Resources"], json!([]));
    let (_, capped, _) = call(&svc, Request::new("GET", "/Users?count=100000")).await;
    assert_eq!(capped["itemsPerPage"], 200);
    let (_, past, _) = call(&svc, Request::new("GET", "/Users?startIndex=1000")).await;
    assert_eq!(past["itemsPerPage"], 0);
    // Sorting, both ways, by a caseExact=false attribute.
    let (_, asc, _) = call(&svc, Request::new("GET", "/Users?sortBy=userName&count=2")).await;
    assert_eq!(asc["Resources"][0]["userName"], "user000");
    let (_, desc, _) = call(
        &svc,
        Request::new("GET", "/Users?sortBy=userName&sortOrder=descending&count=2"),
    )
    .await;
    assert_eq!(desc["Resources"][0]["userName"], "user249");
    // POST .search says the same as GET.
    let search = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName sw \"user24\"", "sortBy": "userName", "startIndex": 1, "count": 5, "attributes": ["userName"]});
    let (status, found, _) = call(&svc, post("/Users/.search", &search)).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["totalResults"], 10);
    assert_eq!(
        found["Resources"][0],
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": found["Resources"][0]["id"], "userName": "user240"})
    );
    let (status, root, _) = call(&svc, post("/.search", &search)).await;
    assert_eq!(status, 200, "{root}");
    assert_eq!(root["totalResults"], 10);
}

pub async fn projection_honours_returned<S: Store<Context = String>>(svc: Service<S>) {
    let (_, user, _) = call(
        &svc,
        post("/Users", &fixture("requests/okta-create-user")["body"]),
    )
    .await;
    let id = user["id"].as_str().expect("id");
    let (_, only, _) = call(
        &svc,
        Request::new(
            "GET",
            &format!("/Users/{id}?attributes=userName,name.givenName"),
        ),
    )
    .await;
    assert_eq!(
        only,
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": id, "userName": "test.user@okta.local", "name": {"givenName": "Test"}})
    );
    let (_, without, _) = call(
        &svc,
        Request::new(
            "GET",
            &format!("/Users/{id}?excludedAttributes=emails,name.familyName,id"),
        ),
    )
    .await;
    assert!(without.get("emails").is_none());
    assert_eq!(without["name"], json!({"givenName": "Test"}));
    assert_eq!(without["id"], json!(id), "id is returned always");
    assert!(
        without.get("password").is_none(),
        "password is returned never"
    );
    // PATCH honours attributes too.
    let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "nickName", "value": "T"}]});
    let (_, patched, _) = call(
        &svc,
        Request::new("PATCH", &format!("/Users/{id}?attributes=nickName")).with_json(&op),
    )
    .await;
    assert_eq!(
        patched,
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": id, "nickName": "T"})
    );
}

pub async fn etags_and_conditional_requests<S: Store<Context = String>>(svc: Service<S>) {
    let (_, user, _) = call(
        &svc,
        post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a"}),
        ),
    )
    .await;
    let id = user["id"].as_str().expect("id");
    let path = format!("/Users/{id}");
    let (status, _, resp) = call(
        &svc,
        Request::new("GET", &path).with_header("If-None-Match", "W/\"1\""),
    )
    .await;
    assert_eq!(status, 304);
    assert!(resp.body.is_empty());
    assert_eq!(resp.header("ETag"), Some("W/\"1\""));
    let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "nickName", "value": "x"}]});
    let (status, _, _) = call(
        &svc,
        Request::new("PATCH", &path)
            .with_json(&op)
            .with_header("If-Match", "W/\"1\""),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body, _) = call(
        &svc,
        Request::new("PATCH", &path)
            .with_json(&op)
            .with_header("If-Match", "W/\"1\""),
    )
    .await;
    assert_error(status, &body, 412, None);
    let put = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a"});
    let (status, body, _) = call(
        &svc,
        Request::new("PUT", &path)
            .with_json(&put)
            .with_header("If-Match", "W/\"1\""),
    )
    .await;
    assert_error(status, &body, 412, None);
    let (status, _, _) = call(
        &svc,
        Request::new("PUT", &path)
            .with_json(&put)
            .with_header("If-Match", "W/\"2\""),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body, _) = call(
        &svc,
        Request::new("DELETE", &path).with_header("If-Match", "W/\"2\""),
    )
    .await;
    assert_error(status, &body, 412, None);
    let (status, _, _) = call(
        &svc,
        Request::new("DELETE", &path).with_header("If-Match", "*"),
    )
    .await;
    assert_eq!(status, 204);
}

pub async fn put_rules<S: Store<Context = String>>(svc: Service<S>) {
    let create = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a", "password": "secret", "groups": [{"value": "x"}], "id": "client-chosen"});
    let (status, user, _) = call(&svc, post("/Users", &create)).await;
    assert_eq!(status, 201);
    let id = user["id"].as_str().expect("id");
    assert_ne!(id, "client-chosen");
    assert!(
        user.get("groups").is_none(),
        "groups is read-only and derived"
    );
    assert!(user.get("password").is_none());
    // Required attribute missing.
    let (status, body, _) = call(
        &svc,
        Request::new("PUT", &format!("/Users/{id}")).with_json(
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "displayName": "x"}),
        ),
    )
    .await;
    assert_error(status, &body, 400, Some("invalidValue"));
    // Immutable members.value on a group cannot change through PUT of a different value? It can: members are replaced wholesale.
    let (_, g, _) = call(&svc, post("/Groups", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "G", "members": [{"value": id}]}))).await;
    let gid = g["id"].as_str().expect("id");
    let (status, g2, _) = call(&svc, Request::new("PUT", &format!("/Groups/{gid}")).with_json(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "G2"}))).await;
    assert_eq!(status, 200);
    assert_eq!(g2["displayName"], "G2");
    assert!(g2.get("members").is_none());
}

pub async fn uniqueness_is_case_insensitive_and_per_tenant<S: Store<Context = String>>(
    svc: Service<S>,
) {
    let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "Ann@Example.com"});
    assert_eq!(call(&svc, post("/Users", &body)).await.0, 201);
    let dup = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ann@example.COM"});
    let (status, err, _) = call(&svc, post("/Users", &dup)).await;
    assert_error(status, &err, 409, Some("uniqueness"));
    // Another tenant has its own namespace and sees nothing of the first.
    let other = svc.handle(&"globex".to_owned(), post("/Users", &dup)).await;
    assert_eq!(other.status, 201);
    let list = svc
        .handle(&"globex".to_owned(), Request::new("GET", "/Users"))
        .await;
    assert_eq!(list.json_body().expect("json")["totalResults"], 1);
    let (_, mine, _) = call(&svc, Request::new("GET", "/Users")).await;
    assert_eq!(mine["totalResults"], 1);
    let theirs_id = other.json_body().expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, _, _) = call(&svc, Request::new("GET", &format!("/Users/{theirs_id}"))).await;
    assert_eq!(status, 404);
    // Renaming onto a taken userName by PATCH is a conflict too.
    let (_, b, _) = call(
        &svc,
        post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bob"}),
        ),
    )
    .await;
    let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "userName", "value": "ANN@example.com"}]});
    let (status, err, _) = call(
        &svc,
        Request::new(
            "PATCH",
            &format!("/Users/{}", b["id"].as_str().expect("id")),
        )
        .with_json(&op),
    )
    .await;
    assert_error(status, &err, 409, Some("uniqueness"));
    // The failed rename kept bob's claim; a rename releases the old name and claims
    // the new one; a write that leaves userName alone keeps its claim.
    let user = |name: &str| json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name});
    assert_eq!(call(&svc, post("/Users", &user("BOB"))).await.0, 409);
    let bob = format!("/Users/{}", b["id"].as_str().expect("id"));
    let rename = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "userName", "value": "carol"}]});
    let (status, _, _) = call(&svc, Request::new("PATCH", &bob).with_json(&rename)).await;
    assert_eq!(status, 200);
    assert_eq!(call(&svc, post("/Users", &user("Bob"))).await.0, 201);
    assert_eq!(call(&svc, post("/Users", &user("CAROL"))).await.0, 409);
    let nick = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "nickName", "value": "C"}]});
    let (status, _, _) = call(&svc, Request::new("PATCH", &bob).with_json(&nick)).await;
    assert_eq!(status, 200);
    assert_eq!(call(&svc, post("/Users", &user("carol"))).await.0, 409);
}

pub async fn discovery_is_truthful<S: Store<Context = String>>(svc: Service<S>) {
    let (status, spc, _) = call(&svc, Request::new("GET", "/ServiceProviderConfig")).await;
    assert_eq!(status, 200);
    assert_eq!(
        spc["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"])
    );
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["filter"], json!({"supported": true, "maxResults": 200}));
    assert_eq!(
        spc["bulk"],
        json!({"supported": true, "maxOperations": 1000, "maxPayloadSize": 1048576})
    );
    assert_eq!(spc["sort"]["supported"], true);
    assert_eq!(spc["etag"]["supported"], true);
    assert_eq!(spc["authenticationSchemes"][0]["type"], "oauthbearertoken");
    assert_eq!(
        spc["meta"]["location"],
        "https://example.com/scim/v2/ServiceProviderConfig"
    );

    let (_, types, _) = call(&svc, Request::new("GET", "/ResourceTypes")).await;
    assert_eq!(types["totalResults"], 2);
    assert_eq!(types["Resources"][0]["endpoint"], "/Users");
    assert_eq!(
        types["Resources"][0]["schemaExtensions"][0]["schema"],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    );
    let (status, user_type, _) = call(&svc, Request::new("GET", "/ResourceTypes/User")).await;
    assert_eq!(status, 200);
    assert_eq!(
        user_type["meta"]["location"],
        "https://example.com/scim/v2/ResourceTypes/User"
    );

    let (_, schemas, _) = call(&svc, Request::new("GET", "/Schemas")).await;
    assert_eq!(schemas["totalResults"], 3);
    let (status, user_schema, _) = call(
        &svc,
        Request::new("GET", "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        user_schema["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:Schema"])
    );
    assert_eq!(user_schema["attributes"][0]["name"], "userName");
    let (status, body, _) = call(&svc, Request::new("GET", "/Schemas/urn:nope")).await;
    assert_error(status, &body, 404, None);
}

pub async fn error_paths_are_scim_errors<S: Store<Context = String>>(svc: Service<S>) {
    let (_, user, _) = call(
        &svc,
        post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a"}),
        ),
    )
    .await;
    let id = user["id"].as_str().expect("id").to_owned();
    let user_path = format!("/Users/{id}");
    let patch = |ops: Value| {
        Request::new("PATCH", &user_path).with_json(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops}))
    };
    let cases: Vec<(Request, u16, Option<&str>)> = vec![
        (Request::new("GET", "/Users?filter=userName%20equals%20%22a%22"), 400, Some("invalidFilter")),
        (Request::new("GET", "/Users?filter=active%20gt%20true"), 400, Some("invalidFilter")),
        (Request::new("GET", &format!("/Users?filter={}", "(".repeat(50_000))), 400, Some("invalidFilter")),
        (Request::new("GET", "/Users?startIndex=abc"), 400, Some("invalidValue")),
        (Request::new("GET", "/Users?sortBy=nope"), 400, Some("invalidValue")),
        (Request::new("GET", "/Users?sortOrder=sideways"), 400, Some("invalidValue")),
        (Request::new("GET", "/Users?attributes=1bad"), 400, Some("invalidValue")),
        (Request::new("POST", "/Users").with_header("Content-Type", "application/scim+json").with_body("{not json"), 400, Some("invalidSyntax")),
        (Request::new("POST", "/Users").with_header("Content-Type", "application/scim+json").with_body(""), 400, Some("invalidSyntax")),
        (Request::new("POST", "/Users").with_header("Content-Type", "text/plain").with_body("{}"), 415, None),
        (post("/Users", &json!([1, 2])), 400, Some("invalidSyntax")),
        (post("/Users", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]})), 400, Some("invalidValue")),
        (post("/Users", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "userName": "x"})), 400, Some("invalidValue")),
        (post("/Users", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x", "active": "perhaps"})), 400, Some("invalidValue")),
        (post("/Users", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a"})), 409, Some("uniqueness")),
        (Request::new("GET", "/Users/does-not-exist"), 404, None),
        (Request::new("PUT", "/Users/does-not-exist").with_json(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "z"})), 404, None),
        (Request::new("GET", "/Nothing"), 404, None),
        (Request::new("GET", "/"), 404, None),
        (Request::new("GET", "/Users/a/b"), 404, None),
        (Request::new("GET", "/Me"), 501, None),
        (Request::new("DELETE", "/Users"), 405, None),
        (Request::new("PATCH", "/ServiceProviderConfig"), 405, None),
        (Request::new("GET", "/Bulk"), 405, None),
        (Request::new("POST", &user_path).with_json(&json!({})), 405, None),
        (patch(json!([{"op": "remove"}])), 400, Some("noTarget")),
        (patch(json!([{"op": "replace", "path": "id", "value": "x"}])), 400, Some("mutability")),
        (patch(json!([{"op": "replace", "path": "emails[type eq", "value": "x"}])), 400, Some("invalidPath")),
        (patch(json!([{"op": "replace", "path": "active", "value": "perhaps"}])), 400, Some("invalidValue")),
        (patch(json!([{"op": "jump", "path": "active", "value": true}])), 400, Some("invalidSyntax")),
        (Request::new("PATCH", &user_path).with_json(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]})), 400, Some("invalidSyntax")),
        (Request::new("POST", "/Users").with_header("Content-Type", "application/scim+json").with_body(vec![b' '; 2 * 1024 * 1024]), 413, None),
    ];
    for (req, status, scim_type) in cases {
        let what = format!(
            "{} {}?{}",
            req.method,
            req.path,
            req.query.chars().take(60).collect::<String>()
        );
        let resp = svc.handle(&tenant(), req).await;
        let body = resp.json_body().unwrap_or(Value::Null);
        assert_eq!(resp.status, status, "{what}: {body}");
        assert_eq!(
            resp.header("Content-Type"),
            Some("application/scim+json"),
            "{what}"
        );
        assert_error(resp.status, &body, status, scim_type);
        if status == 405 {
            assert!(resp.header("Allow").is_some(), "{what}");
        }
    }
    // The user is untouched by all of that.
    let (_, after, _) = call(&svc, Request::new("GET", &user_path)).await;
    assert_eq!(after["meta"]["version"], "W/\"1\"");
}

pub async fn media_types_and_trailing_slashes<S: Store<Context = String>>(svc: Service<S>) {
    for ct in [
        "application/scim+json",
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/SCIM+JSON;charset=UTF-8",
    ] {
        let body =
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": ct});
        let req = Request::new("POST", "/Users/")
            .with_header("Content-Type", ct)
            .with_body(body.to_string());
        let (status, created, _) = call(&svc, req).await;
        assert_eq!(status, 201, "{ct}: {created}");
    }
}

pub async fn projection_of_extension_attributes<S: Store<Context = String>>(svc: Service<S>) {
    let ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    let (_, user, _) = call(&svc, post("/Users", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ent], "userName": "a", "title": "T", ent: {"department": "D", "costCenter": "C"}}))).await;
    let id = user["id"].as_str().expect("id");
    let (_, one, _) = call(
        &svc,
        Request::new("GET", &format!("/Users/{id}?attributes={ent}:department")),
    )
    .await;
    assert_eq!(
        one,
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ent], "id": id, ent: {"department": "D"}})
    );
    let (_, whole, _) = call(
        &svc,
        Request::new("GET", &format!("/Users/{id}?attributes={ent},userName")),
    )
    .await;
    assert_eq!(
        whole,
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ent], "id": id, "userName": "a", ent: {"department": "D", "costCenter": "C"}})
    );
    let (_, without, _) = call(
        &svc,
        Request::new(
            "GET",
            &format!("/Users/{id}?excludedAttributes={ent}:costCenter,title"),
        ),
    )
    .await;
    assert_eq!(without[ent], json!({"department": "D"}));
    assert!(without.get("title").is_none());
    assert_eq!(without["userName"], "a");
    let (_, no_ext, _) = call(
        &svc,
        Request::new("GET", &format!("/Users/{id}?excludedAttributes={ent}")),
    )
    .await;
    assert!(no_ext.get(ent).is_none());
}

pub async fn concurrent_member_adds<S: Store<Context = String> + 'static>(store: S) {
    // The members are made-up ids: this is about concurrency, not references.
    let mut config = ServiceConfig::default();
    config.check_references = false;
    let svc = Arc::new(Service::new(store, config).with_clock(clock()));
    let (_, g, _) = call(&svc, post("/Groups", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Big"}))).await;
    let gid = g["id"].as_str().expect("id").to_owned();
    let mut tasks = Vec::new();
    for t in 0..16 {
        let svc = Arc::clone(&svc);
        let gid = gid.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "add", "path": "members", "value": [{"value": format!("t{t}-m{i}")}]}]});
                let req = Request::new("PATCH", &format!("/Groups/{gid}?excludedAttributes=members")).with_json(&op);
                let resp = svc.handle(&tenant(), req).await;
                assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let (_, g, _) = call(&svc, Request::new("GET", &format!("/Groups/{gid}"))).await;
    let members = g["members"].as_array().expect("members");
    assert_eq!(members.len(), 1_600);
    let mut ids: Vec<&str> = members
        .iter()
        .map(|m| m["value"].as_str().expect("value"))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 1_600);
    assert_eq!(g["meta"]["version"], "W/\"1601\"");
}

/// One tenant can neither read, write nor detect another's resources: not by id,
/// not by filter, not through a 409 on a userName, not as a group member.
pub async fn tenants_are_isolated<S: Store<Context = String>>(svc: Service<S>) {
    let other = "globex".to_owned();
    let (_, u, _) = call(&svc, post("/Users", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ann@acme.example", "externalId": "ext-ann"}))).await;
    let uid = u["id"].as_str().expect("id").to_owned();
    let (_, g, _) = call(&svc, post("/Groups", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Acme admins", "members": [{"value": uid}]}))).await;
    let gid = g["id"].as_str().expect("id").to_owned();
    let theirs = |req: Request| {
        let other = other.clone();
        let svc = &svc;
        async move { svc.handle(&other, req).await }
    };
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "active", "value": false}]});
    for req in [
        Request::new("GET", &format!("/Users/{uid}")),
        Request::new("PUT", &format!("/Users/{uid}")).with_json(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "mallory"})),
        Request::new("PATCH", &format!("/Users/{uid}")).with_json(&patch),
        Request::new("DELETE", &format!("/Users/{uid}")),
        Request::new("GET", &format!("/Groups/{gid}")),
        Request::new("DELETE", &format!("/Groups/{gid}")),
    ] {
        let what = format!("{} {}", req.method, req.path);
        assert_eq!(theirs(req).await.status, 404, "{what}");
    }
    for query in [
        "/Users".to_owned(),
        "/Users?filter=userName%20eq%20%22ann@acme.example%22".to_owned(),
        "/Users?filter=externalId%20eq%20%22ext-ann%22".to_owned(),
        format!("/Users?filter=id%20eq%20%22{uid}%22"),
        format!("/Groups?filter=members.value%20eq%20%22{uid}%22"),
    ] {
        let resp = theirs(Request::new("GET", &query)).await;
        assert_eq!(resp.status, 200, "{query}");
        assert_eq!(
            resp.json_body().expect("json")["totalResults"],
            0,
            "{query}"
        );
    }
    // The same userName is free in the other tenant: no 409 gives the first away.
    let resp = theirs(post("/Users", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ANN@acme.example"}))).await;
    assert_eq!(resp.status, 201);
    // A member from another tenant is a member that does not exist.
    let resp = theirs(post("/Groups", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Globex", "members": [{"value": uid}]}))).await;
    assert_eq!(resp.status, 400, "{}", String::from_utf8_lossy(&resp.body));
    // The first tenant's data is as it was.
    let (_, u2, _) = call(&svc, Request::new("GET", &format!("/Users/{uid}"))).await;
    assert_eq!(u2["meta"]["version"], u["meta"]["version"]);
    assert_eq!(u2["active"], u["active"]);
    let (_, g2, _) = call(&svc, Request::new("GET", &format!("/Groups/{gid}"))).await;
    assert_eq!(g2["members"], json!([{"value": uid}]));
}

/// The ids and the next cursor of one cursor page.
async fn cursor_page<S: Store<Context = String>>(
    svc: &Service<S>,
    query: &str,
) -> (Vec<String>, Option<String>, Value) {
    let (status, body, _) = call(svc, Request::new("GET", &format!("/Users?{query}"))).await;
    assert_eq!(status, 200, "{query}: {body}");
    assert!(body.get("startIndex").is_none(), "{body}");
    let ids = body["Resources"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|u| u["id"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    let next = body
        .get("nextCursor")
        .and_then(Value::as_str)
        .map(str::to_owned);
    (ids, next, body)
}

/// Follows nextCursor from an empty cursor to the end; returns the ids in order.
async fn walk<S: Store<Context = String>>(svc: &Service<S>, query: &str) -> Vec<String> {
    let mut all = Vec::new();
    let (ids, mut next, _) = cursor_page(svc, &format!("{query}&cursor=")).await;
    all.extend(ids);
    let mut pages = 1;
    while let Some(c) = next {
        let (ids, n, _) = cursor_page(svc, &format!("{query}&cursor={c}")).await;
        assert!(!ids.is_empty(), "a nextCursor leads to a non-empty page");
        all.extend(ids);
        next = n;
        pages += 1;
        assert!(pages < 100, "the walk ends");
    }
    all
}

/// Cursor pagination (RFC 9865): pages follow nextCursor to the end, each resource
/// once, in id order (or the sort's), unaffected by a deletion behind the cursor;
/// cursors belong to their listing; SearchRequest takes `cursor` too.
pub async fn cursor_pagination<S: Store<Context = String>>(svc: Service<S>) {
    let mut ids = Vec::new();
    for i in 0..25 {
        let (status, body, _) = call(
            &svc,
            post(
                "/Users",
                &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                        "userName": format!("user{i:02}"), "displayName": format!("{}", 24 - i)}),
            ),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    let mut sorted = ids.clone();
    sorted.sort();

    // The first page: an empty cursor (`?cursor` or `?cursor=`).
    let (first, next, body) = cursor_page(&svc, "cursor&count=10").await;
    assert_eq!(first, sorted[..10].to_vec());
    assert_eq!(body["totalResults"], 25);
    assert_eq!(body["itemsPerPage"], 10);
    let next = next.expect("a next cursor");
    assert!(next.bytes().all(|b| b.is_ascii_alphanumeric()), "{next}");
    assert_eq!(walk(&svc, "count=10").await, sorted);
    assert_eq!(walk(&svc, "count=7").await, sorted);

    // Keyset: deleting a resource already seen shifts nothing.
    let (status, _, _) = call(
        &svc,
        Request::new("DELETE", &format!("/Users/{}", sorted[0])),
    )
    .await;
    assert_eq!(status, 204);
    let (second, _, body) = cursor_page(&svc, &format!("cursor={next}&count=10")).await;
    assert_eq!(second, sorted[10..20].to_vec());
    // Later pages report the total their listing began with (not counted again).
    assert_eq!(body["totalResults"], 25);
    let rest: Vec<String> = sorted[1..].to_vec();

    // With a filter, and with a sort (displayName runs opposite to userName).
    let alive: Vec<String> = ids.iter().filter(|id| **id != sorted[0]).cloned().collect();
    let filtered = walk(&svc, "filter=userName+sw+%22user1%22&count=3").await;
    let mut want: Vec<String> = ids[10..20]
        .iter()
        .filter(|id| **id != sorted[0])
        .cloned()
        .collect();
    want.sort();
    assert_eq!(filtered, want);
    let by_name = walk(&svc, "sortBy=userName&sortOrder=descending&count=4").await;
    let mut want = alive.clone();
    want.reverse();
    assert_eq!(by_name, want);
    assert_eq!(walk(&svc, "count=24").await, rest);

    // The last page has no nextCursor; count=0 gives only the total.
    let (ids0, next0, body) = cursor_page(&svc, "cursor&count=0").await;
    assert!(ids0.is_empty() && next0.is_none());
    assert_eq!(body["totalResults"], 24);

    // A cursor belongs to its listing.
    let (status, body, _) = call(
        &svc,
        Request::new(
            "GET",
            &format!("/Users?cursor={next}&count=10&filter=userName+pr"),
        ),
    )
    .await;
    assert_error(status, &body, 400, Some("invalidCursor"));
    let (status, body, _) = call(
        &svc,
        Request::new("GET", &format!("/Users?cursor={next}&count=5")),
    )
    .await;
    assert_error(status, &body, 400, Some("invalidCount"));
    // Without a count, a later page keeps the listing's.
    let (again, _, _) = cursor_page(&svc, &format!("cursor={next}")).await;
    assert_eq!(again, sorted[10..20].to_vec());
    let (status, body, _) = call(&svc, Request::new("GET", "/Users?cursor=00ff&count=10")).await;
    assert_error(status, &body, 400, Some("invalidCursor"));
    let (status, body, _) = call(
        &svc,
        Request::new("GET", &format!("/Groups?cursor={next}&count=10")),
    )
    .await;
    assert_error(status, &body, 400, Some("invalidCursor"));
    let (status, body, _) = call(
        &svc,
        Request::new("GET", "/Users?cursor&startIndex=1&count=10"),
    )
    .await;
    assert_error(status, &body, 400, Some("invalidValue"));

    // SearchRequest: "cursor": "" for the first page, then nextCursor.
    let search = |cursor: &str| {
        post(
            "/Users/.search",
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                    "count": 20, "cursor": cursor}),
        )
    };
    let (status, body, _) = call(&svc, search("")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Resources"].as_array().map(Vec::len), Some(20));
    let c = body["nextCursor"].as_str().expect("nextCursor").to_owned();
    let (status, body, _) = call(&svc, search(&c)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Resources"].as_array().map(Vec::len), Some(4));
    assert!(body.get("nextCursor").is_none(), "{body}");

    // Index paging is unchanged, and both are advertised.
    let (_, body, _) = call(&svc, Request::new("GET", "/Users?startIndex=21&count=10")).await;
    assert_eq!(body["startIndex"], 21);
    assert!(body.get("nextCursor").is_none());
    let (_, spc, _) = call(&svc, Request::new("GET", "/ServiceProviderConfig")).await;
    assert_eq!(spc["pagination"]["cursor"], true);
    assert_eq!(spc["pagination"]["index"], true);
    assert_eq!(spc["pagination"]["defaultPaginationMethod"], "index");
}

/// Every event kind, from the literal Okta and Entra ID payloads: what changed is
/// reported once, what did not change (a repeated PATCH, a failed request, a 409, a
/// 412) is not reported at all, and the log is read by consumers with cursors of
/// their own.
pub async fn provisioning_events<S>(svc: Service<S>)
where
    S: Store<Context = String> + EventLog<Tenant = String>,
{
    use scimkit::events::EventKind;

    // Everything logged after `after`, as (kind, resource id, version).
    async fn since<S: EventLog<Tenant = String>>(
        store: &S,
        after: u64,
    ) -> Vec<scimkit::events::StoredEvent<String>> {
        let all = store.read_events("scenario", 10_000).await.expect("read");
        all.into_iter().filter(|e| e.sequence > after).collect()
    }
    async fn last<S: EventLog<Tenant = String>>(store: &S) -> u64 {
        let all = store.read_events("scenario", 10_000).await.expect("read");
        all.last().map_or(0, |e| e.sequence)
    }
    fn kinds(events: &[scimkit::events::StoredEvent<String>]) -> Vec<EventKind> {
        events.iter().map(|e| e.event.kind.clone()).collect()
    }
    let patch = |path: &str, body: &Value| Request::new("PATCH", path).with_json(body);
    let store = svc.store();

    // Okta creates a user.
    let (status, user, _) = call(
        &svc,
        post("/Users", &fixture("requests/okta-create-user")["body"]),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    let uid = user["id"].as_str().expect("id").to_owned();
    let events = since(store, 0).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let created = &events[0];
    assert_eq!(created.tenant, tenant());
    assert_eq!(created.event.resource_type, "User");
    assert_eq!(created.event.resource_id, uid);
    assert_eq!(created.event.version, 1);
    let EventKind::Created { attributes } = &created.event.kind else {
        panic!("not a creation: {created:?}");
    };
    assert!(attributes.iter().any(|a| a == "userName"), "{attributes:?}");
    assert!(!attributes.iter().any(|a| a == "meta" || a == "id"));

    // Okta's deactivation: one event, and the same PATCH again changes nothing.
    let mark = last(store).await;
    let deactivate = fixture("patch/okta-deactivate")["request"].clone();
    let (status, body, _) = call(&svc, patch(&format!("/Users/{uid}"), &deactivate)).await;
    assert_eq!(status, 200, "{body}");
    let events = since(store, mark).await;
    assert_eq!(kinds(&events), vec![EventKind::Deactivated]);
    assert_eq!(events[0].event.version, 2);
    let mark = last(store).await;
    let (status, _, _) = call(&svc, patch(&format!("/Users/{uid}"), &deactivate)).await;
    assert_eq!(status, 200);
    assert!(
        since(store, mark).await.is_empty(),
        "a no-op PATCH is no event"
    );

    // Okta's PUT brings it back (active true) and changes its name.
    let mut put = fixture("requests/okta-replace-user")["body"].clone();
    put["id"] = json!(uid);
    let (status, body, _) = call(
        &svc,
        Request::new("PUT", &format!("/Users/{uid}")).with_json(&put),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let events = since(store, mark).await;
    let kinds_now = kinds(&events);
    assert_eq!(kinds_now.len(), 2, "{kinds_now:?}");
    let EventKind::Updated { attributes } = &kinds_now[0] else {
        panic!("not an update: {kinds_now:?}");
    };
    assert!(attributes.iter().any(|a| a == "name"), "{attributes:?}");
    assert!(!attributes.iter().any(|a| a == "active"), "{attributes:?}");
    assert_eq!(kinds_now[1], EventKind::Reactivated);
    assert!(events.iter().all(|e| e.event.version == 3));

    // Entra ID's string "False" is a deactivation too.
    let mark = last(store).await;
    let entra_false = fixture("patch/entra-disable-user-string-bool")["request"].clone();
    let (status, body, _) = call(&svc, patch(&format!("/Users/{uid}"), &entra_false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        kinds(&since(store, mark).await),
        vec![EventKind::Deactivated]
    );

    // Entra ID's update: attribute paths by name, active unchanged (already false).
    let mark = last(store).await;
    let update = fixture("patch/entra-update-user")["request"].clone();
    let (status, body, _) = call(&svc, patch(&format!("/Users/{uid}"), &update)).await;
    assert_eq!(status, 200, "{body}");
    let mut names = match kinds(&since(store, mark).await).as_slice() {
        [EventKind::Updated { attributes }] => attributes.clone(),
        other => panic!("{other:?}"),
    };
    names.sort();
    assert_eq!(names, ["emails", "name", "userName"]);

    // Requests that fail change nothing and say nothing: a bad path, a 409, a 412.
    let mark = last(store).await;
    let bad = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "nosuch[", "value": 1}]});
    let (status, _, _) = call(&svc, patch(&format!("/Users/{uid}"), &bad)).await;
    assert_eq!(status, 400);
    let (status, _, _) = call(
        &svc,
        post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "5B50642D-79fc-4410-9e90-4c077cdd1a59@testuser.com"}),
        ),
    )
    .await;
    assert_eq!(status, 409);
    let stale = Request::new("PATCH", &format!("/Users/{uid}"))
        .with_json(&fixture("patch/okta-deactivate")["request"])
        .with_header("If-Match", "W/\"1\"");
    let (status, _, _) = call(&svc, stale).await;
    assert_eq!(status, 412);
    assert!(since(store, mark).await.is_empty());

    // Groups: created, a member added (Entra ID's payload, with our user's id),
    // renamed (Okta's payload), the member removed (Entra ID's).
    let (status, group, _) = call(
        &svc,
        post("/Groups", &fixture("requests/okta-create-group")["body"]),
    )
    .await;
    assert_eq!(status, 201, "{group}");
    let gid = group["id"].as_str().expect("id").to_owned();
    let mark = last(store).await;
    let mut add = fixture("patch/entra-add-member")["request"].clone();
    add["Operations"][0]["value"][0]["value"] = json!(uid);
    let (status, body, _) = call(&svc, patch(&format!("/Groups/{gid}"), &add)).await;
    assert!(status == 200 || status == 204, "{body}");
    let events = since(store, mark).await;
    assert_eq!(
        kinds(&events),
        vec![EventKind::MembersAdded {
            members: vec![uid.clone()]
        }]
    );
    assert_eq!(events[0].event.resource_id, gid);
    assert_eq!(events[0].event.version, 2);
    let mark = last(store).await;
    let (status, _, _) = call(&svc, patch(&format!("/Groups/{gid}"), &add)).await;
    assert!(status == 200 || status == 204);
    assert!(
        since(store, mark).await.is_empty(),
        "adding a member again is no event"
    );

    let mut rename = fixture("patch/okta-group-rename")["request"].clone();
    rename["Operations"][0]["value"]["id"] = json!(gid);
    rename["Operations"][0]["value"]["displayName"] = json!("Renamed");
    let (status, body, _) = call(&svc, patch(&format!("/Groups/{gid}"), &rename)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        kinds(&since(store, mark).await),
        vec![EventKind::Updated {
            attributes: vec!["displayName".to_owned()]
        }]
    );

    let mark = last(store).await;
    let mut remove = fixture("patch/entra-remove-member-default")["request"].clone();
    remove["Operations"][0]["value"][0]["value"] = json!(uid);
    let (status, body, _) = call(&svc, patch(&format!("/Groups/{gid}"), &remove)).await;
    assert!(status == 200 || status == 204, "{body}");
    assert_eq!(
        kinds(&since(store, mark).await),
        vec![EventKind::MembersRemoved {
            members: vec![uid.clone()]
        }]
    );

    // Okta's membership change, in one PATCH: one removal and one addition.
    let (status, other, _) = call(
        &svc,
        post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "other@okta.local"}),
        ),
    )
    .await;
    assert_eq!(status, 201);
    let oid = other["id"].as_str().expect("id").to_owned();
    let (status, _, _) = call(&svc, patch(&format!("/Groups/{gid}"), &add)).await;
    assert!(status == 200 || status == 204);
    let mark = last(store).await;
    let mut change = fixture("patch/okta-membership-change")["request"].clone();
    change["Operations"][0]["path"] = json!(format!("members[value eq \"{uid}\"]"));
    change["Operations"][1]["value"][0]["value"] = json!(oid);
    let (status, body, _) = call(&svc, patch(&format!("/Groups/{gid}"), &change)).await;
    assert!(status == 200 || status == 204, "{body}");
    assert_eq!(
        kinds(&since(store, mark).await),
        vec![
            EventKind::MembersAdded {
                members: vec![oid.clone()]
            },
            EventKind::MembersRemoved {
                members: vec![uid.clone()]
            },
        ]
    );

    // Deleting a user in a group: the user is deleted and the group loses it.
    let mark = last(store).await;
    let (status, _, _) = call(&svc, Request::new("DELETE", &format!("/Users/{oid}"))).await;
    assert_eq!(status, 204);
    let events = since(store, mark).await;
    let deleted: Vec<_> = events
        .iter()
        .map(|e| (e.event.kind.clone(), e.event.resource_id.clone()))
        .collect();
    assert_eq!(
        deleted,
        vec![
            (EventKind::Deleted, oid.clone()),
            (
                EventKind::MembersRemoved {
                    members: vec![oid.clone()]
                },
                gid.clone()
            ),
        ]
    );
    assert_eq!(events[0].event.version, 1);

    // A bulk creation is a creation.
    let mark = last(store).await;
    let bulk = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [{"method": "POST", "path": "/Users", "bulkId": "b1",
            "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bulk@x"}}]});
    let (status, body, _) = call(&svc, post("/Bulk", &bulk)).await;
    assert_eq!(status, 200, "{body}");
    let events = since(store, mark).await;
    assert!(matches!(events.as_slice(), [e] if matches!(e.event.kind, EventKind::Created { .. })));

    // Consumers: each has its own cursor; unacknowledged events come again.
    let all = store.read_events("a", 10_000).await.expect("read");
    assert!(all.windows(2).all(|w| w[0].sequence < w[1].sequence));
    let ids: std::collections::HashSet<_> = all.iter().map(|e| e.event.id.clone()).collect();
    assert_eq!(ids.len(), all.len(), "event ids are unique");
    let first_three = store.read_events("a", 3).await.expect("read");
    assert_eq!(first_three, all[..3].to_vec());
    store
        .acknowledge_events("a", all[2].sequence)
        .await
        .expect("ack");
    let rest = store.read_events("a", 10_000).await.expect("read");
    assert_eq!(rest, all[3..].to_vec());
    store.acknowledge_events("a", 1).await.expect("ack");
    assert_eq!(
        store.read_events("a", 10_000).await.expect("read"),
        rest,
        "acks never go back"
    );
    assert_eq!(store.read_events("b", 10_000).await.expect("read"), all);

    // Pruning keeps what any known consumer has not acknowledged.
    let later = Utc
        .with_ymd_and_hms(2100, 1, 1, 0, 0, 0)
        .single()
        .expect("time");
    for consumer in ["scenario", "b"] {
        store
            .acknowledge_events(consumer, all[4].sequence)
            .await
            .expect("ack");
    }
    // (A store may have dropped them already, as MemoryStore does on acknowledgement.)
    let pruned = store.prune_events(later).await.expect("prune");
    assert!(
        pruned <= 3,
        "only what a, b and scenario all acknowledged: {pruned}"
    );
    assert_eq!(
        store.read_events("a", 10_000).await.expect("read"),
        all[3..].to_vec()
    );
    assert_eq!(
        store.read_events("b", 10_000).await.expect("read"),
        all[5..].to_vec()
    );
}
