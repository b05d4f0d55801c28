"""Webhook load run: a steady rate of writes (PATCHes that change a user, or user
creations) for a while against a
scimkit-server whose --webhook points at a receiver on loopback; reports the
writes achieved, the delivery lag (commit to receipt) and whether the outbox was
pruned. Not part of `cargo test`.

Usage:
  cargo build --release -p scimkit-server
  python3 webhook-load.py [--db DB] [--rate 1000] [--seconds 60] [--retention 10]

DB is a SQLite path (a fresh temporary file by default), :memory: (no durable
commits: what the consumer sustains when the disk is not the limit) or a
postgres:// URL of an empty database."""
import argparse
import base64
import hashlib
import hmac
import http.client
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BINARY = os.path.join(ROOT, "target", "release", "scimkit-server")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KEY = base64.b64decode(SECRET[len("whsec_"):])

args = argparse.ArgumentParser()
args.add_argument("--db")
args.add_argument("--rate", type=int, default=1000)
args.add_argument("--seconds", type=int, default=60)
args.add_argument("--retention", type=int, default=10)
args.add_argument("--connections", type=int, default=16)
args.add_argument("--wrk", action="store_true",
                  help="send the PATCHes with wrk (paced by a delay per connection) instead of Python processes")
args.add_argument("--delay-share", type=float, default=0.6,
                  help="with --wrk: the part of each connection's time between requests spent waiting")
args.add_argument("--no-webhook", action="store_true", help="the same writes without a webhook, for comparison")
args.add_argument("--write", choices=["patch", "create"], default="patch",
                  help="patch: replace the nickName of one of 1,000 users (each write an event); create: new users")
opts = args.parse_args()
db = opts.db or os.path.join(tempfile.mkdtemp(), "load.db")

lags = {}
forged = [0]
lock = threading.Lock()


class Hook(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        received = time.time()
        msg_id, ts = self.headers["webhook-id"], self.headers["webhook-timestamp"]
        mac = hmac.new(KEY, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
        ok = ("v1," + base64.b64encode(mac).decode()) in self.headers["webhook-signature"].split(" ")
        event = json.loads(body)["scimkit"]
        committed = datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()
        with lock:
            if not ok:
                forged[0] += 1
            lags.setdefault(msg_id, received - committed)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a):
        pass


receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
threading.Thread(target=receiver.serve_forever, daemon=True).start()
hook_url = "http://127.0.0.1:%d/hook" % receiver.server_address[1]

# A database in memory keeps nothing between processes: there the server's own
# first key is used.
key = None if db == ":memory:" else subprocess.run(
    [BINARY, "--db", db, "keys", "create", "--label", "load"],
    capture_output=True, text=True, check=True).stdout.strip()
hook_args = [] if opts.no_webhook else ["--webhook", hook_url, "--webhook-secret", SECRET]
server = subprocess.Popen(
    [BINARY, "--db", db, "--listen", "127.0.0.1:0", "--log-level", "warn",
     "--event-retention", str(opts.retention)] + hook_args,
    stdout=subprocess.PIPE, text=True)
line = ""
while not line.startswith("listening on http://"):
    line = server.stdout.readline()
    if not line:
        sys.exit("the server did not start")
    if key is None and line.strip().startswith("scim_"):
        key = line.strip()
addr, base = line.strip()[len("listening on http://"):].split("/", 1)
host, port = addr.split(":")
base = "/" + base
headers = {"Authorization": "Bearer " + key, "Content-Type": "application/scim+json"}
threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()

users = []
if opts.write == "patch":
    conn = http.client.HTTPConnection(host, int(port))
    for i in range(1000):
        body = json.dumps({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "load-%d-%d" % (os.getpid(), i)})
        conn.request("POST", base + "/Users", body=body, headers=headers)
        resp = conn.getresponse()
        users.append(json.loads(resp.read())["id"])
    # Wait for the creations to be delivered; only the writes below are measured.
    while not opts.no_webhook:
        with lock:
            if len(lags) >= len(users):
                lags.clear()
                break
        time.sleep(0.1)

per_conn = opts.rate / opts.connections


def writer(n, stop_at, results):
    """One keep-alive connection, paced to its share of the rate (its own process,
    so the writers and the receiver do not share an interpreter lock)."""
    conn = http.client.HTTPConnection(host, int(port))
    start = time.time()
    i = sent = succeeded = 0
    while True:
        due = start + i / per_conn
        now = time.time()
        if due >= stop_at:
            break
        if due > now:
            time.sleep(due - now)
        if users:
            body = json.dumps({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                               "Operations": [{"op": "replace", "path": "nickName", "value": "n%d-%d" % (n, i)}]})
            target = "/Users/%s?attributes=id" % users[(n * 7919 + i * 104729) % len(users)]
            conn.request("PATCH", base + target, body=body, headers=headers)
        else:
            body = json.dumps({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                               "userName": "load-%d-%d-%d" % (os.getpid(), n, i)})
            conn.request("POST", base + "/Users", body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        sent += 1
        succeeded += resp.status in (200, 201)
        i += 1
    results.put((sent, succeeded))


WRK_SCRIPT = """
local users = {%s}
local delay_ms = %f
local n = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function delay() return delay_ms end
request = function()
  n = n + 1
  local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"nickName","value":"w' .. tid .. '-' .. n .. '"}]}'
  return wrk.format("PATCH", "%s/Users/" .. users[(n * 7919) %% #users + 1] .. "?attributes=id",
    {["Content-Type"]="application/scim+json", ["Authorization"]="Bearer %s"}, body)
end
done = function(summary, latency, requests)
  io.write(string.format("WRK %%d %%d\\n", summary.requests, summary.errors.status))
end
"""

began = time.time()
if opts.wrk:
    script = os.path.join(tempfile.mkdtemp(), "patch.lua")
    with open(script, "w") as f:
        f.write(WRK_SCRIPT % (",".join('"%s"' % u for u in users), opts.delay_share * 1000.0 * opts.connections / opts.rate, base, key))
    out = subprocess.run(["wrk", "-t2", "-c%d" % opts.connections, "-d%ds" % opts.seconds, "-s", script,
                          "http://%s:%s" % (host, port)], capture_output=True, text=True).stdout
    total, failed = [int(x) for x in out.split("WRK ")[1].split()[:2]]
    sent, ok = [total], [total - failed]
    elapsed = time.time() - began
else:
    import multiprocessing
    results = multiprocessing.Queue()
    stop_at = began + opts.seconds
    procs = [multiprocessing.Process(target=writer, args=(n, stop_at, results)) for n in range(opts.connections)]
    for p in procs:
        p.start()
    counts = [results.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.time() - began
    sent = [sum(c[0] for c in counts)]
    ok = [sum(c[1] for c in counts)]
print("writes (%s): %d sent, %d succeeded in %.1f s: %.0f/s" % (opts.write, sent[0], ok[0], elapsed, ok[0] / elapsed))
if opts.no_webhook:
    server.terminate()
    sys.exit(0)

deadline = time.time() + 120
while time.time() < deadline:
    with lock:
        if len(lags) >= ok[0]:
            break
    time.sleep(0.2)
caught_up = time.time() - began - elapsed
with lock:
    values = sorted(lags.values())
print("events delivered: %d (%d forged); caught up %.1f s after the last write" % (len(values), forged[0], caught_up))
if values:
    pick = lambda q: values[min(len(values) - 1, int(len(values) * q))] * 1000
    print("lag commit -> receipt: p50 %.1f ms  p99 %.1f ms  max %.1f ms" % (pick(0.5), pick(0.99), values[-1] * 1000))

# The pruner runs every minute: wait for a pass after the retention has passed.
time.sleep(max(0, opts.retention + 61 - (time.time() - began - elapsed)))
conn = http.client.HTTPConnection(host, int(port))
conn.request("GET", "/metrics")
metrics = conn.getresponse().read().decode()
pending = [l for l in metrics.splitlines() if l.startswith("scim_events_pending ")]
print(pending[0] if pending else "scim_events_pending ?")
if db == ":memory:":
    left = "(in memory: see scim_events_pending)"
elif db.startswith("postgres"):
    left = subprocess.run(["psql", db, "-Atc", "SELECT count(*) FROM scim_events"], capture_output=True, text=True).stdout.strip()
else:
    import sqlite3
    left = sqlite3.connect(db).execute("SELECT count(*) FROM scim_events").fetchone()[0]
print("events left in the outbox after pruning: %s of %d written" % (left, ok[0] + len(users)))
server.terminate()
server.wait()
