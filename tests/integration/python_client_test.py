#!/usr/bin/python3
"""A client written only from proto/PROTOCOL.md, in another language (Python, Debian's
python3-websockets), against the real `vrouter` binary.

usage: python_client_test.py PATH/TO/vrouter CERT_DIR

Starts the router on loopback port 0 (ws, wss, admin), mints tokens with `vrouter mint-token`,
plays a two-user session, checks typed errors, runs /metrics through `promtool check metrics`
(when promtool is installed), then sends SIGTERM and expects goaway, close 1001 and exit 0.
Every wait is bounded; the router is killed if anything hangs.
"""
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vrouter_testlib import Router, cli_token, client_tls, kill_started  # noqa: E402

VROUTER, CERT_DIR = sys.argv[1], sys.argv[2]
SECRET = "python-client-test-secret"
TIMEOUT = 5


def start_router(tmp):
    fleet = os.path.join(tmp, "fleet.json")
    with open(fleet, "w") as f:
        # Not monitored: this test is about the client protocol; no video server reports here.
        json.dump([{"id": "sfu-1", "url": "wss://sfu-1.test/", "region": "eu", "capacity": 10,
                    "monitored": False},
                   {"id": "sfu-2", "url": "wss://sfu-2.test/", "region": "eu", "capacity": 10,
                    "monitored": False}], f)
    return Router(VROUTER, ["--tls-cert", os.path.join(CERT_DIR, "cert.pem"), "--tls-key",
                            os.path.join(CERT_DIR, "key.pem"), "--video-servers", fleet,
                            "--threads", "2"],
                  dict(os.environ, VROUTER_AUTH_SECRET=SECRET), tls=True, drain_window_ms=1000,
                  stderr=None, log_level="info")


def mint(user, space="space-1"):
    return cli_token(VROUTER, SECRET, user, space, timeout=TIMEOUT)


async def recv(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def session(urls):
    tls = client_tls()
    alice = await websockets.connect(urls["ws"], subprotocols=["vrouter.v1"])
    bob = await websockets.connect(urls["wss"], subprotocols=["vrouter.v1"], ssl=tls)
    assert alice.subprotocol == "vrouter.v1"

    await alice.send(json.dumps({"type": "hello", "id": 1, "token": mint("alice")}))
    welcome = await recv(alice)
    assert welcome["type"] == "welcome" and welcome["user"] == "alice", welcome
    assert welcome["limits"]["max_batch"] >= 1
    await bob.send(json.dumps({"type": "hello", "id": 1, "token": mint("bob")}))
    assert (await recv(bob))["type"] == "welcome"

    await alice.send(json.dumps({"type": "join", "id": 2}))
    assigned = await recv(alice)
    assert assigned["type"] == "assigned" and assigned["id"] == 2, assigned
    assert assigned["server"]["id"] in ("sfu-1", "sfu-2") and assigned["epoch"] > 0

    await bob.send(json.dumps({"type": "watch", "id": 3, "users": ["alice", "carol"]}))
    watch = await recv(bob)
    assert watch["type"] == "watch_result", watch
    assert watch["results"][0]["server"]["id"] == assigned["server"]["id"]
    assert watch["results"][1]["server"] is None

    await bob.send(json.dumps({"type": "lookup", "id": 4, "users": ["alice"]}))
    lookup = await recv(bob)
    assert lookup == {"type": "lookup_result", "id": 4, "results": [
        {"user": "alice", "server": assigned["server"], "epoch": assigned["epoch"]}]}, lookup

    # Typed errors, with the request id echoed when it could be read.
    await bob.send("{oops")
    assert (await recv(bob))["code"] == "invalid_json"
    await bob.send(json.dumps({"type": "lookup", "id": 5, "users": "alice"}))
    err = await recv(bob)
    assert err["code"] == "invalid_message" and err["id"] == 5, err
    await bob.send(json.dumps({"type": "dance", "id": 6}))
    assert (await recv(bob))["code"] == "unknown_type"
    # bob has not joined: he may not report alice's server (only his own).
    await bob.send(json.dumps({"type": "report", "id": 7, "server": assigned["server"]["id"],
                               "reason": "no_media"}))
    err = await recv(bob)
    assert err["code"] == "forbidden" and err["id"] == 7, err
    await alice.send(json.dumps({"type": "report", "id": 9, "server": assigned["server"]["id"],
                                 "reason": "no_media"}))
    assert (await recv(alice)) == {"type": "ack", "id": 9}

    # alice leaves: bob, watching her, hears it.
    await alice.send(json.dumps({"type": "leave", "id": 8}))
    assert (await recv(alice)) == {"type": "ack", "id": 8}
    left = await recv(bob)
    assert left == {"type": "left", "user": "alice", "epoch": assigned["epoch"]}, left
    await alice.close()
    return bob


def check_metrics(admin):
    body = urllib.request.urlopen(admin + "/metrics", timeout=TIMEOUT).read()
    assert b"vrouter_build_info" in body
    promtool = shutil.which("promtool")
    if promtool:
        result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                                timeout=TIMEOUT)
        assert result.returncode == 0, result.stdout + result.stderr
    else:
        print("promtool not installed: skipped `promtool check metrics`")
    ready = json.loads(urllib.request.urlopen(admin + "/readyz", timeout=TIMEOUT).read())
    assert ready["ready"] is True, ready


async def shutdown(proc, bob):
    proc.send_signal(signal.SIGTERM)
    goaway = await recv(bob)
    assert goaway["type"] == "goaway" and goaway["reason"] == "shutdown", goaway
    try:
        await asyncio.wait_for(bob.recv(), TIMEOUT)
        raise AssertionError("expected a close after goaway")
    except websockets.ConnectionClosed as closed:
        assert closed.rcvd is not None and closed.rcvd.code == 1001, closed


def main():
    with tempfile.TemporaryDirectory() as tmp:
        router = start_router(tmp)
        urls = router.listening  # the URLs it listens on
        try:
            loop = asyncio.new_event_loop()
            bob = loop.run_until_complete(session(urls))
            check_metrics(urls["admin"])
            loop.run_until_complete(shutdown(router.proc, bob))
            loop.close()
            assert router.proc.wait(timeout=10) == 0, "router did not exit 0 after SIGTERM"
        finally:
            kill_started()
    print("python client: ok")


if __name__ == "__main__":
    main()
