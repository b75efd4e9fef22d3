"""What the Python tests share, written once (tests/integration, tests/bench, tests/deploy):

  - processes: the vrouter binary (Router: started on port 0 with flags, its ports learned from
    the "listening" log line, its JSON log (stdout) pumped into `lines` by a thread, its admin API
    and /metrics, stopped with SIGTERM and required to exit 0), redis-server (Redis),
    bench/sim_video_server (start_sim), and whatever a test adds to STARTED;
  - tokens: HS256 and ES256 JWTs minted here (client tokens, video-server credentials), or by
    `vrouter mint-token` (cli_token); self-signed certificates and client TLS contexts;
  - the WebSocket clients of /v1/client (Client) and /v1/video-server (VideoServer), on one
    websockets connection (Connection): answers matched by request id, pushes kept in order;
  - RFC 6455 by hand, for the tests that speak the wire themselves: frame(), upgrade_request()
    and RawClient (a socket, the upgrade, frames).

Imported by path: each test puts this directory first on sys.path (ctest runs them by path).
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

try:  # the raw pieces below need only the standard library
    import websockets
except ImportError:  # pragma: no cover - every machine of the project has python3-websockets
    websockets = None


# ---------------------------------------------------------------------------------------------
# Processes

STARTED = []  # every process a test started (routers here, and whatever else it adds)


def kill_started():
    """Kills whatever STARTED still runs: the last thing a test's main() does, pass or fail."""
    for proc in STARTED:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def stop_process(proc, timeout=10):
    """SIGCONT (it may be paused) and SIGTERM; killed if it has not exited within `timeout` s.
    Whether it exited by itself."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return False
    return True


def stop_started(timeout=10):
    """stop_process() on everything in STARTED, the last started first."""
    for proc in reversed(STARTED):
        stop_process(proc, timeout)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url, timeout=3):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


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

    `args` follow the listeners (127.0.0.1, ports 0), --replica-id `name`, --drain-window-ms and
    --log-level `log_level`; `env` is the whole environment (None: this process's); `prefix` is a
    command the binary runs under (["prlimit", "--nofile=64:64"], faketime, ...); `stderr` as for
    subprocess.Popen (default: into `lines` with the log). `ws`, `wss` (None without `tls`) and
    `admin` are the ports it listens on, `listening` the whole "listening" log event. Admin
    requests wait `http_timeout` s at most.
    """

    def __init__(self, binary, args, env=None, name="vrouter", prefix=(), tls=False,
                 drain_window_ms=500, stderr=subprocess.STDOUT, start_timeout=20,
                 stop_timeout=15, log_level="debug", http_timeout=5):
        self.name = name
        self.stop_timeout = stop_timeout
        self.http_timeout = http_timeout
        listeners = ["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]
        if tls:
            listeners += ["--tls-listen", "127.0.0.1:0"]
        self.proc = subprocess.Popen(
            [*prefix, binary, *listeners, "--replica-id", name, "--drain-window-ms",
             str(drain_window_ms), "--log-level", log_level, *args],
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

    def url(self, path):
        return f"http://127.0.0.1:{self.admin}{path}"

    def get(self, path, timeout=None):
        """GET `path` on the admin listener: the body, as text."""
        with urllib.request.urlopen(self.url(path), timeout=timeout or self.http_timeout) as r:
            return r.read().decode()

    def get_json(self, path):
        """GET `path` on the admin listener: the body, parsed."""
        return http_json(self.url(path), self.http_timeout)

    def post(self, path):
        """POST `path` (empty body) on the admin listener: (status, the body parsed or None).
        An error status raises urllib.error.HTTPError."""
        request = urllib.request.Request(self.url(path), method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=self.http_timeout) as r:
            body = r.read()
            return r.status, json.loads(body) if body else None

    def readyz(self):
        """(status, body parsed) of /readyz: 200 when ready, 503 and why when not."""
        try:
            with urllib.request.urlopen(self.url("/readyz"), timeout=self.http_timeout) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def servers(self):
        """/v1/servers: {id: view}."""
        return {s["id"]: s for s in self.get_json("/v1/servers")["servers"]}

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
        if not stop_process(self.proc, self.stop_timeout):
            raise AssertionError(
                f"{self.name}: did not exit within {self.stop_timeout} s of SIGTERM; last "
                f"output:\n" + "".join(self.lines[-80:]))
        assert self.proc.returncode == 0, (
            f"{self.name}: exited {self.proc.returncode}; last output:\n"
            + "".join(self.lines[-80:]))
        return self.proc.returncode


class Redis:
    """A redis-server on a free loopback port, without persistence (files in `tmp`); start()
    returns once it answers PING. With `tls` = (cert, key), also a TLS port (`tls_port`) that
    trusts `cert` as its CA and asks clients for a certificate. Stopped with stop(), or by
    kill_started()."""

    def __init__(self, tmp, binary="redis-server", tls=None, cluster=False):
        self.port, self.tmp, self.binary, self.tls = free_port(), tmp, binary, tls
        self.tls_port = free_port() if tls else None
        # A Redis Cluster node (joined by make_cluster), its bus on a port of its own (the default,
        # port + 10000, overflows for most ephemeral ports).
        self.cluster = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                        "--cluster-port", str(free_port()), "--cluster-node-timeout",
                        "1000",
                        # As README advises: a shard without a primary stops only its slots.
                        "--cluster-require-full-coverage", "no"] if cluster else []
        self.start()

    def start(self):
        tls = [*self.cluster]
        if self.tls:
            cert, key = self.tls
            tls = ["--tls-port", str(self.tls_port), "--tls-cert-file", cert, "--tls-key-file", key,
                   "--tls-ca-cert-file", cert, "--tls-auth-clients", "yes"]
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.tmp, *tls],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        STARTED.append(self.proc)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True,
                              text=True, timeout=5).stdout

    def stop(self):
        """Killed at once (SIGCONT first: it may be paused)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()


def make_cluster(tmp, primaries, replicas, binary="redis-server"):
    """A Redis Cluster made as operators make one (redis-cli --cluster create): its nodes (the
    first `primaries` are the primaries), once every node says cluster_state:ok and every replica
    has synced."""
    nodes = []
    for i in range(primaries * (1 + replicas)):
        d = os.path.join(tmp, f"cluster-{i}")
        os.makedirs(d)
        nodes.append(Redis(d, binary, cluster=True))
    subprocess.run(["redis-cli", "--cluster", "create",
                    *[f"127.0.0.1:{n.port}" for n in nodes],
                    "--cluster-replicas", str(replicas), "--cluster-yes"],
                   check=True, capture_output=True, timeout=30)
    deadline = time.time() + 20
    for n in nodes:
        while ("cluster_state:ok" not in n.cli("CLUSTER", "INFO") or
               ("role:master" not in n.cli("INFO", "replication") and
                "master_link_status:up" not in n.cli("INFO", "replication"))):
            assert time.time() < deadline, "the cluster never came up"
            time.sleep(0.05)
    return nodes


def start_sim(binary, router, secret, tmp, args, **popen):
    """bench/sim_video_server reporting to `router` (its ws and admin ports) with the video-server
    credential `secret` (written to a file in `tmp`), then `args`; `popen` as for
    subprocess.Popen. Added to STARTED."""
    secret_file = os.path.join(tmp, "video-server-secret")
    with open(secret_file, "w") as f:
        f.write(secret)
    proc = subprocess.Popen(
        [binary, "--router", f"ws://127.0.0.1:{router.ws}", "--admin",
         f"http://127.0.0.1:{router.admin}", "--secret-file", secret_file, *args], **popen)
    STARTED.append(proc)
    return proc


def run_bounded(coroutine, timeout):
    """asyncio.run(coroutine), failing after `timeout` s; then kill_started(), pass or fail."""
    try:
        asyncio.run(asyncio.wait_for(coroutine, timeout))
    finally:
        kill_started()


def run_cases(cases, only, timeout, name):
    """Runs the numbered `cases` (coroutine functions of a temporary directory each; only those
    whose 1-based number is in `only`, when given) within `timeout` s in all, then prints that
    test `name` passed."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        async def run():
            for n, case in enumerate(cases, 1):
                if only and str(n) not in only:
                    continue
                case_tmp = os.path.join(tmp, str(n))
                os.mkdir(case_tmp)
                await case(case_tmp)
        run_bounded(run(), timeout)
    print(f"{name}: ok ({time.monotonic() - started:.1f} s)")


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


# ---------------------------------------------------------------------------------------------
# Tokens, keys and certificates

def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hs256(claims, secret, kid=None):
    """A JWS HS256 token of `claims` signed with `secret` (text or bytes), naming `kid` if any."""
    header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    key = secret if isinstance(secret, bytes) else secret.encode()
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


def verify_hs256(token, secret):
    """The claims of an HS256 JWT signed with `secret`, or None."""
    try:
        head, body, sig = token.split(".")
        if json.loads(b64_decode(head)).get("alg") != "HS256":
            return None
        mac = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(mac, b64_decode(sig)):
            return None
        return json.loads(b64_decode(body))
    except Exception:  # noqa: BLE001 - any malformed token is simply invalid
        return None


def client_claims(user, space=None, exp=None, **extra):
    """A client token's claims: `user` in `space` (default space-USER), valid 10 minutes from
    now unless `exp` says otherwise; `extra` (nbf, region, ...) added."""
    now = int(time.time())
    return {"sub": user, "space": space or f"space-{user}", "iat": now, "exp": exp or now + 600,
            **extra}


def client_token(user, space, secret, exp=None, nbf=None):
    """An HS256 client token (client_claims; `nbf` only when given)."""
    return hs256(client_claims(user, space, exp, **({} if nbf is None else {"nbf": nbf})), secret)


def server_token(server, secret, exp=None, aud="vrouter.video"):
    """A video server's HS256 credential: sub = its id, aud `aud` (None: no aud claim), valid 10
    minutes from now unless `exp` says otherwise."""
    now = int(time.time())
    claims = {"sub": server, "iat": now, "exp": exp or now + 600}
    if aud is not None:
        claims["aud"] = aud
    return hs256(claims, secret)


_CLI_TOKENS = {}


def cli_token(binary, secret, user, space, timeout=None):
    """A client token minted by `vrouter mint-token` (with `secret` as VROUTER_AUTH_SECRET);
    each (user, space) is minted once per process."""
    if (binary, secret, user, space) not in _CLI_TOKENS:
        out = subprocess.run([binary, "mint-token", "--user", user, "--space", space],
                             env=dict(os.environ, VROUTER_AUTH_SECRET=secret), check=True,
                             capture_output=True, text=True, timeout=timeout)
        _CLI_TOKENS[(binary, secret, user, space)] = out.stdout.strip()
    return _CLI_TOKENS[(binary, secret, user, space)]


def openssl(*args, **kwargs):
    return subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30,
                          **kwargs)


def der_to_raw(der):
    """An ECDSA-Sig-Value (SEQUENCE {r INTEGER, s INTEGER}, DER) -> r||s, 32 bytes each (JWS)."""
    assert der[0] == 0x30 and der[1] == len(der) - 2, f"not a DER ECDSA signature: {der.hex()}"
    out, i = b"", 2
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        out += int.from_bytes(der[i + 2:i + 2 + n], "big").to_bytes(32, "big")
        i += 2 + n
    return out


def es256(claims, private_key_file, kid):
    """A JWS ES256 token, signed with `openssl dgst` (no Python crypto package needed)."""
    header = {"alg": "ES256", "typ": "JWT", "kid": kid}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", private_key_file],
                         input=signing_input.encode(), capture_output=True, check=True,
                         timeout=10).stdout
    return f"{signing_input}.{b64(der_to_raw(der))}"


def make_ec_key(directory, name):
    """(private key file, public key file) of a fresh P-256 key."""
    private, public = os.path.join(directory, f"{name}.key"), os.path.join(directory, f"{name}.pub")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", private)
    openssl("pkey", "-in", private, "-pubout", "-out", public)
    return private, public


def make_cert(directory, name, kind="ec", days=1, cn=None, san=None):
    """A self-signed certificate (kind "ec": P-256, or "rsa") valid `days` days, for CN `cn`
    (default NAME.vrouter.test) and subjectAltName `san` if given: (cert, key) files."""
    cert, key = os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")
    newkey = (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if kind == "ec"
              else ["-newkey", "rsa:2048"])
    openssl("req", "-x509", *newkey, "-nodes", "-keyout", key, "-out", cert, "-days", str(days),
            "-subj", f"/CN={cn or name + '.vrouter.test'}",
            *(["-addext", f"subjectAltName={san}"] if san else []))
    return cert, key


def client_tls(max_version=None, ciphers=None):
    """A client TLS context that accepts any certificate (the tests' are self-signed)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if max_version is not None:
        ctx.maximum_version = max_version
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    return ctx


# ---------------------------------------------------------------------------------------------
# WebSocket clients (websockets)

def connected_socket(port, src=None, send=b""):
    """A TCP connection to 127.0.0.1:port from `src` (another loopback address), non-blocking,
    with `send` (a PROXY header) already written."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if src:
            s.bind((src, 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        if send:
            s.sendall(send)
        s.setblocking(False)
        return s
    except BaseException:
        s.close()
        raise


def rejection(exc):
    """(HTTP status, headers) of a refused upgrade, for websockets 10 (InvalidStatusCode) and
    later (InvalidStatus); None for other failures."""
    if isinstance(exc, getattr(websockets.exceptions, "InvalidStatusCode", ())):
        return exc.status_code, exc.headers
    if isinstance(exc, getattr(websockets.exceptions, "InvalidStatus", ())):
        return exc.response.status_code, exc.response.headers
    return None


def location(entry):
    """(server id or None, epoch) of a lookup or watch result."""
    return (entry["server"]["id"] if entry.get("server") else None, entry["epoch"])


class Connection:
    """One WebSocket connection to the router's `path`, read by a task: each JSON message goes to
    on_message(); when it ends, `close_code` is set, on_close() runs and `closed` is set.
    `connect_options` are websockets.connect arguments of every connection of the class."""

    path = subprotocol = None
    connect_options = {}

    def __init__(self):
        self.ws = None
        self.close_code = None
        self.closed = asyncio.Event()

    async def connect(self, port, scheme="ws", src=None, send=b"", tls=None, **kwargs):
        """Connects (from loopback address `src`, after writing `send`, over `tls`); `kwargs`
        for websockets.connect. Returns self."""
        sock = connected_socket(port, src, send) if (src or send) else None
        extra = {"sock": sock} if sock else {}
        if tls is not None:
            extra["ssl"] = tls
            if sock:
                extra["server_hostname"] = "127.0.0.1"
        try:
            ws = await websockets.connect(f"{scheme}://127.0.0.1:{port}{self.path}",
                                          subprotocols=[self.subprotocol],
                                          **{**self.connect_options, **extra, **kwargs})
        except BaseException:
            if sock:
                sock.close()
            raise
        self.ws, self.close_code, self.closed = ws, None, asyncio.Event()
        self.reader = asyncio.create_task(self._read(ws))
        return self

    async def _read(self, ws):
        try:
            async for frame in ws:
                self.on_message(json.loads(frame))
        except websockets.ConnectionClosed:
            pass
        self.close_code = ws.close_code
        self.on_close()
        self.closed.set()

    def on_message(self, m):
        raise NotImplementedError

    def on_close(self):
        pass

    async def wait_closed(self, timeout=5):
        """The close code, once the connection has closed."""
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code

    async def close(self):
        await self.ws.close()
        await asyncio.wait_for(self.closed.wait(), 5)


class Client(Connection):
    """A /v1/client connection: answers matched by request id, pushes kept in order (`pushes`;
    next_push() and push() take them one by one). token() is an HS256 token of `secret`; a call
    waits `timeout` s for its answer unless told otherwise."""

    path, subprotocol = "/v1/client", "vrouter.v1"
    secret = None
    timeout = 5

    def __init__(self, user="probe", space=None):
        super().__init__()
        self.user, self.space = user, space or f"space-{user}"
        self.next_id = 1
        self.waiting = {}
        self.pushes = []
        self.taken = 0  # pushes taken by next_push()
        self.arrived = asyncio.Event()
        self.assigned = None

    def token(self):
        return client_token(self.user, self.space, self.secret)

    def on_message(self, m):
        fut = self.waiting.pop(m.get("id"), None) if "id" in m else None
        if fut is not None and not fut.done():
            fut.set_result(m)
        else:
            self.pushes.append(m)
            self.arrived.set()

    def on_close(self):
        for fut in self.waiting.values():
            if not fut.done():
                fut.set_exception(ConnectionError(f"{self.user}: closed ({self.close_code})"))
        self.waiting.clear()

    async def open(self, port, token=None, **kwargs):
        """connect() and hello (with `token`, default token()): the answer (welcome or error)."""
        await self.connect(port, **kwargs)
        return await self.hello(token)

    async def hello(self, token=None):
        return await self.call({"type": "hello", "token": token or self.token()})

    async def welcomed(self, port, token=None, **kwargs):
        """open() that must be welcomed: returns self."""
        try:
            await self.connect(port, **kwargs)
        except Exception as e:  # noqa: BLE001
            status = rejection(e)
            detail = f"HTTP {status[0]}" if status else repr(e)
            raise AssertionError(f"upgrade with {kwargs or 'no options'} failed ({detail}); a "
                                 f"session was expected") from e
        answer = await self.hello(token)
        assert answer["type"] == "welcome", f"expected welcome, got {answer}"
        return self

    async def refused(self, port, token, **kwargs):
        """open() whose hello must be refused: (error code, close code)."""
        answer = await self.open(port, token, **kwargs)
        assert answer["type"] == "error", f"expected a refusal, got {answer}"
        return answer["code"], await self.wait_closed()

    async def rejected(self, port, **kwargs):
        """connect() that must be refused with an HTTP status: (status, headers)."""
        try:
            await self.connect(port, **kwargs)
        except Exception as e:  # noqa: BLE001 - the status is what matters
            status = rejection(e)
            assert status is not None, f"upgrade failed without an HTTP status: {e!r}"
            return status
        await self.close()
        raise AssertionError(f"upgrade with {kwargs} was accepted; a refusal was expected")

    async def send(self, message):
        """Sends `message` with the next request id: the future of its answer."""
        message = dict(message, id=self.next_id)
        self.next_id += 1
        fut = asyncio.get_running_loop().create_future()
        self.waiting[message["id"]] = fut
        await self.ws.send(json.dumps(message))
        return fut

    async def call(self, message, timeout=None):
        """Sends `message` and waits for its answer (`timeout` s, default the class's)."""
        return await asyncio.wait_for(await self.send(message),
                                      self.timeout if timeout is None else timeout)

    async def join(self, resume=None, attempts=50, every=0.1):
        """join, or resume (server, epoch): the `assigned` answer (also kept in `assigned`).
        Retried `attempts` times in all, `every` s apart, while the answer is retryable
        (no_video_server, unavailable); any other error fails."""
        for _ in range(attempts):
            message = {"type": "join"} if resume is None else {
                "type": "resume", "server": resume[0], "epoch": resume[1]}
            answer = await self.call(message)
            if answer["type"] == "assigned":
                self.assigned = answer
                return answer
            assert answer["code"] in ("no_video_server", "unavailable"), answer
            await asyncio.sleep(every)
        raise AssertionError(f"{self.user} never got a server")

    async def lookup(self, users):
        """{user: lookup result}."""
        answer = await self.call({"type": "lookup", "users": users})
        assert answer["type"] == "lookup_result", answer
        return {r["user"]: r for r in answer["results"]}

    async def locations(self, users):
        """{user: (server id or None, epoch)}."""
        return {user: location(r) for user, r in (await self.lookup(users)).items()}

    def of(self, kind):
        """The pushes of type `kind` so far."""
        return [m for m in self.pushes if m["type"] == kind]

    async def next_push(self, timeout=10):
        """The oldest push that next_push() has not yet returned, waiting `timeout` s for one."""
        deadline = time.monotonic() + timeout
        while self.taken == len(self.pushes):
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), deadline - time.monotonic())
        self.taken += 1
        return self.pushes[self.taken - 1]

    async def push(self, kind, timeout=10):
        """The next push of type `kind` (next_push(); those of other types are passed over)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"{self.user}: no {kind} push"
            m = await self.next_push(left)
            if m["type"] == kind:
                return m


class VideoServer(Connection):
    """A /v1/video-server connection driven by the test: counters under its control. Its
    credential is server_token() with `secret`; start_reporting() reports every `interval_ms`."""

    path, subprotocol = "/v1/video-server", "vrouter.video.v1"
    secret = None
    interval_ms = 250

    def __init__(self, port, sid):
        super().__init__()
        self.port, self.id = port, sid
        self.seq = 0
        self.counters = {"packets_in": 0, "packets_out": 0, "bytes_in": 0, "bytes_out": 0}
        self.received = []  # every router message, over every connection
        self.reporting = None

    async def open(self, register=True, token=None, sid=None, capacity=1000):
        """Connects; with `register`, registers and returns the answer."""
        self.inbox = asyncio.Queue()
        await self.connect(self.port)
        if register:
            await self.send_register(token=token, sid=sid, capacity=capacity)
            return await self.next()

    async def send_register(self, token=None, sid=None, capacity=1000):
        sid = sid or self.id
        await self.ws.send(json.dumps({
            "type": "register", "token": token or server_token(self.id, self.secret), "id": sid,
            "url": f"wss://{sid}.media.test/rtc", "region": "eu-west", "capacity": capacity}))

    def on_message(self, m):
        self.received.append(m)
        self.inbox.put_nowait(m)

    def on_close(self):
        self.inbox.put_nowait(None)

    async def next(self, skip_state=True, timeout=5):
        """The next router message (`state` pushes skipped); None once the connection closed."""
        deadline = time.monotonic() + timeout
        while True:
            m = await asyncio.wait_for(self.inbox.get(), max(0.01, deadline - time.monotonic()))
            if m is None or not (skip_state and m["type"] == "state"):
                return m

    async def nothing_more(self, wait=0.3):
        """No answer (other than `state` pushes) arrives within `wait` seconds."""
        try:
            m = await self.next(timeout=wait)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"{self.id}: unexpected answer {m}")

    def stats(self, **override):
        m = {"type": "stats", "seq": self.seq, "peers": 0, "media_peers": 0, **self.counters,
             "cpu": 0.0}
        m.update(override)
        return m

    async def report(self):
        await self.ws.send(json.dumps(self.stats()))
        self.seq += 1
        # A healthy forwarder: 240 packets/s in, 600 out at 250 ms per report.
        for k, step in (("packets_in", 60), ("packets_out", 150), ("bytes_in", 60000),
                        ("bytes_out", 150000)):
            self.counters[k] += step

    def start_reporting(self):
        async def loop():
            while True:
                await self.report()
                await asyncio.sleep(self.interval_ms / 1000)
        self.reporting = asyncio.create_task(loop())

    async def stop_reporting(self):
        if self.reporting:
            self.reporting.cancel()
            try:
                await self.reporting
            except (asyncio.CancelledError, websockets.ConnectionClosed):
                pass
            self.reporting = None

    async def vanish(self):
        """The TCP connection goes, without a WebSocket close (a crash, a cable pulled)."""
        await self.stop_reporting()
        self.ws.transport.abort()
        await asyncio.wait_for(self.reader, 5)

    async def close(self):
        await self.stop_reporting()
        if self.ws is not None:
            await self.ws.close()


# ---------------------------------------------------------------------------------------------
# RFC 6455 by hand (standard library only)

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3's example
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def accept_key(key):
    """The Sec-WebSocket-Accept that answers Sec-WebSocket-Key `key`."""
    return base64.b64encode(hashlib.sha1(
        (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()


def upgrade_request(host="127.0.0.1", key=RFC_KEY, version="13", extra="",
                    protocol="vrouter.v1", path="/v1/client"):
    """An upgrade request (Host `host`, None: no Host line; Sec-WebSocket-Protocol `protocol`,
    None: none), then the header lines in `extra`."""
    host_line = f"Host: {host}\r\n" if host else ""
    protocol_line = f"Sec-WebSocket-Protocol: {protocol}\r\n" if protocol else ""
    return (f"GET {path} HTTP/1.1\r\n{host_line}Upgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: {version}\r\n{protocol_line}{extra}\r\n").encode()


def frame(opcode, payload, fin=True, masked=True, rsv=0, length=None):
    """A client frame (masked unless told otherwise); `length` overrides the announced payload
    length."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n <= 0xFFFF:
        head += bytes([mask_bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def text(message):
    """A text frame of `message` as JSON."""
    return frame(0x1, json.dumps(message).encode())


class RawClient:
    """One raw connection (blocking socket, 5 s timeout): the upgrade by hand, then frames."""

    def __init__(self, port, tls=False, rcvbuf=None):
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.settimeout(5)
        if rcvbuf:  # before connecting: it bounds the window the router may fill
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        raw.connect(("127.0.0.1", port))
        if tls:
            raw = client_tls().wrap_socket(raw, server_hostname="localhost")
        self.sock, self.buf = raw, b""

    def upgrade(self, key=RFC_KEY, version="13", extra="", then=b"", host="127.0.0.1",
                protocol="vrouter.v1", path="/v1/client"):
        """Sends the upgrade request (and `then` in the same write); returns (status, headers)."""
        self.sock.sendall(upgrade_request(host, key, version, extra, protocol, path) + then)
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(lines[0].split()[1]), headers

    def opened(self, then=b""):
        status, headers = self.upgrade(then=then)
        assert status == 101, f"upgrade answered {status}"
        return headers

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the router closed the connection")
        self.buf += data

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self):
        """(fin, opcode, payload) of the next frame."""
        b0, b1 = self._take(2)
        assert b1 & 0x80 == 0, "a server frame must not be masked"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self._take(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._take(8))[0]
        return b0 & 0x80 != 0, b0 & 0x0F, self._take(n)

    def read_message(self):
        fin, opcode, payload = self.read_frame()
        assert fin and opcode == 0x1, f"expected a text frame, got opcode {opcode}: {payload!r}"
        return json.loads(payload)

    def read_close(self):
        """Skips data frames up to the close frame; returns (code, reason)."""
        while True:
            _, opcode, payload = self.read_frame()
            if opcode == 0x8:
                return struct.unpack(">H", payload[:2])[0], payload[2:].decode()

    def expect_end(self):
        """The router ends the stream cleanly: FIN (or TLS close_notify), not a reset."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except ssl.SSLError as e:  # close_notify then FIN may surface as EOF in the record
                assert "EOF" in str(e), f"TLS error instead of a clean end: {e}"
                return
            if not data:
                return
        raise AssertionError("the router did not close the connection within 5 s")

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        self.sock.close()
