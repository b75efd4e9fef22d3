#!/usr/bin/python3
"""Fault injection against the real vrouter binary: for each fault, the replica keeps serving
everyone else, no assignment is lost or corrupted, and /metrics and the JSON log say what happened.

    fault_test.py VROUTER SIM_VIDEO_SERVER

Throughout every case a separate healthy client ("watchdog") looks up a fixed set of users every
50 ms on the same replica; every answer must be on time and show the same server and epoch as
before the faults. The cases:

  a. video servers that vanish: a sim_video_server process is SIGKILLed, and a raw Python video
     server's TCP connection is dropped without a close frame. After --gone-after-ms they turn
     `gone`; their users (connected or detached) are migrated: `migrate` (reason gone) to the
     user, `moved` (from = the old server) to a watcher, lookups show the new server and epoch.
  b. a video server that comes back with its counters reset: reconnect without a restart (seq
     restarts, counters continue: not a reset), reconnect after a restart (seq and counters back
     near 0: `state` reason `reset`), and packets_out going backwards on the same connection. It
     stays active, is never ejected, its rates are never negative, its users stay where they are.
  c. a video server that sends garbage: invalid JSON, wrong types, unknown types, stats before
     register, a second register, stats carrying another server's id (ignored: stats belong to
     the connection), a register for another server's id (`forbidden`, close 4001), bad and
     wrong-audience credentials (4001), a binary frame (1003), invalid UTF-8 (1007), an oversize
     frame (1009); also a client `report` about a server it is not on (`forbidden`).
  d. a client that stops reading: raw socket, SO_RCVBUF 4 KiB, watches 1000 users over and over
     and never reads. The router drops it when its send queue (--send-queue-bytes) overflows
     (vrouter_forced_closes_total{reason="slow_consumer"}, log slow_consumer_closed), memory stays
     bounded, its watches are released. (Watches are paced under the default rate limit.) Then
     an expected failure (known bug, EXPECTED_FAILURE_ANSWER_ABOVE_SEND_QUEUE): a client that
     reads at once is closed as a slow consumer by one answer larger than --send-queue-bytes.
  e. file descriptors exhausted: a second replica under `prlimit --nofile=64:64`
     (--max-connections 24 fits the budget); 150 raw TCP connects exhaust its descriptors. accept()
     fails with EMFILE: counted (vrouter_accept_errors_total), logged (accept_failed), backed
     off (CPU stays low); established sessions keep working; once the connections close it
     accepts again (a client connecting meanwhile gets in). Then an expected failure (known bug,
     EXPECTED_FAILURE_ABANDONED_HANDSHAKE): connects closed before their upgrade keep their fd
     and connection slot until --handshake-timeout-ms, so the replica answers 503 meanwhile.
     Skipped on sanitizer builds (their runtimes need fds and die out of them).
  f. wall-clock jumps: a third replica under libfaketime (LD_PRELOAD, FAKETIME_TIMESTAMP_FILE,
     FAKETIME_DONT_FAKE_MONOTONIC=1) jumps +1 h, then -1 h. Open sessions, detached assignments
     and the fleet's health (monotonic clock) are untouched: no idle timeout fires, no server
     turns stale or gone, nothing expires. New hellos are judged on the wall clock, as
     PROTOCOL.md 7.1 says: within --token-leeway-s they work; beyond, token_expired (after +1 h)
     or token_not_yet_valid (after -1 h, tokens with nbf). The sessions that must survive ping
     the router every 0.5 s themselves, because of a known bug that a fourth replica probes
     meanwhile as an expected failure (EXPECTED_FAILURE_PING_ANSWERED_IDLE_DROP): silent clients
     that answer every router ping are dropped after ~1.5 idle timeouts on a fast network.
     Skipped, with a message, when libfaketime is not installed (Debian package `faketime`).

Redis and replica kill -9 are covered by replication_test.py, not here.

Loopback only, ports 0; every process it starts is stopped at the end; about 30 s.
"""

import asyncio
import base64
import datetime
import json
import os
import re
import signal
import socket
import sys
import tempfile
import time

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vrouter_testlib  # noqa: E402  (beside this file)
from vrouter_testlib import (  # noqa: E402
    client_token, eventually, hs256, location, metric, server_token, stop_process, text,
    upgrade_request)

VROUTER, SIM = sys.argv[1], sys.argv[2]
CLIENT_SECRET = "fault-test-client-secret"
SERVER_SECRET = "fault-test-video-server-secret"
INTERVAL_MS = 250          # --report-interval-ms: stale after 3 of them (750 ms)
GONE_MS = 2000             # --gone-after-ms
MAX_MESSAGE = 16384        # --max-message-bytes
SEND_QUEUE = 65536         # --send-queue-bytes
LEEWAY_S = 30              # --token-leeway-s (the default)
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def sanitized(binary):
    """Whether `binary` was built with ASan/UBSan/TSan (scripts/test asan runs this file too)."""
    markers = (b"__asan_init", b"__tsan_init", b"__ubsan_handle_")
    tail = b""
    with open(binary, "rb") as f:
        while chunk := f.read(1 << 22):
            if any(m in tail + chunk for m in markers):
                return True
            tail = chunk[-32:]
    return False


SANITIZED = sanitized(VROUTER)


# ---------------------------------------------------------------------------------------------
# Processes

def log_time(event):
    return datetime.datetime.strptime(event["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


class Router(vrouter_testlib.Router):
    """A replica of VROUTER with this test's secrets (stderr left on the terminal), plus the
    admin API and /proc views the cases use; stop() requires exit 0."""

    def __init__(self, name, args, env=None, prefix=()):
        super().__init__(VROUTER, args,
                         dict(os.environ, VROUTER_AUTH_SECRET=CLIENT_SECRET,
                              VROUTER_VIDEO_SERVER_SECRET=SERVER_SECRET, **(env or {})),
                         name, prefix, stderr=None)
        self.max_connections = self.listening["max_connections"]

    def cpu_seconds(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kb(self):
        with open(f"/proc/{self.pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

    def open_fds(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))


def start_sim(router, tmp, prefix, servers):
    """`servers` simulated video servers PREFIX0.. of capacity 1000, logging to a file in `tmp`."""
    log = open(os.path.join(tmp, f"sim-{prefix}log"), "w")
    return vrouter_testlib.start_sim(SIM, router, SERVER_SECRET, tmp, [
        "--servers", str(servers), "--id-prefix", prefix, "--capacity", "1000"],
        stdout=log, stderr=log)


async def admin(router, method, *args):
    """Admin calls off the event loop, so the raw video servers keep reporting on time."""
    return await asyncio.to_thread(getattr(router, method), *args)


# ---------------------------------------------------------------------------------------------
# Clients

class Client(vrouter_testlib.Client):
    """A /v1/client connection with this test's client secret."""

    secret = CLIENT_SECRET


async def accepted_hello(port, token):
    """A hello that must be welcomed (the connection is then closed)."""
    await (await Client().welcomed(port, token)).close()


class Watchdog:
    """The healthy bystander: looks up `users` every 50 ms; every answer must come within 3 s and
    show the server and epoch each user had at the start."""

    def __init__(self, name, port, users, ping_interval=20):
        self.name, self.port, self.users = name, port, list(users)
        self.ping_interval = ping_interval
        self.failures = []
        self.count = 0
        self.max_latency = 0.0

    async def start(self):
        self.client = Client(self.name)
        welcome = await self.client.open(self.port, ping_interval=self.ping_interval)
        assert welcome["type"] == "welcome", welcome
        self.baseline = await self.client.locations(self.users)
        missing = [u for u, (server, _) in self.baseline.items() if server is None]
        assert not missing, f"{self.name}: reference users without an assignment: {missing}"
        self.task = asyncio.create_task(self._run())
        return self

    async def _run(self):
        while True:
            started = time.monotonic()
            try:
                answer = await self.client.call({"type": "lookup", "users": self.users}, 3)
            except (asyncio.TimeoutError, ConnectionError, websockets.ConnectionClosed) as e:
                self.failures.append(f"lookup failed: {e!r}")
                if self.client.closed.is_set():
                    return
                await asyncio.sleep(0.05)
                continue
            self.max_latency = max(self.max_latency, time.monotonic() - started)
            if answer["type"] != "lookup_result":
                self.failures.append(f"lookup answered {answer}")
            else:
                for r in answer["results"]:
                    if location(r) != self.baseline[r["user"]]:
                        self.failures.append(f"{r['user']}: was {self.baseline[r['user']]}, "
                                             f"now {location(r)}")
            self.count += 1
            await asyncio.sleep(0.05)

    async def checkpoint(self, label):
        """Asserts that nothing went wrong so far and that lookups are still being answered."""
        start = self.count
        await eventually(f"{label}: the healthy client's lookups to continue",
                         lambda: self.count >= start + 2 or self.failures, 5, 0.02)
        assert not self.failures, f"{label}: the healthy client saw: {self.failures[:5]}"
        return self.count

    async def stop(self):
        self.task.cancel()
        await self.client.close()


class VideoServer(vrouter_testlib.VideoServer):
    """A /v1/video-server connection driven by the test, with this test's credentials, reporting
    every INTERVAL_MS once started."""

    secret = SERVER_SECRET
    interval_ms = INTERVAL_MS


# ---------------------------------------------------------------------------------------------
# The main replica: cases a-d

class Fleet:
    """Everything on the main replica that the cases share."""


async def setup_main(tmp):
    f = Fleet()
    f.router = await asyncio.to_thread(Router, "fault-main", [
        "--threads", "2", "--report-interval-ms", str(INTERVAL_MS),
        "--gone-after-ms", str(GONE_MS), "--slow-start-window-ms", "1000",
        "--migrate-cooldown-ms", "100", "--resume-grace-ms", "60000",
        "--max-message-bytes", str(MAX_MESSAGE), "--send-queue-bytes", str(SEND_QUEUE),
        # Each user has a space of its own (so they spread over the servers); the watcher and
        # the bystander watch them all.
        "--lookups-across-spaces"])
    r = f.router
    f.stable_sim = start_sim(r, tmp, "stable-", 2)     # healthy all along
    f.vanish_sim = start_sim(r, tmp, "vanish-", 1)     # SIGKILLed in case a
    f.cutoff = VideoServer(r.ws, "cutoff")          # TCP dropped in case a
    f.phoenix = VideoServer(r.ws, "phoenix")        # restarts in case b
    for s in (f.cutoff, f.phoenix):
        answer = await s.open()
        assert answer["type"] == "registered", answer
        s.start_reporting()
    names = ["stable-0", "stable-1", "vanish-0", "cutoff", "phoenix"]
    await eventually("five active video servers", lambda: _all_active(r, names), 15)
    await asyncio.sleep(1.2)  # past the slow-start window: every server at full weight

    # Users, each in a space of its own, until every server holds some.
    f.users = {}
    i = 0
    while True:
        by_server = {}
        for c in f.users.values():
            by_server.setdefault(c.assigned["server"]["id"], []).append(c)
        if all(len(by_server.get(n, [])) >= 2 for n in names) or i >= 80:
            break
        c = Client(f"u{i:02d}")
        assert (await c.open(r.ws))["type"] == "welcome"
        await c.join()
        f.users[c.user] = c
        i += 1
    f.placed = {u: c.assigned["server"]["id"] for u, c in f.users.items()}
    f.by_server = by_server
    for n in names:
        assert len(by_server.get(n, [])) >= 2, \
            f"{n} got {len(by_server.get(n, []))} of {len(f.users)} users (placement)"
    f.watcher = Client("watcher")
    assert (await f.watcher.open(r.ws))["type"] == "welcome"
    answer = await f.watcher.call({"type": "watch", "users": sorted(f.users)})
    assert answer["type"] == "watch_result", answer
    f.watched = {e["user"]: location(e) for e in answer["results"]}
    # The bystander watches everyone who is not on a server that will vanish.
    f.reference = sorted(u for u, s in f.placed.items() if s not in ("vanish-0", "cutoff"))
    f.watchdog = await Watchdog("watchdog", r.ws, f.reference).start()
    print(f"[setup] {len(f.users)} users on "
          f"{ {n: len(by_server.get(n, [])) for n in names} }, watchdog on "
          f"{len(f.reference)} of them", flush=True)
    return f


async def _all_active(router, names):
    servers = await admin(router, "servers")
    return all(servers.get(n, {}).get("state") == "active" for n in names)


async def case_b_counter_reset(f):
    r, p = f.router, f.phoenix
    users = [c.user for c in f.by_server["phoenix"]]
    before = await admin(r, "metrics")
    view0 = (await admin(r, "servers"))["phoenix"]

    # b1. A reconnect without a restart: seq restarts at 0, the counters carry on. Not a reset.
    await p.vanish()
    p.seq = 0
    answer = await p.open()
    # `stale` only if the reconnect took longer than 3 report intervals (a loaded machine).
    assert answer["type"] == "registered" and answer["id"] == "phoenix" and \
        answer["report_interval_ms"] == INTERVAL_MS and answer["state"] in ("active", "stale"), \
        answer
    p.start_reporting()
    await eventually("phoenix's reports accepted after the reconnect", lambda: _reports_grow(
        r, "phoenix", view0["reports"]["accepted"] + 3), 5)
    view = (await admin(r, "servers"))["phoenix"]
    assert view["reports"]["resets"] == view0["reports"]["resets"], \
        f"a reconnect whose counters kept growing was taken for a restart: {view['reports']}"

    # b2. The process restarted: new connection, seq 0, every counter back near zero.
    await p.vanish()
    p.seq = 0
    p.counters = {"packets_in": 7, "packets_out": 5, "bytes_in": 900, "bytes_out": 700}
    answer = await p.open()
    assert answer["type"] == "registered" and answer["state"] in ("active", "stale"), answer
    await p.report()
    push = await eventually("a `state` push with reason reset", lambda: [
        m for m in p.received if m["type"] == "state" and m["reason"] == "reset"], 5)
    assert push[0]["state"] in ("active", "stale"), push
    p.start_reporting()

    # b3. On the same connection, packets_out goes backwards while packets_in keeps growing: a
    # naive difference would be a negative rate and look like a black hole.
    await asyncio.sleep(3 * INTERVAL_MS / 1000)
    await p.stop_reporting()
    p.counters["packets_out"] = 3
    await p.report()
    await eventually("a second reset push", lambda: len(
        [m for m in p.received if m.get("reason") == "reset"]) >= 2, 5)
    p.start_reporting()

    # Then more reports than it takes to eject a black hole (3): still active, rates >= 0.
    seen = []
    for _ in range(8):
        await asyncio.sleep(INTERVAL_MS / 1000)
        v = (await admin(r, "servers"))["phoenix"]
        seen.append(v["state"])
        rates = v["signals"]["rates"] or {}
        assert all(x >= 0 for x in rates.values()), f"negative rates after a reset: {rates}"
        assert v["signals"]["counter_load"] >= 0 and v["score"]["effective_load"] >= 0, v
        assert v["signals"]["forwarding"] in ("unknown", "idle", "ok"), \
            f"phoenix judged {v['signals']['forwarding']} after its counters reset: {v['signals']}"
    assert set(seen) == {"active"}, f"phoenix left `active` after a reset: {seen}"
    v = (await admin(r, "servers"))["phoenix"]
    assert v["ejection"]["times"] == 0 and v["signals"]["consecutive_bad_reports"] == 0, v
    assert v["reports"]["resets"] == view0["reports"]["resets"] + 2, v["reports"]
    assert v["signals"]["forwarding"] == "ok", v["signals"]
    assert v["assigned"] == len(users), f"phoenix's users moved: {v['assigned']} != {len(users)}"
    after = await admin(r, "metrics")
    assert metric(after, "vrouter_video_server_reports_total", result="reset") == \
        metric(before, "vrouter_video_server_reports_total", result="reset") + 2
    assert metric(after, "vrouter_video_server_ejections_total") == \
        metric(before, "vrouter_video_server_ejections_total"), "an ejection happened"
    logged = r.events("video_server_state", server="phoenix", reason="reset")
    assert len(logged) == 2 and all(e["from"] == e["to"] for e in logged), logged
    for u in users:
        assert not f.users[u].of("migrate"), f"{u} on phoenix was migrated: {f.users[u].pushes}"
    assert not [m for m in f.watcher.pushes if m.get("user") in users], f.watcher.pushes
    n = await f.watchdog.checkpoint("case b")
    print(f"[fault b] counter reset: reconnect without restart accepted, 2 resets "
          f"(restart, packets_out backwards) pushed {push[0]['reason']!r} and logged; phoenix "
          f"stayed active, forwarding ok, {len(users)} users kept; watchdog {n} lookups ok",
          flush=True)


async def _reports_grow(router, sid, at_least):
    return (await admin(router, "servers"))[sid]["reports"]["accepted"] >= at_least


async def case_c_garbage(f):
    r = f.router
    before = await admin(r, "metrics")
    stable0 = (await admin(r, "servers"))["stable-0"]
    g = VideoServer(r.ws, "garbler")
    await g.open(register=False)

    async def expect_error(frame, code, id_=None, raw=False):
        await g.ws.send(frame if raw else json.dumps(frame))
        m = await g.next()
        assert m is not None, f"connection closed after {frame!r:.80}"
        assert m["type"] == "error" and m["code"] == code and m.get("id") == id_, \
            f"{frame!r:.120} -> {m}, expected {code} (id {id_})"

    # Before register: only register is accepted.
    await expect_error(g.stats(seq=3), "not_registered", 3)
    await expect_error({"type": "register", "token": server_token("garbler", SERVER_SECRET),
                        "id": "garbler", "url": "wss://g/rtc", "region": "eu-west",
                        "capacity": 0},
                       "invalid_message")
    await g.send_register()
    m = await g.next()
    assert m["type"] == "registered" and m["state"] == "pending", m
    garbage = [
        ("{not json", "invalid_json", None, True),
        ("", "invalid_json", None, True),
        ("[" * 20 + "]" * 20, "invalid_json", None, True),
        ("[1,2,3]", "invalid_message", None, True),
        ({"seq": 1}, "invalid_message", None, False),
        ({"type": 7}, "invalid_message", None, False),
        ({"type": "hello", "id": 1, "token": "x"}, "unknown_type", None, False),
        ({"type": "registered", "id": "x"}, "unknown_type", None, False),
        ({"type": "bogus"}, "unknown_type", None, False),
        (g.stats(seq="9"), "invalid_message", None, False),
        (g.stats(seq=9, peers="many"), "invalid_message", 9, False),
        (g.stats(seq=10, cpu=1.5), "invalid_message", 10, False),
        (g.stats(seq=11, packets_in=-5), "invalid_message", 11, False),
        (g.stats(seq=12, bytes_out=1.5), "invalid_message", 12, False),
        (g.stats(seq=13, packets_out=2 ** 53), "invalid_message", 13, False),
        ({"type": "register", "token": server_token("garbler", SERVER_SECRET), "id": "garbler",
          "url": "wss://g/rtc", "region": "eu-west", "capacity": 5}, "already_registered",
         None, False),
    ]
    for frame, code, id_, raw in garbage:
        await expect_error(frame, code, id_, raw)
    # Stats naming another server: stats have no id field, the report is the sender's own.
    await g.ws.send(json.dumps(g.stats(seq=20, id="stable-0", peers=4242)))
    await g.nothing_more()
    await eventually("the garbler's report accepted",
                     lambda: _server_field(r, "garbler", lambda v: v["signals"]["seq"] == 20), 5)
    servers = await admin(r, "servers")
    assert servers["garbler"]["signals"]["peers"] == 4242, servers["garbler"]["signals"]
    assert servers["stable-0"]["signals"]["peers"] != 4242, "stats were credited to stable-0"
    assert servers["garbler"]["state"] == "active", servers["garbler"]
    await expect_error(g.stats(seq=21, cpu=-0.1), "invalid_message", 21)  # still open, still judged
    # Decode errors, each counted and logged: the capacity-0 register, the garbage list but for
    # already_registered, the cpu -0.1 report.
    invalid_sent = 1 + (len(garbage) - 1) + 1

    # Registrations that must be refused with 4001 (each its own connection).
    refusals = [
        ("stable-0", server_token("garbler", SERVER_SECRET), "forbidden"),  # someone else's id
        ("stable-0", server_token("stable-0", "wrong"), "token_bad_signature"),
        ("garbler-2", hs256({"sub": "garbler-2", "space": "s", "exp": int(time.time()) + 60},
                          SERVER_SECRET), "token_invalid_claims"),            # no aud: client-like
        ("garbler-2", server_token("garbler-2", SERVER_SECRET, exp=int(time.time()) - 3600),
         "token_expired"),
    ]
    for sid, token, code in refusals:
        x = VideoServer(r.ws, "intruder")
        m = await x.open(token=token, sid=sid)
        assert m["type"] == "error" and m["code"] == code, f"register {sid}: {m}, expected {code}"
        assert await x.next() is None and x.close_code == 4001, \
            f"register {sid} refused with {code} must close 4001, got {x.close_code}"
    # Frames the WebSocket layer refuses: binary 1003, invalid UTF-8 1007, oversize 1009.
    closes = {}
    for what, send in (
            ("binary", lambda ws: ws.send(b"\x00\x01binary")),
            ("invalid utf-8", lambda ws: ws.write_frame(True, 0x1, b'{"type":"\xff\xfe"}')),
            ("oversize", lambda ws: ws.send("x" * (MAX_MESSAGE + 100)))):
        if what == "binary":
            x = g  # the registered garbler itself: its registration ends with the connection
        else:
            x = VideoServer(r.ws, "garbler-frames")
            await x.open(register=False)
        await send(x.ws)
        assert await x.next() is None, f"{what}: connection stayed open"
        closes[what] = x.close_code
    assert closes == {"binary": 1003, "invalid utf-8": 1007, "oversize": 1009}, closes

    # The client side of "a report about someone else's server": forbidden.
    reporter = Client("reporter")
    assert (await reporter.open(r.ws))["type"] == "welcome"
    answer = await reporter.call({"type": "report", "server": "stable-0", "reason": "no_media"})
    assert answer["type"] == "error" and answer["code"] == "forbidden", answer
    await reporter.close()

    # Everyone else unaffected: stable-0 kept its registration, nobody was replaced.
    servers = await admin(r, "servers")
    s0 = servers["stable-0"]
    assert s0["state"] == "active" and s0["connected"], s0
    assert s0["reports"]["accepted"] > stable0["reports"]["accepted"], "stable-0 stopped reporting"
    assert not [e for e in r.events("video_server_registered", server="stable-0")
                if e["replaced_connection"]], "stable-0's registration was replaced"
    after = await admin(r, "metrics")
    invalid = metric(after, "vrouter_video_server_reports_total", result="invalid") - \
        metric(before, "vrouter_video_server_reports_total", result="invalid")
    assert invalid >= invalid_sent, f"vrouter_video_server_reports_total{{result=invalid}} +{invalid}"
    protocol = metric(after, "vrouter_forced_closes_total", reason="protocol") - \
        metric(before, "vrouter_forced_closes_total", reason="protocol")
    assert protocol >= 2, f"vrouter_forced_closes_total{{reason=protocol}} +{protocol} (1003, 1009)"
    assert metric(after, "vrouter_errors_total", code="forbidden") >= 1
    bad = r.events("video_server_bad_message")
    assert len(bad) >= invalid_sent, f"{len(bad)} video_server_bad_message log lines"
    auth = [e for e in r.events("video_server_auth_failed") if e["server"] in ("stable-0",
                                                                               "garbler-2")]
    assert len(auth) == len(refusals), auth
    assert any(e.get("credential_for") == "garbler" for e in auth), auth
    assert r.events("protocol_close", code=1003), "no protocol_close log line for 1003"
    # The garbler's connection is gone: it stops taking new users (stale) before case a.
    await eventually("the garbler stale or gone", lambda: _server_field(
        r, "garbler", lambda v: v["state"] in ("stale", "gone")), 5)
    n = await f.watchdog.checkpoint("case c")
    print(f"[fault c] garbage: {invalid_sent} malformed frames answered with typed errors on a "
          f"connection that stayed open; foreign-id stats credited to the sender only; "
          f"{len(refusals)} bad registers closed 4001 ({', '.join(c for _, _, c in refusals)}); "
          f"closes {closes}; watchdog {n} lookups ok", flush=True)


async def _server_field(router, sid, predicate):
    v = (await admin(router, "servers")).get(sid)
    return v is not None and predicate(v)


async def case_d_slow_consumer(f):
    r = f.router
    loop = asyncio.get_running_loop()
    before = await admin(r, "metrics")
    rss_before = r.rss_kb()
    watches_before = metric(before, "vrouter_watches")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    try:
        await loop.sock_connect(s, ("127.0.0.1", r.ws))
        key = base64.b64encode(os.urandom(16)).decode()
        await loop.sock_sendall(s, upgrade_request(f"127.0.0.1:{r.ws}", key))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await asyncio.wait_for(loop.sock_recv(s, 1), 5)  # not one byte beyond
            assert chunk, "connection closed during the upgrade"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        await loop.sock_sendall(s, text({"type": "hello", "token": client_token(
            "slowpoke", "space-slow", CLIENT_SECRET)}))
        # From here on the socket is never read. Each watch is answered with ~45 KB.
        ghosts = [f"ghost-{i:04d}" for i in range(1000)]
        frame = text({"type": "watch", "users": ghosts})
        assert len(frame) < MAX_MESSAGE
        sent, cut_off, error = 0, False, None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and error is None:
            if sent >= 80:
                # Under the default per-connection limit for watch (20/s, burst 100): the router
                # must cut this client off for not reading, not for sending too fast.
                await asyncio.sleep(0.07)
            try:
                await asyncio.wait_for(loop.sock_sendall(s, frame), 5)
                sent += 1
            except (BrokenPipeError, ConnectionResetError) as e:
                error = type(e).__name__
                break
            except asyncio.TimeoutError:
                pass  # the router stopped reading too? checked below
            if sent % 5 == 0:
                now = await admin(r, "metrics")
                cut_off = metric(now, "vrouter_forced_closes_total", reason="slow_consumer") > \
                    metric(before, "vrouter_forced_closes_total", reason="slow_consumer")
                if cut_off:
                    break
        # After the cut-off the socket is dead: sending fails within a couple of tries.
        for _ in range(50):
            if error:
                break
            try:
                await asyncio.wait_for(loop.sock_sendall(s, text({"type": "lookup", "users": []})), 2)
            except (BrokenPipeError, ConnectionResetError) as e:
                error = type(e).__name__
            except asyncio.TimeoutError:
                pass
            await asyncio.sleep(0.05)
    finally:
        s.close()
    after = await admin(r, "metrics")
    closes = metric(after, "vrouter_forced_closes_total", reason="slow_consumer") - \
        metric(before, "vrouter_forced_closes_total", reason="slow_consumer")
    assert closes == 1, f"vrouter_forced_closes_total{{reason=slow_consumer}} +{closes} " \
        f"after {sent} unread watch answers"
    assert error, "the slow consumer's socket still accepts data after the cut-off"
    logged = r.events("slow_consumer_closed")
    assert len(logged) == 1 and logged[0]["queued_bytes"] <= SEND_QUEUE, logged
    await eventually("its 1000 watches released", lambda: _metric_is(
        r, "vrouter_watches", watches_before), 5)
    rss_after = r.rss_kb()
    bound = (256 if SANITIZED else 64) * 1024  # ASan's quarantine keeps freed memory
    assert rss_after - rss_before < bound, f"RSS grew {rss_before} -> {rss_after} KiB"
    n = await f.watchdog.checkpoint("case d")
    print(f"[fault d] slow consumer: cut off after {sent} watch requests (~45 KB answers) went "
          f"unread (queue "
          f"{logged[0]['queued_bytes']} B <= {SEND_QUEUE} B; socket then {error}); watches "
          f"released; RSS {rss_before} -> {rss_after} KiB; watchdog {n} lookups ok", flush=True)


# Known router bug, checked as an expected failure at the end of case d: one answer larger than
# --send-queue-bytes closes the connection as a slow consumer even when its queue is empty and the
# client reads at once (WsSession::Send compares queued + frame against the limit). Answers are
# not bounded by --max-message-bytes (PROTOCOL.md 2.3): a lookup of max_batch users is legitimate,
# and the configuration accepts any send queue >= --max-message-bytes, so a 1000-user lookup
# (~130 KB here, ~45 KB for users without assignment) kills a healthy client of a replica with a
# 64 KB queue. Set to False once fixed; the check then requires the answer to arrive.
EXPECTED_FAILURE_ANSWER_ABOVE_SEND_QUEUE = False


async def check_answer_above_send_queue(f):
    r = f.router
    before = metric(await admin(r, "metrics"), "vrouter_forced_closes_total",
                    reason="slow_consumer")
    reader = Client("big-reader")
    assert (await reader.open(r.ws))["type"] == "welcome"
    one = f.reference[0]
    try:
        answer = await reader.call({"type": "lookup", "users": [one] * 1000})  # max_batch
        delivered = answer["type"] == "lookup_result"
    except ConnectionError:
        delivered = False
    size = len(json.dumps({"type": "lookup_result", "id": 2, "results": [
        {"user": one, "server": {"id": "stable-0", "url": "wss://stable-0.media.test/rtc",
                                 "region": "eu-west"}, "epoch": 10}] * 1000},
                          separators=(",", ":")))
    cut = metric(await admin(r, "metrics"), "vrouter_forced_closes_total",
                 reason="slow_consumer") - before
    if EXPECTED_FAILURE_ANSWER_ABOVE_SEND_QUEUE:
        assert not delivered, ("one answer above --send-queue-bytes was delivered: the known "
                               "bug looks fixed; set EXPECTED_FAILURE_ANSWER_ABOVE_SEND_QUEUE = "
                               "False")
        assert cut == 1 and reader.close_code == 1006, (cut, reader.close_code)
        print(f"[fault d] XFAIL (known bug): a client reading promptly was closed as a slow "
              f"consumer by one legitimate 1000-user lookup_result (~{size // 1024} KiB > "
              f"--send-queue-bytes {SEND_QUEUE})", flush=True)
    else:
        assert delivered and cut == 0, f"a {size} B answer closed a reader ({reader.close_code})"
        await reader.close()


async def _metric_is(router, name, value):
    return metric(await admin(router, "metrics"), name) == value


async def case_a_vanish(f):
    r = f.router
    before = await admin(r, "metrics")
    gone_servers = ("vanish-0", "cutoff")
    victims = [c for n in gone_servers for c in f.by_server[n]]
    # One user of each vanishing server is offline (detached, within its resume grace).
    detached = [f.by_server[n][0] for n in gone_servers]
    for c in detached:
        await c.close()
    connected = [c for c in victims if c not in detached]
    old = {c.user: (c.assigned["server"]["id"], c.assigned["epoch"]) for c in victims}

    killed_at = time.monotonic()
    f.vanish_sim.send_signal(signal.SIGKILL)
    await f.cutoff.vanish()
    f.vanish_sim.wait(timeout=5)
    gone_at = {}

    async def both_gone():
        servers = await admin(r, "servers")
        for n in gone_servers:
            if servers[n]["state"] == "gone" and n not in gone_at:
                gone_at[n] = time.monotonic() - killed_at
            assert servers[n]["state"] in ("active", "stale", "gone"), servers[n]
        return len(gone_at) == 2
    await eventually("both vanished servers gone", both_gone, GONE_MS / 1000 + 8, 0.05)
    for n, t in gone_at.items():
        # Gone after --gone-after-ms without a report, not when the connection dropped. (Half of
        # it as the bound: a loaded machine may have delayed the last report before the kill.)
        assert t >= GONE_MS / 2000, \
            f"{n} turned gone {t:.2f} s after it vanished, before --gone-after-ms {GONE_MS}"

    await eventually("every connected victim migrated", lambda: all(
        [m for m in c.of("migrate") if m["reason"] == "gone"] for c in connected), 10)
    await eventually("the watcher told of every move", lambda: all(
        any(m["type"] == "moved" and m["user"] == c.user for m in f.watcher.pushes)
        for c in victims), 10)
    now = await f.watcher.locations(sorted(f.users))
    for c in victims:
        server, epoch = now[c.user]
        assert server not in gone_servers + ("garbler",) and server is not None, (c.user, server)
        assert epoch > old[c.user][1], f"{c.user}: epoch {old[c.user][1]} -> {epoch}"
        moved = [m for m in f.watcher.pushes if m["type"] == "moved" and m["user"] == c.user]
        assert moved[-1]["from"] == old[c.user][0] and moved[-1]["server"]["id"] == server and \
            moved[-1]["epoch"] == epoch, f"{c.user}: moved {moved} vs lookup {server}/{epoch}"
        if c in connected:
            migrate = c.of("migrate")
            assert len(migrate) == 1 and migrate[0]["server"]["id"] == server and \
                migrate[0]["epoch"] == epoch and migrate[0]["reason"] == "gone", \
                f"{c.user}: migrate {migrate} vs lookup {server}/{epoch}"
    for u, loc in now.items():
        if u not in old:
            assert loc == f.watched[u], f"{u} (not a victim) moved: {f.watched[u]} -> {loc}"
    servers = await admin(r, "servers")
    for n in gone_servers:
        assert servers[n]["assigned"] == 0 and not servers[n]["connected"], servers[n]
    after = await admin(r, "metrics")
    migrated = metric(after, "vrouter_migrations_total", cause="gone") - \
        metric(before, "vrouter_migrations_total", cause="gone")
    assert migrated == len(victims), f"vrouter_migrations_total{{cause=gone}} +{migrated}"
    for n in gone_servers:
        assert metric(after, "vrouter_video_server_state", server=n, state="gone") == 1
        assert r.events("video_server_state", server=n, to="gone", reason="gone"), n
        assert r.events("video_server_disconnected", server=n), n
    batches = [e for e in r.events("migration_batch", cause="gone")
               if e["server"] in gone_servers]
    assert sum(e["moved"] for e in batches) == len(victims), batches
    n = await f.watchdog.checkpoint("case a")
    print(f"[fault a] vanished servers: vanish-0 (SIGKILL) gone after {gone_at['vanish-0']:.2f} s, "
          f"cutoff (TCP dropped) after {gone_at['cutoff']:.2f} s (--gone-after-ms {GONE_MS}); "
          f"{len(victims)} users moved ({len(connected)} got migrate, {len(detached)} detached), "
          f"watcher told of each; watchdog {n} lookups ok, max {f.watchdog.max_latency * 1000:.0f} ms",
          flush=True)


async def run_main(tmp):
    f = await setup_main(tmp)
    try:
        await case_b_counter_reset(f)
        await case_c_garbage(f)
        await case_d_slow_consumer(f)
        await check_answer_above_send_queue(f)
        await case_a_vanish(f)
        assert f.watchdog.max_latency < 3, f"watchdog latency {f.watchdog.max_latency:.2f} s"
        await f.watchdog.stop()
        for c in list(f.users.values()) + [f.watcher]:
            if not c.closed.is_set():
                await c.close()
        await f.phoenix.close()
    finally:
        stop_process(f.stable_sim)
        stop_process(f.vanish_sim)
        await asyncio.to_thread(f.router.stop)


# ---------------------------------------------------------------------------------------------
# e. File descriptors exhausted

def fleet_file(tmp, prefix):
    path = os.path.join(tmp, f"{prefix}fleet.json")
    with open(path, "w") as fh:
        json.dump([{"id": f"{prefix}{i}", "url": f"wss://{prefix}{i}.example/rtc",
                    "region": "eu-west", "capacity": 1000, "monitored": False}
                   for i in range(2)], fh)
    return path


# Known router bug, checked as an expected failure (see case_e's last step): a connection whose
# peer goes away before completing the HTTP upgrade keeps its socket, its fd and its place in the
# connection count until --handshake-timeout-ms fires (WsSession::HandshakeFailed does not cancel
# the handshake timer, whose handler holds the session). After a burst of abandoned connects the
# replica answers 503 to real clients, and stays out of fds, for the whole handshake timeout.
# Set to False once fixed; the check then requires the prompt release.
EXPECTED_FAILURE_ABANDONED_HANDSHAKE = False


async def upgrade_status(port):
    """The status line of a bare /v1/client upgrade (the connection is then dropped)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(upgrade_request(f"127.0.0.1:{port}", protocol=None))
        line = await asyncio.wait_for(reader.readline(), 5)
        return int(line.split()[1])
    finally:
        writer.transport.abort()


async def case_e_fd_exhaustion(tmp):
    if SANITIZED:
        # The sanitizer runtimes need descriptors of their own (a pipe to probe memory, the
        # symbolizer): out of fds they report bogus invalid-vptr errors on static objects (Boost's
        # error categories) and exit 1. Measured: the asan router survives the same flood with
        # 256 fds, dies with 64. Nothing to learn about the router there.
        print("[fault e] SKIPPED: sanitizer build (ASan/UBSan cannot run out of fds); run it "
              "against the release binary", flush=True)
        return
    nofile, handshake_ms, flood_size = 64, 1500, 150
    r = await asyncio.to_thread(Router, "fault-fds", [
        "--threads", "2", "--max-connections", "24", "--handshake-timeout-ms", str(handshake_ms),
        "--video-servers", fleet_file(tmp, "fd-"),
        "--lookups-across-spaces"], None,  # the bystander looks at a user of another space
        ("prlimit", f"--nofile={nofile}:{nofile}"))
    flood = []
    try:
        assert r.max_connections == 24, r.max_connections
        assert not r.events("max_connections_above_open_files_limit"), "24 should fit in 64 fds"
        user = Client("e-user")
        assert (await user.open(r.ws))["type"] == "welcome"
        await user.join()
        watchdog = await Watchdog("e-watchdog", r.ws, ["e-user"]).start()
        before = await admin(r, "metrics")
        fds_before = r.open_fds()

        def connect_many(n):
            for _ in range(n):
                flood.append(socket.create_connection(("127.0.0.1", r.ws), timeout=5))
        # Far more than 64: what the router cannot accept waits in the listen backlog.
        await asyncio.to_thread(connect_many, flood_size)
        await eventually("accept() failing", lambda: r.events("accept_failed"), 10)
        errors = r.events("accept_failed")
        assert "Too many open files" in errors[0]["error"], errors[0]
        fds = r.open_fds()
        assert fds >= nofile - 2, f"router holds {fds} fds (limit {nofile})"
        # The listener must back off, not spin on an accept that keeps failing.
        cpu0, logged0, t0 = r.cpu_seconds(), len(r.events("accept_failed")), time.monotonic()
        await asyncio.sleep(1.0)
        cpu = (r.cpu_seconds() - cpu0) / (time.monotonic() - t0)
        rate = (len(r.events("accept_failed")) - logged0) / (time.monotonic() - t0)
        assert cpu < 0.3, f"router used {cpu:.2f} CPU s/s while out of fds (spinning?)"
        assert 0 < rate < 200, f"{rate:.0f} accept failures/s: no back-off"
        assert r.alive(), "router died out of fds"
        await watchdog.checkpoint("case e, out of fds")
        # A client connecting now waits in the backlog; like any client it retries on 503 (the
        # flood's sockets count against --max-connections until they go).
        late, refused = None, []

        async def connect_late():
            nonlocal late
            while True:
                late = Client("e-late")
                try:
                    return await late.open(r.ws)
                except websockets.InvalidStatusCode as e:
                    assert e.status_code == 503, e
                    refused.append(e.status_code)
                    await asyncio.sleep(0.2)
        pending = asyncio.create_task(connect_late())
        await asyncio.sleep(0.3)
        assert not pending.done(), "a connection was served while every fd was in use?"
        # ...and is served once the flood goes away. With the known bug above, the flood's
        # sockets are only released by their handshake timeout, one fd budget (~45) at a time.
        for s in flood:
            s.close()
        flood.clear()
        released = time.monotonic()
        welcome = await asyncio.wait_for(pending, (flood_size // 40 + 1) * handshake_ms / 1000 + 5)
        recovered = time.monotonic() - released
        assert welcome["type"] == "welcome", welcome
        assert (await late.locations(["e-user"]))["e-user"] == watchdog.baseline["e-user"]
        after = await admin(r, "metrics")
        accept_errors = metric(after, "vrouter_accept_errors_total") - \
            metric(before, "vrouter_accept_errors_total")
        assert accept_errors >= 1, "vrouter_accept_errors_total did not move"
        assert metric(after, "vrouter_max_connections") == 24
        await eventually("the router's fds back to normal",
                         lambda: r.open_fds() <= fds_before + 2, handshake_ms / 1000 + 5)
        n = await watchdog.checkpoint("case e")
        print(f"[fault e] fds exhausted (prlimit {nofile}, {fds} fds open, {flood_size} connects): "
              f"{int(accept_errors)} accept errors counted, ~{rate:.0f}/s logged, CPU "
              f"{cpu * 100:.1f}% while exhausted; a client connecting meanwhile got in "
              f"{recovered:.2f} s after the flood closed ({len(refused)} x 503 first); "
              f"watchdog {n} lookups ok, max "
              f"{watchdog.max_latency * 1000:.0f} ms", flush=True)

        # Abandoned connects (TCP open, closed before any upgrade) must not keep the replica
        # full: more of them than --max-connections, then a real client.
        base = r.open_fds()
        burst = await asyncio.to_thread(
            lambda: [socket.create_connection(("127.0.0.1", r.ws), timeout=5) for _ in range(30)])
        await eventually("the burst accepted", lambda: r.open_fds() >= base + 30, 5, 0.02)
        for s in burst:
            s.close()
        closed_at = time.monotonic()
        statuses = []
        while time.monotonic() - closed_at < handshake_ms / 1000 + 3:
            statuses.append(await upgrade_status(r.ws))
            if statuses[-1] == 101:
                break
            await asyncio.sleep(0.1)
        waited = time.monotonic() - closed_at
        assert statuses[-1] == 101, f"upgrades still refused {waited:.1f} s after: {statuses}"
        prompt = waited < 1.0
        if EXPECTED_FAILURE_ABANDONED_HANDSHAKE:
            assert not prompt, (
                "case e: abandoned connects were released at once: the known bug looks fixed; "
                "set EXPECTED_FAILURE_ABANDONED_HANDSHAKE = False")
            print(f"[fault e] XFAIL (known bug): 30 connects closed before their upgrade kept "
                  f"the replica full: {statuses.count(503)} upgrades got 503 over {waited:.1f} s "
                  f"(--handshake-timeout-ms {handshake_ms}) before one got 101", flush=True)
        else:
            assert prompt, (f"30 abandoned connects kept the replica full for {waited:.1f} s: "
                            f"{statuses}")
        await watchdog.stop()
        await late.close()
        await user.close()
    finally:
        for s in flood:
            s.close()
        await asyncio.to_thread(r.stop)


# ---------------------------------------------------------------------------------------------
# f. Wall-clock jumps

# Known router bug, probed as an expected failure next to case f (probe_idle_ping_bug): a client
# that sends nothing but answers every router ping is dropped (1006) after about 1.5 idle
# timeouts whenever its pong comes back faster than the liveness timer's own lateness (loopback,
# LAN). In WsSession::CheckLiveness, `pinged_` is cleared only by a check that finds the
# connection heard from within the last half idle period; the check after a ping runs half a
# period after the ping, so with a pong faster than the timer's lateness it finds
# "silent >= idle/2", sends no new ping (pinged_ still set), and the next check aborts.
# Timing-dependent: the probe reports whether it reproduced. Set to False once fixed; the probe
# then requires every client to stay.
EXPECTED_FAILURE_PING_ANSWERED_IDLE_DROP = False


async def probe_idle_ping_bug():
    """Silent clients that answer every router ping must stay connected (known bug above)."""
    idle_ms, wait_s = 1000, 6
    r = await asyncio.to_thread(Router, "fault-idle", ["--idle-timeout-ms", str(idle_ms)])
    try:
        silent = [Client(f"silent-{i}") for i in range(50)]
        for c in silent:
            assert (await c.open(r.ws, ping_interval=None))["type"] == "welcome"
        await asyncio.sleep(wait_s)
        dropped = [c for c in silent if c.closed.is_set()]
        assert all(c.close_code == 1006 for c in dropped), [c.close_code for c in dropped]
        if EXPECTED_FAILURE_PING_ANSWERED_IDLE_DROP:
            print(f"[idle probe] XFAIL (known bug): {len(dropped)} of {len(silent)} silent clients "
                  f"that answered every router ping were dropped (1006) within {wait_s} s "
                  f"(--idle-timeout-ms {idle_ms})"
                  + ("" if dropped else "; not reproduced this run (timing-dependent)"),
                  flush=True)
        else:
            assert not dropped, f"{len(dropped)} silent clients answering every ping dropped"
            print(f"[idle probe] {len(silent)} silent clients answering pings stayed {wait_s} s",
                  flush=True)
        for c in silent:
            if not c.closed.is_set():
                await c.close()
    finally:
        await asyncio.to_thread(r.stop)


def set_fake_offset(path, seconds):
    tmp = path + ".new"
    with open(tmp, "w") as fh:
        fh.write(f"{seconds:+d}\n")
    os.replace(tmp, path)


async def case_f_clock_jumps(tmp):
    if not os.path.exists(FAKETIME_LIB):
        print(f"[fault f] SKIPPED: {FAKETIME_LIB} not found (Debian package `faketime`)",
              flush=True)
        return
    offset_file = os.path.join(tmp, "faketime-offset")
    set_fake_offset(offset_file, 0)
    idle_ms = 2000
    r = await asyncio.to_thread(Router, "fault-clock", [
        "--threads", "2", "--idle-timeout-ms", str(idle_ms), "--resume-grace-ms", "60000",
        "--report-interval-ms", str(INTERVAL_MS), "--gone-after-ms", str(GONE_MS),
        "--token-leeway-s", str(LEEWAY_S),
        "--lookups-across-spaces"],  # the bystander looks at users of other spaces
        {"LD_PRELOAD": FAKETIME_LIB, "FAKETIME_TIMESTAMP_FILE": offset_file,
         "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
         # ASan insists on being first in the library list; libfaketime is preloaded before it.
         **({"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"}
            if SANITIZED else {})})
    sim = None
    try:
        sim = start_sim(r, tmp, "clock-", 2)
        names = ["clock-0", "clock-1"]
        await eventually("the clock fleet active", lambda: _all_active(r, names), 15)
        # The sessions that must outlive the jumps ping the router themselves (every 0.5 s, a
        # quarter of the idle timeout), so that the known ping bug cannot drop them: an idle
        # timeout judged on the wall clock still would.
        quiet = Client("f-quiet")  # joined, then silent but for its own pings
        assert (await quiet.open(r.ws, ping_interval=0.5))["type"] == "welcome"
        await quiet.join()
        away = Client("f-away")    # joined, then disconnected: detached, 60 s of grace
        assert (await away.open(r.ws, ping_interval=0.5))["type"] == "welcome"
        await away.join()
        await away.close()
        watcher = Client("f-watcher")
        assert (await watcher.open(r.ws, ping_interval=0.5))["type"] == "welcome"
        assert (await watcher.call({"type": "watch", "users": ["f-quiet", "f-away"]}))["type"] \
            == "watch_result"
        watchdog = await Watchdog("f-watchdog", r.ws, ["f-quiet", "f-away"], 0.5).start()
        sessions = [quiet, watcher, watchdog.client]
        notes = []

        async def hold(label):
            """Longer than the idle timeout: every session stays, nothing moves or expires."""
            await asyncio.sleep(idle_ms * 1.5 / 1000)
            for c in sessions:
                assert not c.closed.is_set(), f"{label}: {c.user} closed ({c.close_code})"
            assert not watcher.pushes, f"{label}: watcher got {watcher.pushes}"
            servers = await admin(r, "servers")
            for n in names:
                assert servers[n]["state"] == "active", f"{label}: {n} {servers[n]['state']}"
            m = await admin(r, "metrics")
            assert metric(m, "vrouter_assignments_expired_total") == 0, f"{label}: expiry"
            assert metric(m, "vrouter_assignments") == 2, f"{label}: assignments lost"
            await watchdog.checkpoint(label)

        async def register_probe(expected_code, token):
            """A refused register, to get a log line stamped with the router's wall clock."""
            seen = len(r.events("video_server_auth_failed", server="clock-probe"))
            x = VideoServer(r.ws, "clock-probe")
            m = await x.open(token=token)
            assert m["type"] == "error" and m["code"] == expected_code, m
            await x.next()
            # The log line is pumped from the router's stdout by a thread: wait for it.
            deadline = time.monotonic() + 5
            while len(lines := r.events("video_server_auth_failed", server="clock-probe")) <= seen:
                assert time.monotonic() < deadline, "no video_server_auth_failed log line"
                await asyncio.sleep(0.02)
            return log_time(lines[-1]) - time.time()

        await hold("before the jumps")

        # +1 h: tokens minted for real time have expired (beyond the leeway).
        set_fake_offset(offset_file, 3600)
        now = int(time.time())
        code, close = await Client().refused(r.ws, client_token("f-new", "s", CLIENT_SECRET))
        assert (code, close) == ("token_expired", 4001), (code, close)
        await accepted_hello(r.ws, client_token("f-new", "s", CLIENT_SECRET,
                                                exp=now + 3600 - LEEWAY_S // 2))
        await accepted_hello(r.ws, client_token("f-new", "s", CLIENT_SECRET, exp=now + 3600 + 600))
        skew = await register_probe("token_expired", server_token("clock-probe", SERVER_SECRET))
        assert abs(skew - 3600) < 120, f"router log clock {skew:+.0f} s, expected +3600"
        notes.append(f"+1h: real-time token -> token_expired/4001, exp within leeway ok "
                     f"(log ts {skew:+.0f} s)")
        await hold("after +1 h")

        # -1 h (from real time): tokens with nbf = now are not valid yet; without nbf they work.
        set_fake_offset(offset_file, -3600)
        now = int(time.time())
        code, close = await Client().refused(r.ws, client_token("f-new", "s", CLIENT_SECRET,
                                                                nbf=now))
        assert (code, close) == ("token_not_yet_valid", 4001), (code, close)
        # No nbf, exp in the future.
        await accepted_hello(r.ws, client_token("f-new", "s", CLIENT_SECRET))
        await accepted_hello(r.ws, client_token("f-new", "s", CLIENT_SECRET,
                                                nbf=now - 3600 + LEEWAY_S // 2))
        skew = await register_probe("token_not_yet_valid",
                                    hs256({"sub": "clock-probe", "aud": "vrouter.video",
                                         "nbf": now, "exp": now + 600}, SERVER_SECRET))
        assert abs(skew + 3600) < 120, f"router log clock {skew:+.0f} s, expected -3600"
        notes.append(f"-1h: token with nbf=now -> token_not_yet_valid/4001, without nbf ok, nbf "
                     f"within leeway ok (log ts {skew:+.0f} s)")
        await hold("after -1 h")

        set_fake_offset(offset_file, 0)
        await accepted_hello(r.ws, client_token("f-new", "s", CLIENT_SECRET, nbf=int(time.time())))
        await hold("back to real time")
        assert (await watcher.locations(["f-quiet", "f-away"])) == watchdog.baseline
        n = watchdog.count
        await watchdog.stop()
        for c in (quiet, watcher):
            await c.close()
        print(f"[fault f] clock jumps under faketime: {'; '.join(notes)}; sessions (idle "
              f"timeout {idle_ms} ms, pinging every 0.5 s), the detached assignment and the fleet "
              f"untouched; "
              f"watchdog {n} lookups ok", flush=True)
    finally:
        if sim is not None:
            stop_process(sim)
        set_fake_offset(offset_file, 0)
        await asyncio.to_thread(r.stop)


# ---------------------------------------------------------------------------------------------

def main():
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        async def run():
            await run_main(tmp)
            await case_e_fd_exhaustion(tmp)
            await asyncio.gather(case_f_clock_jumps(tmp), probe_idle_ping_bug())
        vrouter_testlib.run_bounded(run(), 110)
    print(f"fault test: ok ({time.monotonic() - started:.1f} s)")


if __name__ == "__main__":
    main()
