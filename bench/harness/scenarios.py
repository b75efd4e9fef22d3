"""What each scenario starts, when, and what it measures.

Every scenario function takes the Run (procs.Run: children, samplers, credentials) and the plan
(plan.make_plan) and returns a result:

    {"phases": [phase, ...],      # generator runs; report.py merges their files
     "main_phase": name,          # whose merged stats are the report's "generator" section
     "section": {...},            # scenario-specific figures (report.json[scenario])
     "targets": [target, ...],    # {"name", "value", "limit", "ok"}: the documented goals
     "checks": [target, ...]}     # sanity of the run itself (everyone joined, ...)

A phase is a dict: name, target ("router", "echo" or "floor"), transport, mode, users, t0_unix_ms,
duration, timelines and reports (paths, one per generator process), procs (procs.Proc),
stopped_by_harness.
"""

import math
import os
import time

from . import plan as planlib
from . import stats
from .procs import CpuWatch, ServerPoller, StartupError, http_json, now_ms, proc_sample

STEP_MS = 1000
# vrouter_load starts at once (ramp, surge and --duration count from its own start); --t0-unix-ms
# only anchors --broken and the timelines. So t0 is the launch time of a phase's processes.
T0_LEAD_MS = 0


# --- building blocks ----------------------------------------------------------------------------

def generator_argv(spec):
    """The vrouter_load command line (without the binary) of one process, from a spec dict:

    urls, ca, secret_file, process, processes, users_total, mode, space_size, ramp (this
    process), duration, rate (this process), inflight, step_ms, surge [on, off], broken
    "ID@S", t0_unix_ms, timeline, report, extra (list). Options that are None are left out.
    """
    fmt = planlib.fmt_number
    argv = ["--urls", ",".join(spec["urls"])]
    if spec.get("ca"):
        argv += ["--ca", spec["ca"]]
    argv += ["--secret-file", spec["secret_file"],
             "--process", str(spec["process"]), "--processes", str(spec["processes"]),
             "--users-total", str(spec["users_total"]), "--mode", spec["mode"]]
    if spec.get("space_size"):
        argv += ["--space-size", str(spec["space_size"])]
    for flag, key in (("--ramp", "ramp"), ("--duration", "duration"), ("--rate", "rate"),
                      ("--inflight", "inflight"), ("--step-ms", "step_ms"),
                      ("--rate-after", "rate_after")):
        if spec.get(key) is not None:
            argv += [flag, fmt(spec[key])]
    if spec.get("surge"):
        argv += ["--surge", ",".join(fmt(x) for x in spec["surge"])]
    if spec.get("broken"):
        argv += ["--broken", spec["broken"]]
    argv += ["--t0-unix-ms", str(int(spec["t0_unix_ms"])),
             "--timeline", spec["timeline"], "--report", spec["report"]]
    # --load-arg replaces the harness's own value of a flag (e.g. --step-ms), as --router-arg does.
    return planlib.merge_flags(argv, list(spec.get("extra") or []))


def target(name, value, limit, op="<="):
    """One goal: ok when value op limit (None value: not ok)."""
    if value is None:
        ok = False
    elif op == "<=":
        ok = value <= limit
    elif op == ">=":
        ok = value >= limit
    elif op == "==":
        ok = value == limit
    else:
        raise ValueError(op)
    return {"name": name, "value": value, "limit": f"{op} {limit}", "ok": bool(ok)}


def start_cluster(run, plan, phase="main", behaviors=()):
    """Redis (if the plan's store is redis, once), the replicas, the sims on replica 0, and wait
    for the fleet to be active. Returns (routers, sims proc, sims start unix ms)."""
    if plan["store"] == "redis" and run.redis_url is None:
        run.start_redis()
    fleet = run.write_fleet(plan["servers"], plan["capacity"])
    routers = [run.start_router(i, fleet, phase=phase) for i in range(plan["replicas"])]
    sims_name = "sims" if phase == "main" else f"sims-{phase}"
    sims, sims_start = run.start_sims(routers[0], plan["servers"], plan["capacity"],
                                      behaviors=behaviors, name=sims_name)
    run.wait_fleet_active(routers, plan["servers"])
    return routers, sims, sims_start


def start_phase(run, plan, name, urls, users, mode, transport, duration, *, ramp=None, rate=None,
                inflight=None, surge=None, broken=None, t0_ms=None, procs=None,
                target_kind="router", extra=()):
    """Start the generator processes of one phase; returns the phase dict (not waited for).

    ramp and rate are totals over the processes; extra: more generator arguments.
    """
    procs = procs or plan["load_procs"]
    load_dir = os.path.join(run.out, "load")
    os.makedirs(load_dir, exist_ok=True)
    t0 = t0_ms or now_ms() + T0_LEAD_MS
    phase = {"name": name, "target": target_kind, "transport": transport, "mode": mode,
             "users": users, "t0_unix_ms": t0, "duration": duration, "timelines": [],
             "reports": [], "procs": [], "stopped_by_harness": False, "urls": list(urls)}
    for i in range(procs):
        timeline = os.path.join(load_dir, f"{name}-timeline-{i}.jsonl")
        report = os.path.join(load_dir, f"{name}-report-{i}.json")
        spec = {"urls": urls, "ca": run.cert if transport == "wss" else None,
                "secret_file": run.auth_secret_file, "process": i, "processes": procs,
                "users_total": users, "mode": mode, "space_size": plan.get("space_size"),
                "ramp": None if ramp is None else ramp / procs, "duration": duration,
                "rate": None if rate is None else rate / procs, "inflight": inflight,
                "step_ms": STEP_MS, "rate_after": plan.get("rate_after"), "surge": surge, "broken": broken, "t0_unix_ms": t0,
                "timeline": timeline, "report": report,
                "extra": list(extra) + list(plan.get("load_args") or [])}
        phase["timelines"].append(timeline)
        phase["reports"].append(report)
        proc = run.start_load(f"load-{name}-{i}", generator_argv(spec))
        proc.phase = name
        phase["procs"].append(proc)
    run.phases.append(phase)
    return phase


def finish_phase(run, phase):
    """Wait for the phase's generators (duration after t0, plus grace), stopping late ones."""
    remaining = (phase["t0_unix_ms"] - now_ms()) / 1000 + phase["duration"] + planlib.LOAD_GRACE_S
    if not run.wait_loads(phase["procs"], max(5, remaining)):
        phase["stopped_by_harness"] = True
    phase["ended_unix_ms"] = now_ms()
    return phase


def phase_timelines(phase):
    """Per-process timeline lines of a phase."""
    return [stats.read_jsonl(p) for p in phase["timelines"]]


def phase_reports(phase):
    """Per-process generator reports of a phase (None where missing)."""
    return [stats.read_json(p) for p in phase["reports"]]


def sleep_until(unix_ms):
    """Sleep until a wall-clock time (returns at once if past)."""
    delay = (unix_ms - now_ms()) / 1000
    if delay > 0:
        time.sleep(delay)


def client_urls(routers, transport):
    """Every replica's client URL for the transport (the generators pick one per connect)."""
    urls = [r.client_url(transport) for r in routers]
    if not all(urls):
        raise StartupError(f"a router has no {transport} listener: {urls}")
    return urls


def people_phase(run, plan, routers, **kwargs):
    """The main phase of the people-like scenarios, from the plan's options."""
    return start_phase(run, plan, "main", client_urls(routers, plan["transport"]), plan["users"],
                       plan["mode"], plan["transport"], plan["load_duration"],
                       ramp=plan["ramp"], rate=plan["rate"] if plan["mode"] != "idle" else None,
                       inflight=plan.get("inflight"), **kwargs)


def result(phases, section=None, targets=(), checks=(), main="main"):
    """A scenario's result (see the module docstring)."""
    return {"phases": phases, "main_phase": main, "section": section or {},
            "targets": list(targets), "checks": list(checks)}


def all_joined_check(merged, users):
    """Every user joined (users_at_end.joined == target)."""
    joined = (merged.get("users_at_end") or {}).get("joined")
    return target("every user joined at the end", joined, users, ">=")


# --- scenarios ----------------------------------------------------------------------------------

def run_steady(run, plan):
    """N people at a request rate for the duration."""
    routers, _, _ = start_cluster(run, plan)
    phase = finish_phase(run, people_phase(run, plan, routers, surge=plan["surge"]))
    merged = stats.merge_load_reports(phase_reports(phase), phase["transport"])
    checks = [all_joined_check(merged, plan["users"]),
              target("unexpected errors", merged.get("unexpected_errors_total"), 0, "==")]
    return result([phase], checks=checks)


def run_surge(run, plan):
    """All users connect at once, hold, all close, pause, repeat; per-cycle connect time."""
    routers, _, _ = start_cluster(run, plan)
    phase = finish_phase(run, people_phase(run, plan, routers, surge=plan["surge"]))
    merged = stats.merge_load_reports(phase_reports(phase), phase["transport"])
    cycles = merged.get("cycles") or []
    section = {"surge": plan["surge"], "cycles": cycles,
               "max_connect_s": stats.max_of(c.get("connect_s") for c in cycles),
               "failed_total": sum(c.get("failed", 0) for c in cycles)}
    checks = [target("surge cycles recorded", len(cycles), 1, ">=")]
    return result([phase], section, checks=checks)


def run_soak(run, plan):
    """Long people run; RSS and fds of every replica must stay flat."""
    routers, _, _ = start_cluster(run, plan)
    phase = finish_phase(run, people_phase(run, plan, routers))
    start = phase["t0_unix_ms"]
    end = start + phase["duration"] * 1000
    per_router, flat = {}, True
    for router in routers:
        rss = stats.flatness(router.proc.samples, start, end, "rss_kb", 0.05)
        fds = stats.flatness(router.proc.samples, start, end, "fds", 0.01)
        per_router[router.name] = {"rss_kb": rss, "fds": fds}
        flat = flat and bool(rss["flat"]) and bool(fds["flat"])
    section = {"window_unix_ms": [start, end], "sample_every_s": plan["sample_every"],
               "replicas": per_router, "flat": flat}
    return result([phase], section, targets=[target("RSS and fds flat", flat, True, "==")])


def run_failover(run, plan):
    """Replicas + Redis; SIGKILL the last replica (sims are on replica 0) at duration / 3."""
    routers, _, _ = start_cluster(run, plan)
    # --expect-drops: the kill's dropped connections and refused reconnects are not "unexpected"
    phase = people_phase(run, plan, routers, extra=["--expect-drops"])
    victim = routers[-1]
    kill_ms = phase["t0_unix_ms"] + int(plan["kill_at_s"] * 1000)
    sleep_until(kill_ms)
    before = proc_sample(victim.proc.pid) or {}
    conns_before = (http_json(victim.admin + "/v1/replica", timeout=1) or {}).get("connections")
    kill_ms = now_ms()
    run.kill(victim.proc)
    finish_phase(run, phase)
    merged = stats.merge_load_reports(phase_reports(phase), phase["transport"])
    rows = stats.merge_timelines(phase_timelines(phase), phase["t0_unix_ms"])
    kill_s = (kill_ms - phase["t0_unix_ms"]) / 1000
    back = stats.recovery(rows, kill_s, plan["users"])
    conns = merged.get("connections") or {}
    closed = conns.get("closed") or {}
    users_end = merged.get("users_at_end") or {}
    joined = users_end.get("joined")
    last_open = conns.get("last_open_unix_ms")
    section = {
        "killed_replica": victim.name,
        "killed_at_unix_ms": kill_ms,
        "killed_at_s": round(kill_s, 3),
        "victim_connections_before": (conns_before or {}).get("open"),
        "victim_rss_kb_before": before.get("rss_kb"),
        # --expect-drops: the kill's closes are not "unexpected"; count every non-1000 close
        "dropped_connections": sum(n for code, n in closed.items() if code != "1000"),
        "closed": closed,
        "unexpected_closes": conns.get("unexpected_closes"),
        "resumes": merged.get("resumes"),
        "recovery": back,
        "time_to_all_connected_s": back.get("recovered_after_s"),
        # exact, if nothing but the kill made users reconnect: the last open of the run
        "last_open_after_kill_s": (round((last_open - kill_ms) / 1000, 3)
                                   if last_open and last_open > kill_ms else None),
        "connected_at_end": users_end.get("connected"),
        "lost_users": None if joined is None else plan["users"] - joined,
    }
    checks = [target("lost users", section["lost_users"], 0, "==")]
    return result([phase], section, checks=checks)


def run_blackhole(run, plan):
    """sim-3 turns black hole at T (sim clock); generator users report no_media from the same
    instant; /v1/servers of every replica polled every 200 ms."""
    bh = plan["blackhole"]
    server, at_s = bh["server"], bh["at_s"]
    routers, _, sims_start = start_cluster(
        run, plan, behaviors=[f"{server}=blackhole@{planlib.fmt_number(at_s)}"])
    poller = ServerPoller(routers, 0.2, watch_server=server)
    run.pollers.append(poller)
    poller.start()
    sleep_until(sims_start + int(plan["warmup_s"] * 1000))  # the fleet's slow start
    # The generators' t0 is a whole number of seconds after the sims' start, so that the sims'
    # "blackhole@T" and the generators' "--broken ID@S" name the same instant.
    k = math.ceil((now_ms() + T0_LEAD_MS - sims_start) / 1000)
    if at_s - k < 1:
        raise StartupError(f"the fleet took {k} s to come up: --blackhole-at {at_s} is too early")
    t0 = sims_start + k * 1000
    bad_ms = sims_start + int(at_s * 1000)
    phase = start_phase(run, plan, "main", client_urls(routers, plan["transport"]), plan["users"],
                        plan["mode"], plan["transport"], plan["duration"] - k, ramp=plan["ramp"],
                        rate=plan["rate"], broken=f"{server}@{planlib.fmt_number(at_s - k)}",
                        t0_ms=t0)
    finish_phase(run, phase)
    poller.stop()
    poller.join(2)
    merged = stats.merge_load_reports(phase_reports(phase), phase["transport"])
    ejected = stats.first_state_after(poller.changes, server, "ejected", bad_ms)
    per_replica = {r: round((t - bad_ms) / 1000, 3) for r, t in ejected.items()}
    broken = merged.get("broken") or {}
    section = {
        "server": server,
        "bad_at_unix_ms": bad_ms,
        "bad_at_s": at_s,
        "sims_start_unix_ms": sims_start,
        "load_t0_unix_ms": t0,
        "warmup_s": plan["warmup_s"],
        "time_to_ejected_s": {"per_replica": per_replica,
                              "min": stats.min_of(per_replica.values())},
        "assigned_after": broken.get("assigned_after"),
        "migrated_away": broken.get("migrated_away"),
        "reports_sent": broken.get("reports_sent"),
        "first_migrate_after_s": (round((broken["first_migrate_unix_ms"] - bad_ms) / 1000, 3)
                                  if broken.get("first_migrate_unix_ms") else None),
        "assigned_on_server_at_end": {a["replica"]: a["assigned"] for a in poller.assigned},
        "state_changes": poller.changes[:2000],
        "panic_changes": poller.panics,
        "polls": poller.polls,
        "poll_failures": poller.failures,
    }
    checks = [target(f"{server} ejected", section["time_to_ejected_s"]["min"], 0, ">=")]
    return result([phase], section, checks=checks)


def wait_joined(phase, users, timeout):
    """Poll the phase's timelines until the processes' joined sum reaches users; returns the last
    merged counts {"joined", "held"}."""
    end = time.time() + timeout
    while True:
        last = [lines[-1] for lines in phase_timelines(phase) if lines]
        counts = {k: sum(stats.number(l.get(k)) for l in last) for k in ("joined", "held")}
        if counts["joined"] >= users or time.time() >= end:
            return counts
        if not any(p.alive() for p in phase["procs"]):
            return counts
        time.sleep(0.5)


def run_memory(run, plan):
    """Router RSS per idle joined connection, ws then wss, one fresh router each."""
    users = plan["users"]
    phases, section, targets = [], {}, []
    limits = {"ws": 4 * 1024, "wss": 24 * 1024}
    for transport in ("ws", "wss"):
        routers, sims, _ = start_cluster(run, plan, phase=transport)
        router = routers[0]
        time.sleep(2)
        before = proc_sample(router.proc.pid)
        phase = start_phase(run, plan, transport, client_urls(routers, transport), users, "idle",
                            transport, plan["load_duration"], ramp=plan["ramp"])
        counts = wait_joined(phase, users, plan["ramp_s"] + 60)
        time.sleep(plan["settle_s"])
        after = proc_sample(router.proc.pid)
        replica = http_json(router.admin + "/v1/replica") or {}
        router_conns = (replica.get("connections") or {}).get(transport)
        counts = wait_joined(phase, users, 0)
        run.stop(phase["procs"], grace=10)
        phase["stopped_by_harness"] = True
        phase["ended_unix_ms"] = now_ms()
        phases.append(phase)
        conns = router_conns or counts["held"]
        per_conn = None
        if before and after and conns:
            per_conn = round((after["rss_kb"] - before["rss_kb"]) * 1024 / conns)
        section[transport] = {
            "rss_kb_before": before and before["rss_kb"], "rss_kb_after": after and after["rss_kb"],
            "fds_before": before and before["fds"], "fds_after": after and after["fds"],
            "connections_router": router_conns, "held_generators": counts["held"],
            "joined_generators": counts["joined"], "connections": conns,
            "bytes_per_connection": per_conn,
            "kib_per_connection": None if per_conn is None else round(per_conn / 1024, 2)}
        targets.append(target(f"RSS per {transport} connection (bytes)", per_conn,
                              limits[transport]))
        run.stop([sims, router.proc])
    checks = [target(f"{t}: every user joined", section[t]["joined_generators"], users, ">=")
              for t in ("ws", "wss")]
    return result(phases, section, targets, checks, main="wss")


def closed_loop_rps(phase):
    """Round trips per second of a closed-loop phase: per-process rate while every connection was
    open (timelines), summed; falls back to answered / elapsed from the reports."""
    rates = [stats.closed_loop_rate(lines) for lines in phase_timelines(phase)]
    if rates and all(r is not None for r in rates):
        return round(sum(rates), 1), "timeline"
    merged = stats.merge_load_reports(phase_reports(phase))
    answered = sum(r.get("answered", 0) for r in (merged.get("requests") or {}).values())
    elapsed = merged.get("elapsed_s")
    return (round(answered / elapsed, 1) if elapsed else None), "report"


def ratio(a, b):
    """a / b rounded to 3 places, None unless both are positive numbers."""
    return round(a / b, 3) if a and b and a > 0 and b > 0 else None


RPS_KINDS = ("router", "echo", "floor")


def rps_runs(run, plan, targets, users, runs, seconds, prefix="rps"):
    """Closed-loop runs against each target in turn (router, echo, floor, router, ...); returns
    (phases, section).

    targets: [(kind, url, mode, server proc), ...]. Per run: round trips per second (timelines)
    and the server's user and system CPU per round trip over the window where every connection
    was open (/proc/PID/stat sampled every 100 ms, stats.cpu_per_round_trip), with the load
    processes' CPU per round trip beside it. The section keeps the medians and ratio of
    router and echo it always had, and adds the floor's and the CPU figures.
    """
    phases, table = [], []
    for i in range(runs):
        for kind, url, mode, server in targets:
            name = f"{prefix}-{kind}-{i + 1}"
            phase = start_phase(run, plan, name, [url], users, mode, "ws", seconds + 2, ramp=0,
                                rate=0, inflight=1, target_kind=kind)
            watch = CpuWatch({"server": server} |
                             {p.name: p for p in phase["procs"]})
            watch.start()
            try:
                finish_phase(run, phase)
            finally:
                watch.stop()
            rps, source = closed_loop_rps(phase)
            cpu = stats.cpu_per_round_trip(
                phase_timelines(phase), watch.samples["server"],
                [watch.samples[p.name] for p in phase["procs"]])
            phases.append(phase)
            table.append({"run": i + 1, "target": kind, "round_trips_per_s": rps,
                          "source": source, "cpu_per_round_trip": cpu})
    kinds = [t[0] for t in targets]
    med = {kind: stats.median([r["round_trips_per_s"] for r in table
                               if r["target"] == kind and r["round_trips_per_s"] is not None])
           for kind in kinds}

    def cpu_median(kind, key):
        values = [r["cpu_per_round_trip"][key] for r in table if r["target"] == kind
                  and r["cpu_per_round_trip"] and r["cpu_per_round_trip"][key] is not None]
        m = stats.median(values)
        return None if m is None else round(m, 3)

    cpu = {kind: {key: cpu_median(kind, key + "_us") for key in ("user", "sys", "total", "load")}
           for kind in kinds}
    section = {"connections": users, "seconds_per_run": seconds, "runs": table,
               "median_router": med.get("router"), "median_echo": med.get("echo"),
               "ratio_router_over_echo": ratio(med.get("router"), med.get("echo")),
               "cpu_us_per_round_trip": cpu,
               "cpu_ratio_router_over_echo": ratio(cpu.get("router", {}).get("total"),
                                                   cpu.get("echo", {}).get("total"))}
    if "floor" in kinds:
        floor_cpu = cpu["floor"]["total"]
        per_run = {}
        for kind in ("router", "echo"):
            # the same round i: the runs closest in time, so the least touched by other load
            pairs = [(r, f) for r in table for f in table if r["target"] == kind
                     and f["target"] == "floor" and r["run"] == f["run"]]
            per_run[kind] = [ratio((r["cpu_per_round_trip"] or {}).get("total_us"),
                                   (f["cpu_per_round_trip"] or {}).get("total_us"))
                             for r, f in pairs]
        section |= {
            "median_floor": med["floor"],
            "ratio_router_over_floor": ratio(med["router"], med["floor"]),
            "ratio_echo_over_floor": ratio(med["echo"], med["floor"]),
            "cpu_ratio_router_over_floor": ratio(cpu["router"]["total"], floor_cpu),
            "cpu_ratio_echo_over_floor": ratio(cpu["echo"]["total"], floor_cpu),
            "cpu_ratio_router_over_floor_per_run": per_run["router"],
            "cpu_ratio_echo_over_floor_per_run": per_run["echo"],
        }
    return phases, section


def rps_targets(run, routers):
    """The servers of the rps comparison, started here (echo_baseline, floor_echo), in the order
    they take turns."""
    echo, echo_url = run.start_echo()
    targets = [("router", routers[0].client_url("ws"), "lookup", routers[0].proc),
               ("echo", echo_url, "echo", echo)]
    floor, floor_url = run.start_floor()
    return targets + [("floor", floor_url, "echo", floor)]


def run_rps(run, plan):
    """Closed-loop lookups (inflight 1) over ws: router vs echo_baseline vs floor_echo, taking
    turns; round trips per second and CPU per round trip."""
    routers, _, _ = start_cluster(run, plan)
    phases, section = rps_runs(run, plan, rps_targets(run, routers), plan["users"],
                               plan["runs"], plan["run_seconds"])
    checks = [target("router runs measured", section["median_router"], 0, ">="),
              target("echo runs measured", section["median_echo"], 0, ">="),
              target("floor runs measured", section["median_floor"], 0, ">=")]
    checks += [target(f"{kind}: CPU per round trip measured", section["cpu_us_per_round_trip"]
                      [kind]["total"], 0, ">=") for kind in RPS_KINDS]
    return result(phases, section, checks=checks, main=phases[0]["name"])


def run_latency(run, plan):
    """Paced lookups over many connections; p50..p99.9 of lookup latency.

    The generators connect everyone first and pace lookups only from --rate-after (2 s after the
    ramp), so the targets are judged on the merged histograms of the whole run, which hold only
    paced lookups (exact percentiles). The window from 1 s after --rate-after is also summarized
    from the per-second percentiles of the timelines, whose max bounds the window's percentile
    from above (stats.window_latency): it shows when in the run a tail happened.
    """
    routers, _, _ = start_cluster(run, plan)
    phase = finish_phase(run, people_phase(run, plan, routers))
    merged = stats.merge_load_reports(phase_reports(phase), phase["transport"])
    lookup = (merged.get("requests") or {}).get("lookup") or {}
    rows = stats.merge_timelines(phase_timelines(phase), phase["t0_unix_ms"])
    start, end = plan["rate_after"] + 1, phase["duration"] - 1
    steady = stats.window_latency(rows, "lookup", start, end)
    rates = stats.timeline_rates([r for r in rows if start <= r["t"] < end])
    section = {
        "requested_rate_per_s": plan["rate"],
        "achieved_lookups_per_s": round(stats.mean(r["sent"].get("lookup", 0) for r in rates), 1)
        if rates else lookup.get("sent_per_s"),
        "after_ramp": steady,
        "whole_run_latency_us": lookup.get("latency_us") or {},
    }
    # Lookups start only after the ramp (--rate-after), so the merged histograms of the whole run
    # are the paced window exactly; the per-second maxima above are a pessimistic bound, kept to
    # show when in the run the tail happened.
    whole = lookup.get("latency_us") or {}
    targets = [target("lookup p99 (us, paced after the ramp)", whole.get("p99"), 2000),
               target("lookup p99.9 (us, paced after the ramp)", whole.get("p999"), 10000)]
    return result([phase], section, targets)


def first_attempt_ms(report):
    """When a process made its first connection attempt: its first cycle's start, else the later
    of its t0 and its start."""
    cycles = report.get("cycles") or []
    if cycles and isinstance(cycles[0], dict) and cycles[0].get("start_unix_ms"):
        return cycles[0]["start_unix_ms"]
    return stats.max_of([report.get("t0_unix_ms"), report.get("started_unix_ms")])


def run_storm(run, plan):
    """All connections at once (--ramp 0): time from the first attempt to the last open."""
    routers, _, _ = start_cluster(run, plan)
    phase = finish_phase(run, people_phase(run, plan, routers))
    reports = [r for r in phase_reports(phase) if r]
    merged = stats.merge_load_reports(reports, phase["transport"])
    conns = merged.get("connections") or {}
    first = stats.min_of(first_attempt_ms(r) for r in reports)
    last = conns.get("last_open_unix_ms")
    storm_s = round((last - first) / 1000, 3) if first and last else None
    section = {"first_attempt_unix_ms": first, "last_open_unix_ms": last,
               "first_attempt_to_last_open_s": storm_s,
               "opened": conns.get("opened_total"), "failures": conns.get("failures"),
               "failures_total": conns.get("failures_total")}
    targets = [target("first attempt to last open (s)", storm_s, 5.0),
               target("connection failures", conns.get("failures_total"), 0, "=="),
               target("connections opened", conns.get("opened_total"), plan["users"], ">=")]
    return result([phase], section, targets)


def run_smoke(run, plan):
    """CI: small people run over the plan's transport, then one router, echo, floor rps round."""
    routers, _, _ = start_cluster(run, plan)
    phase = finish_phase(run, people_phase(run, plan, routers))
    merged = stats.merge_load_reports(phase_reports(phase), phase["transport"])
    rps_phases, rps = rps_runs(run, plan, rps_targets(run, routers), plan["rps_users"],
                               plan["runs"], plan["run_seconds"])
    checks = [
        target("unexpected errors", merged.get("unexpected_errors_total"), 0, "=="),
        all_joined_check(merged, plan["users"]),
        target("rps: router round trips/s", rps["median_router"], 1, ">="),
        target("rps: echo round trips/s", rps["median_echo"], 1, ">="),
        target("rps: floor round trips/s", rps["median_floor"], 1, ">="),
    ]
    return result([phase] + rps_phases, {"rps": rps}, checks=checks)


RUNNERS = {"steady": run_steady, "surge": run_surge, "soak": run_soak, "failover": run_failover,
           "blackhole": run_blackhole, "memory": run_memory, "rps": run_rps,
           "latency": run_latency, "storm": run_storm, "smoke": run_smoke}


def run_scenario(run, plan):
    """Dispatch to the scenario's function."""
    return RUNNERS[plan["scenario"]](run, plan)
