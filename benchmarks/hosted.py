"""The platform side: a scratch database, a Runtime on it, and the same steps through ``complete_task``.

Only ``Runtime.complete_task`` is timed for a step. Finding the next task's id (one indexed
query on the record's open tasks) happens outside the timer, as the user would have picked the
task from the inbox before submitting it; the inbox itself is timed separately in figure (c).
"""
from __future__ import annotations

import contextlib
import cProfile
import io
import pstats
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Text, cast, create_engine, event, func, select, text
from sqlalchemy.engine import make_url

from engine import state as engine_state
from engine.runtime import Runtime
from engine.settings import Settings
from models import EngineTask, Record, Task, TaskStatus
from models.migrate import upgrade

from .diagrams import ROLE, DiagramSet, item_answer, mi_items, step_answer
from .measure import StepSeries, clock, cpu_clock, median, window

PASSWORD = "Bench-horse-9-staple"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


# ---------------------------------------------------------------------------------------- databases
@dataclass
class ScratchDatabase:
    kind: str          # "sqlite" or "postgresql"
    url: str
    description: str   # for the report: file path or server and database name


class DatabaseUnavailable(RuntimeError):
    pass


def _psycopg_url(url):
    return url.set(drivername="postgresql+psycopg") if url.drivername == "postgresql" else url


@contextlib.contextmanager
def scratch_database(kind: str, workdir: Path, pg_url: str = DEFAULT_PG_URL) -> Iterator[ScratchDatabase]:
    """A new, empty database for one benchmark run, removed afterwards."""
    if kind == "sqlite":
        path = workdir / f"bench-{uuid.uuid4().hex[:8]}.sqlite"
        try:
            yield ScratchDatabase("sqlite", f"sqlite:///{path}", f"SQLite file {path}")
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    base = make_url(pg_url)
    admin = None
    problems = []
    users = [base.username or "postgres"] + [u for u in ("postgres", "root") if u != (base.username or "postgres")]
    for user in users:
        candidate = base.set(username=user)
        engine = create_engine(_psycopg_url(candidate), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                version = conn.execute(text("SHOW server_version")).scalar()
            admin, base = engine, candidate
            break
        except Exception as exc:  # the driver raises several types; any means "not this user"
            problems.append(f"{user}: {str(exc).splitlines()[0]}")
            engine.dispose()
    if admin is None:
        raise DatabaseUnavailable("PostgreSQL is not reachable at "
                                  f"{base.render_as_string(hide_password=True)} ({'; '.join(problems)})")
    name = f"cellqms_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    try:
        yield ScratchDatabase("postgresql", url, f"PostgreSQL {version} on {base.host}:{base.port or 5432}, "
                                                 f"scratch database {name} (user {base.username})")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# ---------------------------------------------------------------------------------------- runs
@dataclass
class Budget:
    """Wall-clock seconds a platform loop may use; 0 or less means no limit."""

    seconds: float

    def start(self) -> Callable[[], bool]:
        if self.seconds <= 0:
            return lambda: False
        deadline = clock() + self.seconds
        return lambda: clock() > deadline


class Platform:
    """A migrated scratch database with the benchmark diagrams loaded and one user holding the lane's role."""

    def __init__(self, db: ScratchDatabase, diagrams: DiagramSet):
        self.diagrams = diagrams
        t0 = clock()
        upgrade(db.url)
        self.migrate_s = clock() - t0
        self.rt = Runtime(Settings(database_url=db.url, processes_dir=diagrams.processes_dir,
                                   forms_dir=diagrams.forms_dir))
        t0 = clock()
        self.rt.load_processes(directory=diagrams.processes_dir)
        self.load_s = clock() - t0
        self.user = self.rt.add_user(None, "bench", "Benchmark User", PASSWORD, [ROLE])
        self.last_cpu = 0.0

    def close(self) -> None:
        self.rt.db.dispose()

    # -------------------------------------------------------------- helpers
    def open_task_ids(self, record_id: str) -> list[str]:
        with self.rt.db.sessionmaker() as session:
            return list(session.scalars(select(Task.id).where(Task.record_id == record_id,
                                                              Task.status == TaskStatus.OPEN)
                                        .order_by(Task.created_at, Task.id)))

    def complete(self, task_id: str, values: dict) -> float:
        """Complete a task; return the wall time. The process CPU time of the call is left in ``last_cpu``."""
        c0 = cpu_clock()
        t0 = clock()
        self.rt.complete_task(task_id, self.user, values)
        elapsed = clock() - t0
        self.last_cpu = cpu_clock() - c0
        return elapsed

    def reload(self, record_id: str, repeat: int = 3) -> dict:
        """What a cache miss costs (another worker wrote, or a restart): rebuild the workflow from its rows."""
        times = []
        with self.rt.db.sessionmaker() as session:
            record = session.get(Record, record_id)
            info = self.rt.spec_info(record.process_version)
            rows, size = session.execute(
                select(func.count(), func.sum(func.length(cast(EngineTask.state, Text))))
                .where(EngineTask.record_id == record_id)).one()
            for _ in range(repeat):
                t0 = clock()
                engine_state.load(session, record, info.spec, info.subprocess_specs, self.rt.script_engine)
                times.append(clock() - t0)
        return {"seconds": median(times), "engine_task_rows": rows, "engine_state_bytes": int(size or 0)}

    # -------------------------------------------------------------- figure (a)
    def single(self, records: int, warmup: int) -> tuple[list[float], list[float]]:
        """First and last task of many 2-task records; returns (first completions, closing completions)."""
        first, last = [], []
        for r in range(warmup + records):
            record = self.rt.start_record(self.user, self.diagrams.two_step, {"title": f"bench {r}"})
            (task_id,) = self.open_task_ids(record.id)
            t1 = self.complete(task_id, step_answer(1))
            (task_id,) = self.open_task_ids(record.id)
            t2 = self.complete(task_id, step_answer(2))
            if r >= warmup:
                first.append(t1)
                last.append(t2)
        return first, last

    # -------------------------------------------------------------- figure (b)
    def sequence(self, n: int, points: list[int], budget: Budget) -> tuple[StepSeries, dict, dict]:
        """One record of the ``n``-step diagram run to the end, every step timed (the total).

        The per-step figures come from windows of 5 steps around each point, measured side by side
        in time: when the main record reaches the window of the last point, one extra record per
        other point is brought (untimed) to just before its window, and then the records take
        turns: step 296 of the main record, step 1 of the second, step 148 of the third, step 297
        of the main one, ... On a shared machine the load drifts during a long run; taking turns
        exposes every window to the same load, so the growth ratio is not an artefact of it.
        Returns the main record's steps, the windows' samples by point, and cache-miss reload costs.
        """
        # A short warm-up record so the measured ones do not pay first-use costs (form compile, spec cache).
        warm = self.rt.start_record(self.user, self.diagrams.sequence, {"title": "warm-up"})
        for i in range(1, 3):
            self.complete(self.open_task_ids(warm.id)[0], step_answer(i))
        main = self.rt.start_record(self.user, self.diagrams.sequence, {"title": "sequence"})
        out = StepSeries(planned=n)
        reloads: dict = {}
        samples: dict[int, list[float]] = {p: [] for p in points}
        cpu: dict[int, list[float]] = {p: [] for p in points}
        over = budget.start()
        last = window(points[-1], n)

        def main_step(i: int) -> float:
            (task_id,) = self.open_task_ids(main.id)
            if i in points:
                reloads[str(i)] = self.reload(main.id)
            elapsed = self.complete(task_id, step_answer(i))
            out.times.append(elapsed)
            out.cpu.append(self.last_cpu)
            return elapsed

        for i in range(1, last[0]):
            if over():
                out.stopped_by_budget = True
                return out, {"wall": samples, "cpu": cpu}, reloads
            main_step(i)
        others = []
        for p in points[:-1]:
            steps = window(p, n)
            record = self.rt.start_record(self.user, self.diagrams.sequence, {"title": f"window {p}"})
            for i in range(1, steps[0]):
                self.complete(self.open_task_ids(record.id)[0], step_answer(i))
            others.append((p, record, steps))
        for j, i in enumerate(last):
            samples[points[-1]].append(main_step(i))
            cpu[points[-1]].append(self.last_cpu)
            for p, record, steps in others:
                (task_id,) = self.open_task_ids(record.id)
                samples[p].append(self.complete(task_id, step_answer(steps[j])))
                cpu[p].append(self.last_cpu)
        return out, {"wall": samples, "cpu": cpu}, reloads

    # -------------------------------------------------------------- figure (c)
    def multi(self, n: int, points: list[int], budget: Budget) -> tuple[StepSeries, dict]:
        items = mi_items(n)
        t0 = clock()
        record = self.rt.start_record(self.user, self.diagrams.multi, {"title": "multi-instance", "items": items})
        started = clock() - t0
        ids = self.open_task_ids(record.id)
        assert len(ids) == n, f"expected {n} open instances, found {len(ids)}"
        with self.rt.db.sessionmaker() as session:
            t0 = clock()
            inbox = self.rt.open_tasks(session, self.user)
            inbox_s = clock() - t0
        extra = {"start_s": started, "inbox_s": inbox_s, "inbox_tasks": len(inbox), "reloads": {}}
        out = StepSeries(planned=n)
        over = budget.start()
        for i, task_id in enumerate(ids, start=1):
            if over():
                out.stopped_by_budget = True
                break
            if i in points:
                extra["reloads"][str(i)] = self.reload(record.id)
            out.times.append(self.complete(task_id, item_answer(i)))
            out.cpu.append(self.last_cpu)
        return out, extra

    # -------------------------------------------------------------- profile
    def profile(self, which: str, steps: int = 20, skip: int = 3, n: int | None = None, top: int = 15) -> str:
        """cProfile ``steps`` completions (after ``skip`` unprofiled ones) of a fresh record; top entries."""
        if which == "multi":
            record = self.rt.start_record(self.user, self.diagrams.multi, {"items": mi_items(n)})
            ids = self.open_task_ids(record.id)
            answers = item_answer

            def next_id(i):
                return ids[i - 1]
        else:
            record = self.rt.start_record(self.user, self.diagrams.sequence, {})
            answers = step_answer

            def next_id(i):
                return self.open_task_ids(record.id)[0]
        for i in range(1, skip + 1):
            self.complete(next_id(i), answers(i))
        prof = cProfile.Profile()
        total = 0.0
        statements = [0]

        def count(*_args):
            statements[0] += 1

        event.listen(self.rt.db.engine, "before_cursor_execute", count)
        try:
            for i in range(skip + 1, skip + steps + 1):
                task_id = next_id(i)
                prof.enable()
                total += self.complete(task_id, answers(i))
                prof.disable()
        finally:
            event.remove(self.rt.db.engine, "before_cursor_execute", count)
        buf = io.StringIO()
        stats = pstats.Stats(prof, stream=buf)
        stats.sort_stats("cumulative").print_stats(top)
        head = (f"{which}: steps {skip + 1}-{skip + steps} profiled, {total:.2f} s under the profiler "
                f"({total / steps * 1000:.1f} ms per step), {statements[0] / steps:.1f} SQL statements per step\n"
                f"own time by component: {_components(stats)}\n")
        return head + _trim_profile(buf.getvalue())


    def growth_profile(self, n: int, points: list[int], top: int = 12) -> str:
        """Where per-step work grows with history: Python function calls per step in each window
        (a count, so machine load does not blur it) and the functions whose calls grow most."""
        record = self.rt.start_record(self.user, self.diagrams.sequence, {"title": "growth profile"})
        windows = {p: set(window(p, n)) for p in points}
        per_point: dict[int, dict] = {p: {} for p in points}
        calls: dict[int, int] = dict.fromkeys(points, 0)
        for i in range(1, n + 1):
            (task_id,) = self.open_task_ids(record.id)
            here = [p for p in points if i in windows[p]]
            if not here:
                self.complete(task_id, step_answer(i))
                continue
            prof = cProfile.Profile()
            prof.enable()
            self.rt.complete_task(task_id, self.user, step_answer(i))
            prof.disable()
            stats = pstats.Stats(prof)
            for p in here:
                calls[p] += stats.total_calls
                for key, (_cc, nc, _tt, ct, _callers) in stats.stats.items():
                    old = per_point[p].get(key, (0, 0.0))
                    per_point[p][key] = (old[0] + nc, old[1] + ct)
        first, last = points[0], points[-1]
        size = {p: len(windows[p]) for p in points}
        lines = ["Python function calls per completion (a count, so machine load does not blur it; windows of "
                 f"{size[first]} steps): " + ", ".join(f"step {p}: {calls[p] / size[p]:,.0f}" for p in points)]
        grows = []
        for key in set(per_point[first]) | set(per_point[last]):
            if key[0] == "~":  # built-ins: their callers below say more
                continue
            n0, t0 = per_point[first].get(key, (0, 0.0))
            n1, t1 = per_point[last].get(key, (0, 0.0))
            grows.append(((n1 / size[last]) - (n0 / size[first]), (t1 / size[last]) - (t0 / size[first]), key))
        grows.sort(key=lambda g: -g[0])
        lines.append(f"Python functions with the most extra calls per step at step {last} than at step {first} "
                     "(extra calls, extra cumulative ms under the profiler, function):")
        for extra_calls, extra_time, (filename, line, name) in grows[:top]:
            where = f"{_shorten(filename, _marker(filename))}:{line}"
            lines.append(f"  {extra_calls:+8.0f}  {extra_time * 1000:+7.2f} ms  {where}({name})")
        return "\n".join(lines)


def _marker(filename: str) -> str:
    return next((m for m in ("site-packages/", "/work/main/", "/lib/python3.11/") if m in filename), "")


_COMPONENTS = (  # (bucket, substrings of the file name or, for built-ins, of the function name)
    ("SpiffWorkflow", ("SpiffWorkflow",)),
    ("SQLAlchemy", ("sqlalchemy",)),
    ("DB driver", ("psycopg", "sqlite3", "_sqlite")),
    ("json", ("/json/", "_json")),
    ("jsonschema", ("jsonschema", "referencing")),
    ("cellqms", ("/engine/", "/models/", "/forms/", "/signatures/")),
)


def _components(stats: pstats.Stats) -> str:
    """Own (not cumulative) profiled time summed by library, largest first, as percentages."""
    sums: dict[str, float] = {}
    grand = 0.0
    for (filename, _line, name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():
        where = filename if filename != "~" else name
        bucket = next((b for b, keys in _COMPONENTS if any(k in where for k in keys)), "other")
        sums[bucket] = sums.get(bucket, 0.0) + tottime
        grand += tottime
    parts = sorted(sums.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{name} {100 * t / grand:.0f}%" for name, t in parts if grand)


def _trim_profile(report: str) -> str:
    """Keep the table of a pstats report, with long paths shortened."""
    out = []
    for line in report.splitlines():
        if not line.strip() or line.strip().startswith(("Ordered by", "List reduced")):
            continue
        for marker in ("site-packages/", "/work/main/", "/lib/python3.11/"):
            if marker in line:
                line = _shorten(line, marker)
                break
        out.append(line)
    return "\n".join(out)


def _shorten(line: str, marker: str) -> str:
    if not marker:
        return line
    idx = line.find(marker)
    start = line.rfind(" ", 0, idx) + 1
    return line[:start] + line[idx + len(marker):]
