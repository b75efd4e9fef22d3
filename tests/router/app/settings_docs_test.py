#!/usr/bin/env python3
"""README.md and deploy/ agree with the router's settings table (ctest `settings_docs`, lint).

The table is what `vrouter --help-settings-json` prints (router/app/settings.cc). Fails when:
  - README.md names a `--flag` of the router that the router does not have: in an inline code
    span that starts with the flag (`--listen HOST:PORT`) or with `vrouter` (not `vrouter
    mint-token`), or on a `vrouter` command line in a fenced code block;
  - README.md documents a default other than the table's: in a Markdown table with a "default"
    column (several flags in one cell pair with "a / b" defaults; "none" is an empty default),
    or in prose as "`--flag` (default 10 s)" / "(`--flag`, default 5 s)";
  - a VROUTER_* variable set in deploy/ (Kubernetes manifests, compose files, the Dockerfile,
    `-e` of deploy/container-smoke) is not a setting.
Before reading the real files it checks itself on small inputs holding each fault.
Usage: settings_docs_test.py VROUTER_BINARY REPO
"""
import glob
import json
import os
import re
import subprocess
import sys

BUILTINS = {"--help", "-h", "--version", "--help-settings-json"}
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
SPAN = re.compile(r"`([^`\n]+)`")
UNIT_MS = {"ms": 1, "s": 1000, "min": 60000}
# "`--drain-window-ms` (default 10 s)", "(`--lease-ttl-ms`, default 5 s)"
PROSE_DEFAULT = re.compile(
    r"`(--[a-z0-9-]+)[^`]*`\)?,? \(?default (\d+(?:\.\d+)?) ?(ms|s|min)?\b")
# What deploy files set: "- VROUTER_X=v" (kustomize literals), "name: VROUTER_X" (env entries),
# "VROUTER_X: v" (ConfigMap data, compose), "ENV VROUTER_X=v \ ..." (Dockerfile),
# "-e VROUTER_X=v" (podman/docker run).
DEPLOY_SET = [
    re.compile(r"^\s*-\s*(VROUTER_[A-Z0-9_]+)="),
    re.compile(r"^\s*-?\s*name:\s*(VROUTER_[A-Z0-9_]+)\s*$"),
    re.compile(r"^\s*(VROUTER_[A-Z0-9_]+):\s"),
    re.compile(r"(?:^|\s)(?:-e|--env)\s+(VROUTER_[A-Z0-9_]+)="),
]
DOCKER_ENV = re.compile(r"(?:^|\s)(VROUTER_[A-Z0-9_]+)=")


class Table:
    def __init__(self, dump):
        self.rows = {s["flag"]: s for s in dump["settings"]}
        self.envs = {s["env"] for s in dump["settings"] if s["env"]}

    def knows(self, flag):
        return flag in self.rows or flag in BUILTINS


def same_default(doc, row, unit=None):
    """Whether `doc` (as README writes it, with an optional time unit) is the row's default."""
    actual = row["default"]
    doc = doc.strip().strip("`")
    if doc.lower() in ("none", "", "-"):
        return actual == ""
    try:
        number = float(doc)
    except ValueError:
        return doc == actual
    if row["type"] == "milliseconds" and unit:
        number *= UNIT_MS[unit]
    try:
        return abs(number - float(actual)) <= 1e-9 * max(1.0, abs(number))
    except ValueError:
        return False


def router_command_flags(command):
    """--flags of a shell command line when it runs the router (not `vrouter mint-token`)."""
    words = command.split()
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        words.pop(0)  # VAR=value prefixes
    if not words or not (words[0] == "vrouter" or words[0].endswith("/vrouter")):
        return []
    if len(words) > 1 and words[1] == "mint-token":
        return []
    return FLAG.findall(command)


def check_readme(text, table, name="README.md"):
    problems = []
    in_fence = False
    command = ""
    header = []  # of the Markdown table being read
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{name}:{number}"
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            command = ""
            continue
        if in_fence:
            command += line.rstrip("\\")
            if line.rstrip().endswith("\\"):
                continue
            for flag in router_command_flags(command.split("&")[0]):
                if not table.knows(flag):
                    problems.append(f"{where}: {flag} is not a vrouter flag")
            command = ""
            continue
        for span in SPAN.findall(line):
            span = span.strip()
            flags = FLAG.findall(span) if span.startswith("--") else router_command_flags(span)
            for flag in flags:
                if not table.knows(flag):
                    problems.append(f"{where}: {flag} is not a vrouter flag")
        for flag, value, unit in PROSE_DEFAULT.findall(line):
            row = table.rows.get(flag)
            if row and not same_default(value, row, unit):
                problems.append(f"{where}: {flag} documented with default {value}"
                                f"{' ' + unit if unit else ''}, the router's is {row['default']!r}")
        problems += check_table_row(line, where, table, header)
    return problems


def check_table_row(line, where, table, header):
    """Rows of Markdown tables whose header (the first row, kept in `header`) names a "default"
    column."""
    if not line.startswith("|"):
        header.clear()
        return []
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if not header:
        header.extend(c.lower() for c in cells)
        return []
    if "default" not in header or set("".join(cells)) <= set("-: "):
        return []
    flags = [FLAG.match(s.strip()).group() for s in SPAN.findall(cells[0])
             if FLAG.match(s.strip())]
    column = header.index("default")
    if not flags or column >= len(cells):
        return []
    documented = [d.strip() for d in cells[column].split(" / ")]
    if len(documented) != len(flags):
        return [f"{where}: {len(flags)} flags but {len(documented)} defaults"]
    problems = []
    for flag, doc in zip(flags, documented):
        row = table.rows.get(flag)
        if row is None:
            continue  # check_readme reports unknown flags
        if not same_default(doc, row):
            problems.append(f"{where}: {flag} documented with default {doc!r}, "
                            f"the router's is {row['default']!r}")
    return problems


def check_deploy_file(path, text, table):
    problems = []
    dockerfile = os.path.basename(path).startswith("Dockerfile")
    in_env = False
    for number, line in enumerate(text.splitlines(), 1):
        code = line.split("#", 1)[0] if not dockerfile or not line.lstrip().startswith("#") else ""
        names = []
        if dockerfile:
            if re.match(r"^\s*ENV\s", code):
                in_env = True
            if in_env:
                names = DOCKER_ENV.findall(code)
                in_env = code.rstrip().endswith("\\")
        else:
            for pattern in DEPLOY_SET:
                names += pattern.findall(code)
        for name in names:
            if name not in table.envs:
                problems.append(f"{path}:{number}: {name} is set but is not a vrouter setting")
    return problems


def deploy_files(repo):
    deploy = os.path.join(repo, "deploy")
    files = []
    for pattern in ("**/*.yaml", "**/*.yml"):
        files += glob.glob(os.path.join(deploy, pattern), recursive=True)
    files += glob.glob(os.path.join(repo, "**/*compose*.y*ml"), recursive=True)
    files += glob.glob(os.path.join(repo, "Dockerfile*"))
    files.append(os.path.join(deploy, "container-smoke"))
    skip = (os.sep + "node_modules" + os.sep, os.sep + "testdata" + os.sep,
            os.sep + "build" + os.sep)
    return sorted({f for f in files if os.path.isfile(f) and not any(s in f for s in skip)})


def self_test():
    table = Table({"settings": [
        {"flag": "--drain-window-ms", "env": "VROUTER_DRAIN_WINDOW_MS", "type": "milliseconds",
         "default": "10000"},
        {"flag": "--max-ejected-share", "env": "VROUTER_MAX_EJECTED_SHARE", "type": "number",
         "default": "0.3"},
        {"flag": "--region-groups", "env": "VROUTER_REGION_GROUPS", "type": "text",
         "default": ""},
    ]})
    good = ("`vrouter --drain-window-ms 5` and `--max-ejected-share X`, `cmake --build x`,\n"
            "`vrouter mint-token --user U`; spread over `--drain-window-ms` (default 10 s).\n"
            "\n| flag | default | why |\n| --- | --- | --- |\n"
            "| `--max-ejected-share` / `--region-groups` | 0.3 / none | x |\n"
            "```\nredis-server --port 1 &\nVROUTER_X=1 vrouter --drain-window-ms 1 \\\n"
            "  --region-groups a=b &\n```\n")
    assert check_readme(good, table) == [], check_readme(good, table)
    faults = {
        "an unknown flag in a span": "`--drain-window-ms 1 --no-such 2`\n",
        "an unknown flag on a command": "```\nvrouter --listen x\n```\n",
        "an unknown flag on a continued line": "```\nvrouter --drain-window-ms 1 \\\n  --nope\n```\n",
        "a wrong default in a table": ("| flag | default |\n| --- | --- |\n"
                                       "| `--max-ejected-share` | 0.5 |\n"),
        "a wrong default of several": ("| flag | default |\n| --- | --- |\n"
                                       "| `--max-ejected-share` / `--region-groups` | 0.3 / x |\n"),
        "a wrong default in prose": "over `--drain-window-ms` (default 5 s), then\n",
    }
    for what, text in faults.items():
        assert check_readme(text, table), f"self-test: {what} was not caught"
    manifest = ("data:\n  VROUTER_DRAIN_WINDOW_MS: \"1\"\nliterals:\n  - VROUTER_DRAIN_WINDOW_MS=1\n"
                "env:\n  - name: VROUTER_DRAIN_WINDOW_MS\n  # - VROUTER_COMMENTED=1\n")
    assert check_deploy_file("m.yaml", manifest, table) == []
    for bad in ("  - VROUTER_TYPO=1\n", "  - name: VROUTER_TYPO\n", "  VROUTER_TYPO: 1\n"):
        assert check_deploy_file("m.yaml", bad, table), f"self-test: {bad!r} was not caught"
    docker = "ARG VROUTER_BUILD=1\nENV VROUTER_DRAIN_WINDOW_MS=1 \\\n    VROUTER_TYPO=2\nRUN x\n"
    assert len(check_deploy_file("Dockerfile", docker, table)) == 1
    assert check_deploy_file("smoke", "podman run -e VROUTER_TYPO=1 x\n", table)


def main(binary, repo):
    self_test()
    dump = json.loads(subprocess.run([binary, "--help-settings-json"], check=True,
                                     capture_output=True, text=True).stdout)
    table = Table(dump)
    problems = []
    with open(os.path.join(repo, "README.md"), encoding="utf-8") as f:
        problems += check_readme(f.read(), table)
    files = deploy_files(repo)
    for path in files:
        with open(path, encoding="utf-8") as f:
            problems += check_deploy_file(os.path.relpath(path, repo), f.read(), table)
    for p in problems:
        print(p)
    if problems:
        print(f"settings_docs: {len(problems)} problem(s); the table is "
              f"`{os.path.basename(binary)} --help-settings-json` (router/app/settings.cc)")
        return 1
    print(f"settings_docs: README.md and {len(files)} deploy files agree with "
          f"{len(table.rows)} settings")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
