#!/usr/bin/python3
"""Memory per client connection of one vrouter process, ws and wss, after `hello`.

    bench/conn_memory.py VROUTER CERT_DIR [CONNECTIONS]

CERT_DIR holds cert.pem and key.pem (the test build makes them: build/release/tests/certs).
Starts the router on loopback, opens CONNECTIONS (default 2000) authenticated connections over ws,
then as many over wss, and reports the router's RSS growth per connection for each. The numbers
feed deployment sizing (deploy/README.md); the load harness measures at 50k sockets.
Loopback only; everything it starts is stopped at the end.
"""

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import time

import websockets

VROUTER, CERT_DIR = sys.argv[1], sys.argv[2]
N = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
SECRET = "conn-memory-secret"


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def open_many(url, token, n, ctx):
    conns = []
    for i in range(0, n, 100):
        batch = await asyncio.gather(*[
            websockets.connect(url, subprotocols=["vrouter.v1"], ssl=ctx, max_queue=4)
            for _ in range(min(100, n - i))])
        for ws in batch:
            await ws.send(json.dumps({"type": "hello", "id": 1, "token": token}))
        for ws in batch:
            assert json.loads(await ws.recv())["type"] == "welcome"
        conns.extend(batch)
    return conns


async def main(router, ws_port, wss_port):
    token = subprocess.run([VROUTER, "mint-token", "--user", "mem", "--space", "s"],
                           env=dict(os.environ, VROUTER_AUTH_SECRET=SECRET), capture_output=True,
                           text=True, check=True).stdout.strip()
    ctx = ssl.create_default_context(cafile=os.path.join(CERT_DIR, "cert.pem"))
    results = {}
    held = []
    for label, url, c in (("ws", f"ws://127.0.0.1:{ws_port}/v1/client", None),
                          ("wss", f"wss://127.0.0.1:{wss_port}/v1/client", ctx)):
        await asyncio.sleep(0.5)
        before = rss_kb(router.pid)
        held += await open_many(url, token, N, c)
        await asyncio.sleep(0.5)
        after = rss_kb(router.pid)
        results[label] = round((after - before) * 1024 / N)
    for ws in held:
        await ws.close()
    return results


def start():
    router = subprocess.Popen(
        [VROUTER, "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0", "--tls-cert",
         os.path.join(CERT_DIR, "cert.pem"), "--tls-key", os.path.join(CERT_DIR, "key.pem"),
         "--threads", "2", "--log-level", "info"],
        env=dict(os.environ, VROUTER_AUTH_SECRET=SECRET),
        stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 10
    while time.time() < deadline:
        line = router.stdout.readline()
        event = json.loads(line) if line.startswith("{") else {}
        if event.get("event") == "listening":
            ws = int(event["ws"].rsplit(":", 1)[1].split("/")[0])
            wss = int(event["wss"].rsplit(":", 1)[1].split("/")[0])
            return router, ws, wss
    raise AssertionError("router did not start")


if __name__ == "__main__":
    router, ws, wss = start()
    try:
        idle = rss_kb(router.pid)
        per_conn = asyncio.run(main(router, ws, wss))
        print(json.dumps({"connections_each": N, "idle_rss_kb": idle,
                          "bytes_per_connection": per_conn}))
    finally:
        router.send_signal(signal.SIGTERM)
        router.wait(timeout=20)
