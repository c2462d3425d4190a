"""CPU time of processes and threads from /proc, so each process's cost can be attributed.

psutil is not a project dependency, and /proc gives per-thread figures too: the bot's event
loop thread apart from aiosqlite's worker thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICK = 1.0 / os.sysconf("SC_CLK_TCK")


def _stat_fields(path: Path) -> tuple[str, list[str]]:
    """The command name and the fields after it (the name may hold spaces and brackets)."""
    raw = path.read_text()
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    return name, raw[raw.rindex(")") + 2 :].split()


def process_cpu(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` (all its threads)."""
    _, fields = _stat_fields(Path(f"/proc/{pid}/stat"))
    return (int(fields[11]) + int(fields[12])) * TICK


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread of ``pid``, keyed "main" or "<name>:<tid>"."""
    result: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name, fields = _stat_fields(task / "stat")
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended while we looked
        key = "main" if int(task.name) == pid else f"{name}:{task.name}"
        result[key] = (int(fields[11]) + int(fields[12])) * TICK
    return result


def postgres_cpu() -> float:
    """CPU seconds of every process named postgres (the server and its backends)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name, fields = _stat_fields(entry / "stat")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if name.startswith("postgres"):
            total += (int(fields[11]) + int(fields[12])) * TICK
    return total


@dataclass(frozen=True)
class MachineTimes:
    """Busy and total CPU seconds over all cores, from /proc/stat."""

    busy: float
    total: float

    @classmethod
    def now(cls) -> MachineTimes:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        total = sum(fields[:8])  # guest time is already inside user time
        return cls((total - idle) * TICK, total * TICK)

    def utilisation_since(self, earlier: MachineTimes) -> float:
        """Share of all cores busy between ``earlier`` and this sample (0..1)."""
        spent = self.total - earlier.total
        return 0.0 if spent <= 0 else (self.busy - earlier.busy) / spent
