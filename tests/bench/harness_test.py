#!/usr/bin/python3
"""Unit tests of bench/run's pure parts (bench/harness), plus a fake vrouter_load.

    python3 tests/bench/harness_test.py            the tests (unittest; -v for names)
    tests/bench/harness_test.py fake-load ARGS     a stand-in for vrouter_load: takes its command
                                                   line, writes a plausible timeline and report
                                                   at once (synthetic times), sleeps a little
                                                   (FAKE_LOAD_REALTIME=1: until t0 + duration)
    tests/bench/harness_test.py fake-echo          a stand-in for echo_baseline: prints its
                                                   "listening" line and waits for SIGTERM

The last test runs `bench/run smoke` end to end (real router and sims from build/release, the
fake generator and echo) when those binaries exist; HARNESS_TEST_E2E=0 skips it.
"""

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))

from harness import plan as planlib  # noqa: E402
from harness import report, scenarios, stats  # noqa: E402


# --- the fake generator -------------------------------------------------------------------------

def bucket_lower(us):
    """Log-linear bucket (7-bit mantissa, < 1% wide) of a value in microseconds."""
    us = int(us)
    if us < 128:
        return us
    shift = us.bit_length() - 7
    return (us >> shift) << shift


def make_hist(values):
    """A HIST of the given microsecond values."""
    counts = {}
    for v in values:
        lb = bucket_lower(v)
        counts[lb] = counts.get(lb, 0) + 1
    return {"unit": "us", "buckets": [[lb, counts[lb]] for lb in sorted(counts)]}


def fake_load(argv):
    """Write a timeline and a report like vrouter_load would, from its command line."""
    p = argparse.ArgumentParser()
    for flag in ("--urls", "--ca", "--secret-file", "--mode", "--surge", "--broken", "--timeline",
                 "--report"):
        p.add_argument(flag)
    for flag in ("--process", "--processes", "--users-total", "--space-size", "--inflight",
                 "--step-ms", "--t0-unix-ms"):
        p.add_argument(flag, type=int)
    for flag in ("--ramp", "--duration", "--rate"):
        p.add_argument(flag, type=float)
    a = p.parse_args(argv)
    if not a.urls or not a.secret_file or a.processes is None or not a.timeline or not a.report:
        print("fake-load: missing arguments", file=sys.stderr)
        return 2
    users = len(range(a.process, a.users_total, a.processes))
    rng = random.Random(a.process)
    t0 = a.t0_unix_ms or int(time.time() * 1000)
    duration = int(a.duration or 5)
    transport = "wss" if a.urls.startswith("wss") else "ws"
    kinds = {"people": ["lookup", "watch"], "lookup": ["lookup"], "echo": ["echo"],
             "idle": []}[a.mode or "people"]
    rate = a.rate if a.rate else 1000.0  # closed loop: pretend 1000/s per process
    cum = {k: 0 for k in kinds}
    answered = 0
    lat_all = {k: [] for k in kinds}
    with open(a.timeline, "w") as f:
        for s in range(1, duration + 1):
            held = min(users, int(users * s / 2) + 1) if s < duration else users
            line = {"t": t0 + s * 1000 + a.process * 7, "held": held, "joined": held,
                    "opened": held, "connect_failures": 0, "closed_unexpected": 0,
                    "sent": {}, "answered": 0, "errors": 0, "lat": {}}
            for k in kinds:
                n = int(rate / len(kinds))
                cum[k] += n
                answered += n
                values = [rng.lognormvariate(5.5, 0.5) for _ in range(min(n, 200))]
                lat_all[k] += values
                srt = sorted(values)
                line["lat"][k] = {"n": n, "p50": int(srt[len(srt) // 2]),
                                  "p99": int(srt[int(len(srt) * 0.99)]), "p999": int(srt[-1])}
            line["sent"] = dict(cum)
            line["answered"] = answered
            f.write(json.dumps(line) + "\n")
    rep = {
        "process": a.process, "processes": a.processes, "mode": a.mode, "users": users,
        "t0_unix_ms": t0, "started_unix_ms": t0 - 500, "elapsed_s": duration,
        "connections": {"attempts": users, "opened": {transport: users}, "held_at_end": 0,
                        "max_held": users, "failures": {}, "closed": {"1000": users},
                        "unexpected_closes": 0},
        "connect_us": make_hist(rng.uniform(100, 900) for _ in range(users)),
        "handshake_us": make_hist(rng.uniform(300, 3000) for _ in range(users)),
        "first_open_unix_ms": t0 + 10, "last_open_unix_ms": t0 + 1000 + a.process,
        "requests": {k: {"sent": cum[k], "answered": cum[k], "errors": {},
                         "latency_us": make_hist(lat_all[k])} for k in kinds},
        "pushes": {"moved": 0, "left": 0, "migrate": 0, "goaway": 0},
        "users_at_end": {"joined": users if a.mode != "echo" else 0, "connected": users,
                         "target": users},
        "resumes": {"sent": 0, "resumed": 0, "not_resumed": 0},
        "unexpected_errors": {},
    }
    if a.surge:
        rep["cycles"] = [{"start_unix_ms": t0, "all_open_unix_ms": t0 + 800, "opened": users,
                          "failed": 0}]
    if a.broken:
        server, at = a.broken.split("@")
        rep["broken"] = {"server": server, "at_unix_ms": t0 + float(at) * 1000,
                         "assigned_after": 0, "reports_sent": 3, "migrated_away": 5,
                         "first_migrate_unix_ms": t0 + float(at) * 1000 + 3000}

    def write_report(*_):
        with open(a.report, "w") as f:
            json.dump(rep, f)
        sys.exit(0)

    signal.signal(signal.SIGTERM, write_report)
    if os.environ.get("FAKE_LOAD_REALTIME") == "1":  # run as long as the real one would
        time.sleep(max(0.0, t0 / 1000 + duration - time.time()))
    else:
        time.sleep(min(1.0, duration))
    write_report()


def fake_echo():
    """Print the listening line and wait for SIGTERM."""
    print(json.dumps({"event": "listening", "ws": "ws://127.0.0.1:1/"}), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(1)


# --- tests --------------------------------------------------------------------------------------

def hist(pairs):
    return {"unit": "us", "buckets": [list(p) for p in pairs]}


class HistogramTest(unittest.TestCase):
    def test_merge_sums_equal_lower_bounds(self):
        a = hist([(100, 2), (200, 3)])
        b = hist([(200, 1), (50, 4)])
        merged = stats.merge_hists([a, b, None, {"buckets": [[7]]}])
        self.assertEqual(merged["buckets"], [[50, 4], [100, 2], [200, 4]])
        self.assertEqual(stats.hist_total(merged), 10)

    def test_percentile_is_lower_bound_where_cumulative_reaches_q(self):
        h = hist([(10, 50), (20, 40), (30, 9), (40, 1)])  # 100 samples
        self.assertEqual(stats.percentile(h, 0.50), 10)
        self.assertEqual(stats.percentile(h, 0.51), 20)
        self.assertEqual(stats.percentile(h, 0.90), 20)
        self.assertEqual(stats.percentile(h, 0.99), 30)
        self.assertEqual(stats.percentile(h, 0.999), 40)
        self.assertEqual(stats.percentile(h, 1.0), 40)
        self.assertEqual(stats.percentile(h, 0.0), 10)

    def test_percentile_exact_boundaries_and_order(self):
        h = hist([(300, 1), (100, 999)])  # unsorted input
        self.assertEqual(stats.percentile(h, 0.999), 100)  # 999 of 1000 reached in 100
        self.assertEqual(stats.percentile(h, 0.9991), 300)

    def test_empty(self):
        self.assertIsNone(stats.percentile(hist([]), 0.5))
        s = stats.summarize_hist(None)
        self.assertEqual(s["count"], 0)
        self.assertIsNone(s["p99"])

    def test_merge_then_percentile_matches_pooled_samples(self):
        rng = random.Random(1)
        parts = [[rng.lognormvariate(6, 1) for _ in range(5000)] for _ in range(3)]
        merged = stats.merge_hists(make_hist(p) for p in parts)
        pooled = sorted(v for p in parts for v in p)
        for q in (0.5, 0.9, 0.99, 0.999):
            exact = pooled[math.ceil(q * len(pooled)) - 1]
            got = stats.percentile(merged, q)
            self.assertLessEqual(got, exact)
            self.assertGreater(got, exact * 0.99 - 1)  # < 1% wide buckets


class ReportMergeTest(unittest.TestCase):
    def reports(self):
        return [
            {"mode": "people", "users": 10, "elapsed_s": 10, "t0_unix_ms": 1000,
             "connections": {"attempts": 11, "opened": {"wss": 10}, "max_held": 10,
                             "held_at_end": 9, "failures": {"tls": 1},
                             "closed": {"1000": 9, "1006": 1}, "unexpected_closes": 1},
             "first_open_unix_ms": 2000, "last_open_unix_ms": 3000,
             "handshake_us": hist([(1000, 10)]),
             "requests": {"lookup": {"sent": 100, "answered": 99, "errors": {"bad": 1},
                                     "latency_us": hist([(100, 99)])}},
             "users_at_end": {"joined": 10, "target": 10},
             "resumes": {"sent": 1, "resumed": 1},
             "unexpected_errors": {"decode": 2},
             "cycles": [{"start_unix_ms": 1000, "all_open_unix_ms": 1500, "opened": 10,
                         "failed": 0}],
             "broken": {"server": "sim-3", "assigned_after": 1, "migrated_away": 4,
                        "first_migrate_unix_ms": 9000}},
            {"mode": "people", "users": 10, "elapsed_s": 11, "extra_field": {"x": 1},
             "connections": {"attempts": 10, "opened": {"wss": 10}, "max_held": 10,
                             "held_at_end": 10, "failures": {}, "closed": {"1000": 10}},
             "first_open_unix_ms": 1500, "last_open_unix_ms": 4000,
             "handshake_us": hist([(2000, 10)]),
             "requests": {"lookup": {"sent": 50, "answered": 50,
                                     "latency_us": hist([(100, 40), (5000, 10)])},
                          "watch": {"sent": 5, "answered": 5}},
             "users_at_end": {"joined": 9, "target": 10},
             "cycles": [{"start_unix_ms": 900, "all_open_unix_ms": 1700, "opened": 10,
                         "failed": 2}],
             "broken": {"server": "sim-3", "assigned_after": 0, "migrated_away": 6,
                        "first_migrate_unix_ms": 8000}},
            None,
        ]

    def test_merge(self):
        m = stats.merge_load_reports(self.reports(), "wss")
        c = m["connections"]
        self.assertEqual(m["processes_reporting"], 2)
        self.assertEqual(c["attempts"], 21)
        self.assertEqual(c["opened_total"], 20)
        self.assertEqual(c["failures"], {"tls": 1})
        self.assertEqual(c["closed"], {"1000": 19, "1006": 1})
        self.assertEqual(c["open_span_s"], 2.5)
        self.assertEqual(c["connect_rate_per_s"], 8.0)
        self.assertEqual(m["handshake_us"]["wss"]["p50"], 1000)
        self.assertEqual(m["handshake_us"]["wss"]["p99"], 2000)
        lookup = m["requests"]["lookup"]
        self.assertEqual((lookup["sent"], lookup["answered"]), (150, 149))
        self.assertEqual(lookup["latency_us"]["count"], 149)
        self.assertEqual(lookup["latency_us"]["p90"], 100)
        self.assertEqual(lookup["latency_us"]["p99"], 5000)
        self.assertEqual(lookup["sent_per_s"], round(150 / 11, 1))
        self.assertEqual(m["requests"]["watch"]["latency_us"]["count"], 0)
        self.assertEqual(m["errors_by_code"], {"bad": 1})
        self.assertEqual(m["users_at_end"], {"joined": 19, "target": 20})
        self.assertEqual(m["unexpected_errors_total"], 2)
        self.assertEqual(m["broken"]["migrated_away"], 10)
        self.assertEqual(m["broken"]["first_migrate_unix_ms"], 8000)
        cycle = m["cycles"][0]
        self.assertEqual((cycle["start_unix_ms"], cycle["all_open_unix_ms"]), (900, 1700))
        self.assertEqual((cycle["connect_s"], cycle["opened"], cycle["failed"]), (0.8, 20, 2))

    def test_cycle_incomplete_when_a_process_lacks_all_open(self):
        # the generator writes 0 for "never": all_open 0 means not all opened
        reports = [{"cycles": [{"start_unix_ms": 1000, "all_open_unix_ms": 1010}]},
                   {"cycles": [{"start_unix_ms": 1005, "all_open_unix_ms": 0, "opened": 3}]}]
        cycle = stats.merge_cycles(reports)[0]
        self.assertIsNone(cycle["connect_s"])
        self.assertIsNone(cycle["all_open_unix_ms"])
        self.assertEqual(cycle["start_unix_ms"], 1000)

    def test_zero_stamps_are_missing(self):
        m = stats.merge_load_reports([{"first_open_unix_ms": 0, "last_open_unix_ms": 0},
                                      {"first_open_unix_ms": 5000, "last_open_unix_ms": 7000,
                                       "connections": {"opened": {"ws": 4}},
                                       "transport": "ws", "handshake_us": hist([(9, 4)])}])
        self.assertEqual(m["connections"]["open_span_s"], 2.0)
        self.assertEqual(m["connections"]["connect_rate_per_s"], 2.0)
        self.assertEqual(m["handshake_us"]["ws"]["p50"], 9)  # labelled by the report's transport

    def test_handshake_per_transport_dict(self):
        m = stats.merge_load_reports([{"handshake_us": {"ws": hist([(5, 1)]),
                                                        "wss": hist([(50, 1)])}}])
        self.assertEqual(m["handshake_us"]["wss"]["p50"], 50)

    def test_empty(self):
        self.assertEqual(stats.merge_load_reports([None]), {"processes_reporting": 0})


class TimelineTest(unittest.TestCase):
    def test_merge_sums_carries_and_maxes(self):
        t0 = 10_000
        a = [{"t": t0 + 1000, "held": 5, "answered": 10, "sent": {"lookup": 10},
              "lat": {"lookup": {"n": 10, "p50": 100, "p99": 300, "p999": 400}}},
             {"t": t0 + 3020, "held": 7, "answered": 30, "sent": {"lookup": 30}}]
        b = [{"t": t0 + 980, "held": 1, "answered": 1, "sent": {"lookup": 1},
              "lat": {"lookup": {"n": 1, "p50": 200, "p99": 250, "p999": 250}}},
             {"t": t0 + 2010, "held": 2, "answered": 5, "sent": {"lookup": 5}}]
        rows = stats.merge_timelines([a, b], t0)
        self.assertEqual([r["t"] for r in rows], [1, 2, 3])
        self.assertEqual([r["held"] for r in rows], [6, 7, 7])  # b's gauge stops after its end
        self.assertEqual([r["answered"] for r in rows], [11, 15, 35])  # counters carried
        self.assertEqual(rows[0]["lat"]["lookup"], {"n": 11, "p50": 200, "p99": 300, "p999": 400})
        self.assertEqual(rows[1]["lat"], {})
        rates = stats.timeline_rates(rows)
        self.assertEqual([r["sent"]["lookup"] for r in rates], [4, 20])

    def test_window_latency_upper_bounds(self):
        rows = [{"t": 0, "lat": {"lookup": {"n": 10, "p50": 5000, "p99": 50000, "p999": 60000}}},
                {"t": 1, "lat": {"lookup": {"n": 10, "p50": 100, "p99": 300, "p999": 900}}},
                {"t": 2, "lat": {"lookup": {"n": 10, "p50": 120, "p99": 500, "p999": 700}}},
                {"t": 3, "lat": {}},
                {"t": 4, "lat": {"lookup": {"n": 10, "p50": 9, "p99": 9999, "p999": 9999}}}]
        w = stats.window_latency(rows, "lookup", 1, 4)
        self.assertEqual((w["seconds"], w["n"], w["p99_upper_us"], w["p999_upper_us"]),
                         (2, 20, 500, 900))
        self.assertEqual(w["p50_median_us"], 110)
        self.assertIsNone(stats.window_latency(rows, "watch", 0, 9)["p99_upper_us"])

    def test_closed_loop_rate_uses_peak_window(self):
        lines = [{"t": 0, "held": 5, "answered": 0}, {"t": 1000, "held": 10, "answered": 100},
                 {"t": 3000, "held": 10, "answered": 2100}, {"t": 4000, "held": 0,
                                                             "answered": 2200}]
        self.assertEqual(stats.closed_loop_rate(lines), 1000.0)
        self.assertIsNone(stats.closed_loop_rate([{"t": 0, "held": 3, "answered": 1}]))

    def test_cpu_per_round_trip(self):
        # two processes; every connection open from t=1000 (process 0) and t=1500 (process 1)
        # until t=9000 and t=8500: the window is 1500..8500
        p0 = [{"t": 0, "held": 5, "answered": 0}, {"t": 1000, "held": 10, "answered": 0}]
        p0 += [{"t": t, "held": 10, "answered": t} for t in range(2000, 10000, 1000)]
        p0 += [{"t": 10000, "held": 0, "answered": 9000}]
        p1 = [{"t": 500, "held": 3, "answered": 0}, {"t": 1500, "held": 10, "answered": 500}]
        p1 += [{"t": 8500, "held": 10, "answered": 7500}, {"t": 9500, "held": 2,
                                                           "answered": 8000}]
        self.assertEqual(stats.peak_window(p0), (1000, 9000))
        self.assertEqual(stats.peak_window(p1), (1500, 8500))
        # the server used 0.5 ms of user and 0.2 ms of system time per second of the run
        server = [{"t": t, "user_s": t / 2e6, "sys_s": t / 5e6} for t in range(0, 10001, 100)]
        load = [{"t": t, "user_s": t / 1e6, "sys_s": 0} for t in range(0, 10001, 100)]
        c = stats.cpu_per_round_trip([p0, p1], server, [load])
        # round trips: p0 1000 .. 8500 (between its lines 1000 -> 0 and 2000 -> 2000 at 1500),
        # p1 500 .. 7500; CPU 3.5 ms user, 1.4 ms system over 7 s
        self.assertEqual(c["window_s"], 7.0)
        self.assertEqual(c["round_trips"], 7500 + 7000)
        self.assertAlmostEqual(c["user_us"], 3500 / 14500, places=3)
        self.assertAlmostEqual(c["sys_us"], 1400 / 14500, places=3)
        self.assertAlmostEqual(c["total_us"], 4900 / 14500, places=3)
        self.assertAlmostEqual(c["load_us"], 7000 / 14500, places=3)
        self.assertEqual(c["server_cpu_percent"], 0.1)
        # samples that do not cover the window, or no window: None
        self.assertIsNone(stats.cpu_per_round_trip([p0, p1], server[:50]))
        self.assertIsNone(stats.cpu_per_round_trip([p0[:2]], server))
        self.assertIsNone(stats.interpolate([(0, 1), (10, 2)], 11))
        self.assertEqual(stats.interpolate([(0, 1), (10, 2)], 5), 1.5)

    def test_rps_lines(self):
        runs = [{"run": 1, "target": k, "round_trips_per_s": v, "cpu_per_round_trip": None}
                for k, v in (("router", 120.0), ("echo", 100.0), ("floor", 150.0))]
        section = {"runs": runs, "median_router": 120.0, "median_echo": 100.0,
                   "ratio_router_over_echo": 1.2, "median_floor": 150.0,
                   "ratio_router_over_floor": 0.8, "ratio_echo_over_floor": 0.667,
                   "cpu_us_per_round_trip": {"router": {"user": 1, "sys": 2, "total": 3},
                                             "floor": {"user": 0.5, "sys": 1.5, "total": 2}},
                   "cpu_ratio_router_over_floor": 1.5, "cpu_ratio_echo_over_floor": None}
        lines = report.section_lines("rps", section)
        # the first line is what it always was (router and echo only)
        self.assertEqual(lines[0], "rps: router 120.0, echo 100.0; median router 120.0, echo "
                                   "100.0, ratio 1.2")
        self.assertIn("floor: 150.0; median 150.0", lines[1])
        self.assertIn("router 1 + 2 = 3", lines[2])
        self.assertIn("router/floor 1.5", lines[2])

    def test_recovery(self):
        rows = [{"t": t, "held": h} for t, h in
                enumerate([100, 100, 100, 60, 70, 90, 100, 100])]
        r = stats.recovery(rows, 2.5, 100)
        self.assertEqual(r, {"held_before": 100, "min_held_after": 60, "recovered_after_s": 3.5})
        # the row of the kill's own second (rounded) already shows the drop
        rows = [{"t": t, "held": h} for t, h in enumerate([600, 600, 472, 600])]
        r = stats.recovery(rows, 2.002, 600)
        self.assertEqual(r, {"held_before": 600, "min_held_after": 472,
                             "recovered_after_s": 0.998})
        flat = [{"t": t, "held": 100} for t in range(5)]
        self.assertEqual(stats.recovery(flat, 2, 100)["recovered_after_s"], 0)
        never = [{"t": 0, "held": 10}, {"t": 1, "held": 5}, {"t": 2, "held": 6}]
        self.assertIsNone(stats.recovery(never, 0.5)["recovered_after_s"])


class FlatnessTest(unittest.TestCase):
    def samples(self, f):
        return [{"t": t, "rss_kb": f(t), "fds": 100} for t in range(0, 1001, 5)]

    def test_flat_and_growing(self):
        flat = stats.flatness(self.samples(lambda t: 1000 + (t % 7)), 0, 1000, "rss_kb", 0.05)
        self.assertTrue(flat["flat"])
        leak = stats.flatness(self.samples(lambda t: 1000 + t), 0, 1000, "rss_kb", 0.05)
        self.assertFalse(leak["flat"])
        # windows: 200-400 -> mean ~1297.5; 800-1000 -> mean 1900
        self.assertAlmostEqual(leak["early_mean"], 1297.5, delta=1)
        self.assertAlmostEqual(leak["late_mean"], 1900, delta=1)
        fds = stats.flatness(self.samples(lambda t: 0), 0, 1000, "fds", 0.01)
        self.assertTrue(fds["flat"])

    def test_warm_up_growth_is_ignored(self):
        s = self.samples(lambda t: 500 + t if t < 200 else 700)
        self.assertTrue(stats.flatness(s, 0, 1000, "rss_kb", 0.05)["flat"])

    def test_boundary_and_missing(self):
        s = [{"t": 300, "rss_kb": 100}, {"t": 900, "rss_kb": 105}]
        self.assertTrue(stats.flatness(s, 0, 1000, "rss_kb", 0.05)["flat"])
        s = [{"t": 300, "rss_kb": 100}, {"t": 900, "rss_kb": 106}]
        self.assertFalse(stats.flatness(s, 0, 1000, "rss_kb", 0.05)["flat"])
        self.assertIsNone(stats.flatness([{"t": 900, "rss_kb": 1}], 0, 1000, "rss_kb",
                                         0.05)["flat"])


class WindowTest(unittest.TestCase):
    def test_window_samples(self):
        samples = [{"t": 0, "rss_kb": 10, "fds": 5}, {"t": 100, "rss_kb": 11, "fds": 6},
                   {"t": 200, "rss_kb": 50, "fds": 300, "conns": 290},
                   {"t": 300, "rss_kb": 90, "fds": 20}]  # after the window: not its peak
        w = stats.window_samples(samples, 150, 250)
        self.assertEqual(w["at_start"], {"rss_kb": 11, "fds": 6, "conns": None})
        self.assertEqual(w["peak"], {"rss_kb": 50, "fds": 300, "conns": 290})
        self.assertEqual(stats.window_samples(samples, -5, 0)["at_start"]["rss_kb"], 10)
        self.assertEqual(stats.window_samples([], 0, 1)["peak"]["rss_kb"], None)


class StateChangeTest(unittest.TestCase):
    def test_changes_and_first_ejection(self):
        changes = stats.state_changes({}, {"sim-3": "active"}, 1, "r0")
        self.assertEqual(changes[0]["from"], None)
        changes += stats.state_changes({"sim-3": "active"}, {"sim-3": "ejected"}, 500, "r0")
        changes += stats.state_changes({"sim-3": "active"}, {"sim-3": "ejected"}, 700, "r1")
        changes += stats.state_changes({"sim-3": "ejected"}, {"sim-3": "ejected"}, 900, "r1")
        self.assertEqual(len(changes), 3)
        self.assertEqual(stats.first_state_after(changes, "sim-3", "ejected", 100),
                         {"r0": 500, "r1": 700})
        self.assertEqual(stats.first_state_after(changes, "sim-3", "ejected", 600), {"r1": 700})


class PlanTest(unittest.TestCase):
    def plan(self, scenario, **options):
        return planlib.make_plan(scenario, options)

    def test_defaults(self):
        p = self.plan("steady")
        self.assertEqual((p["users"], p["replicas"], p["load_procs"], p["store"]),
                         (2000, 1, 1, "memory"))
        self.assertEqual((p["transport"], p["mode"], p["rate"], p["duration"]),
                         ("wss", "people", 2000.0, 120.0))
        self.assertEqual(p["threads"], 1)
        self.assertEqual(p["servers"], 8)
        self.assertGreater(p["deadline_s"], 120)

    def test_fifty_thousand_users(self):
        p = self.plan("steady", users=50000)
        self.assertEqual((p["replicas"], p["load_procs"], p["store"]), (4, 4, "redis"))
        self.assertEqual(p["rate_per_proc"], 50000 / 4)

    def test_per_scenario(self):
        self.assertEqual(self.plan("failover")["replicas"], 3)
        self.assertEqual(self.plan("failover")["store"], "redis")
        self.assertEqual(self.plan("failover")["kill_at_s"], 30)
        lat = self.plan("latency")
        self.assertEqual((lat["load_procs"], lat["rate"], lat["rate_per_proc"]),
                         (2, 50000.0, 25000.0))
        # Ramp 10,000 at 1,000/s, 2 s more, then 60 s of paced lookups; 2 router threads.
        self.assertEqual(lat["rate_after"], 10 + 2)
        self.assertEqual(lat["load_duration"], 12 + 60)
        self.assertEqual(lat["threads"], 2)
        self.assertIsNone(self.plan("steady")["rate_after"])
        storm = self.plan("storm")
        self.assertEqual((storm["ramp"], storm["load_procs"], storm["transport"]), (0, 2, "wss"))
        surge = self.plan("surge")
        self.assertEqual(surge["surge"], [30.0, 15.0])
        self.assertEqual(self.plan("surge", surge="10,5")["surge"], [10.0, 5.0])
        rps = self.plan("rps")
        self.assertEqual((rps["rate"], rps["inflight"], rps["transport"], rps["runs"]),
                         (0.0, 1, "ws", 3))
        self.assertEqual(self.plan("blackhole")["blackhole"], {"server": "sim-3", "at_s": 60.0})
        self.assertEqual(self.plan("soak")["sample_every"], 5)
        smoke = self.plan("smoke")
        self.assertEqual((smoke["servers"], smoke["users"], smoke["replicas"]), (2, 300, 1))
        self.assertLess(smoke["deadline_s"], 300)

    def test_options_win(self):
        p = self.plan("steady", users=100, rate=7, transport="ws", threads=2, load_procs=3)
        self.assertEqual((p["rate"], p["transport"], p["threads"], p["load_procs"]),
                         (7.0, "ws", 2, 3))

    def test_refuses_unsafe_sizing(self):
        with self.assertRaises(planlib.PlanError):
            self.plan("steady", users=50000, replicas=2)
        with self.assertRaises(planlib.PlanError):
            self.plan("steady", users=30000, replicas=2, load_procs=1)
        with self.assertRaises(planlib.PlanError):
            self.plan("failover", users=30000, replicas=2)  # one survivor holds all
        with self.assertRaises(planlib.PlanError):
            self.plan("failover", replicas=1)
        with self.assertRaises(planlib.PlanError):
            self.plan("blackhole", servers=3)
        with self.assertRaises(planlib.PlanError):
            self.plan("memory", replicas=2)
        with self.assertRaises(planlib.PlanError):
            self.plan("nope")
        with self.assertRaises(planlib.PlanError):
            self.plan("surge", surge="30")

    def test_router_flags(self):
        self.assertEqual(self.plan("storm")["router_args"],
                         ["--slow-start-window-ms", "0", "--max-new-users-per-interval", "10000"])
        self.assertEqual(self.plan("blackhole")["router_args"], [])
        self.assertEqual(self.plan("blackhole")["warmup_s"], 30)
        with self.assertRaises(planlib.PlanError):
            self.plan("blackhole", blackhole_at=20)  # before warm-up + 10 s
        self.assertEqual(self.plan("blackhole", blackhole_at=20, warmup=0)["warmup_s"], 0)
        merged = planlib.merge_flags(["--threads", "1", "--tls-cert", "c", "--x"],
                                     ["--threads=4", "--lease-ttl-ms=2000", "--x"])
        self.assertEqual(merged, ["--tls-cert", "c", "--threads=4", "--lease-ttl-ms=2000", "--x"])

    def test_pin(self):
        cpu = min(os.sched_getaffinity(0))
        p = self.plan("latency", pin=[f"router={cpu}", f"load={cpu},{cpu}"])
        self.assertEqual(p["pin"], {"router": [cpu], "load": [cpu]})
        self.assertEqual(self.plan("latency")["pin"], {})
        self.assertEqual(self.plan("latency", router_prefix="valgrind -q")["router_prefix"],
                         ["valgrind", "-q"])
        self.assertGreater(self.plan("latency", router_prefix="valgrind")["deadline_s"],
                           self.plan("latency")["deadline_s"] + 100)
        for bad in ("router", "web=0", "router=x", "router=", "router=4096", "router=1-0"):
            with self.assertRaises(planlib.PlanError, msg=bad):
                self.plan("latency", pin=[bad])

    def test_worst_share(self):
        self.assertEqual(planlib.worst_share(100, 1), 100)
        self.assertGreater(planlib.worst_share(45000, 3), 15000)
        self.assertLess(planlib.worst_share(45000, 3), 15600)

    def test_fmt_number(self):
        self.assertEqual(planlib.fmt_number(25000.0), "25000")
        self.assertEqual(planlib.fmt_number(1000 / 3), "333.333")
        self.assertEqual(planlib.fmt_number(0.5), "0.5")

    def test_generator_argv(self):
        spec = {"urls": ["wss://a/v1/client", "wss://b/v1/client"], "ca": "c.pem",
                "secret_file": "s", "process": 1, "processes": 2, "users_total": 10,
                "mode": "people", "ramp": 250.0, "duration": 60.0, "rate": None,
                "inflight": None, "step_ms": 1000, "surge": [30.0, 15.0],
                "broken": "sim-3@55", "t0_unix_ms": 123.0, "timeline": "tl", "report": "rp",
                "extra": ["--x"]}
        argv = scenarios.generator_argv(spec)
        self.assertEqual(argv[:2], ["--urls", "wss://a/v1/client,wss://b/v1/client"])
        joined = " ".join(argv)
        for part in ("--ca c.pem", "--process 1 --processes 2 --users-total 10", "--ramp 250",
                     "--duration 60", "--step-ms 1000", "--surge 30,15", "--broken sim-3@55",
                     "--t0-unix-ms 123", "--timeline tl --report rp"):
            self.assertIn(part, joined)
        self.assertNotIn("--rate", argv)
        self.assertNotIn("--inflight", argv)
        self.assertEqual(argv[-1], "--x")
        # An extra flag replaces the harness's own value instead of repeating it.
        spec.update(rate_after=12, extra=["--step-ms=10000"])
        argv = scenarios.generator_argv(spec)
        self.assertIn("--rate-after 12", " ".join(argv))
        self.assertNotIn("--step-ms", argv)
        self.assertEqual(argv[-1], "--step-ms=10000")

    def test_targets(self):
        self.assertTrue(scenarios.target("x", 1.9, 2.0)["ok"])
        self.assertFalse(scenarios.target("x", None, 2.0)["ok"])
        self.assertTrue(scenarios.target("x", 0, 0, "==")["ok"])
        self.assertFalse(scenarios.target("x", 3, 5, ">=")["ok"])


class FakeLoadTest(unittest.TestCase):
    """The fake generator's files go through the same merge as the real ones."""

    def test_fake_files_merge(self):
        with tempfile.TemporaryDirectory() as tmp:
            phase = {"name": "main", "transport": "wss", "t0_unix_ms": 1_000_000, "reports": [],
                     "timelines": [], "procs": [], "target": "router",
                     "stopped_by_harness": False}
            for i in range(2):
                tl, rp = os.path.join(tmp, f"t{i}"), os.path.join(tmp, f"r{i}")
                subprocess.run([sys.executable, os.path.abspath(__file__), "fake-load", "--urls",
                                "wss://x/v1/client", "--secret-file", "s", "--process", str(i),
                                "--processes", "2", "--users-total", "11", "--mode", "lookup",
                                "--duration", "3", "--rate", "500", "--t0-unix-ms", "1000000",
                                "--timeline", tl, "--report", rp], check=True, timeout=30)
                phase["timelines"].append(tl)
                phase["reports"].append(rp)
            a = report.analyze_phase(phase)
            m = a["merged"]
            self.assertEqual(m["users"], 11)
            self.assertEqual(m["connections"]["opened"], {"wss": 11})
            self.assertEqual(m["requests"]["lookup"]["sent"], 2 * 3 * 500)
            self.assertGreater(m["requests"]["lookup"]["latency_us"]["p99"], 0)
            self.assertEqual([r["t"] for r in a["rows"]], [1, 2, 3])
            self.assertEqual(a["rows"][-1]["held"], 11)
            self.assertEqual([r["sent"]["lookup"] for r in a["rates"]], [1000, 1000])


BUILD = os.environ.get("VROUTER_BUILD_DIR", os.path.join(ROOT, "build", "release"))


def e2e_enabled():
    build = BUILD
    have = all(os.access(os.path.join(build, p), os.X_OK)
               for p in ("router/vrouter", "bench/sim_video_server"))
    return have and os.environ.get("HARNESS_TEST_E2E", "1") != "0"


@unittest.skipUnless(e2e_enabled(), "needs build/release router and sim (HARNESS_TEST_E2E=0)")
class EndToEndTest(unittest.TestCase):
    """bench/run smoke with the real router and sims and the fake generator/echo (~15 s)."""

    def test_smoke_with_fakes(self):
        with tempfile.TemporaryDirectory() as tmp:
            me = os.path.abspath(__file__)
            for name, role in (("load", "fake-load"), ("echo", "fake-echo"),
                               ("floor", "fake-echo")):
                path = os.path.join(tmp, name)
                with open(path, "w") as f:
                    f.write(f'#!/bin/sh\nexec {sys.executable} {me} {role} "$@"\n')
                os.chmod(path, 0o755)
            out = os.path.join(tmp, "out")
            done = subprocess.run(
                [os.path.join(ROOT, "bench", "run"), "smoke", "--out", out, "--users", "20",
                 "--duration", "3", "--run-seconds", "2", "--build", BUILD, "--load-bin",
                 os.path.join(tmp, "load"), "--echo-bin", os.path.join(tmp, "echo"),
                 "--floor-bin", os.path.join(tmp, "floor")],
                capture_output=True, text=True, timeout=120)
            self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
            with open(os.path.join(out, "report.json")) as f:
                doc = json.load(f)
            self.assertTrue(doc["ok"])
            self.assertEqual(doc["generator"]["users_at_end"]["joined"], 20)
            self.assertEqual(len(doc["routers"]), 1)
            self.assertIsNotNone(doc["routers"][0]["rss_kb"]["peak"])
            self.assertGreater(doc["smoke"]["rps"]["median_router"], 0)
            self.assertGreater(doc["smoke"]["rps"]["median_floor"], 0)
            self.assertEqual([r["target"] for r in doc["smoke"]["rps"]["runs"]],
                             ["router", "echo", "floor"])
            self.assertIn("median router", done.stdout)
            self.assertIn("report:", done.stdout)
            # nothing left running from this run
            left = subprocess.run(["pgrep", "-f", out], capture_output=True, text=True).stdout
            self.assertEqual(left.strip(), "")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "fake-load":
        sys.exit(fake_load(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "fake-echo":
        fake_echo()
    unittest.main()
