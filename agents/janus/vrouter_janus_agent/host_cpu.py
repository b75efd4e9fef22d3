"""CPU busy share over the last interval, from /proc (parsing is pure): the host's (default: Janus
alone on its machine, as in production), or one process's share of the host's CPUs (--janus-pid,
for a Janus that shares its machine, as in the real-media test)."""

from __future__ import annotations


def parse_proc_stat(text: str) -> tuple[int, int] | None:
    """(busy, total) jiffies from the aggregate `cpu` line, or None if there is none."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            try:
                values = [int(v) for v in fields[1:]]
            except ValueError:
                return None
            if len(values) < 4:
                return None
            idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
            # guest and guest_nice are already inside user and nice.
            total = sum(values[:8])
            return (total - idle, total)
    return None


def busy_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float:
    if before is None or after is None:
        return 0.0
    total = after[1] - before[1]
    if total <= 0:
        return 0.0
    return min(1.0, max(0.0, (after[0] - before[0]) / total))


class HostCpu:
    def __init__(self, path: str = "/proc/stat") -> None:
        self._path = path
        self._last = self._read()

    def _read(self) -> tuple[int, int] | None:
        try:
            with open(self._path, encoding="ascii") as f:
                return parse_proc_stat(f.read())
        except OSError:
            return None

    def sample(self) -> float:
        now = self._read()
        share = busy_share(self._last, now)
        self._last = now
        return share


def parse_pid_stat(text: str) -> int | None:
    """utime + stime (clock ticks) from /proc/PID/stat; the command name may hold spaces."""
    end = text.rfind(")")
    fields = text[end + 2:].split() if end >= 0 else []
    try:
        return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)
    except (IndexError, ValueError):
        return None


class ProcessCpu:
    """One process's CPU time against the host's total CPU time over the same interval."""

    def __init__(self, pid: int, proc: str = "/proc") -> None:
        self._pid_path = f"{proc}/{pid}/stat"
        self._host_path = f"{proc}/stat"
        self._last = self._read()

    def _read(self) -> tuple[int, int] | None:
        try:
            with open(self._pid_path, encoding="ascii", errors="replace") as f:
                used = parse_pid_stat(f.read())
            with open(self._host_path, encoding="ascii") as f:
                host = parse_proc_stat(f.read())
        except OSError:
            return None
        if used is None or host is None:
            return None
        return (used, host[1])

    def sample(self) -> float:
        now = self._read()
        share = busy_share(self._last, now)
        self._last = now
        return share
