"""CPU seconds from /proc: the whole machine's busy time, and a process's own, so that a
figure taken on a shared machine can say how much of the cores others were using."""

from __future__ import annotations

import os
import time
from pathlib import Path

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def busy_s() -> float:
    """CPU seconds every core spent on anything but idle and iowait, since boot."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(f) for f in fields]
    idle = ticks[3] + ticks[4]
    return (sum(ticks[:8]) - idle) * TICK_S  # user..steal; guest time is inside user


def tree_s(pid: int) -> float:
    """utime + stime of `pid` and of every descendant still running, in seconds."""
    return sum(own_s(one) for one in _tree(pid))


def own_s(pid: int) -> float:
    """utime + stime of process `pid` (all its threads), in seconds; 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)"
    return (int(fields[11]) + int(fields[12])) * TICK_S  # utime, stime


def _tree(pid: int) -> list[int]:
    pids, i = [pid], 0
    while i < len(pids):
        try:
            children = Path(f"/proc/{pids[i]}/task/{pids[i]}/children").read_text().split()
        except OSError:
            children = []
        pids += [int(c) for c in children]
        i += 1
    return pids


class Usage:
    """Cores used over an interval: by each named process (its own threads, not its
    children), and by everything else on the machine ("others")."""

    def __init__(self, processes: dict[str, int]) -> None:
        self.processes = processes
        self._start = self._sample()

    def _sample(self) -> tuple[float, float, dict[str, float]]:
        return time.monotonic(), busy_s(), {n: own_s(p) for n, p in self.processes.items()}

    def cores(self) -> dict[str, float]:
        """Since construction: {name: cores (1.0 = one core busy)}, plus "others"."""
        (t0, b0, s0), (t1, b1, s1) = self._start, self._sample()
        elapsed = max(t1 - t0, 1e-9)
        used = {name: (s1[name] - s0[name]) / elapsed for name in self.processes}
        used["others"] = max(0.0, (b1 - b0) / elapsed - sum(used.values()))
        return used
