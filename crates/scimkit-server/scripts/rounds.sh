# Sourced by scale.sh and throughput.sh (which need set -o pipefail): wrk rows that
# fail on a failed response, and write throughput against read throughput in
# rounds. Each round runs three wrk rows in turn: the GET of one user, the GET of any
# of the users a Lua file lists (wrk-patch-any.lua), and the PATCH of those same users
# (a change every time). The machine's speed drifts by a fifth within minutes, so each
# ratio compares the rows of one round, and the medians sum the rounds up. A caller
# that defines `checkpoints` (a command that prints a count) has a round in which the
# count moved marked: after a PostgreSQL checkpoint, the first write of each page logs
# the whole page, which costs that round's PATCHes most. With ROUND_PID (the server's
# process id) on Linux, a second table gives each row's CPU: the server process's per
# request, and the share of the machine's CPU left idle (a row that leaves CPU idle
# is held back by something other than CPU: the disk, a thread the requests queue
# for).

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

# The CPU the server process ROUND_PID has used, in clock ticks, and the machine's
# idle and busy ticks since it started ("server idle busy"); zeros where /proc is not.
ticks() {
    local server=0
    if [ -n "${ROUND_PID:-}" ] && [ -r "/proc/$ROUND_PID/stat" ]; then
        # The fields after the process name, which may hold spaces: utime is the 12th.
        server=$(sed 's/.*) //' "/proc/$ROUND_PID/stat" | awk '{print $12 + $13}')
    fi
    echo "$server $(awk '/^cpu / {print $5 + $6, $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat 2>/dev/null || echo 0 0)"
}

# One row of a round: "rate server-ticks idle-ticks busy-ticks".
wrk_row() {
    local before rate after
    before=$(ticks)
    # A failed row stops the caller (set -e does not reach into this substitution).
    rate=$(wrk_rate "$@") || return 1
    after=$(ticks)
    local s0 i0 b0 s1 i1 b1
    read -r s0 i0 b0 <<<"$before"
    read -r s1 i1 b1 <<<"$after"
    echo "$rate $((s1 - s0)) $((i1 - i0)) $((b1 - b0))"
}

# rounds N KEY BASE ID IDS: N rounds against the server at BASE (its SCIM root) with
# API key KEY; ID is the one user, IDS the Lua file of the others. ROUND_DURATION (a
# wrk duration) and ROUND_CONNECTIONS set each row.
rounds() {
    local n=$1 key=$2 base=$3 id=$4 ids=$5 table round before began one read_any patch_any
    table=$(mktemp)
    echo "== throughput in $n rounds, $ROUND_CONNECTIONS connections, $ROUND_DURATION a row"
    for round in $(seq 1 "$n"); do
        before=0
        if declare -F checkpoints >/dev/null; then before=$(checkpoints); fi
        one=$(wrk_row -H "Authorization: Bearer $key" "$base/Users/$id")
        read_any=$(SCIM_TOKEN=$key SCIM_IDS=$ids SCIM_METHOD=GET wrk_row \
            -s crates/scimkit-server/scripts/wrk-patch-any.lua "$base/Users")
        patch_any=$(SCIM_TOKEN=$key SCIM_IDS=$ids wrk_row \
            -s crates/scimkit-server/scripts/wrk-patch-any.lua "$base/Users")
        began=0
        if declare -F checkpoints >/dev/null; then began=$(($(checkpoints) - before)); fi
        echo "$round $one $read_any $patch_any $began" >>"$table"
    done
    python3 - "$table" "$ROUND_DURATION" "$(getconf CLK_TCK 2>/dev/null || echo 100)" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
# The row's length as wrk reads it: a number and a unit (s, m or h).
units = {"s": 1, "m": 60, "h": 3600}
length = sys.argv[2]
seconds = float(length[:-1]) * units[length[-1]] if length[-1] in units else float(length)
tick = 1e6 / float(sys.argv[3])
print("round  GET one user  GET the others  PATCH them  PATCH / GET of them  PATCH / GET of one")
same, one = [], []
for row in rows:
    r, began = row[0], row[-1]
    a, b, c = (float(row[i]) for i in (1, 5, 9))
    same.append(c / b)
    one.append(c / a)
    note = "  (a checkpoint began)" if int(began) > 0 else ""
    print("%5s  %10.0f/s  %12.0f/s  %8.0f/s  %19.2f  %18.2f%s" % (r, a, b, c, c / b, c / a, note))
print("median%58.2f  %18.2f" % (statistics.median(same), statistics.median(one)))
if any(int(row[i]) for row in rows for i in (2, 6, 10)):
    print("CPU by row: the server process's per request (its database's own, on PostgreSQL,")
    print("not counted), and the share of the machine's CPU left idle")
    print("round  GET one user  GET the others  PATCH them  idle: GET one  GET others  PATCH")
    for row in rows:
        cells = []
        for i in (1, 5, 9):
            rate, server = float(row[i]), int(row[i + 1])
            cells.append(server * tick / max(rate * seconds, 1))
        idle = []
        for i in (1, 5, 9):
            free, busy = int(row[i + 2]), int(row[i + 3])
            idle.append(100 * free / max(free + busy, 1))
        print("%5s  %9.0f µs  %11.0f µs  %7.0f µs  %11.0f %%  %8.0f %%  %3.0f %%" % (row[0], *cells, *idle))
PY
    rm -f "$table"
}
