#!/usr/bin/env python3
"""The layering rule, checked from the includes (ctest `layering`).

Each folder under router/ (and proto/) is one library. A file may include headers of its own
folder and of the folders its folder is allowed to depend on; docs/ARCHITECTURE.md draws the same
graph. Also checked:
  - the folders below router/net are free of Asio and Beast (session logic builds without a
    network stack), except the Redis client, which is Asio-based behind a header that is not;
  - no include cycle between modules (x.h + x.cc), in any folder;
  - a file longer than MAX_LINES says why at its top ("// Why this file is longer ...").
Usage: check_layering.py REPO
"""
import os
import re
import sys

# What each folder may include (besides itself), lowest first.
ALLOWED = {
    "proto": [],
    "router/base": ["proto"],
    "router/edge": ["proto", "router/base"],
    "router/fleet": ["proto", "router/base"],
    "router/assign": ["proto", "router/base"],
    "router/telemetry": ["proto", "router/base", "router/fleet"],
    "router/store": ["proto", "router/base", "router/assign", "router/telemetry", "router/fleet"],
    "router/service": ["proto", "router/base", "router/edge", "router/fleet", "router/assign",
                       "router/telemetry", "router/store"],
    "router/net": ["proto", "router/base", "router/edge", "router/fleet", "router/assign",
                   "router/telemetry", "router/store", "router/service"],
    "router/admin": ["proto", "router/base", "router/edge", "router/fleet", "router/assign",
                     "router/telemetry", "router/store", "router/service"],
    "router/app": ["proto", "router/base", "router/edge", "router/fleet", "router/assign",
                   "router/telemetry", "router/store", "router/service", "router/net",
                   "router/admin"],
}
# Folders that must not include Asio or Beast, and the files allowed to anyway.
NO_NETWORK_STACK = ["proto", "router/base", "router/edge", "router/fleet", "router/assign",
                    "router/telemetry", "router/store", "router/service"]
NETWORK_STACK_EXCEPTIONS = {"router/store/redis_client.cc", "router/store/redis_cluster_client.cc",
                            "router/store/redis_gateway.cc", "router/store/user_watches.cc",
                            "router/store/redis_store.cc"}

MAX_LINES = 600
LONG_FILE_REASON = "// Why this file is longer than"

INCLUDE = re.compile(r'^#include ["<]([^">]+)[">]', re.M)


def folder_of(path):
    for folder in ALLOWED:
        if path.startswith(folder + "/"):
            return folder
    return None


def main(repo):
    problems = []
    files = {}
    for top in ("proto", "router"):
        for dirpath, _, names in os.walk(os.path.join(repo, top)):
            for name in sorted(names):
                if not name.endswith((".h", ".cc")):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name), repo)
                if os.path.dirname(rel) not in ALLOWED:
                    problems.append(f"{rel}: its folder is not in the layering graph")
                    continue
                with open(os.path.join(repo, rel), encoding="utf-8") as f:
                    text = f.read()
                files[rel] = INCLUDE.findall(text)
                if text.count("\n") > MAX_LINES and not text.startswith(LONG_FILE_REASON):
                    problems.append(f"{rel}: over {MAX_LINES} lines without a reason at its top "
                                    f"('{LONG_FILE_REASON} ...')")
    for folder in ALLOWED:
        if not os.path.isdir(os.path.join(repo, folder)):
            problems.append(f"{folder}: missing (the graph above names it)")

    modules = {}  # module (path without extension) -> modules it includes
    for rel, includes in files.items():
        folder = folder_of(rel)
        mod = os.path.splitext(rel)[0]
        for inc in includes:
            if inc.startswith(("boost/asio", "boost/beast", "hiredis/")):
                if folder in NO_NETWORK_STACK and rel not in NETWORK_STACK_EXCEPTIONS:
                    problems.append(f"{rel} ({folder}) includes {inc}: no network stack here")
                continue
            target = folder_of(inc)
            if target is None:
                continue
            if target != folder and target not in ALLOWED[folder]:
                problems.append(f"{rel} ({folder}) includes {inc} ({target})")
            target_mod = os.path.splitext(inc)[0]
            if target_mod != mod:
                modules.setdefault(mod, set()).add(target_mod)

    # Include cycles between modules (depth-first search, reporting each cycle once).
    state = {}
    stack = []

    def visit(mod):
        state[mod] = "open"
        stack.append(mod)
        for nxt in sorted(modules.get(mod, ())):
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt]
                problems.append("include cycle: " + " -> ".join(cycle))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[mod] = "done"

    for mod in sorted(modules):
        if mod not in state:
            visit(mod)

    if problems:
        print("layering: violations\n  " + "\n  ".join(problems))
        return 1
    print(f"layering: ok ({len(files)} files in {len(ALLOWED)} folders)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
