"""CPU seconds of processes and of the machine, read from /proc: what a benchmark level cost.

Why from /proc and not from a profiler: a level's cost must include every process of a stack
(supervisor, gateways, Rasa, action servers, workers) and the shared services it drives
(PostgreSQL backends, redis-server), without slowing them down. A process's CPU is
utime + stime (+ cutime + cstime for stack processes: children that exited and were reaped,
e.g. one a supervisor restarted). A process tree is walked afresh at each snapshot, so
processes started during a level are counted from zero.

On a shared machine PostgreSQL serves other databases too: only backends of the bench's own
database and the server's shared processes (postmaster, checkpointer, WAL writer, ...) are
counted; redis-server only for the bench's port (its other databases cannot be told apart).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
TICK = os.sysconf("SC_CLK_TCK")
# a PostgreSQL backend's title: "postgres: [<cluster>: ]<user> <database> <host>(<port>) <state>"
BACKEND = re.compile(r"^postgres: (?:\S+: )?(\S+) (\S+) (\S+\(\d+\)|\[local\])")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    comm: str
    starttime: int  # clock ticks after boot: tells a reused pid from the original
    own: float  # utime + stime, seconds
    children: float  # cutime + cstime, seconds (reaped children)


def read_stat(pid: int) -> ProcStat | None:
    """/proc/<pid>/stat, or None when the process is gone."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    comm = raw[raw.index("(") + 1:raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2:].split()
    # fields[0] is state (field 3); utime is field 14 -> fields[11]
    return ProcStat(pid=pid, ppid=int(fields[1]), comm=comm, starttime=int(fields[19]),
                    own=(int(fields[11]) + int(fields[12])) / TICK,
                    children=(int(fields[13]) + int(fields[14])) / TICK)


def cmdline(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace").strip()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


def all_stats() -> list[ProcStat]:
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = read_stat(int(entry.name))
            if stat is not None:
                found.append(stat)
    return found


def tree(roots: Iterable[int], stats: list[ProcStat] | None = None) -> list[ProcStat]:
    """The root processes and all their living descendants."""
    stats = all_stats() if stats is None else stats
    by_parent: dict[int, list[ProcStat]] = {}
    by_pid = {s.pid: s for s in stats}
    for s in stats:
        by_parent.setdefault(s.ppid, []).append(s)
    found: list[ProcStat] = []
    todo = [by_pid[pid] for pid in roots if pid in by_pid]
    while todo:
        s = todo.pop()
        found.append(s)
        todo.extend(by_parent.get(s.pid, ()))
    return found


def postgres_processes(database: str, stats: list[ProcStat]) -> list[ProcStat]:
    """The server's shared processes and the backends of ``database`` (not other databases')."""
    chosen = []
    for s in stats:
        if s.comm != "postgres":
            continue
        command = cmdline(s.pid)
        title = BACKEND.match(command)
        if title is not None and title.group(2) != database:
            continue  # another database's backend
        if "autovacuum worker" in command and not command.endswith(f" {database}"):
            continue  # vacuuming another database
        chosen.append(s)
    return chosen


def redis_processes(port: int, stats: list[ProcStat]) -> list[ProcStat]:
    return [s for s in stats if s.comm.startswith("redis-server")
            and re.search(rf":{port}\b", cmdline(s.pid))]


def machine_busy() -> float:
    """Seconds of CPU the whole machine spent not idle (all cores), from /proc/stat."""
    first = (PROC / "stat").read_text().splitlines()[0].split()
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    return (user + nice + system + irq + softirq + steal) / TICK


@dataclass
class Snapshot:
    """CPU seconds at one moment: the stack's process tree, shared services, the machine."""

    tree: dict[tuple[int, int], tuple[str, float, float]] = field(default_factory=dict)
    services: dict[str, dict[tuple[int, int], float]] = field(default_factory=dict)
    machine: float = 0.0


@dataclass
class CpuMeter:
    """Snapshots a stack's processes (by ``label`` of each) and its shared services."""

    roots: Callable[[], list[int]]  # the stack's root pids (read at each snapshot)
    label: Callable[[str], str]  # a process's group, from its command line
    postgres_db: str | None = None
    redis_port: int | None = None

    def snapshot(self) -> Snapshot:
        stats = all_stats()
        snap = Snapshot(machine=machine_busy())
        for s in tree(self.roots(), stats):
            snap.tree[(s.pid, s.starttime)] = (self.label(cmdline(s.pid)), s.own, s.children)
        if self.postgres_db:
            snap.services["postgres"] = {(s.pid, s.starttime): s.own
                                         for s in postgres_processes(self.postgres_db, stats)}
        if self.redis_port:
            snap.services["redis"] = {(s.pid, s.starttime): s.own
                                      for s in redis_processes(self.redis_port, stats)}
        own = read_stat(os.getpid())
        if own is not None:
            snap.services["load generator"] = {(own.pid, own.starttime): own.own + own.children}
        return snap


EXITED = "exited during the level"


def spent(before: Snapshot, after: Snapshot) -> tuple[dict[str, float], float]:
    """CPU seconds per group between two snapshots, and the machine's.

    A stack process alive at both counts its difference under its label; one started in
    between counts all of its time. One that ended in between (a process the supervisor
    restarted) was reaped into its parent's children time: the growth of children time in the
    tree less what the ended processes had already used is the group ``EXITED``. A shared
    service's process that ended in between is lost (a PostgreSQL backend that disconnected:
    Kefu's pools keep theirs).
    """
    groups: dict[str, float] = {}
    exited = 0.0
    for key, (label, own, children) in after.tree.items():
        _, old_own, old_children = before.tree.get(key, (label, 0.0, 0.0))
        groups[label] = groups.get(label, 0.0) + own - old_own
        exited += children - old_children
    for key, (_label, own, children) in before.tree.items():
        if key not in after.tree:
            exited -= own + children
    if abs(exited) > 1e-9:
        groups[EXITED] = exited
    for name in set(before.services) | set(after.services):
        old, new = before.services.get(name, {}), after.services.get(name, {})
        groups[name] = sum(seconds - old.get(key, 0.0) for key, seconds in new.items())
    return groups, after.machine - before.machine
