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
import ssl
import subprocess
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
