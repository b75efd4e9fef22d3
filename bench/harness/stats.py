"""Pure computations on what the load generators and the samplers record.

Nothing here starts a process or touches the clock: every function takes plain data (parsed JSON,
lists of samples) and returns plain data, so tests/bench/harness_test.py can check it directly.

Generator files are read tolerantly (`.get` everywhere): the generator is young and any field may
be missing or carry extra siblings.
"""

import json
import math

QUANTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p999", 0.999))


# --- histograms ---------------------------------------------------------------------------------

def hist_buckets(hist):
    """The [(lower_bound, count), ...] pairs of one HIST ({"unit","buckets":[[lb,count],...]})."""
    if not isinstance(hist, dict):
        return []
    pairs = []
    for bucket in hist.get("buckets") or []:
        try:
            lower, count = bucket[0], bucket[1]
        except (TypeError, IndexError, KeyError):
            continue
        if count:
            pairs.append((lower, count))
    return pairs


def merge_hists(hists):
    """Sum the counts of equal lower bounds over several HISTs; returns one HIST (sorted)."""
    counts = {}
    unit = "us"
    for hist in hists:
        if isinstance(hist, dict) and hist.get("unit"):
            unit = hist["unit"]
        for lower, count in hist_buckets(hist):
            counts[lower] = counts.get(lower, 0) + count
    return {"unit": unit, "buckets": [[lb, counts[lb]] for lb in sorted(counts)]}


def hist_total(hist):
    """Number of samples in a HIST."""
    return sum(count for _, count in hist_buckets(hist))


def percentile(hist, q):
    """Lower bound of the bucket where the cumulative count reaches q * total; None when empty.

    "Reaches" means the first bucket whose cumulative count is >= ceil(q * total) (at least 1),
    so p100 is the last non-empty bucket and p0 the first.
    """
    pairs = sorted(hist_buckets(hist))
    total = sum(count for _, count in pairs)
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total - 1e-9))
    cumulative = 0
    for lower, count in pairs:
        cumulative += count
        if cumulative >= rank:
            return lower
    return pairs[-1][0]


def summarize_hist(hist):
    """{"count", "min", "p50", "p90", "p99", "p999", "max"} of a HIST (values in its unit)."""
    pairs = sorted(hist_buckets(hist))
    out = {"count": sum(count for _, count in pairs)}
    out["min"] = pairs[0][0] if pairs else None
    for name, q in QUANTILES:
        out[name] = percentile(hist, q)
    out["max"] = pairs[-1][0] if pairs else None
    return out


def is_hist(value):
    """True for a HIST object (as opposed to a dict of HISTs keyed by transport)."""
    return isinstance(value, dict) and "buckets" in value


# --- small helpers ------------------------------------------------------------------------------

def number(value, default=0):
    """value if it is a number (bool excluded), else default."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return default


def add_counts(into, counts):
    """into[k] += counts[k] for every numeric value of a flat dict; returns into."""
    if isinstance(counts, dict):
        for key, value in counts.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                into[str(key)] = into.get(str(key), 0) + value
    return into


def stamp(value):
    """A unix-ms timestamp, or None for missing/0 (the generator writes 0 for "never")."""
    value = number(value, None)
    return value if value is not None and value > 0 else None


def min_of(values):
    """Smallest numeric value, None when there is none."""
    present = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return min(present) if present else None


def max_of(values):
    """Largest numeric value, None when there is none."""
    present = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return max(present) if present else None


def mean(values):
    """Arithmetic mean, None for an empty list."""
    values = list(values)
    return sum(values) / len(values) if values else None


def median(values):
    """Median, None for an empty list."""
    values = sorted(values)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def read_json(path):
    """Parsed JSON of a file, None when missing or not JSON."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_jsonl(path):
    """Parsed JSON lines of a file (objects only); an unfinished or bad line is skipped."""
    lines = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    value = json.loads(line)
                except ValueError:
                    continue
                if isinstance(value, dict):
                    lines.append(value)
    except OSError:
        pass
    return lines


# --- generator reports --------------------------------------------------------------------------

def merge_cycles(reports):
    """Surge cycles merged by index over processes.

    start = earliest start, all_open = latest all_open (None if any process never had all open),
    opened and failed summed; connect_s = (all_open - start) / 1000.
    """
    per_index = {}
    for report in reports:
        for index, cycle in enumerate(report.get("cycles") or []):
            if isinstance(cycle, dict):
                per_index.setdefault(index, []).append(cycle)
    merged = []
    for index in sorted(per_index):
        cycles = per_index[index]
        start = min_of(stamp(c.get("start_unix_ms")) for c in cycles)
        all_open = [stamp(c.get("all_open_unix_ms")) for c in cycles]
        complete = all(v is not None for v in all_open) and len(cycles) == len(reports)
        end = max_of(all_open) if complete else None
        merged.append({
            "cycle": index,
            "start_unix_ms": start,
            "all_open_unix_ms": end,
            "connect_s": (end - start) / 1000 if start is not None and end is not None else None,
            "opened": sum(number(c.get("opened")) for c in cycles),
            "failed": sum(number(c.get("failed")) for c in cycles),
            "processes": len(cycles),
        })
    return merged


def _merge_latency(values):
    """Merge latency fields that are either HISTs or dicts of HISTs (by transport)."""
    values = [v for v in values if isinstance(v, dict)]
    if not values:
        return None
    if all(is_hist(v) for v in values):
        return summarize_hist(merge_hists(values))
    by_key = {}
    for value in values:
        if is_hist(value):
            by_key.setdefault("all", []).append(value)
        else:
            for key, hist in value.items():
                if is_hist(hist):
                    by_key.setdefault(key, []).append(hist)
    return {key: summarize_hist(merge_hists(hists)) for key, hists in sorted(by_key.items())}


def merge_load_reports(reports, transport=None):
    """One summary of the per-process generator reports (see bench/run for the field names).

    transport labels single (non per-transport) handshake histograms.
    """
    reports = [r for r in reports if isinstance(r, dict)]
    out = {"processes_reporting": len(reports)}
    if not reports:
        return out
    out["mode"] = next((r.get("mode") for r in reports if r.get("mode")), None)
    out["users"] = sum(number(r.get("users")) for r in reports)
    out["elapsed_s"] = max_of(r.get("elapsed_s") for r in reports)
    out["t0_unix_ms"] = min_of(stamp(r.get("t0_unix_ms")) for r in reports)
    out["started_unix_ms"] = min_of(stamp(r.get("started_unix_ms")) for r in reports)
    out["stopped_by"] = sorted({str(r.get("stopped_by")) for r in reports if r.get("stopped_by")})

    conns = [r.get("connections") or {} for r in reports]
    opened = {}
    for c in conns:
        add_counts(opened, c.get("opened") if isinstance(c.get("opened"), dict) else {})
    opened_total = sum(opened.values()) + sum(number(c.get("opened")) for c in conns
                                              if not isinstance(c.get("opened"), dict))
    failures, closed = {}, {}
    for c in conns:
        add_counts(failures, c.get("failures"))
        add_counts(closed, c.get("closed"))
    first_open = min_of(stamp(r.get("first_open_unix_ms")) for r in reports)
    last_open = max_of(stamp(r.get("last_open_unix_ms")) for r in reports)
    span_s = None
    if first_open is not None and last_open is not None:
        span_s = (last_open - first_open) / 1000
    out["connections"] = {
        "attempts": sum(number(c.get("attempts")) for c in conns),
        "opened": opened,
        "opened_total": opened_total,
        "held_at_end": sum(number(c.get("held_at_end")) for c in conns),
        "max_held_sum": sum(number(c.get("max_held")) for c in conns),
        "failures": failures,
        "failures_total": sum(failures.values()),
        "closed": closed,
        "unexpected_closes": sum(number(c.get("unexpected_closes")) for c in conns),
        "first_open_unix_ms": first_open,
        "last_open_unix_ms": last_open,
        "open_span_s": span_s,
        "connect_rate_per_s": round(opened_total / span_s, 1) if span_s else None,
    }
    out["connect_us"] = _merge_latency(r.get("connect_us") for r in reports)
    handshake = _merge_latency(r.get("handshake_us") for r in reports)
    if handshake is not None and "count" in handshake:
        label = transport or next((r.get("transport") for r in reports if r.get("transport")),
                                  "all")
        handshake = {label: handshake}
    out["handshake_us"] = handshake
    # Joins: how long users waited for their first assignment, refusals retried included (the
    # generator retries like the JS client), and when the last user got one.
    out["join_wait_us"] = _merge_latency(r.get("join_wait_us") for r in reports)
    out["join_retries"] = sum(number(r.get("join_retries")) for r in reports)
    last_join = max_of(stamp(r.get("last_first_join_unix_ms")) for r in reports)
    started = out["started_unix_ms"]
    out["last_first_join_after_s"] = (round((last_join - started) / 1000, 2)
                                      if last_join and started else None)
    out["cycles"] = merge_cycles(reports)

    elapsed = out["elapsed_s"] or 0
    requests, errors_by_code = {}, {}
    types = sorted({t for r in reports for t in (r.get("requests") or {})})
    for kind in types:
        parts = [(r.get("requests") or {}).get(kind) or {} for r in reports]
        errors = {}
        for p in parts:
            add_counts(errors, p.get("errors"))
        add_counts(errors_by_code, errors)
        sent = sum(number(p.get("sent")) for p in parts)
        answered = sum(number(p.get("answered")) for p in parts)
        requests[kind] = {
            "sent": sent,
            "answered": answered,
            "sent_per_s": round(sent / elapsed, 1) if elapsed else None,
            "answered_per_s": round(answered / elapsed, 1) if elapsed else None,
            "errors": errors,
            "latency_us": summarize_hist(merge_hists(p.get("latency_us") for p in parts)),
        }
    out["requests"] = requests
    out["errors_by_code"] = errors_by_code
    for section in ("pushes", "users_at_end", "resumes"):
        merged = {}
        for r in reports:
            add_counts(merged, r.get(section))
        out[section] = merged
    unexpected = {}
    for r in reports:
        add_counts(unexpected, r.get("unexpected_errors"))
    out["unexpected_errors"] = unexpected
    out["unexpected_errors_total"] = sum(unexpected.values())
    broken = [r.get("broken") for r in reports if isinstance(r.get("broken"), dict)]
    if broken:
        out["broken"] = {
            "server": next((b.get("server") for b in broken if b.get("server")), None),
            "at_unix_ms": min_of(stamp(b.get("at_unix_ms")) for b in broken),
            "assigned_after": sum(number(b.get("assigned_after")) for b in broken),
            "reports_sent": sum(number(b.get("reports_sent")) for b in broken),
            "migrated_away": sum(number(b.get("migrated_away")) for b in broken),
            "first_migrate_unix_ms": min_of(stamp(b.get("first_migrate_unix_ms"))
                                            for b in broken),
        }
    return out


# --- timelines ----------------------------------------------------------------------------------

GAUGES = ("held", "joined")
COUNTERS = ("opened", "connect_failures", "closed_unexpected", "answered", "errors")


def merge_timelines(per_process, t0_ms):
    """Sum the per-process timelines second by second.

    per_process: one list of timeline lines per process. Each line goes to second
    round((t - t0_ms) / 1000); a process's later line in the same second wins. Cumulative
    counters are carried forward over seconds a process missed; gauges (held, joined) too, but
    only until that process's last line. Latency per second is the max over processes of each
    percentile (n summed), from the lines of that second only.
    Returns rows sorted by "t" (seconds from t0):
      {"t", "held", "joined", "opened", ..., "sent": {type: cumulative}, "lat": {type: {...}}}
    """
    indexed = []
    for lines in per_process:
        by_second = {}
        for line in lines:
            t = number(line.get("t"), None)
            if t is None:
                continue
            by_second[int(round((t - t0_ms) / 1000))] = line
        indexed.append(by_second)
    seconds = sorted({s for by_second in indexed for s in by_second})
    if not seconds:
        return []
    rows = []
    last = [None] * len(indexed)
    last_second = [max(b) if b else None for b in indexed]
    for s in range(seconds[0], seconds[-1] + 1):
        row = {"t": s, "sent": {}, "lat": {}}
        for name in GAUGES + COUNTERS:
            row[name] = 0
        for i, by_second in enumerate(indexed):
            line = by_second.get(s)
            if line is not None:
                last[i] = line
                for kind, lat in (line.get("lat") or {}).items():
                    if not isinstance(lat, dict):
                        continue
                    merged = row["lat"].setdefault(kind, {"n": 0})
                    merged["n"] += number(lat.get("n"))
                    for q in ("p50", "p90", "p99", "p999"):
                        value = number(lat.get(q), None)
                        if value is not None:
                            merged[q] = max(merged.get(q, value), value)
            current = last[i]
            if current is None:
                continue
            for name in COUNTERS:
                row[name] += number(current.get(name))
            if last_second[i] is not None and s <= last_second[i]:
                for name in GAUGES:
                    row[name] += number(current.get(name))
            add_counts(row["sent"], current.get("sent"))
        rows.append(row)
    return rows


def timeline_rates(rows):
    """Per-second rates from merged rows: [{"t", "sent": {type: per_s}, "answered": per_s}, ...]."""
    rates = []
    for previous, row in zip(rows, rows[1:]):
        dt = row["t"] - previous["t"] or 1
        sent = {kind: max(0, (value - previous["sent"].get(kind, 0)) / dt)
                for kind, value in row["sent"].items()}
        rates.append({"t": row["t"], "sent": sent,
                      "answered": max(0, (row["answered"] - previous["answered"]) / dt)})
    return rates


def closed_loop_rate(lines, counter="answered"):
    """Answers per second of one process once all its connections were open, from exact times.

    Uses the lines from the first one where held reached its maximum to the last one still at that
    maximum (the closing second excluded); None when fewer than two such lines.
    """
    lines = [l for l in lines if number(l.get("t"), None) is not None]
    if not lines:
        return None
    peak = max(number(l.get("held")) for l in lines)
    if peak <= 0:
        return None
    at_peak = [l for l in lines if number(l.get("held")) >= peak]
    first, last = at_peak[0], at_peak[-1]
    dt = (last["t"] - first["t"]) / 1000
    if dt <= 0:
        return None
    return (number(last.get(counter)) - number(first.get(counter))) / dt


def peak_window(lines):
    """(first t, last t) of closed_loop_rate's window: the lines from the first one where held
    reached its maximum to the last one still at that maximum; None when it has no length."""
    lines = [l for l in lines if number(l.get("t"), None) is not None]
    if not lines:
        return None
    peak = max(number(l.get("held")) for l in lines)
    at_peak = [l["t"] for l in lines if peak > 0 and number(l.get("held")) >= peak]
    if len(at_peak) < 2 or at_peak[-1] <= at_peak[0]:
        return None
    return at_peak[0], at_peak[-1]


def interpolate(points, t):
    """A cumulative counter [(t, value), ...] (sorted by t) read at t, linearly between the two
    points around it; None when t is outside the points."""
    for (t0, v0), (t1, v1) in zip(points, points[1:]):
        if t0 <= t <= t1:
            return v0 if t1 == t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0)
    if len(points) == 1 and points[0][0] == t:
        return points[0][1]
    return None


def cpu_per_round_trip(timelines, server, loads=(), counter="answered"):
    """CPU time of a server (and of the load processes) per round trip of a closed-loop phase.

    timelines: the generator processes' timeline lines; server: CPU samples of the server
    process [{"t": unix ms, "user_s", "sys_s"}, ...] (cumulative, from /proc/PID/stat), loads: one
    such list per load process. The window runs from the latest process's first line at its peak
    held count to the earliest process's last one (every connection open in every process); the
    round trips are each process's `counter` read at the window's ends, summed, and the CPU the
    samples read at the same times. Returns {"window_s", "round_trips", "user_us", "sys_us",
    "total_us", "server_cpu_percent", "load_us"} (microseconds per round trip), None when no
    window or no samples cover it.
    """
    windows = [peak_window(lines) for lines in timelines]
    if not windows or any(w is None for w in windows):
        return None
    start, end = max(w[0] for w in windows), min(w[1] for w in windows)
    if end <= start:
        return None
    round_trips = 0
    for lines in timelines:
        points = [(l["t"], number(l.get(counter))) for l in lines
                  if number(l.get("t"), None) is not None]
        a, b = interpolate(points, start), interpolate(points, end)
        if a is None or b is None:
            return None
        round_trips += b - a

    def used(samples, key):
        points = [(x["t"], x[key]) for x in samples if x.get(key) is not None]
        a, b = interpolate(points, start), interpolate(points, end)
        return None if a is None or b is None else b - a

    user, system = used(server, "user_s"), used(server, "sys_s")
    if user is None or system is None or round_trips <= 0:
        return None
    load_s = [used(s, key) for s in loads for key in ("user_s", "sys_s")]
    window_s = (end - start) / 1000
    per = 1e6 / round_trips
    return {"window_s": round(window_s, 3), "round_trips": round(round_trips),
            "user_us": round(user * per, 3), "sys_us": round(system * per, 3),
            "total_us": round((user + system) * per, 3),
            "server_cpu_percent": round(100 * (user + system) / window_s, 1),
            "load_us": (round(sum(load_s) * per, 3) if load_s and None not in load_s else None)}


def recovery(rows, kill_s, target=None):
    """How the connected count came back after a replica was killed at kill_s (seconds from t0).

    Rows are whole seconds (a row "t" may be up to 0.5 s early or late), so "before" is the rows
    at least a second before the kill and "after" every later row. held_before: held in the last
    row before; min_held_after: lowest afterwards; recovered_after_s: from the kill to the first
    row after a drop where held is back to held_before (or to target when given and lower), 0
    when no row showed a drop, None if it never came back. 1-second resolution.
    """
    before = [r for r in rows if r["t"] <= kill_s - 1]
    after = [r for r in rows if r["t"] > kill_s - 1]
    if not before or not after:
        return {"held_before": None, "min_held_after": None, "recovered_after_s": None}
    held_before = before[-1]["held"]
    goal = min(held_before, target) if target else held_before
    min_after = min(r["held"] for r in after)
    recovered = None
    dropped = False
    for r in after:
        if r["held"] < goal:
            dropped = True
        elif dropped:
            recovered = round(max(0.0, r["t"] - kill_s), 3)
            break
    if not dropped:
        recovered = 0
    return {"held_before": held_before, "min_held_after": min_after,
            "recovered_after_s": recovered}


def window_latency(rows, kind, start_s, end_s):
    """Latency of one message type over the rows with start_s <= t < end_s, from the per-second
    percentiles of the timelines.

    The max over seconds (each already the max over processes) of p99 is an upper bound of the
    window's p99 (no second had more than 1% above it, so neither has the union); same for
    p99.9. Returns {"window_s", "seconds", "n", "p50_median_us", "p99_upper_us",
    "p999_upper_us"}; the bounds are None when no row of the window has that type.
    """
    cells = [r["lat"][kind] for r in rows
             if start_s <= r["t"] < end_s and kind in r.get("lat", {})]
    return {"window_s": [start_s, end_s], "seconds": len(cells),
            "n": sum(number(c.get("n")) for c in cells),
            "p50_median_us": median([c["p50"] for c in cells if "p50" in c]),
            "p99_upper_us": max_of(c.get("p99") for c in cells),
            "p999_upper_us": max_of(c.get("p999") for c in cells)}


def held_at(rows, t_s):
    """Merged held at second t_s (the last row at or before it), 0 if none."""
    held = 0
    for r in rows:
        if r["t"] > t_s:
            break
        held = r["held"]
    return held


# --- samples of router processes ----------------------------------------------------------------

def flatness(samples, start, end, key, limit):
    """Growth of the mean of samples[key] from the 20-40% window to the last 20% of [start, end].

    The first 20% is warm-up. samples: dicts with "t" (same clock as start/end) and key.
    Returns {"early_mean", "late_mean", "growth", "limit", "flat"}; flat is None (not judged)
    when a window has no sample.
    """
    span = end - start
    early = [s[key] for s in samples
             if start + 0.2 * span <= s["t"] < start + 0.4 * span and s.get(key) is not None]
    late = [s[key] for s in samples
            if start + 0.8 * span <= s["t"] <= end and s.get(key) is not None]
    early_mean, late_mean = mean(early), mean(late)
    if early_mean is None or late_mean is None or early_mean <= 0:
        return {"early_mean": early_mean, "late_mean": late_mean, "growth": None,
                "limit": limit, "flat": None, "samples": [len(early), len(late)]}
    growth = (late_mean - early_mean) / early_mean
    return {"early_mean": round(early_mean, 1), "late_mean": round(late_mean, 1),
            "growth": round(growth, 5), "limit": limit, "flat": growth <= limit,
            "samples": [len(early), len(late)]}


def sample_summary(samples, key):
    """{"start", "peak", "end"} of one sampled field (None when never sampled)."""
    values = [s.get(key) for s in samples if s.get(key) is not None]
    if not values:
        return {"start": None, "peak": None, "end": None}
    return {"start": values[0], "peak": max(values), "end": values[-1]}


def window_samples(samples, start, end):
    """Samples of one process around a load window [start, end] (unix ms).

    Returns {"at_start": the last sample at or before start (else the first one),
    "peak": {key: max inside the window}} for rss_kb, fds and conns.
    """
    before = [s for s in samples if s["t"] <= start]
    at_start = before[-1] if before else (samples[0] if samples else {})
    inside = [s for s in samples if start <= s["t"] <= end]
    peak = {key: max_of(s.get(key) for s in inside) for key in ("rss_kb", "fds", "conns")}
    return {"at_start": {key: at_start.get(key) for key in ("rss_kb", "fds", "conns")},
            "peak": peak}


def state_changes(previous, current, t_ms, replica):
    """Transitions between two polls of /v1/servers on one replica.

    previous, current: {server_id: state}. Returns [{"t_unix_ms", "replica", "server", "from",
    "to"}, ...] for servers whose state differs (a new server comes "from": None).
    """
    changes = []
    for server, state in sorted(current.items()):
        if previous.get(server) != state:
            changes.append({"t_unix_ms": t_ms, "replica": replica, "server": server,
                            "from": previous.get(server), "to": state})
    return changes


def first_state_after(changes, server, state, after_ms):
    """Per replica, the first time (unix ms) at or after after_ms that server entered state."""
    firsts = {}
    for c in changes:
        if c["server"] == server and c["to"] == state and c["t_unix_ms"] >= after_ms:
            firsts.setdefault(c["replica"], c["t_unix_ms"])
    return firsts
