"""GetSuggestions at scale: wall time and peak memory of one call on long or wide histories.

Issue 12, section 3 asks for bounded time and memory: 10,000 completed trials in at most 5 s and
500 MB peak RSS for gp-bo and dcsa-bo with default settings. Each case below is one real
``GetSuggestionsRequest`` (protobuf), built through the project's one converter
(``suggestion_service.katib.convert``: ``experiment_to_pb`` for the Experiment, ``from_trial``
for every trial), shaped as Katib sends it: every trial, two of them RUNNING, one new trial asked
for. The cases:

* ``n1k``, ``n5k``, ``n10k``: 1,000 / 5,000 / 10,000 completed trials on a 10-parameter mixed
  space in three subnetwork groups (``a__lr``, ``b__units``, ...);
* ``p2000``: 2,000 parameters (20 groups of 100) with 300 completed trials;
* ``total2e31``: 10 completed trials and ``total_request_number`` 2^31-1 (Katib's int32 limit);
  the converter refuses totals above ``MAX_TOTAL_REQUESTS``, so the in-process path also runs the
  core with that total (``core`` column), which is what the quasi-random sequence sees;
* ``total1e5``: the same with the largest total the converter accepts.

Every (case, algorithm) is measured twice, each time in a fresh process so its peak RSS belongs to
that one call:

* ``grpc``: ``dcsa serve`` on 127.0.0.1 (one BLAS thread, as the chart sets it), its idle RSS read
  once it serves, one call timed on the client (serialisation and transport included), then its
  peak RSS (``VmHWM``);
* ``inproc``: a child Python process that reads the serialised request, then parses it, converts
  it, runs the engine and serialises the reply exactly as the servicer does; wall time of that,
  and its peak RSS (``VmHWM``) next to its RSS before the call.

Run from the repository root: ``python -m benchmarks.scale`` (about 4 minutes on 2 busy cores),
``--quick`` for n1k and total2e31 only. Writes ``scale.json`` and ``scale.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as ``python benchmarks/scale.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from benchmarks._latency_common import KATIB_DEADLINE_SECONDS, ServerProcess, proc_status
from suggestion_service._generated import api_pb2 as pb
from suggestion_service.core.history import TrialRecord, TrialState
from suggestion_service.core.provenance import Provenance
from suggestion_service.katib import convert

REPO = Path(__file__).resolve().parent.parent
ALGORITHMS = ("random", "gp-bo", "dcsa-bo")
N_RUNNING = 2
HUGE_TOTAL = 2**31 - 1
#: Issue 12's targets for gp-bo and dcsa-bo at 10,000 completed trials.
TARGET_SECONDS = 5.0
TARGET_RSS_BYTES = 500 * 1000 * 1000
#: Katib's default suggestion container memory limit.
KATIB_DEFAULT_LIMIT_BYTES = 100 * 1024 * 1024
BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_MB = 1024 * 1024
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 256 * _MB),
    ("grpc.max_receive_message_length", 256 * _MB),
]


@dataclasses.dataclass(frozen=True)
class Case:
    """One request shape."""

    name: str
    completed: int
    wide: bool = False  # 2,000 parameters instead of the 10-parameter mixed space
    total: int | None = None  # total_request_number (default: every trial + 1)
    core_total: int | None = None  # in process: the total the core sees, past the converter


CASES = (
    Case("n1k", 1000),
    Case("n5k", 5000),
    Case("n10k", 10_000),
    Case("p2000", 300, wide=True),
    Case("total1e5", 10, total=convert.MAX_TOTAL_REQUESTS),
    Case("total2e31", 10, total=HUGE_TOTAL, core_total=HUGE_TOTAL),
)
QUICK = ("n1k", "total2e31")


# ---- requests ----------------------------------------------------------------------------------
def _param(name: str, kind: str, **fs: Any) -> dict[str, Any]:
    return {"name": name, "parameterType": kind, "feasibleSpace": fs}


#: Ten mixed parameters in three subnetwork groups (every type and distribution).
MIXED: tuple[dict[str, Any], ...] = (
    _param("a__lr", "double", min="0.00001", max="0.1", distribution="logUniform"),
    _param("a__filters", "int", min="16", max="256", step="16", distribution="uniform"),
    _param("a__kernel", "discrete", list=["3", "5", "7"], distribution="uniform"),
    _param("a__act", "categorical", list=["relu", "gelu", "tanh"], distribution="uniform"),
    _param("b__units", "int", min="8", max="512", distribution="uniform"),
    _param("b__dropout", "double", min="0", max="0.5", distribution="uniform"),
    _param("b__layers", "int", min="1", max="6", distribution="uniform"),
    _param("c__lr", "double", min="0.0001", max="0.1", distribution="logNormal"),
    _param("c__opt", "categorical", list=["adam", "sgd", "rmsprop"], distribution="uniform"),
    _param("c__wd", "double", min="0.000001", max="0.01", distribution="normal"),
)


def _wide() -> tuple[dict[str, Any], ...]:
    """2,000 parameters: 20 groups of 100, mostly doubles with an int and a categorical each."""
    out = []
    for g in range(20):
        for j in range(100):
            name = f"g{g:02d}__p{j:03d}"
            if j == 0:
                out.append(_param(name, "categorical", list=["x", "y", "z"]))
            elif j == 1:
                out.append(_param(name, "int", min="1", max="64", distribution="uniform"))
            else:
                out.append(_param(name, "double", min="-1", max="1", distribution="uniform"))
    return tuple(out)


def experiment(name: str, algorithm: str, *, wide: bool) -> pb.Experiment:
    """The Experiment as Katib's controller converts it (through ``convert.experiment_to_pb``)."""
    spec = {
        "algorithm": {"algorithmName": algorithm},
        "objective": {"type": "minimize", "objectiveMetricName": "loss"},
        "parameters": list(_wide() if wide else MIXED),
        "parallelTrialCount": N_RUNNING + 1,
    }
    return convert.experiment_to_pb(name, spec)


def build_request(case: Case, algorithm: str, *, seed: int = 0) -> pb.GetSuggestionsRequest:
    """The case's request: seeded trials (completed with a smooth loss, then RUNNING ones)."""
    exp = experiment(f"scale-{case.name}", algorithm, wide=case.wide)
    space = convert.to_space(exp.spec)
    n = case.completed + N_RUNNING
    rng = np.random.default_rng([seed, case.completed, len(space)])
    latent = rng.random((n, len(space)))
    typed = space.from_latent(latent)
    w = np.linspace(1.0, 0.2, len(space))
    losses = (latent - 0.3) ** 2 @ w + 0.01 * rng.standard_normal(n)
    req = pb.GetSuggestionsRequest(
        experiment=exp,
        current_request_number=1,
        total_request_number=case.total if case.total is not None else n + 1,
    )
    for i in range(n):
        done = i < case.completed
        record = TrialRecord(
            name=trial_name(exp.name, i, n_groups=20 if case.wide else 3, completed=case.completed),
            assignments=space.to_strings(typed[i]),
            state=TrialState.SUCCEEDED if done else TrialState.RUNNING,
            metrics={"loss": repr(float(losses[i]))} if done else {},
        )
        req.trials.append(convert.from_trial(record))
    return req


def trial_name(experiment: str, i: int, *, n_groups: int, completed: int) -> str:
    """The name dcsa would have given trial ``i`` (``<experiment>-<tag>-<sequence><hash>``,
    see ``core/provenance.py``): an initial design, then BO, SA and DC trials in turn, with the
    current DC round already served (two ``d<r>`` trials), as in a long dcsa-bo experiment; so
    dcsa-bo's call is an SA or BO slot, not a cheap DC round."""
    n_init = 11
    j = i - n_init
    if i < n_init:
        origin = Provenance("initial")
    elif i >= completed:
        origin = Provenance("bo")
    else:
        # DC round r = (completed - n_init) // 5 is the one due when ``completed`` trials are in
        last_round = (completed - n_init) // 5
        r, k = divmod(j, 5)
        if k < 2 and r <= last_round:
            origin = Provenance("dc", r)
        elif k == 2:
            origin = Provenance("bo")
        else:
            origin = Provenance("sa", (j // 5) % n_groups)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    sequence = "".join(digits[(i // 36**k) % 36] for k in reversed(range(5)))
    return f"{experiment}-{origin.tag}-{sequence}000"


# ---- one call in a fresh process ------------------------------------------------------------
def _rss_now() -> int:
    return proc_status(os.getpid()).get("VmRSS", 0)


def inproc_worker(path: Path, core_total: int | None, deadline: float) -> dict[str, Any]:
    """Parse, convert, suggest and serialise one request, as the servicer does; runs in a child
    process (``--worker``) so that its peak RSS is this call's."""
    from threadpoolctl import threadpool_limits

    from suggestion_service.core import engine
    from suggestion_service.katib.servicer import DEADLINE_MARGIN

    data = path.read_bytes()
    before = _rss_now()
    t0 = time.perf_counter()
    with threadpool_limits(1):
        req = pb.GetSuggestionsRequest.FromString(data)
        try:
            if core_total is not None:
                # past the converter's cap: what the core itself does with such a total
                req.total_request_number = 1
                core = dataclasses.replace(convert.to_request(req), total_requested=core_total)
            else:
                core = convert.to_request(req)
            response = engine.suggest(core, time_limit=deadline - DEADLINE_MARGIN)
            reply = convert.to_reply(response, req.experiment.spec.algorithm.algorithm_name)
            reply.SerializeToString()
            status, detail = "ok", ""
            origins = [s.origin for s in response.suggestions]
        except Exception as exc:  # recorded, not raised: a refusal is a result too
            status, detail, origins = "error", f"{type(exc).__name__}: {exc}"[:300], []
    seconds = time.perf_counter() - t0
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so it would report the parent's
    # RSS at fork time whenever that is higher
    peak = proc_status(os.getpid()).get("VmHWM", 0)
    return {
        "status": status,
        "detail": detail,
        "seconds": seconds,
        "rss_before_bytes": before,
        "peak_rss_bytes": peak,
        "origins": origins,
    }


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(dict.fromkeys(BLAS_VARIABLES, "1"))
    return env


def run_inproc(path: Path, case: Case, deadline: float) -> dict[str, Any]:
    argv = [sys.executable, "-m", "benchmarks.scale", "--worker", str(path)]
    argv += ["--timeout", str(deadline)]
    if case.core_total is not None:
        argv += ["--core-total", str(case.core_total)]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(
            argv,
            cwd=REPO,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=deadline + 60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "detail": f"over {deadline + 60:.0f} s", "seconds": None}
    if done.returncode != 0:
        tail = (done.stderr or done.stdout)[-400:]
        return {
            "status": "error",
            "detail": f"worker exit {done.returncode}: {tail}",
            "seconds": time.perf_counter() - t0,
        }
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _dcsa_argv() -> list[str]:
    # ``-m`` from the repository root: the server runs this checkout's code
    head = [sys.executable, "-m", "suggestion_service"]
    return [*head, "serve", "--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1"]


def run_grpc(req: pb.GetSuggestionsRequest, timeout: float) -> dict[str, Any]:
    """A fresh ``dcsa serve``, one call, then its peak RSS."""
    import grpc

    from suggestion_service._generated import api_pb2_grpc as pb_grpc

    server = ServerProcess(
        "scale", _dcsa_argv(), r"serving Katib suggestions on \S+:(\d+)", env=_env(), cwd=REPO
    )
    server.start()
    try:
        time.sleep(0.5)  # let the server settle before reading its idle RSS
        idle = proc_status(server.pid)
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}", options=_CHANNEL_OPTIONS)
        stub = pb_grpc.SuggestionStub(channel)
        t0 = time.perf_counter()
        origins: list[str] = []
        try:
            reply = stub.GetSuggestions(req, timeout=timeout)
            status, detail = "ok", ""
            origins = [a.labels.get("dcsa.io/origin", "") for a in reply.parameter_assignments]
        except grpc.RpcError as exc:
            status, detail = "error", f"{exc.code().name}: {exc.details()}"[:300]
        seconds = time.perf_counter() - t0
        channel.close()
        peak = server.sample_peak()
    finally:
        server.cleanup()
    return {
        "status": status,
        "detail": detail,
        "seconds": seconds,
        "idle_rss_bytes": idle.get("VmRSS", 0),
        "idle_peak_rss_bytes": idle.get("VmHWM", 0),
        "peak_rss_bytes": peak,
        "origins": origins,
    }


# ---- driver -----------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.scale",
        description="GetSuggestions wall time and peak RSS on long and wide histories.",
    )
    p.add_argument(
        "--cases",
        default=None,
        help=f"comma-separated case names (default all: {','.join(c.name for c in CASES)})",
    )
    p.add_argument(
        "--algorithms",
        default=",".join(ALGORITHMS),
        help=f"comma-separated algorithms (default {','.join(ALGORITHMS)})",
    )
    p.add_argument("--paths", default="grpc,inproc", help="grpc, inproc or both (default both)")
    p.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    p.add_argument(
        "--timeout",
        type=float,
        default=KATIB_DEADLINE_SECONDS,
        help="gRPC deadline of a call (default 60, Katib's); in process, the engine gets it "
        "less the servicer's 2 s margin",
    )
    p.add_argument("--label", default="", help="what this run measures (kept in the .json)")
    p.add_argument(
        "--before",
        type=Path,
        default=None,
        help="an earlier run's .json: the .md shows its numbers next to this run's",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=REPO / "benchmarks" / "results",
        help="output directory (default benchmarks/results)",
    )
    p.add_argument("--name", default=None, help="output file stem (default scale, scale.quick)")
    p.add_argument("--from-json", type=Path, default=None, help="only rewrite the .md of a .json")
    p.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--core-total", type=int, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _selected(ns: argparse.Namespace) -> list[Case]:
    names = QUICK if ns.quick else None
    if ns.cases:
        names = tuple(x.strip() for x in ns.cases.split(",") if x.strip())
    chosen = [c for c in CASES if names is None or c.name in names]
    unknown = set(names or ()) - {c.name for c in CASES}
    if unknown:
        raise SystemExit(f"unknown cases: {sorted(unknown)}")
    return chosen


def run(ns: argparse.Namespace) -> dict[str, Any]:
    algorithms = [a.strip() for a in ns.algorithms.split(",") if a.strip()]
    paths = [x.strip() for x in ns.paths.split(",") if x.strip()]
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dcsa-scale-") as tmp:
        for case in _selected(ns):
            for algorithm in algorithms:
                req = build_request(case, algorithm)
                data = req.SerializeToString()
                path = Path(tmp) / f"{case.name}-{algorithm}.bin"
                path.write_bytes(data)
                for kind in paths:
                    if kind == "grpc":
                        result = run_grpc(req, ns.timeout)
                    else:
                        result = run_inproc(path, case, ns.timeout)
                    row = {
                        "case": case.name,
                        "algorithm": algorithm,
                        "path": kind,
                        "completed": case.completed,
                        "parameters": len(req.experiment.spec.parameter_specs.parameters),
                        "total_request_number": req.total_request_number,
                        "core_total": case.core_total if kind == "inproc" else None,
                        "request_bytes": len(data),
                        **result,
                    }
                    rows.append(row)
                    _progress(row)
    return {
        "rows": rows,
        "wall_seconds": time.monotonic() - started,
        "meta": {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "blas_threads": 1,
            "git": _git_head(),
            "label": ns.label,
            "timeout": ns.timeout,
        },
    }


def _git_head() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout.strip()
    except OSError:
        return ""


def _mib(x: int | None) -> str:
    return "-" if not x else f"{x / _MB:.0f}"


def _progress(row: Mapping[str, Any]) -> None:
    s = row.get("seconds")
    took = f"{s:7.2f} s" if s is not None else "      - "
    fallbacks = sum(1 for o in row.get("origins", []) if o == "fallback")
    extra = f" fallback={fallbacks}" if fallbacks else ""
    print(
        f"{row['case']:9s} {row['algorithm']:8s} {row['path']:6s} {row['status']:7s} {took} "
        f"peak {_mib(row.get('peak_rss_bytes'))} MiB{extra} {row.get('detail', '')[:120]}",
        flush=True,
    )


def _cell(r: Mapping[str, Any] | None) -> tuple[str, str]:
    """Seconds and peak RSS of one call, or why there are none."""
    if r is None:
        return "-", "-"
    if r["status"] != "ok":
        why = r["detail"].split(":")[0] if r.get("detail") else r["status"]
        return f"{r['status']} ({why})", _mib(r.get("peak_rss_bytes"))
    fallbacks = sum(1 for o in r.get("origins", []) if o == "fallback")
    secs = f"{r['seconds']:.2f}" + (f" ({fallbacks} fallback)" if fallbacks else "")
    return secs, _mib(r.get("peak_rss_bytes"))


def _key(r: Mapping[str, Any]) -> tuple[str, str, str]:
    return r["case"], r["algorithm"], r["path"]


def table(raw: Mapping[str, Any], before: Mapping[str, Any] | None = None) -> str:
    """The Markdown report: one row per (case, algorithm, path), with an earlier run's
    numbers beside this one's when ``before`` is given."""
    old = {_key(r): r for r in before["rows"]} if before else {}
    label = raw["meta"].get("label") or "this run"
    head = ["case", "trials", "params", "total_request_number", "algorithm", "path"]
    if before:
        blabel = before["meta"].get("label") or "before"
        head += [f"{blabel}: s", f"{blabel}: peak RSS MiB"]
    head += [f"{label}: s", f"{label}: peak RSS MiB", "RSS before the call MiB", "origin"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in raw["rows"]:
        total = str(r["total_request_number"])
        if r.get("core_total"):
            total = f"{r['core_total']} (core)"
        cols = [r["case"], str(r["completed"]), str(r["parameters"]), total]
        cols += [r["algorithm"], r["path"]]
        if before:
            cols += list(_cell(old.get(_key(r))))
        cols += list(_cell(r))
        cols.append(_mib(r.get("idle_rss_bytes") or r.get("rss_before_bytes")))
        cols.append(",".join(r.get("origins", [])) or "-")
        lines.append("| " + " | ".join(cols) + " |")
    lines.append("")
    idle = [r["idle_rss_bytes"] for r in raw["rows"] if r.get("idle_rss_bytes")]
    if idle:
        lines.append(
            f"Idle `dcsa serve` (serving, before any call): RSS {_mib(min(idle))}-"
            f"{_mib(max(idle))} MiB. Katib's default suggestion container limit is "
            f"{_mib(KATIB_DEFAULT_LIMIT_BYTES)} MiB, below that; the chart "
            "(helm/dcsa `suggestion.resources`) requests 512Mi and limits 2Gi."
        )
    lines.append(
        "Issue 12 measured, before the GP's fit and condition subsets were capped "
        "(`max_fit_points`, `max_condition_points`): 1k trials 0.7 s / 191 MiB, 5k 6.1 s / "
        "1,065 MiB, 10k 31 s / 3.8 GiB, 2,000 parameters 19.6 s."
    )
    lines.append(
        f"Target (issue 12): 10,000 completed trials in at most {TARGET_SECONDS:.0f} s and "
        f"{TARGET_RSS_BYTES / 1e6:.0f} MB peak RSS for gp-bo and dcsa-bo (default settings):"
    )
    for r in raw["rows"]:
        if r["case"] == "n10k" and r["algorithm"] in ("gp-bo", "dcsa-bo"):
            ok = (
                r["status"] == "ok"
                and r["seconds"] is not None
                and r["seconds"] <= TARGET_SECONDS
                and (r.get("peak_rss_bytes") or 0) <= TARGET_RSS_BYTES
                and "fallback" not in r.get("origins", [])
            )
            secs, rss = _cell(r)
            lines.append(
                f"- {r['algorithm']} ({r['path']}): {'met' if ok else 'missed'}, {secs} s, "
                f"{rss} MiB"
            )
    lines.append("")
    for run in (before, raw):
        if run:
            meta = run["meta"]
            commit = f", commit {meta['git']}" if meta["git"] else ""
            lines.append(
                f"- {meta.get('label') or 'run'}: Python {meta['python']} on {meta['machine']}, "
                f"{meta['cpus']} shared CPUs, one BLAS thread{commit}, {meta['date']}, whole "
                f"run {run['wall_seconds']:.0f} s."
            )
    lines.append("")
    lines.append(
        "Command: `python -m benchmarks.scale` (`--before OLD.json` for the side-by-side "
        "columns). Times are one call each on a busy 2-core machine: read them to within "
        "a factor of about 1.5."
    )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ns = parse_args(argv)
    if ns.worker is not None:
        print(json.dumps(inproc_worker(ns.worker, ns.core_total, ns.timeout)))
        return 0
    before = json.loads(ns.before.read_text()) if ns.before is not None else None
    if ns.from_json is not None:
        raw = json.loads(ns.from_json.read_text())
        before = before or raw.get("before")
        ns.from_json.with_suffix(".md").write_text(table(raw, before))
        return 0
    raw = run(ns)
    if before is not None:
        raw["before"] = before
    name = ns.name or ("scale.quick" if ns.quick else "scale")
    ns.out.mkdir(parents=True, exist_ok=True)
    (ns.out / f"{name}.json").write_text(json.dumps(raw, indent=1) + "\n")
    md = table(raw, before)
    (ns.out / f"{name}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
