//! `kill -9` in the middle of bursts of writes (user creates, member adds, the
//! delete of a user who is in many groups), then a restart on the same database:
//! every acknowledged write is there, no membership names a user that is gone, and
//! the database's own checks (SQLite's `integrity_check`, PostgreSQL's `amcheck`)
//! find nothing wrong.

mod support;

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use support::{PgDb, Server, create_key, temp_db, try_request};

fn user(name: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name})
}

/// What the clients saw acknowledged before the crash.
#[derive(Default)]
struct Acked {
    users: Vec<String>,
    members: Vec<(String, String)>,
    victim_deleted: bool,
}

fn all_ids(server: &Server, endpoint: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut start = 1;
    loop {
        let (status, _, page) = server.request(
            "GET",
            &format!("/{endpoint}?startIndex={start}&count=200"),
            None,
        );
        assert_eq!(status, 200, "{page}");
        let resources = page["Resources"].as_array().cloned().unwrap_or_default();
        if resources.is_empty() {
            return out;
        }
        start += resources.len();
        out.extend(resources);
    }
}

/// Writes in bursts, deletes the victim at `delete_at`, kills at `kill_after`.
fn crash_round(db: &str, key: &str, round: usize, delete_at: Duration, kill_after: Duration) {
    let mut server = Server::spawn(&["--db", db]);
    server.token = key.to_owned();
    let (_, _, victim) = server.request("POST", "/Users", Some(&user(&format!("victim{round}"))));
    let victim = victim["id"].as_str().expect("id").to_owned();
    let mut groups = Vec::new();
    for g in 0..40 {
        let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": format!("r{round}-g{g}"), "members": [{"value": victim}]});
        let (status, _, group) = server.request("POST", "/Groups", Some(&body));
        assert_eq!(status, 201, "{group}");
        groups.push(group["id"].as_str().expect("id").to_owned());
    }

    let acked = Mutex::new(Acked::default());
    let stop = AtomicBool::new(false);
    let (addr, base) = (server.addr.clone(), server.base.clone());
    std::thread::scope(|scope| {
        for client in 0..3 {
            let (acked, stop, addr, base, groups) = (&acked, &stop, &addr, &base, &groups);
            scope.spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let name = format!("r{round}-c{client}-u{i}");
                    let Some((201, created)) = try_request(addr, base, key, "POST", "/Users", Some(&user(&name))) else {
                        continue;
                    };
                    let uid = created["id"].as_str().unwrap_or_default().to_owned();
                    acked.lock().unwrap().users.push(uid.clone());
                    let gid = &groups[i % groups.len()];
                    let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]});
                    if let Some((204, _)) = try_request(addr, base, key, "PATCH", &format!("/Groups/{gid}"), Some(&op)) {
                        acked.lock().unwrap().members.push((gid.clone(), uid));
                    }
                }
            });
        }
        let (acked, addr, base, victim) = (&acked, &addr, &base, &victim);
        scope.spawn(move || {
            std::thread::sleep(delete_at);
            if let Some((204, _)) =
                try_request(addr, base, key, "DELETE", &format!("/Users/{victim}"), None)
            {
                acked.lock().unwrap().victim_deleted = true;
            }
        });
        std::thread::sleep(kill_after);
        // SIGKILL: no shutdown, no flush, no goodbye.
        server.child.kill().expect("kill -9");
        let _ = server.child.wait();
        stop.store(true, Ordering::Relaxed);
    });
    drop(server);

    let mut server = Server::spawn(&["--db", db]);
    server.token = key.to_owned();
    let acked = acked.into_inner().unwrap();
    assert!(
        !acked.users.is_empty(),
        "the burst wrote something before the crash"
    );
    for uid in &acked.users {
        let (status, _, body) = server.request("GET", &format!("/Users/{uid}"), None);
        assert_eq!(status, 200, "acknowledged user {uid}: {body}");
    }
    let users: HashSet<String> = all_ids(&server, "Users")
        .iter()
        .filter_map(|u| u["id"].as_str().map(str::to_owned))
        .collect();
    let all_groups = all_ids(&server, "Groups");
    let mut listing_victim = 0;
    for g in &all_groups {
        for m in g["members"].as_array().cloned().unwrap_or_default() {
            let value = m["value"].as_str().unwrap_or_default();
            assert!(
                users.contains(value),
                "group {} lists {value}, who does not exist",
                g["id"]
            );
            if value == victim {
                listing_victim += 1;
            }
        }
    }
    for (gid, uid) in &acked.members {
        let g = all_groups
            .iter()
            .find(|g| g["id"] == json!(gid))
            .expect("group");
        assert!(
            g["members"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["value"] == json!(uid))),
            "acknowledged member {uid} of {gid} is missing"
        );
    }
    // The delete and the clean-up of 40 groups are one transaction: all or nothing.
    if acked.victim_deleted || !users.contains(&victim) {
        assert_eq!(listing_victim, 0);
    } else {
        assert_eq!(listing_victim, 40);
    }
    eprintln!(
        "round {round}: {} users and {} member adds acknowledged, victim {}",
        acked.users.len(),
        acked.members.len(),
        if users.contains(&victim) {
            "kept"
        } else {
            "deleted"
        }
    );
    server.stop();
}

#[test]
fn kill_9_during_writes_on_sqlite_loses_nothing_acknowledged() {
    let (dir, db) = temp_db("crash");
    let db_str = db.to_str().expect("utf-8");
    let key = create_key(db_str, "default", "crash");
    // The second round kills the server while the victim's delete is in flight.
    for (round, delete_at, kill) in [(0, 200, 400), (1, 898, 900)] {
        let ms = Duration::from_millis;
        crash_round(db_str, &key, round, ms(delete_at), ms(kill));
    }
    let conn = rusqlite::Connection::open(&db).expect("open");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    drop(conn);
    drop(dir);
}

#[test]
fn kill_9_during_writes_on_postgres_loses_nothing_acknowledged() {
    let Some(db) = PgDb::create("scimkit_crash") else {
        return;
    };
    let key = create_key(&db.url(), "default", "crash");
    for (round, delete_at, kill) in [(0, 200, 400), (1, 898, 900)] {
        let ms = Duration::from_millis;
        crash_round(&db.url(), &key, round, ms(delete_at), ms(kill));
    }
    let mut client = db.client();
    client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        .expect("amcheck");
    let checked = client
        .query(
            "SELECT bt_index_check(c.oid, true), c.relname::text FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam \
             WHERE a.amname = 'btree' AND c.relname LIKE 'scim%'",
            &[],
        )
        .expect("bt_index_check");
    assert!(checked.len() >= 5, "{} indexes checked", checked.len());
}
