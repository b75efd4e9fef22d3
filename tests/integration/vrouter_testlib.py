"""A vrouter process for the integration tests (fault_test.py, security_test.py): started with
flags, its ports learned from the "listening" log line, its JSON log (stdout) pumped into `lines`
by a thread, its /metrics read and parsed, stopped with SIGTERM and required to exit 0.

Imported by path: each test puts its own directory first on sys.path (ctest runs them by path).
"""

import asyncio
import json
import re
import signal
import subprocess
import threading
import time
import urllib.request


STARTED = []  # every process a test started (routers here, and whatever else it adds)


def kill_started():
    """Kills whatever STARTED still runs: the last thing a test's main() does, pass or fail."""
    for proc in STARTED:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def parse_metrics(text):
    """Prometheus text -> {(name, frozenset(labels)): value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, value = line.rsplit(" ", 1)
        name, _, rest = key.partition("{")
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', rest))
        out[(name, labels)] = float(value)
    return out


def metric(parsed, name, **labels):
    """Sum of the series of `name` whose labels include `labels`; the series must exist."""
    want = {(k, str(v)) for k, v in labels.items()}
    values = [v for (n, ls), v in parsed.items() if n == name and want <= ls]
    assert values, f"metric {name}{labels or ''} missing from /metrics"
    return sum(values)


def _port(url):
    """The port of a listening address as logged ("127.0.0.1:4242", "ws://127.0.0.1:4242/v1")."""
    return int(url.rsplit(":", 1)[1].split("/")[0]) if url else None


class Router:
    """A vrouter process; its JSON log (stdout) is pumped into `lines` by a thread.

    `args` follow the listeners (127.0.0.1, ports 0), --replica-id `name` and --log-level debug;
    `env` is the whole environment (None: this process's); `prefix` is a command the binary runs
    under (["prlimit", "--nofile=64:64"], faketime, ...); `stderr` as for subprocess.Popen
    (default: into `lines` with the log). `ws`, `wss` (None without `tls`) and `admin` are the
    ports it listens on, `listening` the whole "listening" log event.
    """

    def __init__(self, binary, args, env=None, name="vrouter", prefix=(), tls=False,
                 drain_window_ms=500, stderr=subprocess.STDOUT, start_timeout=20,
                 stop_timeout=15):
        self.name = name
        self.stop_timeout = stop_timeout
        listeners = ["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]
        if tls:
            listeners += ["--tls-listen", "127.0.0.1:0"]
        self.proc = subprocess.Popen(
            [*prefix, binary, *listeners, "--replica-id", name, "--drain-window-ms",
             str(drain_window_ms), "--log-level", "debug", *args],
            env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
        STARTED.append(self.proc)
        self.pid = self.proc.pid
        self.lines = []
        threading.Thread(target=self._pump, daemon=True).start()
        try:
            deadline = time.monotonic() + start_timeout
            while not (listening := self.events("listening")):
                assert self.proc.poll() is None, (
                    f"{name}: router exited {self.proc.returncode} at start:\n"
                    + "".join(self.lines))
                assert time.monotonic() < deadline, (
                    f"{name}: router did not start within {start_timeout} s:\n"
                    + "".join(self.lines[-80:]))
                time.sleep(0.02)
        except BaseException:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            raise
        self.listening = listening[0]
        self.ws, self.wss = _port(self.listening["ws"]), _port(self.listening.get("wss"))
        self.admin = _port(self.listening["admin"])

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def events(self, name, **fields):
        """The log events called `name` whose fields include `fields`, oldest first."""
        out = []
        for line in list(self.lines):
            if f'"{name}"' not in line:
                continue
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("event") == name and all(e.get(k) == v for k, v in fields.items()):
                out.append(e)
        return out

    def get(self, path, timeout=5):
        """GET `path` on the admin listener: the body, as text."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}{path}", timeout=timeout) as r:
            return r.read().decode()

    def metrics(self):
        """/metrics, parsed (parse_metrics)."""
        return parse_metrics(self.get("/metrics"))

    def metric(self, name, **labels):
        """One metric from /metrics now (see metric())."""
        return metric(self.metrics(), name, **labels)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM; the router must exit 0 within `stop_timeout` s (else it is killed). Fails
        with its last 80 output lines; returns the exit code (0)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(
                    f"{self.name}: did not exit within {self.stop_timeout} s of SIGTERM; last "
                    f"output:\n" + "".join(self.lines[-80:]))
        assert self.proc.returncode == 0, (
            f"{self.name}: exited {self.proc.returncode}; last output:\n"
            + "".join(self.lines[-80:]))
        return self.proc.returncode


async def eventually(what, check, timeout=5, every=0.05):
    """Polls check() (a value or a coroutine) until it is truthy and returns it; fails the test
    with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(every)
