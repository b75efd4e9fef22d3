#!/usr/bin/python3
"""sim_video_server against a fake router written in Python from the vrouter.video.v1 contract
(proto/video_server_messages.h): checks what the simulator puts on the wire, independently of the real
router's health logic.

usage: sim_fake_router_test.py PATH/TO/sim_video_server

The fake router listens on loopback port 0 (ws, then wss with a throw-away certificate), checks
every `register` (HS256 JWT: sub = id, aud = vrouter.video, exp in the future) and every `stats`
(types, ranges), answers `registered` with a 200 ms interval, `error` for malformed frames, and
pushes `state` ejected/not_forwarding to a server that reports low load while media comes in and
nothing goes out. A fake admin API answers GET /v1/servers/{id} with {"assigned": 5}.
Runs: the behaviours together then SIGTERM; a refused credential; wss with and without --ca.
Every wait is bounded; the simulator is killed if anything hangs.
SIM_TEST_VERBOSE=1 in the environment prints the simulator's log of every run.
"""
import asyncio
import http.server
import json
import os
import signal
import ssl
import sys
import tempfile
import threading
import time

import websockets

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from vrouter_testlib import make_cert, verify_hs256  # noqa: E402

SIM = sys.argv[1]
SECRET = "sim-fake-router-secret"
INTERVAL_MS = 200
ASSIGNED = 5
U32 = 2**32 - 1
U53 = 2**53 - 1
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def is_uint(v, top):
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= top


def stats_problem(m):
    """None when `m` is a valid stats message, else an error code."""
    for f, top in (("seq", U53), ("peers", U32), ("media_peers", U32), ("packets_in", U53),
                   ("packets_out", U53), ("bytes_in", U53), ("bytes_out", U53)):
        if not is_uint(m.get(f), top):
            return "invalid_message"
    cpu = m.get("cpu")
    if not isinstance(cpu, (int, float)) or isinstance(cpu, bool) or not 0 <= cpu <= 1:
        return "invalid_message"
    if m["media_peers"] > m["peers"]:
        return "invalid_message"
    return None


class FakeRouter:
    """Records per server id: connections, each a list of (t, stats)."""

    def __init__(self, secret):
        self.secret = secret
        self.conns = {}  # id -> [ {"stats": [...], "close_code": int, "errors_sent": n} ]
        self.refused = 0
        self.bad_paths = 0

    async def handler(self, ws, path):
        if path != "/v1/video-server" or ws.subprotocol != "vrouter.video.v1":
            self.bad_paths += 1
            await ws.close(1008, "wrong path or subprotocol")
            return
        try:
            reg = json.loads(await asyncio.wait_for(ws.recv(), 5))
        except Exception:  # noqa: BLE001
            return
        sid = reg.get("id")
        claims = verify_hs256(reg.get("token", ""), self.secret)
        ok = (reg.get("type") == "register" and claims is not None and claims.get("sub") == sid
              and claims.get("aud") == "vrouter.video" and claims.get("exp", 0) > time.time()
              and isinstance(reg.get("url"), str) and reg["url"] == f"wss://{sid}.media.test/rtc"
              and reg.get("region") in ("eu-west", "us-east") and reg.get("capacity") == 50)
        if not ok:
            self.refused += 1
            await ws.send(json.dumps({"type": "error", "code": "token_bad_signature",
                                      "message": "register refused"}))
            await ws.close(4001, "register refused")
            return
        conn = {"stats": [], "close_code": None, "errors_sent": 0, "region": reg["region"]}
        self.conns.setdefault(sid, []).append(conn)
        await ws.send(json.dumps({"type": "registered", "id": sid, "replica": "fake-1",
                                  "report_interval_ms": INTERVAL_MS, "state": "active"}))
        pushed = False
        try:
            async for text in ws:
                try:
                    m = json.loads(text)
                except ValueError:
                    code = "invalid_json"
                else:
                    if not isinstance(m, dict):
                        code = "invalid_message"
                    elif m.get("type") != "stats":
                        code = "unknown_type"
                    else:
                        code = stats_problem(m)
                if code is not None:
                    conn["errors_sent"] += 1
                    await ws.send(json.dumps({"type": "error", "code": code,
                                              "message": "refused: " + text[:40]}))
                    continue
                conn["stats"].append((time.monotonic(), m))
                prev = conn["stats"][-2][1] if len(conn["stats"]) > 1 else None
                if (not pushed and prev is not None and m["peers"] <= 2
                        and m["packets_in"] > prev["packets_in"]
                        and m["packets_out"] == prev["packets_out"]):
                    pushed = True
                    await ws.send(json.dumps({"type": "state", "state": "ejected",
                                              "reason": "not_forwarding"}))
        except websockets.ConnectionClosed:
            pass
        conn["close_code"] = ws.close_code


class Admin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    requests = 0
    connections = 0

    def setup(self):
        super().setup()
        Admin.connections += 1

    def do_GET(self):  # noqa: N802
        Admin.requests += 1
        prefix = "/v1/servers/"
        sid = self.path[len(prefix):] if self.path.startswith(prefix) else ""
        if sid.startswith("sim-"):
            body, status = json.dumps({"id": sid, "assigned": ASSIGNED}).encode(), 200
        else:
            body, status = b'{"error":"not found"}', 404
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def start_admin():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Admin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


async def run_sim(args, stop_after=None, timeout=30):
    """Runs the simulator; SIGTERM after `stop_after` s if given. (exit code, summary, stderr)"""
    proc = await asyncio.create_subprocess_exec(SIM, *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    if stop_after is not None:
        await asyncio.sleep(stop_after)
        proc.send_signal(signal.SIGTERM)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.communicate()
        raise SystemExit(f"sim_video_server hung: {args}")
    if os.environ.get("SIM_TEST_VERBOSE"):
        sys.stderr.write(f"--- sim_video_server {' '.join(args)}\n{err.decode()}")
    summary = None
    try:
        summary = json.loads(out.decode())
    except ValueError:
        check(False, f"stdout is not one JSON summary: {out[:200]!r}")
    return proc.returncode, summary, err.decode()


def seqs_and_counters(conn):
    return [m["seq"] for _, m in conn["stats"]], [m for _, m in conn["stats"]]


def monotonic(stats):
    keys = ("packets_in", "packets_out", "bytes_in", "bytes_out")
    return all(b[k] >= a[k] for a, b in zip(stats, stats[1:]) for k in keys)


async def behaviours(tmp, secret_file):
    fake = FakeRouter(SECRET)
    admin = start_admin()
    async with websockets.serve(fake.handler, "127.0.0.1", 0,
                                subprotocols=["vrouter.video.v1"]) as server:
        port = server.sockets[0].getsockname()[1]
        summary_file = os.path.join(tmp, "summary.json")
        t0 = time.monotonic()
        code, summary, err = await run_sim(
            ["--router", f"ws://127.0.0.1:{port}", "--admin",
             f"http://127.0.0.1:{admin.server_address[1]}", "--secret-file", secret_file,
             "--servers", "6", "--capacity", "50", "--regions", "eu-west,us-east",
             "--behavior", "sim-1=blackhole@1", "--behavior", "sim-2=garbage@1",
             "--behavior", "sim-3=dead@1.5", "--behavior", "sim-4=flapping@1",
             "--flap-period", "1", "--behavior", "sim-5=restart@1.5",
             "--summary", summary_file], stop_after=5)
        await asyncio.sleep(0.2)  # let the server handlers record the close codes
    admin.shutdown()
    check(code == 0, f"behaviours run: exit code {code}")
    check(summary is not None and summary.get("stopped_by") == "signal", "stopped_by signal")
    if summary is None:
        return
    with open(summary_file) as f:
        check(json.load(f) == summary, "--summary file equals stdout")
    servers = summary["servers"]
    check(sorted(servers) == [f"sim-{i}" for i in range(6)], f"summary ids {sorted(servers)}")
    check(fake.bad_paths == 0 and fake.refused == 0, "no refused register")
    check(Admin.requests >= 6 * 10, f"admin polled ({Admin.requests} requests)")
    check(Admin.connections <= 3, f"admin keep-alive ({Admin.connections} connections)")
    for sid, s in servers.items():
        check(s["registrations"] >= 1, f"{sid} registered")
        check(s["last_assigned"] == ASSIGNED, f"{sid} last_assigned {s['last_assigned']}")
        check(sid in fake.conns, f"{sid} reached the fake router")
    for sid in ("sim-0", "sim-1", "sim-2"):
        check(len(fake.conns.get(sid, [])) == 1, f"{sid}: one connection")
        check(servers[sid]["connected_at_exit"], f"{sid}: connected at exit")
        conns = fake.conns.get(sid, [])
        check(bool(conns) and conns[-1]["close_code"] == 1001, f"{sid}: closed with 1001")
    check(fake.conns["sim-1"][0]["region"] == "us-east", "regions round-robin")

    # healthy: consecutive seqs from 0, monotonic counters, fanout 4 with 5 users.
    seqs, stats = seqs_and_counters(fake.conns["sim-0"][0])
    check(seqs == list(range(len(seqs))), f"sim-0 seqs consecutive from 0: {seqs[:5]}…")
    check(len(seqs) >= 15, f"sim-0 reported every ~{INTERVAL_MS} ms ({len(seqs)} stats in 5 s)")
    check(monotonic(stats), "sim-0 counters monotonic")
    last = stats[-1]
    check(last["peers"] == ASSIGNED and last["media_peers"] == ASSIGNED, "sim-0 peers = assigned")
    check(last["packets_in"] > 0 and last["packets_out"] == 4 * last["packets_in"],
          f"sim-0 forwards to the 4 others: {last}")
    check(last["bytes_in"] == 1000 * last["packets_in"], "sim-0 bytes = packets * 1000")
    check(abs(last["cpu"] - (0.05 + 0.8 * ASSIGNED / 50)) < 1e-9, f"sim-0 cpu {last['cpu']}")
    check(servers["sim-0"]["stats_sent"] == len(seqs), "sim-0 stats_sent matches")
    check(servers["sim-0"]["last_state"] == "active", "sim-0 last_state active")

    # blackhole: low load reported, media in, nothing out; the router's push is recorded.
    _, stats = seqs_and_counters(fake.conns["sim-1"][0])
    check(monotonic(stats), "sim-1 counters monotonic")
    tail = stats[-3:]
    check(all(m["peers"] == 2 and m["cpu"] == 0.05 for m in tail), "sim-1 reports low load")
    check(tail[0]["packets_out"] == tail[-1]["packets_out"] and
          tail[-1]["packets_in"] > tail[0]["packets_in"], "sim-1 forwards nothing")
    pushes = servers["sim-1"]["state_pushes"]
    check(len(pushes) == 1 and pushes[0]["state"] == "ejected" and
          pushes[0]["reason"] == "not_forwarding" and pushes[0]["t"] >= 1, f"sim-1 {pushes}")
    check(servers["sim-1"]["last_state"] == "ejected", "sim-1 last_state ejected")

    # garbage: 4 malformed frames, 4 errors, connection kept, healthy stats continue.
    g = servers["sim-2"]
    conn = fake.conns["sim-2"][0]
    check(g["garbage_frames_sent"] == 4 and conn["errors_sent"] == 4, "sim-2 sent 4 bad frames")
    check(g["errors_received"] == 4 and len(g["errors"]) == 4, f"sim-2 errors {g['errors']}")
    check({e["code"] for e in g["errors"]} == {"invalid_json", "invalid_message", "unknown_type"},
          "sim-2 error codes")
    seqs, stats = seqs_and_counters(conn)
    check(seqs == list(range(len(seqs))) and len(seqs) >= 15, "sim-2 seqs unaffected")
    check(stats[-1]["packets_out"] == 4 * stats[-1]["packets_in"], "sim-2 healthy after")

    # dead at 1.5 s: one connection, dropped without a close frame, never back.
    d = servers["sim-3"]
    check(len(fake.conns["sim-3"]) == 1 and d["connects"] == 1, "sim-3 connected once")
    check(fake.conns["sim-3"][0]["close_code"] == 1006, "sim-3 dropped (1006)")
    last_t = fake.conns["sim-3"][0]["stats"][-1][0] - t0
    check(1.0 < last_t < 2.0, f"sim-3 last stats at {last_t:.2f} s")
    check(not d["connected_at_exit"] and d["disconnects"] == 1, "sim-3 not connected at exit")

    # flapping (1 s period from 1 s): down 1-2, up 2-3, down 3-4, up 4-5; seq continues.
    conns = fake.conns["sim-4"]
    check(len(conns) == 3, f"sim-4 connections: {len(conns)}")
    all_seqs = [m["seq"] for c in conns for _, m in c["stats"]]
    check(all_seqs == list(range(len(all_seqs))), f"sim-4 seq continues across reconnects")
    check(monotonic([m for c in conns for _, m in c["stats"]]), "sim-4 counters continue")
    check(servers["sim-4"]["connects"] == 3, "sim-4 connects = 3")

    # restart at 1.5 s: a second connection, seq and counters from 0.
    conns = fake.conns["sim-5"]
    check(len(conns) == 2, f"sim-5 connections: {len(conns)}")
    if len(conns) == 2:
        before, after = conns[0]["stats"][-1][1], conns[1]["stats"][0][1]
        check(after["seq"] == 0 and after["packets_in"] < before["packets_in"],
              f"sim-5 reset: {before['seq']}/{before['packets_in']} -> "
              f"{after['seq']}/{after['packets_in']}")
        seqs, stats = seqs_and_counters(conns[1])
        check(seqs == list(range(len(seqs))) and monotonic(stats), "sim-5 healthy after restart")
    for marker in ("registered: replica fake-1", "state pushed: ejected (reason: not_forwarding)",
                   "error received: invalid_json", "dead: dropping the connection",
                   "flapping (down)", "restart: process restarts", "SIGTERM received"):
        check(marker in err, f"stderr mentions '{marker}'")


async def refused_credential(tmp):
    wrong = os.path.join(tmp, "wrong-secret")
    with open(wrong, "w") as f:
        f.write("not-the-router-key\n")
    fake = FakeRouter(SECRET)
    async with websockets.serve(fake.handler, "127.0.0.1", 0,
                                subprotocols=["vrouter.video.v1"]) as server:
        port = server.sockets[0].getsockname()[1]
        code, summary, err = await run_sim(
            ["--router", f"ws://127.0.0.1:{port}", "--secret-file", wrong, "--capacity", "50",
             "--duration", "2"])
    check(code == 1, f"refused credential: exit code {code}")
    if summary:
        s = summary["servers"]["sim-0"]
        check(s["registrations"] == 0 and s["last_close_code"] == 4001, f"refused: {s}")
        check(s["errors_received"] >= 1 and s["errors"][0]["code"] == "token_bad_signature",
              "refused: error recorded")
        check(2 <= fake.refused <= 6, f"refused: backoff between attempts ({fake.refused})")
    check("credential refused" in err and "never registered" in err, "refused: clear message")


async def over_tls(tmp, secret_file):
    san = "DNS:localhost,IP:127.0.0.1"
    cert, key = make_cert(tmp, "cert", cn="localhost", san=san)
    other, _ = make_cert(tmp, "other", cn="localhost", san=san)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    fake = FakeRouter(SECRET)
    async with websockets.serve(fake.handler, "127.0.0.1", 0, ssl=ctx,
                                subprotocols=["vrouter.video.v1"]) as server:
        port = server.sockets[0].getsockname()[1]
        base = ["--router", f"wss://127.0.0.1:{port}", "--secret-file", secret_file,
                "--capacity", "50", "--duration", "1"]
        for extra, want in (([], 0), (["--ca", cert], 0), (["--ca", other], 1)):
            code, summary, err = await run_sim(base + extra)
            check(code == want, f"wss {extra}: exit code {code}, wanted {want}")
            if want == 0 and summary:
                s = summary["servers"]["sim-0"]
                check(s["registrations"] == 1 and s["stats_sent"] >= 3, f"wss {extra}: {s}")
            if want == 1:
                check("TLS handshake failed" in err, f"wss {extra}: says the TLS handshake failed")


async def main():
    with tempfile.TemporaryDirectory() as tmp:
        secret_file = os.path.join(tmp, "secret")
        with open(secret_file, "w") as f:
            f.write(SECRET + "\n")
        await behaviours(tmp, secret_file)
        await refused_credential(tmp)
        await over_tls(tmp, secret_file)
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        sys.exit(1)
    print("sim_fake_router: all checks passed")


asyncio.run(main())
