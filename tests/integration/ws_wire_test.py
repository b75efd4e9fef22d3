#!/usr/bin/python3
"""The router's WebSocket wire format (RFC 6455), byte by byte over raw sockets, on ws and wss:

  1. the opening handshake: Sec-WebSocket-Accept, the subprotocol answered, no extension agreed
     (an offered permessage-deflate goes unanswered), 426 naming version 13 for another version,
     400 for a malformed key or no Host;
  2. frames that arrive with the upgrade request, cut one byte per write, fragmented around a
     ping (whose payload the pong echoes), and 100 requests in one write answered in order;
  3. the closing handshake: the client's close code is echoed, then the router closes TCP (a
     clean end of stream, not a reset);
  4. protocol violations, each answered with its close code and then the end of the stream:
     unmasked frame, reserved bit, reserved opcode, fragmented control frame (1002), text that is
     not UTF-8 (1007), a frame announced above --max-message-bytes (1009, before its payload
     is sent), a binary frame (1003);
  5. a close frame queued behind answers the client never reads: the connection is dropped at
     the closing deadline, not kept forever, and not counted as a slow consumer.

    ws_wire_test.py VROUTER

Loopback only, port 0, one router, every wait bounded; about 5 s.
"""

import json
import os
import socket
import ssl
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vrouter_testlib  # noqa: E402  (beside this file)
from vrouter_testlib import client_tls, client_token  # noqa: E402

VROUTER = sys.argv[1]
SECRET = "ws-wire-test-secret"
MAX_MESSAGE = 4096
SEND_QUEUE_BYTES = 256 << 20  # case_close_behind_unread queues tens of MB (no slow consumer)
CLOSING_DEADLINE_S = 1.0  # --handshake-timeout-ms: also each step of the closing handshake
RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3's example
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def frame(opcode, payload, fin=True, masked=True, rsv=0, length=None):
    """A client frame; `length` overrides the announced payload length."""
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
    return frame(0x1, json.dumps(message).encode())


class Wire:
    """One raw connection: the upgrade by hand, then frames."""

    def __init__(self, port, tls, rcvbuf=None):
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.settimeout(5)
        if rcvbuf:  # before connecting: it bounds the window the router may fill
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        raw.connect(("127.0.0.1", port))
        if tls:
            raw = client_tls().wrap_socket(raw, server_hostname="localhost")
        self.sock, self.buf = raw, b""

    def upgrade(self, key=RFC_KEY, version="13", extra="", then=b"", host="127.0.0.1"):
        """Sends the upgrade request (and `then` in the same write); returns (status, headers)."""
        host_line = f"Host: {host}\r\n" if host else ""
        request = (f"GET /v1/client HTTP/1.1\r\n{host_line}Upgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   f"Sec-WebSocket-Version: {version}\r\nSec-WebSocket-Protocol: vrouter.v1\r\n"
                   f"{extra}\r\n").encode()
        self.sock.sendall(request + then)
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


def hello_frame():
    user = "u" + os.urandom(4).hex()
    return text({"type": "hello", "id": 1, "token": client_token(user, "wire", SECRET)})


def case_handshake(port, tls):
    w = Wire(port, tls)
    headers = w.opened()
    assert headers["sec-websocket-accept"] == RFC_ACCEPT, headers
    assert headers["sec-websocket-protocol"] == "vrouter.v1", headers
    assert headers["upgrade"].lower() == "websocket", headers
    w.close()
    w = Wire(port, tls)
    status, headers = w.upgrade(extra="Sec-WebSocket-Extensions: permessage-deflate\r\n")
    assert status == 101 and "sec-websocket-extensions" not in headers, (status, headers)
    w.close()
    w = Wire(port, tls)
    status, headers = w.upgrade(version="8")
    assert status == 426 and headers.get("sec-websocket-version") == "13", (status, headers)
    w.close()
    w = Wire(port, tls)
    status, _ = w.upgrade(key="not-a-key")
    assert status == 400, status
    w.close()
    w = Wire(port, tls)
    status, _ = w.upgrade(host=None)
    assert status == 400, status
    w.close()


def case_frames(port, tls):
    # A hello in the same write as the upgrade request.
    w = Wire(port, tls)
    w.opened(then=hello_frame())
    assert w.read_message()["type"] == "welcome"
    # A lookup cut into one-byte writes.
    for b in text({"type": "lookup", "id": 2, "users": ["nobody"]}):
        w.send(bytes([b]))
    answer = w.read_message()
    assert answer["type"] == "lookup_result" and answer["id"] == 2, answer
    # A lookup in three fragments with a ping between them: the pong echoes the ping's payload.
    body = json.dumps({"type": "lookup", "id": 3, "users": ["a", "b"]}).encode()
    w.send(frame(0x1, body[:5], fin=False) + frame(0x9, b"are you there")
           + frame(0x0, body[5:12], fin=False))
    w.send(frame(0x0, body[12:]))
    fin, opcode, payload = w.read_frame()
    assert (fin, opcode, payload) == (True, 0xA, b"are you there"), (fin, opcode, payload)
    answer = w.read_message()
    assert answer["id"] == 3 and answer["type"] == "lookup_result", answer
    # 100 lookups in one write: 100 answers, in order.
    w.send(b"".join(text({"type": "lookup", "id": 100 + i, "users": ["x"]}) for i in range(100)))
    ids = [w.read_message()["id"] for _ in range(100)]
    assert ids == list(range(100, 200)), ids
    # The client closes: its code is echoed, then the router ends the stream.
    w.send(frame(0x8, struct.pack(">H", 1000) + b"bye"))
    code, _ = w.read_close()
    assert code == 1000, code
    w.expect_end()
    w.close()


def case_close_behind_unread(port, tls, router):
    """A close frame stuck behind answers the peer never reads: the router drops the connection
    at the closing deadline (--handshake-timeout-ms) instead of keeping it forever."""
    transport = "wss" if tls else "ws"
    open_now = lambda: router.metric("vrouter_connections", transport=transport)  # noqa: E731
    deadline = time.monotonic() + 5
    while open_now() > 0:  # the earlier cases' sessions finish their closing handshakes
        assert time.monotonic() < deadline, "sessions of the earlier cases still open after 5 s"
        time.sleep(0.02)
    slow = router.metric("vrouter_forced_closes_total", reason="slow_consumer")
    w = Wire(port, tls, rcvbuf=4096)
    w.opened(then=hello_frame())
    assert w.read_message()["type"] == "welcome"
    # ~8 KB answers, never read: twice what the router's send buffer can grow to (tcp_wmem's
    # maximum) plus 8 MB, so the close frame stays queued behind them whatever the kernel's
    # settings; and less than --send-queue-bytes, so no slow-consumer close.
    users = [f"user-{i:05d}" for i in range(250)]
    lookup = text({"type": "lookup", "id": 2, "users": users})
    assert len(lookup) < MAX_MESSAGE
    with open("/proc/sys/net/ipv4/tcp_wmem") as f:
        wmem_max = int(f.read().split()[2])
    count = max(2000, (2 * wmem_max + (8 << 20)) // 8000)
    assert count * 9000 < SEND_QUEUE_BYTES, f"tcp_wmem max {wmem_max} needs a bigger queue"
    w.sock.settimeout(20)
    for _ in range(count):
        w.send(lookup)
    w.send(frame(0x8, struct.pack(">H", 1000)))
    started = time.monotonic()
    deadline = started + 10
    while open_now() > 0:
        assert time.monotonic() < deadline, "a close frame behind an unread queue held the session"
        time.sleep(0.05)
    waited = time.monotonic() - started
    assert waited >= CLOSING_DEADLINE_S * 0.5, f"dropped after {waited:.2f} s, before the deadline"
    assert router.metric("vrouter_forced_closes_total", reason="slow_consumer") == slow
    w.close()


def case_violations(port, tls):
    cases = [
        ("unmasked frame", frame(0x1, b"{}", masked=False), 1002),
        ("reserved bit (no extension agreed)", frame(0x1, b"{}", rsv=0x40), 1002),
        ("reserved opcode", frame(0x3, b"{}"), 1002),
        ("fragmented ping", frame(0x9, b"x", fin=False), 1002),
        ("continuation without a message", frame(0x0, b"x"), 1002),
        ("text not UTF-8", frame(0x1, b'{"type":"caf\xc3"}'), 1007),
        ("binary frame", frame(0x2, b"\x00\x01"), 1003),
        # Only the header: the router refuses the frame before its payload comes.
        ("frame above --max-message-bytes", frame(0x1, b"", length=MAX_MESSAGE + 1)[:14], 1009),
    ]
    for what, data, expected in cases:
        w = Wire(port, tls)
        w.opened(then=hello_frame())
        assert w.read_message()["type"] == "welcome"
        w.send(data)
        code, reason = w.read_close()
        assert code == expected, f"{what}: close {code} ({reason}), expected {expected}"
        w.send(frame(0x8, struct.pack(">H", code)))  # our answer; the router may be gone already
        w.expect_end()
        w.close()


def main():
    started = time.monotonic()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VROUTER_")}
    env["VROUTER_AUTH_SECRET"] = SECRET
    tmp = tempfile.TemporaryDirectory()
    cert, key = vrouter_testlib.make_cert(tmp.name, "ws-wire", cn="localhost")
    r = vrouter_testlib.Router(
        VROUTER, ["--max-message-bytes", str(MAX_MESSAGE), "--tls-cert", cert, "--tls-key", key,
                  "--send-queue-bytes", str(SEND_QUEUE_BYTES), "--rate-limits", "off",
                  "--handshake-timeout-ms", str(int(CLOSING_DEADLINE_S * 1000))],
        env, "ws-wire", tls=True, drain_window_ms=200)
    try:
        for scheme, port, tls in (("ws", r.ws, False), ("wss", r.wss, True)):
            for case in (case_handshake, case_frames, case_violations):
                case(port, tls)
                print(f"[ws wire] {scheme} {case.__name__}: ok", flush=True)
            case_close_behind_unread(port, tls, r)
            print(f"[ws wire] {scheme} case_close_behind_unread: ok", flush=True)
        m = r.metrics()
        closes = vrouter_testlib.metric(m, "vrouter_forced_closes_total", reason="protocol")
        assert closes >= 16, f"protocol closes counted: {closes}, expected at least 16"
    finally:
        r.stop()
        vrouter_testlib.kill_started()
        tmp.cleanup()
    print(f"ws wire test: ok ({time.monotonic() - started:.1f} s)")


if __name__ == "__main__":
    main()
