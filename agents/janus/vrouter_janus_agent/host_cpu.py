"""The host's CPU busy share between two readings of /proc/stat (parsing is pure)."""

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
