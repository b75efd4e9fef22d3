#!/usr/bin/python3
"""Abuse that per-connection limits do not stop (issue 16), against the real binary: one function
per finding, each failing on a router without the fix.

    abuse_test.py VROUTER [CASE...]

  1. Idle sockets from one address (1,100 that never send a byte) do not hold the handshake
     slots of everyone: --max-handshakes-per-ip counts them from accept, the ones past it are
     closed at once, and a client from another address is welcomed promptly.
  2. Refused upgrades (404, 429) give back their slot and descriptor when the refusal is out, not
     at the handshake deadline.
  3. /v1/video-server: the per-IP limit and the Origin check apply before `register`; before
     authenticating (hello or register) a peer may send only a few small messages; a registered
     video server no longer counts against its address.
  4. Drain: while a replica drains, a new upgrade gets 503 with Retry-After (not a refused TCP
     connection).
  5. Budgets per user and per address across connections: a user who reconnects gets the rate
     limits of its previous connections, not fresh ones; hellos from one user and from one address
     are budgeted; a user who leaves and joins again goes back to its server without taking a new
     user's place in the server's admission budget.

Loopback only (127.0.0.1, 127.0.0.2), ports 0, every process stopped at the end, every wait
bounded; about 15 s.
"""

import asyncio
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vrouter_testlib  # noqa: E402  (beside this file)
from vrouter_testlib import (  # noqa: E402
    client_claims, connected_socket, eventually, hs256, upgrade_request)

VROUTER = sys.argv[1]
SECRET = "abuse-test-client-secret"
VIDEO_SECRET = "abuse-test-video-secret"


class Router(vrouter_testlib.Router):
    def __init__(self, name, args, fleet=None, drain_window_ms=300):
        env = {k: v for k, v in os.environ.items() if not k.startswith("VROUTER_")}
        env["VROUTER_AUTH_SECRET"] = SECRET
        env["VROUTER_VIDEO_SERVER_SECRET"] = VIDEO_SECRET
        env["VROUTER_REPLICA_KEY"] = "abuse-test-replica-key"  # replicas sharing a redis store
        if fleet:
            args = [*args, "--video-servers", fleet]
        super().__init__(VROUTER, args, env, name, drain_window_ms=drain_window_ms, start_timeout=15,
                         stop_timeout=10)

    async def metric(self, name, **labels):
        return vrouter_testlib.metric(await asyncio.to_thread(self.metrics), name, **labels)

    def fds(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))


class Client(vrouter_testlib.Client):
    secret = SECRET
    connect_options = {"open_timeout": 10, "close_timeout": 2}


class VideoServer(vrouter_testlib.VideoServer):
    secret = VIDEO_SECRET
    connect_options = {"open_timeout": 5, "close_timeout": 2}
    rejected = vrouter_testlib.Client.rejected  # connect() that must get an HTTP status


def token(user, space="lobby"):
    return hs256(client_claims(user, space=space), SECRET)


def write_fleet(tmp, servers):
    path = os.path.join(tmp, "fleet.json")
    with open(path, "w") as f:
        json.dump([{"id": sid, "url": f"wss://{sid}.media.test/rtc", "region": "eu-west",
                    "capacity": capacity, "monitored": False} for sid, capacity in servers], f)
    return path


async def read_status(sock, timeout=3):
    """The HTTP status of the answer on raw non-blocking socket `sock`, and whether the router
    then closed the connection (EOF) within `timeout` s."""
    loop = asyncio.get_running_loop()
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096),
                                           deadline - time.monotonic())
        except (asyncio.TimeoutError, ConnectionResetError):
            break
        if not chunk:
            return int(data.split(b" ", 2)[1]) if data else None, True
        data += chunk
    return (int(data.split(b" ", 2)[1]) if data else None), False


# ---------------------------------------------------------------------------------------------
# 1. Idle sockets from one address

async def case_1_idle_sockets(tmp):
    idle_count = 1100  # past the default --max-handshakes 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, idle_count + 500)), hard))
    r = Router("abuse-idle", ["--handshake-timeout-ms", "20000", "--threads", "1"])
    idle = []
    try:
        for _ in range(idle_count):
            idle.append(connected_socket(r.ws))
        closed_at_accept = 0

        async def counted():
            nonlocal closed_at_accept
            closed_at_accept = await r.metric("vrouter_connections_rejected_total",
                                              reason="handshakes_per_ip")
            return closed_at_accept >= idle_count - 64
        await eventually("idle sockets past --max-handshakes-per-ip closed at accept", counted,
                         timeout=10)
        in_flight = await r.metric("vrouter_handshakes_in_flight")
        assert in_flight <= 64, f"{in_flight} handshakes in flight from one address"
        waits = []
        for i in range(5):
            started = time.monotonic()
            c = await Client(f"other-{i}").welcomed(r.ws, token(f"other-{i}"), src="127.0.0.2")
            waits.append(time.monotonic() - started)
            await c.close()
        assert max(waits) < 1.0, f"clients from another address waited {max(waits):.2f} s"
    finally:
        for s in idle:
            s.close()
        r.stop()
    print(f"[abuse 1] {idle_count} idle sockets from 127.0.0.1: {closed_at_accept:.0f} closed at "
          f"accept, {in_flight:.0f} handshakes in flight; 5 clients from 127.0.0.2 welcomed in at "
          f"most {max(waits) * 1000:.0f} ms", flush=True)


# ---------------------------------------------------------------------------------------------
# 2. Refused upgrades give back their slot

async def case_2_refused_upgrades(tmp):
    r = Router("abuse-refused", ["--max-connections-per-ip", "2", "--threads", "1"])
    held = []
    try:
        held = [await Client(f"held-{i}").welcomed(r.ws, token(f"held-{i}")) for i in range(2)]
        baseline = r.fds()
        socks = []
        statuses = []
        for i in range(40):  # 20 unknown paths (404), 20 over the per-IP limit (429)
            s = connected_socket(r.ws)
            socks.append(s)
            path = "/nowhere" if i % 2 else "/v1/client"
            s.send(upgrade_request(path=path))
        # The client keeps its end open: the router must close its own after the answer.
        results = await asyncio.gather(*(read_status(s) for s in socks))
        statuses = sorted({status for status, _ in results})
        assert statuses == [404, 429], statuses
        assert all(closed for _, closed in results), "a refused connection was left open"

        async def released():
            return r.fds() <= baseline
        await eventually("the refused connections' descriptors released", released, timeout=2)
        for s in socks:
            s.close()
        # Their places under --max-connections are free too: another address connects at once.
        c = await Client("after").welcomed(r.ws, token("after"), src="127.0.0.2")
        await c.close()
    finally:
        for c in held:
            await c.close()
        r.stop()
    print(f"[abuse 2] 40 refused upgrades ({statuses}): every one closed by the router after its "
          f"answer, descriptors back to {baseline} within the handshake deadline", flush=True)


# ---------------------------------------------------------------------------------------------
# 3. /v1/video-server before register

async def case_3_video_server_path(tmp):
    fleet = write_fleet(tmp, [("sfu-1", 100)])
    r = Router("abuse-video", ["--max-connections-per-ip", "3", "--allowed-origins",
                               "https://app.example.com"], fleet=fleet)
    try:
        # Unauthenticated upgrades count against the address on this path too.
        anonymous = [VideoServer(r.ws, f"anon-{i}") for i in range(3)]
        for v in anonymous:
            await v.open(register=False)
        status, _ = await VideoServer(r.ws, "anon-4").rejected(r.ws)
        assert status == 429, f"4th unauthenticated /v1/video-server upgrade answered {status}"
        # A registered server no longer holds its address's slot.
        await anonymous[0].send_register()
        registered = await anonymous[0].next()
        assert registered["type"] == "registered", registered
        extra = VideoServer(r.ws, "anon-5")
        await extra.open(register=False)  # the registered one's slot is free
        await extra.close()
        for v in anonymous:
            await v.close()
        # The Origin check applies on this path too.
        status, _ = await VideoServer(r.ws, "o").rejected(r.ws, origin="https://evil.example")
        assert status == 403, f"a bad Origin on /v1/video-server answered {status}"
        # Before register: a few messages, small ones.
        v = VideoServer(r.ws, "chatty")
        await v.open(register=False)
        answered = 0
        for _ in range(5000):
            try:
                await v.ws.send(json.dumps({"type": "stats", "seq": 1}))
            except Exception:  # noqa: BLE001 - closed by the router: what is tested
                break
        while True:
            m = await v.next(timeout=3)
            if m is None:
                break
            answered += 1
        code = v.close_code
        assert code == 1008 and answered <= 8, (
            f"before register: {answered} messages answered, close {code}")
        big = VideoServer(r.ws, "big")
        await big.open(register=False)
        await big.ws.send(json.dumps({"type": "register", "token": "x" * 20000}))
        assert await big.wait_closed() == 1009, "a 20 KB frame before register was read"
        c = Client("big-hello")
        await c.connect(r.ws)
        await c.ws.send(json.dumps({"type": "hello", "token": "x" * 20000}))
        assert await c.wait_closed() == 1009, "a 20 KB frame before hello was read"
    finally:
        r.stop()
    print(f"[abuse 3] /v1/video-server: 4th unauthenticated upgrade from one address -> 429, a "
          f"registered server frees its slot, bad Origin -> 403; 5000 messages before register: "
          f"{answered} answered, then close {code}; 20 KB before register/hello -> 1009",
          flush=True)


# ---------------------------------------------------------------------------------------------
# 4. Drain answers 503

async def case_4_drain(tmp):
    r = Router("abuse-drain", [], drain_window_ms=3000)
    try:
        c = await Client("stays").welcomed(r.ws, token("stays"))  # keeps the drain going
        r.proc.send_signal(15)

        async def not_ready():
            try:
                return await r.metric("vrouter_ready") == 0
            except Exception:  # noqa: BLE001
                return False
        await eventually("readiness off", not_ready, timeout=3)
        status, headers = await Client("late").rejected(r.ws)
        retry = headers.get("Retry-After")
        assert status == 503 and retry and retry.isdigit(), (status, retry)
        await c.wait_closed(timeout=5)
    finally:
        r.stop()
    print(f"[abuse 4] draining: a new upgrade -> 503 Retry-After {retry}", flush=True)


# ---------------------------------------------------------------------------------------------
# 5. Budgets per user across reconnects; a user's churn leaves others' joins alone

async def reconnecting_lookups(port, user, seconds):
    """Reconnects as fast as it can and spends each connection's lookups: how many answered."""
    answered = refused = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        c = Client(user)
        try:
            if (await c.open(port, token(user)))["type"] != "welcome":
                await c.close()
                await asyncio.sleep(0.05)
                continue
            for _ in range(20):
                answer = await c.call({"type": "lookup", "users": ["someone"]})
                if answer["type"] == "lookup_result":
                    answered += 1
                else:
                    refused += 1
                    break
            await c.close()
        except (ConnectionError, asyncio.TimeoutError):
            pass
    return answered, refused


async def case_5_budgets_across_reconnects(tmp):
    fleet = write_fleet(tmp, [("sfu-1", 1000)])
    # One server taking 5 new users per (10 s) interval: the churner's first join is one of them.
    r = Router("abuse-budgets", ["--rate-limits", "lookup=5:10,join=100:100,leave=100:100,"
                                 "hello=50:50", "--max-new-users-per-interval", "5",
                                 "--new-users-capacity-share", "0",
                                 "--report-interval-ms", "10000", "--gone-after-ms", "60000"],
               fleet=fleet)
    try:
        seconds = 2.0
        answered, refused = await reconnecting_lookups(r.ws, "mallory", seconds)
        # The user's budget: 10 at once, 5 per second after (a fresh 10 per connection without it).
        assert answered <= 10 + 5 * (seconds + 1), f"{answered} lookups answered in {seconds} s"
        assert refused > 0, "no lookup was refused"
        # Join/leave churn of one user takes no new user's place on its server.
        m = await Client("churner").welcomed(r.ws, token("churner"))
        first = await m.join()
        for _ in range(20):
            assert (await m.call({"type": "leave"}))["type"] == "ack"
            again = await m.call({"type": "join"})
            assert again["type"] == "assigned", again
            assert again["server"]["id"] == first["server"]["id"], again
        await m.close()
        others = []
        for i in range(4):  # the 4 places the churner left
            c = Client(f"other-{i}", space=f"room-{i}")
            await c.welcomed(r.ws, token(f"other-{i}", f"room-{i}"))
            answer = await c.call({"type": "join"})
            others.append(answer["type"] if answer["type"] == "assigned" else answer["code"])
            await c.close()
        assert others.count("assigned") == 4, others
    finally:
        r.stop()
    print(f"[abuse 5] a user reconnecting for {seconds:.0f} s got {answered} lookups answered "
          f"(budget 5/s burst 10, shared by its connections), {refused} refused; 20 leave/join "
          f"pairs went back to {first['server']['id']} without using the admission budget: 4 of 4 "
          f"other users' joins succeeded", flush=True)


# ---------------------------------------------------------------------------------------------
# 6. Hellos budgeted across replicas (shared store)

async def case_6_hellos_across_replicas(tmp):
    redis = vrouter_testlib.Redis(tmp, "/usr/bin/redis-server")
    fleet = write_fleet(tmp, [("sfu-1", 1000)])
    # Each replica alone would welcome 10 at once (the burst); the fleet, 10 + 0.1 x 10 s = 11.
    args = ["--store", f"redis://127.0.0.1:{redis.port}", "--rate-limits", "hello=0.1:10",
            "--redis-timeout-ms", "300"]
    replicas = [Router(f"abuse-fleet-{i}", args, fleet=fleet) for i in range(2)]
    try:
        outcomes = []
        for i in range(20):  # alternating replicas
            c = Client("roamer")
            answer = await c.open(replicas[i % 2].ws, token("roamer"))
            outcomes.append(answer["type"] if answer["type"] == "welcome" else answer["code"])
            await c.close()
        welcomed = outcomes.count("welcome")
        # Across the fleet: BURST + RATE x 10 s = 11 per window, both replicas together.
        assert welcomed == 11, outcomes
        assert outcomes.count("rate_limited") == len(outcomes) - welcomed, outcomes
        # Another user is not affected.
        c = await Client("other").welcomed(replicas[1].ws, token("other"))
        await c.close()
    finally:
        for r in replicas:
            r.stop()
        redis.stop()
    print(f"[abuse 6] 20 hellos of one user alternating between 2 replicas in about a second: "
          f"{welcomed} welcomed, the rest rate_limited (the fleet-wide window)", flush=True)


CASES = [case_1_idle_sockets, case_2_refused_upgrades, case_3_video_server_path, case_4_drain,
         case_5_budgets_across_reconnects, case_6_hellos_across_replicas]


def main():
    # optional: case numbers to run, e.g. `abuse_test.py VROUTER 1 3`
    vrouter_testlib.run_cases(CASES, set(sys.argv[2:]), 100, "abuse test")


if __name__ == "__main__":
    main()
