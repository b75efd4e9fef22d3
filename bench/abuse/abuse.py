#!/usr/bin/python3
"""The abuse cases of issue 16, measured against a vrouter binary on loopback.

    bench/abuse/abuse.py [--vrouter PATH] [--scenario NAME[,NAME...]] [--duration S]
                         [--out-dir DIR]

Each scenario starts its own router (127.0.0.1, ports 0, in-memory store, a fleet file of 4
declared unmonitored servers of capacity 1000 so that joins succeed without video servers), runs
the abuse for a bounded time, samples the router (/proc CPU and fds, /metrics, /v1/replica), stops
everything it started and reports what it saw. Nothing here decides whether the router is right:
a refused hello, a connection closed at accept, an upgrade refused with 429 or 503 are outcomes to
count, never failures of the tool.

Scenarios (README.md beside this file says more):
  churn-joins        one user, 8 concurrent reconnect loops: hello, join, leave (several pairs
                     per connection); 30 ordinary users join once each through the window,
                     retrying refusals like clients/js (full-jitter backoff, 10 s deadline)
  churn-lookups      one user, 8 concurrent reconnect loops, pipelined lookups of 1,000 ids
  churn-pushes       100 watchers of one user who churns join/leave over reconnects
  idle-handshakes    3,600 idle TCP sockets to the client port, then 20 clients from the same
                     address and 20 from 127.0.0.2 timed from TCP connect to welcome (10 s cap)
  refused-upgrades   --max-connections-per-ip 50 (50 sessions held from 127.0.0.1); 120/s wrong
                     path (404) and 120/s over-limit (429) upgrades; phantom connections sampled;
                     ordinary clients from 127.0.0.2 every 0.5 s
  video-server-path  --max-connections-per-ip 50; 400 /v1/video-server upgrades without a
                     credential; then 5,000 messages before `register` on one of them

Load generators (the abusers, the idle sockets, the refused upgrades) run in child processes of
this script (`--worker`), so the ordinary clients timed in this process do not share an event
loop with them. Only 127.0.0.1 and 127.0.0.2 are used. Exit status: 0 when every scenario ran
(whatever the router did), 1 when the tool itself failed in a scenario, 2 on a usage error,
130 on Ctrl-C; everything started is stopped in every case.
"""

import argparse
import asyncio
import base64
import collections
import errno
import json
import math
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import vrouter_testlib as tl  # noqa: E402  (tests/integration)

import websockets  # noqa: E402

SECRET = "abuse-bench-client-secret"
VIDEO_SECRET = "abuse-bench-video-server-secret"
ADDR_A = "127.0.0.1"  # the abuser's address
ADDR_B = "127.0.0.2"  # another loopback address: ordinary users
SPACE = "space-abuse"
ABUSER = "abuser"
FLEET = [{"id": f"sfu-{i}", "url": f"wss://sfu-{i}.media.test/rtc", "region": "eu-west",
          "capacity": 1000, "monitored": False} for i in range(4)]
# clients/js: errors.js RETRYABLE_ROUTER_CODES, client.js DEFAULT_BACKOFF and requestTimeoutMs.
RETRYABLE = {"no_video_server", "unavailable", "shutting_down", "rate_limited", "internal"}
JS_BACKOFF_BASE_S, JS_BACKOFF_MAX_S, JS_REQUEST_TIMEOUT_S = 0.25, 10.0, 10.0
SCENARIOS = ["churn-joins", "churn-lookups", "churn-pushes", "idle-handshakes",
             "refused-upgrades", "video-server-path"]
MAX_FDS_PER_PROCESS = 12000  # sockets one idle-holder process keeps (open-files limit 20,000)


# =============================================================================================
# Small helpers

def now():
    return time.monotonic()


def counter():
    return collections.Counter()


def rate(n, seconds):
    return round(n / seconds, 1) if seconds > 0 else None


def summary_ms(values):
    """{n, p50, p90, max} of durations in seconds, in milliseconds."""
    if not values:
        return {"n": 0, "p50": None, "p90": None, "max": None}
    v = sorted(values)

    def q(p):
        return round(v[min(len(v) - 1, int(math.floor(p * (len(v) - 1) + 0.5)))] * 1000, 1)
    return {"n": len(v), "p50": q(0.5), "p90": q(0.9), "max": round(v[-1] * 1000, 1)}


def classify(exc):
    """A short name for why a connection attempt or a call failed."""
    status = tl.rejection(exc)
    if status is not None:
        return f"http_{status[0]}"
    if isinstance(exc, websockets.ConnectionClosed):
        rcvd = getattr(exc, "rcvd", None)
        return f"closed_{rcvd.code if rcvd is not None else 1006}"
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, websockets.exceptions.InvalidMessage):
        return "closed_before_http_response"  # EOF or reset instead of the upgrade answer
    if isinstance(exc, asyncio.IncompleteReadError):
        return "closed_before_http_response"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, BrokenPipeError):
        return "broken_pipe"
    if isinstance(exc, OSError) and exc.errno:
        return f"oserror_{errno.errorcode.get(exc.errno, exc.errno)}"
    return type(exc).__name__


def full_jitter_s(attempt):
    """clients/js util.js fullJitterDelay with the default backoff, in seconds."""
    return random.random() * min(JS_BACKOFF_MAX_S, JS_BACKOFF_BASE_S * 2 ** min(attempt, 30))


def proc_cpu_s(pid):
    """utime + stime of `pid` in seconds (/proc/PID/stat), None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def proc_fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def nonblocking_socket(src):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        if src:
            s.bind((src, 0))
    except BaseException:
        s.close()
        raise
    return s


async def tcp_connect(port, src, timeout):
    """A connected non-blocking socket from `src` to 127.0.0.1:port (never blocks the loop)."""
    s = nonblocking_socket(src)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(s, ("127.0.0.1", port)),
                               timeout)
        return s
    except BaseException:
        s.close()
        raise


async def ws_open(port, path="/v1/client", subprotocol="vrouter.v1", src=ADDR_A, timeout=10.0):
    """A websockets connection from `src`; TCP connect and upgrade within `timeout` s."""
    t0 = now()
    sock = await tcp_connect(port, src, timeout)
    try:
        return await websockets.connect(
            f"ws://127.0.0.1:{port}{path}", sock=sock, subprotocols=[subprotocol],
            compression=None, ping_interval=None, open_timeout=max(0.1, timeout - (now() - t0)),
            close_timeout=0.5, max_size=2 ** 24)
    except BaseException:
        sock.close()
        raise


class Conn:
    """One /v1/client connection used one request at a time: call() sends and waits for the
    answer with the same id; pushes met meanwhile are counted."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 1
        self.pushes = counter()

    async def call(self, message, timeout=10.0):
        mid = self.next_id
        self.next_id += 1
        await self.ws.send(json.dumps({**message, "id": mid}))
        deadline = now() + timeout
        while True:
            m = json.loads(await asyncio.wait_for(self.ws.recv(), max(0.01, deadline - now())))
            if m.get("id") == mid or (m.get("type") == "error" and "id" not in m):
                return m
            self.pushes[m.get("type")] += 1

    async def close(self):
        try:
            await asyncio.wait_for(self.ws.close(), 1.5)
        except Exception:  # noqa: BLE001 - it is going away either way
            self.ws.transport.abort()

    def abort(self):
        self.ws.transport.abort()


def token(user, space=SPACE):
    return tl.client_token(user, space, SECRET)


# RFC 6455 by hand, for the scenarios that count frames and statuses themselves.

def ws_key():
    return base64.b64encode(os.urandom(16)).decode()


def masked_text(payload):
    """A masked client text frame of `payload` (bytes); XOR done on one big integer (fast)."""
    n = len(payload)
    key = os.urandom(4)
    if n < 126:
        head = bytes([0x81, 0x80 | n])
    elif n <= 0xFFFF:
        head = bytes([0x81, 0x80 | 126]) + struct.pack(">H", n)
    else:
        head = bytes([0x81, 0x80 | 127]) + struct.pack(">Q", n)
    mask = (key * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big")
    return head + key + body


async def read_frame(reader):
    """(opcode, payload) of the next server frame (unmasked)."""
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", await reader.readexactly(8))[0]
    if b1 & 0x80:
        await reader.readexactly(4)
    return b0 & 0x0F, await reader.readexactly(n)


async def raw_upgrade(port, path, protocol, src, timeout):
    """TCP connect from `src` and an upgrade request for `path`: (status, reader, writer).
    Raises (classify() names why) when no HTTP answer comes."""
    sock = await tcp_connect(port, src, timeout)
    try:
        reader, writer = await asyncio.open_connection(sock=sock)
    except BaseException:
        sock.close()
        raise
    try:
        writer.write(tl.upgrade_request(host="127.0.0.1", key=ws_key(), protocol=protocol,
                                        path=path))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        return int(head.split(b" ", 2)[1]), reader, writer
    except BaseException:
        writer.transport.abort()
        raise


# =============================================================================================
# Workers: the load generators, each in a child process (`abuse.py --worker JSON`). A worker
# prints one JSON line when ready, answers "check" with one JSON line, and on "stop" (or the end
# of its stdin: the parent is gone) prints its result as one JSON line and exits.

class Control:
    def __init__(self):
        self.stop = asyncio.Event()
        self.commands = asyncio.Queue()
        loop = asyncio.get_running_loop()
        self.buf = b""
        loop.add_reader(0, self._readable)

    def _readable(self):
        try:
            data = os.read(0, 4096)
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(0)
            self.stop.set()
            return
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            line = line.decode().strip()
            if line == "stop":
                self.stop.set()
            elif line:
                self.commands.put_nowait(line)


def emit(obj):
    try:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        pass


async def worker_main(params):
    ctl = Control()
    role = params["role"]
    runner = {"join-churn": join_churn, "lookup-churn": lookup_churn,
              "idle-holder": idle_holder, "refuser": refuser}[role]
    t_cpu = os.times()
    result = await runner(params, ctl)
    t_end = os.times()
    result["worker_cpu_s"] = round(t_end.user + t_end.system - t_cpu.user - t_cpu.system, 2)
    emit({"result": result})


async def until_stopped(ctl, limit_s):
    try:
        await asyncio.wait_for(ctl.stop.wait(), limit_s)
    except asyncio.TimeoutError:
        pass


async def run_loops(n, loop_fn, ctl, limit_s):
    """n copies of loop_fn(halt) until stopped; returns the measured duration. The loops also
    check `halt`: a cancellation can be lost inside asyncio.wait_for (Python 3.11)."""
    emit({"ready": True})
    t0 = now()
    halt = asyncio.Event()
    tasks = [asyncio.create_task(loop_fn(halt)) for _ in range(n)]
    await until_stopped(ctl, limit_s)
    elapsed = now() - t0
    halt.set()
    for t in tasks:
        t.cancel()
    _, pending = await asyncio.wait(tasks, timeout=5)
    for t in pending:  # still not done: cancel again, once more
        t.cancel()
    return elapsed


async def churn_connect(p, st, n):
    """One reconnect of a churning abuser: the connection (counted in n["connects"]), or None
    after counting why it failed in st["connect_errors"]."""
    try:
        ws = await ws_open(p["port"], src=p["src"], timeout=5)
    except asyncio.CancelledError:
        raise
    except Exception as e:  # noqa: BLE001 - counted
        st["connect_errors"][classify(e)] += 1
        await asyncio.sleep(0)
        return None
    n["connects"] += 1
    return Conn(ws)


async def join_churn(p, ctl):
    """One user (one token), `loops` reconnect loops: connect, hello, then `pairs` join/leave
    pairs, close; again. Counts everything the router answers."""
    st = {k: counter() for k in ("connect_errors", "hello_errors", "join_errors", "leave_errors",
                                 "closes", "pushes")}
    n = counter()

    async def one_loop(halt):
        while not halt.is_set():
            c = await churn_connect(p, st, n)
            if c is None:
                continue
            try:
                answer = await c.call({"type": "hello", "token": p["token"]}, 5)
                if answer["type"] != "welcome":
                    st["hello_errors"][answer.get("code")] += 1
                    pairs = 0  # and close: a refused hello ends this connection's turn
                else:
                    n["welcomes"] += 1
                    pairs = p["pairs"]
                for _ in range(pairs):
                    n["joins_sent"] += 1
                    answer = await c.call({"type": "join"}, 5)
                    if answer["type"] != "assigned":
                        st["join_errors"][answer.get("code")] += 1
                        break
                    n["assigned"] += 1
                    n["leaves_sent"] += 1
                    answer = await c.call({"type": "leave"}, 5)
                    if answer["type"] == "ack":
                        n["leaves_acked"] += 1
                    else:
                        st["leave_errors"][answer.get("code")] += 1
                        break
            except asyncio.CancelledError:
                c.abort()
                raise
            except Exception as e:  # noqa: BLE001 - closed under us (4000 replaced, 1008...)
                st["closes"][classify(e)] += 1
            finally:
                st["pushes"].update(c.pushes)
            await c.close()

    elapsed = await run_loops(p["loops"], one_loop, ctl, p["limit_s"])
    return {"elapsed_s": round(elapsed, 3), **dict(n), **{k: dict(v) for k, v in st.items()}}


class HelloRefused(Exception):
    pass


async def lookup_churn(p, ctl):
    """One user, `loops` reconnect loops: connect, hello, then lookups of `batch` ids pipelined
    (`window` in flight) until the router refuses one (rate_limited: reconnect, when
    `reconnect_on_limit`) or closes the connection."""
    ids = json.dumps([f"nobody-{i:05d}" for i in range(p["batch"])])
    st = {k: counter() for k in ("connect_errors", "hello_errors", "lookup_errors", "closes",
                                 "pushes")}
    n = counter()

    async def one_loop(halt):
        while not halt.is_set():
            c = await churn_connect(p, st, n)
            if c is None:
                continue
            ws = c.ws
            reader = None
            closing = False  # set when this end closes: the reader counts the router's closes
            try:
                answer = await c.call({"type": "hello", "token": p["token"]}, 5)
                if answer["type"] != "welcome":
                    st["hello_errors"][answer.get("code")] += 1
                    raise HelloRefused
                n["welcomes"] += 1
                window = asyncio.Semaphore(p["window"])
                done = asyncio.Event()

                async def read():
                    try:
                        async for raw in ws:
                            if raw.startswith('{"type":"lookup_result"'):
                                n["lookup_results"] += 1
                                n["answer_bytes"] += len(raw)
                                window.release()
                                continue
                            m = json.loads(raw)
                            if m.get("type") == "error":
                                st["lookup_errors"][m.get("code")] += 1
                                window.release()
                                if m.get("code") == "rate_limited" and p["reconnect_on_limit"]:
                                    done.set()
                            elif m.get("type") == "lookup_result":
                                n["lookup_results"] += 1
                                n["answer_bytes"] += len(raw)
                                window.release()
                            else:
                                st["pushes"][m.get("type")] += 1
                    except websockets.ConnectionClosed as e:
                        if not closing:
                            st["closes"][classify(e)] += 1
                    else:
                        if not closing:
                            st["closes"][f"closed_{ws.close_code}"] += 1
                    finally:
                        done.set()
                        for _ in range(p["window"]):
                            window.release()

                reader = asyncio.create_task(read())
                mid = 1000
                while not (done.is_set() or halt.is_set()):
                    await window.acquire()
                    if done.is_set():
                        break
                    mid += 1
                    await ws.send('{"type":"lookup","id":%d,"users":%s}' % (mid, ids))
                    n["lookups_sent"] += 1
            except asyncio.CancelledError:
                closing = True
                c.abort()
                raise
            except HelloRefused:
                pass
            except Exception as e:  # noqa: BLE001
                if reader is None:  # else the reader saw it
                    st["closes"][classify(e)] += 1
            finally:
                st["pushes"].update(c.pushes)
            closing = ws.open  # still open: this end decided to close (else the reader counts)
            await c.close()
            if reader is not None:
                await asyncio.gather(reader, return_exceptions=True)

    elapsed = await run_loops(p["loops"], one_loop, ctl, p["limit_s"])
    return {"elapsed_s": round(elapsed, 3), **dict(n), **{k: dict(v) for k, v in st.items()}}


def socket_state(s):
    """'open', 'fin' (the router closed it) or 'reset', seen from this end without reading."""
    try:
        data = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        return "fin" if data == b"" else "data"
    except BlockingIOError:
        return "open"
    except ConnectionResetError:
        return "reset"
    except OSError as e:
        return f"oserror_{errno.errorcode.get(e.errno, e.errno)}"


async def idle_holder(p, ctl):
    """`count` TCP connections from `src` that never send a byte, held until stopped."""
    socks, errors = [], counter()
    sem = asyncio.Semaphore(256)
    t0 = now()

    async def one():
        async with sem:
            try:
                socks.append(await tcp_connect(p["port"], p["src"], 5))
            except Exception as e:  # noqa: BLE001
                errors[classify(e)] += 1

    await asyncio.gather(*(one() for _ in range(p["count"])))
    emit({"ready": True, "opened": len(socks), "connect_errors": dict(errors),
          "open_s": round(now() - t0, 2)})
    deadline = now() + p["limit_s"]
    while not ctl.stop.is_set() and now() < deadline:
        getter = asyncio.create_task(ctl.commands.get())
        stopper = asyncio.create_task(ctl.stop.wait())
        done, pending = await asyncio.wait({getter, stopper}, timeout=deadline - now(),
                                           return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            t.cancel()
        if getter in done and getter.result() == "check":
            emit({"states": dict(collections.Counter(socket_state(s) for s in socks))})
    states = dict(collections.Counter(socket_state(s) for s in socks))
    for s in socks:
        s.close()
    return {"opened": len(socks), "connect_errors": dict(errors), "states_at_stop": states}


async def refuser(p, ctl):
    """Upgrade requests the router should refuse, paced at `rate`/s per kind, from `src`. Each
    one reads the answer's status, then waits up to 1 s for the router to close (a well-behaved
    client would close at once; waiting shows whether the router lets go), then closes."""
    kinds = p["kinds"]  # [{"name", "path", "protocol"}]
    st = {k["name"]: {"statuses": counter(), "router_closed_within_1s": 0, "left_open_1s": 0,
                      "sent": 0, "answer_s": []} for k in kinds}
    inflight = set()

    async def one(kind):
        s = st[kind["name"]]
        t0 = now()
        try:
            status, reader, writer = await raw_upgrade(p["port"], kind["path"], kind["protocol"],
                                                       p["src"], 3)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001
            s["statuses"][classify(e)] += 1
            return
        s["statuses"][str(status)] += 1
        s["answer_s"].append(now() - t0)
        try:
            deadline = now() + 1.0
            while True:
                data = await asyncio.wait_for(reader.read(65536), max(0.01, deadline - now()))
                if not data:
                    s["router_closed_within_1s"] += 1
                    break
        except (asyncio.TimeoutError, ConnectionError):
            s["left_open_1s"] += 1
        finally:
            writer.transport.abort()

    async def pace(kind):
        interval = 1.0 / p["rate"]
        t = now()
        while True:
            t += interval
            delay = t - now()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1:
                t = now()  # far behind: do not burst to catch up
            if len(inflight) >= p["max_inflight"]:
                st[kind["name"]]["statuses"]["skipped_inflight_cap"] += 1
                continue
            st[kind["name"]]["sent"] += 1
            task = asyncio.create_task(one(kind))
            inflight.add(task)
            task.add_done_callback(inflight.discard)

    emit({"ready": True})
    t0 = now()
    pacers = [asyncio.create_task(pace(k)) for k in kinds]
    await until_stopped(ctl, p["limit_s"])
    elapsed = now() - t0
    for t in pacers:
        t.cancel()
    await asyncio.gather(*pacers, return_exceptions=True)
    if inflight:
        await asyncio.wait(set(inflight), timeout=5)
    for t in list(inflight):
        t.cancel()
    out = {}
    for name, s in st.items():
        out[name] = {"sent": s["sent"], "statuses": dict(s["statuses"]),
                     "router_closed_within_1s": s["router_closed_within_1s"],
                     "left_open_1s": s["left_open_1s"], "answer_ms": summary_ms(s["answer_s"])}
    return {"elapsed_s": round(elapsed, 3), "kinds": out}


class Worker:
    """A worker child process, driven over its stdin/stdout."""

    ALL = []

    def __init__(self, proc, role):
        self.proc, self.role = proc, role

    @classmethod
    async def start(cls, role, **params):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, os.path.abspath(__file__), "--worker",
            json.dumps({"role": role, **params}),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, limit=2 ** 22)
        w = cls(proc, role)
        cls.ALL.append(w)
        return w

    async def line(self, timeout):
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            raise RuntimeError(f"worker {self.role} exited ({await self.proc.wait()}) without "
                               f"an answer")
        return json.loads(raw)

    async def ready(self, timeout=60):
        return await self.line(timeout)

    async def command(self, cmd, timeout=10):
        self.proc.stdin.write(cmd.encode() + b"\n")
        await self.proc.stdin.drain()
        return await self.line(timeout)

    async def finish(self, timeout=30):
        try:
            self.proc.stdin.write(b"stop\n")
            await self.proc.stdin.drain()
            self.proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while True:
                m = await self.line(timeout)
                if "result" in m:
                    return m["result"]
        finally:
            await asyncio.wait_for(self.proc.wait(), 10)

    def kill(self):
        # By pid: the event loop that owns self.proc may already be closed (Ctrl-C).
        if self.proc.returncode is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def kill_workers():
    for w in Worker.ALL:
        w.kill()
    Worker.ALL.clear()


# =============================================================================================
# The router under test

class RouterRun:
    """A router started for one scenario, with what is needed to sample it."""

    def __init__(self, binary, tmp, extra_args):
        fleet = os.path.join(tmp, "fleet.json")
        with open(fleet, "w") as f:
            json.dump(FLEET, f)
        env = {k: v for k, v in os.environ.items() if not k.startswith("VROUTER_")}
        env["VROUTER_AUTH_SECRET"] = SECRET
        env["VROUTER_VIDEO_SERVER_SECRET"] = VIDEO_SECRET
        self.args = ["--video-servers", fleet, *extra_args]
        # setpriv: the router gets SIGTERM if this process dies without stopping it.
        self.r = tl.Router(binary, self.args, env=env, name="abuse",
                           prefix=["setpriv", "--pdeathsig", "TERM", "--"], log_level="info",
                           drain_window_ms=300, start_timeout=20, stop_timeout=10,
                           http_timeout=3)
        self.pid = self.r.pid
        self.port = self.r.ws
        self.base_fds = proc_fds(self.pid)
        self.exit_code = None

    def alive(self):
        return self.r.alive()

    async def metrics(self):
        try:
            return await asyncio.to_thread(self.r.metrics)
        except Exception:  # noqa: BLE001 - a router that does not answer is an observation
            return None

    async def replica(self):
        try:
            return await asyncio.to_thread(self.r.get_json, "/v1/replica")
        except Exception:  # noqa: BLE001
            return None

    def cpu(self):
        return proc_cpu_s(self.pid)

    def fds(self):
        return proc_fds(self.pid)

    def stop(self):
        ok = tl.stop_process(self.r.proc, 10)
        self.exit_code = self.r.proc.returncode
        return {"exit_code": self.exit_code, "exited_on_sigterm": ok}


def gauge(parsed, name, **labels):
    if parsed is None:
        return None
    want = {(k, str(v)) for k, v in labels.items()}
    values = [v for (n, ls), v in parsed.items() if n == name and want <= ls]
    if not values:
        return None
    total = sum(values)
    return int(total) if total == int(total) else total


def counters_delta(before, after):
    """Every *_total series that moved between two /metrics snapshots: {"name{labels}": delta}."""
    if before is None or after is None:
        return None
    out = {}
    for key, v in after.items():
        name, labels = key
        if not name.endswith("_total"):
            continue
        d = v - before.get(key, 0)
        if d:
            label = ",".join(f"{k}={val}" for k, val in sorted(labels))
            out[f"{name}{{{label}}}" if label else name] = int(d) if d == int(d) else d
    return dict(sorted(out.items()))


class Window:
    """The measured window of a scenario: router CPU, counters and (optionally) samples of its
    connections, fds and handshakes every `every` s."""

    def __init__(self, router, every=None):
        self.router, self.every = router, every
        self.samples = []
        self.task = None

    async def start(self):
        self.m0 = await self.router.metrics()
        self.cpu0, self.t0 = self.router.cpu(), now()
        if self.every:
            self.task = asyncio.create_task(self._sample())

    async def _sample(self):
        while True:
            t = now()
            replica, m = await asyncio.gather(self.router.replica(), self.router.metrics())
            conns = (replica or {}).get("connections") or {}
            self.samples.append({
                "t": round(t - self.t0, 2), "fds": self.router.fds(),
                "open": conns.get("open"), "ws": gauge(m, "vrouter_connections", transport="ws"),
                "wss": gauge(m, "vrouter_connections", transport="wss"),
                "handshakes_in_flight": gauge(m, "vrouter_handshakes_in_flight"),
                "video_server_connections": gauge(m, "vrouter_video_server_connections")})
            await asyncio.sleep(max(0.0, self.every - (now() - t)))

    async def end(self):
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        cpu1, t1 = self.router.cpu(), now()
        self.m1 = await self.router.metrics()
        self.seconds = t1 - self.t0
        cpu = (round(100 * (cpu1 - self.cpu0) / self.seconds, 1)
               if cpu1 is not None and self.cpu0 is not None else None)
        return {"window_s": round(self.seconds, 2), "router_cpu_pct": cpu,
                "router_alive": self.router.alive(),
                "router_counters": counters_delta(self.m0, self.m1)}


def abuse_settings(binary):
    """The defaults of the binary's "Security and abuse limits" (and a few related) settings."""
    try:
        out = subprocess.run([binary, "--help-settings-json"], capture_output=True, text=True,
                             timeout=10, check=True).stdout
        settings = json.loads(out)["settings"]
    except Exception as e:  # noqa: BLE001
        return {"error": repr(e)}
    keep = {"--max-connections", "--backlog", "--handshake-timeout-ms", "--hello-timeout-ms",
            "--threads", "--max-new-users-per-interval", "--slow-start-window-ms"}
    return {s["flag"]: s["default"] for s in settings
            if s["flag"] in keep or s["section"].startswith("Security")}


# =============================================================================================
# Ordinary users (this process)

async def ordinary_join(port, user, src, start_delay):
    """One user who joins once, at `start_delay` s, the way clients/js does: connection
    failures and retryable refusals are retried with full-jitter backoff until the join has
    waited JS_REQUEST_TIMEOUT_S. Returns (outcome, the open Conn or None)."""
    await asyncio.sleep(start_delay)
    t0 = now()
    deadline = t0 + JS_REQUEST_TIMEOUT_S
    codes, attempt, conn = [], 0, None
    out = {"user": user, "ok": False}

    async def backoff():
        nonlocal attempt
        await asyncio.sleep(min(full_jitter_s(attempt), max(0.0, deadline - now())))
        attempt += 1

    while now() < deadline:
        if conn is None:
            try:
                conn = Conn(await ws_open(port, src=src, timeout=max(0.1, deadline - now())))
                answer = await conn.call({"type": "hello", "token": token(user)},
                                         max(0.1, deadline - now()))
            except Exception as e:  # noqa: BLE001
                codes.append("connect:" + classify(e))
                if conn:
                    conn.abort()
                conn = None
                await backoff()
                continue
            if answer["type"] != "welcome":
                codes.append("hello:" + str(answer.get("code")))
                await conn.close()
                conn = None
                if answer.get("code") not in RETRYABLE:
                    break
                await backoff()
                continue
        try:
            answer = await conn.call({"type": "join"}, max(0.1, deadline - now()))
        except Exception as e:  # noqa: BLE001
            codes.append("join:" + classify(e))
            conn.abort()
            conn = None
            await backoff()
            continue
        if answer["type"] == "assigned":
            out.update(ok=True, server=answer["server"]["id"])
            break
        codes.append(str(answer.get("code")))
        if answer.get("code") not in RETRYABLE:
            break
        await backoff()
    out.update(ms=round((now() - t0) * 1000, 1), codes=codes)
    if not out["ok"]:
        out["final"] = codes[-1] if codes else "timeout"
    return out, conn


async def session(port, user, src, refusals, limit_s=15.0):
    """A welcomed connection of `user` for a scenario's set-up (held sessions, watchers). Like
    clients/js, refusals (connection failures, a retryable hello refusal such as a per-address
    hello budget) are retried with full-jitter backoff, for `limit_s` s at most; each one is
    counted in `refusals`. None if it never got a welcome."""
    deadline = now() + limit_s
    attempt = 0
    while now() < deadline:
        conn = None
        try:
            conn = Conn(await ws_open(port, src=src, timeout=max(0.1, deadline - now())))
            answer = await conn.call({"type": "hello", "token": token(user)},
                                     max(0.1, deadline - now()))
            if answer["type"] == "welcome":
                return conn
            refusals["hello:" + str(answer.get("code"))] += 1
            conn.abort()
            if answer.get("code") not in RETRYABLE:
                return None
        except Exception as e:  # noqa: BLE001
            refusals["connect:" + classify(e)] += 1
            if conn is not None:
                conn.abort()
        await asyncio.sleep(min(full_jitter_s(attempt), max(0.0, deadline - now())))
        attempt += 1
    return None


async def timed_welcome(port, src, user, cap):
    """TCP connect, upgrade, hello: seconds to welcome, or why not within `cap` s."""
    t0 = now()
    conn = None
    try:
        async def go():
            nonlocal conn
            conn = Conn(await ws_open(port, src=src, timeout=cap))
            return await conn.call({"type": "hello", "token": token(user)}, cap)
        answer = await asyncio.wait_for(go(), cap)
        result = ({"ok": True, "s": now() - t0} if answer["type"] == "welcome"
                  else {"ok": False, "why": "hello:" + str(answer.get("code")), "s": now() - t0})
    except Exception as e:  # noqa: BLE001
        result = {"ok": False, "why": classify(e), "s": now() - t0}
    if conn is not None:
        conn.abort()
    return result


class LookupProbe:
    """An ordinary user (from `src`) looking up 10 users every 100 ms: the latency others see."""

    def __init__(self, port, src):
        self.port, self.src, self.lat, self.errors, self.task = port, src, [], counter(), None

    async def _run(self):
        try:
            conn = Conn(await ws_open(self.port, src=self.src, timeout=5))
            answer = await conn.call({"type": "hello", "token": token("probe")}, 5)
            if answer["type"] != "welcome":
                self.errors["hello:" + str(answer.get("code"))] += 1
                return
        except Exception as e:  # noqa: BLE001
            self.errors["connect:" + classify(e)] += 1
            return
        users = [f"watcher-{i}" for i in range(9)] + [ABUSER]
        try:
            while True:
                t0 = now()
                try:
                    answer = await conn.call({"type": "lookup", "users": users}, 5)
                    if answer["type"] == "lookup_result":
                        self.lat.append(now() - t0)
                    else:
                        self.errors[str(answer.get("code"))] += 1
                except asyncio.TimeoutError:
                    self.errors["timeout"] += 1
                await asyncio.sleep(max(0.0, 0.1 - (now() - t0)))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001
            self.errors[classify(e)] += 1
        finally:
            conn.abort()

    def start(self):
        self.task = asyncio.create_task(self._run())

    async def stop(self):
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        return {"lookup_ms": summary_ms(self.lat), "errors": dict(self.errors)}


# =============================================================================================
# Scenarios. Each returns {"headline": {...}, "details": {...}}; the router is started and
# stopped by run_scenario().

async def churn_joins(cfg, router):
    W = cfg.duration
    abuser = await Worker.start("join-churn", port=router.port, src=ADDR_A,
                                token=cfg.abuser_token, loops=cfg.loops, pairs=cfg.pairs,
                                limit_s=W + JS_REQUEST_TIMEOUT_S + 20)
    await abuser.ready()
    win = Window(router)
    await win.start()
    probe = LookupProbe(router.port, cfg.others_address)
    probe.start()
    n = cfg.others
    # Spread through the window; each may retry for up to 10 s (clients/js requestTimeoutMs), so
    # the abuse goes on until the last of them is done.
    jobs = [asyncio.create_task(ordinary_join(router.port, f"user-{i}", cfg.others_address,
                                              W * i / n))
            for i in range(n)]
    results = await asyncio.gather(*jobs)
    abused = await abuser.finish()
    window = await win.end()
    probe_out = await probe.stop()
    for _, conn in results:
        if conn is not None:
            await conn.close()
    others = [r for r, _ in results]
    ok = [r for r in others if r["ok"]]
    failed = collections.Counter(r["final"] for r in others if not r["ok"])
    refusals = collections.Counter(c for r in others for c in r["codes"])
    el = abused["elapsed_s"]
    headline = {
        "abuser_assigned_per_s": rate(abused.get("assigned", 0), el),
        "abuser_hellos_accepted_per_s": rate(abused.get("welcomes", 0), el),
        "abuser_connects_per_s": rate(abused.get("connects", 0), el),
        "abuser_hello_refusals": abused["hello_errors"],
        "abuser_connect_failures": abused["connect_errors"],
        "abuser_join_refusals": abused["join_errors"],
        "abuser_connections_closed_by_router": abused["closes"],
        "abuser_process_cpu_pct": rate(100 * abused["worker_cpu_s"], el),
        "router_assignment_writes_per_s": rate(
            (window["router_counters"] or {}).get("vrouter_assignments_written_total", 0),
            window["window_s"]),
        "others_joined": f"{len(ok)}/{n}",
        "others_failed_final_codes": dict(failed),
        "others_refusals_seen": dict(refusals),
        "others_join_ms": summary_ms([r["ms"] / 1000 for r in ok]),
        "probe_lookup_ms_p50_max": [probe_out["lookup_ms"]["p50"], probe_out["lookup_ms"]["max"]],
        "router_cpu_pct": window["router_cpu_pct"],
    }
    return {"headline": headline,
            "details": {"abuser": abused, "others": others, "probe": probe_out, **window}}


async def churn_lookups(cfg, router):
    abuser = await Worker.start("lookup-churn", port=router.port, src=ADDR_A,
                                token=cfg.abuser_token, loops=cfg.loops, batch=cfg.batch,
                                window=cfg.lookup_window, reconnect_on_limit=True,
                                limit_s=cfg.duration + 20)
    await abuser.ready()
    win = Window(router)
    await win.start()
    probe = LookupProbe(router.port, cfg.others_address)
    probe.start()
    await asyncio.sleep(cfg.duration)
    abused = await abuser.finish()
    window = await win.end()
    probe_out = await probe.stop()
    el = abused["elapsed_s"]
    headline = {
        "abuser_lookups_answered_per_s": rate(abused.get("lookup_results", 0), el),
        "abuser_answer_bytes_per_s": rate(abused.get("answer_bytes", 0), el),
        "abuser_ids_answered_per_s": rate(abused.get("lookup_results", 0) * cfg.batch, el),
        "abuser_lookups_sent_per_s": rate(abused.get("lookups_sent", 0), el),
        "abuser_lookup_refusals": abused["lookup_errors"],
        "abuser_hellos_accepted_per_s": rate(abused.get("welcomes", 0), el),
        "abuser_hello_refusals": abused["hello_errors"],
        "abuser_connect_failures": abused["connect_errors"],
        "abuser_connections_closed_by_router": abused["closes"],
        "router_cpu_pct": window["router_cpu_pct"],
        "abuser_process_cpu_pct": rate(100 * abused["worker_cpu_s"], el),
        "probe_lookup_ms_p50_max": [probe_out["lookup_ms"]["p50"], probe_out["lookup_ms"]["max"]],
    }
    return {"headline": headline, "details": {"abuser": abused, "probe": probe_out, **window}}


async def churn_pushes(cfg, router):
    watchers, pushes, closed = [], [counter() for _ in range(cfg.watchers)], counter()
    setup_errors = counter()
    counting = asyncio.Event()

    async def watcher(i):
        conn = await session(router.port, f"watcher-{i}", cfg.others_address, setup_errors)
        if conn is None:
            return None
        try:
            answer = await conn.call({"type": "watch", "users": [ABUSER]}, 10)
            if answer["type"] != "watch_result":
                setup_errors["watch:" + str(answer.get("code"))] += 1
        except Exception as e:  # noqa: BLE001
            setup_errors["watch:" + classify(e)] += 1
            return None
        return conn

    async def read(i, conn):
        try:
            async for raw in conn.ws:
                if counting.is_set():
                    pushes[i][json.loads(raw).get("type")] += 1
            closed[f"closed_{conn.ws.close_code}"] += 1
        except websockets.ConnectionClosed as e:
            closed[classify(e)] += 1

    conns = await asyncio.gather(*(watcher(i) for i in range(cfg.watchers)))
    readers = [asyncio.create_task(read(i, c)) for i, c in enumerate(conns) if c is not None]
    watchers = [c for c in conns if c is not None]
    abuser = await Worker.start("join-churn", port=router.port, src=ADDR_A,
                                token=cfg.abuser_token, loops=cfg.loops, pairs=cfg.pairs,
                                limit_s=cfg.duration + 20)
    await abuser.ready()
    win = Window(router)
    await win.start()
    counting.set()
    await asyncio.sleep(cfg.duration)
    abused = await abuser.finish()
    await asyncio.sleep(0.3)  # pushes of the last changes still on their way
    counting.clear()
    window = await win.end()
    closed_in_window = dict(closed)
    for c in watchers:
        c.abort()
    for t in readers:
        t.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    total = sum((p for p in pushes), counter())
    per_watcher = [sum(pushes[i].values()) for i, c in enumerate(conns) if c is not None]
    el = abused["elapsed_s"]
    rc = window["router_counters"] or {}
    headline = {
        "watchers_connected": len(watchers),
        "watcher_setup_refusals": dict(setup_errors),
        "pushes_per_s_all_watchers": rate(sum(total.values()), el),
        "pushes_by_type": dict(total),
        # What a watcher sees: one moved or left push per change of the abuser's assignment.
        "abuser_changes_per_s": rate(sum(per_watcher) / max(1, len(per_watcher)), el),
        "abuser_assigned_per_s": rate(abused.get("assigned", 0), el),
        "abuser_leaves_acked_per_s": rate(abused.get("leaves_acked", 0), el),
        "router_assignment_writes_per_s": rate(rc.get("vrouter_assignments_written_total", 0),
                                               window["window_s"]),
        "watchers_closed_during_window": closed_in_window,
        "abuser_connections_closed_by_router": abused["closes"],
        "abuser_process_cpu_pct": rate(100 * abused["worker_cpu_s"], el),
        "router_cpu_pct": window["router_cpu_pct"],
    }
    return {"headline": headline,
            "details": {"abuser": abused, "setup_errors": dict(setup_errors),
                        "pushes_per_watcher": {"min": min(per_watcher, default=0),
                                               "max": max(per_watcher, default=0)},
                        **window}}


async def idle_handshakes(cfg, router):
    win = Window(router, every=0.5)
    await win.start()
    holders, left = [], cfg.idle
    while left > 0:
        n = min(left, MAX_FDS_PER_PROCESS)
        holders.append(await Worker.start("idle-holder", port=router.port, src=ADDR_A, count=n,
                                          limit_s=120))
        left -= n
    opened = [await h.ready(120) for h in holders]
    await asyncio.sleep(0.5)  # the router's answer to them at accept, if any, has come
    settled = [await h.command("check") for h in holders]
    cap = cfg.welcome_cap
    same = [asyncio.create_task(timed_welcome(router.port, ADDR_A, f"same-{i}", cap))
            for i in range(cfg.timed)]
    other = [asyncio.create_task(timed_welcome(router.port, ADDR_B, f"other-{i}", cap))
             for i in range(cfg.timed)]
    same, other = await asyncio.gather(*same), await asyncio.gather(*other)
    after = [await h.command("check") for h in holders]
    held = [await h.finish() for h in holders]
    window = await win.end()

    def group(results):
        ok = [r["s"] for r in results if r["ok"]]
        s = summary_ms(ok)
        return {"welcomed": f"{len(ok)}/{len(results)}", "p50_ms": s["p50"], "max_ms": s["max"],
                "timed_out": sum(1 for r in results if r.get("why") == "timeout"),
                "failures": dict(collections.Counter(r["why"] for r in results if not r["ok"]))}

    def merged(states):
        total = counter()
        for s in states:
            total.update(s.get("states") or s.get("states_at_stop") or {})
        return dict(total)

    samples = win.samples
    headline = {
        "idle_sockets_opened": sum(o["opened"] for o in opened),
        "idle_connect_failures": merged([{"states": o["connect_errors"]} for o in opened]),
        "same_address": group(same),
        "other_address": group(other),
        "idle_sockets_before_timing": merged(settled),
        "idle_sockets_after_timing": merged(after),
        "peak_handshakes_in_flight": max((s["handshakes_in_flight"] or 0 for s in samples),
                                         default=None),
        "peak_router_fds": max((s["fds"] or 0 for s in samples), default=None),
    }
    return {"headline": headline,
            "details": {"same": same, "other": other, "holders": held, "samples": samples,
                        **window}}


async def refused_upgrades(cfg, router):
    held_errors = counter()
    held = [c for c in await asyncio.gather(
        *(session(router.port, f"held-{i}", ADDR_A, held_errors) for i in range(cfg.per_ip)))
        if c is not None]
    await asyncio.sleep(0.3)
    base_fds = router.fds()
    win = Window(router, every=0.25)
    await win.start()
    refusing = await Worker.start(
        "refuser", port=router.port, src=ADDR_A, rate=cfg.refused_rate, max_inflight=4000,
        limit_s=cfg.duration + 20,
        kinds=[{"name": "wrong_path", "path": "/v1/nothing-here", "protocol": "vrouter.v1"},
               {"name": "over_limit", "path": "/v1/client", "protocol": "vrouter.v1"}])
    await refusing.ready()
    t_start = now()
    ordinary = []
    i = 0
    while now() - t_start < cfg.duration:
        t0 = now()
        r = await timed_welcome(router.port, ADDR_B, f"ordinary-{i}", 5)
        ordinary.append({"at_s": round(t0 - t_start, 2), **r})
        i += 1
        await asyncio.sleep(max(0.0, 0.5 - (now() - t0)))
    refused = await refusing.finish()
    await asyncio.sleep(0.5)
    window = await win.end()
    for c in held:
        c.abort()

    samples = win.samples
    for s in samples:
        if None not in (s["open"], s["ws"], s["handshakes_in_flight"]):
            s["phantom"] = s["open"] - s["ws"] - (s["wss"] or 0) - s["handshakes_in_flight"]
        else:
            s["phantom"] = None
        s["fds_over_sessions"] = (s["fds"] - base_fds) if s["fds"] is not None else None
    statuses = collections.Counter(r["why"] if not r["ok"] else "welcome" for r in ordinary)
    headline = {
        "held_sessions_from_127.0.0.1": len(held),
        "held_session_refusals": dict(held_errors),
        "refused_sent_per_kind": {k: v["sent"] for k, v in refused["kinds"].items()},
        "refused_answers": {k: v["statuses"] for k, v in refused["kinds"].items()},
        "router_closed_refused_within_1s": {k: v["router_closed_within_1s"]
                                            for k, v in refused["kinds"].items()},
        "peak_phantom_connections": max((s["phantom"] for s in samples
                                         if s["phantom"] is not None), default=None),
        "peak_router_open_connections": max((s["open"] for s in samples
                                             if s["open"] is not None), default=None),
        "peak_router_fds_above_held": max((s["fds_over_sessions"] for s in samples
                                           if s["fds_over_sessions"] is not None), default=None),
        "ordinary_outcomes": dict(statuses),
        "ordinary_got_503": statuses.get("http_503", 0) > 0,
        "router_cpu_pct": window["router_cpu_pct"],
    }
    return {"headline": headline,
            "details": {"held_errors": dict(held_errors), "refuser": refused,
                        "ordinary": ordinary, "samples": samples, "base_fds": base_fds,
                        **window}}


async def video_server_path(cfg, router):
    win = Window(router)
    await win.start()
    statuses, opened = counter(), []
    sem = asyncio.Semaphore(cfg.vs_concurrency)

    async def one(i):
        async with sem:
            try:
                status, reader, writer = await raw_upgrade(router.port, "/v1/video-server",
                                                           "vrouter.video.v1", ADDR_A, 5)
            except Exception as e:  # noqa: BLE001
                statuses[classify(e)] += 1
                return
            statuses[str(status)] += 1
            if status == 101:
                opened.append((now(), reader, writer))
            else:
                writer.transport.abort()

    t0 = now()
    await asyncio.gather(*(one(i) for i in range(cfg.vs_upgrades)))
    upgrades_s = now() - t0
    conns_after = await router.replica()
    fds_after = router.fds()

    flood = {"connection": None}
    if opened:
        _, reader, writer = max(opened, key=lambda o: o[0])  # the newest: most of its hello time
        opened_at = now()
        answered, codes, close = 0, counter(), None

        async def read():
            nonlocal answered, close
            try:
                while True:
                    opcode, payload = await read_frame(reader)
                    if opcode == 0x8:
                        close = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
                        return
                    if opcode == 0x1:
                        answered += 1
                        try:
                            m = json.loads(payload)
                            codes[m.get("code") or m.get("type")] += 1
                        except ValueError:
                            codes["not_json"] += 1
            except (asyncio.IncompleteReadError, ConnectionError) as e:
                close = "eof" if isinstance(e, asyncio.IncompleteReadError) else classify(e)

        rd = asyncio.create_task(read())
        sent, send_error = 0, None
        try:
            for seq in range(cfg.vs_messages):
                writer.write(masked_text(json.dumps(
                    {"type": "stats", "seq": seq, "peers": 0, "media_peers": 0,
                     "packets_in": 0, "packets_out": 0, "bytes_in": 0, "bytes_out": 0,
                     "cpu": 0.0}).encode()))
                sent += 1
                if sent % 200 == 0:
                    await writer.drain()
                    if rd.done():
                        break
            await writer.drain()
        except Exception as e:  # noqa: BLE001
            send_error = classify(e)
        sent_s = now() - opened_at
        # Until the router closes it (its hello timeout at the latest), answered or not.
        limit = cfg.hello_timeout_s + 3
        await asyncio.wait({rd}, timeout=limit)
        waited = now() - opened_at
        if not rd.done():
            rd.cancel()
            await asyncio.gather(rd, return_exceptions=True)
        flood = {"sent": sent, "send_error": send_error, "sent_in_ms": round(sent_s * 1000, 1),
                 "answered": answered, "answers": dict(codes),
                 "router_closed": close is not None, "close_code": close,
                 "closed_after_ms": round(waited * 1000, 1) if close is not None else None,
                 "waited_ms": round(waited * 1000, 1)}
    for _, _, w in opened:
        w.transport.abort()
    window = await win.end()
    headline = {
        "upgrades": cfg.vs_upgrades,
        "got_101": statuses.get("101", 0),
        "upgrade_answers": dict(statuses),
        "router_open_connections_after_upgrades": ((conns_after or {}).get("connections")
                                                   or {}).get("open"),
        "messages_before_register_sent": flood.get("sent"),
        "answered_before_close": flood.get("answered"),
        "close_code": flood.get("close_code"),
        "closed_after_ms": flood.get("closed_after_ms"),
        "router_cpu_pct": window["router_cpu_pct"],
    }
    return {"headline": headline,
            "details": {"upgrades_s": round(upgrades_s, 2), "router_fds_after_upgrades": fds_after,
                        "flood": flood, **window}}


SCENARIO_SETUP = {
    # name: (function, extra router flags (cfg -> list))
    "churn-joins": (churn_joins, lambda cfg: []),
    "churn-lookups": (churn_lookups, lambda cfg: []),
    "churn-pushes": (churn_pushes, lambda cfg: []),
    "idle-handshakes": (idle_handshakes, lambda cfg: []),
    "refused-upgrades": (refused_upgrades, lambda cfg: [
        "--max-connections-per-ip", str(cfg.per_ip),
        *(["--max-connections", str(cfg.refused_max_connections)]
          if cfg.refused_max_connections else [])]),
    "video-server-path": (video_server_path, lambda cfg: [
        "--max-connections-per-ip", str(cfg.per_ip)]),
}


async def run_scenario(cfg, name, tmp):
    fn, flags = SCENARIO_SETUP[name]
    extra = flags(cfg)
    out = {"scenario": name, "router_flags": extra, "loadavg_at_start": os.getloadavg()}
    t0 = now()
    router = RouterRun(cfg.vrouter, tmp, extra)
    try:
        out.update(await fn(cfg, router))
    except Exception as e:  # noqa: BLE001 - the tool failed here; the others still run
        out["tool_error"] = "".join(traceback.format_exception(e))
    finally:
        kill_workers()
        out["router_stop"] = await asyncio.to_thread(router.stop)
        tail = [ln.strip() for ln in router.r.lines
                if '"level":"error"' in ln or '"level":"critical"' in ln][-5:]
        if tail:
            out["router_error_log_tail"] = tail
        tl.STARTED.remove(router.r.proc)
    out["scenario_wall_s"] = round(now() - t0, 1)
    out["loadavg_at_end"] = os.getloadavg()
    return out


# =============================================================================================
# Output

def fmt(v):
    if isinstance(v, dict):
        if set(v) >= {"p50", "max"}:
            return f"p50 {v['p50']} / max {v['max']} ms (n={v.get('n')})"
        return ", ".join(f"{k}: {fmt(x)}" for k, x in v.items()) or "-"
    if isinstance(v, list):
        return " / ".join(fmt(x) for x in v)
    return "-" if v is None else str(v)


def table(report):
    lines = [f"vrouter abuse bench: {report['binary']} ({report['version']})"]
    for s in report["scenarios"]:
        lines.append("")
        load = (s.get("loadavg_at_start") or [None])[0], (s.get("loadavg_at_end") or [None])[0]
        lines.append(f"== {s['scenario']}  {' '.join(s['router_flags'])}  "
                     f"(load average {load[0]:.1f} -> {load[1]:.1f})" if None not in load
                     else f"== {s['scenario']}  {' '.join(s['router_flags'])}")
        if "tool_error" in s:
            lines.append("   TOOL ERROR: " + s["tool_error"].strip().splitlines()[-1])
        for k, v in (s.get("headline") or {}).items():
            lines.append(f"   {k:42} {fmt(v)}")
        stop = s.get("router_stop") or {}
        if stop.get("exit_code") not in (0, None) or not stop.get("exited_on_sigterm", True):
            lines.append(f"   ROUTER EXIT: {stop}")
        if not (s.get("details") or {}).get("router_alive", True):
            lines.append("   ROUTER DIED during the window")
    return "\n".join(lines)


# =============================================================================================
# Main

def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Measure the abuse cases of issue 16 against a vrouter binary (loopback).",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("--vrouter", default=os.path.join(ROOT, "build/release/router/vrouter"),
                   help="the router binary (default: build/release/router/vrouter)")
    p.add_argument("--scenario", action="append",
                   help=f"scenario(s) to run, repeatable or comma-separated (default: all): "
                        f"{', '.join(SCENARIOS)}")
    p.add_argument("--duration", type=float, default=10.0, help="window of each scenario, s")
    p.add_argument("--out-dir", help="also write NAME.json per scenario and summary.json here")
    p.add_argument("--loops", type=int, default=8, help="concurrent reconnect loops of the abuser")
    p.add_argument("--pairs", type=int, default=5, help="join/leave pairs per abuser connection")
    p.add_argument("--others", type=int, default=30, help="ordinary users in churn-joins")
    p.add_argument("--others-address", default=ADDR_B, choices=[ADDR_A, ADDR_B],
                   help="source address of the ordinary users, watchers and lookup probe of the "
                        "churn scenarios (default 127.0.0.2; 127.0.0.1 shares the abuser's)")
    p.add_argument("--batch", type=int, default=1000, help="ids per abusive lookup")
    p.add_argument("--lookup-window", type=int, default=16,
                   help="abusive lookups in flight per connection")
    p.add_argument("--watchers", type=int, default=100, help="watchers in churn-pushes")
    p.add_argument("--idle", type=int, default=3600, help="idle sockets in idle-handshakes")
    p.add_argument("--timed", type=int, default=20, help="timed clients per address group")
    p.add_argument("--welcome-cap", type=float, default=10.0, help="cap on time to welcome, s")
    p.add_argument("--per-ip", type=int, default=50, help="--max-connections-per-ip of the "
                   "refused-upgrades and video-server-path routers")
    p.add_argument("--refused-rate", type=float, default=120.0,
                   help="refused upgrade requests per second, per kind (404 and over-limit)")
    p.add_argument("--refused-max-connections", type=int, default=500,
                   help="--max-connections of the refused-upgrades router, so that connections "
                        "the router keeps after refusing can reach it (0: the binary's default)")
    p.add_argument("--vs-upgrades", type=int, default=400)
    p.add_argument("--vs-concurrency", type=int, default=32,
                   help="video-server upgrades in flight at once")
    p.add_argument("--vs-messages", type=int, default=5000)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    names = []
    for s in args.scenario or SCENARIOS:
        names += [x for x in s.split(",") if x]
    bad = [n for n in names if n not in SCENARIOS]
    if bad:
        p.error(f"unknown scenario(s): {', '.join(bad)}")
    args.names = names
    args.hello_timeout_s = 10.0
    return args


async def run_all(cfg):
    version = subprocess.run([cfg.vrouter, "--version"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
    settings = abuse_settings(cfg.vrouter)
    try:
        cfg.hello_timeout_s = int(settings.get("--hello-timeout-ms", 10000)) / 1000
    except (TypeError, ValueError):
        pass
    try:
        cfg.abuser_token = tl.cli_token(cfg.vrouter, SECRET, ABUSER, SPACE, timeout=10)
    except Exception:  # noqa: BLE001 - same token, minted here
        cfg.abuser_token = token(ABUSER)
    report = {"tool": "bench/abuse/abuse.py", "binary": os.path.abspath(cfg.vrouter),
              "version": version, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "host": {"cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()},
              "params": {k: v for k, v in vars(cfg).items()
                         if k not in ("worker", "abuser_token", "names")},
              "binary_abuse_settings": settings, "scenarios": []}
    if cfg.out_dir:
        os.makedirs(cfg.out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vrouter-abuse-") as tmp:
        for name in cfg.names:
            print(f"[abuse] {name} ...", file=sys.stderr, flush=True)
            result = await run_scenario(cfg, name, tmp)
            report["scenarios"].append(result)
            if cfg.out_dir:
                with open(os.path.join(cfg.out_dir, f"{name}.json"), "w") as f:
                    json.dump({k: report[k] for k in report if k != "scenarios"} | result, f,
                              indent=1, default=str)
            print(f"[abuse] {name}: {result['scenario_wall_s']} s"
                  + (" TOOL ERROR" if "tool_error" in result else ""), file=sys.stderr,
                  flush=True)
    report["loadavg_at_end"] = os.getloadavg()
    return report


def main(argv):
    args = parse_args(argv)
    if args.worker:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # the parent cleans up; die quietly
        asyncio.run(worker_main(json.loads(args.worker)))
        return 0
    if not os.access(args.vrouter, os.X_OK):
        print(f"abuse.py: {args.vrouter} is not an executable (--vrouter)", file=sys.stderr)
        return 2

    def on_term(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    report = None
    try:
        report = asyncio.run(run_all(args))
    except KeyboardInterrupt:
        print("abuse.py: interrupted; stopping everything", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        return 1
    finally:
        kill_workers()
        tl.stop_started(timeout=5)
        tl.kill_started()
    summary = {"binary": report["binary"], "version": report["version"],
               "scenarios": {s["scenario"]: s.get("headline") or {"tool_error": True}
                             for s in report["scenarios"]}}
    if args.out_dir:
        # Merged with an earlier run of the same binary, so that scenarios run one by one end
        # up in one file.
        path = os.path.join(args.out_dir, "summary.json")
        merged = report
        try:
            with open(path) as f:
                earlier = json.load(f)
            if (earlier.get("binary"), earlier.get("version")) == (report["binary"],
                                                                  report["version"]):
                mine = {s["scenario"] for s in report["scenarios"]}
                merged = dict(report, scenarios=[s for s in earlier["scenarios"]
                                                 if s["scenario"] not in mine]
                              + report["scenarios"])
        except (OSError, ValueError, KeyError):
            pass
        with open(path, "w") as f:
            json.dump(merged, f, indent=1, default=str)
    print(json.dumps(summary, indent=1, default=str))
    print(table(report))
    return 1 if any("tool_error" in s for s in report["scenarios"]) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
