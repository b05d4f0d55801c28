#!/usr/bin/env bash
# The scale benchmark: PostgreSQL with 1,000,000 users, 10,000 groups and one group of
# 1,000,000 members, served by the release scimkit-server; p50/p99 over HTTP of each
# look-up and member change (scale.py), then GET and PATCH throughput in one run
# (wrk): rounds of the GET of one user, the GET of any of 10,000 spread users and the
# PATCH of those users, each ratio within its round, and their medians.
# Not part of `cargo test`: seeding takes about two minutes, the cursor walk one or two.
#   crates/scimkit-server/scripts/scale.sh            # database scimkit_scale_http
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres, a superuser), python3 and wrk.
#
# PostgreSQL is set as for a database that takes many writes; every commit is still
# flushed before it is answered (synchronous_commit = on), so durability is as it was:
# - max_wal_size: at the default 1 GB the PATCH rounds fill it every 10 to 15
#   seconds, and each checkpoint that starts makes the next write of every page log
#   the whole page (PostgreSQL's log: "checkpoints are occurring too frequently",
#   with the hint to raise it). Raised for the run (ALTER SYSTEM and a reload) and
#   put back as it was at the end; SCALE_MAX_WAL_SIZE= (empty) leaves it alone.
# - wal_compression, in the benchmark's database only: lz4 (pglz where PostgreSQL
#   has no lz4), so that the pages logged whole take about half the WAL;
#   SCALE_WAL_COMPRESSION=off leaves it off.
# The settings in force are printed first.
set -euo pipefail
cd "$(dirname "$0")/../../.."
name=${SCALE_DB:-scimkit_scale_http}
db="postgres://postgres@127.0.0.1:5432/$name"
admin() { psql -q -X -h 127.0.0.1 -U postgres -d test -At "$@"; }
pid='' log='' ids='' restore=''
cleanup() {
    if [ -n "$pid" ]; then kill -INT "$pid" 2>/dev/null || true; wait 2>/dev/null || true; fi
    rm -f "$log" "$ids"
    if [ -n "$restore" ]; then admin -c "$restore" -c "SELECT pg_reload_conf()" >/dev/null; fi
}
trap cleanup EXIT
max_wal=${SCALE_MAX_WAL_SIZE-16GB}
if [ -n "$max_wal" ]; then
    # What ALTER SYSTEM set before, if anything, is what goes back.
    before=$(admin -c "SELECT setting FROM pg_file_settings WHERE name = 'max_wal_size' \
        AND sourcefile LIKE '%postgresql.auto.conf' ORDER BY seqno DESC LIMIT 1")
    if [ -n "$before" ]; then
        restore="ALTER SYSTEM SET max_wal_size = '$before'"
    else
        restore="ALTER SYSTEM RESET max_wal_size"
    fi
    admin -c "ALTER SYSTEM SET max_wal_size = '$max_wal'" -c "SELECT pg_reload_conf()" >/dev/null
fi
admin -c "DROP DATABASE IF EXISTS $name WITH (FORCE)"
admin -c "CREATE DATABASE $name"
compression=${SCALE_WAL_COMPRESSION-lz4}
if [ "$compression" != off ]; then
    admin -c "ALTER DATABASE $name SET wal_compression = $compression" 2>/dev/null \
        || admin -c "ALTER DATABASE $name SET wal_compression = pglz"
fi
sleep 1   # the reload reaches every process
psql -X -h 127.0.0.1 -U postgres -d "$name" -c "SELECT name, setting, unit FROM pg_settings \
    WHERE name IN ('shared_buffers', 'max_wal_size', 'checkpoint_timeout', 'wal_compression', \
    'synchronous_commit', 'fsync', 'full_page_writes') ORDER BY name"
cargo build --quiet --release -p scimkit-server
server=./target/release/scimkit-server
key=$("$server" --db "$db" keys create --label scale 2>/dev/null)   # also migrates
time psql -q -h 127.0.0.1 -U postgres -d "$name" -f crates/scimkit-server/scripts/seed-scale.sql
# The seed writes gigabytes: the checkpoint it leads to is its own, not the requests'.
psql -q -h 127.0.0.1 -U postgres -d "$name" -c CHECKPOINT
log=$(mktemp)
"$server" --db "$db" --listen 127.0.0.1:0 --log-level warn >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
    base=$(sed -n 's/^listening on //p' "$log" | head -n 1)
    [ -n "$base" ] && break
    sleep 0.1
done
python3 crates/scimkit-server/scripts/scale.py "$base" "$key" "${REQUESTS:-200}"
id=00000000-0000-4000-8000-000000500000
# 10,000 users spread over the million, for the PATCHes of any user.
ids=$(mktemp)
python3 -c 'import random, sys
random.seed(7)
picked = random.sample(range(1, 1000001), 10000)
sys.stdout.write("return {" + ",".join("\"00000000-0000-4000-8000-%012d\"" % n for n in picked) + "}\n")' >"$ids"
# The rounds of rounds.sh; a round in which a checkpoint began is marked.
checkpoints() {
    psql -q -X -h 127.0.0.1 -U postgres -d "$name" -At \
        -c "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter" 2>/dev/null \
        || psql -q -X -h 127.0.0.1 -U postgres -d "$name" -At \
            -c "SELECT num_timed + num_requested FROM pg_stat_checkpointer"
}
. crates/scimkit-server/scripts/rounds.sh
ROUND_DURATION=10s ROUND_CONNECTIONS=32 ROUND_PID=$pid
rounds "${SCALE_ROUNDS:-5}" "$key" "$base" "$id" "$ids"
# Assigned first: a failed row stops the script (set -e does not see into an echo).
one_user=$(SCIM_TOKEN=$key wrk_rate -s .ci/wrk-patch.lua "$base/Users/$id")
echo "PATCH /Users/{id}, all 32 connections on one user (a change every time): ${one_user}/s"
