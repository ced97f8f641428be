"""What a person sees: a live panel on a terminal, plain lines otherwise, and a final table."""

from __future__ import annotations

import time
from collections import deque
from typing import IO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .runner import RunResult, Snapshot, objective_value
from .state import TrialRow


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h:d}:{m:02d}:{s:02d}"


def status_line(snap: Snapshot) -> str:
    """One line: trials done / running / failed, best so far, elapsed."""
    total = "?" if snap.max_trials is None else str(snap.max_trials)
    best = (
        "-"
        if snap.best is None or snap.best_value is None
        else f"{snap.metric}={snap.best.metrics[snap.metric]} ({snap.best.name})"
    )
    mix = "".join(f"  {k} {v:.0%}" for k, v in snap.mix.items())
    return (
        f"{snap.experiment} [{snap.algorithm}]  done {snap.done}/{total}  "
        f"running {snap.running}  failed {snap.failed}  best {best}  "
        f"elapsed {_clock(snap.elapsed)}" + (f"  mix:{mix}" if mix else "")
    )


def rung_line(snap: Snapshot) -> str | None:
    """ASHA's rungs in one line, or None without ASHA: per rung its budget and how many
    configurations completed (done), are running or queued (run), failed, and of the completed
    ones how many went up a rung, e.g.
    ``rungs  epochs=1: 18 done 2 run (6 up) | 3: 6 done 1 run (2 up) | 9: 2 done | 27: 0``."""
    if snap.resource is None or not snap.rungs:
        return None
    parts = []
    for r in snap.rungs:
        counts = [
            f"{n} {what}"
            for n, what in ((r.completed, "done"), (r.pending, "run"), (r.failed, "failed"))
            if n
        ]
        if r.promoted:
            counts.append(f"({r.promoted} up)")
        budget = f"{snap.resource}={r.label}" if r.rung == 0 else r.label
        parts.append(f"{budget}: {' '.join(counts) or '0'}")
    return "rungs  " + " | ".join(parts)


class PlainReporter:
    """Plain lines for logs and CI: every trial event, and a status line every ``every``
    seconds at most."""

    def __init__(self, stream: IO[str], *, every: float = 30.0) -> None:
        self.stream = stream
        self.every = every
        self._last = time.monotonic()
        self._snap: Snapshot | None = None

    def event(self, message: str) -> None:
        self.stream.write(message + "\n")
        self.stream.flush()

    def progress(self, snapshot: Snapshot) -> None:
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self.event(status_line(snapshot))
            rungs = rung_line(snapshot)
            if rungs is not None:
                self.event(rungs)
        self._snap = snapshot

    def close(self) -> None:
        pass


class LiveReporter:
    """A rich Live panel: the status line, a bar of trials, and the latest events."""

    def __init__(self, console: Console, *, recent: int = 8) -> None:
        self.console = console
        self._events: deque[str] = deque(maxlen=recent)
        self._snap: Snapshot | None = None
        self._live = Live(
            console=console, refresh_per_second=4, get_renderable=self._render, transient=False
        )
        self._live.start()

    def event(self, message: str) -> None:
        self._events.append(f"{time.strftime('%H:%M:%S')} {message}")

    def progress(self, snapshot: Snapshot) -> None:
        self._snap = snapshot

    def _render(self) -> Group:
        parts: list[Text | Table] = []
        snap = self._snap
        if snap is not None:
            parts.append(Text(status_line(snap), style="bold"))
            rungs = rung_line(snap)
            if rungs is not None:
                parts.append(Text(rungs, no_wrap=True, overflow="ellipsis"))
            if snap.max_trials:
                width = 40
                done = round(width * snap.done / snap.max_trials)
                run = min(width - done, round(width * snap.running / snap.max_trials))
                bar = Text("█" * done, style="green")
                bar.append("▒" * run, style="yellow")
                bar.append("·" * (width - done - run), style="dim")
                parts.append(bar)
        # one line per event (plain mode and the log keep the full text)
        parts.extend(Text(e, style="dim", no_wrap=True, overflow="ellipsis") for e in self._events)
        return Group(*parts)

    def close(self) -> None:
        self._live.stop()


def short(value: str) -> str:
    """A number with at most 6 significant digits, for tables (the files keep every digit)."""
    try:
        x = float(value)
    except ValueError:
        return value
    return value if len(value) <= 8 else f"{x:.6g}"


def summary_table(result: RunResult, *, metric: str, maximize: bool, top: int = 5) -> Table:
    """The best ``top`` succeeded trials; parameters in one wrapping column, so any number of
    them fits any width. With ASHA, a column shows each trial's budget."""
    scored = [(v, t) for t in result.trials if (v := objective_value(t, metric)) is not None]
    scored.sort(key=lambda vt: -vt[0] if maximize else vt[0])
    best: list[TrialRow] = [t for _v, t in scored[:top]]
    table = Table(title=f"Best trials ({'max' if maximize else 'min'} {metric})")
    table.add_column("#", justify="right")
    table.add_column("trial", no_wrap=True)
    table.add_column(metric, justify="right", no_wrap=True)
    resource = result.resource
    if resource is not None:
        table.add_column(resource, justify="right", no_wrap=True)
    table.add_column("seconds", justify="right")
    table.add_column("parameters", ratio=1, overflow="fold")
    for i, t in enumerate(best, 1):
        params = "  ".join(f"{k}={short(v)}" for k, v in t.assignments.items())
        budget = () if resource is None else (short(t.assignments.get(resource, "")),)
        table.add_row(
            str(i), t.name, short(t.metrics[metric]), *budget, f"{t.seconds or 0:.1f}", params
        )
    return table


def print_summary(console: Console, result: RunResult, *, metric: str, maximize: bool) -> None:
    """The final table, counts, stop reason and where the files are."""
    counts: dict[str, int] = {}
    for t in result.trials:
        counts[t.condition] = counts.get(t.condition, 0) + 1
    console.print(summary_table(result, metric=metric, maximize=maximize))
    console.print("trials: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if result.best is not None:
        params = ", ".join(f"{k}={v}" for k, v in result.best.assignments.items())
        console.print(
            f"best trial: {result.best.name} {metric}={result.best.metrics[metric]} ({params})"
        )
    else:
        console.print("best trial: none (no trial succeeded)")
    console.print(f"stopped: {result.status} ({result.reason}): {result.message}")
    console.print(
        f"elapsed: {_clock(result.elapsed)}; results in {result.state_dir}/ "
        "(state.json, trials.csv, logs/, convergence.png)"
    )
