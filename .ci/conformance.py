"""Runs the independent SCIM conformance checker scim2-tester against a running server.

Usage: python conformance.py BASE_URL TOKEN
Prints one line per check and a closing "N passed, N failed, N skipped" line; exits 1
if any check failed.
"""

import sys

import httpx2 as httpx
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server


def main() -> int:
    base_url, token = sys.argv[1], sys.argv[2]
    http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    client = SyncSCIMClient(http)
    results = check_server(client)
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for r in results:
        status = r.status
        if status in (Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE):
            counts["passed"] += 1
        elif status == Status.SKIPPED:
            counts["skipped"] += 1
        else:
            counts["failed"] += 1
        title = getattr(r, "title", None) or getattr(r, "check", None) or ""
        reason = getattr(r, "reason", "") or ""
        print(f"[{getattr(status, 'name', status)}] {title} {reason}".rstrip())
    print(f"scim2-tester: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
