# Sourced by scale.sh and throughput.sh (which need set -o pipefail): wrk rows that
# fail on a failed response, and write throughput against read throughput in
# rounds. Each round runs three wrk rows in turn: the GET of one user, the GET of any
# of the users a Lua file lists (wrk-patch-any.lua), and the PATCH of those same users
# (a change every time). The machine's speed drifts by a fifth within minutes, so each
# ratio compares the rows of one round, and the medians sum the rounds up. A caller
# that defines `checkpoints` (a command that prints a count) has a round in which the
# count moved marked: after a PostgreSQL checkpoint, the first write of each page logs
# the whole page, which costs that round's PATCHes most.

# wrk's output for one row; stops the script when a response failed (a failed
# request is not throughput).
wrk_checked() {
    local out
    out=$(wrk "$@")
    if grep -q "Non-2xx" <<<"$out"; then
        echo "$out" >&2
        echo "wrk: requests failed; a failed request is not throughput" >&2
        exit 1
    fi
    printf '%s\n' "$out"
}

# The requests per second of one row of a round.
wrk_rate() {
    wrk_checked -t2 -c"$ROUND_CONNECTIONS" -d"$ROUND_DURATION" "$@" \
        | awk '/Requests\/sec/ {print $2}'
}

# rounds N KEY BASE ID IDS: N rounds against the server at BASE (its SCIM root) with
# API key KEY; ID is the one user, IDS the Lua file of the others. ROUND_DURATION (a
# wrk duration) and ROUND_CONNECTIONS set each row.
rounds() {
    local n=$1 key=$2 base=$3 id=$4 ids=$5 table round before one read_any patch_any
    table=$(mktemp)
    echo "== throughput in $n rounds, $ROUND_CONNECTIONS connections, $ROUND_DURATION a row"
    for round in $(seq 1 "$n"); do
        before=0
        if declare -F checkpoints >/dev/null; then before=$(checkpoints); fi
        one=$(wrk_rate -H "Authorization: Bearer $key" "$base/Users/$id")
        read_any=$(SCIM_TOKEN=$key SCIM_IDS=$ids SCIM_METHOD=GET wrk_rate \
            -s crates/scimkit-server/scripts/wrk-patch-any.lua "$base/Users")
        patch_any=$(SCIM_TOKEN=$key SCIM_IDS=$ids wrk_rate \
            -s crates/scimkit-server/scripts/wrk-patch-any.lua "$base/Users")
        local began=0
        if declare -F checkpoints >/dev/null; then began=$(($(checkpoints) - before)); fi
        echo "$round $one $read_any $patch_any $began" >>"$table"
    done
    python3 - "$table" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
print("round  GET one user  GET the others  PATCH them  PATCH / GET of them  PATCH / GET of one")
same, one = [], []
for r, a, b, c, began in rows:
    a, b, c = float(a), float(b), float(c)
    same.append(c / b)
    one.append(c / a)
    note = "  (a checkpoint began)" if int(began) > 0 else ""
    print("%5s  %10.0f/s  %12.0f/s  %8.0f/s  %19.2f  %18.2f%s" % (r, a, b, c, c / b, c / a, note))
print("median%58.2f  %18.2f" % (statistics.median(same), statistics.median(one)))
PY
    rm -f "$table"
}
