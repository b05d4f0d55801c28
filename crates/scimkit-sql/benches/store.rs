//! `SqlStore` on SQLite (a WAL file) and PostgreSQL (127.0.0.1:5432, skipped when it
//! is not reachable): adding and removing one member of groups of 10 and 100,000
//! members (the target: the same cost at every size), reading a user by id and by
//! `userName eq`, renaming a group of 100,000 members, PATCHing a user (read, then a
//! versioned write), and 32 clients at once reading, then PATCHing, a user each
//! (write throughput against read throughput).

use std::hint::black_box;

use chrono::Utc;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use scimkit::Registry;
use scimkit::filter::Filter;
use scimkit::store::{
    ListQuery, MemberChange, MemberDelta, Projection, Record, Store, UniqueValue,
};
use scimkit_sql::store::SqlStore;
use serde_json::{Value, json};

const SIZES: [usize; 2] = [10, 100_000];

fn group(id: &str, members: usize) -> Record {
    let list: Vec<Value> = (0..members)
        .map(|i| json!({"value": format!("m{i}")}))
        .collect();
    Record {
        id: id.to_owned(),
        version: 1,
        resource: json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "id": id, "displayName": id, "members": list,
            "meta": {"resourceType": "Group", "created": "2024-05-13T04:42:34Z", "lastModified": "2024-05-13T04:42:34Z"}
        }),
    }
}

fn user(n: usize) -> Record {
    let id = format!("user-{n:06}");
    Record {
        id: id.clone(),
        version: 1,
        resource: json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": id, "userName": format!("user{n}@example.com"), "externalId": format!("ext-{n}"),
            "emails": [{"value": format!("user{n}@example.com"), "type": "work", "primary": true}],
            "meta": {"resourceType": "User", "created": "2024-05-13T04:42:34Z", "lastModified": "2024-05-13T04:42:34Z"}
        }),
    }
}

fn delta(change: MemberChange) -> MemberDelta {
    MemberDelta {
        attribute: "members".into(),
        case_exact: false,
        changes: vec![change],
        modified: Utc::now(),
        max_members: usize::MAX,
        member_types: Vec::new(),
    }
}

fn bench_database(c: &mut Criterion, rt: &tokio::runtime::Runtime, label: &str, url: &str) {
    let registry = Registry::core();
    let store: SqlStore<()> = rt
        .block_on(SqlStore::connect(url, registry.clone()))
        .expect("store");
    let mut g = c.benchmark_group(format!("store/{label}"));
    g.sample_size(30);
    for size in SIZES {
        let id = format!("group-{size}");
        rt.block_on(store.create(&(), "Group", group(&id, size), &[], &[]))
            .expect("group");
        let mut i = 0usize;
        g.bench_function(BenchmarkId::new("add_and_remove_member", size), |b| {
            b.iter(|| {
                i += 1;
                let member = format!("new-{i}");
                rt.block_on(async {
                    store
                        .update_members(
                            &(),
                            "Group",
                            &id,
                            &delta(MemberChange::Add(json!({"value": member}))),
                            None,
                        )
                        .await
                        .expect("add");
                    store
                        .update_members(
                            &(),
                            "Group",
                            &id,
                            &delta(MemberChange::Remove(member.clone())),
                            None,
                        )
                        .await
                        .expect("remove");
                })
            })
        });
    }
    // A rename of the big group, as the service writes it: without its members.
    let big = format!("group-{}", SIZES[1]);
    g.bench_function("rename_group_of_100000", |b| {
        b.iter(|| {
            rt.block_on(async {
                let projection = Projection {
                    attributes: Vec::new(),
                    excluded: vec![scimkit::path::AttrPath::new("members")],
                };
                let mut current = store
                    .get(&(), "Group", &big, &projection)
                    .await
                    .expect("get");
                current.resource["displayName"] = json!(format!("renamed {}", current.version));
                let expected = current.version;
                current.version += 1;
                store
                    .replace_except(&(), "Group", current, expected, &[], &[])
                    .await
                    .expect("rename")
            })
        })
    });
    for n in 0..10_000 {
        let u = user(n);
        let unique = [UniqueValue {
            attribute: "userName".into(),
            value: format!("user{n}@example.com"),
        }];
        rt.block_on(store.create(&(), "User", u, &unique, &[]))
            .expect("user");
    }
    // As after any bulk import: fresh planner statistics.
    rt.block_on(store.analyze()).expect("analyze");
    g.bench_function("get_user_by_id_of_10000", |b| {
        b.iter(|| {
            rt.block_on(store.get(&(), "User", black_box("user-004242"), &Projection::all()))
                .expect("get")
        })
    });
    // A PATCH as the service writes it: read the user, change it, write it back
    // under its version (a durable commit).
    let patch = |store: SqlStore<()>, n: usize| async move {
        let id = format!("user-{n:06}");
        let mut current = store
            .get(&(), "User", &id, &Projection::all())
            .await
            .expect("get");
        current.resource["displayName"] = json!(format!("User {}", current.version));
        let expected = current.version;
        current.version += 1;
        let unique = [UniqueValue {
            attribute: "userName".into(),
            value: format!("user{n}@example.com"),
        }];
        store
            .replace(&(), "User", current, expected, &unique, &[])
            .await
            .expect("patch")
    };
    g.bench_function("patch_user_of_10000", |b| {
        b.iter(|| rt.block_on(patch(store.clone(), 4242)))
    });
    // 32 clients at once, each on a user of its own: GETs, then PATCHes, whose
    // commits the writers share.
    let mut round = 0;
    g.bench_function("get_32_users_at_once", |b| {
        b.iter(|| {
            rt.block_on(async {
                let tasks: Vec<_> = (0..32)
                    .map(|i| {
                        let store = store.clone();
                        tokio::spawn(async move {
                            let id = format!("user-{:06}", i * 300);
                            store.get(&(), "User", &id, &Projection::all()).await
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("task").expect("get");
                }
            })
        })
    });
    g.bench_function("patch_32_users_at_once", |b| {
        b.iter(|| {
            round += 1;
            rt.block_on(async {
                let tasks: Vec<_> = (0..32)
                    .map(|i| tokio::spawn(patch(store.clone(), (i * 300 + round) % 10_000)))
                    .collect();
                for task in tasks {
                    task.await.expect("task");
                }
            })
        })
    });
    let users = registry.resource_type("User").expect("User");
    let filter: Filter = r#"userName eq "USER4242@example.com""#.parse().expect("filter");
    let projection = Projection::all();
    g.bench_function("user_name_eq_of_10000", |b| {
        b.iter(|| {
            let query = ListQuery {
                schema: users,
                filter: Some(&filter),
                sort: None,
                start_index: 1,
                count: 100,
                after: None,
                count_total: true,
                projection: &projection,
            };
            let page = rt.block_on(store.list(&(), "User", &query)).expect("list");
            assert_eq!(page.total_results, 1);
        })
    });
    g.finish();
    rt.block_on(store.close());
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("scimkit_store_bench_{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("bench.db");
    bench_database(c, &rt, "sqlite", &file.display().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    let db = format!("scimkit_store_bench_{}", std::process::id());
    let admin = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=5";
    let created = std::thread::spawn({
        let db = db.clone();
        move || {
            postgres::Client::connect(admin, postgres::NoTls)
                .and_then(|mut c| c.batch_execute(&format!("CREATE DATABASE {db}")))
        }
    })
    .join();
    match created {
        Ok(Ok(())) => {
            bench_database(
                c,
                &rt,
                "postgres",
                &format!("postgres://postgres@127.0.0.1:5432/{db}"),
            );
            let _ = std::thread::spawn(move || {
                postgres::Client::connect(admin, postgres::NoTls).and_then(|mut c| {
                    c.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                })
            })
            .join();
        }
        _ => eprintln!("skipped PostgreSQL: not reachable at 127.0.0.1:5432"),
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
