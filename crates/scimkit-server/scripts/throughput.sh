#!/usr/bin/env bash
# Throughput of the release server on loopback with wrk: GET by id (one user, and any
# of the 1,000 as the PATCHes below go through them), GET by a userName filter, and
# PATCHes that change a user every time (one user, which its writers contend for, and
# any of the 1,000), in one run on one database; then the write/read ratios, in rounds
# of the GET of one user, the GET of any of the 1,000 and the PATCH of any (rounds.sh).
#   crates/scimkit-server/scripts/throughput.sh                 # SQLite in a temp file
#   crates/scimkit-server/scripts/throughput.sh postgres://postgres@127.0.0.1/bench
# Needs wrk (apt-get install wrk) and python3. DURATION=20s and CONNECTIONS=32 by
# default; ROUNDS=5 rounds of ROUND_DURATION=10s rows.
set -euo pipefail
cd "$(dirname "$0")/../../.."
work=$(mktemp -d)
db=${1:-$work/bench.db}
duration=${DURATION:-20s}
connections=${CONNECTIONS:-32}
pid=""
trap '[ -n "$pid" ] && kill -INT "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

cargo build --quiet --release -p scimkit-server
server=./target/release/scimkit-server
key=$("$server" --db "$db" keys create --label bench 2>/dev/null)
"$server" --db "$db" --listen 127.0.0.1:0 --log-level warn >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
    base=$(sed -n 's/^listening on //p' "$work/server.log" | head -n 1)
    [ -n "$base" ] && break
    sleep 0.1
done

id=$(python3 - "$base" "$key" "$work/ids.lua" <<'PY'
import json, sys, urllib.request
base, key, ids = sys.argv[1], sys.argv[2], sys.argv[3]
last = None
every = []
for i in range(1, 1001):
    body = json.dumps({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                       "userName": f"user{i}", "displayName": f"User {i}"}).encode()
    req = urllib.request.Request(base + "/Users", data=body, method="POST", headers={
        "Authorization": "Bearer " + key, "Content-Type": "application/scim+json"})
    with urllib.request.urlopen(req) as r:
        created = json.load(r)
    every.append(created["id"])
    if i == 500:
        last = created["id"]
with open(ids, "w") as f:
    f.write("return {" + ",".join('"%s"' % i for i in every) + "}\n")
print(last)
PY
)

# As after any bulk import: the planner's statistics describe the 1,000 users (on a
# PostgreSQL whose autovacuum is off, nothing else would measure them).
"$server" --db "$db" analyze 2>/dev/null

. crates/scimkit-server/scripts/rounds.sh
run() {
    echo "== $1"
    shift
    local out
    out=$(wrk_checked -t2 -c"$connections" -d"$duration" --latency "$@")
    echo "$out" | grep -E "Requests/sec|^ +50%|^ +99%"
}
run "GET /Users/{id}" -H "Authorization: Bearer $key" "$base/Users/$id"
run "GET /Users?filter=userName eq" -H "Authorization: Bearer $key" "$base/Users?filter=userName+eq+%22user42%22"
# The like-for-like read of the PATCHes below: the same users in the same order, and
# wrk building each request in Lua as it does theirs.
SCIM_TOKEN=$key SCIM_IDS=$work/ids.lua SCIM_METHOD=GET run "GET /Users/{id}, any of the 1,000" \
    -s crates/scimkit-server/scripts/wrk-patch-any.lua "$base/Users"
SCIM_TOKEN=$key run "PATCH /Users/{id}, one user (a change every time)" -s .ci/wrk-patch.lua "$base/Users/$id"
SCIM_TOKEN=$key SCIM_IDS=$work/ids.lua run "PATCH /Users/{id}, any of the 1,000 (a change every time)" \
    -s crates/scimkit-server/scripts/wrk-patch-any.lua "$base/Users"
ROUND_DURATION=${ROUND_DURATION:-10s} ROUND_CONNECTIONS=$connections ROUND_PID=$pid
rounds "${ROUNDS:-5}" "$key" "$base" "$id" "$work/ids.lua"
