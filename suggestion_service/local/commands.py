"""``dcsa validate`` and ``dcsa run``: the work behind the two subcommands.

Exit codes: 0 valid / experiment succeeded (goal or maxTrialCount reached); 1 problems found /
experiment failed (too many failed trials, suggestion error); 2 unusable input (no file, no
Experiment, state directory of another experiment); 130 interrupted (Ctrl-C; run again to resume).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from rich.console import Console

from .._generated import api_pb2_grpc as pb_grpc
from .experiment import (
    Document,
    Experiment,
    ExperimentError,
    load_documents,
    parse_experiment,
)
from .runner import RunError, Runner, RunOptions
from .service import ServiceError, suggestion_stub
from .validate import Problem, local_problems, validate_all

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _quiet_service() -> None:
    """The in-process service logs a line per call and rejection; the commands say it better."""
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        for name in ("suggestion_service.katib", "suggestion_service.server"):
            logging.getLogger(name).setLevel(logging.ERROR)


def _notes(exp: Experiment, parallel: int) -> list[str]:
    """What the local runner does differently from Katib for this Experiment."""
    notes = []
    if exp.spec.get("earlyStopping") is not None:
        notes.append("spec.earlyStopping is ignored by the local runner")
    if exp.collector.kind == "File" and parallel > 1:
        notes.append(
            f"parallel trials share the metrics file {exp.collector.path}; each trial "
            "should write its own lines only (or use --parallel 1)"
        )
    return notes


def _label(doc: Document) -> str:
    return f"{doc.source} ({doc.name or 'unnamed'})"


def _load(paths: Sequence[Path], out: IO[str]) -> list[Document] | None:
    try:
        docs = load_documents(paths)
    except ExperimentError as exc:
        out.write(f"error: {exc}\n")
        return None
    experiments = [d for d in docs if d.is_experiment]
    if not experiments:
        out.write(
            f"error: no Katib Experiment (kind: Experiment) in {', '.join(map(str, paths))}\n"
        )
        return None
    return experiments


def _report(
    out: IO[str], doc: Document, problems: Sequence[Problem], limits: Sequence[Problem] = ()
) -> None:
    """Katib's problems, or "valid" and then what the local runner cannot run (``limits``)."""
    if problems:
        out.write(f"{_label(doc)}: {len(problems)} problem{'s' if len(problems) > 1 else ''}\n")
        for p in problems:
            out.write(f"  - {p}\n")
        return
    if not limits:
        out.write(f"{_label(doc)}: valid\n")
        return
    out.write(f"{_label(doc)}: valid for Katib; dcsa run cannot run it:\n")
    for p in limits:
        out.write(f"  - {p}\n")


def _limits(doc: Document) -> list[Problem]:
    """What ``dcsa run`` cannot run in a document Katib accepts."""
    try:
        return local_problems(parse_experiment(doc))
    except ExperimentError as exc:
        return [Problem("<document>", str(exc))]


def validate_command(
    paths: Sequence[Path],
    *,
    address: str | None = None,
    service: bool = True,
    out: IO[str] | None = None,
) -> int:
    """Validate every Experiment in ``paths`` (files or directories, multi-document YAML)."""
    out = out or sys.stdout
    docs = _load(paths, out)
    if docs is None:
        return EXIT_USAGE
    _quiet_service()
    with ExitStack() as stack:
        stubs: list[pb_grpc.SuggestionStub] = []

        def stub() -> pb_grpc.SuggestionStub:
            if not stubs:
                stubs.append(stack.enter_context(suggestion_stub(address)))
            return stubs[0]

        bad = 0
        try:
            for doc in docs:
                problems = validate_all(doc, stub if service else None)
                _report(out, doc, problems, [] if problems else _limits(doc))
                bad += bool(problems)
        except ServiceError as exc:
            out.write(f"error: {exc}\n")
            return EXIT_USAGE
    return EXIT_PROBLEMS if bad else EXIT_OK


def run_command(
    paths: Sequence[Path],
    *,
    state_dir: Path | None = None,
    parallel: int | None = None,
    max_trials: int | None = None,
    trial_timeout: float | None = None,
    workdir: Path | None = None,
    address: str | None = None,
    live: bool | None = None,
    out: IO[str] | None = None,
) -> int:
    """Validate, then run the one Experiment in ``paths`` to its end (see module doc for exits).

    Args:
        live: rich's live panel; None means "when ``out`` is a terminal".
    """
    out = out or sys.stdout
    for flag, value in (("--parallel", parallel), ("--max-trials", max_trials)):
        if value is not None and value < 1:
            out.write(f"error: {flag} must be at least 1, got {value}\n")
            return EXIT_USAGE
    if trial_timeout is not None and not trial_timeout > 0:
        out.write(
            f"error: --trial-timeout must be a positive number of seconds, got {trial_timeout}\n"
        )
        return EXIT_USAGE
    docs = _load(paths, out)
    if docs is None:
        return EXIT_USAGE
    if len(docs) > 1:
        out.write(
            "error: " + ", ".join(_label(d) for d in docs) + ": `dcsa run` runs one "
            "Experiment; give a file with only one\n"
        )
        return EXIT_USAGE
    doc = docs[0]
    _quiet_service()
    is_tty = out.isatty()
    live = is_tty if live is None else live
    console = Console(file=out, width=None if is_tty else 120, highlight=False)
    try:
        with suggestion_stub(address) as stub:
            problems = validate_all(doc, lambda: stub)
            limits = [] if problems else _limits(doc)
            if problems or limits:
                _report(out, doc, problems, limits)
                return EXIT_PROBLEMS
            exp = parse_experiment(doc)
            options = RunOptions(
                state_dir=state_dir or Path("dcsa-runs") / exp.name,
                parallel=parallel,
                max_trials=max_trials,
                trial_timeout=trial_timeout,
                workdir=workdir or Path.cwd(),
            )
            runner = Runner(exp, stub, options)
            out.write(
                f"running {exp.name} with {exp.algorithm}: "
                f"{runner.max_trials} trials, {runner.parallel} at a time; "
                f"trials run in {options.workdir}; state in {options.state_dir}/\n"
            )
            for note in _notes(exp, runner.parallel):
                out.write(f"note: {note}\n")
            out.flush()
            from .display import LiveReporter, PlainReporter, print_summary

            reporter: LiveReporter | PlainReporter = (
                LiveReporter(console) if live else PlainReporter(out)
            )
            runner.reporter = reporter
            try:
                result = runner.run()
            finally:
                reporter.close()
            print_summary(
                console, result, metric=exp.objective_metric, maximize=exp.goal == "maximize"
            )
            return result.exit_code
    except (ServiceError, RunError, ExperimentError) as exc:
        out.write(f"error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:  # before the runner took over Ctrl-C (starting, validating)
        out.write("interrupted\n")
        return EXIT_INTERRUPTED
