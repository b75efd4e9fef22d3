"""Scenario defaults and sizing: from the command-line options to a complete, checked plan (pure).

A plan is a plain dict; every value bench/run uses to start processes comes from it, and it is
written verbatim into report.json under "config".
"""

import math
import os
import shlex

# A process may hold 20,000 open files (the hard limit on the machine the figures in BENCHMARKS.md
# come from, which cannot be raised there); keep a reserve for the rest.
SOCKETS_PER_PROCESS = 18000
# Default share of users per router replica and per load process.
USERS_PER_REPLICA = 15000
USERS_PER_LOAD_PROC = 15000
BLACKHOLE_SERVER = "sim-3"

# Per scenario: defaults of the options the user did not give. rate_per_user is turned into a
# total --rate (requests/s over all processes); "rate" gives a total directly. duration: total
# generator run time, except latency (measured time after the ramp) and the phase-based scenarios
# (memory, rps) where it is unused.
SCENARIOS = {
    "steady": {"users": 2000, "duration": 120, "mode": "people", "ramp": 500,
               "rate_per_user": 1.0, "fleet_defaults": True,
               "doc": "people walking around at 1 lookup/s/user (default admission)"},
    "surge": {"users": 10000, "duration": 120, "mode": "idle", "ramp": 0, "surge": (30, 15),
              "min_load_procs": 2, "fleet_defaults": True,
              "doc": "everyone connects at once, 30 s on, 15 s off (default admission; refused "
                     "joins are retried as the JS client does)"},
    "soak": {"users": 5000, "duration": 1800, "mode": "people", "ramp": 250,
             "rate_per_user": 0.5, "sample_every": 5,
             "doc": "long run, RSS and fds must stay flat"},
    "failover": {"users": 3000, "duration": 90, "mode": "people", "ramp": 500, "replicas": 3,
                 "rate_per_user": 0.5, "doc": "3 replicas + Redis, one killed (-9) at duration/3"},
    "blackhole": {"users": 2000, "duration": 180, "mode": "people", "ramp": 200,
                  "rate_per_user": 0.5, "blackhole_at": 60, "warmup": 30, "fleet_defaults": True,
                  "doc": "sim-3 turns black hole at 60 s; time to ejection, users moved off"},
    "memory": {"users": 10000, "mode": "idle", "ramp": 1000, "settle_s": 5,
               "doc": "router RSS per idle joined connection, ws then wss"},
    "rps": {"users": 1000, "mode": "lookup", "ramp": 0, "rate": 0, "inflight": 1,
            "transport": "ws", "runs": 3, "run_seconds": 10, "min_load_procs": 2,
            "doc": "closed-loop lookups, router vs echo_baseline vs floor_echo, in turns"},
    "latency": {"users": 10000, "duration": 60, "mode": "lookup", "ramp": 1000, "rate": 50000,
                "min_load_procs": 2, "threads": 2,
                "doc": "lookup latency at 50,000 lookups/s, paced once all are connected"},
    "storm": {"users": 10000, "duration": 20, "mode": "idle", "ramp": 0, "transport": "wss",
              "min_load_procs": 2, "doc": "10,000 wss connections at once"},
    "smoke": {"users": 300, "duration": 15, "mode": "people", "ramp": 100, "servers": 2,
              "rate_per_user": 1.0, "runs": 1, "run_seconds": 2, "rps_users": 100,
              "doc": "CI: small people run over wss + a tiny router/echo/floor rps"},
}

# The router's fleet admission (slow start of new servers: weight 0.1 rising over 30 s, and at
# most 100 new users per server per report interval) paces joins. Scenarios that measure the
# router's own costs (rps, latency, memory, storm, ...) turn it off with these flags; the ones
# about users arriving as they would in production ("fleet_defaults": steady, surge, blackhole)
# keep the settings that ship, and the generator retries refused joins as the JS client does.
# A fleet that starts together has nobody in slow start (FleetModel::Weight), so the pacing a
# fresh fleet meets is the per-interval cap.
def bench_router_args(users):
    """Router flags of the capacity scenarios: no slow start, no per-interval join cap."""
    return ["--slow-start-window-ms", "0",
            "--max-new-users-per-interval", str(max(100, users))]


def merge_flags(defaults, overrides):
    """defaults (a flat [--flag, value, ...] list) minus the flags that overrides set, plus the
    overrides ("--flag=value" or "--flag" tokens)."""
    given = {o.split("=", 1)[0] for o in overrides}
    out, i = [], 0
    while i < len(defaults):
        flag = defaults[i]
        takes_value = i + 1 < len(defaults) and not defaults[i + 1].startswith("--")
        if flag not in given:
            out += defaults[i:i + (2 if takes_value else 1)]
        i += 2 if takes_value else 1
    return out + list(overrides)


# Seconds for starting routers, Redis and the sims (fleet active) and for stopping everything.
SETUP_MARGIN_S = 60
TEARDOWN_MARGIN_S = 30
# How long a generator may overrun its --duration before it is stopped.
LOAD_GRACE_S = 30
# Servers of the rps comparison, each loaded in turn once per round.
RPS_TARGETS = 3


class PlanError(ValueError):
    """A usage error (exit status 2): impossible or unsafe sizing, unknown scenario."""


def fmt_number(value):
    """A number as the generator's command line wants it: no ".0", at most 3 decimals."""
    if value is None:
        return None
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3f}".rstrip("0").rstrip(".")


def parse_surge(text):
    """"ON_S,OFF_S" -> (on, off) seconds."""
    try:
        on, off = (float(x) for x in str(text).split(","))
    except ValueError:
        raise PlanError(f"--surge wants ON_S,OFF_S, got {text!r}") from None
    if on <= 0 or off < 0:
        raise PlanError("--surge: ON_S must be > 0 and OFF_S >= 0")
    return on, off


def worst_share(users, parts):
    """Users one part may get when each user picks one of `parts` at random (mean + 4 sigma)."""
    if parts <= 1:
        return users
    mean = users / parts
    return math.ceil(mean + 4 * math.sqrt(mean * (1 - 1 / parts)))


def pick(options, name, defaults, fallback=None):
    """The option if given (not None), else the scenario default, else fallback."""
    value = options.get(name)
    if value is not None:
        return value
    return defaults.get(name, fallback)


def make_plan(scenario, options):
    """The full plan of one run; raises PlanError on a usage error.

    options: the parsed command line as a dict (None for options not given).
    """
    if scenario not in SCENARIOS:
        raise PlanError(f"unknown scenario {scenario!r}; one of: {', '.join(SCENARIOS)}")
    d = SCENARIOS[scenario]
    users = int(pick(options, "users", d))
    if users < 1:
        raise PlanError("--users must be at least 1")
    plan = {"scenario": scenario, "users": users}

    default_replicas = max(1, math.ceil(users / USERS_PER_REPLICA), d.get("replicas", 1))
    if scenario in ("memory", "rps", "smoke"):
        default_replicas = 1
    plan["replicas"] = int(options.get("replicas") or default_replicas)
    plan["store"] = "redis" if plan["replicas"] > 1 else "memory"
    default_procs = max(1, math.ceil(users / USERS_PER_LOAD_PROC), d.get("min_load_procs", 1))
    plan["load_procs"] = int(options.get("load_procs") or default_procs)
    plan["transport"] = pick(options, "transport", d, "wss")
    plan["mode"] = pick(options, "mode", d, "people")
    plan["duration"] = float(pick(options, "duration", d, 60))
    plan["ramp"] = float(pick(options, "ramp", d, 0))
    rate = options.get("rate")
    if rate is None:
        rate = d.get("rate")
    if rate is None and "rate_per_user" in d:
        rate = d["rate_per_user"] * users
    plan["rate"] = None if rate is None else float(rate)
    plan["inflight"] = pick(options, "inflight", d)
    plan["threads"] = int(pick(options, "threads", d, 1))
    plan["servers"] = int(pick(options, "servers", d, 8))
    plan["capacity"] = int(options.get("capacity") or
                           max(500, math.ceil(2 * users / max(1, plan["servers"]))))
    plan["space_size"] = options.get("space_size")
    plan["seed"] = options.get("seed")
    plan["sample_every"] = float(pick(options, "sample_every", d, 1))
    plan["settle_s"] = float(pick(options, "settle_s", d, 5))
    plan["runs"] = int(pick(options, "runs", d, 3))
    plan["run_seconds"] = float(pick(options, "run_seconds", d, 10))
    plan["rps_users"] = int(d.get("rps_users", users))
    surge = options.get("surge") or d.get("surge")
    plan["surge"] = list(parse_surge(",".join(map(str, surge)) if isinstance(surge, (tuple, list))
                                     else surge)) if surge else None
    plan["blackhole"] = None
    if scenario == "blackhole":
        plan["blackhole"] = {"server": BLACKHOLE_SERVER,
                             "at_s": float(pick(options, "blackhole_at", d, 60))}
    plan["kill_at_s"] = plan["duration"] / 3 if scenario == "failover" else None
    plan["warmup_s"] = float(pick(options, "warmup", d, 0))
    plan["router_args"] = [] if d.get("fleet_defaults") else bench_router_args(users)
    plan["admission"] = "defaults" if d.get("fleet_defaults") else "off (bench_router_args)"
    plan["router_overrides"] = list(options.get("router_args") or [])
    plan["pin"] = parse_pin(options.get("pin") or [])
    plan["router_prefix"] = shlex.split(options.get("router_prefix") or "")
    plan["ramp_s"] = users / plan["ramp"] if plan["ramp"] > 0 else 0.0
    # latency: the paced lookups start once every connection is up (2 s after the ramp), so the
    # TLS handshakes of the ramp do not compete with them.
    plan["rate_after"] = math.ceil(plan["ramp_s"]) + 2 if scenario == "latency" else None
    plan["load_duration"] = load_duration(plan)
    check_plan(plan)
    for key in ("ramp", "rate"):
        total = plan[key]
        plan[key + "_per_proc"] = None if total is None else total / plan["load_procs"]
    plan["deadline_s"] = deadline(plan)
    return plan


PIN_ROLES = ("router", "load", "echo", "redis", "sims")
# Seconds a router under --router-prefix (valgrind: ~50x slower) gets to start, and to exit and
# write the tool's output when stopped.
ROUTER_PREFIX_SLACK_S = 60


def parse_pin(items):
    """--pin ROLE=CPUS options as {role: sorted CPU list}; the CPUs must be ones this process may
    run on."""
    allowed = os.sched_getaffinity(0)
    pin = {}
    for item in items:
        role, _, cpus = item.partition("=")
        if role not in PIN_ROLES:
            raise PlanError(f"--pin {item}: ROLE is one of {', '.join(PIN_ROLES)}")
        chosen = set()
        try:
            for part in cpus.split(","):
                first, _, last = part.partition("-")
                span = range(int(first), int(last or first) + 1)
                if not span:
                    raise ValueError(part)
                chosen.update(span)
        except ValueError:
            raise PlanError(f"--pin {item}: CPUS is a list such as 1 or 0-1 or 0,2") from None
        if not chosen <= allowed:
            raise PlanError(f"--pin {item}: this machine offers CPUs {sorted(allowed)}")
        pin[role] = sorted(chosen)
    return pin


def load_duration(plan):
    """--duration of the generators of the main phase (seconds)."""
    scenario = plan["scenario"]
    if scenario == "latency":
        return plan["rate_after"] + plan["duration"]
    if scenario == "memory":
        # Stopped by the harness once measured; this is only a bound.
        return math.ceil(plan["ramp_s"]) + plan["settle_s"] + 60
    if scenario == "rps":
        return plan["run_seconds"] + 2
    return plan["duration"]


def check_plan(plan):
    """Raise PlanError when the sizing would break the machine's limits or the scenario."""
    users, replicas, procs = plan["users"], plan["replicas"], plan["load_procs"]
    if replicas < 1 or procs < 1:
        raise PlanError("--replicas and --load-procs must be at least 1")
    if plan["transport"] not in ("ws", "wss"):
        raise PlanError("--transport is ws or wss")
    if plan["mode"] not in ("people", "lookup", "echo", "idle"):
        raise PlanError("--mode is people, lookup, echo or idle")
    if plan["duration"] <= 0:
        raise PlanError("--duration must be > 0")
    survivors = replicas - 1 if plan["scenario"] == "failover" else replicas
    if plan["scenario"] == "failover" and replicas < 2:
        raise PlanError("failover needs at least 2 replicas")
    per_replica = worst_share(users, survivors)
    if per_replica > SOCKETS_PER_PROCESS:
        need = next(r for r in range(1, 100) if worst_share(users, r) <= SOCKETS_PER_PROCESS)
        raise PlanError(f"{users} users over {survivors} replica(s) may put {per_replica} sockets "
                        f"on one router; the open-files limit allows ~{SOCKETS_PER_PROCESS}: "
                        f"use --replicas {need + (1 if plan['scenario'] == 'failover' else 0)}")
    per_proc = math.ceil(users / procs)
    if per_proc > SOCKETS_PER_PROCESS:
        raise PlanError(f"{per_proc} connections per load process exceed ~{SOCKETS_PER_PROCESS} "
                        f"(open-files limit): use --load-procs "
                        f"{math.ceil(users / SOCKETS_PER_PROCESS)}")
    if plan["scenario"] in ("memory", "rps", "smoke") and replicas != 1:
        raise PlanError(f"{plan['scenario']} measures one router: --replicas 1")
    if plan["scenario"] == "blackhole":
        if plan["servers"] < 4:
            raise PlanError("blackhole turns sim-3 bad: --servers must be at least 4")
        at = plan["blackhole"]["at_s"]
        if not plan["warmup_s"] + 10 <= at < plan["duration"]:
            raise PlanError(f"--blackhole-at must be >= --warmup ({plan['warmup_s']:g}) + 10 s "
                            f"(fleet start, users placed) and < --duration")
    if plan["servers"] < 1:
        raise PlanError("--servers must be at least 1")
    if plan["scenario"] == "rps" and plan["runs"] < 1:
        raise PlanError("--runs must be at least 1")


def deadline(plan):
    """Hard bound of the whole run in seconds: everything is killed past it."""
    scenario = plan["scenario"]
    margin = SETUP_MARGIN_S + TEARDOWN_MARGIN_S
    if plan["router_prefix"]:  # each router start and stop may take this long
        margin += 2 * ROUTER_PREFIX_SLACK_S * (plan["replicas"] + (1 if scenario == "memory" else 0))
    if scenario == "memory":
        per_phase = SETUP_MARGIN_S + plan["load_duration"] + LOAD_GRACE_S
        return 2 * per_phase + TEARDOWN_MARGIN_S
    # rps and smoke: RPS_TARGETS runs per round (router, echo_baseline, floor_echo)
    if scenario == "rps":
        per_run = plan["load_duration"] + plan["users"] / 1000 + LOAD_GRACE_S
        return margin + RPS_TARGETS * plan["runs"] * per_run
    if scenario == "smoke":
        rps = RPS_TARGETS * plan["runs"] * (plan["run_seconds"] + 2 + LOAD_GRACE_S)
        return margin + plan["load_duration"] + LOAD_GRACE_S + rps
    return margin + plan["load_duration"] + LOAD_GRACE_S


def describe():
    """One line per scenario for --help."""
    return "\n".join(f"  {name:10s} {d['doc']}" for name, d in SCENARIOS.items())
