#!/usr/bin/python3
"""The black hole over real sockets: the vrouter binary, a simulated fleet (bench/sim_video_server)
reporting over /v1/video-server, and clients joining through /v1/client. One simulated server
turns into a black hole a few seconds in (reports low load, forwards nothing). The router must
stop placing users on it, eject it (reason not_forwarding), migrate its users (they get
`migrate`), say so in /v1/servers and /metrics; an operator drain then empties another server.

    fleet_blackhole_test.py VROUTER SIM_VIDEO_SERVER

Loopback only; every process it starts is stopped at the end; bounded to about a minute.
"""

import asyncio
import functools
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vrouter_testlib  # noqa: E402  (beside this file)
from vrouter_testlib import (  # noqa: E402
    Router, cli_token, eventually, kill_started, start_sim, stop_process)

VROUTER, SIM = sys.argv[1], sys.argv[2]
SECRET = "fleet-test-client-secret"
SERVER_SECRET = "fleet-test-video-server-secret"
BLACK_HOLE = "sim-2"
TURNS_BAD_AT = 4.0  # seconds after the fleet starts
INTERVAL_MS = 250


def start(tmp):
    router = Router(VROUTER, ["--threads", "2", "--report-interval-ms", str(INTERVAL_MS),
                              "--gone-after-ms", "5000", "--slow-start-window-ms", "2000",
                              "--migrate-cooldown-ms", "200"],
                    dict(os.environ, VROUTER_AUTH_SECRET=SECRET,
                         VROUTER_VIDEO_SERVER_SECRET=SERVER_SECRET),
                    drain_window_ms=1000, stderr=None, log_level="info", stop_timeout=20)
    sim = start_sim(SIM, router, SERVER_SECRET, tmp, [
        "--servers", "4", "--capacity", "200", "--behavior",
        f"{BLACK_HOLE}=blackhole@{TURNS_BAD_AT}", "--duration", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return router, sim


class Client(vrouter_testlib.Client):
    """A user of space-USER (a `vrouter mint-token` token) who joins once and then follows the
    `migrate` pushes: `placed` is where the join put it, `server` where it is now."""

    timeout = 45  # the scenario's own bound: an answer is not otherwise timed

    def token(self):
        return cli_token(VROUTER, SECRET, self.user, self.space)

    async def enter(self, port):
        assert (await self.open(port))["type"] == "welcome"
        await self.join(attempts=20, every=0.2)  # retryable: the fleet is still coming up
        self.joined_at = time.time()

    @property
    def placed(self):
        return self.assigned["server"]["id"]

    @property
    def server(self):
        migrations = self.of("migrate")
        return migrations[-1]["server"]["id"] if migrations else self.placed


wait_for = functools.partial(eventually, every=0.1)


async def scenario(router, started):
    await wait_for("four active servers",
                   lambda: [s["state"] for s in router.servers().values()].count("active") == 4, 15)
    clients = []

    async def join_batch(n, offset):
        batch = [Client(f"u{offset + i}") for i in range(n)]
        await asyncio.gather(*(c.enter(router.ws) for c in batch))
        clients.extend(batch)

    # Before the black hole: users spread over the four servers.
    await join_batch(40, 0)
    assert sum(c.server == BLACK_HOLE for c in clients) > 0, "it should have had some users"
    await wait_for("the black hole turning bad", lambda: time.time() - started > TURNS_BAD_AT + 0.1,
                   TURNS_BAD_AT + 5)
    bad_since = time.time()
    # After: users keep arriving; after two report intervals, none may land on it.
    for wave in range(6):
        await join_batch(10, 100 + wave * 10)
        await asyncio.sleep(INTERVAL_MS / 1000)
    late = [c for c in clients[40:]
            if c.placed == BLACK_HOLE and c.joined_at - bad_since > 2 * INTERVAL_MS / 1000 + 0.3]
    assert not late, f"{len(late)} users placed on the black hole after two intervals"

    await wait_for("ejection", lambda: router.servers()[BLACK_HOLE]["state"] == "ejected", 10)
    view = router.servers()[BLACK_HOLE]
    assert view["ejection"]["reason"] == "not_forwarding", view
    assert view["history"][-1]["to"] == "ejected" and view["ejection"]["times"] == 1, view
    print(f"[fleet] black hole ejected {time.time() - bad_since:.2f} s after turning bad",
          flush=True)
    await wait_for("its users migrated", lambda: router.servers()[BLACK_HOLE]["assigned"] == 0, 10)
    await wait_for("migrate pushes", lambda: all(
        c.server != BLACK_HOLE for c in clients), 5)
    moved = [c for c in clients if any(m["reason"] == "ejected" for m in c.of("migrate"))]
    assert moved, "the black hole's users got no migrate"
    print(f"[fleet] {len(moved)} users migrated off the black hole", flush=True)

    metrics = router.get("/metrics")
    assert 'vrouter_video_server_ejections_total{reason="not_forwarding"} 1' in metrics
    assert f'vrouter_video_server_state{{server="{BLACK_HOLE}",state="ejected"}} 1' in metrics
    check = subprocess.run(["promtool", "check", "metrics"], input=metrics, text=True,
                           capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr

    # An operator drains a healthy server: its users move, paced, and it takes no new ones.
    target = max(("sim-0", "sim-1", "sim-3"),
                 key=lambda s: sum(c.server == s for c in clients))
    assert router.post(f"/v1/servers/{target}/drain")[1]["state"] == "draining"
    await wait_for("drained server emptied", lambda: router.servers()[target]["assigned"] == 0, 10)
    await wait_for("drain migrate pushes", lambda: all(c.server != target for c in clients), 5)
    assert any(m["reason"] == "drain" for c in clients for m in c.of("migrate"))
    assert router.post(f"/v1/servers/{target}/undrain")[1]["state"] == "active"
    try:
        router.post("/v1/servers/nope/drain")
        raise AssertionError("draining an unknown server must be 404")
    except urllib.error.HTTPError as e:
        assert e.code == 404

    for c in clients:
        await c.close()


def main():
    with tempfile.TemporaryDirectory() as tmp:
        try:
            router, sim = start(tmp)
            started = time.time()
            asyncio.run(asyncio.wait_for(scenario(router, started), 45))
            assert stop_process(sim), "the simulated fleet did not exit within 10 s of SIGTERM"
            router.stop()  # exit 0 within 20 s of SIGTERM
        finally:
            kill_started()
        assert router.events("video_server_state", server=BLACK_HOLE, to="ejected"), \
            "no log line for the ejection"
    print("fleet black hole test: ok")


if __name__ == "__main__":
    main()
