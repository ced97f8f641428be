"""Hyperparameters of the multi-branch model, declared once.

Every tunable value has one declaration (name, type, default, check, doc). That table drives the
command line, validation and the docs. Names follow the subnetwork naming convention of the
suggestion service: ``<group>__<param>`` belongs to subnetwork ``group`` (a branch, or ``head``
for the fusion head); names without ``__`` are global (learning rate, batch size, ...). An
Experiment that uses the same names needs no ``subnetworks`` setting for DC and SA.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

BranchKind = Literal["dense", "cnn1d", "cnn2d"]
BRANCH_KINDS: tuple[BranchKind, ...] = ("dense", "cnn1d", "cnn2d")
KIND_TITLES: Mapping[BranchKind, str] = {
    "dense": "dense feed-forward network",
    "cnn1d": "1-D CNN",
    "cnn2d": "2-D CNN",
}
HEAD_GROUP = "head"
GROUP_SEPARATOR = "__"

ACTIVATIONS = ("relu", "gelu", "silu", "tanh", "elu", "leaky_relu")
NORMS = ("none", "batch", "layer")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")


@dataclass(frozen=True)
class ParamSpec:
    """One tunable value.

    Attributes:
        name: the name without group prefix (``filters``), or the global name (``lr``).
        kind: ``int``, ``float`` or ``choice``.
        default: value used when the flag is absent.
        doc: one line for ``--help`` and the docs.
        low: smallest allowed value (ints and floats), inclusive unless ``low_open``.
        high: largest allowed value, inclusive unless ``high_open``; ``None`` for no bound.
        low_open: whether ``low`` itself is excluded.
        high_open: whether ``high`` itself is excluded.
        choices: the allowed strings of a ``choice``.
    """

    name: str
    kind: Literal["int", "float", "choice"]
    default: int | float | str
    doc: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()

    def parse(self, text: str) -> int | float | str:
        """Convert a command-line string, checking type and range.

        Args:
            text: the raw value, as Katib substitutes it into the command.

        Returns:
            The typed value.

        Raises:
            argparse.ArgumentTypeError: with a message saying what is allowed.
        """
        if self.kind == "choice":
            if text not in self.choices:
                allowed = ", ".join(self.choices)
                raise argparse.ArgumentTypeError(f"must be one of {allowed}; got {text!r}")
            return text
        value: int | float
        try:
            value = int(text) if self.kind == "int" else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be an {self.kind}; got {text!r}"
                if self.kind == "int"
                else f"must be a number; got {text!r}"
            ) from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number; got {text!r}")
        self._check_range(value, text)
        return value

    def _check_range(self, value: float, text: str) -> None:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            op = ">" if self.low_open else ">="
            raise argparse.ArgumentTypeError(f"must be {op} {self.low:g}; got {text!r}")
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            op = "<" if self.high_open else "<="
            raise argparse.ArgumentTypeError(f"must be {op} {self.high:g}; got {text!r}")

    def describe(self) -> str:
        """Allowed values in words, for help and docs."""
        if self.kind == "choice":
            return " | ".join(self.choices)
        lo = "" if self.low is None else ("(" if self.low_open else "[") + f"{self.low:g}"
        hi = "inf)" if self.high is None else f"{self.high:g}" + (")" if self.high_open else "]")
        return f"{self.kind} in {lo or '(-inf'}, {hi}"


def _int(name: str, default: int, doc: str, low: int, high: int | None = None) -> ParamSpec:
    return ParamSpec(name, "int", default, doc, low=low, high=high)


def _choice(name: str, default: str, doc: str, choices: Sequence[str]) -> ParamSpec:
    return ParamSpec(name, "choice", default, doc, choices=tuple(choices))


def _dropout(default: float) -> ParamSpec:
    return ParamSpec(
        "dropout", "float", default, "dropout probability", low=0.0, high=1.0, high_open=True
    )


_ACT = _choice("activation", "relu", "activation function", ACTIVATIONS)
_NORM = _choice("norm", "none", "normalisation after each layer", NORMS)

GLOBAL_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("lr", "float", 1e-3, "learning rate", low=0.0, low_open=True),
    _int("batch_size", 64, "mini-batch size (clamped to the training set size)", 1),
    _int("epochs", 3, "number of passes over the training set", 1, 10_000),
    ParamSpec("weight_decay", "float", 0.0, "L2 weight decay", low=0.0),
    _choice("optimizer", "adam", "optimizer", OPTIMIZERS),
    ParamSpec(
        "momentum", "float", 0.9, "momentum (sgd, rmsprop)", low=0.0, high=1.0, high_open=True
    ),
)

_CNN_PARAMS: tuple[ParamSpec, ...] = (
    _int("layers", 2, "convolution blocks (conv, norm, activation, pool, dropout)", 1, 16),
    _int("filters", 16, "output channels of every convolution", 1, 4096),
    _int("kernel", 3, "kernel size (same padding)", 1, 31),
    _dropout(0.1),
    _ACT,
    _NORM,
)

BRANCH_PARAMS: Mapping[BranchKind, tuple[ParamSpec, ...]] = {
    "dense": (
        _int("layers", 2, "hidden layers", 1, 16),
        _int("units", 32, "units in every hidden layer", 1, 65_536),
        _dropout(0.1),
        _ACT,
        _NORM,
    ),
    "cnn1d": _CNN_PARAMS,
    "cnn2d": _CNN_PARAMS,
}

HEAD_PARAMS: tuple[ParamSpec, ...] = (
    _int("layers", 1, "hidden layers after concatenating the branch outputs (0: linear)", 0, 16),
    _int("units", 64, "units in every hidden layer", 1, 65_536),
    _dropout(0.1),
    _ACT,
    _NORM,
)


@dataclass(frozen=True)
class BranchConfig:
    """Hyperparameters of one branch (subnetwork).

    ``width`` is ``units`` for a dense branch and ``filters`` for a CNN; ``kernel`` is unused
    by dense branches.
    """

    kind: BranchKind
    layers: int
    width: int
    kernel: int
    dropout: float
    activation: str
    norm: str


@dataclass(frozen=True)
class HeadConfig:
    """Hyperparameters of the fusion head."""

    layers: int
    units: int
    dropout: float
    activation: str
    norm: str


@dataclass(frozen=True)
class GlobalConfig:
    """Global (non-subnetwork) hyperparameters."""

    lr: float
    batch_size: int
    epochs: int
    weight_decay: float
    optimizer: str
    momentum: float


@dataclass(frozen=True)
class ModelConfig:
    """Everything tunable: global values, one config per branch (in input order), the head."""

    globals: GlobalConfig
    branches: Mapping[str, BranchConfig]
    head: HeadConfig

    def as_flat(self) -> dict[str, int | float | str]:
        """The configuration under its ``<group>__<param>`` names, for logging."""
        flat: dict[str, int | float | str] = dict(vars(self.globals))
        for name, cfg in self.branches.items():
            for spec in BRANCH_PARAMS[cfg.kind]:
                flat[qualified(name, spec.name)] = _branch_value(cfg, spec.name)
        for spec in HEAD_PARAMS:
            flat[qualified(HEAD_GROUP, spec.name)] = getattr(self.head, spec.name)
        return flat


def _branch_value(cfg: BranchConfig, name: str) -> int | float | str:
    value: int | float | str = getattr(cfg, "width" if name in ("units", "filters") else name)
    return value


def qualified(group: str, name: str) -> str:
    """The parameter name ``<group>__<name>``."""
    return f"{group}{GROUP_SEPARATOR}{name}"


def dest(name: str) -> str:
    """The argparse destination of a parameter name (dashes become underscores)."""
    return name.replace("-", "_")


def flag_names(name: str) -> list[str]:
    """Command-line spellings of a parameter: ``--batch_size`` and ``--batch-size``.

    Group prefixes keep their double underscore (``--top__filters``); only the part after it may
    also be written with dashes.
    """
    if GROUP_SEPARATOR in name:
        group, param = name.split(GROUP_SEPARATOR, 1)
        spellings = [name, qualified(group, param.replace("_", "-"))]
    else:
        spellings = [name, name.replace("_", "-")]
    return ["--" + s for s in dict.fromkeys(spellings)]


def add_param_arguments(
    parser: argparse.ArgumentParser, branches: Mapping[str, BranchKind]
) -> None:
    """Add one flag per tunable value for the given branch layout.

    Args:
        parser: the parser to extend.
        branches: branch name to branch kind, in input order.
    """
    group = parser.add_argument_group("global hyperparameters (names without '__')")
    for spec in GLOBAL_PARAMS:
        _add(group, spec.name, spec)
    for branch, kind in branches.items():
        group = parser.add_argument_group(
            f"subnetwork '{branch}' ({KIND_TITLES[kind]}): {branch}__<param>"
        )
        for spec in BRANCH_PARAMS[kind]:
            _add(group, qualified(branch, spec.name), spec)
    group = parser.add_argument_group(f"fusion head: {HEAD_GROUP}__<param>")
    for spec in HEAD_PARAMS:
        _add(group, qualified(HEAD_GROUP, spec.name), spec)


def _add(group: Any, name: str, spec: ParamSpec) -> None:
    parse: Callable[[str], int | float | str] = spec.parse
    group.add_argument(
        *flag_names(name),
        dest=dest(name),
        type=parse,
        default=spec.default,
        metavar=spec.kind.upper() if spec.kind != "choice" else "{" + ",".join(spec.choices) + "}",
        help=f"{spec.doc}; {spec.describe()} (default: {spec.default})",
    )


def config_from_namespace(
    ns: argparse.Namespace, branches: Mapping[str, BranchKind]
) -> ModelConfig:
    """Build the typed configuration from parsed arguments.

    Args:
        ns: the namespace produced by a parser extended with :func:`add_param_arguments`.
        branches: the same branch layout.

    Returns:
        The model configuration.
    """
    values = vars(ns)
    g = GlobalConfig(**{spec.name: values[dest(spec.name)] for spec in GLOBAL_PARAMS})
    branch_cfgs: dict[str, BranchConfig] = {}
    for branch, kind in branches.items():

        def get(param: str, branch: str = branch) -> Any:
            return values[dest(qualified(branch, param))]

        branch_cfgs[branch] = BranchConfig(
            kind=kind,
            layers=get("layers"),
            width=get("units" if kind == "dense" else "filters"),
            kernel=get("kernel") if kind != "dense" else 1,
            dropout=get("dropout"),
            activation=get("activation"),
            norm=get("norm"),
        )
    head = HeadConfig(
        **{spec.name: values[dest(qualified(HEAD_GROUP, spec.name))] for spec in HEAD_PARAMS}
    )
    return ModelConfig(globals=g, branches=branch_cfgs, head=head)


def params_markdown() -> str:
    """The hyperparameter tables of docs/trial-image.md, rendered from the declarations above.

    Returns:
        Markdown: one table for the global values, one per branch kind, one for the head.
    """

    def table(title: str, prefix: str, specs: Sequence[ParamSpec]) -> list[str]:
        rows = [
            f"**{title}**",
            "",
            "| name | allowed | default | meaning |",
            "| --- | --- | --- | --- |",
        ]
        for s in specs:
            allowed = s.describe().replace("|", "\\|")
            rows.append(f"| `{prefix}{s.name}` | {allowed} | `{s.default}` | {s.doc} |")
        return [*rows, ""]

    lines = table("Global (no `__`)", "", GLOBAL_PARAMS)
    for kind in BRANCH_KINDS:
        lines += table(
            f"Branch `<group>`: {KIND_TITLES[kind]} ({kind})", "<group>__", BRANCH_PARAMS[kind]
        )
    lines += table("Fusion head", f"{HEAD_GROUP}__", HEAD_PARAMS)
    return "\n".join(lines).rstrip() + "\n"
