#!/usr/bin/python3
"""The observability kit (deploy/prometheus/, deploy/grafana/) against the real router and a real
Prometheus.

    observability_test.py [VROUTER]        (default: build/release/router/vrouter)

Starts redis-server on a free loopback port, one vrouter replica on it (--store redis://...,
--replica-id obs-a, a fleet of two "monitored": false video servers), one WebSocket client
(standard library: hello, join, lookup, held open) and a Prometheus (scrape_interval 1s,
evaluation_interval 1s, rule_files = deploy/prometheus/rules.yml, a static scrape of the replica's
admin port). Then checks:
  - Prometheus scraped the replica: vrouter_redis_up 1, vrouter_build_info 1 with the binary's
    version and commit, one open connection, two active video servers;
  - /api/v1/rules lists every rule group of rules.yml, every rule evaluated with health "ok";
  - /api/v1/alerts: nothing firing, nothing pending but VrouterCertificateExpiryUnknown (no
    blackbox probe here);
  - every dashboard expression (template variables filled in) runs on Prometheus, and the key
    panels return data;
  - Redis killed: vrouter_redis_up drops to 0 and VrouterRedisDown turns pending;
  - promtool check rules, promtool test rules (and that every alert has a firing and a
    non-firing unit test), promtool check config on prometheus.yml (see check_config), promtool
    check metrics on the replica's /metrics, yamllint (where installed) on deploy/prometheus, and
    deploy/grafana/check-dashboard on that scrape.
Fails at once, saying what is missing, without prometheus/promtool/redis-server (Debian packages
`prometheus`, `redis-server`: scripts/setup installs them).

Loopback only, free ports; every process it starts is stopped at the end; about 15 s.
"""

import base64
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
from vrouter_testlib import (  # noqa: E402
    STARTED, RawClient, Redis, Router, accept_key, cli_token, frame, free_port, http_json,
    stop_started, text)

VROUTER = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "build/release/router/vrouter")
PROM_DIR = os.path.join(REPO, "deploy", "prometheus")
RULES = os.path.join(PROM_DIR, "rules.yml")
RULES_TEST = os.path.join(PROM_DIR, "rules_test.yml")
PROM_CONFIG = os.path.join(PROM_DIR, "prometheus.yml")
SERVICE_MONITOR = os.path.join(PROM_DIR, "servicemonitor.yaml")
DASHBOARD = os.path.join(REPO, "deploy", "grafana", "vrouter-dashboard.json")
CHECK_DASHBOARD = os.path.join(REPO, "deploy", "grafana", "check-dashboard")
SECRET = "observability-test-secret"
DEADLINE = time.monotonic() + 90  # every wait below is also bounded by this


def log(msg):
    print(f"observability: {msg} (+{time.monotonic() - START:.1f} s)", flush=True)


START = time.monotonic()


def wait_for(what, fn, timeout=20, interval=0.2):
    """Polls fn() until it returns something truthy; returns it. Raises after timeout."""
    end = min(time.monotonic() + timeout, DEADLINE)
    last = None
    while time.monotonic() < end:
        try:
            value = fn()
            if value:
                return value
        except (OSError, ValueError, KeyError, IndexError, AssertionError) as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}" + (f" (last error: {last})" if last else ""))


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)


# ------------------------------------------------------------------------------------------------
# Processes

def start_vrouter(tmp, redis_port):
    fleet = os.path.join(tmp, "fleet.json")
    with open(fleet, "w") as f:
        json.dump([{"id": f"sfu-{i}", "url": f"wss://sfu-{i}.example/rtc", "region": "eu",
                    "capacity": 100, "monitored": False} for i in range(2)], f)
    return Router(VROUTER, ["--threads", "1", "--store", f"redis://127.0.0.1:{redis_port}",
                            "--video-servers", fleet, "--redis-timeout-ms", "300"],
                  dict(os.environ, VROUTER_AUTH_SECRET=SECRET,
                       VROUTER_REPLICA_KEY="observability-test-replica-key"), "obs-a",
                  drain_window_ms=200,
                  stderr=None, start_timeout=15, log_level="info")


def start_prometheus(tmp, admin_port):
    port = free_port()
    config = os.path.join(tmp, "prometheus.yml")
    with open(config, "w") as f:
        f.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - {json.dumps(RULES)}
scrape_configs:
  - job_name: vrouter
    static_configs:
      - targets: ["127.0.0.1:{admin_port}"]
""")
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp}/tsdb",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "prometheus.log"), "w"))
    STARTED.append(proc)
    base = f"http://127.0.0.1:{port}"

    def ready():
        assert proc.poll() is None, "prometheus exited: " + open(os.path.join(tmp, "prometheus.log")).read()[-2000:]
        with urllib.request.urlopen(base + "/-/ready", timeout=1) as r:
            return r.status == 200
    wait_for("prometheus /-/ready", ready, timeout=20)
    return proc, base


# ------------------------------------------------------------------------------------------------
# A WebSocket client from the standard library (RFC 6455, text frames only).

class WsClient(RawClient):
    """A /v1/client connection that says hello with a `vrouter mint-token` token."""

    def __init__(self, port, user, space):
        self.token = cli_token(VROUTER, SECRET, user, space, timeout=60)
        assert self.token, "vrouter mint-token printed nothing"
        super().__init__(port)
        key = base64.b64encode(os.urandom(16)).decode()
        status, headers = self.upgrade(key=key, host=f"127.0.0.1:{port}")
        assert status == 101, (status, headers)
        assert headers.get("sec-websocket-accept") == accept_key(key), "bad Sec-WebSocket-Accept"
        self.next_id = 1

    def call(self, message):
        """Sends `message` with the next id; its answer (router pings answered meanwhile)."""
        message = dict(message, id=self.next_id)
        self.next_id += 1
        self.send(text(message))
        while True:
            _, opcode, payload = self.read_frame()
            if opcode == 0x9:
                self.send(frame(0xA, payload))
            elif opcode == 0x8:
                raise ConnectionError(f"closed by the router: {payload!r}")
            elif opcode == 0x1:
                answer = json.loads(payload)
                if answer.get("id") == message["id"]:
                    return answer

    def close(self):
        try:
            self.send(frame(0x8, struct.pack(">H", 1000)))
        except OSError:
            pass
        super().close()


# ------------------------------------------------------------------------------------------------
# Prometheus API

class Prom:
    def __init__(self, base):
        self.base = base

    def query(self, expr):
        url = self.base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            answer = http_json(url)
        except urllib.error.HTTPError as e:
            answer = json.loads(e.read())
        if answer.get("status") != "success":
            raise ValueError(f"{expr}: {answer.get('errorType')}: {answer.get('error')}")
        return answer["data"]["result"]

    def value(self, expr):
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def rules(self):
        return http_json(self.base + "/api/v1/rules")["data"]["groups"]

    def alerts(self):
        return http_json(self.base + "/api/v1/alerts")["data"]["alerts"]


def rule_file_groups_and_alerts():
    text = open(RULES, encoding="utf-8").read()
    groups = re.findall(r"^\s*- name:\s*(\S+)", text, re.M)
    alerts = re.findall(r"^\s*- alert:\s*(\S+)", text, re.M)
    records = re.findall(r"^\s*- record:\s*(\S+)", text, re.M)
    return groups, alerts, records


def dashboard_queries():
    """(panel title, refId, expr) with the template variables set as a user would."""
    dashboard = json.load(open(DASHBOARD, encoding="utf-8"))
    values = {"job": "vrouter", "instance": ".*", "__rate_interval": "15s", "__interval": "5s",
              "__range": "1m"}
    out = []
    for p in dashboard["panels"]:
        for q in [p] + (p.get("panels") or []):
            for t in q.get("targets", []):
                expr = re.sub(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)",
                              lambda m: values[m.group(1) or m.group(2)], t["expr"])
                out.append((q["title"], t["refId"], expr))
    return out


# ------------------------------------------------------------------------------------------------
# The checks

RESULTS = []


def check(name, fn):
    t0 = time.monotonic()
    try:
        detail = fn()
        RESULTS.append((name, True))
        log(f"ok   {name}" + (f": {detail}" if detail else "") + f" [{time.monotonic() - t0:.1f} s]")
        return True
    except Exception as e:  # a failed check is reported and the others still run
        RESULTS.append((name, False))
        log(f"FAIL {name}: {type(e).__name__}: {e}")
        return False


def check_config(tmp):
    """promtool check config on prometheus.yml. Debian's Prometheus is built without Kubernetes
    service discovery (its NEWS.Debian: "Kubernetes support has been completely removed"), so
    where promtool rejects kubernetes_sd_configs the file is checked with each of those blocks
    replaced by an equivalent static_configs block: everything else (relabelling, regexes, params,
    rule_files) still goes through promtool, and the replaced blocks are checked here for the
    fields the example relies on."""
    r = run(["promtool", "check", "config", PROM_CONFIG], cwd=PROM_DIR)
    if r.returncode == 0:
        return "full check (promtool has kubernetes_sd)"
    if "field kubernetes_sd_configs not found" not in r.stdout + r.stderr:
        raise AssertionError((r.stdout + r.stderr).strip())
    lines = open(PROM_CONFIG, encoding="utf-8").read().split("\n")
    out, blocks, i = [], [], 0
    while i < len(lines):
        m = re.match(r"^(\s*)kubernetes_sd_configs:\s*$", lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        indent, block = len(m.group(1)), []
        i += 1
        while i < len(lines) and (not lines[i].strip() or
                                  len(lines[i]) - len(lines[i].lstrip()) > indent):
            block.append(lines[i].strip())
            i += 1
        blocks.append(block)
        out += [" " * indent + "static_configs:", " " * indent + '  - targets: ["127.0.0.1:9090"]']
    assert blocks, "no kubernetes_sd_configs block found"
    for block in blocks:
        body = [b for b in block if b and not b.startswith("#")]
        assert "- role: pod" in body, f"kubernetes_sd_configs without role: pod: {body}"
        assert "label: app.kubernetes.io/name=vrouter" in body, f"no pod label selector: {body}"
    copy = os.path.join(tmp, "prometheus-static-sd.yml")
    with open(copy, "w", encoding="utf-8") as f:
        f.write("\n".join(out))
    shutil.copy(RULES, os.path.join(tmp, "rules.yml"))  # rule_files is relative to the config
    r = run(["promtool", "check", "config", copy])
    assert r.returncode == 0, (r.stdout + r.stderr).strip()
    return (f"{len(blocks)} kubernetes_sd_configs blocks swapped for static_configs "
            "(Debian's promtool lacks Kubernetes SD)")


def check_unit_test_coverage():
    """Every alert of rules.yml has at least one firing and one non-firing case in rules_test.yml."""
    _, alerts, _ = rule_file_groups_and_alerts()
    text = open(RULES_TEST, encoding="utf-8").read()
    firing, quiet = set(), set()
    for m in re.finditer(r"alertname:\s*(\S+)\s*\n\s*exp_alerts:\s*(\[\])?", text):
        (quiet if m.group(2) else firing).add(m.group(1))
    missing = [a for a in alerts if a not in firing or a not in quiet]
    assert not missing, f"alerts without a firing and a non-firing unit test: {missing}"
    return f"{len(alerts)} alerts"


def main():
    missing = [t for t in ("prometheus", "promtool", "redis-server") if not shutil.which(t)]
    if missing:
        print(f"observability: FAIL: {', '.join(missing)} not installed (Debian packages prometheus, "
              "redis-server; scripts/setup installs them)", file=sys.stderr)
        return 1
    if not os.access(VROUTER, os.X_OK):
        print(f"observability: FAIL: no vrouter binary at {VROUTER}", file=sys.stderr)
        return 1

    tmp = tempfile.mkdtemp(prefix="vrouter-observability-")
    client = None
    try:
        redis = Redis(tmp)
        router = start_vrouter(tmp, redis.port)
        redis_port, ws_port, admin_port = redis.port, router.ws, router.admin
        log(f"redis :{redis_port}, vrouter ws :{ws_port} admin :{admin_port}")
        wait_for("vrouter ready (Redis connected)",
                 lambda: http_json(f"http://127.0.0.1:{admin_port}/readyz")["ready"], timeout=15)

        def traffic():
            nonlocal client
            client = WsClient(ws_port, "obs-alice", "obs-space")
            welcome = client.call({"type": "hello", "token": client.token})
            assert welcome["type"] == "welcome", welcome
            assigned = client.call({"type": "join"})
            assert assigned["type"] == "assigned", assigned
            found = client.call({"type": "lookup", "users": ["obs-alice", "obs-nobody"]})
            assert found["type"] == "lookup_result", found
            return f"joined on {assigned['server']['id']}, lookup answered"
        check("a client joins and looks up (stdlib WebSocket)", traffic)

        scrape = os.path.join(tmp, "metrics.txt")

        def get_scrape():
            def fetch():
                with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=3) as r:
                    body = r.read().decode()
                # Per-server families appear with the fleet model's first tick.
                return body if "vrouter_video_server_state{" in body else None
            body = wait_for("per-video-server series in /metrics", fetch, timeout=10)
            with open(scrape, "w") as f:
                f.write(body)
            r = run(["promtool", "check", "metrics"], input=body)
            assert r.returncode == 0, (r.stdout + r.stderr).strip()
            return f"{sum(1 for l in body.splitlines() if l and not l.startswith('#'))} samples, lint clean"
        check("promtool check metrics on /metrics", get_scrape)

        prom_proc, base = start_prometheus(tmp, admin_port)
        prom = Prom(base)
        log(f"prometheus {base}")

        def scraped():
            wait_for("the first scrape", lambda: prom.value('up{job="vrouter"}') == 1, timeout=20)
            version = run([VROUTER, "--version"]).stdout.split()  # vrouter 0.1.0 (commit)
            want = {"vrouter_redis_up": 1, "sum(vrouter_connections)": 1, "vrouter_ready": 1,
                    'vrouter_video_servers_in_state{state="active"}': 2}

            def as_expected():
                # Polled: on a loaded machine one scrape may time out, and its series go stale
                # until the next one.
                for expr, value in want.items():
                    got = prom.value(expr)
                    assert got == value, f"{expr} = {got}, want {value}"
                build = prom.query("vrouter_build_info")
                assert len(build) == 1 and build[0]["value"][1] == "1", build
                labels = build[0]["metric"]
                assert (labels["version"], labels["commit"]) == (version[1], version[2].strip("()")), \
                    (labels, version)
                return labels
            labels = wait_for("the replica's series as expected", as_expected, timeout=10)
            return f"build {labels['version']} ({labels['commit']}), redis up, ready, 1 connection"
        check("Prometheus scrapes the replica (/api/v1/query)", scraped)

        groups, alerts, records = rule_file_groups_and_alerts()

        def rules_loaded():
            def all_evaluated():
                loaded = prom.rules()
                rules = [r for g in loaded for r in g["rules"]]
                return loaded if rules and all(r.get("health") == "ok" for r in rules) else None
            try:
                loaded = wait_for("every rule evaluated with health ok", all_evaluated, timeout=15)
            except AssertionError:
                bad = [(r["name"], r.get("health"), r.get("lastError")) for g in prom.rules()
                       for r in g["rules"] if r.get("health") != "ok"]
                raise AssertionError(f"rules not healthy: {bad}")
            names = [g["name"] for g in loaded]
            assert sorted(names) == sorted(groups), f"groups {names}, rules.yml has {groups}"
            got = sorted(r["name"] for g in loaded for r in g["rules"])
            assert got == sorted(alerts + records), "loaded rules differ from rules.yml"
            wait_for("recording rule job:vrouter_connections:sum = 1", lambda: prom.value(
                'job:vrouter_connections:sum{job="vrouter"}') == 1, timeout=10)
            return f"{len(names)} groups, {len(got)} rules, all health ok"
        check("/api/v1/rules: every group of rules.yml loaded and healthy", rules_loaded)

        def quiet():
            active = [(a["labels"]["alertname"], a["state"]) for a in prom.alerts()]
            allowed = {"VrouterCertificateExpiryUnknown"}  # no blackbox probe here
            missed = prom.value('min_over_time(up{job="vrouter"}[10m])') != 1
            if missed:  # a scrape timed out on a loaded machine: the replica looked down meanwhile
                allowed |= {"VrouterReplicaDown", "VrouterNoReplicaReady"}
            unexpected = [a for a in active if a[0] not in allowed or a[1] == "firing"]
            assert not unexpected, f"alerts on a healthy replica: {unexpected}"
            return f"active: {active or 'none'}" + (" (a scrape was missed)" if missed else "")
        check("/api/v1/alerts: a healthy replica raises nothing", quiet)

        def dashboard_runs():
            # Rates need two samples inside the dashboard's interval (15 s here).
            wait_for("three scrapes", lambda: prom.value(
                'count_over_time(up{job="vrouter"}[1m])') >= 3, timeout=15)
            queries = dashboard_queries()

            def all_with_data():
                empty = []
                for title, ref, expr in queries:
                    # Every query returns series here (zeros and NaN quantiles count), except
                    # those that filter zeros out with "> 0" (errors by code).
                    if not prom.query(expr) and not re.search(r">\s*0\s*$", expr):
                        empty.append(f"{title}/{ref}: {expr}")
                assert not empty, f"dashboard queries without data: {empty}"
                return True
            wait_for("every dashboard query with data", all_with_data, timeout=10, interval=1)
            return f"{len(queries)} queries, all with data but the zero-filtered ones"
        check("every dashboard query runs on Prometheus", dashboard_runs)

        def redis_down():
            redis.proc.kill()
            redis.proc.wait()
            wait_for("vrouter_redis_up 0", lambda: prom.value("vrouter_redis_up") == 0, timeout=15)
            pending = wait_for("VrouterRedisDown pending", lambda: [
                a for a in prom.alerts()
                if a["labels"]["alertname"] == "VrouterRedisDown" and a["state"] == "pending"],
                timeout=15)
            firing = [a["labels"]["alertname"] for a in prom.alerts() if a["state"] == "firing"]
            assert not firing, f"firing already: {firing}"
            assert pending[0]["labels"]["severity"] == "critical"
            return f"VrouterRedisDown pending for {pending[0]['labels']['instance']}"
        check("Redis killed -> VrouterRedisDown pending", redis_down)
    except Exception as e:
        RESULTS.append(("start-up", False))
        log(f"FAIL start-up: {type(e).__name__}: {e}")
    finally:
        if client:
            client.close()
        stop_started()

    def promtool_rules():
        r = run(["promtool", "check", "rules", RULES])
        assert r.returncode == 0, (r.stdout + r.stderr).strip()
        return r.stdout.strip().splitlines()[-1].strip()
    check("promtool check rules rules.yml", promtool_rules)

    def promtool_test():
        r = run(["promtool", "test", "rules", os.path.basename(RULES_TEST)], cwd=PROM_DIR)
        assert r.returncode == 0, (r.stdout + r.stderr).strip()[-4000:]
        return None
    check("promtool test rules rules_test.yml", promtool_test)
    check("every alert has a firing and a non-firing unit test", check_unit_test_coverage)
    check("promtool check config prometheus.yml", lambda: check_config(tmp))

    def servicemonitor():
        text = open(SERVICE_MONITOR, encoding="utf-8").read()
        for needle in ("apiVersion: monitoring.coreos.com/v1", "kind: PodMonitor",
                       "app.kubernetes.io/name: vrouter", "path: /metrics"):
            assert needle in text, f"{needle!r} missing"
        return None
    check("servicemonitor.yaml selects the vrouter pods", servicemonitor)

    def yaml_lint():
        if not shutil.which("yamllint"):
            return "skipped: yamllint not installed (apt package yamllint)"
        config = os.path.join(REPO, "deploy", "validate", "yamllint.yaml")  # the deploy/k8s rules
        how = ["-c", config] if os.path.exists(config) else [
            "-d", "{extends: default, rules: {line-length: {max: 120}, document-start: disable}}"]
        r = run(["yamllint", "--strict", *how, PROM_DIR])
        assert r.returncode == 0, (r.stdout + r.stderr).strip()
        return None
    check("yamllint deploy/prometheus", yaml_lint)

    def dashboard():
        scrape = os.path.join(tmp, "metrics.txt")
        assert os.path.exists(scrape), "no scrape (the replica did not start)"
        r = run([sys.executable, CHECK_DASHBOARD, scrape])
        assert r.returncode == 0, (r.stdout + r.stderr).strip()
        return r.stdout.strip().splitlines()[-1].replace("check-dashboard: ", "")
    check("deploy/grafana/check-dashboard", dashboard)

    shutil.rmtree(tmp, ignore_errors=True)
    passed = sum(1 for _, ok in RESULTS if ok)
    failed = len(RESULTS) - passed
    print(f"observability: {passed} passed, {failed} failed in {time.monotonic() - START:.1f} s")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
