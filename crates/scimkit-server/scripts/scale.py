"""Latency over HTTP against a scimkit-server seeded by seed-scale.sql: p50 and p99
of each look-up and member change, one request at a time on a kept-alive
connection. Usage: python3 scale.py BASE_URL KEY [REQUESTS]"""
import http.client
import json
import random
import sys
import time
import urllib.parse

base, key = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 200
url = urllib.parse.urlsplit(base)
conn = http.client.HTTPConnection(url.hostname, url.port)
headers = {"Authorization": "Bearer " + key, "Content-Type": "application/scim+json"}
USERS = 1_000_000
BIG = "00000000-0000-4000-9000-000000000001"


def uid(i):
    return "00000000-0000-4000-8000-%012d" % i


def call(method, path, body=None):
    conn.request(method, url.path + path, body=json.dumps(body) if body is not None else None, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, data


def measure(name, make, expect):
    times = []
    for i in range(n):
        method, path, body = make(i)
        t = time.perf_counter()
        status, data = call(method, path, body)
        times.append((time.perf_counter() - t) * 1000)
        if status not in expect:
            raise SystemExit("%s: %s %s -> %d %s" % (name, method, path, status, data[:300]))
    times.sort()
    p50 = times[len(times) // 2]
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print("%-52s p50 %8.2f ms   p99 %8.2f ms   (%d requests)" % (name, p50, p99, len(times)))


def q(s):
    return urllib.parse.quote(s, safe="")


rnd = random.Random(7)
pick = lambda: rnd.randint(1, USERS)
patch = lambda ops: {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops}

measure("GET /Users/{id}", lambda i: ("GET", "/Users/" + uid(pick()), None), {200})
measure("GET /Users?filter=userName eq", lambda i: ("GET", "/Users?filter=" + q('userName eq "USER%d@example.com"' % pick()), None), {200})
measure("GET /Users?filter=externalId eq", lambda i: ("GET", "/Users?filter=" + q('externalId eq "ext-%d"' % pick()), None), {200})
measure("GET /Users?filter=emails[value eq]", lambda i: ("GET", "/Users?filter=" + q('emails[value eq "user%d@example.com"]' % pick()), None), {200})
members = [pick() for _ in range(n)]
measure("PATCH remove member, group of 1,000,000", lambda i: ("PATCH", "/Groups/" + BIG, patch([{"op": "remove", "path": 'members[value eq "%s"]' % uid(members[i])}])), {204})
measure("PATCH add member, group of 1,000,000", lambda i: ("PATCH", "/Groups/" + BIG, patch([{"op": "add", "path": "members", "value": [{"value": uid(members[i])}]}])), {204})
measure("PATCH rename, group of 1,000,000", lambda i: ("PATCH", "/Groups/%s?excludedAttributes=members" % BIG, patch([{"op": "replace", "path": "displayName", "value": "Everyone %d" % i}])), {200})
measure("GET /Groups/{id}?excludedAttributes=members, 1,000,000", lambda i: ("GET", "/Groups/%s?excludedAttributes=members" % BIG, None), {200})
measure("GET /Users?startIndex=1&count=100 (page 1)", lambda i: ("GET", "/Users?startIndex=1&count=100", None), {200})
measure("GET /Users?startIndex=999901&count=100 (page 10,000)", lambda i: ("GET", "/Users?startIndex=999901&count=100", None), {200})
measure("GET /Users?cursor&count=100 (page 1)", lambda i: ("GET", "/Users?cursor&count=100", None), {200})

# Page 10,000 by cursor: follow nextCursor from page 1 to 9,999 once (not timed), then
# time page 10,000 again and again with the cursor page 9,999 returned.
status, data = call("GET", "/Users?cursor&count=100")
cursor = json.loads(data)["nextCursor"]
walked = time.perf_counter()
for page in range(2, 10000):
    status, data = call("GET", "/Users?cursor=%s&count=100" % cursor)
    cursor = json.loads(data)["nextCursor"]
print("(walked 9,998 cursor pages in %.0f s)" % (time.perf_counter() - walked))
measure("GET /Users?cursor=…&count=100 (page 10,000)", lambda i: ("GET", "/Users?cursor=%s&count=100" % cursor, None), {200})
