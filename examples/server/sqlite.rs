//! A SQLite store for the example server: durable, transactional, with the common
//! equality filters pushed down and group members in their own table.

use std::collections::HashSet;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use scimkit::filter::{CompValue, CompareOp, Filter};
use scimkit::store::{
    ListQuery, MemberChange, MemberDelta, Membership, Page, Projection, Record, Store, StoreError,
    UniqueValue, apply_query,
};
use serde_json::{Map, Value};

/// A [`Store`] on one SQLite database.
///
/// - `resources` holds each resource's JSON (without its members) with a version for
///   conditional writes, and lower-cased copies of `userName` and `displayName` plus
///   `externalId` as columns, so the equality filters identity providers send become
///   SQL.
/// - `uniques` enforces unique values (`userName`, case-insensitively) with its primary key.
/// - `members` holds group members one row each, so adding or removing one member costs
///   the same for 10 members as for 100,000.
///
/// Pages are in `id` order. SQLite calls are short and run on the calling thread
/// under one connection lock; a busier host would use a connection pool and
/// `spawn_blocking`.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    member_attribute: String,
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::backend(e)
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
CREATE TABLE IF NOT EXISTS resources (
    rtype TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    user_name_ci TEXT,
    display_name_ci TEXT,
    external_id TEXT,
    body TEXT NOT NULL,
    PRIMARY KEY (rtype, id)
);
CREATE INDEX IF NOT EXISTS resources_by_user_name ON resources (rtype, user_name_ci, id);
CREATE INDEX IF NOT EXISTS resources_by_display_name ON resources (rtype, display_name_ci, id);
CREATE INDEX IF NOT EXISTS resources_by_external_id ON resources (rtype, external_id, id);
CREATE TABLE IF NOT EXISTS uniques (
    rtype TEXT NOT NULL,
    attribute TEXT NOT NULL,
    value TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (rtype, attribute, value)
);
CREATE INDEX IF NOT EXISTS uniques_by_id ON uniques (rtype, id);
CREATE TABLE IF NOT EXISTS members (
    rtype TEXT NOT NULL,
    group_id TEXT NOT NULL,
    norm TEXT NOT NULL,
    pos INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (rtype, group_id, norm)
);
CREATE INDEX IF NOT EXISTS members_by_value ON members (rtype, norm);
CREATE INDEX IF NOT EXISTS members_order ON members (rtype, group_id, pos);
";

impl SqliteStore {
    /// Opens (or creates) the database at `path`; `:memory:` keeps nothing.
    pub fn open(path: &str) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        conn.execute_batch(SCHEMA).map_err(backend)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            member_attribute: "members".to_owned(),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // A panic while the lock was held left no transaction open (rusqlite rolls back
        // on drop), so the connection is still consistent.
        let mut conn = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut conn)
    }
}

/// Member ids compare ignoring case (RFC 7643 gives `members.value` caseExact false).
fn norm(id: &str) -> String {
    id.to_lowercase()
}

/// The key of a member row: its id ignoring case, or, for a member without an id,
/// its position, so that nothing a client sent is dropped.
fn member_key(member: &Value, pos: usize) -> String {
    match member.get("value").and_then(Value::as_str) {
        Some(id) => norm(id),
        None => format!("\u{0}#{pos}"),
    }
}

fn text_of(doc: &Map<String, Value>, key: &str) -> Option<String> {
    doc.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .and_then(|(_, v)| v.as_str())
        .map(str::to_owned)
}

/// Splits the members out of a resource's JSON.
fn split_members(resource: &Value, attribute: &str) -> (Map<String, Value>, Vec<Value>) {
    let mut doc = resource.as_object().cloned().unwrap_or_default();
    let key = doc
        .keys()
        .find(|k| k.eq_ignore_ascii_case(attribute))
        .cloned();
    let members = match key.and_then(|k| doc.remove(&k)) {
        Some(Value::Array(list)) => list,
        _ => Vec::new(),
    };
    (doc, members)
}

fn write_row(
    tx: &rusqlite::Transaction<'_>,
    rtype: &str,
    record: &Record,
    attribute: &str,
    insert: bool,
) -> Result<(), StoreError> {
    let (doc, members) = split_members(&record.resource, attribute);
    let user_name = text_of(&doc, "userName").map(|s| s.to_lowercase());
    let display = text_of(&doc, "displayName").map(|s| s.to_lowercase());
    let external = text_of(&doc, "externalId");
    let body = Value::Object(doc).to_string();
    if insert {
        tx.execute(
            "INSERT INTO resources (rtype, id, version, user_name_ci, display_name_ci, external_id, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![rtype, record.id, record.version as i64, user_name, display, external, body],
        )
        .map_err(backend)?;
    } else {
        tx.execute(
            "UPDATE resources SET version = ?3, user_name_ci = ?4, display_name_ci = ?5, external_id = ?6, body = ?7 WHERE rtype = ?1 AND id = ?2",
            params![rtype, record.id, record.version as i64, user_name, display, external, body],
        )
        .map_err(backend)?;
        tx.execute(
            "DELETE FROM members WHERE rtype = ?1 AND group_id = ?2",
            params![rtype, record.id],
        )
        .map_err(backend)?;
    }
    let mut insert_member = tx
        .prepare_cached("INSERT OR REPLACE INTO members (rtype, group_id, norm, pos, body) VALUES (?1, ?2, ?3, ?4, ?5)")
        .map_err(backend)?;
    for (pos, m) in members.iter().enumerate() {
        insert_member
            .execute(params![
                rtype,
                record.id,
                member_key(m, pos),
                pos as i64,
                m.to_string()
            ])
            .map_err(backend)?;
    }
    Ok(())
}

fn claim(
    tx: &rusqlite::Transaction<'_>,
    rtype: &str,
    id: &str,
    unique: &[UniqueValue],
) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM uniques WHERE rtype = ?1 AND id = ?2",
        params![rtype, id],
    )
    .map_err(backend)?;
    for u in unique {
        let taken: Option<String> = tx
            .query_row(
                "SELECT id FROM uniques WHERE rtype = ?1 AND attribute = ?2 AND value = ?3",
                params![rtype, u.attribute, u.value],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        if taken.is_some() {
            return Err(StoreError::Conflict(format!(
                "{} {:?} is already in use",
                u.attribute, u.value
            )));
        }
        tx.execute(
            "INSERT INTO uniques (rtype, attribute, value, id) VALUES (?1, ?2, ?3, ?4)",
            params![rtype, u.attribute, u.value, id],
        )
        .map_err(backend)?;
    }
    Ok(())
}

fn current_version(conn: &Connection, rtype: &str, id: &str) -> Result<Option<u64>, StoreError> {
    conn.query_row(
        "SELECT version FROM resources WHERE rtype = ?1 AND id = ?2",
        params![rtype, id],
        |r| r.get::<_, i64>(0),
    )
    .optional()
    .map(|v| v.map(|v| v as u64))
    .map_err(backend)
}

/// Reads one row into a record, with its members unless they are not wanted.
fn load(
    conn: &Connection,
    rtype: &str,
    id: &str,
    version: i64,
    body: &str,
    attribute: &str,
    with_members: bool,
) -> Result<Record, StoreError> {
    let mut resource: Value = serde_json::from_str(body).map_err(backend)?;
    if with_members {
        let mut stmt = conn
            .prepare_cached(
                "SELECT body FROM members WHERE rtype = ?1 AND group_id = ?2 ORDER BY pos",
            )
            .map_err(backend)?;
        let members = stmt
            .query_map(params![rtype, id], |r| r.get::<_, String>(0))
            .map_err(backend)?
            .map(|b| {
                b.map_err(backend)
                    .and_then(|b| serde_json::from_str(&b).map_err(backend))
            })
            .collect::<Result<Vec<Value>, StoreError>>()?;
        if let (false, Value::Object(map)) = (members.is_empty(), &mut resource) {
            map.insert(attribute.to_owned(), Value::Array(members));
        }
    }
    Ok(Record {
        id: id.to_owned(),
        version: version as u64,
        resource,
    })
}

/// An SQL condition for the filters identity providers send: `userName`,
/// `externalId`, `id`, `displayName` `eq`, membership tests on `members.value`,
/// and `and`/`or` of them. `None` for anything else.
fn to_sql(f: &Filter, attribute: &str, args: &mut Vec<String>) -> Option<String> {
    match f {
        Filter::Compare(p, CompareOp::Eq, CompValue::String(v)) if p.sub_attr().is_none() => {
            let (column, value) = match p.name().to_ascii_lowercase().as_str() {
                "username" => ("user_name_ci", v.to_lowercase()),
                "displayname" => ("display_name_ci", v.to_lowercase()),
                "externalid" => ("external_id", v.clone()),
                "id" => ("id", v.clone()),
                _ => return None,
            };
            args.push(value);
            Some(format!("{column} = ?{}", args.len() + 1))
        }
        Filter::Compare(p, CompareOp::Eq, CompValue::String(v))
            if p.name().eq_ignore_ascii_case(attribute)
                && p.sub_attr()
                    .is_some_and(|s| s.eq_ignore_ascii_case("value")) =>
        {
            args.push(norm(v));
            Some(format!(
                "id IN (SELECT group_id FROM members WHERE rtype = ?1 AND norm = ?{})",
                args.len() + 1
            ))
        }
        Filter::ValuePath(p, inner) if p.name().eq_ignore_ascii_case(attribute) => {
            match inner.as_ref() {
                Filter::Compare(v, CompareOp::Eq, CompValue::String(id))
                    if v.name().eq_ignore_ascii_case("value") =>
                {
                    args.push(norm(id));
                    Some(format!(
                        "id IN (SELECT group_id FROM members WHERE rtype = ?1 AND norm = ?{})",
                        args.len() + 1
                    ))
                }
                _ => None,
            }
        }
        Filter::And(parts) | Filter::Or(parts) => {
            let joiner = if matches!(f, Filter::And(_)) {
                " AND "
            } else {
                " OR "
            };
            let sql = parts
                .iter()
                .map(|p| to_sql(p, attribute, args))
                .collect::<Option<Vec<_>>>()?;
            Some(format!("({})", sql.join(joiner)))
        }
        _ => None,
    }
}

/// Whether a filter mentions an attribute (so rows must be loaded with it).
fn mentions(f: &Filter, attribute: &str) -> bool {
    match f {
        Filter::Compare(p, _, _) | Filter::Present(p) => p.name().eq_ignore_ascii_case(attribute),
        Filter::ValuePath(p, _) => p.name().eq_ignore_ascii_case(attribute),
        Filter::And(parts) | Filter::Or(parts) => parts.iter().any(|p| mentions(p, attribute)),
        Filter::Not(inner) => mentions(inner, attribute),
    }
}

impl Store for SqliteStore {
    type Context = ();

    async fn create(
        &self,
        _: &(),
        rtype: &str,
        record: Record,
        unique: &[UniqueValue],
    ) -> Result<Record, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(backend)?;
            if current_version(&tx, rtype, &record.id)?.is_some() {
                return Err(StoreError::Conflict(format!(
                    "id {} is already in use",
                    record.id
                )));
            }
            claim(&tx, rtype, &record.id, unique)?;
            write_row(&tx, rtype, &record, &self.member_attribute, true)?;
            tx.commit().map_err(backend)?;
            Ok(record)
        })
    }

    async fn get(
        &self,
        _: &(),
        rtype: &str,
        id: &str,
        projection: &Projection,
    ) -> Result<Record, StoreError> {
        self.with(|conn| {
            let row: Option<(i64, String)> = conn
                .query_row(
                    "SELECT version, body FROM resources WHERE rtype = ?1 AND id = ?2",
                    params![rtype, id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(backend)?;
            let (version, body) = row.ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
            load(
                conn,
                rtype,
                id,
                version,
                &body,
                &self.member_attribute,
                projection.wants(&self.member_attribute),
            )
        })
    }

    async fn replace(
        &self,
        _: &(),
        rtype: &str,
        record: Record,
        expected: u64,
        unique: &[UniqueValue],
    ) -> Result<Record, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(backend)?;
            match current_version(&tx, rtype, &record.id)? {
                None => return Err(StoreError::NotFound(record.id.clone())),
                Some(v) if v != expected => return Err(StoreError::PreconditionFailed),
                Some(_) => {}
            }
            claim(&tx, rtype, &record.id, unique)?;
            write_row(&tx, rtype, &record, &self.member_attribute, false)?;
            tx.commit().map_err(backend)?;
            Ok(record)
        })
    }

    async fn delete(
        &self,
        _: &(),
        rtype: &str,
        id: &str,
        expected: Option<u64>,
    ) -> Result<(), StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(backend)?;
            match current_version(&tx, rtype, id)? {
                None => return Err(StoreError::NotFound(id.to_owned())),
                Some(v) if expected.is_some_and(|e| e != v) => {
                    return Err(StoreError::PreconditionFailed);
                }
                Some(_) => {}
            }
            for sql in [
                "DELETE FROM resources WHERE rtype = ?1 AND id = ?2",
                "DELETE FROM uniques WHERE rtype = ?1 AND id = ?2",
                "DELETE FROM members WHERE rtype = ?1 AND group_id = ?2",
            ] {
                tx.execute(sql, params![rtype, id]).map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
    }

    async fn list(&self, _: &(), rtype: &str, query: &ListQuery<'_>) -> Result<Page, StoreError> {
        let attribute = self.member_attribute.as_str();
        self.with(|conn| {
            let mut args: Vec<String> = Vec::new();
            let pushed = match (query.filter, query.sort) {
                (None, None) => Some("1 = 1".to_owned()),
                (Some(f), None) => to_sql(f, attribute, &mut args),
                _ => None,
            };
            let with_members = query.projection.wants(attribute);
            if let Some(condition) = pushed {
                let mut all = vec![rtype.to_owned()];
                all.extend(args);
                let total: i64 = conn
                    .query_row(
                        &format!("SELECT COUNT(*) FROM resources WHERE rtype = ?1 AND {condition}"),
                        params_from_iter(all.iter()),
                        |r| r.get(0),
                    )
                    .map_err(backend)?;
                let offset = query.start_index.max(1) - 1;
                let limit = i64::try_from(query.count).unwrap_or(i64::MAX);
                let sql = format!(
                    "SELECT id, version, body FROM resources WHERE rtype = ?1 AND {condition} ORDER BY id LIMIT {limit} OFFSET {offset}"
                );
                let mut stmt = conn.prepare(&sql).map_err(backend)?;
                let rows = stmt
                    .query_map(params_from_iter(all.iter()), |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?)))
                    .map_err(backend)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(backend)?;
                let records = rows
                    .iter()
                    .map(|(id, version, body)| load(conn, rtype, id, *version, body, attribute, with_members))
                    .collect::<Result<Vec<_>, _>>()?;
                return Ok(Page { total_results: total as usize, records });
            }
            // Anything else is evaluated in memory over every row of the type, members
            // loaded only if the filter needs them, then attached to the page alone.
            let filter_needs_members = query.filter.is_some_and(|f| mentions(f, attribute));
            let mut stmt = conn
                .prepare("SELECT id, version, body FROM resources WHERE rtype = ?1 ORDER BY id")
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![rtype], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?)))
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            let records = rows
                .iter()
                .map(|(id, version, body)| load(conn, rtype, id, *version, body, attribute, filter_needs_members))
                .collect::<Result<Vec<_>, _>>()?;
            let mut page = apply_query(records.iter(), query);
            if with_members && !filter_needs_members {
                for r in &mut page.records {
                    let body = r.resource.to_string();
                    *r = load(conn, rtype, &r.id, r.version as i64, &body, attribute, true)?;
                }
            }
            Ok(page)
        })
    }

    async fn update_members(
        &self,
        _: &(),
        rtype: &str,
        id: &str,
        delta: &MemberDelta,
        expected: Option<u64>,
    ) -> Result<Option<u64>, StoreError> {
        if !delta.attribute.eq_ignore_ascii_case(&self.member_attribute) {
            return Ok(None);
        }
        self.with(|conn| {
            let tx = conn.transaction().map_err(backend)?;
            let (version, body): (i64, String) = tx
                .query_row(
                    "SELECT version, body FROM resources WHERE rtype = ?1 AND id = ?2",
                    params![rtype, id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(backend)?
                .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
            if expected.is_some_and(|e| e != version as u64) {
                return Err(StoreError::PreconditionFailed);
            }
            let mut changed = false;
            for change in &delta.changes {
                match change {
                    MemberChange::Add(member) => {
                        let Some(value) = member.get("value").and_then(Value::as_str) else { continue };
                        let key = if delta.case_exact { value.to_owned() } else { norm(value) };
                        let existing: Option<String> = tx
                            .query_row(
                                "SELECT body FROM members WHERE rtype = ?1 AND group_id = ?2 AND norm = ?3",
                                params![rtype, id, key],
                                |r| r.get(0),
                            )
                            .optional()
                            .map_err(backend)?;
                        match existing {
                            Some(old) => {
                                let mut merged: Map<String, Value> = serde_json::from_str(&old).map_err(backend)?;
                                let before = merged.clone();
                                if let Value::Object(new) = member {
                                    merged.extend(new.iter().map(|(k, v)| (k.clone(), v.clone())));
                                }
                                if merged != before {
                                    tx.execute(
                                        "UPDATE members SET body = ?4 WHERE rtype = ?1 AND group_id = ?2 AND norm = ?3",
                                        params![rtype, id, key, Value::Object(merged).to_string()],
                                    )
                                    .map_err(backend)?;
                                    changed = true;
                                }
                            }
                            None => {
                                tx.execute(
                                    "INSERT INTO members (rtype, group_id, norm, pos, body) VALUES (?1, ?2, ?3, (SELECT COALESCE(MAX(pos), 0) + 1 FROM members WHERE rtype = ?1 AND group_id = ?2), ?4)",
                                    params![rtype, id, key, member.to_string()],
                                )
                                .map_err(backend)?;
                                changed = true;
                            }
                        }
                    }
                    MemberChange::Remove(value) => {
                        let n = tx
                            .execute(
                                "DELETE FROM members WHERE rtype = ?1 AND group_id = ?2 AND norm = ?3",
                                params![rtype, id, if delta.case_exact { value.clone() } else { norm(value) }],
                            )
                            .map_err(backend)?;
                        changed |= n > 0;
                    }
                }
            }
            if delta.changes.iter().any(|c| matches!(c, MemberChange::Add(_))) {
                // Dropping the transaction undoes the changes above.
                let count: i64 = tx
                    .query_row(
                        "SELECT COUNT(*) FROM members WHERE rtype = ?1 AND group_id = ?2",
                        params![rtype, id],
                        |r| r.get(0),
                    )
                    .map_err(backend)?;
                if count as u64 > delta.max_members as u64 {
                    return Err(StoreError::Invalid(format!(
                        "'{}' would have {count} values, more than the limit of {} (max_members)",
                        delta.attribute, delta.max_members
                    )));
                }
            }
            let mut doc: Value = serde_json::from_str(&body).map_err(backend)?;
            let mut version = version as u64;
            if changed {
                version += 1;
                let modified = scimkit::store::timestamp(delta.modified);
                if let Some(map) = doc.as_object_mut() {
                    let meta = map.entry("meta").or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(meta) = meta {
                        meta.insert("lastModified".to_owned(), Value::String(modified));
                    }
                }
                tx.execute(
                    "UPDATE resources SET version = ?3, body = ?4 WHERE rtype = ?1 AND id = ?2",
                    params![rtype, id, version as i64, doc.to_string()],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(Some(version))
        })
    }

    async fn existing_ids(
        &self,
        _: &(),
        rtype: &str,
        ids: &[&str],
        case_exact: bool,
    ) -> Result<Option<Vec<String>>, StoreError> {
        // One indexed query per 500 ids; ids in another case (rare: the server makes
        // lower-case ids) take a second query that compares ignoring ASCII case.
        let lookup = |conn: &mut Connection, ids: &[&str], cmp: &str| {
            let mut found = Vec::new();
            for chunk in ids.chunks(500) {
                let marks = vec!["?"; chunk.len()].join(", ");
                let sql =
                    format!("SELECT id FROM resources WHERE rtype = ? AND {cmp} IN ({marks})");
                let mut stmt = conn.prepare(&sql).map_err(backend)?;
                let args = std::iter::once(&rtype as &dyn rusqlite::ToSql)
                    .chain(chunk.iter().map(|id| id as &dyn rusqlite::ToSql));
                let rows = stmt
                    .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(0))
                    .map_err(backend)?;
                for row in rows {
                    found.push(row.map_err(backend)?);
                }
            }
            Ok::<_, StoreError>(found)
        };
        self.with(|conn| {
            let exact: HashSet<String> = lookup(conn, ids, "id")?.into_iter().collect();
            let (mut found, rest): (Vec<&str>, Vec<&str>) =
                ids.iter().partition(|id| exact.contains(**id));
            if !case_exact && !rest.is_empty() {
                let folded: HashSet<String> = lookup(conn, &rest, "id COLLATE NOCASE")?
                    .into_iter()
                    .map(|id| id.to_ascii_lowercase())
                    .collect();
                found.extend(
                    rest.into_iter()
                        .filter(|id| folded.contains(&id.to_ascii_lowercase())),
                );
            }
            Ok(Some(found.into_iter().map(str::to_owned).collect()))
        })
    }

    async fn memberships(
        &self,
        _: &(),
        rtype: &str,
        attribute: &str,
        ids: &[&str],
    ) -> Result<Option<Vec<Membership>>, StoreError> {
        if !attribute.eq_ignore_ascii_case(&self.member_attribute) {
            return Ok(None);
        }
        self.with(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT m.group_id, m.body, r.body FROM members m \
                     JOIN resources r ON r.rtype = m.rtype AND r.id = m.group_id \
                     WHERE m.rtype = ?1 AND m.norm = ?2",
                )
                .map_err(backend)?;
            let mut out = Vec::new();
            for id in ids {
                let rows = stmt
                    .query_map(params![rtype, norm(id)], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                        ))
                    })
                    .map_err(backend)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(backend)?;
                for (group, member, body) in rows {
                    let member: Value = serde_json::from_str(&member).map_err(backend)?;
                    let group_doc: Value = serde_json::from_str(&body).map_err(backend)?;
                    out.push(Membership {
                        group,
                        display_name: group_doc
                            .get("displayName")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                        member: member
                            .get("value")
                            .and_then(Value::as_str)
                            .unwrap_or(id)
                            .to_owned(),
                    });
                }
            }
            Ok(Some(out))
        })
    }
}
