"""The load-test orchestrator behind bench/run (stdlib only).

    plan.py       scenario defaults and the sizing rules (pure)
    stats.py      histogram merge, percentiles, timeline merge, flatness and other figures (pure)
    procs.py      child processes on loopback: start, sample, stop (process groups)
    scenarios.py  what each scenario starts, when, and what it measures
    report.py     OUT/report.json, targets and the human summary
    plots.py      gnuplot PNGs
"""
