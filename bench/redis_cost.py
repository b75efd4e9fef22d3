#!/usr/bin/python3
"""What each client action costs Redis, measured with INFO commandstats.

    bench/redis_cost.py VROUTER [USERS] [--tls]

Starts its own redis-server on a free loopback port and two replicas (A, B) sharing it, then runs
each action USERS times (default 200) and prints, per action, the Redis commands it costs as
INFO commandstats counts them (the calls scripts make inside Redis included), how many of them are
script runs (EVALSHA), the CPU time (user + system, from /proc) the two replicas and redis-server
spent per action, and the background load of idle replicas. With --tls the replicas reach Redis
over rediss:// (a client certificate, the server's checked against its CA): run it both ways to
see what TLS costs. Loopback only; everything it starts is stopped at the end; about 30 s.
"""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
import replication_test as rt  # noqa: E402  (Redis, Replica, Client helpers)

ARGS = [a for a in sys.argv[1:] if a != "--tls"]
TLS = "--tls" in sys.argv[1:]
VROUTER = ARGS[0]
USERS = int(ARGS[1]) if len(ARGS) > 1 else 200
rt.VROUTER = VROUTER
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def cpu_ms(pid):
    """User + system CPU time of `pid` so far, in ms (clock-tick resolution)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_MS


def commandstats(redis):
    out = {}
    for line in redis.cli("INFO", "commandstats").splitlines():
        m = re.match(r"cmdstat_([a-z|]+):calls=(\d+)", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


def reset(redis):
    redis.cli("CONFIG", "RESETSTAT")


def per_action(stats, n):
    stats = {k: v for k, v in stats.items() if not k.startswith(("config", "info"))}
    total = sum(stats.values())
    scripts = stats.get("evalsha", 0) + stats.get("eval", 0)
    detail = ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(stats.items()))
    return total / n, scripts / n, detail


async def measure(redis, a, b):
    rows = []

    async def phase(name, n, action):
        reset(redis)
        before = [cpu_ms(p) for p in (a.proc.pid, b.proc.pid, redis.proc.pid)]
        await action()
        await asyncio.sleep(0.3)  # let fire-and-forget commands land
        after = [cpu_ms(p) for p in (a.proc.pid, b.proc.pid, redis.proc.pid)]
        replicas_ms = (after[0] - before[0] + after[1] - before[1]) / n
        redis_ms = (after[2] - before[2]) / n
        rows.append((name, *per_action(commandstats(redis), n), replicas_ms, redis_ms))

    users = []

    async def hellos():
        for i in range(USERS):
            users.append(await rt.Client(f"u{i}", f"space-{i % 20}").welcomed(a.ws))

    async def joins():
        for u in users:
            await u.join()

    names = [u.user for u in users] if users else None
    await phase("hello (20 spaces: first hello of a space loads it)", USERS, hellos)
    await phase("join", USERS, joins)
    names = [u.user for u in users]
    local = users[0]
    remote = await rt.Client("remote-reader", "elsewhere").welcomed(b.ws)
    await asyncio.sleep(0.3)

    async def local_lookups():
        for i in range(0, USERS, 10):
            await local.lookup(names[i:i + 10])

    async def remote_lookups():
        for i in range(0, USERS, 10):
            await remote.lookup(names[i:i + 10])

    async def watches():
        await remote.call({"type": "watch", "users": names})

    await phase("lookup, user in a held space (per user)", USERS, local_lookups)
    await phase("lookup, user outside held spaces (per user)", USERS, remote_lookups)
    await phase("watch (per user watched)", USERS, watches)
    servers = {u.assigned["server"]["id"] for u in users}
    victim = sorted(servers)[0]
    moving = sum(1 for u in users if u.assigned["server"]["id"] == victim)

    async def moves():
        assert a.post(f"/v1/servers/{victim}/drain")[0] == 200
        deadline = time.time() + 20
        while a.get_json(f"/v1/servers/{victim}")["assigned"] > 0 and time.time() < deadline:
            await asyncio.sleep(0.2)
        # drained, so the replicas' idle background is in this phase too: measured below
    await phase(f"move (drain; {moving} users, background included)", moving, moves)

    async def idle():
        await asyncio.sleep(5)
    await phase("idle, per second, 2 replicas (leases, sweep, load)", 5, idle)

    async def leaves():
        for u in users[: USERS // 2]:
            assert (await u.call({"type": "leave"}))["type"] == "ack"
    await phase("leave", USERS // 2, leaves)

    async def disconnects():
        for u in users[USERS // 2:]:
            await u.close()
    await phase("disconnect (detach; expiry comes later)", USERS - USERS // 2, disconnects)
    return rows


def memory_figures(redis, records=20000):
    """Redis memory per record and per pointer, and the time to snapshot a space of `records`,
    with ids shaped like production ones (36-byte UUID-like users, 16-byte servers/replicas)."""
    import socket as so
    user = lambda i: f"{i:08d}-0000-4000-8000-000000000000"  # noqa: E731
    # redis-cli does not unescape inside words; use the protocol instead.
    payload = bytearray()
    for i in range(records):
        args = [b"HSET", b"vr:{big-space}", user(i).encode(),
                f"{1_790_000_000_000_000 + i}\tsfu-eu-west-0042\treplica-7f3a9c21\t{i + 1}\t0"
                .encode()]
        payload += b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
        payload += b"*3\r\n$3\r\nSET\r\n" + b"$%d\r\n%s\r\n" % (
            len(b"vr:u:{" + user(i).encode() + b"}"), b"vr:u:{" + user(i).encode() + b"}") + \
            b"$9\r\nbig-space\r\n"
    with so.create_connection(("127.0.0.1", redis.port)) as c:
        c.sendall(payload)
        c.sendall(b"*1\r\n$4\r\nPING\r\n")
        got = b""
        while b"+PONG" not in got:
            got += c.recv(1 << 20)
    per_record = int(redis.cli("MEMORY", "USAGE", "vr:{big-space}", "SAMPLES", "0")) / records
    per_pointer = int(redis.cli("MEMORY", "USAGE", "vr:u:{" + user(0) + "}"))
    t0 = time.perf_counter()
    out = redis.cli("HGETALL", "vr:{big-space}")
    hgetall_ms = (time.perf_counter() - t0) * 1000
    assert out.count("sfu-eu-west-0042") == records
    redis.cli("DEL", "vr:{big-space}")

    # Subscriptions: the same channels from one connection, then from a second one.
    def used_memory():
        info = redis.cli("INFO", "memory")
        return int(re.search(r"used_memory:(\d+)", info).group(1))

    channels = [f"vr:user:{user(i)}" for i in range(records)]
    args = [b"SUBSCRIBE"] + [c.encode() for c in channels]
    subscribe = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
    per_sub = []
    conns = []
    for _ in range(2):
        before = used_memory()
        c = so.create_connection(("127.0.0.1", redis.port))
        c.sendall(subscribe)
        got = b""
        while got.count(b"subscribe") < records:
            got += c.recv(1 << 20)
        conns.append(c)
        per_sub.append((used_memory() - before) / records)
    for c in conns:
        c.close()
    return {"bytes_per_record": round(per_record), "bytes_per_pointer": per_pointer,
            f"hgetall_{records}_records_ms_via_redis_cli": round(hgetall_ms, 1),
            "bytes_per_channel_with_first_subscriber": round(per_sub[0]),
            "bytes_per_further_subscriber": round(per_sub[1])}


def main():
    with tempfile.TemporaryDirectory() as tmp:
        fleet_file = os.path.join(tmp, "fleet.json")
        with open(fleet_file, "w") as f:
            json.dump(rt.FLEET, f)
        store = None
        if TLS:
            cert, key = rt.make_cert(tmp, "redis", san="IP:127.0.0.1")
            redis = rt.Redis(tmp, rt.REDIS_SERVER, tls=(cert, key))
            store = ["--store", f"rediss://127.0.0.1:{redis.tls_port}", "--redis-tls-ca", cert,
                     "--redis-tls-cert", cert, "--redis-tls-key", key]
        else:
            redis = rt.Redis(tmp, rt.REDIS_SERVER)
        replicas = []
        try:
            replicas = [rt.Replica(n, redis.port, fleet_file, store) for n in ("cost-a", "cost-b")]
            for r in replicas:
                while r.readyz()[0] != 200:
                    time.sleep(0.05)
            rows = asyncio.run(asyncio.wait_for(measure(redis, *replicas), 120))
            memory = memory_figures(redis)
        finally:
            for r in replicas:
                r.stop()
            redis.stop()
    print(f"store over {'TLS (rediss://)' if TLS else 'plain TCP (redis://)'}, {USERS} users")
    print("| action | Redis commands (scripts' inner calls included) | of which script runs | "
          "CPU ms per action: both replicas / redis-server | detail, per action |")
    print("| --- | --- | --- | --- | --- |")
    for name, total, scripts, detail, replicas_ms, redis_ms in rows:
        print(f"| {name} | {total:.2f} | {scripts:.2f} | {replicas_ms:.3f} / {redis_ms:.3f} | "
              f"{detail} |")
    print()
    print("memory and snapshot:", json.dumps(memory))


if __name__ == "__main__":
    main()
