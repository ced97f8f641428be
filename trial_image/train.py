"""Command line of the trial: ``python -m trial_image.train`` (console script ``dcsa-train``).

Builds a multi-branch model for a built-in task or a user ``.npz`` file, trains it and prints
``name=value`` metric lines after every epoch for Katib's StdOut collector. The same command
line works on a CPU laptop (local runner) and a GPU node (Katib).

Exit codes: 0 done; 2 bad argument (the message names it); 3 unusable data (the message names
the file and array); 4 training diverged (NaN, infinity or runaway loss), so Katib marks the
trial Failed; 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence

from trial_image.checkpoint import ENV_VAR as CHECKPOINT_ENV
from trial_image.data import BUILTIN_TASKS, TASK_TYPES, DataError, TaskData, load_builtin, load_npz
from trial_image.hparams import (
    BRANCH_PARAMS,
    GROUP_SEPARATOR,
    HEAD_GROUP,
    HEAD_PARAMS,
    KIND_TITLES,
    BranchKind,
    add_param_arguments,
    config_from_namespace,
)

PROG = "dcsa-train"
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_DATA, EXIT_DIVERGED = 0, 1, 2, 3, 4

# The package logger, not __name__: run with -m this module is "__main__", and the handler set up
# here must also catch the messages of trial_image.training and friends.
logger = logging.getLogger("trial_image")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an int; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1; got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number; got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1); got {text!r}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number; got {text!r}") from None
    if not value >= 0.0:
        raise argparse.ArgumentTypeError(f"must be >= 0; got {text!r}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an int; got {text!r}") from None


def build_parser(
    branches: Mapping[str, BranchKind] | None = None, *, add_help: bool = True
) -> argparse.ArgumentParser:
    """The argument parser; with ``branches`` it also has every hyperparameter flag.

    Args:
        branches: branch name to kind for the chosen task, or None for the run options only.
        add_help: whether ``-h``/``--help`` is defined.

    Returns:
        The parser.
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train a multi-subnetwork model and print Katib metrics (name=value).",
        epilog=(
            "Hyperparameter names follow <group>__<param> (e.g. --top__filters 32); names "
            "without '__' are global. Pass --task or --data together with --help to list the "
            "subnetwork parameters of that task."
        ),
        add_help=add_help,
        allow_abbrev=False,
    )
    source = parser.add_argument_group("data")
    which = source.add_mutually_exclusive_group(required=True)
    which.add_argument("--task", choices=sorted(BUILTIN_TASKS), help="a built-in offline task")
    which.add_argument(
        "--data",
        metavar="FILE.npz",
        help="user data: arrays x_<branch> (one per branch) and y; see docs/trial-image.md",
    )
    source.add_argument(
        "--task-type",
        choices=TASK_TYPES,
        help="with --data: classification or regression (default: from y's dtype)",
    )
    source.add_argument(
        "--val-fraction",
        type=_fraction,
        default=0.2,
        help="share of rows held out for validation when the data has no split (default: 0.2)",
    )
    source.add_argument(
        "--split-seed",
        type=_int,
        default=0,
        help="seed of the train/validation split, the same for every trial (default: 0)",
    )
    source.add_argument(
        "--max-samples",
        type=_positive_int,
        default=None,
        help="use at most this many rows (quick runs and tests)",
    )
    run = parser.add_argument_group("run")
    run.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    run.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="auto: bf16 autocast on CUDA where supported, else fp16; fp32 on CPU",
    )
    run.add_argument("--seed", type=_int, default=0, help="training seed (default: 0)")
    run.add_argument(
        "--no-deterministic",
        dest="deterministic",
        action="store_false",
        help="allow non-deterministic (faster) kernels",
    )
    run.add_argument(
        "--divergence-factor",
        type=_non_negative,
        default=100.0,
        help="fail when an epoch's training loss exceeds this multiple of the first batch's "
        "loss; 0 turns it off (NaN and infinity always fail) (default: 100)",
    )
    run.add_argument(
        "--num-threads", type=_positive_int, default=None, help="CPU threads for torch"
    )
    run.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        default=None,
        help="save this configuration's training state here after the last epoch, and resume "
        "from the checkpoint with the most epochs up to --epochs (a promoted trial trains "
        f"only the extra epochs); default: ${CHECKPOINT_ENV}, else none; '' turns it off",
    )
    run.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        default="INFO",
        help="log level of the messages on stderr (default: INFO)",
    )
    out = parser.add_argument_group("metrics")
    out.add_argument(
        "--metrics-timestamps",
        action="store_true",
        help="prefix every metric line with an RFC3339 timestamp",
    )
    out.add_argument(
        "--tensorboard-dir",
        metavar="DIR",
        help="also write TensorBoard event files here (Katib TensorFlowEvent collector)",
    )
    out.add_argument(
        "--push-metrics",
        action="store_true",
        help="also push metrics with kubeflow.katib.report_metrics (Katib Push collector)",
    )
    if branches is not None:
        add_param_arguments(parser, branches)
    return parser


def _unknown_flag_message(extra: Sequence[str], branches: Mapping[str, BranchKind]) -> str:
    flags = [e for e in extra if e.startswith("--")]
    if not flags:
        return f"unrecognized arguments: {' '.join(extra)}"
    flag = flags[0].split("=", 1)[0]
    name = flag[2:]
    if GROUP_SEPARATOR not in name:
        return f"argument {flag}: unknown option or global hyperparameter"
    group, param = name.split(GROUP_SEPARATOR, 1)
    if group == HEAD_GROUP:
        known = ", ".join(p.name for p in HEAD_PARAMS)
        return f"argument {flag}: the fusion head has no parameter {param!r}; it has: {known}"
    if group not in branches:
        groups = ", ".join([*branches, HEAD_GROUP])
        return f"argument {flag}: unknown subnetwork {group!r}; this task's groups: {groups}"
    kind = branches[group]
    known = ", ".join(p.name for p in BRANCH_PARAMS[kind])
    return (
        f"argument {flag}: subnetwork {group!r} is a {KIND_TITLES[kind]} with no parameter "
        f"{param!r}; it has: {known}"
    )


def _configure_logging(level: str) -> None:
    # Only our logger, a fresh handler on the current stderr; never the root logger.
    for handler in list(logger.handlers):
        if getattr(handler, "_dcsa_trial", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._dcsa_trial = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def _fail(code: int, message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run one trial.

    Args:
        argv: the arguments without the program name; None reads ``sys.argv``.

    Returns:
        The process exit code (see the module docstring).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return _main(args)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        return _fail(130, "interrupted")


def _main(args: list[str]) -> int:
    if any(a in ("-h", "--help") for a in args) and not any(
        a.split("=", 1)[0] in ("--task", "--data") for a in args
    ):
        build_parser({}).print_help()  # globals and head; branches need the task
        return EXIT_OK
    first, _ = build_parser(add_help=False).parse_known_args(args)
    _configure_logging(first.log_level)

    data: TaskData | None = None
    if first.task is not None:
        if first.task_type is not None:
            return _fail(
                EXIT_USAGE,
                f"argument --task-type: only with --data; the built-in task {first.task!r} is "
                f"a {BUILTIN_TASKS[first.task][0]} task",
            )
        branches = dict(BUILTIN_TASKS[first.task][1])
    else:
        try:
            data = load_npz(
                first.data,
                task_type=first.task_type,
                val_fraction=first.val_fraction,
                split_seed=first.split_seed,
                max_samples=first.max_samples,
            )
        except DataError as exc:
            return _fail(EXIT_DATA, str(exc))
        branches = dict(data.branches)

    parser = build_parser(branches)
    ns, extra = parser.parse_known_args(args)
    if extra:
        parser.error(_unknown_flag_message(extra, branches))
    config = config_from_namespace(ns, branches)

    from trial_image import metrics as metrics_mod
    from trial_image import training

    try:
        push = metrics_mod.load_push_function() if ns.push_metrics else None
    except ImportError as exc:
        return _fail(EXIT_USAGE, f"argument --push-metrics: {exc}")
    options = training.RunOptions(
        device=ns.device,
        precision=ns.precision,
        seed=ns.seed,
        deterministic=ns.deterministic,
        divergence_factor=ns.divergence_factor,
        num_threads=ns.num_threads,
    )
    if data is None:
        try:
            data = load_builtin(
                ns.task,
                val_fraction=ns.val_fraction,
                split_seed=ns.split_seed,
                max_samples=ns.max_samples,
            )
        except DataError as exc:
            return _fail(EXIT_DATA, str(exc))
    events = metrics_mod.EventFileWriter(ns.tensorboard_dir) if ns.tensorboard_dir else None
    reporter = metrics_mod.MetricsReporter(
        timestamps=ns.metrics_timestamps, event_writer=events, push=push
    )
    checkpoint_dir = ns.checkpoint_dir
    if checkpoint_dir is None:
        checkpoint_dir = os.environ.get(CHECKPOINT_ENV, "")
    store = None
    if checkpoint_dir:
        from trial_image import checkpoint

        store = checkpoint.CheckpointStore(
            checkpoint_dir, checkpoint.identity(data, config, ns.seed)
        )
    try:
        trainer = training.Trainer(data, config, options, reporter, checkpoints=store)
    except training.DeviceUnavailableError as exc:
        reporter.close()
        return _fail(EXIT_USAGE, str(exc))
    logger.info(
        "task %s (%s): %d training and %d validation rows",
        data.name,
        data.task_type,
        len(data.y_train),
        len(data.y_val),
    )
    logger.info("device: %s", trainer.describe_device())
    # JSON, not name=value: hyperparameters must never look like metric lines to Katib.
    logger.info("hyperparameters: %s", json.dumps(config.as_flat(), sort_keys=True))
    if store is not None:
        logger.info("checkpoint key %s (every hyperparameter but epochs)", store.key)
    try:
        results = trainer.run()
    except training.TrainingDivergedError as exc:
        return _fail(EXIT_DIVERGED, f"training diverged: {exc}")
    finally:
        reporter.close()
    last = results[-1].metrics
    logger.info("done after %d epochs: %s", len(results), json.dumps(dict(last)))
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
