"""Small timing and statistics helpers shared by the bare and platform runs."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

clock = time.perf_counter
cpu_clock = time.process_time  # CPU time of this process: less sensitive than wall time to other load


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def p95(values: list[float]) -> float | None:
    """The 95th percentile by the nearest-rank method (no interpolation on small samples)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-95 * len(ordered) // 100))  # ceil(0.95 n)
    return ordered[rank - 1]


def window(at: int, n: int, width: int = 5) -> range:
    """1-based step numbers of a window of ``width`` steps around step ``at``, kept inside 1..n."""
    width = min(width, n)
    start = min(max(1, at - width // 2), n - width + 1)
    return range(start, start + width)


def sample_points(n: int) -> list[int]:
    """Where per-step figures are reported: the 3rd step, the middle one and the last one."""
    return [3, max(4, n // 2), n]


@dataclass
class StepSeries:
    """Seconds per step, indexed from 1; steps not run (budget) are simply absent."""

    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # process CPU seconds per step, where measured
    planned: int = 0
    stopped_by_budget: bool = False

    @property
    def done(self) -> int:
        return len(self.times)

    def at(self, step: int, width: int = 5, cpu: bool = False) -> float | None:
        """Median of the window around ``step``, or None if that window was not (fully) reached."""
        values = self.cpu if cpu else self.times
        steps = window(step, self.planned, width)
        if steps[-1] > len(values):
            return None
        return median([values[i - 1] for i in steps])

    @property
    def total(self) -> float | None:
        return sum(self.times) if self.done == self.planned else None

    def summary(self, points: list[int]) -> dict:
        return {
            "planned": self.planned,
            "done": self.done,
            "stopped_by_budget": self.stopped_by_budget,
            "total_s": self.total,
            "sum_done_s": sum(self.times),
            "at": {str(p): self.at(p) for p in points},
            "cpu_at": {str(p): self.at(p, cpu=True) for p in points},
            "times_s": self.times,
            "cpu_s": self.cpu,
        }


def combine(runs: list[StepSeries]) -> StepSeries:
    """Several runs of the same steps as one series: the median time of each step over the runs.

    Only the runs that got furthest are used (a run cut short by the time budget is dropped when
    another one got further); the total is then the sum of the per-step medians.
    """
    furthest = max(r.done for r in runs)
    runs = [r for r in runs if r.done == furthest]
    if len(runs) == 1:
        return runs[0]
    done = furthest
    out = StepSeries(planned=runs[0].planned, stopped_by_budget=any(r.stopped_by_budget for r in runs))
    out.times = [statistics.median(r.times[i] for r in runs) for i in range(done)]
    if all(len(r.cpu) >= done for r in runs):
        out.cpu = [statistics.median(r.cpu[i] for r in runs) for i in range(done)]
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b
