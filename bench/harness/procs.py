"""Child processes on loopback: start them, watch them, stop every one of them.

Every child runs in its own process group (start_new_session) with stdout/stderr in OUT/logs/,
so stopping it (SIGTERM, then SIGKILL after a grace period) also stops anything it forked.
Children are reaped with os.wait4, which gives their exact CPU time. Run.stop_all() is called from
bench/run's `finally` and, as a last resort, from atexit.
"""

import atexit
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

from . import plan as planlib
from . import stats

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
# Plain opener: an http_proxy in the environment must never see loopback admin calls.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class StartupError(RuntimeError):
    """A child did not come up (exited, or not ready in time): fail fast with this message."""


class DeadlineExceeded(Exception):
    """The run's hard deadline passed (SIGALRM)."""


class Interrupted(Exception):
    """SIGINT/SIGTERM received by bench/run."""


def now_ms():
    """Wall clock in unix milliseconds (the clock of the generators' files)."""
    return int(time.time() * 1000)


def free_port():
    """A TCP port free on 127.0.0.1 right now (for redis-server, which has no port 0 report)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=2.0):
    """(status, body text) of a GET; (None, error text) when unreachable."""
    try:
        with _OPENER.open(url, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (OSError, ValueError) as e:
        return None, str(e)


def http_json(url, timeout=2.0):
    """Parsed JSON of a GET answered 200, else None."""
    status, body = http_get(url, timeout)
    if status != 200:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def tail(path, lines=8):
    """Last lines of a log file (for error messages)."""
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).rstrip()
    except OSError:
        return ""


# --- /proc sampling -----------------------------------------------------------------------------

def proc_sample(pid):
    """{"rss_kb", "fds", "cpu_s"} of a live process from /proc, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu_s = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
        with open(f"/proc/{pid}/statm") as f:
            rss_kb = int(f.read().split()[1]) * PAGE_KB
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, IndexError, ValueError):
        return None
    if fields[0] == "Z":
        return None
    return {"rss_kb": rss_kb, "fds": fds, "cpu_s": round(cpu_s, 3)}


def proc_cpu(pid):
    """(user s, system s) a process has used, from /proc/PID/stat; None if it is gone. A zombie
    (exited, not yet reaped) still shows its final figures: a generator exits right after its
    last timeline line, and that is how the CPU it used up to then is read."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


# --- one child ----------------------------------------------------------------------------------

class Proc:
    """One child process in its own process group; output in LOGS/NAME.out and NAME.err."""

    def __init__(self, name, argv, logs_dir, env=None, role="other"):
        self.name, self.argv, self.role = name, list(argv), role
        self.out_path = os.path.join(logs_dir, name + ".out")
        self.err_path = os.path.join(logs_dir, name + ".err")
        self.samples = []
        self.rusage = None
        self.killed_by_harness = False   # needed SIGKILL (or the failover scenario's kill)
        self.stop_requested = False      # the harness asked it to stop (not a crash)
        self.started = time.time()
        self.ended = None
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.popen = subprocess.Popen(self.argv, stdout=out, stderr=err,
                                          stdin=subprocess.DEVNULL, env=env,
                                          start_new_session=True)
        self.pid = self.popen.pid

    @property
    def returncode(self):
        return self.popen.returncode

    def poll(self):
        """Exit code if it has exited (reaped here, with its rusage), else None."""
        if self.popen.returncode is None:
            try:
                pid, status, rusage = os.wait4(self.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status, rusage = self.pid, 0, None
            if pid == self.pid:
                self.popen.returncode = os.waitstatus_to_exitcode(status)
                self.rusage = rusage
                self.ended = time.time()
        return self.popen.returncode

    def alive(self):
        return self.poll() is None

    def wait(self, timeout):
        """Wait up to timeout seconds; exit code or None if still running."""
        end = time.time() + timeout
        while self.poll() is None and time.time() < end:
            time.sleep(0.05)
        return self.poll()

    def signal_group(self, signo):
        """Send signo to the whole process group, only while the leader is not reaped (its pid,
        which is the group id, cannot have been reused by another process then)."""
        if self.popen.returncode is not None:
            return
        try:
            os.killpg(self.pid, signo)
        except (ProcessLookupError, PermissionError):
            pass

    def cpu_seconds(self):
        """User + system CPU seconds: exact once reaped, from /proc while running."""
        if self.rusage is not None:
            return round(self.rusage.ru_utime + self.rusage.ru_stime, 3)
        sample = proc_sample(self.pid) if self.returncode is None else None
        if sample:
            return sample["cpu_s"]
        return self.samples[-1]["cpu_s"] if self.samples else None

    def lifetime_s(self):
        return round((self.ended or time.time()) - self.started, 3)

    def summary(self):
        """pid, exit code, CPU and lifetime, for the report."""
        cpu = self.cpu_seconds()
        life = self.lifetime_s()
        return {"name": self.name, "pid": self.pid, "exit_code": self.returncode,
                "killed_by_harness": self.killed_by_harness, "cpu_seconds": cpu,
                "lifetime_s": life,
                "cpu_percent": round(100 * cpu / life, 1) if cpu is not None and life else None}


def stop_procs(procs, grace=5.0):
    """SIGTERM every live group, wait up to grace seconds for all, then SIGKILL the rest."""
    live = [p for p in procs if p.alive()]
    for p in live:
        p.stop_requested = True
        p.signal_group(signal.SIGTERM)
    end = time.time() + grace
    while time.time() < end and any(p.alive() for p in live):
        time.sleep(0.05)
    for p in live:
        if p.alive():
            p.signal_group(signal.SIGKILL)
            p.killed_by_harness = True
    for p in live:
        p.wait(5)


def wait_json_line(proc, path, predicate, timeout, what):
    """First JSON line of path (a child's stdout file) satisfying predicate; StartupError if the
    child exits or timeout passes first."""
    end = time.time() + timeout
    pos, buf = 0, ""
    while True:
        try:
            with open(path, errors="replace") as f:
                f.seek(pos)
                chunk = f.read()
                pos = f.tell()
        except OSError:
            chunk = ""
        buf += chunk
        *lines, buf = buf.split("\n")
        for line in lines:
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict) and predicate(value):
                return value
        if proc.poll() is not None:
            raise StartupError(f"{what} exited with status {proc.returncode} before it was ready; "
                               f"{proc.err_path}:\n{tail(proc.err_path) or tail(proc.out_path)}")
        if time.time() > end:
            raise StartupError(f"{what} not ready within {timeout:.0f} s; see {proc.out_path} and "
                               f"{proc.err_path}")
        time.sleep(0.05)


# --- samplers -----------------------------------------------------------------------------------

class Sampler(threading.Thread):
    """Samples RSS, open fds and CPU of watched processes every `interval` seconds.

    Routers also get their open client connections from GET /v1/replica. Each sample is
    {"t": unix_ms, "rss_kb", "fds", "cpu_s"[, "conns"]} appended to proc.samples.
    """

    def __init__(self, interval):
        super().__init__(daemon=True)
        self.interval = interval
        self.watched = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def watch(self, proc, admin=None):
        """Start sampling proc (and its admin API when given); takes one sample at once."""
        with self.lock:
            self.watched.append((proc, admin))
        self.sample_one(proc, admin)

    def sample_one(self, proc, admin):
        if proc.returncode is not None:
            return None
        sample = proc_sample(proc.pid)
        if sample is None:
            return None
        sample["t"] = now_ms()
        if admin:
            replica = http_json(admin + "/v1/replica", timeout=1)
            if replica:
                sample["conns"] = (replica.get("connections") or {}).get("open")
        proc.samples.append(sample)
        return sample

    def run(self):
        while not self.stopping.wait(self.interval):
            with self.lock:
                watched = list(self.watched)
            for proc, admin in watched:
                try:
                    self.sample_one(proc, admin)
                except Exception:  # a sampler must never take the run down
                    pass

    def stop(self):
        self.stopping.set()


class CpuWatch(threading.Thread):
    """Samples the user and system CPU time of some processes every `interval` seconds (0.1 s:
    a closed-loop window's ends are read between two samples 100 ms apart; /proc counts 10 ms
    ticks).
    samples[name] is [{"t": unix ms, "user_s", "sys_s"}, ...]; stop() takes a last sample."""

    def __init__(self, procs, interval=0.1):
        super().__init__(daemon=True)
        self.procs = dict(procs)
        self.interval = interval
        self.samples = {name: [] for name in self.procs}
        self.stopping = threading.Event()
        self.sample()

    def sample(self):
        for name, proc in self.procs.items():
            samples = self.samples[name]
            if proc.returncode is None:
                # only while not reaped (after that the pid may be another process's)
                cpu = proc_cpu(proc.pid)
                if cpu is not None:
                    samples.append({"t": now_ms(), "user_s": cpu[0], "sys_s": cpu[1]})
            elif proc.rusage is not None and not (samples and samples[-1].get("final")):
                # Reaped (by Proc.poll, within 0.2 s of its exit) before a sample saw it exit:
                # its final figures, at the time it was reaped.
                samples.append({"t": int((proc.ended or time.time()) * 1000), "final": True,
                                "user_s": proc.rusage.ru_utime, "sys_s": proc.rusage.ru_stime})

    def run(self):
        while not self.stopping.wait(self.interval):
            try:
                self.sample()
            except Exception:  # a sampler must never take the run down
                pass

    def stop(self):
        self.stopping.set()
        self.join(2)
        self.sample()


class ServerPoller(threading.Thread):
    """Polls GET /v1/servers on every replica every `interval` s and records state changes."""

    def __init__(self, routers, interval=0.2, watch_server=None):
        super().__init__(daemon=True)
        self.routers = routers
        self.interval = interval
        self.watch_server = watch_server
        self.changes = []       # stats.state_changes entries
        self.assigned = []      # {"t_unix_ms", "replica", "assigned"} of watch_server
        self.panics = []        # {"t_unix_ms", "replica", "panic"} on change
        self.polls = 0
        self.failures = 0
        self.stopping = threading.Event()

    def run(self):
        last = {r.name: {} for r in self.routers}
        panic = {}
        while not self.stopping.is_set():
            for router in self.routers:
                if not router.proc.alive():
                    continue
                body = http_json(router.admin + "/v1/servers", timeout=1)
                t = now_ms()
                self.polls += 1
                if body is None:
                    self.failures += 1
                    continue
                current = {s.get("id"): s.get("state") for s in body.get("servers") or []}
                self.changes += stats.state_changes(last[router.name], current, t, router.name)
                last[router.name] = current
                if panic.get(router.name) != body.get("panic"):
                    panic[router.name] = body.get("panic")
                    self.panics.append({"t_unix_ms": t, "replica": router.name,
                                        "panic": body.get("panic")})
                for s in body.get("servers") or []:
                    if s.get("id") == self.watch_server:
                        self.assigned.append({"t_unix_ms": t, "replica": router.name,
                                              "assigned": s.get("assigned")})
            self.stopping.wait(self.interval)

    def stop(self):
        self.stopping.set()


# --- the run: everything started, and how to stop it ---------------------------------------------

class Router:
    """One router replica: its process and URLs (from its "listening" line)."""

    def __init__(self, name, index, proc, listening, phase):
        self.name, self.index, self.proc, self.phase = name, index, proc, phase
        self.ws = listening.get("ws") or None
        self.wss = listening.get("wss") or None
        self.admin = listening.get("admin")

    def ws_base(self):
        """ws://HOST:PORT (no path), for the sims."""
        return self.ws.split("/v1/", 1)[0]

    def client_url(self, transport):
        return self.wss if transport == "wss" else self.ws


class Run:
    """The run's directory, credentials, children and samplers."""

    def __init__(self, plan, out_dir, bins):
        self.plan, self.out, self.bins = plan, out_dir, bins
        self.logs = os.path.join(out_dir, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.procs, self.routers, self.loads, self.phases = [], [], [], []
        self.notes = []
        self.sampler = Sampler(plan["sample_every"])
        self.sampler.start()
        self.pollers = []
        self.redis_url = None
        atexit.register(self.kill_all)
        self.make_credentials()

    # credentials and files
    def make_credentials(self):
        """ECDSA P-256 certificate for 127.0.0.1 and random token keys, in OUT/secrets/."""
        d = os.path.join(self.out, "secrets")
        os.makedirs(d, exist_ok=True)
        self.cert, self.key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        try:
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                 "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", self.key, "-out", self.cert],
                check=True, capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as e:
            raise StartupError(f"openssl could not make the test certificate: {e}") from None
        self.auth_secret = secrets.token_hex(32)
        self.replica_key = secrets.token_hex(32)  # fleet messages between replicas on Redis
        self.video_secret = secrets.token_hex(32)
        self.auth_secret_file = os.path.join(d, "auth-secret")
        self.video_secret_file = os.path.join(d, "video-server-secret")
        for path, value in ((self.auth_secret_file, self.auth_secret),
                            (self.video_secret_file, self.video_secret)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(value)

    def write_fleet(self, servers, capacity):
        """OUT/fleet.json listing sim-0..sim-(N-1), given to every replica."""
        path = os.path.join(self.out, "fleet.json")
        fleet = [{"id": f"sim-{i}", "url": f"wss://sim-{i}.media.test/rtc", "region": "eu-west",
                  "capacity": capacity} for i in range(servers)]
        with open(path, "w") as f:
            json.dump(fleet, f, indent=1)
        return path

    def child_env(self, **extra):
        """The environment without any VROUTER_* setting of the caller's, plus extra."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("VROUTER_")}
        env.update(extra)
        return env

    def spawn(self, name, argv, env=None, role="other"):
        """Start a child (its own process group, output in OUT/logs/)."""
        cpus = self.plan.get("pin", {}).get(role)
        if cpus:  # taskset execs the program: the pid stays the program's
            argv = ["taskset", "--cpu-list", ",".join(map(str, cpus))] + list(argv)
        proc = Proc(name, argv, self.logs, env=env or self.child_env(), role=role)
        self.procs.append(proc)
        with open(os.path.join(self.logs, "commands.txt"), "a") as f:
            f.write(f"{name} (pid {proc.pid}): {shlex.join(proc.argv)}\n")
        return proc

    # the children
    def start_redis(self):
        """redis-server on a free loopback port, no persistence; waits for PING."""
        port = free_port()
        data = os.path.join(self.out, "redis")
        os.makedirs(data, exist_ok=True)
        proc = self.spawn("redis", [self.bins["redis"], "--port", str(port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no", "--dir", data],
                          role="redis")
        end = time.time() + 10
        while time.time() < end:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        self.redis_url = f"redis://127.0.0.1:{port}"
                        return self.redis_url
            except OSError:
                pass
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        raise StartupError(f"redis-server did not answer PING on port {port} within 10 s; "
                           f"{proc.out_path}:\n{tail(proc.out_path)}")

    def start_router(self, index, fleet_file, phase="main", log_level="info"):
        """One replica (ws + wss + admin on port 0); waits for its "listening" line and /healthz."""
        plan = self.plan
        name = f"r{index}" if phase == "main" else f"r{index}-{phase}"
        flags = ["--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0",
                 "--tls-cert", self.cert, "--tls-key", self.key, "--admin-listen", "127.0.0.1:0",
                 "--replica-id", name, "--threads", str(plan["threads"]),
                 "--max-connections", "19000", "--log-level", log_level,
                 "--video-servers", fleet_file, "--drain-window-ms", "500",
                 # Every simulated user connects from 127.0.0.1: no per-address limits.
                 "--max-connections-per-ip", "0", "--max-handshakes-per-ip", "0",
                 "--hellos-per-ip", "0:1"] + plan["router_args"]
        if plan["mode"] == "lookup" or phase != "main" or plan["scenario"] in ("rps", "smoke"):
            # Closed-loop lookups (rps runs, also in smoke, and latency) measure throughput, far
            # above what the per-connection rate limits let one person send; the other people
            # scenarios keep the defaults.
            flags += ["--rate-limits", "off"]
        if plan["store"] == "redis":
            flags += ["--store", self.redis_url]
        argv = plan.get("router_prefix", []) + [self.bins["vrouter"]] + planlib.merge_flags(
            flags, plan["router_overrides"])
        # A tool such as valgrind slows the start down.
        startup_s = planlib.ROUTER_PREFIX_SLACK_S if plan.get("router_prefix") else 10
        env = self.child_env(VROUTER_AUTH_SECRET=self.auth_secret,
                             VROUTER_VIDEO_SERVER_SECRET=self.video_secret,
                             VROUTER_REPLICA_KEY=self.replica_key)
        proc = self.spawn(f"router-{name}", argv, env=env, role="router")
        listening = wait_json_line(proc, proc.out_path, lambda e: e.get("event") == "listening",
                                   startup_s, f"router {name}")
        router = Router(name, index, proc, listening, phase)
        end = time.time() + startup_s
        while http_get(router.admin + "/healthz", timeout=1)[0] != 200:
            if proc.poll() is not None or time.time() > end:
                raise StartupError(f"router {name}: /healthz not 200 within {startup_s} s; "
                                   f"{proc.err_path}:\n{tail(proc.out_path)}")
            time.sleep(0.1)
        self.routers.append(router)
        self.sampler.watch(proc, router.admin)
        return router

    def start_sims(self, router, servers, capacity, behaviors=(), name="sims", duration=None):
        """The simulated fleet, attached (ws) to one replica; returns (proc, start unix ms)."""
        argv = [self.bins["sim"], "--router", router.ws_base(), "--admin", router.admin,
                "--secret-file", self.video_secret_file, "--servers", str(servers),
                "--capacity", str(capacity),
                "--duration", str(int(duration or self.plan["deadline_s"])),
                "--summary", os.path.join(self.out, name + "-summary.json")]
        for behavior in behaviors:
            argv += ["--behavior", behavior]
        started = now_ms()
        proc = self.spawn(name, argv, role="sims")
        return proc, started

    def wait_fleet_active(self, routers, servers, timeout=20):
        """Every sim "active" on the first replica (else StartupError), then on the others
        (a note if not within 10 s more)."""
        wanted = {f"sim-{i}" for i in range(servers)}

        def states(router):
            body = http_json(router.admin + "/v1/servers") or {}
            return {s.get("id"): s.get("state") for s in body.get("servers") or []}

        end = time.time() + timeout
        seen = {}
        while True:
            seen = states(routers[0])
            if all(seen.get(s) == "active" for s in wanted):
                break
            if time.time() > end:
                raise StartupError(f"the simulated fleet is not active on {routers[0].name} "
                                   f"within {timeout} s: {seen}; see OUT/logs/sims.err")
            time.sleep(0.2)
        for router in routers[1:]:
            end = time.time() + 10
            while not all(states(router).get(s) == "active" for s in wanted):
                if time.time() > end:
                    self.notes.append(f"{router.name} did not see every sim active within 10 s "
                                      f"(shared fleet evidence?): {states(router)}")
                    break
                time.sleep(0.2)

    def start_echo(self, name="echo"):
        """echo_baseline on a free port; returns (proc, ws URL)."""
        proc = self.spawn(name, [self.bins["echo"], "--listen", "127.0.0.1:0", "--threads",
                                 str(self.plan["threads"])], role="echo")
        listening = wait_json_line(proc, proc.out_path,
                                   lambda e: e.get("event") == "listening" and e.get("ws"),
                                   10, "echo_baseline")
        self.sampler.watch(proc)
        return proc, listening["ws"]

    def start_floor(self, name="floor"):
        """floor_echo (one thread) on a free port; returns (proc, ws URL). Role "echo": --pin
        echo=CPUS pins both echo servers."""
        proc = self.spawn(name, [self.bins["floor"], "--listen", "127.0.0.1:0", "--threads", "1"],
                          role="echo")
        listening = wait_json_line(proc, proc.out_path,
                                   lambda e: e.get("event") == "listening" and e.get("ws"),
                                   10, "floor_echo")
        self.sampler.watch(proc)
        if self.plan["threads"] > 1:
            self.notes.append(f"floor_echo runs one thread, the router and echo_baseline "
                              f"{self.plan['threads']}: compare CPU per round trip, not rates")
        return proc, listening["ws"]

    def start_load(self, name, argv):
        """One generator process."""
        proc = self.spawn(name, [self.bins["load"]] + list(argv), role="load")
        self.loads.append(proc)
        self.sampler.watch(proc)
        return proc

    def wait_loads(self, procs, timeout):
        """Wait for generators to exit by themselves; past timeout, SIGTERM them (they write their
        report on SIGTERM), then SIGKILL. Returns True when all exited on their own."""
        end = time.time() + timeout
        while time.time() < end and any(p.alive() for p in procs):
            time.sleep(0.2)
        late = [p for p in procs if p.alive()]
        if late:
            self.notes.append(f"load processes {', '.join(p.name for p in late)} overran "
                              f"their --duration; stopped with SIGTERM")
            stop_procs(late, grace=10)
        return not late

    def kill(self, proc):
        """SIGKILL one child's group now (the failover scenario)."""
        proc.stop_requested = True
        proc.signal_group(signal.SIGKILL)
        proc.killed_by_harness = True
        proc.wait(5)

    def stop(self, procs, grace=5.0):
        """Stop some children (SIGTERM, then SIGKILL after grace seconds; a router under a
        --router-prefix tool such as valgrind gets ROUTER_PREFIX_SLACK_S to write its output)."""
        if self.plan.get("router_prefix") and any(p.role == "router" for p in procs):
            grace = max(grace, planlib.ROUTER_PREFIX_SLACK_S)
        stop_procs(procs, grace)

    def stop_all(self):
        """Stop samplers, then children in order: load, sims/echo, routers, redis, rest."""
        for poller in self.pollers:
            poller.stop()
        self.sampler.stop()
        order = ("load", "sims", "echo", "router", "redis", "other")
        for role in order:
            self.stop([p for p in self.procs if p.role == role])
        stop_procs([p for p in self.procs if p.role not in order])

    def kill_all(self):
        """atexit safety net: SIGKILL every group still alive."""
        for p in self.procs:
            if p.returncode is None:
                p.signal_group(signal.SIGKILL)
