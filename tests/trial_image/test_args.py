"""Bad arguments exit 2 with the argument named; good spellings are accepted."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest
import torch

from tests.trial_image.conftest import TINY, Run
from trial_image.hparams import BRANCH_PARAMS, GLOBAL_PARAMS, HEAD_PARAMS, ParamSpec, flag_names
from trial_image.train import build_parser

DIGITS = ("--task", "digits", "--max-samples=100")

BAD_ARGS: list[tuple[list[str], str]] = [
    (["--lr=-1"], "argument --lr: must be > 0; got '-1'"),
    (["--lr=0"], "argument --lr: must be > 0; got '0'"),
    (["--lr=nan"], "argument --lr: must be a finite number; got 'nan'"),
    (["--lr", "fast"], "argument --lr: must be a number; got 'fast'"),
    (["--batch-size=0"], "argument --batch_size/--batch-size: must be >= 1; got '0'"),
    (["--epochs=2.5"], "argument --epochs: must be an int; got '2.5'"),
    (["--optimizer=lbfgs"], "argument --optimizer: must be one of adam, adamw, sgd, rmsprop"),
    (["--top__filters=abc"], "argument --top__filters: must be an int; got 'abc'"),
    (["--top__dropout=1"], "argument --top__dropout: must be < 1; got '1'"),
    (["--bottom__activation=swish"], "argument --bottom__activation: must be one of relu"),
    (["--head__layers=-1"], "argument --head__layers: must be >= 0; got '-1'"),
    (
        ["--top__units=8"],
        "argument --top__units: subnetwork 'top' is a 2-D CNN with no parameter 'units'; "
        "it has: layers, filters, kernel, dropout, activation, norm",
    ),
    (
        ["--left__filters", "8"],
        "argument --left__filters: unknown subnetwork 'left'; this task's groups: top, bottom, "
        "head",
    ),
    (
        ["--head__kernel=3"],
        "argument --head__kernel: the fusion head has no parameter 'kernel'; it has: layers",
    ),
    (["--learning-rate=0.1"], "argument --learning-rate: unknown option or global hyperparameter"),
    (["--lr=0.1", "stray"], "unrecognized arguments: stray"),
    (["--task-type=regression"], "argument --task-type: only with --data"),
    (["--val-fraction=1"], "argument --val-fraction: must be in (0, 1); got '1'"),
    (["--max-samples=0"], "argument --max-samples: must be >= 1; got '0'"),
    (["--device=tpu"], "argument --device: 'tpu' is not auto, cpu, cuda or cuda:N"),
    (["--precision=fp16", "--device=cpu"], "argument --precision: fp16 needs a CUDA device"),
    (["--divergence-factor=-1"], "argument --divergence-factor: must be >= 0; got '-1'"),
]


@pytest.mark.parametrize(("args", "message"), BAD_ARGS, ids=[a[0] for a, _ in BAD_ARGS])
def test_bad_argument_exits_2_naming_it(
    run_trial: Callable[..., Run], args: list[str], message: str
) -> None:
    run = run_trial(*DIGITS, *TINY, *args)
    assert run.code == 2
    assert message in run.err
    assert run.out == ""


def test_task_or_data_is_required(run_trial: Callable[..., Run]) -> None:
    run = run_trial("--lr=0.1")
    assert run.code == 2
    assert "one of the arguments --task --data is required" in run.err
    run = run_trial("--task=digits", "--data=x.npz")
    assert run.code == 2
    assert "argument --data: not allowed with argument --task" in run.err
    run = run_trial("--task=cifar")
    assert run.code == 2
    assert "argument --task: invalid choice: 'cifar'" in run.err


def test_abbreviations_are_not_guessed(run_trial: Callable[..., Run]) -> None:
    # --top__filt must not silently mean --top__filters.
    run = run_trial(*DIGITS, *TINY, "--top__filt=8")
    assert run.code == 2
    assert "argument --top__filt: subnetwork 'top'" in run.err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_without_cuda_exits_2(run_trial: Callable[..., Run]) -> None:
    run = run_trial(*DIGITS, *TINY, "--device=cuda")
    assert run.code == 2
    assert "dcsa-train: error: argument --device: cuda requested but CUDA is not available" in (
        run.err
    )


def test_help_lists_the_partition_of_the_chosen_task(run_trial: Callable[..., Run]) -> None:
    run = run_trial("--task", "mnist1d", "--help")
    assert run.code == 0
    assert "subnetwork 'signal' (1-D CNN): signal__<param>" in run.out
    assert "subnetwork 'summary' (dense feed-forward network): summary__<param>" in run.out
    assert "--signal__kernel" in run.out and "--summary__units" in run.out
    assert "--summary__kernel" not in run.out
    general = run_trial("--help")
    assert general.code == 0
    assert "--task" in general.out and "--lr FLOAT" in general.out
    assert "--head__units INT" in general.out and "--top__filters INT" not in general.out


def test_both_spellings_of_global_names_are_accepted() -> None:
    parser = build_parser({"a": "dense"})
    ns = parser.parse_args(
        ["--task=diabetes", "--batch_size=8", "--weight-decay=0.1", "--a__units=3"]
    )
    assert (ns.batch_size, ns.weight_decay, ns.a__units) == (8, 0.1, 3)
    assert flag_names("batch_size") == ["--batch_size", "--batch-size"]
    assert flag_names("top__filters") == ["--top__filters"]


def test_every_declared_parameter_has_a_valid_default() -> None:
    specs: list[ParamSpec] = [*GLOBAL_PARAMS, *HEAD_PARAMS]
    for kind_specs in BRANCH_PARAMS.values():
        specs += kind_specs
    for spec in specs:
        assert spec.parse(str(spec.default)) == spec.default, spec.name
        with pytest.raises(argparse.ArgumentTypeError):
            spec.parse("not-a-value")


def test_an_accepted_value_is_used(run_trial: Callable[..., Run]) -> None:
    run = run_trial(*DIGITS, *TINY, "--top__filters=3", "--head__layers=0", "--optimizer=sgd")
    assert run.code == 0, run.err
    assert '"top__filters": 3' in run.err and '"head__layers": 0' in run.err
    assert '"optimizer": "sgd"' in run.err


def test_the_docs_show_the_declared_parameters() -> None:
    from pathlib import Path

    from trial_image.hparams import params_markdown

    docs = Path(__file__).resolve().parents[2] / "docs" / "trial-image.md"
    assert params_markdown() in docs.read_text(), (
        "docs/trial-image.md is out of date: paste in trial_image.hparams.params_markdown()"
    )
