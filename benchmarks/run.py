"""Bare SpiffWorkflow in memory against the platform's ``complete_task``, on SQLite and PostgreSQL.

    python -m benchmarks.run [--db sqlite|postgresql|both] [--quick] [--budget S] [--profile] [--out DIR]

Figures (docs/performance.md explains each):
  (a) one task completion: median and p95 over many records of a 2-task diagram; bare engine,
      platform, and a naive host that round-trips the library's full serialization every step;
  (b) a 300-step sequential diagram: time per step at steps 3, 150 and 300 and the total;
  (c) a parallel multi-instance user task over 1,000 items: start, per-item time at items
      3, 500 and 1,000, and the total.
The bare figures are measured once per run (they need no database) and shown in each table.
Each platform loop of (b) and (c) stops after ``--budget`` seconds (default 150) and says how far
it got: the platform's multi-instance run takes several minutes per database (see the docs).
Results go to ``<out>/latest-<db>.json`` (default out: a ``cellqms-bench`` folder in the temp dir).
Exit status: 0 when every requested database was measured (with ``--db both`` an unreachable
PostgreSQL is reported and skipped), 2 when the only requested database is unavailable.
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from . import bare
from .diagrams import item_answer, mi_items, step_answer, write_diagrams
from .hosted import DEFAULT_PG_URL, Budget, DatabaseUnavailable, Platform, scratch_database
from .measure import StepSeries, clock, combine, median, p95, ratio, sample_points, window

# repeats: bare runs of (b), reported as per-step medians.
FULL = {"records": 50, "warmup": 5, "steps": 300, "items": 1000, "repeats": 3}
QUICK = {"records": 10, "warmup": 2, "steps": 40, "items": 60, "repeats": 1}
DB_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def log(message: str) -> None:
    print(f"[bench {dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------- bare
def measure_bare(ds, sizes: dict) -> dict:
    """Everything that needs no database: bare engine and naive host, for (a), (b) and (c)."""
    two = bare.BareProcess(ds.path(ds.two_step), ds.two_step)
    seq = bare.BareProcess(ds.path(ds.sequence), ds.sequence)
    multi = bare.BareProcess(ds.path(ds.multi), ds.multi)
    n_steps, n_items = sizes["steps"], sizes["items"]
    out = {}

    log("bare (a): one completion")
    b, naive, size = bare.single(two, sizes["records"], sizes["warmup"], step_answer(1))
    out["a"] = {"bare": b, "naive": naive, "naive_state_bytes": size}

    log(f"bare (b): {n_steps}-step sequence")
    bare.series(seq, min(10, n_steps), step_answer)  # warm-up
    runs = []
    for _ in range(sizes["repeats"]):
        gc.collect()
        runs.append(bare.series(seq, n_steps, step_answer)[0])
    series = combine(runs)
    log(f"naive host (b): {n_steps} full serialization round trips")
    gc.collect()
    naive_times, naive_sizes = bare.naive_series(seq, n_steps, step_answer)
    out["b"] = {"bare": series, "naive": naive_times, "naive_sizes": naive_sizes}

    log(f"bare (c): multi-instance of {n_items}")
    gc.collect()
    items = mi_items(n_items)
    series, started, wf = bare.series(multi, n_items, item_answer, {"items": items})
    assert wf.is_completed(), "the bare multi-instance run did not finish"
    points = sample_points(n_items)
    only = {s for p in points for s in window(p, n_items)}
    log("naive host (c): full round trips in the windows around the sample items")
    gc.collect()
    naive_times, naive_sizes = bare.naive_series(multi, n_items, item_answer, {"items": items}, only=only)
    out["c"] = {"bare": series, "start_s": started, "naive": naive_times, "naive_sizes": naive_sizes}
    return out


def _sparse_at(times: dict[int, float], step: int, n: int) -> float | None:
    values = [times[i] for i in window(step, n) if i in times]
    return median(values) if len(values) == len(window(step, n)) else None


# ---------------------------------------------------------------------------------------- platform
def measure_platform(db, ds, sizes: dict, budget: Budget, profile: bool) -> dict:
    name = DB_NAMES[db.kind]
    load_before = os.getloadavg()
    plat = Platform(db, ds)
    try:
        out = {"migrate_s": plat.migrate_s, "load_diagrams_s": plat.load_s}
        log(f"{name} (a): {sizes['records']} records of the 2-task diagram")
        gc.collect()
        first, last = plat.single(sizes["records"], sizes["warmup"])
        out["a"] = {"first": first, "closing": last}

        n_steps = sizes["steps"]
        log(f"{name} (b): {n_steps}-step sequence through complete_task")
        gc.collect()
        t0 = clock()
        series, paired, reloads = plat.sequence(n_steps, sample_points(n_steps), budget)
        log(f"{name} (b): {series.done}/{n_steps} steps in {clock() - t0:.1f} s (with the side-by-side windows)")
        out["b"] = {"platform": series, "reloads": reloads, "paired": paired}

        n_items = sizes["items"]
        log(f"{name} (c): multi-instance of {n_items} through complete_task"
            + (f" (budget {budget.seconds:.0f} s)" if budget.seconds > 0 else ""))
        gc.collect()
        t0 = clock()
        series, extra = plat.multi(n_items, sample_points(n_items), budget)
        log(f"{name} (c): {series.done}/{n_items} items in {clock() - t0:.1f} s")
        out["c"] = {"platform": series, **extra}

        out["load_average"] = {"before": load_before, "after": os.getloadavg()}
        if profile:
            out["profile"] = {}
            for which in ("sequence", "multi"):
                log(f"{name}: profiling 20 platform steps of the {which} diagram")
                out["profile"][which] = plat.profile(which, n=n_items)
            log(f"{name}: counting function calls per step around steps {sample_points(n_steps)}")
            out["profile"]["growth"] = plat.growth_profile(n_steps, sample_points(n_steps))
        return out
    finally:
        plat.close()


# ---------------------------------------------------------------------------------------- report
def fmt_s(x: float | None) -> str:
    if x is None:
        return "-"
    if x < 1e-3:
        return f"{x * 1e6:.0f} us"
    if x < 0.01:
        return f"{x * 1e3:.2f} ms"
    if x < 1:
        return f"{x * 1e3:.1f} ms"
    return f"{x:.2f} s"


def fmt_x(x: float | None) -> str:
    return "-" if x is None else (f"{x:.2f}x" if x < 10 else f"{x:.1f}x" if x < 100 else f"{x:.0f}x")


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1024:.0f} kB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"


def build_result(db, bare_res: dict, plat: dict, sizes: dict, meta: dict) -> tuple[dict, list[tuple]]:
    """The JSON result and the table rows (label, platform, bare, naive) for one database."""
    rows: list[tuple] = []

    def row(label, p=None, b=None, nv=None, kind="time"):
        rows.append((label, p, b, nv, kind))

    # (a)
    a_b, a_n = bare_res["a"]["bare"], bare_res["a"]["naive"]
    a_p, a_close = plat["a"]["first"], plat["a"]["closing"]
    n_rec = len(a_p)
    row(f"(a) one completion, median of {n_rec} records", median(a_p), median(a_b), median(a_n))
    row("(a) one completion, p95", p95(a_p), p95(a_b), p95(a_n))
    row("(a) completion that closes the record, median", median(a_close), None, None)
    a = {"records": n_rec,
         "platform": {"median_s": median(a_p), "p95_s": p95(a_p), "times_s": a_p},
         "platform_closing": {"median_s": median(a_close), "p95_s": p95(a_close), "times_s": a_close},
         "bare": {"median_s": median(a_b), "p95_s": p95(a_b), "times_s": a_b},
         "naive": {"median_s": median(a_n), "p95_s": p95(a_n), "times_s": a_n,
                   "state_bytes": bare_res["a"]["naive_state_bytes"]}}

    # (b)
    n = sizes["steps"]
    pts = sample_points(n)
    b_p: StepSeries = plat["b"]["platform"]
    b_b: StepSeries = bare_res["b"]["bare"]
    b_n: dict = bare_res["b"]["naive"]
    paired = plat["b"]["paired"]

    def b_at(step, cpu=False):  # side-by-side windows; the main record's own window if those are missing
        values = paired["cpu" if cpu else "wall"].get(step) or []
        return median(values) if len(values) >= len(window(step, n)) else b_p.at(step, cpu=cpu)

    for s in pts:
        w = window(s, n)
        row(f"(b) step {s} (median of steps {w[0]}-{w[-1]})", b_at(s), b_b.at(s), _sparse_at(b_n, s, n))
    naive_total = sum(b_n.values()) if len(b_n) == n else None
    row(f"(b) total, {n} steps", b_p.total, b_b.total, naive_total)
    growth_p = ratio(b_at(pts[-1]), b_at(pts[0]))
    growth_b = ratio(b_b.at(pts[-1]), b_b.at(pts[0]))
    growth_n = ratio(_sparse_at(b_n, pts[-1], n), _sparse_at(b_n, pts[0], n))
    row(f"(b) growth step {pts[-1]} / step {pts[0]}", growth_p, growth_b, growth_n, kind="growth")
    seq_growth = ratio(b_p.at(pts[-1]), b_p.at(pts[0]))
    cpu_growth_b = ratio(b_at(pts[-1], cpu=True), b_at(pts[0], cpu=True))
    bare_cpu_growth_b = ratio(b_b.at(pts[-1], cpu=True), b_b.at(pts[0], cpu=True))
    row("(b) same growth in CPU time of this process", cpu_growth_b, bare_cpu_growth_b, None, kind="growth")
    for s in pts:
        rl = plat["b"]["reloads"].get(str(s))
        if rl:
            row(f"(b) cache-miss reload before step {s} ({rl['engine_task_rows']} rows, "
                f"{fmt_bytes(rl['engine_state_bytes'])})", rl["seconds"], None, None)
    if b_p.stopped_by_budget:
        row(f"(b) stopped by the time budget after {b_p.done}/{n} steps: {sum(b_p.times):.1f} s",
            None, None, None, kind="note")
    b = {"steps": n, "points": pts,
         "platform": {**b_p.summary(pts), "reloads": plat["b"]["reloads"],
                      "interleaved": {"at": {str(s): b_at(s) for s in pts},
                                      "cpu_at": {str(s): b_at(s, cpu=True) for s in pts},
                                      "samples_s": {str(k): v for k, v in paired["wall"].items()},
                                      "cpu_samples_s": {str(k): v for k, v in paired["cpu"].items()}}},
         "bare": b_b.summary(pts),
         "naive": {"total_s": naive_total, "at": {str(s): _sparse_at(b_n, s, n) for s in pts},
                   "state_bytes": {str(s): bare_res["b"]["naive_sizes"].get(s) for s in pts},
                   "times_s": [b_n[i] for i in sorted(b_n)]},
         "growth": {"platform": growth_p, "platform_cpu": cpu_growth_b, "platform_main_record_only": seq_growth,
                    "bare": growth_b, "bare_cpu": bare_cpu_growth_b, "naive": growth_n}}

    # (c)
    n = sizes["items"]
    pts = sample_points(n)
    c_p: StepSeries = plat["c"]["platform"]
    c_b: StepSeries = bare_res["c"]["bare"]
    c_n: dict = bare_res["c"]["naive"]
    row(f"(c) start: expand {n} instances", plat["c"]["start_s"], bare_res["c"]["start_s"], None)
    for s in pts:
        w = window(s, n)
        row(f"(c) item {s} (median of items {w[0]}-{w[-1]})", c_p.at(s), c_b.at(s), _sparse_at(c_n, s, n))
    row(f"(c) total, {n} items", c_p.total, c_b.total, None)
    growth_p = ratio(c_p.at(pts[-1]), c_p.at(pts[0]))
    growth_b = ratio(c_b.at(pts[-1]), c_b.at(pts[0]))
    growth_n = ratio(_sparse_at(c_n, pts[-1], n), _sparse_at(c_n, pts[0], n))
    row(f"(c) growth item {pts[-1]} / item {pts[0]}", growth_p, growth_b, growth_n, kind="growth")
    cpu_growth_c = ratio(c_p.at(pts[-1], cpu=True), c_p.at(pts[0], cpu=True))
    bare_cpu_growth_c = ratio(c_b.at(pts[-1], cpu=True), c_b.at(pts[0], cpu=True))
    row("(c) same growth in CPU time of this process", cpu_growth_c, bare_cpu_growth_c, None, kind="growth")
    row(f"(c) inbox (open_tasks) with {plat['c']['inbox_tasks']} open tasks", plat["c"]["inbox_s"], None, None)
    for s in pts:
        rl = plat["c"]["reloads"].get(str(s))
        if rl:
            row(f"(c) cache-miss reload before item {s} ({rl['engine_task_rows']} rows, "
                f"{fmt_bytes(rl['engine_state_bytes'])})", rl["seconds"], None, None)
    estimate = None
    if c_p.stopped_by_budget:
        estimate = _extrapolate(c_p)
        row(f"(c) stopped by the time budget after {c_p.done}/{n} items: {sum(c_p.times):.1f} s; "
            f"at that median per item all {n} would take ~{fmt_s(estimate)} (rough upper bound)", None, None, None,
            kind="note")
    c = {"items": n, "points": pts,
         "platform": {**c_p.summary(pts), "start_s": plat["c"]["start_s"], "inbox_s": plat["c"]["inbox_s"],
                      "inbox_tasks": plat["c"]["inbox_tasks"], "reloads": plat["c"]["reloads"],
                      "rough_upper_bound_total_s": estimate},
         "bare": {**c_b.summary(pts), "start_s": bare_res["c"]["start_s"]},
         "naive": {"at": {str(s): _sparse_at(c_n, s, n) for s in pts},
                   "state_bytes": {str(s): bare_res["c"]["naive_sizes"].get(window(s, n)[0]) for s in pts}},
         "growth": {"platform": growth_p, "platform_cpu": cpu_growth_c, "bare": growth_b, "bare_cpu": bare_cpu_growth_c,
                    "naive": growth_n}}

    result = {"meta": meta, "database": {"kind": db.kind, "where": db.description,
                                         "migrate_s": plat["migrate_s"], "load_diagrams_s": plat["load_diagrams_s"],
                                         "load_average": plat["load_average"]},
              "a": a, "b": b, "c": c}
    if "profile" in plat:
        result["profile"] = plat["profile"]
    return result, rows


def _extrapolate(series: StepSeries) -> float | None:
    """The planned count times the median per-item time so far: a rough upper bound, since the
    platform's per-item cost falls as instances close (fewer open tasks to load)."""
    if series.done < 5:
        return None
    return series.planned * median(series.times)


def render(db, rows: list[tuple], meta: dict, load: dict) -> str:
    head = ("figure", "platform", "bare", "platform/bare", "naive host", "naive/bare")
    body = []
    for label, p, b, nv, kind in rows:
        if kind == "note":
            body.append((label,))
        elif kind == "growth":
            body.append((label, fmt_x(p), fmt_x(b), "", fmt_x(nv), ""))
        else:
            body.append((label, fmt_s(p), fmt_s(b), fmt_x(ratio(p, b)), fmt_s(nv), fmt_x(ratio(nv, b))))
    widths = [max(len(head[i]), *(len(r[i]) for r in body if len(r) > 1)) for i in range(len(head))]

    def line(cells):
        first = cells[0].ljust(widths[0])
        return "  ".join([first] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]).rstrip()

    title = (f"cellqms benchmark: {DB_NAMES[db.kind]} ({db.description})\n"
             f"Python {meta['python']}, SpiffWorkflow {meta['spiffworkflow']}, SQLAlchemy {meta['sqlalchemy']}, "
             f"{meta['cpus']} CPUs, {'quick' if meta['quick'] else 'full'} run, commit {meta['commit'][:10]}, "
             f"1-min load average {load['before'][0]:.1f} before / {load['after'][0]:.1f} after")
    rule = "-" * len(line(head))
    out = [title, rule, line(head), rule]
    for r in body:
        out.append(f"  {r[0]}" if len(r) == 1 else line(r))
    out.append(rule)
    out.append("bare = SpiffWorkflow in memory; naive host = bare + deserialize/serialize the full state "
               "(spec included) every step, no database; platform = Runtime.complete_task, one transaction.\n"
               "(b) platform steps: windows of records taking turns (load drift cancels); total: one record "
               f"run straight through. Bare (b): per-step medians of {meta['sizes']['repeats']} run(s).")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------- main
def _meta(args, sizes) -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "spiffworkflow": metadata.version("SpiffWorkflow"),
        "sqlalchemy": metadata.version("SQLAlchemy"),
        "machine": f"{platform.system()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "commit": commit or "unknown",
        "quick": args.quick,
        "sizes": sizes,
        "budget_s": args.budget,
    }


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke check in well under 30 s")
    ap.add_argument("--out", type=Path, default=None,
                    help="folder for latest-<db>.json (default: cellqms-bench in the temp folder)")
    ap.add_argument("--pg-url", default=os.environ.get("CELLQMS_BENCH_PG_URL", DEFAULT_PG_URL),
                    help="any database on the PostgreSQL server to use; a scratch database is created beside it")
    ap.add_argument("--budget", type=float, default=float(os.environ.get("CELLQMS_BENCH_BUDGET", 150)),
                    help="seconds each platform loop of (b) and (c) may run per database before it stops "
                         "and reports how far it got (0 = no limit; default %(default)s)")
    ap.add_argument("--profile", action="store_true",
                    help="also cProfile 20 platform steps of (b) and (c) per database (top 15 cumulative) "
                         "and count function calls per step around the sample steps of (b)")
    ap.add_argument("--steps", type=int, help="override the number of steps of (b)")
    ap.add_argument("--items", type=int, help="override the number of items of (c)")
    ap.add_argument("--records", type=int, help="override the number of records of (a)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    for key in ("steps", "items", "records"):
        if getattr(args, key):
            sizes[key] = max(10, getattr(args, key))
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    out_dir = args.out or Path(tempfile.gettempdir()) / "cellqms-bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = _meta(args, sizes)
    started = clock()
    workdir = Path(tempfile.mkdtemp(prefix="cellqms-bench-"))
    measured, skipped = [], []
    try:
        ds = write_diagrams(workdir, sizes["steps"], sizes["items"])
        log(f"diagrams and forms written to {workdir}")
        bare_res = measure_bare(ds, sizes)
        for kind in dbs:
            try:
                with scratch_database(kind, workdir, args.pg_url) as db:
                    log(f"{DB_NAMES[kind]}: {db.description}")
                    plat = measure_platform(db, ds, sizes, Budget(args.budget), args.profile)
                    result, rows = build_result(db, bare_res, plat, sizes, meta)
                    print()
                    print(render(db, rows, meta, plat["load_average"]))
                    for which, text in result.get("profile", {}).items():
                        title = ("what grows along the sequence" if which == "growth"
                                 else f"{which} (top 15 by cumulative time)")
                        print(f"\ncProfile, {DB_NAMES[kind]}, {title}:\n{text}")
                    path = out_dir / f"latest-{kind}.json"
                    path.write_text(json.dumps(result, indent=1), encoding="utf-8")
                    print(f"results: {path}", flush=True)
                    measured.append(kind)
            except DatabaseUnavailable as exc:
                log(f"skipped {DB_NAMES[kind]}: {exc}")
                skipped.append(kind)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    log(f"done in {clock() - started:.0f} s; measured: {', '.join(measured) or 'nothing'}"
        + (f"; skipped: {', '.join(skipped)}" if skipped else ""))
    return 0 if measured else 2


if __name__ == "__main__":
    sys.exit(main())
