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


def family(pid: int) -> list[int]:
    """``pid`` and every process descended from it (a bot's worker processes)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(_stat_fields(entry / "stat")[1][1])
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
    found = [pid]
    for each in found:
        found += [child for child, parent in parents.items() if parent == each]
    return found


def process_cpu(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` and its descendants (all threads)."""
    total = 0.0
    for member in family(pid):
        try:
            _, fields = _stat_fields(Path(f"/proc/{member}/stat"))
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += (int(fields[11]) + int(fields[12])) * TICK
    return total


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread of ``pid`` and its descendants, keyed "<name>:<tid>"; "main"
    sums the main threads (each process's event loop)."""
    result: dict[str, float] = {"main": 0.0}
    for member in family(pid):
        try:
            tasks = list(Path(f"/proc/{member}/task").iterdir())
        except (FileNotFoundError, ProcessLookupError):
            continue
        for task in tasks:
            try:
                name, fields = _stat_fields(task / "stat")
            except (FileNotFoundError, ProcessLookupError):
                continue  # the thread ended while we looked
            cpu = (int(fields[11]) + int(fields[12])) * TICK
            if int(task.name) == member:
                result["main"] += cpu
            else:
                result[f"{name}:{task.name}"] = cpu
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
