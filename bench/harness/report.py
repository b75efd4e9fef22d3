"""OUT/report.json and the human summary.

build_report() turns the run (children, samples) and the scenario's result (phases, section,
targets, checks) into one JSON document; summary() prints the few lines a person reads.
"""

import json
import math
import time

from . import stats


def analyze_phase(phase):
    """Merged generator figures of one phase plus its merged timeline rows and rates."""
    reports = [stats.read_json(p) for p in phase["reports"]]
    timelines = [stats.read_jsonl(p) for p in phase["timelines"]]
    merged = stats.merge_load_reports(reports, phase["transport"])
    rows = stats.merge_timelines(timelines, phase["t0_unix_ms"])
    if rows:
        merged["timeline_max_held"] = max(r["held"] for r in rows)
    merged["reports_missing"] = sum(1 for r in reports if r is None)
    return {"phase": phase, "merged": merged, "rows": rows, "rates": stats.timeline_rates(rows)}


def phase_config(phase):
    """What a phase was (for the report), without the process objects."""
    keys = ("name", "target", "transport", "mode", "users", "t0_unix_ms", "duration",
            "stopped_by_harness", "ended_unix_ms", "urls")
    out = {k: phase.get(k) for k in keys}
    out["load_procs"] = [p.name for p in phase["procs"]]
    return out


def router_phases(router, phases):
    """The phases that loaded this router."""
    if router.phase == "main":
        return [p for p in phases if p["target"] == "router" and p["name"] not in ("ws", "wss")]
    return [p for p in phases if p["name"] == router.phase]


def cpu_percent_between(samples, start_ms, end_ms):
    """CPU use (percent of one core) between two times, from samples' cpu_s."""
    inside = [s for s in samples if start_ms <= s["t"] <= end_ms and s.get("cpu_s") is not None]
    if len(inside) < 2 or inside[-1]["t"] <= inside[0]["t"]:
        return None
    return round(100 * (inside[-1]["cpu_s"] - inside[0]["cpu_s"]) /
                 ((inside[-1]["t"] - inside[0]["t"]) / 1000), 1)


def router_summary(router, phases, alive_at_end, died=()):
    """Per replica: pid, RSS/fds start/peak/end, CPU (lifetime and during its load)."""
    proc = router.proc
    summary = proc.summary()
    mine = router_phases(router, phases)
    load_pct, window = None, None
    if mine:
        start = min(p["t0_unix_ms"] for p in mine)
        end = max(p.get("ended_unix_ms") or 0 for p in mine)
        load_pct = cpu_percent_between(proc.samples, start, end)
        window = stats.window_samples(proc.samples, start, end)
    conns = [s["conns"] for s in proc.samples if s.get("conns") is not None]
    return {
        "replica": router.name, "phase": router.phase, "pid": proc.pid,
        "urls": {"ws": router.ws, "wss": router.wss, "admin": router.admin},
        "rss_kb": stats.sample_summary(proc.samples, "rss_kb"),
        "fds": stats.sample_summary(proc.samples, "fds"),
        "load": window,  # {"at_start": {rss_kb, fds, conns}, "peak": {...}} over its phases
        "connections_peak": max(conns) if conns else None,
        "cpu_seconds": summary["cpu_seconds"], "cpu_percent": summary["cpu_percent"],
        "cpu_percent_during_load": load_pct, "lifetime_s": summary["lifetime_s"],
        "exit_code": summary["exit_code"], "killed_by_harness": proc.killed_by_harness,
        "alive_at_end": alive_at_end.get(router.name),
        "died": bool(router.name in died),
    }


def rss_per_connection(routers, phase, held):
    """Sum over the routers of (peak RSS during the phase - RSS when it started) divided by the
    connections held at most, in bytes (sims and idle overhead excluded; allocator slack
    included)."""
    if not held or not routers:
        return None
    delta_kb = 0
    for router in routers:
        w = stats.window_samples(router.proc.samples, phase["t0_unix_ms"],
                                 phase.get("ended_unix_ms") or int(time.time() * 1000))
        if w["at_start"]["rss_kb"] is None or w["peak"]["rss_kb"] is None:
            return None
        delta_kb += w["peak"]["rss_kb"] - w["at_start"]["rss_kb"]
    return round(delta_kb * 1024 / held)



def general_checks(phases, analyses, routers):
    """Sanity of the run itself: every generator wrote a report and exited 0, no router died."""
    expected = sum(len(p["reports"]) for p in phases)
    missing = sum(a["merged"]["reports_missing"] for a in analyses)
    bad_exit = [proc.name for p in phases if not p["stopped_by_harness"]
                for proc in p["procs"] if proc.returncode not in (0,)]
    died = [r["replica"] for r in routers if r["died"]]
    return [
        {"name": "generator reports written", "value": expected - missing,
         "limit": f"== {expected}", "ok": missing == 0 and expected > 0},
        {"name": "generators exited 0", "value": len(bad_exit), "limit": "== 0",
         "ok": not bad_exit, "detail": bad_exit},
        {"name": "routers alive until the end", "value": len(died), "limit": "== 0",
         "ok": not died, "detail": died},
    ]


def diagnose(merged, notes):
    """Notes a person should see: connect failures, EADDRNOTAVAIL (port range), errors."""
    conns = merged.get("connections") or {}
    failures = conns.get("failures") or {}
    if any("addrnotavail" in k.lower().replace("_", "") or "address not available" in k.lower()
           for k in failures):
        notes.append("connect failures say EADDRNOTAVAIL: widen the ephemeral port range "
                     "(sysctl net.ipv4.ip_local_port_range='1024 65000') or use more replicas "
                     "(each is another destination port)")
    if conns.get("failures_total"):
        notes.append(f"connection failures: {failures}")
    if merged.get("unexpected_errors_total"):
        notes.append(f"unexpected errors: {merged.get('unexpected_errors')}")


def build_report(meta, plan, run, res, error=None, alive_at_end=None, died=()):
    """The report.json document (see bench/run's docstring for the layout).

    alive_at_end: {replica: bool} just before the final stop; died: replicas that exited
    without being asked to (crash).
    """
    res = res or {"phases": list(run.phases) if run else [], "main_phase": None,
                  "section": {}, "targets": [], "checks": []}
    phases = res["phases"]
    analyses = [analyze_phase(p) for p in phases]
    by_name = {a["phase"]["name"]: a for a in analyses}
    main = by_name.get(res.get("main_phase")) or (analyses[0] if analyses else None)
    routers = [router_summary(r, phases, alive_at_end or {}, died)
               for r in run.routers] if run else []
    report = dict(meta)
    report["config"] = plan
    report["routers"] = routers
    report["processes"] = [p.summary() | {"role": p.role} for p in run.procs
                           if p.role not in ("router", "load")] if run else []
    report["load_procs"] = [p.summary() | {"phase": getattr(p, "phase", None),
                                           "rss_kb_peak": stats.max_of(s.get("rss_kb")
                                                                       for s in p.samples)}
                            for p in run.loads] if run else []
    report["phases"] = [phase_config(p) | {"generator": a["merged"]}
                        for p, a in zip(phases, analyses)] if len(phases) > 1 else None
    notes = list(run.notes) if run else []
    if main:
        merged = main["merged"]
        report["main_phase"] = main["phase"]["name"]
        report["generator"] = merged
        held = merged.get("timeline_max_held") or (merged.get("connections") or {}).get(
            "max_held_sum")
        main_routers = [r for r in run.routers if main["phase"] in router_phases(r, phases)]
        report["rss_per_connection_bytes"] = rss_per_connection(main_routers, main["phase"], held)
        diagnose(merged, notes)
    report[plan["scenario"]] = res.get("section")
    checks = list(res.get("checks") or [])
    if phases:
        checks += general_checks(phases, analyses, routers)
    report["targets"] = res.get("targets") or []
    report["checks"] = checks
    report["notes"] = notes
    report["error"] = error
    report["ok"] = (error is None and bool(phases)
                    and all(t["ok"] for t in report["targets"] + checks))
    return report, analyses


def finite_only(value):
    """A copy of a JSON-like value with NaN and infinities replaced by None (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): finite_only(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_only(v) for v in value]
    return value


def write_report(path, report):
    """report.json, indented, strict JSON (no NaN)."""
    with open(path, "w") as f:
        json.dump(finite_only(report), f, indent=1, default=str, allow_nan=False)
        f.write("\n")


# --- the human summary --------------------------------------------------------------------------

def ms(us):
    """Microseconds as a short millisecond string."""
    if us is None:
        return "-"
    return f"{us / 1000:.2f} ms" if us < 100000 else f"{us / 1000:.0f} ms"


def mb(kb):
    return "-" if kb is None else f"{kb / 1024:.1f} MB"


def latency_line(name, lat):
    return (f"{name}: p50 {ms(lat.get('p50'))}  p90 {ms(lat.get('p90'))}  p99 {ms(lat.get('p99'))}"
            f"  p99.9 {ms(lat.get('p999'))}  (n={lat.get('count', 0)})")


def summary(report, report_path):
    """A few lines for a person: verdict, connections, rates, latencies, routers, targets."""
    cfg = report.get("config") or {}
    lines = [f"vrouter bench: {report.get('scenario')}  {'OK' if report.get('ok') else 'FAILED'}",
             f"  {cfg.get('users')} users, {cfg.get('replicas')} replica(s) ({cfg.get('store')} "
             f"store), {cfg.get('load_procs')} load process(es), {cfg.get('transport')}, "
             f"commit {report.get('git_commit')}, fleet admission {cfg.get('admission')}"]
    if report.get("error"):
        lines.append(f"  error: {report['error']}")
    gen = report.get("generator") or {}
    conns = gen.get("connections") or {}
    if conns:
        held = gen.get("timeline_max_held", conns.get("max_held_sum"))
        lines.append(f"  connections: max held {held}"
                     f", opened {conns.get('opened_total')} at {conns.get('connect_rate_per_s')}/s"
                     f", failures {conns.get('failures_total')}"
                     f", unexpected closes {conns.get('unexpected_closes')}")
    wait = gen.get("join_wait_us") or {}
    if wait.get("count"):
        lines.append(f"  joins: {wait.get('count')} users assigned, {gen.get('join_retries', 0)} "
                     f"refusals retried, last first assignment "
                     f"{gen.get('last_first_join_after_s')} s after the start; " +
                     latency_line("wait", wait))
    for transport, lat in (gen.get("handshake_us") or {}).items():
        if isinstance(lat, dict) and lat.get("count"):
            lines.append("  " + latency_line(f"handshake {transport}", lat))
    for kind, req in sorted((gen.get("requests") or {}).items()):
        lat = req.get("latency_us") or {}
        if req.get("sent") or lat.get("count"):
            lines.append(f"  {kind}: {req.get('answered_per_s')}/s answered, errors "
                         f"{sum((req.get('errors') or {}).values())}; " +
                         latency_line("latency", lat))
    if gen:
        lines.append(f"  unexpected errors: {gen.get('unexpected_errors_total', 0)}; "
                     f"RSS per connection: {report.get('rss_per_connection_bytes')} B")
    for r in report.get("routers") or []:
        rss, fds = r["rss_kb"], r["fds"]
        lines.append(f"  router {r['replica']}: RSS {mb(rss['start'])} -> {mb(rss['end'])} "
                     f"(peak {mb(rss['peak'])}), fds {fds['start']} -> {fds['end']} "
                     f"(peak {fds['peak']}), cpu {r['cpu_seconds']} s "
                     f"({r['cpu_percent_during_load']}% during load)"
                     + (", killed by the harness" if r["killed_by_harness"] else ""))
    section = report.get(report.get("scenario")) or {}
    for line in section_lines(report.get("scenario"), section):
        lines.append("  " + line)
    for t in (report.get("targets") or []) + (report.get("checks") or []):
        if not t["ok"] or t in (report.get("targets") or []):
            lines.append(f"  [{'ok' if t['ok'] else 'FAIL'}] {t['name']}: {t['value']} "
                         f"(want {t['limit']})")
    for note in report.get("notes") or []:
        lines.append(f"  note: {note}")
    lines.append(f"  report: {report_path}")
    return "\n".join(lines)


def rps_lines(r):
    """The rps comparison: the router/echo line as it always was, then the floor's line and CPU
    per round trip (user + system, microseconds; medians over the runs)."""
    runs = r.get("runs") or []
    pair = ", ".join(f"{x['target']} {x['round_trips_per_s']}" for x in runs
                     if x["target"] in ("router", "echo"))
    lines = [f"rps: {pair}; median router {r.get('median_router')}, echo "
             f"{r.get('median_echo')}, ratio {r.get('ratio_router_over_echo')}"]
    if any(x["target"] == "floor" for x in runs):
        floor = ", ".join(str(x["round_trips_per_s"]) for x in runs if x["target"] == "floor")
        lines.append(f"floor: {floor}; median {r.get('median_floor')}; round trips/s router/floor "
                     f"{r.get('ratio_router_over_floor')}, echo/floor "
                     f"{r.get('ratio_echo_over_floor')}")
    cpu = r.get("cpu_us_per_round_trip") or {}
    if cpu:
        parts = [f"{kind} {c.get('user')} + {c.get('sys')} = {c.get('total')}"
                 for kind, c in cpu.items()]
        line = "cpu us per round trip (user + sys = total): " + ", ".join(parts)
        if "cpu_ratio_router_over_floor" in r:
            line += (f"; router/floor {r.get('cpu_ratio_router_over_floor')}, echo/floor "
                     f"{r.get('cpu_ratio_echo_over_floor')}")
        lines.append(line)
    return lines


def section_lines(scenario, s):
    """The scenario's own figures, one line each."""
    if not s:
        return []
    if scenario == "surge":
        return [f"cycle {c['cycle']}: all open in {c['connect_s']} s, opened {c['opened']}, "
                f"failed {c['failed']}" for c in s.get("cycles") or []]
    if scenario == "soak":
        return [f"{name}: RSS growth {v['rss_kb']['growth']}, fds growth {v['fds']['growth']}"
                for name, v in (s.get("replicas") or {}).items()] + [f"flat: {s.get('flat')}"]
    if scenario == "failover":
        return [f"killed {s.get('killed_replica')} at {s.get('killed_at_s')} s; dropped "
                f"{s.get('dropped_connections')}, resumes {s.get('resumes')}; all connected again "
                f"after {s.get('time_to_all_connected_s')} s (timeline, 1 s resolution; last "
                f"open {s.get('last_open_after_kill_s')} s after the kill); lost users "
                f"{s.get('lost_users')}"]
    if scenario == "blackhole":
        t = s.get("time_to_ejected_s") or {}
        return [f"{s.get('server')} ejected {t.get('min')} s after turning bad "
                f"(per replica {t.get('per_replica')}); assigned after {s.get('assigned_after')}, "
                f"migrated away {s.get('migrated_away')}"]
    if scenario == "memory":
        return [f"{k}: {v.get('bytes_per_connection')} B/connection "
                f"({v.get('kib_per_connection')} KiB) over {v.get('connections')} "
                f"connections" for k, v in s.items() if isinstance(v, dict)]
    if scenario in ("rps", "smoke"):
        return rps_lines(s.get("rps", s))
    if scenario == "latency":
        a = s.get("after_ramp") or {}
        return [f"achieved {s.get('achieved_lookups_per_s')} lookups/s of "
                f"{s.get('requested_rate_per_s')}",
                latency_line("lookup, whole run incl. ramp", s.get("whole_run_latency_us") or {}),
                f"lookup after the ramp (s {a.get('window_s')}, n={a.get('n')}): median p50 "
                f"{ms(a.get('p50_median_us'))}, p99 <= {ms(a.get('p99_upper_us'))}, p99.9 <= "
                f"{ms(a.get('p999_upper_us'))}"]
    if scenario == "storm":
        return [f"first attempt to last open: {s.get('first_attempt_to_last_open_s')} s, "
                f"opened {s.get('opened')}, failures {s.get('failures_total')}"]
    return []
