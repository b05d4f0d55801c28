"""Does a heavy request stall others? GET /Users/{id} latency alone, then while
another connection sends 1,000-operation PATCHes back to back.
Usage: python3 heavy.py BASE_URL KEY"""
import http.client
import json
import sys
import threading
import time
import urllib.parse

base, key = sys.argv[1], sys.argv[2]
url = urllib.parse.urlsplit(base)
headers = {"Authorization": "Bearer " + key, "Content-Type": "application/scim+json"}


def connect():
    return http.client.HTTPConnection(url.hostname, url.port)


def call(conn, method, path, body=None):
    conn.request(method, url.path + path, body=json.dumps(body) if body is not None else None, headers=headers)
    resp = conn.getresponse()
    return resp.status, resp.read()


c = connect()
status, data = call(c, "POST", "/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "probe-%d" % time.time_ns()})
probe = json.loads(data)["id"]
status, data = call(c, "POST", "/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "heavy-%d" % time.time_ns(),
    "emails": [{"value": "e%d@example.com" % i} for i in range(900)]})
heavy = json.loads(data)["id"]
# 1,000 operations, each a filter over the user's 900 e-mail addresses.
ops = [{"op": "replace", "path": 'emails[value eq "e%d@example.com"].type' % (i % 900), "value": "work%d" % i} for i in range(1000)]
patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops}


def gets(n):
    conn = connect()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        call(conn, "GET", "/Users/" + probe)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99)], times[-1]


print("GET alone:               p50 %.2f ms  p99 %.2f ms  max %.2f ms" % gets(300))
stop = False
patch_times = []


def heavy_loop():
    conn = connect()
    while not stop:
        t = time.perf_counter()
        status, data = call(conn, "PATCH", "/Users/%s?attributes=id" % heavy, patch)
        patch_times.append((time.perf_counter() - t) * 1000)
        assert status == 200, data[:200]


worker = threading.Thread(target=heavy_loop)
worker.start()
time.sleep(0.5)
result = gets(300)
stop = True
worker.join()
patch_times.sort()
print("GET beside heavy PATCHes: p50 %.2f ms  p99 %.2f ms  max %.2f ms" % result)
print("each 1,000-operation PATCH: p50 %.1f ms (%d sent)" % (patch_times[len(patch_times) // 2], len(patch_times)))
