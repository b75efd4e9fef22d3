"""The agent: polls Janus every report interval and keeps one registration with a vrouter replica.

Two loops share the latest counters: the poll loop reads Janus (always, also while no router is
connected, so that no handle's packets are lost) and sends `stats` when registered; the link loop
connects, registers, logs the router's `state` pushes and reconnects with full-jitter backoff,
moving to another replica of the list when one shuts down (close 1001) or cannot be reached.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import sys
import time
from typing import Any

import jwt
import websockets

from .config import Config
from .counters import ServerCounters
from .host_cpu import HostCpu, ProcessCpu
from .janus_admin import JanusAdmin, JanusUnavailable

SUBPROTOCOL = "vrouter.video.v1"
# Close codes of vrouter.video.v1 (PROTOCOL.md §14.10).
SHUTDOWN = 1001
REPLACED = 4000
REFUSED = 4001


def log(event: str, **fields: Any) -> None:
    print(json.dumps({"ts": round(time.time(), 3), "event": event, **fields}), flush=True)


def full_jitter(attempt: int, base_ms: int, max_ms: int, rng: random.Random) -> float:
    return rng.uniform(0, min(max_ms, base_ms * 2 ** min(attempt, 30))) / 1000.0


class Agent:
    def __init__(self, cfg: Config, rng: random.Random | None = None) -> None:
        self.cfg = cfg
        self.rng = rng or random.Random()
        self.janus = JanusAdmin(cfg.janus_admin, cfg.janus_api, cfg.janus_admin_secret,
                                cfg.janus_api_secret, timeout_s=cfg.janus_timeout_ms / 1000)
        self.counters = ServerCounters()
        self.cpu = HostCpu() if cfg.janus_pid is None else ProcessCpu(cfg.janus_pid)
        self.interval_s = 1.0
        self.seq = 0
        self.ws: Any = None  # the registered connection, if any
        self.wake = asyncio.Event()
        self.janus_up: bool | None = None

    # ---- Janus ------------------------------------------------------------------------------

    async def poll_once(self) -> dict[str, Any] | None:
        try:
            if not await self.janus.check_sentinel():
                self.counters.reset()
                log("janus_restarted", detail="the agent's sentinel session is gone: counters reset")
            samples = await self.janus.samples()
        except Exception as e:  # noqa: BLE001: whatever Janus answers, the agent carries on
            if not isinstance(e, JanusUnavailable):
                e = JanusUnavailable(f"{type(e).__name__}: {e}")
            if self.janus_up is not False:
                log("janus_unreachable", error=str(e), detail="no stats until it answers")
            self.janus_up = False
            return None
        if self.janus_up is not True:
            log("janus_reachable", handles=len(samples))
        self.janus_up = True
        r = self.counters.ingest(samples)
        c = r.counts
        return {
            "type": "stats", "peers": r.peers, "media_peers": r.media_peers,
            "packets_in": c.packets_in, "packets_out": c.packets_out,
            "bytes_in": c.bytes_in, "bytes_out": c.bytes_out,
            "cpu": round(self.cpu.sample(), 4),
            "streams_in": r.streams_in, "streams_out": r.streams_out,
        }

    async def poll_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            self.wake.clear()
            stats = await self.poll_once()
            ws = self.ws
            if stats is not None and ws is not None:
                stats["seq"] = self.seq
                try:
                    await ws.send(json.dumps(stats))
                    if self.cfg.log_reports:
                        log("stats", **stats)
                    self.seq += 1
                except websockets.ConnectionClosed:
                    pass  # the link loop sees it too
            try:
                await asyncio.wait_for(self.wake.wait(),
                                       max(0.0, self.interval_s - (loop.time() - started)))
            except asyncio.TimeoutError:
                pass

    # ---- the router -------------------------------------------------------------------------

    def token(self) -> str:
        if self.cfg.token:
            return self.cfg.token
        now = int(time.time())
        return jwt.encode({"sub": self.cfg.server_id, "aud": "vrouter.video", "iat": now,
                           "exp": now + self.cfg.token_ttl_s},
                          self.cfg.video_server_secret, algorithm="HS256")

    def ssl_for(self, url: str) -> ssl.SSLContext | None:
        if not url.startswith("wss://"):
            return None
        ctx = ssl.create_default_context(cafile=self.cfg.ca_file)
        return ctx

    async def session(self, url: str) -> tuple[int, str]:
        """One connection: register, then read pushes until it closes. Returns (code, reason)."""
        async with websockets.connect(url, subprotocols=[SUBPROTOCOL], ssl=self.ssl_for(url),
                                      open_timeout=10, close_timeout=2, max_size=1 << 20,
                                      ping_interval=20, ping_timeout=20) as ws:
            await ws.send(json.dumps({
                "type": "register", "token": self.token(), "id": self.cfg.server_id,
                "url": self.cfg.public_url, "region": self.cfg.region,
                "capacity": self.cfg.capacity,
            }))
            try:
                async for frame in ws:
                    try:
                        msg = json.loads(frame)
                    except ValueError:
                        log("router_sent_garbage", url=url, frame=str(frame)[:200])
                        continue
                    if not isinstance(msg, dict):
                        continue
                    kind = msg.get("type")
                    if kind == "registered":
                        interval = msg.get("report_interval_ms")
                        if isinstance(interval, int) and interval >= 1:
                            self.interval_s = interval / 1000
                        self.ws = ws
                        log("registered", url=url, replica=msg.get("replica"),
                            state=msg.get("state"), report_interval_ms=interval)
                        self.wake.set()  # the first stats right away
                    elif kind == "state":
                        log("state", url=url, state=msg.get("state"), reason=msg.get("reason"))
                    elif kind == "error":
                        log("router_error", url=url, code=msg.get("code"),
                            message=msg.get("message"), seq=msg.get("id"))
                    elif kind == "goaway":
                        # Not sent on vrouter.video.v1 today (a shutting-down replica closes with
                        # 1001); followed all the same should a router send it.
                        log("goaway", url=url, reason=msg.get("reason"))
                        await ws.close(1000, "goaway")
                        return SHUTDOWN, "goaway"
                    else:
                        log("router_unknown_message", url=url, type=str(kind)[:64])
            finally:
                if self.ws is ws:
                    self.ws = None
            rcvd = ws.close_code if ws.close_code is not None else 1006
            return rcvd, ws.close_reason or ""

    async def link_loop(self) -> None:
        routers = list(self.cfg.routers)
        index = self.rng.randrange(len(routers))
        attempt = 0
        while True:
            url = routers[index % len(routers)]
            started = time.monotonic()
            try:
                code, reason = await self.session(url)
            except websockets.ConnectionClosed as e:
                # An abnormal close (4000, 4001, ...) raises out of the read loop: keep its code.
                code = e.rcvd.code if e.rcvd is not None else 1006
                reason = e.rcvd.reason if e.rcvd is not None else str(e)
            except (OSError, asyncio.TimeoutError, websockets.InvalidHandshake) as e:
                code, reason = 1006, f"{type(e).__name__}: {e}"
            log("disconnected", url=url, code=code, reason=reason)
            if time.monotonic() - started > 10:
                attempt = 0  # it had been up for a while: this is a fresh failure
            if code == REFUSED:
                # The credential or the id is wrong: retrying fast will not fix it.
                delay = self.cfg.backoff_max_ms / 1000
            elif code == REPLACED:
                # Another agent registered this id: it is the live one; back off all the way.
                delay = self.cfg.backoff_max_ms / 1000
            else:
                delay = full_jitter(attempt, self.cfg.backoff_base_ms, self.cfg.backoff_max_ms,
                                    self.rng)
            if code not in (REFUSED, REPLACED) and len(routers) > 1:
                index += 1  # this replica is leaving or unreachable: the next one
            attempt += 1
            await asyncio.sleep(delay)

    async def run(self) -> None:
        log("starting", id=self.cfg.server_id, routers=list(self.cfg.routers),
            janus_admin=self.cfg.janus_admin)
        await asyncio.gather(self.poll_loop(), self.link_loop())


def main(argv: list[str] | None = None) -> int:
    from .config import ConfigError, load

    try:
        cfg = load(sys.argv[1:] if argv is None else argv)
    except ConfigError as e:
        print(f"vrouter-janus-agent: {e}", file=sys.stderr)
        return 2
    try:
        asyncio.run(Agent(cfg).run())
    except KeyboardInterrupt:
        pass
    return 0
