#!/usr/bin/python3
"""The order of upgrade refusals on the wire (PROTOCOL.md 2.2): what the client must fix (path,
upgrade, Host, version, key, subprotocol, Origin) is answered before capacity (503, then 429),
so a retry-later answer always means the same request will be accepted once there is room. The
pure order is tested pair by pair in tests/router/edge/ws_upgrade_test.cc; this checks that the
session hands the replica's real state to it:

  1. a replica at --max-connections (1, held by one open connection): a bad Origin gets 403, a bad
     version 426, a bad key 400, a subprotocol without vrouter.v1 (or an empty header) 400, and
     only a request with nothing wrong gets 503 + Retry-After; the same on /v1/video-server;
  2. an address at --max-connections-per-ip (1): the same defects win over 429, the refused
     upgrades take no slot of the address (after the first connection closes, one gets in), and
     only a clean request gets 429 + Retry-After.

    upgrade_order_test.py VROUTER

Loopback only, port 0, every wait bounded; under a second.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vrouter_testlib  # noqa: E402  (beside this file)
from vrouter_testlib import RawClient  # noqa: E402

VROUTER = sys.argv[1]
ALLOWED = "https://app.example"
EVIL = "Origin: https://evil.example\r\n"

# (what, upgrade() arguments, expected status), every one with one thing the client must fix.
DEFECTS = [
    ("bad Origin", {"extra": EVIL}, 403),
    ("version 12 and a bad Origin", {"version": "12", "extra": EVIL}, 426),
    ("malformed key and a bad Origin", {"key": "not-a-key", "extra": EVIL}, 400),
    ("subprotocol without vrouter.v1 and a bad Origin", {"protocol": "chat", "extra": EVIL}, 400),
    ("empty Sec-WebSocket-Protocol",
     {"protocol": None, "extra": "Sec-WebSocket-Protocol: \r\n"}, 400),
    ("no Host", {"host": None}, 400),
]


def status_of(port, **kwargs):
    w = RawClient(port)
    try:
        status, headers = w.upgrade(**kwargs)
    finally:
        w.close()
    return status, headers


def defects_win_over(port, capacity_status, where):
    """With the replica (or the address) out of room: every defect gets its own status, and only
    a clean request gets `capacity_status` with a Retry-After of 2..10 s."""
    for what, kwargs, expected in DEFECTS:
        status, _ = status_of(port, **kwargs)
        assert status == expected, f"{where}, {what}: {status}, expected {expected}"
    status, headers = status_of(port)
    assert status == capacity_status, f"{where}, a clean request: {status}"
    retry = headers.get("retry-after", "")
    assert retry.isdigit() and 2 <= int(retry) <= 10, f"{status} with Retry-After {retry!r}"


def case_full(env):
    r = vrouter_testlib.Router(VROUTER, ["--max-connections", "1", "--allowed-origins", ALLOWED],
                               env, "order-full")
    try:
        held = RawClient(r.ws)
        held.opened()
        defects_win_over(r.ws, 503, "full replica")
        # The same order on the video servers' path.
        video = {"path": "/v1/video-server", "protocol": "vrouter.video.v1"}
        status, _ = status_of(r.ws, **video, extra=EVIL)
        assert status == 403, f"full replica, video server with a bad Origin: {status}"
        status, _ = status_of(r.ws, **video)
        assert status == 503, f"full replica, a clean video server: {status}"
        # Counted as overload: only the two requests the replica would otherwise have taken.
        m = r.metrics()
        rejected = {reason: vrouter_testlib.metric(m, "vrouter_connections_rejected_total",
                                                   reason=reason)
                    for reason in ("full", "origin", "per_ip")}
        assert rejected == {"full": 2, "origin": 2, "per_ip": 0}, rejected
        held.close()
    finally:
        r.stop()
    print("[upgrade order] at --max-connections: 403/426/400 before 503; 503 only when clean")


def case_per_ip(env):
    r = vrouter_testlib.Router(VROUTER, ["--max-connections-per-ip", "1",
                                         "--allowed-origins", ALLOWED], env, "order-per-ip")
    try:
        held = RawClient(r.ws)
        held.opened()
        defects_win_over(r.ws, 429, "address at its limit")
        held.close()
        # The refused upgrades held no slot: once the first connection is gone, one gets in.
        deadline = time.monotonic() + 5
        while True:
            w = RawClient(r.ws)
            status, _ = w.upgrade()
            w.close()
            if status == 101:
                break
            assert status == 429 and time.monotonic() < deadline, f"after the close: {status}"
            time.sleep(0.05)
    finally:
        r.stop()
    print("[upgrade order] at --max-connections-per-ip: 403/426/400 before 429; no slot leaked")


def main():
    started = time.monotonic()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VROUTER_")}
    env["VROUTER_AUTH_SECRET"] = "upgrade-order-test-secret"
    try:
        case_full(env)
        case_per_ip(env)
    finally:
        vrouter_testlib.kill_started()
    print(f"upgrade order test: ok ({time.monotonic() - started:.1f} s)")


if __name__ == "__main__":
    main()
