"""gnuplot PNGs of a run, from the merged timelines and the router samples.

    held[-PHASE].png     connections held (and users joined), summed over load processes
    rates[-PHASE].png    requests sent per second, per message type (deltas of the counters)
    latency[-PHASE].png  lookup (else the first timed type) p50/p99/p99.9 per second, max over
                         processes, log scale
    rss.png              RSS of every router replica over time

Data files (.dat) and scripts (.gp) stay next to the PNGs in OUT/plots/, so a plot can be
re-made by hand (`gnuplot OUT/plots/held.gp`). Without gnuplot, plots are skipped with a warning.
"""

import os
import shutil
import subprocess

MISSING = "?"


def gnuplot_terminal():
    """"pngcairo" when this gnuplot has it, else "png"; None without gnuplot."""
    if not shutil.which("gnuplot"):
        return None
    try:
        ok = subprocess.run(["gnuplot", "-e", "set terminal pngcairo"], capture_output=True,
                            timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return None
    return "pngcairo" if ok else "png"


def write_dat(path, header, rows):
    """A whitespace-separated data file; None becomes the missing marker."""
    with open(path, "w") as f:
        f.write("# " + " ".join(header) + "\n")
        for row in rows:
            f.write(" ".join(MISSING if v is None else f"{v:g}" if isinstance(v, float) else str(v)
                             for v in row) + "\n")


def quote(text):
    """A gnuplot single-quoted string ('' is a literal quote inside)."""
    return "'" + str(text).replace("'", "''") + "'"


def script(terminal, png, title, xlabel, ylabel, plot_lines, logscale=False):
    """A gnuplot script: one PNG, lines plot."""
    lines = [f"set terminal {terminal} size 1000,500 noenhanced",
             f"set output {quote(png)}",
             f"set title {quote(title)}",
             f"set xlabel {quote(xlabel)}",
             f"set ylabel {quote(ylabel)}",
             f"set datafile missing '{MISSING}'",
             "set grid", "set key outside right top"]
    lines.append("set logscale y" if logscale else "set yrange [0:*]")
    lines.append("plot " + ", \\\n     ".join(plot_lines))
    return "\n".join(lines) + "\n"


def phase_plots(rows, rates, suffix, title):
    """(name, header, data rows, ylabel, plot title, series, logscale) of a phase's plots."""
    plots = []
    if rows:
        plots.append(("held" + suffix, ["t", "held", "joined"],
                      [(r["t"], r["held"], r["joined"]) for r in rows],
                      "connections", f"{title}: connections held (all load processes)",
                      [(2, "held"), (3, "joined")], False))
    kinds = sorted({k for r in rates for k in r["sent"]})
    if rates and kinds:
        plots.append(("rates" + suffix, ["t"] + kinds,
                      [[r["t"]] + [round(r["sent"].get(k, 0), 1) for k in kinds] for r in rates],
                      "requests/s", f"{title}: requests sent per second",
                      [(i + 2, k) for i, k in enumerate(kinds)], False))
    timed = sorted({k for r in rows for k in r["lat"]})
    kind = "lookup" if "lookup" in timed else (timed[0] if timed else None)
    if kind:
        data = []
        for r in rows:
            lat = r["lat"].get(kind) or {}
            data.append([r["t"]] + [None if lat.get(q) is None else lat[q] / 1000
                                    for q in ("p50", "p99", "p999")])
        plots.append(("latency" + suffix, ["t", "p50_ms", "p99_ms", "p999_ms"], data, "ms",
                      f"{title}: {kind} latency per second (max over load processes)",
                      [(2, "p50"), (3, "p99"), (4, "p99.9")], True))
    return plots


def make_plots(out_dir, analyses, routers, main_phase=None):
    """Write the PNGs into out_dir/plots; returns (list of PNG paths, list of warnings)."""
    terminal = gnuplot_terminal()
    if terminal is None:
        return [], ["gnuplot not found (Debian: gnuplot-nox): plots skipped"]
    plot_dir = os.path.join(out_dir, "plots")
    os.makedirs(plot_dir, exist_ok=True)
    chosen = analyses if len(analyses) <= 2 else [
        a for a in analyses if a["phase"]["name"] == main_phase] or analyses[:1]
    plots = []
    for a in chosen:
        name = a["phase"]["name"]
        suffix = "" if len(chosen) == 1 else "-" + name
        plots += phase_plots(a["rows"], a["rates"], suffix, name)
    origin = min((a["phase"]["t0_unix_ms"] for a in analyses), default=None)
    series = []
    rss_rows = []
    for i, router in enumerate(routers):
        samples = router.proc.samples
        if not samples:
            continue
        base = origin if origin is not None else samples[0]["t"]
        series.append((router.name, i))
        rss_rows += [(round((s["t"] - base) / 1000, 3), i, round(s["rss_kb"] / 1024, 2))
                     for s in samples if s.get("rss_kb") is not None]
    pngs, warnings = [], []
    for name, header, data, ylabel, title, cols, log in plots:
        dat = os.path.join(plot_dir, name + ".dat")
        write_dat(dat, header, data)
        lines = [f"{quote(dat)} using 1:{c} with lines lw 2 title {quote(label)}"
                 for c, label in cols]
        pngs += run_gnuplot(plot_dir, name, script(terminal, os.path.join(plot_dir, name + ".png"),
                                                   title, "seconds since t0", ylabel, lines, log),
                            warnings)
    if series:
        dat = os.path.join(plot_dir, "rss.dat")
        # one block per router (gnuplot "index"), blocks separated by two blank lines
        with open(dat, "w") as f:
            f.write("# t_s router rss_mb\n")
            for _, i in series:
                for t, _, rss in (r for r in rss_rows if r[1] == i):
                    f.write(f"{t:g} {rss:g}\n")
                f.write("\n\n")
        lines = [f"{quote(dat)} index {k} using 1:2 with lines lw 2 title {quote(name)}"
                 for k, (name, _) in enumerate(series)]
        pngs += run_gnuplot(plot_dir, "rss", script(
            terminal, os.path.join(plot_dir, "rss.png"), "router RSS per replica",
            "seconds since the first load phase t0", "MB", lines), warnings)
    return pngs, warnings


def run_gnuplot(plot_dir, name, text, warnings):
    """Write NAME.gp and run it; returns [png] or [] (with a warning)."""
    gp = os.path.join(plot_dir, name + ".gp")
    with open(gp, "w") as f:
        f.write(text)
    try:
        done = subprocess.run(["gnuplot", gp], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        warnings.append(f"gnuplot {name}: {e}")
        return []
    png = os.path.join(plot_dir, name + ".png")
    if done.returncode != 0 or not os.path.exists(png):
        warnings.append(f"gnuplot {name} failed: {done.stderr.strip()[-300:]}")
        return []
    return [png]
