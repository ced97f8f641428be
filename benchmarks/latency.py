"""GetSuggestions latency against the number of completed trials: dcsa's gp-bo vs Katib's skopt BO.

Every arm runs as its own gRPC server process on 127.0.0.1 and gets the same requests, shaped as
Katib's controller sends them (full experiment spec, every trial including two RUNNING ones,
``current_request_number=1``), with a fresh experiment name per request so nothing is cached:

* ``gp-bo``: ``dcsa serve --host 127.0.0.1 --port 0 --metrics-port -1``, default settings;
* ``skopt``: ``benchmarks/skopt_service.py``, a Katib-equivalent ``bayesianoptimization`` service
  (skopt ``Optimizer`` with Katib's defaults: GP, gp_hedge, 10 initial points; tell, then ask);
* ``gp-bo-1t`` (with ``--pinned-arm``): the same dcsa server started with one BLAS thread
  (``OPENBLAS_NUM_THREADS=1`` and friends), to show the effect of pinning side by side.

Calls rotate between the arms for every size and repeat, are timed on the client (wall clock,
serialisation and transport included) and summarised by their median. Each server's peak RSS is
its ``VmHWM`` from ``/proc``. The skopt arm is skipped above ``--skopt-max`` trials, and a skopt
call that overruns ``--skopt-timeout`` (default 60 s, Katib's own deadline, past which the real
controller fails the call) is abandoned and counted as that many seconds (so a median that leans
on it is a lower bound, written ">="); the server is restarted, that size is not repeated and
each larger size gets a single call, which keeps the run short.

Run from the repository root: ``python -m benchmarks.latency`` (about 15 minutes on 2 cores) or
``python -m benchmarks.latency --quick`` (about 3 minutes). Writes ``<name>.json``, ``<name>.md``
and ``<name>.png`` under ``--out`` (name ``latency``, or ``latency.quick`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as ``python benchmarks/latency.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc

from benchmarks._latency_common import (
    KATIB_DEADLINE_SECONDS,
    ServerProcess,
    make_request,
    with_experiment,
)
from suggestion_service._generated import api_pb2 as pb
from suggestion_service._generated import api_pb2_grpc as pb_grpc

REPO = Path(__file__).resolve().parent.parent
GPBO, SKOPT, PINNED = "gp-bo", "skopt", "gp-bo-1t"
ALGORITHMS = {GPBO: "gp-bo", SKOPT: "bayesianoptimization", PINNED: "gp-bo"}
FULL = {"sizes": (10, 50, 100, 200, 500, 1000), "dims": (6, 12), "repeats": 3}
QUICK = {"sizes": (10, 50, 200), "dims": (6,), "repeats": 1}
BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: Issue 2's targets for gp-bo.
TARGET_200_SECONDS = 1.0
TARGET_200_RATIO = 20.0
TARGET_1000_SECONDS = 5.0
TARGET_RSS_BYTES = 500 * 1000 * 1000
_MB = 1024 * 1024
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 64 * _MB),
    ("grpc.max_receive_message_length", 64 * _MB),
]


@dataclass
class Measurement:
    """One timed GetSuggestions call (or a call that was not made, with the reason)."""

    arm: str
    dims: int
    size: int
    repeat: int
    status: str  # ok, timeout, error, skipped
    seconds: float | None = None
    detail: str = ""
    origins: list[str] = field(default_factory=list)
    load1: float | None = None


def _int_list(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.latency",
        description="GetSuggestions latency of dcsa gp-bo vs a Katib-equivalent skopt service.",
    )
    p.add_argument(
        "--sizes",
        type=_int_list,
        default=None,
        help="completed trials per request, comma-separated (default 10,50,100,200,500,1000)",
    )
    p.add_argument(
        "--dims",
        type=_int_list,
        default=None,
        help="search-space dimensions, comma-separated, each 1..12 (default 6,12)",
    )
    p.add_argument("--repeats", type=int, default=None, help="calls per arm and size (default 3)")
    p.add_argument(
        "--skopt-max",
        type=int,
        default=500,
        help="largest size the skopt arm runs (default 500; larger: 'not run (too slow)')",
    )
    p.add_argument(
        "--skopt-timeout",
        type=float,
        default=KATIB_DEADLINE_SECONDS,
        help="seconds after which a skopt call is abandoned and counted as a lower bound; "
        "larger sizes of that dimension then get one call each (default 60: Katib's "
        "GetSuggestions deadline, past which Katib itself fails the call)",
    )
    p.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="set OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and MKL_NUM_THREADS to this for the "
        "gp-bo and skopt servers (default: inherit the environment, as a pod without these "
        "variables does)",
    )
    p.add_argument(
        "--pinned-arm",
        action="store_true",
        help="add a third arm, gp-bo-1t: the dcsa server with one BLAS thread",
    )
    p.add_argument(
        "--quick", action="store_true", help="sizes 10,50,200; 6-D; 1 repeat (about 3 minutes)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=REPO / "benchmarks" / "results",
        help="output directory (default benchmarks/results)",
    )
    p.add_argument("--name", default=None, help="output file stem (default latency, latency.quick)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    p.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help="run nothing: rewrite the .md and .png of an earlier run from its .json",
    )
    ns = p.parse_args(argv)
    preset = QUICK if ns.quick else FULL
    for key in ("sizes", "dims", "repeats"):
        if getattr(ns, key) is None:
            setattr(ns, key, preset[key])
    if ns.repeats < 1:
        p.error("--repeats must be at least 1")
    return ns


# ---- servers -----------------------------------------------------------------------------------
def _env(blas_threads: int | None) -> dict[str, str]:
    """This process's environment, with the BLAS thread count pinned if asked."""
    env = dict(os.environ)
    if blas_threads is not None:
        env.update({k: str(blas_threads) for k in BLAS_VARIABLES})
    return env


def _dcsa_argv() -> list[str]:
    script = Path(sys.executable).parent / "dcsa"
    head = [str(script)] if script.exists() else [sys.executable, "-m", "suggestion_service"]
    # info level: dcsa logs its port once health says SERVING
    return [*head, "serve", "--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1"]


def arms(ns: argparse.Namespace) -> list[str]:
    return [GPBO, SKOPT, PINNED] if ns.pinned_arm else [GPBO, SKOPT]


def _servers(ns: argparse.Namespace) -> dict[str, ServerProcess]:
    env = _env(ns.blas_threads)
    dcsa_port = r"serving Katib suggestions on \S+:(\d+)"
    skopt = [sys.executable, "-m", "benchmarks.skopt_service", "--host", "127.0.0.1", "--port", "0"]
    out = {
        GPBO: ServerProcess(GPBO, _dcsa_argv(), dcsa_port, env=env, cwd=REPO),
        SKOPT: ServerProcess(SKOPT, skopt, r"listening on \S+:(\d+)", env=env, cwd=REPO),
    }
    if ns.pinned_arm:
        out[PINNED] = ServerProcess(PINNED, _dcsa_argv(), dcsa_port, env=_env(1), cwd=REPO)
    return out


def _call(
    stub: pb_grpc.SuggestionStub, req: pb.GetSuggestionsRequest, timeout: float
) -> tuple[str, float, str, list[str]]:
    t0 = time.perf_counter()
    try:
        reply = stub.GetSuggestions(req, timeout=timeout)
    except grpc.RpcError as exc:
        seconds = time.perf_counter() - t0
        code = exc.code()
        status = "timeout" if code == grpc.StatusCode.DEADLINE_EXCEEDED else "error"
        return status, seconds, f"{code.name}: {exc.details()}", []
    seconds = time.perf_counter() - t0
    n = len(reply.parameter_assignments)
    if n != req.current_request_number:
        return "error", seconds, f"{n} assignments for {req.current_request_number} asked", []
    origins = [a.labels.get("dcsa.io/origin", "") for a in reply.parameter_assignments]
    return "ok", seconds, "", origins


def _load1() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def run(ns: argparse.Namespace) -> dict[str, Any]:
    """Start the servers, run every measurement, stop the servers; returns the raw results."""
    names = arms(ns)
    servers = _servers(ns)
    measurements: list[Measurement] = []
    # dims -> smallest size at which a skopt call overran the cap; from then on that size is
    # not repeated and each larger size gets a single call (its median is only a lower bound)
    skopt_over: dict[int, int] = {}
    started = time.monotonic()
    try:
        for s in servers.values():
            s.start()
        stubs = {
            k: pb_grpc.SuggestionStub(
                grpc.insecure_channel(f"127.0.0.1:{s.port}", options=_CHANNEL_OPTIONS)
            )
            for k, s in servers.items()
        }
        # one untimed call each, so no arm's first timed call pays for imports or caches
        warm = make_request(
            algorithm="", experiment="warmup", dims=min(ns.dims), n_completed=10, seed=999
        )
        for arm in names:
            req = with_experiment(warm, algorithm=ALGORITHMS[arm], experiment=f"warmup-{arm}")
            status, seconds, detail, _ = _call(stubs[arm], req, 600.0)
            if status != "ok":
                raise RuntimeError(f"{arm} warm-up failed: {detail}")
            print(f"# warm-up {arm}: {seconds:.2f} s", flush=True)

        for size in ns.sizes:
            for dims in ns.dims:
                for r in range(ns.repeats):
                    base = make_request(
                        algorithm="", experiment="x", dims=dims, n_completed=size, seed=r
                    )
                    k = r % len(names)
                    for arm in names[k:] + names[:k]:  # rotate who goes first
                        m = Measurement(arm=arm, dims=dims, size=size, repeat=r, status="skipped")
                        if arm == SKOPT and size > ns.skopt_max:
                            m.detail = f"not run (too slow): above --skopt-max {ns.skopt_max}"
                        elif (
                            arm == SKOPT
                            and dims in skopt_over
                            and (size == skopt_over[dims] or r > 0)
                        ):
                            m.detail = (
                                f"not repeated: {skopt_over[dims]} trials already "
                                f"overran --skopt-timeout {ns.skopt_timeout:.0f} s"
                            )
                        else:
                            cap = ns.skopt_timeout if arm == SKOPT else KATIB_DEADLINE_SECONDS
                            exp = f"lat-{arm}-d{dims}-n{size}-r{r}"
                            req = with_experiment(base, algorithm=ALGORITHMS[arm], experiment=exp)
                            m.load1 = _load1()
                            m.status, m.seconds, m.detail, m.origins = _call(stubs[arm], req, cap)
                            servers[arm].sample_peak()
                            if m.status == "timeout":
                                # the server still computes the abandoned answer: start afresh
                                servers[arm].restart()
                                stubs[arm] = pb_grpc.SuggestionStub(
                                    grpc.insecure_channel(
                                        f"127.0.0.1:{servers[arm].port}", options=_CHANNEL_OPTIONS
                                    )
                                )
                                if arm == SKOPT:
                                    skopt_over.setdefault(dims, size)
                        measurements.append(m)
                        _progress(m)
        for s in servers.values():
            s.sample_peak()
    finally:
        for s in servers.values():
            s.cleanup()
    return {
        "measurements": [asdict(m) for m in measurements],
        "servers": {
            k: {
                "argv": s.argv,
                "blas_env": {v: (s.env or {}).get(v, "(unset)") for v in BLAS_VARIABLES},
                "start_rss_bytes": s.start_rss,
                "peak_rss_bytes": s.peak_rss,
                "restarts": s.restarts,
            }
            for k, s in servers.items()
        },
        "wall_seconds": time.monotonic() - started,
    }


def _progress(m: Measurement) -> None:
    took = f"{m.seconds:8.3f} s" if m.seconds is not None else "       - "
    origin = f" [{','.join(m.origins)}]" if any(m.origins) else ""
    print(
        f"{m.arm:8s} d={m.dims:2d} n={m.size:4d} r={m.repeat} {m.status:7s} {took}{origin}"
        f" {m.detail}".rstrip(),
        flush=True,
    )


# ---- summary -----------------------------------------------------------------------------------
@dataclass
class ArmCell:
    """One arm's calls at one (size, dims): median, range, and why it has none."""

    median: float | None
    low: float | None
    high: float | None
    n_ok: int
    note: str  # why there is no median, or that it is a lower bound
    lower_bound: bool
    fallback: bool  # a gp-bo reply fell back to quasi-random points (deadline, model error)
    failed: bool


@dataclass
class Row:
    """The summary of one (size, dims) cell."""

    size: int
    dims: int
    cells: dict[str, ArmCell]
    ratios: dict[str, float | None]  # skopt median / this gp-bo arm's median
    targets: dict[str, str]  # per gp-bo arm


def _cell(ms: list[dict[str, Any]], timeout: float) -> ArmCell:
    """Median over the calls made; an abandoned call counts as ``timeout`` seconds, and a
    median that leans on one is only a lower bound."""
    ok = [float(m["seconds"]) for m in ms if m["status"] == "ok"]
    n_over = sum(1 for m in ms if m["status"] == "timeout")
    fallback = any(o not in ("bo", "initial", "") for m in ms for o in m["origins"])
    failed = any(m["status"] in ("error", "timeout") for m in ms)
    values = ok + [timeout] * n_over
    if not values:
        note = "; ".join(sorted({m["detail"] for m in ms if m["detail"]})) or "not run"
        return ArmCell(None, None, None, 0, note, False, fallback, failed)
    median = statistics.median(values)
    lower = n_over > 0 and 2 * n_over >= len(values)
    note = (
        f">= {median:.3g} ({n_over} of {len(values)} abandoned at {timeout:.3g} s)" if lower else ""
    )
    return ArmCell(median, min(values), max(values), len(values), note, lower, fallback, failed)


def summarise(raw: dict[str, Any], ns: argparse.Namespace) -> list[Row]:
    rows = []
    gp_arms = [a for a in arms(ns) if a != SKOPT]
    for size in ns.sizes:
        for dims in ns.dims:
            at = [m for m in raw["measurements"] if m["size"] == size and m["dims"] == dims]
            cells = {
                a: _cell(
                    [m for m in at if m["arm"] == a],
                    ns.skopt_timeout if a == SKOPT else KATIB_DEADLINE_SECONDS,
                )
                for a in arms(ns)
            }
            ratios = {a: _ratio(cells[SKOPT].median, cells[a].median) for a in gp_arms}
            targets = {a: _targets(size, cells[a], ratios[a]) for a in gp_arms}
            rows.append(Row(size=size, dims=dims, cells=cells, ratios=ratios, targets=targets))
    return rows


def _ratio(slow: float | None, fast: float | None) -> float | None:
    return slow / fast if slow is not None and fast else None


def _targets(size: int, cell: ArmCell, ratio: float | None) -> str:
    if size not in (200, 1000):
        return "-"
    if cell.median is None or cell.failed:
        return "no (call failed)"
    if cell.fallback:
        return "no (fell back to quasi-random)"
    if size == 200:
        fast = "yes" if cell.median < TARGET_200_SECONDS else "no"
        ratio_ok = "n/a" if ratio is None else ("yes" if ratio >= TARGET_200_RATIO else "no")
        return f"<1 s {fast}, >=20x {ratio_ok}"
    return f"<5 s {'yes' if cell.median < TARGET_1000_SECONDS else 'no'}"


def _fmt(cell: ArmCell) -> str:
    if cell.median is None:
        return cell.note
    if cell.lower_bound:
        return cell.note
    x = cell.median
    text = f"{x:.3f}" if x < 10 else f"{x:.1f}"
    if cell.low is not None and cell.high is not None and cell.n_ok > 1:
        text += f" ({cell.low:.3g}-{cell.high:.3g})"
    return text


def _fmt_ratio(ratio: float | None, lower: bool) -> str:
    if ratio is None:
        return "-"
    text = f"{ratio:.0f}x" if ratio >= 10 else f"{ratio:.1f}x"
    return f">= {text}" if lower else text


def table(rows: list[Row], raw: dict[str, Any], ns: argparse.Namespace) -> str:
    gp_arms = [a for a in arms(ns) if a != SKOPT]
    head = ["trials", "dims"]
    for a in gp_arms:
        head.append(f"{a} median s (min-max)")
    head.append("skopt median s (min-max)")
    for a in gp_arms:
        head.append(f"skopt / {a}")
    for a in gp_arms:
        head.append(f"{a} targets met")
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * (len(head) - len(gp_arms)) + "---|"]
    lines[-1] += "---|" * (len(gp_arms) - 1)
    for r in rows:
        lower = r.cells[SKOPT].lower_bound
        cols = [str(r.size), str(r.dims)]
        cols += [_fmt(r.cells[a]) for a in gp_arms]
        cols.append(_fmt(r.cells[SKOPT]))
        cols += [_fmt_ratio(r.ratios[a], lower) for a in gp_arms]
        cols += [r.targets[a] for a in gp_arms]
        lines.append("| " + " | ".join(cols) + " |")
    lines.append("")
    for arm, info in raw["servers"].items():
        peak = info["peak_rss_bytes"]
        verdict = ""
        if arm != SKOPT:
            verdict = f"; target < 500 MB: {'yes' if 0 < peak < TARGET_RSS_BYTES else 'no'}"
        restarts = f", restarted {info['restarts']}x" if info["restarts"] else ""
        blas = ", ".join(f"{k}={v}" for k, v in info["blas_env"].items())
        lines.append(
            f"- peak RSS of the {arm} server process: {peak / 1e6:.0f} MB (at start "
            f"{info['start_rss_bytes'] / 1e6:.0f} MB{restarts}{verdict}); {blas}"
        )
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    commit = None
    if shutil.which("git"):
        proc = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        )
        commit = proc.stdout.strip() or None
    packages = ("dcsa", "numpy", "scipy", "scikit-optimize", "scikit-learn", "grpcio", "protobuf")
    return {
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nproc": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "loadavg_at_end": list(os.getloadavg()),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "packages": {n: version(n) for n in packages},
        "git_commit": commit,
    }


def plot(rows: list[Row], ns: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    styles = {GPBO: ("tab:blue", "o"), SKOPT: ("tab:red", "s"), PINNED: ("tab:green", "^")}
    labels = {GPBO: "dcsa gp-bo", SKOPT: "Katib skopt BO", PINNED: "dcsa gp-bo, 1 BLAS thread"}
    for dims in ns.dims:
        ls = "-" if dims == min(ns.dims) else "--"
        for arm in arms(ns):
            cells = [(r.size, r.cells[arm]) for r in rows if r.dims == dims]
            pts = [(x, c) for x, c in cells if c.median is not None and not c.lower_bound]
            if not pts:
                continue
            color, marker = styles[arm]
            ys = [c.median or 0.0 for _, c in pts]
            lo = [
                y - (c.low if c.low is not None else y) for y, (_, c) in zip(ys, pts, strict=True)
            ]
            hi = [
                (c.high if c.high is not None else y) - y for y, (_, c) in zip(ys, pts, strict=True)
            ]
            ax.errorbar(
                [x for x, _ in pts],
                ys,
                yerr=[lo, hi],
                color=color,
                marker=marker,
                ls=ls,
                capsize=3,
                label=f"{labels[arm]}, {dims}-D",
            )
            over = [(x, c.median) for x, c in cells if c.lower_bound and c.median is not None]
            if over:
                ax.plot(
                    *zip(*over, strict=True), color=color, marker=r"$\uparrow$", ls="none", ms=14
                )
    ax.axhline(KATIB_DEADLINE_SECONDS, color="grey", lw=0.8, ls=":")
    ax.text(
        min(ns.sizes),
        KATIB_DEADLINE_SECONDS * 1.1,
        "Katib's 60 s deadline (an arrow: abandoned there, a lower bound)",
        fontsize=8,
        color="grey",
    )
    ax.plot(
        [200, 1000],
        [TARGET_200_SECONDS, TARGET_1000_SECONDS],
        marker="_",
        color="black",
        ls="none",
        ms=16,
        mew=2,
        label="gp-bo targets (1 s at 200, 5 s at 1000)",
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("completed trials in the request")
    ax.set_ylabel("GetSuggestions latency over gRPC, median (s)")
    blas = "inherited" if ns.blas_threads is None else str(ns.blas_threads)
    ax.set_title(
        f"GetSuggestions latency, {os.cpu_count()} cores, {ns.repeats} repeat(s), "
        f"BLAS threads: {blas}"
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def command_line(argv: Sequence[str] | None) -> str:
    args = list(sys.argv[1:] if argv is None else argv)
    if __package__ in (None, ""):
        return shlex.join(["python", "benchmarks/latency.py", *args])
    return shlex.join(["python", "-m", "benchmarks.latency", *args])


def report(raw: dict[str, Any], ns: argparse.Namespace, command: str) -> tuple[str, str]:
    """The table (for the terminal) and the Markdown page."""
    rows = summarise(raw, ns)
    text = table(rows, raw, ns)
    info = raw["machine"]
    pkgs = info["packages"]
    md = [
        "# GetSuggestions latency: dcsa gp-bo vs Katib's skopt BO",
        "",
        "Produced by (from the repository root):",
        "",
        "```",
        command,
        "```",
        "",
        f"{info['date_utc']}, {info['nproc']} cores ({info['processor']}), Python "
        f"{info['python']}, numpy {pkgs['numpy']}, scipy {pkgs['scipy']}, scikit-optimize "
        f"{pkgs['scikit-optimize']}, scikit-learn {pkgs['scikit-learn']}; load average at the "
        f"end {info['loadavg_at_end'][0]:.1f}; {raw['wall_seconds'] / 60:.1f} min in all.",
        "",
        "Each call: one GetSuggestions over gRPC on 127.0.0.1 with N SUCCEEDED trials and 2 "
        "RUNNING ones, `current_request_number=1`, a fresh experiment name (nothing cached); "
        "wall clock on the client. The arms take turns on every request; medians over "
        f"{ns.repeats} repeat(s). gp-bo runs with its default settings; skopt with Katib's "
        "defaults (GP, gp_hedge, 10 initial points, acq_optimizer auto), tell then ask(1). "
        f"skopt is not run above {ns.skopt_max} trials; a skopt call is abandoned after "
        f"{ns.skopt_timeout:.0f} s (Katib's own deadline is 60 s) and counted as that, so a "
        "median written `>=` is a lower bound; that size is then not repeated and each larger "
        "one gets a single call.",
        "",
        text,
        "",
    ]
    return text, "\n".join(md)


def _rerender(ns: argparse.Namespace) -> int:
    """Rewrite the Markdown page and the plot of an earlier run from its JSON file."""
    path: Path = ns.from_json
    result = json.loads(path.read_text())
    cfg = result["config"]
    ns.sizes, ns.dims, ns.repeats = tuple(cfg["sizes"]), tuple(cfg["dims"]), cfg["repeats"]
    ns.skopt_max, ns.skopt_timeout = cfg["skopt_max"], cfg["skopt_timeout_seconds"]
    ns.blas_threads, ns.pinned_arm = cfg["blas_threads"], PINNED in cfg["arms"]
    text, md = report(result, ns, result["command"])
    print(text)
    stem = path.name.removesuffix(".json")
    path.with_name(f"{stem}.md").write_text(md)
    if not ns.no_plot:
        plot(summarise(result, ns), ns, path.with_name(f"{stem}.png"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ns = parse_args(argv)
    if ns.from_json is not None:
        return _rerender(ns)
    command = command_line(argv)
    print(
        f"# {command}\n# arms {arms(ns)}, sizes {ns.sizes}, dims {ns.dims}, repeats "
        f"{ns.repeats}, skopt up to {ns.skopt_max} trials, skopt cap {ns.skopt_timeout:.0f} s",
        flush=True,
    )
    raw = run(ns)
    raw["machine"] = machine_info()
    text, md = report(raw, ns, command)
    print()
    print(text)
    ns.out.mkdir(parents=True, exist_ok=True)
    stem = ns.name or ("latency.quick" if ns.quick else "latency")
    result = {
        "command": command,
        "config": {
            "arms": arms(ns),
            "sizes": list(ns.sizes),
            "dims": list(ns.dims),
            "repeats": ns.repeats,
            "skopt_max": ns.skopt_max,
            "skopt_timeout_seconds": ns.skopt_timeout,
            "gpbo_deadline_seconds": KATIB_DEADLINE_SECONDS,
            "blas_threads": ns.blas_threads,
            "current_request_number": 1,
            "running_trials": 2,
        },
        "targets": {
            "gpbo_200_seconds": TARGET_200_SECONDS,
            "ratio_200": TARGET_200_RATIO,
            "gpbo_1000_seconds": TARGET_1000_SECONDS,
            "rss_bytes": TARGET_RSS_BYTES,
        },
        "summary": [asdict(r) for r in summarise(raw, ns)],
        **raw,
    }
    (ns.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (ns.out / f"{stem}.md").write_text(md)
    if not ns.no_plot:
        plot(summarise(raw, ns), ns, ns.out / f"{stem}.png")
    print(f"\nwrote {ns.out / stem}.{{json,md{'' if ns.no_plot else ',png'}}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
