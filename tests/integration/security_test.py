#!/usr/bin/python3
"""The router's security and abuse limits ("Security and abuse limits" in `vrouter --help`),
against the real binary: one function per feature, each failing if the feature were removed.

    security_test.py VROUTER

  1. ES256 client tokens chosen by kid, rotated through --auth-keys-dir (<kid>.pem: P-256 public
     key, <kid>.secret: HS256 secret), re-read every --reload-interval-ms: a key added is used, a
     key removed is refused (token_bad_signature), a bad key file fails the reload
     (vrouter_reloads_total{what="auth_keys",result="failed"}) and the previous keys stay;
     an HS256 token signed with an ES256 key's PEM text (algorithm confusion) is refused.
  2. Per-connection rate limits (--rate-limits lookup=5:5): the 6th immediate lookup gets
     `rate_limited`, a flood is closed with 1008, vrouter_rate_limited_total counts, a paced
     client is never limited.
  3. Origin allow-list (--allowed-origins): another Origin gets 403, the allowed one and none pass.
  4. Per-IP connection limit (--max-connections-per-ip 3): the 4th gets 429 + Retry-After, a slot
     freed is reusable, 127.0.0.2 is counted apart.
  5. Handshake cap (--max-handshakes 2, wss, --threads 1): two silent TCP connections hold the
     slots; a third client's TLS handshake waits in the backlog until they go
     (vrouter_accept_paused_total, vrouter_handshakes_in_flight). Then an expected failure (known
     bug, EXPECTED_FAILURE_HANDSHAKE_CAP_THREADS): with several worker threads the cap leaks.
  6. PROXY protocol v1/v2 from --trusted-proxies, on ws and wss, whole, split over two writes or
     sharing a write with the upgrade: the header's source address is the client's (its
     --region-cidrs region picks the video server; a token's region claim wins); a trusted peer
     without a valid header is closed (rejected{reason="proxy_protocol"}); an untrusted peer
     sending one gets no session.
  7. X-Forwarded-For from --trusted-proxies sets the client address (per-IP limit, region);
     from anyone else it is ignored.
  8. TLS: 1.2 minimum, an ECDSA + RSA certificate pair, TLS 1.2 session tickets, certificate
     reload (rename over; vrouter_tls_certificate_expiry_timestamp_seconds, reload metrics), a
     garbage certificate keeps the previous one, an open wss session survives it all.

Loopback only (127.0.0.1 and 127.0.0.2), ports 0, every process stopped at the end, every wait
bounded; about 6 s. Needs the `openssl` command (keys, certificates, ES256 signatures).
`security_test.py VROUTER 2 6` runs only cases 2 and 6.
"""

import asyncio
import json
import os
import socket
import ssl
import struct
import sys
import time
import warnings

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vrouter_testlib  # noqa: E402  (beside this file)
from vrouter_testlib import (  # noqa: E402
    b64, client_claims, client_tls, connected_socket, es256, eventually, hs256, make_cert,
    make_ec_key, metric, rejection, upgrade_request)

VROUTER = sys.argv[1]
SECRET = "security-test-client-secret"
RELOAD_MS = 200
# websockets 10-13 (Debian 12: 10.4) call it extra_headers; 14+ additional_headers.
HEADERS_KW = ("extra_headers" if int(websockets.__version__.split(".")[0]) < 14
              else "additional_headers")

EU_NET = "203.0.113.0/24"  # --region-cidrs: eu-west
FLEET = [  # eu-1 is small, us-1 big: a client without a region lands on us-1 (lower utilization)
    {"id": "eu-1", "url": "wss://eu-1.media.test/rtc", "region": "eu-west", "capacity": 20,
     "monitored": False},
    {"id": "us-1", "url": "wss://us-1.media.test/rtc", "region": "us-east", "capacity": 1000,
     "monitored": False},
]


# ---------------------------------------------------------------------------------------------
# Key and certificate files

def cert_der(cert_file):
    with open(cert_file) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def replace_file(path, data, tmp_dir):
    """Writes `data` beside, then renames it over `path`: readers see the old or the new file."""
    staging = os.path.join(tmp_dir, f".staging-{os.path.basename(path)}")
    with open(staging, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    os.replace(staging, path)


# ---------------------------------------------------------------------------------------------
# Router process

class Router(vrouter_testlib.Router):
    """A replica of VROUTER with this test's client secret (`secret`; None: none) and no other
    VROUTER_* variable, stderr in `lines`; metrics() and metric() off the event loop; stop()
    requires exit 0."""

    def __init__(self, name, args, secret=SECRET, tls=False):
        env = {k: v for k, v in os.environ.items() if not k.startswith("VROUTER_")}
        if secret:
            env["VROUTER_AUTH_SECRET"] = secret
        super().__init__(VROUTER, args, env, name, tls=tls, drain_window_ms=300,
                         start_timeout=15, stop_timeout=10)

    async def metrics(self):
        return await asyncio.to_thread(super().metrics)

    async def metric(self, name, **labels):
        return metric(await self.metrics(), name, **labels)


async def wait_metric_above(router, before, name, **labels):
    async def risen():
        return await router.metric(name, **labels) > before
    await eventually(f"{name}{labels} > {before}", risen, timeout=5)


# ---------------------------------------------------------------------------------------------
# Clients

class Client(vrouter_testlib.Client):
    """A /v1/client connection of this test: 5 s to open, 2 s to close."""

    secret = SECRET
    connect_options = {"open_timeout": 5, "close_timeout": 2}


async def welcomed(port, token, **kwargs):
    """A client whose hello was answered with welcome."""
    return await Client().welcomed(port, token, **kwargs)


async def hello_refused(port, token):
    """The error code and close code of a hello that must be refused."""
    return await Client().refused(port, token)


async def upgrade_refused(port, **kwargs):
    """(status, headers) of an upgrade that must be refused with an HTTP status."""
    return await Client().rejected(port, **kwargs)


# ---------------------------------------------------------------------------------------------
# 1. ES256 tokens, kid, rotation through --auth-keys-dir

async def case_1_token_keys(tmp):
    keys_dir = os.path.join(tmp, "keys")
    os.mkdir(keys_dir)
    k1_private, k1_public = make_ec_key(tmp, "k1")
    k2_private, k2_public = make_ec_key(tmp, "k2")
    with open(k1_public) as f:
        k1_pem = f.read()
    with open(k2_public) as f:
        k2_pem = f.read()
    replace_file(os.path.join(keys_dir, "k1.pem"), k1_pem, tmp)
    # Only the directory: no --auth-secret, so no kid-less HS256 key either.
    # Users say hello again and again as keys change: more than one person's hello budget.
    r = Router("sec-keys", ["--auth-keys-dir", keys_dir, "--reload-interval-ms", str(RELOAD_MS),
                            "--rate-limits", "hello=100:100"],
               secret=None)
    notes = []
    try:
        def ok():
            return r.metric("vrouter_reloads_total", what="auth_keys", result="ok")

        def failed():
            return r.metric("vrouter_reloads_total", what="auth_keys", result="failed")

        k1_token = lambda u: es256(client_claims(u), k1_private, "k1")  # noqa: E731
        k2_token = lambda u: es256(client_claims(u), k2_private, "k2")  # noqa: E731

        c = await welcomed(r.ws, k1_token("alice"))
        await c.close()
        # Not signed by the key its kid names; and a kid the replica does not have.
        assert await hello_refused(r.ws, es256(client_claims("mallory"), k2_private, "k1")) == (
            "token_bad_signature", 4001)
        assert await hello_refused(r.ws, k2_token("bob")) == ("token_bad_signature", 4001)
        # Algorithm confusion: HS256 keyed with the ES256 key's public PEM, naming its kid. A
        # verifier that let the token's header pick the algorithm would accept it.
        for material in (k1_pem, k1_pem.strip()):
            forged = hs256(client_claims("mallory"), material, kid="k1")
            assert await hello_refused(r.ws, forged) == ("token_bad_signature", 4001), (
                "HS256 token signed with the ES256 public key was not refused as a bad signature")
        # ... nor does a token without kid, or with alg none, get through.
        assert (await hello_refused(r.ws, hs256(client_claims("mallory"), k1_pem)))[0] == (
            "token_bad_signature")
        none_token = (f"{b64(json.dumps({'alg': 'none', 'kid': 'k1'}).encode())}."
                      f"{b64(json.dumps(client_claims('mallory')).encode())}.")
        assert (await hello_refused(r.ws, none_token))[1] == 4001, "alg none accepted"
        notes.append("k1 ok; wrong signer, unknown kid, HS256-with-public-PEM (kid k1), "
                     "no kid, alg none: refused")

        # Rotation, step 1: k2 added (rename into the directory) and an HS256 secret h1.
        before = await ok()
        os.rename(k2_public, os.path.join(keys_dir, "k2.pem"))
        await wait_metric_above(r, before, "vrouter_reloads_total", what="auth_keys", result="ok")
        c = await welcomed(r.ws, k2_token("bob"))
        await c.close()
        c = await welcomed(r.ws, k1_token("alice"))  # both during the overlap
        await c.close()
        before = await ok()
        replace_file(os.path.join(keys_dir, "h1.secret"), "h1-shared-secret\n", tmp)
        await wait_metric_above(r, before, "vrouter_reloads_total", what="auth_keys", result="ok")
        c = await welcomed(r.ws, hs256(client_claims("carol"), "h1-shared-secret", kid="h1"))
        await c.close()
        # An HS256 token naming the ES256 kid k2 with k2's PEM: still refused with both kinds.
        assert await hello_refused(r.ws, hs256(client_claims("mallory"), k2_pem, kid="k2")) == (
            "token_bad_signature", 4001)
        notes.append("k2.pem + h1.secret added -> reload ok, k2 (ES256) and h1 (HS256) accepted, "
                     "k1 still")

        # Step 2: k1 retired.
        before = await ok()
        os.remove(os.path.join(keys_dir, "k1.pem"))
        await wait_metric_above(r, before, "vrouter_reloads_total", what="auth_keys", result="ok")
        assert await hello_refused(r.ws, k1_token("alice")) == ("token_bad_signature", 4001), (
            "a token of the removed key k1 was not refused with token_bad_signature")
        c = await welcomed(r.ws, k2_token("bob"))
        await c.close()
        notes.append("k1.pem removed -> k1 tokens token_bad_signature/4001, k2 ok")

        # Step 3: a bad key file fails the reload; the keys in service stay.
        before_ok, before_failed = await ok(), await failed()
        replace_file(os.path.join(keys_dir, "k3.pem"), "-----BEGIN PUBLIC KEY-----\nnot a key\n"
                     "-----END PUBLIC KEY-----\n", tmp)
        await wait_metric_above(r, before_failed, "vrouter_reloads_total", what="auth_keys",
                                result="failed")
        assert await ok() == before_ok, "a directory with a bad key file counted as reloaded"
        assert r.events("auth_keys_reload_failed"), "no auth_keys_reload_failed log line"
        c = await welcomed(r.ws, k2_token("bob"))
        await c.close()
        c = await welcomed(r.ws, hs256(client_claims("carol"), "h1-shared-secret", kid="h1"))
        await c.close()
        assert await hello_refused(r.ws, k1_token("alice")) == ("token_bad_signature", 4001)
        # Fixed: the next change reloads.
        os.remove(os.path.join(keys_dir, "k3.pem"))
        await wait_metric_above(r, before_ok, "vrouter_reloads_total", what="auth_keys",
                                result="ok")
        c = await welcomed(r.ws, k2_token("bob"))
        await c.close()
        notes.append("bad k3.pem -> reload failed (logged), k2/h1 kept, k1 still refused; "
                     "bad file removed -> reload ok")
    finally:
        r.stop()
    print(f"[security 1] token keys: {'; '.join(notes)}", flush=True)


# ---------------------------------------------------------------------------------------------
# 2. Rate limits

async def case_2_rate_limits(tmp):
    r = Router("sec-rate", ["--rate-limits", "lookup=5:5"])
    try:
        # The 6th immediate lookup is refused; the burst of 5 is answered.
        c = await welcomed(r.ws, hs256(client_claims("burst"), SECRET))
        futures = [await c.send({"type": "lookup", "users": ["x"]}) for _ in range(6)]
        answers = [await asyncio.wait_for(f, 5) for f in futures]
        kinds = [a["type"] if a["type"] != "error" else a["code"] for a in answers]
        assert kinds == ["lookup_result"] * 5 + ["rate_limited"], (
            f"6 immediate lookups under lookup=5:5 answered {kinds}")
        await c.close()

        # A paced client (4/s under 5/s) beside a flooding one: only the flood is limited.
        paced = await welcomed(r.ws, hs256(client_claims("paced"), SECRET))
        flood = await welcomed(r.ws, hs256(client_claims("flood"), SECRET))

        async def pace():
            kinds = []
            for _ in range(10):  # 10 lookups: twice the burst, so the refill is what passes them
                a = await paced.call({"type": "lookup", "users": ["x"]})
                kinds.append(a["type"] if a["type"] != "error" else a["code"])
                await asyncio.sleep(0.25)
            return kinds

        async def flood_until_closed():
            sent, limited = 0, 0
            deadline = time.monotonic() + 5
            while not flood.closed.is_set() and time.monotonic() < deadline:
                try:
                    fut = await flood.send({"type": "lookup", "users": ["x"]})
                except websockets.ConnectionClosed:
                    break
                sent += 1
                fut.add_done_callback(lambda f: f.exception())  # answers not awaited
                await asyncio.sleep(0.002)
            await flood.wait_closed(3)
            limited = sum(1 for m in flood.pushes if m.get("code") == "rate_limited")
            return sent, limited

        paced_kinds, (sent, _) = await asyncio.gather(pace(), flood_until_closed())
        code, reason = flood.ws.close_code, flood.ws.close_reason
        assert (code, reason) == (1008, "rate_limited"), (
            f"flood of {sent} lookups closed with {code} {reason!r}, expected 1008 rate_limited")
        assert paced_kinds == ["lookup_result"] * 10, f"paced client was limited: {paced_kinds}"
        m = await r.metrics()
        counted = metric(m, "vrouter_rate_limited_total", type="lookup")
        closes = metric(m, "vrouter_forced_closes_total", reason="rate_limited")
        assert counted >= 1 + 50, f"vrouter_rate_limited_total{{type=lookup}} = {counted}"
        assert closes == 1, f"vrouter_forced_closes_total{{reason=rate_limited}} = {closes}"
        # The paced client, still open, still served.
        assert (await paced.call({"type": "lookup", "users": ["x"]}))["type"] == "lookup_result"
        await paced.close()
    finally:
        r.stop()
    print(f"[security 2] rate limits (lookup=5:5): 6th immediate lookup -> rate_limited; a flood "
          f"closed 1008 rate_limited after {sent} lookups; vrouter_rate_limited_total{{lookup}}="
          f"{counted:.0f}; a client at 4/s: 10 of 10 answered", flush=True)


# ---------------------------------------------------------------------------------------------
# 3. Origin allow-list

async def case_3_origins(tmp):
    r = Router("sec-origin", ["--allowed-origins", "https://app.example.com"])
    try:
        status, _ = await upgrade_refused(r.ws, origin="https://evil.example")
        assert status == 403, f"Origin https://evil.example answered {status}, expected 403"
        status, _ = await upgrade_refused(r.ws, origin="https://app.example.com.evil.example")
        assert status == 403, f"a look-alike Origin answered {status}, expected 403"
        c = await welcomed(r.ws, hs256(client_claims("browser"), SECRET),
                           origin="https://app.example.com")
        await c.close()
        c = await welcomed(r.ws, hs256(client_claims("native"), SECRET))  # no Origin: not a browser
        await c.close()
        rejected = await r.metric("vrouter_connections_rejected_total", reason="origin")
        assert rejected == 2, f"vrouter_connections_rejected_total{{reason=origin}} = {rejected}"
    finally:
        r.stop()
    print("[security 3] origins: https://evil.example and a look-alike -> 403 (counted 2); "
          "https://app.example.com and no Origin -> welcome", flush=True)


# ---------------------------------------------------------------------------------------------
# 4. Per-IP connection limit

async def case_4_per_ip(tmp):
    r = Router("sec-per-ip", ["--max-connections-per-ip", "3"])
    try:
        mine = [await welcomed(r.ws, hs256(client_claims(f"ip1-{i}"), SECRET)) for i in range(3)]
        status, headers = await upgrade_refused(r.ws)
        assert status == 429, f"4th connection from 127.0.0.1 answered {status}, expected 429"
        retry = headers.get("Retry-After")
        assert retry is not None and retry.isdigit() and int(retry) >= 1, (
            f"429 without a usable Retry-After: {retry!r}")
        # 127.0.0.2 is another address: its own three.
        theirs = [await welcomed(r.ws, hs256(client_claims(f"ip2-{i}"), SECRET), src="127.0.0.2")
                  for i in range(3)]
        status, _ = await upgrade_refused(r.ws, src="127.0.0.2")
        assert status == 429, f"4th connection from 127.0.0.2 answered {status}"
        # One of 127.0.0.1's closes: its slot is free again (promptly).
        await mine.pop().close()
        statuses = []

        async def reconnect():
            try:
                mine.append(await welcomed(r.ws, hs256(client_claims("ip1-again"), SECRET)))
                return True
            except Exception as e:  # noqa: BLE001
                # A refused upgrade surfaces as a rejection or as welcomed()'s own assertion.
                statuses.append(429 if "HTTP 429" in repr(e) else (rejection(e) or (repr(e),))[0])
                return False
        await eventually("a slot freed by a closed connection", reconnect, timeout=3, every=0.1)
        assert all(s == 429 for s in statuses), statuses
        rejected = await r.metric("vrouter_connections_rejected_total", reason="per_ip")
        assert rejected == 2 + len(statuses), f"rejected{{per_ip}} = {rejected}"
        for c in mine + theirs:
            await c.close()
    finally:
        r.stop()
    print(f"[security 4] per-IP limit 3: 4th from 127.0.0.1 -> 429 Retry-After {retry}; "
          f"127.0.0.2 counted apart (3 ok, 4th 429); after a close a new one got in "
          f"({len(statuses)} retries)", flush=True)


# ---------------------------------------------------------------------------------------------
# 5. Handshake cap

async def handshake_cap(r, tls, label):
    """Two silent connections hold both handshake slots; returns how long a third wss client
    waited after they closed. Asserts that it did not get through while they were open."""
    idle = [connected_socket(r.wss) for _ in range(2)]
    try:
        await eventually(
            f"{label}: 2 handshakes in flight",
            lambda: _metric_equals(r, "vrouter_handshakes_in_flight", 2))
        third = asyncio.create_task(welcomed(r.wss, hs256(client_claims(f"third-{label}"), SECRET),
                                             scheme="wss", tls=tls))
        done, _ = await asyncio.wait({third}, timeout=1.0)
        got_through = bool(done)
        paused = await r.metric("vrouter_accept_paused_total")
        in_flight = await r.metric("vrouter_handshakes_in_flight")
    finally:
        closed_at = time.monotonic()
        for s in idle:
            s.close()
    c = await asyncio.wait_for(third, 3)
    waited = time.monotonic() - closed_at
    await c.close()
    return got_through, waited, paused, in_flight


async def _metric_equals(r, name, value):
    return await r.metric(name) == value


async def case_5_handshake_cap(tmp):
    cert, key = make_cert(tmp, "cap", "ec", 30)
    tls = client_tls()
    args = ["--tls-cert", cert, "--tls-key", key, "--max-handshakes", "2",
            "--handshake-timeout-ms", "3000"]
    r = Router("sec-handshakes", [*args, "--threads", "1"], tls=True)
    try:
        got_through, waited, paused, in_flight = await handshake_cap(r, tls, "1 thread")
        assert not got_through, ("a 3rd wss client completed its handshake while --max-handshakes "
                                 "2 were held by silent connections")
        assert paused >= 1, f"vrouter_accept_paused_total = {paused}"
        assert in_flight == 2, f"vrouter_handshakes_in_flight = {in_flight} while 2 were held"
        assert waited < 1.5, f"the 3rd client waited {waited:.2f} s after the slots were freed"
        assert await r.metric("vrouter_handshakes_in_flight") == 0
    finally:
        r.stop()
    print(f"[security 5] handshake cap 2 (wss, 1 thread): a 3rd client held in the backlog for "
          f"1 s while 2 silent connections were open (in flight {in_flight:.0f}, accept paused "
          f"{paused:.0f}x), welcomed {waited * 1000:.0f} ms after they closed", flush=True)
    await probe_handshake_cap_threads(tmp, args, tls)


# Known router bug, probed as an expected failure: with more than one worker thread the cap is
# exceeded. Each worker has its own SO_REUSEPORT listener that re-arms async_accept right after
# an accept while the gate is still open, so every other listener keeps an accept armed when the
# in-flight count reaches --max-handshakes; the kernel hands a new connection to one of those at
# random, and it is handshaken (vrouter_handshakes_in_flight > --max-handshakes): up to
# max_handshakes + threads - 1 in flight. Set to False once fixed; the probe then requires the
# third client to be held with the default --threads 2 as well.
EXPECTED_FAILURE_HANDSHAKE_CAP_THREADS = False


async def probe_handshake_cap_threads(tmp, args, tls):
    r = Router("sec-handshakes-2", [*args, "--threads", "4"], tls=True)
    leaks, runs, worst = 0, 6, 0
    try:
        for i in range(runs):
            got_through, _, _, in_flight = await handshake_cap(r, tls, f"4 threads #{i}")
            leaks += got_through
            worst = max(worst, in_flight)
            if leaks and EXPECTED_FAILURE_HANDSHAKE_CAP_THREADS:
                break
    finally:
        r.stop()
    if EXPECTED_FAILURE_HANDSHAKE_CAP_THREADS:
        print(f"[security 5] XFAIL (known bug): with --threads 4 a 3rd client got through "
              f"--max-handshakes 2 in {leaks} of {i + 1} tries"
              + ("" if leaks else " (not reproduced this run: the kernel's REUSEPORT pick)"),
              flush=True)
    else:
        assert not leaks, (f"--threads 4: a 3rd client completed its handshake past "
                           f"--max-handshakes 2 in {leaks} of {runs} tries")
        print(f"[security 5] --threads 4: the cap held in {runs} of {runs} tries", flush=True)


# ---------------------------------------------------------------------------------------------
# 6. PROXY protocol

def proxy_v2(source, source_port=5555, destination="127.0.0.1", destination_port=443):
    addresses = socket.inet_aton(source) + socket.inet_aton(destination)
    body = addresses + struct.pack("!HH", source_port, destination_port)
    return (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body)


def proxy_v1(source, source_port=5555):
    return f"PROXY TCP4 {source} 127.0.0.1 {source_port} 443\r\n".encode()


def write_fleet(tmp):
    fleet, regions = os.path.join(tmp, "fleet.json"), os.path.join(tmp, "regions.txt")
    with open(fleet, "w") as f:
        json.dump(FLEET, f)
    with open(regions, "w") as f:
        f.write(f"# client address ranges -> region\n{EU_NET} eu-west\n")
    return fleet, regions


async def joined_from(port, user, **kwargs):
    """The video server a new user's join got (the client stays connected: its load counts)."""
    token = kwargs.pop("token", None) or hs256(client_claims(user), SECRET)
    c = await welcomed(port, token, **kwargs)
    return c, (await c.join(attempts=1))["server"]["id"]


UPGRADE = upgrade_request()


def raw_upgrade(port, chunks):
    """The status line answered to `chunks` written 50 ms apart (the last one usually ends with
    the upgrade request)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        for i, chunk in enumerate(chunks):
            if i:
                time.sleep(0.05)
            s.sendall(chunk)
        return s.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace")


async def case_6_proxy_protocol(tmp):
    fleet, regions = write_fleet(tmp)
    cert, key = make_cert(tmp, "proxy", "ec", 30)
    r = Router("sec-proxy", ["--proxy-protocol", "--trusted-proxies", "127.0.0.1/32",
                             "--region-cidrs", regions, "--video-servers", fleet,
                             "--tls-cert", cert, "--tls-key", key], tls=True)
    clients = []
    try:
        picks = {}
        for i in range(6):  # v1, each user alone in its space (no space affinity)
            c, picks[f"eu-v1-{i}"] = await joined_from(r.ws, f"eu-v1-{i}",
                                                       send=proxy_v1(f"203.0.113.{9 + i}"))
            clients.append(c)
        for i in range(2):  # v2
            c, picks[f"eu-v2-{i}"] = await joined_from(r.ws, f"eu-v2-{i}",
                                                       send=proxy_v2(f"203.0.113.{77 + i}"))
            clients.append(c)
        # wss behind a TLS-passthrough balancer: the header comes before the ClientHello.
        c, picks["eu-wss"] = await joined_from(r.wss, "eu-wss", scheme="wss", tls=client_tls(),
                                               send=proxy_v2("203.0.113.90"))
        clients.append(c)
        wrong = {u: s for u, s in picks.items() if s != "eu-1"}
        assert not wrong, f"users proxied from {EU_NET} (eu-west) not placed on eu-1: {wrong}"
        # The token's region claim wins over the address.
        c, claimed = await joined_from(r.ws, "claims-us", send=proxy_v1("203.0.113.50"),
                                       token=hs256(client_claims("claims-us", region="us-east"),
                                                   SECRET))
        clients.append(c)
        assert claimed == "us-1", f"token region us-east from an eu-west address -> {claimed}"
        # Control: addresses outside the table have no region; eu-1 is fuller (by utilization)
        # than us-1, so they go to us-1. Without the PROXY address, the users above would too.
        control = {}
        for i in range(3):
            c, control[f"nowhere-{i}"] = await joined_from(r.ws, f"nowhere-{i}",
                                                           send=proxy_v1(f"192.0.2.{10 + i}"))
            clients.append(c)
        assert set(control.values()) == {"us-1"}, f"region-less control users: {control}"
        # The header split over two TCP writes, and a header sharing a write with the request.
        v1 = proxy_v1("203.0.113.60")
        for chunks in ([v1[:13], v1[13:] + UPGRADE], [proxy_v2("203.0.113.61") + UPGRADE]):
            status = await asyncio.to_thread(raw_upgrade, r.ws, chunks)
            assert " 101 " in status, f"PROXY header written as {chunks}: {status!r}"
        # Not proxied: a peer outside --trusted-proxies connects directly (no header).
        c, direct = await joined_from(r.ws, "direct", src="127.0.0.2")
        clients.append(c)

        # A trusted peer that does not start with a valid header: closed, counted.
        before = await r.metric("vrouter_connections_rejected_total", reason="proxy_protocol")
        garbage = [b"\x00\x01garbage\r\n", b"PROXY TCP4 999.0.113.9 127.0.0.1 5555 443\r\n",
                   b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 443\n"]
        for prefix in garbage:
            try:
                c = await Client().connect(r.ws, send=prefix)
            except Exception as e:  # noqa: BLE001
                assert rejection(e) is None, f"{prefix!r}: answered with HTTP {rejection(e)}"
            else:
                await c.close()
                raise AssertionError(f"a trusted peer sending {prefix!r} got a WebSocket")
        # And an upgrade without any header (the first byte is the request's 'G').
        try:
            c = await Client().connect(r.ws, src="127.0.0.1")
        except Exception as e:  # noqa: BLE001
            assert rejection(e) is None, f"header-less upgrade answered HTTP {rejection(e)}"
        else:
            await c.close()
            raise AssertionError("a trusted peer without a PROXY header got a WebSocket")
        await wait_metric_above(r, before + len(garbage), "vrouter_connections_rejected_total",
                                reason="proxy_protocol")
        rejected = await r.metric("vrouter_connections_rejected_total", reason="proxy_protocol")
        assert rejected == before + len(garbage) + 1, f"rejected{{proxy_protocol}} = {rejected}"

        # An untrusted peer cannot say who it is: its header is a broken HTTP request.
        spoofed = proxy_v1("203.0.113.9")
        for header in (spoofed, proxy_v2("203.0.113.9")):
            try:
                c = await Client().connect(r.ws, src="127.0.0.2", send=header)
            except Exception as e:  # noqa: BLE001
                status = rejection(e)
                assert status is None or status[0] == 400, f"untrusted PROXY header -> {status}"
            else:
                await c.close()
                raise AssertionError("127.0.0.2 (untrusted) got a session after a PROXY header")
        for c in clients:
            await c.close()
    finally:
        r.stop()
    print(f"[security 6] PROXY protocol: 6 users via v1, 2 via v2 and 1 via v2 over wss from "
          f"{EU_NET} -> eu-1 every time; header split over 2 writes / sharing a write with the "
          f"upgrade -> 101; token region us-east -> us-1; addresses outside the table -> "
          f"{sorted(set(control.values()))}; direct 127.0.0.2 ok ({direct}); trusted peer with "
          f"garbage or no header -> closed, rejected{{proxy_protocol}} +{len(garbage) + 1}; "
          f"PROXY v1/v2 from untrusted 127.0.0.2 -> no session", flush=True)


# ---------------------------------------------------------------------------------------------
# 7. X-Forwarded-For

async def case_7_forwarded_for(tmp):
    fleet, regions = write_fleet(tmp)
    r = Router("sec-xff", ["--trusted-proxies", "127.0.0.1/32", "--region-cidrs", regions,
                           "--video-servers", fleet, "--max-connections-per-ip", "1"])
    clients = []
    try:
        xff = lambda ip: {HEADERS_KW: {"X-Forwarded-For": ip}}  # noqa: E731
        eu = {}
        for i in range(3):  # without the header's address, at most the first would go to eu-1
            c, eu[f"xff-eu-{i}"] = await joined_from(r.ws, f"xff-eu-{i}",
                                                     **xff(f"203.0.113.{5 + i}"))
            clients.append(c)
        assert set(eu.values()) == {"eu-1"}, f"X-Forwarded-For 203.0.113.5-7 (eu-west): {eu}"
        c, other = await joined_from(r.ws, "xff-other", **xff("198.51.100.7"))
        clients.append(c)
        assert other == "us-1", f"X-Forwarded-For 198.51.100.7 (no region) placed on {other}"
        status, _ = await upgrade_refused(r.ws, **xff("203.0.113.5"))
        assert status == 429, f"a 2nd connection for 203.0.113.5 answered {status}, expected 429"
        # A chain through another trusted hop: the right-most untrusted entry is the client.
        status, _ = await upgrade_refused(r.ws, **xff("198.51.100.7, 127.0.0.1"))
        assert status == 429, f"'198.51.100.7, 127.0.0.1' (2nd for 198.51.100.7) -> {status}"
        # From an untrusted address the header is ignored: 127.0.0.2 is one client whatever it
        # claims.
        c = await welcomed(r.ws, hs256(client_claims("xff-untrusted-1"), SECRET), src="127.0.0.2",
                           **xff("192.0.2.1"))
        clients.append(c)
        status, _ = await upgrade_refused(r.ws, src="127.0.0.2", **xff("192.0.2.2"))
        assert status == 429, (f"127.0.0.2 (untrusted) with another X-Forwarded-For answered "
                               f"{status}: the header was believed")
        for c in clients:
            await c.close()
    finally:
        r.stop()
    print("[security 7] X-Forwarded-For from trusted 127.0.0.1: 203.0.113.5-7 -> eu-1, "
          "198.51.100.7 -> us-1, a 2nd for each -> 429 (per client address, limit 1); from "
          "untrusted 127.0.0.2 ignored (2nd connection 429 whatever the header)", flush=True)


# ---------------------------------------------------------------------------------------------
# 8. TLS

def tls_handshake(port, ctx, session=None):
    """A raw TLS connection: (ssl socket) after the handshake."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        return ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session)
    except BaseException:
        raw.close()
        raise


def served_cert(port, ciphers):
    """The DER certificate served to a TLS 1.2 client restricted to `ciphers`."""
    with tls_handshake(port, client_tls(ssl.TLSVersion.TLSv1_2, ciphers)) as s:
        assert s.version() == "TLSv1.2", s.version()
        return s.getpeercert(binary_form=True)


def upgrade_over(s):
    s.sendall(UPGRADE)
    return s.recv(4096).split(b"\r\n", 1)[0].decode()


async def case_8_tls(tmp):
    ec_cert, ec_key = make_cert(tmp, "ec", "ec", 30)
    rsa_cert, rsa_key = make_cert(tmp, "rsa", "rsa", 400)
    ec_der, rsa_der = cert_der(ec_cert), cert_der(rsa_cert)
    r = Router("sec-tls", ["--tls-cert", f"{ec_cert},{rsa_cert}", "--tls-key",
                           f"{ec_key},{rsa_key}", "--reload-interval-ms", str(RELOAD_MS)],
               tls=True)
    notes = []
    try:
        kept = await welcomed(r.wss, hs256(client_claims("kept"), SECRET), scheme="wss",
                              tls=client_tls())

        # TLS 1.1 is refused by the router (protocol_version alert). The client must be allowed
        # to offer it: @SECLEVEL=0 lifts the local OpenSSL's own floor.
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                old = client_tls(ssl.TLSVersion.TLSv1_1, "ALL:@SECLEVEL=0")
                old.minimum_version = ssl.TLSVersion.TLSv1
            offerable = True
        except (ssl.SSLError, ValueError) as e:
            offerable, why = False, repr(e)
        if offerable:
            try:
                s = await asyncio.to_thread(tls_handshake, r.wss, old)
                version = s.version()
                s.close()
                raise AssertionError(f"a TLS 1.1 client was served ({version})")
            except ssl.SSLError as e:
                if "no protocols available" in str(e) or "NO_PROTOCOLS" in str(e):
                    offerable, why = False, str(e)
                else:
                    assert "protocol version" in str(e).lower() or "PROTOCOL_VERSION" in str(e), (
                        f"TLS 1.1 failed, but not for its version: {e}")
                    notes.append(f"TLS 1.1 -> refused ({e.reason})")
        if not offerable:
            notes.append(f"TLS 1.1 SKIPPED (this OpenSSL will not offer it: {why})")

        # Two certificates: each key exchange gets its own.
        got_rsa = await asyncio.to_thread(served_cert, r.wss, "ECDHE-RSA-AES128-GCM-SHA256")
        got_ec = await asyncio.to_thread(served_cert, r.wss, "ECDHE-ECDSA-AES128-GCM-SHA256")
        assert got_rsa == rsa_der, "an ECDHE-RSA client was not served the RSA certificate"
        assert got_ec == ec_der, "an ECDHE-ECDSA client was not served the ECDSA certificate"
        notes.append("ECDHE-RSA -> RSA cert, ECDHE-ECDSA -> ECDSA cert")

        # TLS 1.2 session tickets: a second connection resumes.
        ctx12 = client_tls(ssl.TLSVersion.TLSv1_2)

        def resume():
            with tls_handshake(r.wss, ctx12) as first:
                session = first.session
                assert session is not None and session.has_ticket, "no TLS 1.2 session ticket"
            with tls_handshake(r.wss, ctx12, session) as second:
                return second.session_reused, upgrade_over(second)
        reused, status_line = await asyncio.to_thread(resume)
        assert reused, "a TLS 1.2 connection offering the previous session's ticket did not resume"
        assert " 101 " in status_line, f"upgrade over the resumed session: {status_line}"
        notes.append("TLS 1.2 ticket resumed")

        # Reload: a new ECDSA certificate (new key, later notAfter) renamed over the files.
        m = await r.metrics()
        expiry_before = metric(m, "vrouter_tls_certificate_expiry_timestamp_seconds")
        ok_before = metric(m, "vrouter_reloads_total", what="tls", result="ok")
        staging = os.path.join(tmp, "next")
        os.mkdir(staging)
        new_cert, new_key = make_cert(staging, "ec2", "ec", 60)
        new_der = cert_der(new_cert)
        changed_at = time.monotonic()
        os.replace(new_key, ec_key)
        os.replace(new_cert, ec_cert)

        async def serves_new():
            return await asyncio.to_thread(
                served_cert, r.wss, "ECDHE-ECDSA-AES128-GCM-SHA256") == new_der
        await eventually("new connections to get the reloaded certificate", serves_new, 3)
        took = time.monotonic() - changed_at
        assert took < 1.5, f"the new certificate took {took:.2f} s (reload every {RELOAD_MS} ms)"
        m = await r.metrics()
        expiry_after = metric(m, "vrouter_tls_certificate_expiry_timestamp_seconds")
        assert expiry_after - expiry_before > 25 * 86400, (
            f"expiry gauge {expiry_before:.0f} -> {expiry_after:.0f}, expected +30 days")
        assert metric(m, "vrouter_reloads_total", what="tls", result="ok") > ok_before
        assert await asyncio.to_thread(
            served_cert, r.wss, "ECDHE-RSA-AES128-GCM-SHA256") == rsa_der, "RSA cert lost"
        notes.append(f"cert renamed over -> served after {took * 1000:.0f} ms, expiry gauge "
                     f"+{(expiry_after - expiry_before) / 86400:.0f} d")

        # A garbage certificate: the reload fails, the previous (valid) one stays in service.
        m = await r.metrics()
        failed_before = metric(m, "vrouter_reloads_total", what="tls", result="failed")
        ok_before = metric(m, "vrouter_reloads_total", what="tls", result="ok")
        replace_file(ec_cert, "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n",
                     tmp)
        await wait_metric_above(r, failed_before, "vrouter_reloads_total", what="tls",
                                result="failed")
        m = await r.metrics()
        assert metric(m, "vrouter_reloads_total", what="tls", result="ok") == ok_before
        assert metric(m, "vrouter_tls_certificate_expiry_timestamp_seconds") == expiry_after
        assert r.events("tls_reload_failed"), "no tls_reload_failed log line"
        assert await asyncio.to_thread(
            served_cert, r.wss, "ECDHE-ECDSA-AES128-GCM-SHA256") == new_der, (
            "after a failed reload, new connections did not get the previous valid certificate")
        c = await welcomed(r.wss, hs256(client_claims("after-garbage"), SECRET), scheme="wss",
                           tls=client_tls())
        await c.close()
        notes.append("garbage cert -> reload failed, previous cert still served")

        # The session opened before all this is still up.
        answer = await kept.call({"type": "lookup", "users": ["kept"]})
        assert answer["type"] == "lookup_result", answer
        assert not kept.closed.is_set()
        await kept.close()
        notes.append("a wss session opened first stayed up")
    finally:
        r.stop()
    print(f"[security 8] TLS: {'; '.join(notes)}", flush=True)


# ---------------------------------------------------------------------------------------------

CASES = [case_1_token_keys, case_2_rate_limits, case_3_origins, case_4_per_ip,
         case_5_handshake_cap, case_6_proxy_protocol, case_7_forwarded_for, case_8_tls]


def main():
    # optional: case numbers to run, e.g. `security_test.py VROUTER 1 3`
    vrouter_testlib.run_cases(CASES, set(sys.argv[2:]), 85, "security test")


if __name__ == "__main__":
    main()
