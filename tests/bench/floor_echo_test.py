#!/usr/bin/python3
"""bench/load/floor_echo (the floor of `bench/run rps`) is a correct WebSocket echo server, byte by
byte over raw sockets:

  1. the opening handshake: Sec-WebSocket-Accept, vrouter.v1 answered when offered and only
     then; 400 for a missing key, a bad key, no Host, a POST, garbage, a request above 8 KiB;
     426 naming version 13 for another version; each followed by the end of the stream;
  2. echo: text and binary messages with 7-, 16- and 64-bit lengths come back unmasked, frames
     sent with the upgrade request, cut one byte per write, and many in one write are answered
     in order; a ping gets a pong of its payload, a pong gets nothing;
  3. the closing handshake: the client's code is echoed (an empty close with an empty one), then
     the server ends the stream;
  4. malformed frames, each answered with its close code and the end of the stream: unmasked,
     RSV bit, reserved opcode, a fragment, a continuation, a length not in minimal form, a
     control frame above 125 bytes, a bad close code or a 1-byte close (1002), text that is not
     UTF-8 (1007), a length above --max-message-bytes (1009, before its payload is sent);
  5. 16 MB sent while the client does not read (partial writes, the out buffer, reading paused
     and resumed) all come back, in order;
  6. the server is still alive after all of it, and SIGTERM stops it (exit 0, its "stopped" line
     counting the messages).

    floor_echo_test.py FLOOR_ECHO

Loopback only, port 0, every wait bounded; a few seconds.
"""

import json
import os
import socket
import struct
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import vrouter_testlib  # noqa: E402
from vrouter_testlib import RFC_ACCEPT, RawClient, frame  # noqa: E402

FLOOR = sys.argv[1]
MAX_MESSAGE = 4096


def start():
    proc = subprocess.Popen([FLOOR, "--listen", "127.0.0.1:0", "--max-message-bytes",
                             str(MAX_MESSAGE)], stdout=subprocess.PIPE, text=True)
    vrouter_testlib.STARTED.append(proc)
    line = json.loads(proc.stdout.readline())
    assert line["event"] == "listening" and line["threads"] == 1, line
    assert line["ws"].startswith("ws://127.0.0.1:") and line["ws"].endswith("/v1/client"), line
    return proc, int(line["ws"].split(":")[2].split("/")[0])


def opened(port, then=b""):
    c = RawClient(port)
    headers = c.opened(then=then)
    assert headers["sec-websocket-accept"] == RFC_ACCEPT, headers
    assert headers["sec-websocket-protocol"] == "vrouter.v1", headers
    return c


def expect_echo(c, opcode, payload):
    fin, got_opcode, got = c.read_frame()
    assert fin and got_opcode == opcode and got == payload, (fin, got_opcode, got[:40])


def expect_failed(c, code):
    got, _ = c.read_close()
    assert got == code, f"close {got}, expected {code}"
    c.expect_end()
    c.close()


def case_handshake(port):
    c = opened(port)
    assert c.buf == b""
    c.close()
    c = RawClient(port)
    status, headers = c.upgrade(protocol=None)
    assert status == 101 and "sec-websocket-protocol" not in headers, (status, headers)
    c.close()
    c = RawClient(port)
    status, headers = c.upgrade(protocol="chat, vrouter.v1")
    assert status == 101 and headers["sec-websocket-protocol"] == "vrouter.v1", headers
    c.close()
    c = RawClient(port)
    status, headers = c.upgrade(version="8")
    assert status == 426 and headers.get("sec-websocket-version") == "13", (status, headers)
    c.expect_end()
    c.close()
    for kwargs in ({"key": "not-a-key"}, {"host": None}):
        c = RawClient(port)
        status, _ = c.upgrade(**kwargs)
        assert status == 400, (kwargs, status)
        c.expect_end()
        c.close()
    for raw in (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", b"hello\r\n\r\n",
                b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
                b"GET / HTTP/1.1\r\n" + b"X-Filler: " + b"a" * 9000 + b"\r\n"):
        c = RawClient(port)
        c.send(raw)
        while b"\r\n\r\n" not in c.buf:
            c._fill()
        assert c.buf.startswith(b"HTTP/1.1 400 "), (raw[:30], c.buf[:40])
        c.buf = c.buf.split(b"\r\n\r\n", 1)[1]
        c.expect_end()
        c.close()


def case_echo(port):
    c = opened(port)
    for opcode, payload in ((0x1, b'{"type":"lookup","id":1,"users":["u7"]}'), (0x2, b"\x00\xff"),
                            (0x1, "é".encode() * 100), (0x1, b""), (0x2, bytes(range(256)) * 16)):
        c.send(frame(opcode, payload))
        expect_echo(c, opcode, payload)
    c.close()
    # frames that come with the upgrade request, then many in one write, then one byte per write
    first = frame(0x1, b"with the upgrade")
    c = opened(port, then=first)
    expect_echo(c, 0x1, b"with the upgrade")
    c.send(b"".join(frame(0x1, b"m%d" % i) for i in range(100)))
    for i in range(100):
        expect_echo(c, 0x1, b"m%d" % i)
    for byte in frame(0x1, b"slowly" * 30):
        c.send(bytes([byte]))
    expect_echo(c, 0x1, b"slowly" * 30)
    c.send(frame(0x9, b"ping!") + frame(0xA, b"unsolicited") + frame(0x1, b"after"))
    expect_echo(c, 0xA, b"ping!")
    expect_echo(c, 0x1, b"after")
    c.send(frame(0x8, struct.pack(">H", 1000) + b"bye"))
    assert c.read_close() == (1000, "")
    c.expect_end()
    c.close()
    c = opened(port)
    c.send(frame(0x8, b""))
    fin, opcode, payload = c.read_frame()
    assert (fin, opcode, payload) == (True, 0x8, b""), (fin, opcode, payload)
    c.expect_end()
    c.close()


def case_large(big_port):
    """64-bit lengths, against a server started with the default limit (128 KiB)."""
    c = opened(big_port)
    payload = os.urandom(70000)
    c.send(frame(0x2, payload))
    expect_echo(c, 0x2, payload)
    c.close()
    # 16 MB written while nothing is read: the server's socket buffer (at most 4 MB) and then its
    # out buffer fill, it stops reading, and resumes once the client reads.
    c = RawClient(big_port, rcvbuf=65536)
    c.opened()
    chunk = b"x" * 8000
    count = 2000
    sender = threading.Thread(target=lambda: c.send(frame(0x1, chunk) * count), daemon=True)
    sender.start()
    sender.join(1.0)
    for _ in range(count):
        expect_echo(c, 0x1, chunk)
    sender.join(5)
    assert not sender.is_alive()
    c.close()


def case_malformed(port):
    cases = [
        ("unmasked", frame(0x1, b"x", masked=False), 1002),
        ("RSV1", frame(0x1, b"x", rsv=0x40), 1002),
        ("reserved opcode", frame(0x3, b"x"), 1002),
        ("first fragment", frame(0x1, b"x", fin=False), 1002),
        ("continuation", frame(0x0, b"x"), 1002),
        ("ping above 125", frame(0x9, b"p" * 126), 1002),
        ("fragmented ping", frame(0x9, b"p", fin=False), 1002),
        ("close of 1 byte", frame(0x8, b"\x03"), 1002),
        ("close code 1005", frame(0x8, struct.pack(">H", 1005)), 1002),
        ("close reason not UTF-8", frame(0x8, struct.pack(">H", 1000) + b"\xff"), 1007),
        ("text not UTF-8", frame(0x1, b"ok \xc3\x28"), 1007),
        ("overlong UTF-8", frame(0x1, b"\xc0\xaf"), 1007),
        ("surrogate", frame(0x1, b"\xed\xa0\x80"), 1007),
        # 16-bit length form for 5 bytes, 64-bit form for 200 bytes
        ("non-minimal 16-bit", b"\x81\xfe\x00\x05" + b"\x00" * 4 + b"hello", 1002),
        ("non-minimal 64-bit", b"\x81\xff" + struct.pack(">Q", 200) + b"\x00" * 204, 1002),
        ("64-bit length, top bit", b"\x81\xff" + struct.pack(">Q", 1 << 63), 1002),
        # announced above --max-message-bytes, before any payload: failed at once
        ("above max, 16-bit", b"\x81\xfe" + struct.pack(">H", MAX_MESSAGE + 1), 1009),
        ("above max, 64-bit", b"\x82\xff" + struct.pack(">Q", 1 << 40), 1009),
    ]
    for name, data, code in cases:
        c = opened(port)
        c.send(frame(0x1, b"before") + data)
        expect_echo(c, 0x1, b"before")
        try:
            expect_failed(c, code)
        except AssertionError as e:
            raise AssertionError(f"{name}: {e}") from None
    # A peer that vanishes mid-frame or mid-request: nothing to answer, no crash.
    for data in (b"\x81\xfe\x10", b"GET / HTTP/1.1\r\nHost"):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(data)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # a reset


def main():
    proc, port = start()
    big, big_port = None, None
    try:
        big = subprocess.Popen([FLOOR, "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                               text=True)
        vrouter_testlib.STARTED.append(big)
        big_port = int(json.loads(big.stdout.readline())["ws"].split(":")[2].split("/")[0])
        for name, case in (("handshake", lambda: case_handshake(port)),
                           ("echo", lambda: case_echo(port)),
                           ("large", lambda: case_large(big_port)),
                           ("malformed", lambda: case_malformed(port)),
                           ("still alive", lambda: case_echo(port))):
            case()
            print(f"ok: {name}", flush=True)
        for p in (proc, big):
            assert p.poll() is None, "floor_echo exited"
            p.terminate()
            out, _ = p.communicate(timeout=10)
            assert p.returncode == 0, p.returncode
            stopped = json.loads(out.strip().splitlines()[-1])
            assert stopped["event"] == "stopped" and stopped["messages"] > 0, stopped
            if p is big:  # case_large made it wait for EPOLLOUT and stop reading
                assert stopped["short_writes"] > 0 and stopped["pauses"] > 0, stopped
        print("floor_echo_test: all passed")
    finally:
        vrouter_testlib.stop_started()


if __name__ == "__main__":
    main()
