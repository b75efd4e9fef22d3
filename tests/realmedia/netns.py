"""Network namespaces for the real-media tests: one client namespace with a bridge, one namespace
per Janus joined to that bridge by a veth pair. Private addresses exist only inside namespaces this
module creates; the root namespace gets none, and teardown removes everything (processes first,
then the namespaces, which takes their veths, bridge and nftables tables with them).

    python3 netns.py up TAG N       prints the layout as JSON
    python3 netns.py down TAG       removes what `up` made (idempotent)
"""

import json
import os
import signal
import subprocess
import sys
import time

SUBNET = "10.77.0"
CLIENT_ADDR = f"{SUBNET}.100"


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def names(tag, n):
    return {
        "client": f"vrm-{tag}-c",
        "servers": [
            {
                "netns": f"vrm-{tag}-j{i}",
                "veth": f"vrm{i}",
                "address": f"{SUBNET}.{i}",
            }
            for i in range(1, n + 1)
        ],
        "client_address": CLIENT_ADDR,
    }


def existing(tag):
    out = _ip("netns", "list", check=False).stdout
    prefix = f"vrm-{tag}-"
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


def up(tag, n):
    down(tag)
    layout = names(tag, n)
    client = layout["client"]
    _ip("netns", "add", client)
    _ip("-n", client, "link", "set", "lo", "up")
    _ip("-n", client, "link", "add", "br0", "type", "bridge")
    _ip("-n", client, "addr", "add", f"{CLIENT_ADDR}/24", "dev", "br0")
    _ip("-n", client, "link", "set", "br0", "up")
    for s in layout["servers"]:
        ns = s["netns"]
        _ip("netns", "add", ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        # The pair is made inside the server namespace; its peer end moves to the client's bridge.
        _ip("-n", ns, "link", "add", s["veth"], "type", "veth", "peer", "name", f"{s['veth']}b")
        _ip("-n", ns, "link", "set", f"{s['veth']}b", "netns", client)
        _ip("-n", ns, "addr", "add", f"{s['address']}/24", "dev", s["veth"])
        _ip("-n", ns, "link", "set", s["veth"], "up")
        _ip("-n", client, "link", "set", f"{s['veth']}b", "master", "br0")
        _ip("-n", client, "link", "set", f"{s['veth']}b", "up")
    return layout


def _pids(ns):
    out = _ip("netns", "pids", ns, check=False).stdout
    return [int(p) for p in out.split()]


def down(tag):
    """Kills every process left in the tag's namespaces, then deletes them."""
    spaces = existing(tag)
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        pids = [p for ns in spaces for p in _pids(ns)]
        if not pids:
            break
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(_pids(ns) for ns in spaces):
            time.sleep(0.05)
    for ns in spaces:
        _ip("netns", "del", ns, check=False)
    left = existing(tag)
    if left:
        raise RuntimeError(f"namespaces left behind: {left}")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "up":
        print(json.dumps(up(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 3)))
    elif len(sys.argv) == 3 and sys.argv[1] == "down":
        down(sys.argv[2])
    else:
        sys.exit(__doc__)
