#!/usr/bin/python3
"""The router's WebSocket wire format (RFC 6455), byte by byte over raw sockets, on ws and wss:

  1. the opening handshake: Sec-WebSocket-Accept, the subprotocol answered, no extension agreed
     (an offered permessage-deflate goes unanswered), 426 naming version 13 for another version,
     400 for a malformed key or no Host, 400 for an empty Sec-WebSocket-Protocol (it lists no
     protocol; only an absent one means none), 101 without the header;
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
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vrouter_testlib  # noqa: E402  (beside this file)
from vrouter_testlib import RFC_ACCEPT, RawClient, client_token, frame, text  # noqa: E402

VROUTER = sys.argv[1]
SECRET = "ws-wire-test-secret"
MAX_MESSAGE = 4096
SEND_QUEUE_BYTES = 256 << 20  # case_close_behind_unread queues tens of MB (no slow consumer)
CLOSING_DEADLINE_S = 1.0  # --handshake-timeout-ms: also each step of the closing handshake


def hello_frame():
    user = "u" + os.urandom(4).hex()
    return text({"type": "hello", "id": 1, "token": client_token(user, "wire", SECRET)})


def case_handshake(port, tls):
    w = RawClient(port, tls)
    headers = w.opened()
    assert headers["sec-websocket-accept"] == RFC_ACCEPT, headers
    assert headers["sec-websocket-protocol"] == "vrouter.v1", headers
    assert headers["upgrade"].lower() == "websocket", headers
    w.close()
    w = RawClient(port, tls)
    status, headers = w.upgrade(extra="Sec-WebSocket-Extensions: permessage-deflate\r\n")
    assert status == 101 and "sec-websocket-extensions" not in headers, (status, headers)
    w.close()
    w = RawClient(port, tls)
    status, headers = w.upgrade(version="8")
    assert status == 426 and headers.get("sec-websocket-version") == "13", (status, headers)
    w.close()
    w = RawClient(port, tls)
    status, _ = w.upgrade(key="not-a-key")
    assert status == 400, status
    w.close()
    w = RawClient(port, tls)
    status, _ = w.upgrade(host=None)
    assert status == 400, status
    w.close()
    for path in ("/v1/client", "/v1/video-server"):
        w = RawClient(port, tls)
        status, _ = w.upgrade(protocol=None, path=path, extra="Sec-WebSocket-Protocol: \r\n")
        assert status == 400, f"{path}, empty Sec-WebSocket-Protocol: {status}, expected 400"
        w.close()
        w = RawClient(port, tls)
        status, headers = w.upgrade(protocol=None, path=path)
        assert status == 101 and "sec-websocket-protocol" not in headers, (path, status, headers)
        w.close()


def case_frames(port, tls):
    # A hello in the same write as the upgrade request.
    w = RawClient(port, tls)
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
    w = RawClient(port, tls, rcvbuf=4096)
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
        w = RawClient(port, tls)
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
