"""Benchmark peers as Katib suggestion services: Optuna TPE and GP, HEBO, BoTorch.

Each peer answers ``api.v1.beta1.Suggestion/GetSuggestions`` the way Katib's own Optuna service
does: one optimizer object per experiment, kept in memory, told every completed trial it has not
seen yet (matched to its own earlier suggestions by assignment, as Katib's service does; a trial
it never suggested, e.g. after a restart, is added as a finished trial), then asked for
``current_request_number`` points. ``algorithmName`` picks the peer:

* ``tpe``: Optuna's ``TPESampler(multivariate=True, seed=random_state)``;
* ``optuna-gp``: Optuna's ``GPSampler(seed=random_state)`` (needs torch);
* ``hebo``: HEBO 0.3.6 (``HEBO(space, scramble_seed=random_state)``), from the separate
  environment ``benchmarks/.venv-peers`` (benchmarks/install_peers.sh);
* ``botorch``: a ``SingleTaskGP`` (``MixedSingleTaskGP`` when there are categoricals) with
  BoTorch's default batch acquisition ``qLogNoisyExpectedImprovement`` and its mixed-space
  optimiser, also from ``.venv-peers``.

Katib types map to each library's own: ``double`` (``logUniform``: log scale), ``int`` with its
step (log scale: step 1), ``discrete`` as an ordered index into its list (Katib's discrete values
are ordered numbers), ``categorical`` as categories. Randomness comes from ``random_state``.

Run: ``python -m benchmarks.peer_service --port 0``; it logs ``listening on 127.0.0.1:<port>``.
"""

from __future__ import annotations

import collections
import logging
import math
import sys
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np

from benchmarks._peer_server import serve
from suggestion_service._generated import api_pb2 as pb
from suggestion_service._generated import api_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
#: Experiments kept in memory per process (the suite runs one experiment at a time per worker).
MAX_EXPERIMENTS = 8


@dataclass(frozen=True)
class Param:
    """One Katib parameter, parsed once."""

    name: str
    kind: str  # double | int | discrete | categorical
    low: float = 0.0
    high: float = 0.0
    step: float = 0.0  # 0: none
    log: bool = False
    values: tuple[str, ...] = ()

    @property
    def n_grid(self) -> int:
        """Number of values of an int parameter (with its step) or of a list."""
        if self.values:
            return len(self.values)
        return math.floor((self.high - self.low) / (self.step or 1) + 1e-9) + 1

    def int_text(self, k: int) -> str:
        """The k-th int value on the grid, as Katib writes ints."""
        return str(round(self.low + k * (self.step or 1)))


def parse_space(spec: pb.ExperimentSpec) -> list[Param]:
    out = []
    for p in spec.parameter_specs.parameters:
        fs = p.feasible_space
        log_scale = fs.distribution in (pb.LOG_UNIFORM, pb.LOG_NORMAL)
        if p.parameter_type == pb.DOUBLE:
            step = float(fs.step) if fs.step else 0.0
            out.append(Param(p.name, "double", float(fs.min), float(fs.max), step, log_scale))
        elif p.parameter_type == pb.INT:
            step = float(fs.step) if fs.step else 1.0
            out.append(Param(p.name, "int", float(fs.min), float(fs.max), step, log_scale))
        elif p.parameter_type == pb.DISCRETE:
            values = tuple(sorted(fs.list, key=float))
            out.append(Param(p.name, "discrete", values=values))
        elif p.parameter_type == pb.CATEGORICAL:
            out.append(Param(p.name, "categorical", values=tuple(fs.list)))
        else:
            raise ValueError(f"parameter {p.name}: unsupported type {p.parameter_type}")
    return out


def _key(assignment: dict[str, str]) -> str:
    return ",".join(f"{k}:{assignment[k]}" for k in sorted(assignment))


class Peer:
    """An optimizer of one experiment: ``tell`` finished trials, ``ask`` for points."""

    def __init__(self, space: list[Param], seed: int) -> None:
        self.space = space
        self.seed = seed

    def tell(self, assignment: dict[str, str], loss: float) -> None:
        raise NotImplementedError

    def ask(self, n: int) -> list[dict[str, str]]:
        raise NotImplementedError


# ---- Optuna ----------------------------------------------------------------------------------
class OptunaPeer(Peer):
    """An Optuna study with ask/tell; finished trials it did not suggest are added."""

    def __init__(self, space: list[Param], seed: int, sampler: str) -> None:
        super().__init__(space, seed)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        self.dists = {p.name: self._dist(p) for p in space}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if sampler == "tpe":
                s: Any = optuna.samplers.TPESampler(multivariate=True, seed=seed)
            else:
                s = optuna.samplers.GPSampler(seed=seed)
        self.study = optuna.create_study(direction="minimize", sampler=s)
        self.pending: dict[str, list[Any]] = {}

    def _dist(self, p: Param) -> Any:
        d = self.optuna.distributions
        if p.kind == "double":
            if p.log:
                return d.FloatDistribution(p.low, p.high, log=True)
            return d.FloatDistribution(p.low, p.high, step=p.step or None)
        if p.kind == "int":
            if p.log:
                return d.IntDistribution(int(p.low), int(p.high), log=True)
            return d.IntDistribution(int(p.low), int(p.high), step=int(p.step or 1))
        if p.kind == "discrete":
            return d.IntDistribution(0, len(p.values) - 1)
        return d.CategoricalDistribution(list(p.values))

    def _to_text(self, params: dict[str, Any]) -> dict[str, str]:
        out = {}
        for p in self.space:
            v = params[p.name]
            if p.kind == "double":
                out[p.name] = repr(float(v))
            elif p.kind == "int":
                out[p.name] = str(int(v))
            elif p.kind == "discrete":
                out[p.name] = p.values[int(v)]
            else:
                out[p.name] = str(v)
        return out

    def _from_text(self, a: dict[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p in self.space:
            t = a[p.name]
            if p.kind == "double":
                out[p.name] = float(t)
            elif p.kind == "int":
                out[p.name] = int(float(t))
            elif p.kind == "discrete":
                out[p.name] = min(
                    range(len(p.values)), key=lambda i, t=t: abs(float(p.values[i]) - float(t))
                )
            else:
                out[p.name] = t
        return out

    def tell(self, assignment: dict[str, str], loss: float) -> None:
        mine = self.pending.get(_key(assignment))
        if mine:
            self.study.tell(mine.pop(0), loss)
            return
        trial = self.optuna.trial.create_trial(
            params=self._from_text(assignment), distributions=self.dists, value=loss
        )
        self.study.add_trial(trial)

    def ask(self, n: int) -> list[dict[str, str]]:
        out = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(n):
                trial = self.study.ask(self.dists)
                a = self._to_text(trial.params)
                self.pending.setdefault(_key(a), []).append(trial)
                out.append(a)
        return out


# ---- HEBO ------------------------------------------------------------------------------------
def _seed_hebo_evolution() -> None:
    """HEBO pins pymoo 0.6.0, whose algorithms drew from numpy's global generator; the pymoo that
    installs (0.6.2) seeds a fresh ``default_rng(None)`` instead, so a HEBO run would not repeat.
    Give HEBO's evolutionary acquisition optimiser a seed drawn from the (reseeded) global
    generator, which makes a run deterministic per seed again."""
    from hebo.acq_optimizers import evolution_optimizer as evo

    if getattr(evo.minimize, "_seeded", False):
        return
    original = evo.minimize

    def minimize(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("seed", int(np.random.randint(2**31 - 1)))
        return original(*args, **kwargs)

    minimize._seeded = True  # type: ignore[attr-defined]
    evo.minimize = minimize


class HeboPeer(Peer):
    """HEBO 0.3.6 with its defaults; ints with a step and discrete lists as grid indices."""

    def __init__(self, space: list[Param], seed: int) -> None:
        super().__init__(space, seed)
        from hebo.design_space.design_space import DesignSpace
        from hebo.optimizers.hebo import HEBO

        rows: list[dict[str, Any]] = []
        for p in space:
            if p.kind == "double":
                kind = "pow" if p.log else "num"
                rows.append({"name": p.name, "type": kind, "lb": p.low, "ub": p.high})
            elif p.kind == "int" and p.log and (p.step or 1) == 1:
                rows.append({"name": p.name, "type": "pow_int", "lb": p.low, "ub": p.high})
            elif p.kind in ("int", "discrete"):
                rows.append({"name": p.name, "type": "int", "lb": 0, "ub": p.n_grid - 1})
            else:
                rows.append({"name": p.name, "type": "cat", "categories": list(p.values)})
        self._seed_all(seed)
        self.opt = HEBO(DesignSpace().parse(rows), scramble_seed=seed)
        self.calls = 0
        _seed_hebo_evolution()

    @staticmethod
    def _seed_all(seed: int) -> None:
        import random

        import torch

        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    def _to_text(self, row: Any) -> dict[str, str]:
        out = {}
        for p in self.space:
            v = row[p.name]
            if p.kind == "double":
                out[p.name] = repr(float(min(max(float(v), p.low), p.high)))
            elif p.kind == "int" and p.log and (p.step or 1) == 1:
                out[p.name] = str(int(min(max(round(float(v)), p.low), p.high)))
            elif p.kind == "int":
                out[p.name] = p.int_text(int(v))
            elif p.kind == "discrete":
                out[p.name] = p.values[int(v)]
            else:
                out[p.name] = str(v)
        return out

    def _from_text(self, a: dict[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p in self.space:
            t = a[p.name]
            if p.kind == "double":
                out[p.name] = float(t)
            elif p.kind == "int" and p.log and (p.step or 1) == 1:
                out[p.name] = int(float(t))
            elif p.kind == "int":
                out[p.name] = round((float(t) - p.low) / (p.step or 1))
            elif p.kind == "discrete":
                out[p.name] = min(
                    range(len(p.values)), key=lambda i, t=t: abs(float(p.values[i]) - float(t))
                )
            else:
                out[p.name] = t
        return out

    def tell(self, assignment: dict[str, str], loss: float) -> None:
        import pandas as pd

        x = pd.DataFrame([self._from_text(assignment)])
        self.opt.observe(x, np.array([[loss]]))

    def ask(self, n: int) -> list[dict[str, str]]:
        # HEBO draws from the global numpy and torch generators: reseed per call so that a run
        # does not depend on what ran before it in this process
        self._seed_all(self.seed * 1_000 + self.calls)
        self.calls += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df = self.opt.suggest(n_suggestions=n)
        return [self._to_text(row) for _, row in df.iterrows()]


# ---- BoTorch ---------------------------------------------------------------------------------
class BotorchPeer(Peer):
    """BoTorch: a ``SingleTaskGP`` (``MixedSingleTaskGP`` when there are categoricals) with its
    default batch acquisition ``qLogNoisyExpectedImprovement``; a scrambled Sobol initial design
    of 2 (d + 1) points (BoTorch's tutorials' rule), at least 5 and at most 20.

    Doubles live on [0, 1] (log scale for ``logUniform``), ints and discrete lists as their grid
    index, categoricals as their category index; with ints, lists or categoricals the acquisition
    is optimised by ``optimize_acqf_mixed_alternating`` (BoTorch's mixed-space optimiser), else by
    ``optimize_acqf``. Restarts and raw samples are cut from BoTorch's defaults (20, 1024) to 5 and
    256 so that a call stays well inside Katib's 60 s on one core.
    """

    def __init__(self, space: list[Param], seed: int) -> None:
        super().__init__(space, seed)
        import torch

        self.torch = torch
        self.dim = len(space)
        self.n_init = min(max(2 * (self.dim + 1), 5), 20)
        self.X: list[list[float]] = []
        self.Y: list[float] = []
        self.calls = 0
        self.cat_dims = [i for i, p in enumerate(space) if p.kind == "categorical"]
        self.grid_dims = [i for i, p in enumerate(space) if p.kind in ("int", "discrete")]

    def _encode(self, a: dict[str, str]) -> list[float]:
        out = []
        for p in self.space:
            t = a[p.name]
            if p.kind == "double":
                lo, hi, v = p.low, p.high, float(t)
                if p.log:
                    lo, hi, v = math.log(lo), math.log(hi), math.log(v)
                out.append((v - lo) / (hi - lo) if hi > lo else 0.0)
            elif p.kind == "int":
                out.append(float(round((float(t) - p.low) / (p.step or 1))))
            elif p.kind == "discrete":
                k = min(range(len(p.values)), key=lambda i, t=t: abs(float(p.values[i]) - float(t)))
                out.append(float(k))
            else:
                out.append(float(p.values.index(t)))
        return out

    def _decode(self, x: Sequence[float]) -> dict[str, str]:
        out = {}
        for p, raw in zip(self.space, x, strict=True):
            u = float(raw)
            if p.kind == "double":
                lo, hi = (math.log(p.low), math.log(p.high)) if p.log else (p.low, p.high)
                v = lo + min(max(u, 0.0), 1.0) * (hi - lo)
                v = math.exp(v) if p.log else v
                out[p.name] = repr(float(min(max(v, p.low), p.high)))
            else:
                k = min(max(round(u), 0), p.n_grid - 1)
                if p.kind == "int":
                    out[p.name] = p.int_text(k)
                else:
                    out[p.name] = p.values[k]
        return out

    def tell(self, assignment: dict[str, str], loss: float) -> None:
        self.X.append(self._encode(assignment))
        self.Y.append(loss)

    def ask(self, n: int) -> list[dict[str, str]]:
        torch = self.torch
        self.calls += 1
        if len(self.Y) < self.n_init:
            sobol = torch.quasirandom.SobolEngine(self.dim, scramble=True, seed=self.seed)
            pts = sobol.draw(len(self.Y) + n + self.calls)[-n:].numpy()
            for i in self.cat_dims + self.grid_dims:
                k = self.space[i].n_grid
                pts[:, i] = np.floor(pts[:, i] * k).clip(0, k - 1)
            return [self._decode(x) for x in pts]
        return [self._decode(x) for x in self._bo(n)]

    def _bo(self, n: int) -> np.ndarray:
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import MixedSingleTaskGP, SingleTaskGP
        from botorch.models.transforms.input import Normalize
        from botorch.models.transforms.outcome import Standardize
        from botorch.optim import optimize_acqf, optimize_acqf_mixed_alternating
        from gpytorch.mlls import ExactMarginalLogLikelihood

        torch = self.torch
        torch.manual_seed(self.seed * 1_000 + self.calls)
        bounds = torch.zeros(2, self.dim, dtype=torch.double)
        bounds[1] = 1.0
        for i in self.cat_dims + self.grid_dims:
            bounds[1, i] = max(self.space[i].n_grid - 1, 1)
        x_train = torch.tensor(self.X, dtype=torch.double)
        y_train = -torch.tensor(self.Y, dtype=torch.double).unsqueeze(-1)  # BoTorch maximises
        normalize = Normalize(d=self.dim, bounds=bounds)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.cat_dims:
                model: Any = MixedSingleTaskGP(
                    x_train,
                    y_train,
                    cat_dims=self.cat_dims,
                    input_transform=normalize,
                    outcome_transform=Standardize(m=1),
                )
            else:
                model = SingleTaskGP(
                    x_train,
                    y_train,
                    input_transform=normalize,
                    outcome_transform=Standardize(m=1),
                )
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
            acq = qLogNoisyExpectedImprovement(model, X_baseline=x_train, prune_baseline=True)
            if self.cat_dims or self.grid_dims:
                grid = {i: [float(k) for k in range(self.space[i].n_grid)] for i in self.grid_dims}
                cats = {i: [float(k) for k in range(self.space[i].n_grid)] for i in self.cat_dims}
                cand, _ = optimize_acqf_mixed_alternating(
                    acq,
                    bounds,
                    discrete_dims=grid or None,
                    cat_dims=cats or None,
                    q=n,
                    num_restarts=5,
                    raw_samples=256,
                )
            else:
                cand, _ = optimize_acqf(
                    acq, bounds, q=n, num_restarts=5, raw_samples=256, options={"maxiter": 200}
                )
        return cand.detach().numpy()


PEERS = ("tpe", "optuna-gp", "hebo", "botorch")


def make_peer(algorithm: str, space: list[Param], seed: int) -> Peer:
    if algorithm in ("tpe", "optuna-gp"):
        return OptunaPeer(space, seed, algorithm)
    if algorithm == "hebo":
        return HeboPeer(space, seed)
    if algorithm == "botorch":
        return BotorchPeer(space, seed)
    raise ValueError(f"unknown algorithm {algorithm!r}; known: {list(PEERS)}")


@dataclass
class _Experiment:
    peer: Peer
    told: set[str]


class PeerSuggestion(pb_grpc.SuggestionServicer):
    """``api.v1.beta1.Suggestion`` over the peers, one optimizer per experiment in memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._experiments: collections.OrderedDict[str, _Experiment] = collections.OrderedDict()

    def _experiment(self, request: pb.GetSuggestionsRequest) -> _Experiment:
        exp = request.experiment
        # a request without trials starts an experiment (again): Katib would start a new pod
        if exp.name not in self._experiments or not request.trials:
            settings = {s.name: s.value for s in exp.spec.algorithm.algorithm_settings}
            seed = int(settings.get("random_state", "0"))
            peer = make_peer(exp.spec.algorithm.algorithm_name, parse_space(exp.spec), seed)
            self._experiments[exp.name] = _Experiment(peer, set())
            while len(self._experiments) > MAX_EXPERIMENTS:
                self._experiments.popitem(last=False)
        self._experiments.move_to_end(exp.name)
        return self._experiments[exp.name]

    def GetSuggestions(  # noqa: N802 - gRPC method name
        self, request: pb.GetSuggestionsRequest, context: grpc.ServicerContext
    ) -> pb.GetSuggestionsReply:
        spec = request.experiment.spec
        metric = spec.objective.objective_metric_name
        sign = -1.0 if spec.objective.type == pb.MAXIMIZE else 1.0
        with self._lock:
            try:
                state = self._experiment(request)
                for t in request.trials:
                    if t.name in state.told or t.status.condition != pb.TrialStatus.SUCCEEDED:
                        continue
                    values = [m.value for m in t.status.observation.metrics if m.name == metric]
                    if not values:
                        continue
                    a = {x.name: x.value for x in t.spec.parameter_assignments.assignments}
                    state.peer.tell(a, sign * float(values[-1]))
                    state.told.add(t.name)
                points = state.peer.ask(request.current_request_number)
            except ValueError as exc:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            except Exception:
                log.exception("peer failed")
                context.abort(grpc.StatusCode.INTERNAL, "peer failed; see the server log")
        reply = pb.GetSuggestionsReply()
        for point in points:
            item = reply.parameter_assignments.add()
            for name, value in point.items():
                item.assignments.add(name=name, value=value)
        return reply

    def ValidateAlgorithmSettings(  # noqa: N802 - gRPC method name
        self, request: pb.ValidateAlgorithmSettingsRequest, context: grpc.ServicerContext
    ) -> pb.ValidateAlgorithmSettingsReply:
        name = request.experiment.spec.algorithm.algorithm_name
        if name not in PEERS:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown algorithm {name!r}")
        return pb.ValidateAlgorithmSettingsReply()


def main(argv: Sequence[str] | None = None) -> int:
    return serve(PeerSuggestion(), argv, description=(__doc__ or "").splitlines()[0], max_workers=2)


if __name__ == "__main__":
    sys.exit(main())
