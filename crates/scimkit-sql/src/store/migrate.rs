//! The stores' tables, created and upgraded by versioned migrations applied at
//! start: in one transaction, under a lock, so that two instances starting together
//! apply each migration once.

use scimkit::store::StoreError;

use super::{Pool, backend, begin_immediate};

/// One migration: its version, what it does, and its SQL per dialect.
struct Migration {
    version: i64,
    description: &'static str,
    postgres: &'static str,
    sqlite: &'static str,
}

/// Every migration, oldest first. Never edit one that has shipped: add another.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "resources, unique values and group members",
        postgres: "
        CREATE TABLE scim_resources (
            tenant text NOT NULL,
            resource_type text NOT NULL,
            id text NOT NULL,
            id_key text NOT NULL,
            version bigint NOT NULL,
            member_count bigint NOT NULL DEFAULT 0,
            next_position bigint NOT NULL DEFAULT 1,
            resource jsonb NOT NULL,
            cmp jsonb NOT NULL,
            PRIMARY KEY (tenant, resource_type, id)
        );
        CREATE INDEX scim_resources_id_key ON scim_resources (id_key, tenant, resource_type);
        -- fastupdate off: entries go into the index at once, not into a pending list
        -- that every search would scan until the next vacuum.
        CREATE INDEX scim_resources_cmp ON scim_resources USING gin (cmp jsonb_path_ops)
            WITH (fastupdate = off);
        CREATE INDEX scim_resources_user_name
            ON scim_resources (((cmp #>> '{userName}') COLLATE \"C\"), tenant, resource_type);
        CREATE TABLE scim_unique (
            tenant text NOT NULL,
            resource_type text NOT NULL,
            attribute text NOT NULL,
            value text NOT NULL,
            id text NOT NULL,
            PRIMARY KEY (tenant, resource_type, attribute, value)
        );
        CREATE INDEX scim_unique_owner ON scim_unique (tenant, resource_type, id);
        CREATE TABLE scim_members (
            tenant text NOT NULL,
            resource_type text NOT NULL,
            group_id text NOT NULL,
            value_key text NOT NULL,
            value text NOT NULL,
            position bigint NOT NULL,
            member jsonb NOT NULL,
            PRIMARY KEY (tenant, resource_type, group_id, value_key)
        );
        CREATE INDEX scim_members_order ON scim_members (tenant, resource_type, group_id, position);
        CREATE INDEX scim_members_value ON scim_members (tenant, value_key);
    ",
        sqlite: "
        CREATE TABLE scim_resources (
            tenant TEXT NOT NULL,
            resource_type TEXT NOT NULL,
            id TEXT NOT NULL,
            id_key TEXT NOT NULL,
            version INTEGER NOT NULL,
            member_count INTEGER NOT NULL DEFAULT 0,
            next_position INTEGER NOT NULL DEFAULT 1,
            resource TEXT NOT NULL,
            cmp TEXT NOT NULL,
            PRIMARY KEY (tenant, resource_type, id)
        ) WITHOUT ROWID;
        CREATE INDEX scim_resources_id_key ON scim_resources (tenant, resource_type, id_key);
        -- The single-valued attributes identity providers look resources up by.
        CREATE INDEX scim_resources_user_name
            ON scim_resources (tenant, resource_type, json_extract(cmp, '$.\"userName\"'));
        CREATE INDEX scim_resources_external_id
            ON scim_resources (tenant, resource_type, json_extract(cmp, '$.\"externalId\"'));
        CREATE INDEX scim_resources_display_name
            ON scim_resources (tenant, resource_type, json_extract(cmp, '$.\"displayName\"'));
        CREATE INDEX scim_resources_cmp_id
            ON scim_resources (tenant, resource_type, json_extract(cmp, '$.\"id\"'));
        CREATE TABLE scim_unique (
            tenant TEXT NOT NULL,
            resource_type TEXT NOT NULL,
            attribute TEXT NOT NULL,
            value TEXT NOT NULL,
            id TEXT NOT NULL,
            PRIMARY KEY (tenant, resource_type, attribute, value)
        ) WITHOUT ROWID;
        CREATE INDEX scim_unique_owner ON scim_unique (tenant, resource_type, id);
        CREATE TABLE scim_members (
            tenant TEXT NOT NULL,
            resource_type TEXT NOT NULL,
            group_id TEXT NOT NULL,
            value_key TEXT NOT NULL,
            value TEXT NOT NULL,
            position INTEGER NOT NULL,
            member TEXT NOT NULL,
            PRIMARY KEY (tenant, resource_type, group_id, value_key)
        ) WITHOUT ROWID;
        CREATE INDEX scim_members_order ON scim_members (tenant, resource_type, group_id, position);
        CREATE INDEX scim_members_value ON scim_members (tenant, value_key);
        -- Until ANALYZE has measured real data, SQLite's planner guesses; these
        -- figures (SQLite's documented way to steer it) describe a large database,
        -- so that look-ups by userName, id and member use their indexes from the
        -- first request. A later ANALYZE replaces them with measured ones.
        ANALYZE sqlite_schema;
        DELETE FROM sqlite_stat1 WHERE tbl IN ('scim_resources', 'scim_members', 'scim_unique');
        INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
            ('scim_resources', 'sqlite_autoindex_scim_resources_1', '1000000 100000 50000 1'),
            ('scim_resources', 'scim_resources_id_key', '1000000 100000 50000 1'),
            ('scim_resources', 'scim_resources_user_name', '1000000 100000 50000 1'),
            ('scim_resources', 'scim_resources_external_id', '1000000 100000 50000 1'),
            ('scim_resources', 'scim_resources_display_name', '1000000 100000 50000 1'),
            ('scim_resources', 'scim_resources_cmp_id', '1000000 100000 50000 1'),
            ('scim_unique', 'sqlite_autoindex_scim_unique_1', '1000000 100000 50000 50000 1'),
            ('scim_unique', 'scim_unique_owner', '1000000 100000 50000 1'),
            ('scim_members', 'sqlite_autoindex_scim_members_1', '10000000 1000000 500000 1000 1'),
            ('scim_members', 'scim_members_order', '10000000 1000000 500000 1000 1'),
            ('scim_members', 'scim_members_value', '10000000 1000000 10');
        ANALYZE sqlite_schema;
    ",
    },
    Migration {
        version: 2,
        description: "API keys; an index for lists in id order",
        postgres: "
        CREATE TABLE scim_api_keys (
            id text PRIMARY KEY,
            tenant text NOT NULL,
            label text NOT NULL,
            hash text NOT NULL UNIQUE,
            created text NOT NULL,
            last_used text,
            revoked text
        );
        -- Lists in the default order, and cursor pages (id > the last one), walk this.
        CREATE INDEX scim_resources_order
            ON scim_resources (tenant, resource_type, id COLLATE \"C\");
    ",
        sqlite: "
        CREATE TABLE scim_api_keys (
            id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            label TEXT NOT NULL,
            hash TEXT NOT NULL UNIQUE,
            created TEXT NOT NULL,
            last_used TEXT,
            revoked TEXT
        );
    ",
    },
    Migration {
        version: 3,
        description: "the event outbox, its consumers and their dead letters",
        postgres: "
        -- One row per event, written in the transaction of the change it reports.
        -- Sequences come from scim_event_head, whose row every writer of events
        -- locks last, just before it commits: sequence order is commit order.
        CREATE TABLE scim_events (
            sequence bigint PRIMARY KEY,
            tenant text NOT NULL,
            event_id text NOT NULL,
            time_ms bigint NOT NULL,
            event jsonb NOT NULL
        );
        CREATE TABLE scim_event_head (
            only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
            last bigint NOT NULL
        );
        INSERT INTO scim_event_head (only_row, last) VALUES (true, 0);
        CREATE TABLE scim_event_consumers (
            name text PRIMARY KEY,
            acknowledged bigint NOT NULL DEFAULT 0,
            lease_owner text,
            lease_until_ms bigint
        );
        -- Events a consumer gave up on, kept with the reason.
        CREATE TABLE scim_event_dead_letters (
            consumer text NOT NULL,
            sequence bigint NOT NULL,
            tenant text NOT NULL,
            event jsonb NOT NULL,
            attempts bigint NOT NULL,
            last_error text NOT NULL,
            failed_ms bigint NOT NULL,
            PRIMARY KEY (consumer, sequence)
        );
    ",
        sqlite: "
        CREATE TABLE scim_events (
            sequence INTEGER PRIMARY KEY,
            tenant TEXT NOT NULL,
            event_id TEXT NOT NULL,
            time_ms INTEGER NOT NULL,
            event TEXT NOT NULL
        );
        CREATE TABLE scim_event_head (
            only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
            last INTEGER NOT NULL
        );
        INSERT INTO scim_event_head (only_row, last) VALUES (1, 0);
        CREATE TABLE scim_event_consumers (
            name TEXT PRIMARY KEY,
            acknowledged INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_until_ms INTEGER
        );
        CREATE TABLE scim_event_dead_letters (
            consumer TEXT NOT NULL,
            sequence INTEGER NOT NULL,
            tenant TEXT NOT NULL,
            event TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            last_error TEXT NOT NULL,
            failed_ms INTEGER NOT NULL,
            PRIMARY KEY (consumer, sequence)
        );
    ",
    },
    Migration {
        version: 4,
        description: "events numbered by their readers on PostgreSQL, not by their writers",
        postgres: "
        -- Writers no longer lock scim_event_head: each event is written under a
        -- negative placeholder (minus a number from this sequence, in write order),
        -- and readers number the committed ones, in that order, holding the head
        -- row. Writes of different resources no longer wait for each other's commits.
        CREATE SEQUENCE scim_event_pending;
    ",
        // SQLite writes one transaction at a time: its writers go on numbering.
        sqlite: "SELECT 1;",
    },
    Migration {
        version: 5,
        description: "SQLite: key columns for the attributes resources are looked up by",
        // PostgreSQL writes a new entry in every index for each new row version
        // anyway: its expression indexes stay.
        postgres: "SELECT 1;",
        // The expression indexes on the comparison document were rewritten by every
        // write, since every write changes the document (meta.lastModified at
        // least). Each attribute now has a column of its own (no type: the value
        // as json_extract gives it), which the store writes on INSERT and these
        // triggers keep in step when the document changes; an index on a column
        // is rewritten only when that column is.
        sqlite: "
        ALTER TABLE scim_resources ADD COLUMN k_user_name;
        ALTER TABLE scim_resources ADD COLUMN k_external_id;
        ALTER TABLE scim_resources ADD COLUMN k_display_name;
        ALTER TABLE scim_resources ADD COLUMN k_id;
        UPDATE scim_resources SET
            k_user_name = json_extract(cmp, '$.\"userName\"'),
            k_external_id = json_extract(cmp, '$.\"externalId\"'),
            k_display_name = json_extract(cmp, '$.\"displayName\"'),
            k_id = json_extract(cmp, '$.\"id\"');
        DROP INDEX scim_resources_user_name;
        DROP INDEX scim_resources_external_id;
        DROP INDEX scim_resources_display_name;
        DROP INDEX scim_resources_cmp_id;
        CREATE INDEX scim_resources_user_name ON scim_resources (tenant, resource_type, k_user_name);
        CREATE INDEX scim_resources_external_id ON scim_resources (tenant, resource_type, k_external_id);
        CREATE INDEX scim_resources_display_name ON scim_resources (tenant, resource_type, k_display_name);
        CREATE INDEX scim_resources_cmp_id ON scim_resources (tenant, resource_type, k_id);
        -- A row inserted without them (by an older binary on the same file, a bulk
        -- load) gets them at once; the store's own INSERT sets them, and this does
        -- nothing.
        CREATE TRIGGER scim_resources_k_insert AFTER INSERT ON scim_resources
            WHEN NEW.k_user_name IS NOT json_extract(NEW.cmp, '$.\"userName\"')
                OR NEW.k_external_id IS NOT json_extract(NEW.cmp, '$.\"externalId\"')
                OR NEW.k_display_name IS NOT json_extract(NEW.cmp, '$.\"displayName\"')
                OR NEW.k_id IS NOT json_extract(NEW.cmp, '$.\"id\"')
        BEGIN
            UPDATE scim_resources SET
                k_user_name = json_extract(NEW.cmp, '$.\"userName\"'),
                k_external_id = json_extract(NEW.cmp, '$.\"externalId\"'),
                k_display_name = json_extract(NEW.cmp, '$.\"displayName\"'),
                k_id = json_extract(NEW.cmp, '$.\"id\"')
            WHERE tenant = NEW.tenant AND resource_type = NEW.resource_type AND id = NEW.id;
        END;
        -- One trigger a column, so that a write rewrites only the indexes of the
        -- attributes it changes.
        CREATE TRIGGER scim_resources_k_user_name AFTER UPDATE OF cmp ON scim_resources
            WHEN NEW.k_user_name IS NOT json_extract(NEW.cmp, '$.\"userName\"')
        BEGIN
            UPDATE scim_resources SET k_user_name = json_extract(NEW.cmp, '$.\"userName\"')
            WHERE tenant = NEW.tenant AND resource_type = NEW.resource_type AND id = NEW.id;
        END;
        CREATE TRIGGER scim_resources_k_external_id AFTER UPDATE OF cmp ON scim_resources
            WHEN NEW.k_external_id IS NOT json_extract(NEW.cmp, '$.\"externalId\"')
        BEGIN
            UPDATE scim_resources SET k_external_id = json_extract(NEW.cmp, '$.\"externalId\"')
            WHERE tenant = NEW.tenant AND resource_type = NEW.resource_type AND id = NEW.id;
        END;
        CREATE TRIGGER scim_resources_k_display_name AFTER UPDATE OF cmp ON scim_resources
            WHEN NEW.k_display_name IS NOT json_extract(NEW.cmp, '$.\"displayName\"')
        BEGIN
            UPDATE scim_resources SET k_display_name = json_extract(NEW.cmp, '$.\"displayName\"')
            WHERE tenant = NEW.tenant AND resource_type = NEW.resource_type AND id = NEW.id;
        END;
        CREATE TRIGGER scim_resources_k_id AFTER UPDATE OF cmp ON scim_resources
            WHEN NEW.k_id IS NOT json_extract(NEW.cmp, '$.\"id\"')
        BEGIN
            UPDATE scim_resources SET k_id = json_extract(NEW.cmp, '$.\"id\"')
            WHERE tenant = NEW.tenant AND resource_type = NEW.resource_type AND id = NEW.id;
        END;
        DELETE FROM sqlite_stat1 WHERE idx IN ('scim_resources_user_name', 'scim_resources_external_id', 'scim_resources_display_name', 'scim_resources_cmp_id');
        INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
            ('scim_resources', 'scim_resources_user_name', '1000000 100000 50000 1'),
            ('scim_resources', 'scim_resources_external_id', '1000000 100000 50000 1'),
            ('scim_resources', 'scim_resources_display_name', '1000000 100000 50000 1'),
            ('scim_resources', 'scim_resources_cmp_id', '1000000 100000 50000 1');
        ANALYZE sqlite_schema;
    ",
    },
    Migration {
        version: 6,
        description: "PostgreSQL: ids in byte order in the primary key",
        // A look-up by id (`tenant = $1 AND resource_type = $2 AND id = $3`) could
        // be planned on scim_resources_order, whose ids compare in byte order
        // ("C") and so cannot take `id = $3` as a key: a scan of the tenant,
        // filtered, until ANALYZE had measured the table. The primary key now
        // orders ids in byte order itself (equality is the same in every
        // deterministic collation), so one index answers look-ups, lists in id
        // order and cursor pages; the columns ids are joined with follow. Both
        // tables are locked while their keys are rebuilt (once, at start).
        postgres: "
        DROP INDEX scim_resources_order;
        ALTER TABLE scim_resources ALTER COLUMN id TYPE text COLLATE \"C\";
        ALTER TABLE scim_members ALTER COLUMN group_id TYPE text COLLATE \"C\";
    ",
        // SQLite compares text in byte order (BINARY) already.
        sqlite: "SELECT 1;",
    },
    Migration {
        version: 7,
        description: "PostgreSQL: the comparison documents' index takes new entries in a short list",
        // Each write of a resource puts a new row version into the GIN index over
        // its comparison document: one entry per value (about fifteen for a user),
        // each into its own place in the index. With fastupdate a write appends
        // them to the index's pending list in one go, and the list is merged into
        // the index in sorted batches once it passes 512 kB (by the write that
        // fills it, or by vacuum): a searched filter reads at most that much more.
        // At a million users this took a PATCH from 19 to 13 WAL records. Setting
        // the options rebuilds nothing, but takes the index's lock until the
        // migration commits: it waits for statements using the index to end.
        postgres: "
        ALTER INDEX scim_resources_cmp SET (fastupdate = on, gin_pending_list_limit = 512);
    ",
        sqlite: "SELECT 1;",
    },
    Migration {
        version: 8,
        description: "PostgreSQL: the index of id keys holds only the keys that differ from their id",
        // Each write of a resource is a new row version, with an entry in every
        // index: the index of id keys (ids folded to lower case, for members that
        // name resources ignoring case) cost each write a page of its own, at a
        // place of its own. The ids the service makes are lower case already, and
        // their key is the id: a look-up by key finds those in the primary key
        // (`id = key`) and the others, few or none, in this index. Building it
        // reads the table once, at start, while writes to it wait.
        postgres: "
        DROP INDEX scim_resources_id_key;
        CREATE INDEX scim_resources_id_key ON scim_resources (tenant, resource_type, id_key)
            WHERE id_key <> id COLLATE \"C\";
    ",
        // SQLite rewrites an index entry only when its columns change.
        sqlite: "SELECT 1;",
    },
    Migration {
        version: 9,
        description: "PostgreSQL: the comparison documents' index leaves out id, userName and meta",
        // Every write of a resource inserts its new row version into the GIN
        // index once per value of its comparison document (about fifteen for a
        // user), and after each checkpoint the first write to each index page logs
        // the whole page. The values of `id` and `userName` are unique, so each
        // sits on an index page of its own, while their equality is answered by
        // btree indexes already (the primary key, and the expression index on
        // userName); `meta` holds times, compared by ranges, which the index
        // cannot answer, and `meta.lastModified` is new at every write. Without
        // them a PATCH of a user at a million users wrote about a fifth less WAL.
        // The store writes containment on the same expression
        // (`Translator::with_containment_on`). Building the index reads the table
        // once, at start, while writes to it wait.
        postgres: "
        DROP INDEX scim_resources_cmp;
        CREATE INDEX scim_resources_cmp ON scim_resources
            USING gin ((cmp - '{id,userName,meta}'::text[]) jsonb_path_ops)
            WITH (fastupdate = on, gin_pending_list_limit = 512);
    ",
        sqlite: "SELECT 1;",
    },
    Migration {
        version: 10,
        description: "SQLite: the index of externalId keys holds only the resources that have one",
        postgres: "SELECT 1;",
        // SQLite's planner estimates a look-up by an index from the average number
        // of rows a key matches (`sqlite_stat1`), which counts the resources without
        // an externalId as one key: where most users lack one, it estimates
        // `externalId eq "…"` to match about as many rows as the whole type, and
        // scans the tenant in id order instead. The store keeps no samples of single
        // values (`sqlite_stat4`, see `SqlStore::analyze`) that would correct it, so
        // the index leaves those resources out and averages over the values that
        // exist; `k_external_id = ?` implies `IS NOT NULL`, so look-ups use it.
        // Building it reads the table once, at start, while writes to it wait.
        sqlite: "
        DROP INDEX scim_resources_external_id;
        CREATE INDEX scim_resources_external_id ON scim_resources (tenant, resource_type, k_external_id)
            WHERE k_external_id IS NOT NULL;
        DELETE FROM sqlite_stat1 WHERE idx = 'scim_resources_external_id';
        INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
            ('scim_resources', 'scim_resources_external_id', '1000000 100000 50000 1');
        ANALYZE sqlite_schema;
    ",
    },
];

/// The bookkeeping table.
const LEDGER_POSTGRES: &str = "CREATE TABLE IF NOT EXISTS scim_migrations (
    version bigint PRIMARY KEY, description text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now())";
const LEDGER_SQLITE: &str = "CREATE TABLE IF NOT EXISTS scim_migrations (
    version INTEGER PRIMARY KEY, description TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))";

/// An arbitrary constant naming scimkit's migration lock among PostgreSQL's
/// advisory locks.
const LOCK: i64 = 0x5c1_4c17_0001;

/// Applies the migrations the database has not seen, oldest first, each recorded in
/// `scim_migrations`; returns how many were applied.
pub(super) async fn migrate(pool: &Pool) -> Result<usize, StoreError> {
    match pool {
        Pool::Postgres(pool) => {
            let mut tx = pool.begin().await.map_err(backend)?;
            // Instances starting together wait here, then see what the first did.
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(LOCK)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            sqlx::raw_sql(LEDGER_POSTGRES)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            let done: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM scim_migrations")
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
            let mut applied = 0;
            for m in MIGRATIONS.iter().filter(|m| m.version > done.unwrap_or(0)) {
                sqlx::raw_sql(m.postgres)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                sqlx::query("INSERT INTO scim_migrations (version, description) VALUES ($1, $2)")
                    .bind(m.version)
                    .bind(m.description)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                applied += 1;
            }
            tx.commit().await.map_err(backend)?;
            Ok(applied)
        }
        Pool::Sqlite(pool) => {
            // The write lock, taken up front, is the migration lock.
            let mut tx = begin_immediate(pool).await?;
            sqlx::raw_sql(LEDGER_SQLITE)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            let done: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM scim_migrations")
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
            let mut applied = 0;
            for m in MIGRATIONS.iter().filter(|m| m.version > done.unwrap_or(0)) {
                sqlx::raw_sql(m.sqlite)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                sqlx::query("INSERT INTO scim_migrations (version, description) VALUES (?1, ?2)")
                    .bind(m.version)
                    .bind(m.description)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                applied += 1;
            }
            tx.commit().await.map_err(backend)?;
            Ok(applied)
        }
    }
}
