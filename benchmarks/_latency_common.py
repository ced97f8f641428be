"""Shared pieces of the latency benchmark: search spaces, Katib-shaped requests, server processes.

The search spaces and histories are defined once here so that both arms (dcsa's gp-bo and the
Katib-equivalent skopt service) get byte-for-byte the same trials.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from suggestion_service._generated import api_pb2 as pb

METRIC = "loss"
#: Katib's controller gives GetSuggestions a 60 s deadline (CONTRACT section 2).
KATIB_DEADLINE_SECONDS = 60.0
N_RUNNING = 2


@dataclass(frozen=True, kw_only=True)
class ParamDef:
    """One parameter of the benchmark's search space, written as Katib's webhook leaves it."""

    name: str
    kind: str  # double, int, discrete, categorical
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    log: bool = False
    choices: tuple[str, ...] = ()

    def spec(self) -> pb.ParameterSpec:
        """The ``ParameterSpec`` message (distribution filled in, as the mutating webhook does)."""
        types = {
            "double": pb.DOUBLE,
            "int": pb.INT,
            "discrete": pb.DISCRETE,
            "categorical": pb.CATEGORICAL,
        }
        fs = pb.FeasibleSpace(distribution=pb.LOG_UNIFORM if self.log else pb.UNIFORM)
        if self.choices:
            fs.list.extend(self.choices)
        else:
            fs.min = self._text(self.low)
            fs.max = self._text(self.high)
            if self.step is not None:
                fs.step = self._text(self.step)
        return pb.ParameterSpec(name=self.name, parameter_type=types[self.kind], feasible_space=fs)

    def _text(self, value: float) -> str:
        return str(int(value)) if self.kind == "int" else repr(float(value))

    def sample(self, rng: np.random.Generator) -> tuple[str, float]:
        """A random feasible value as Katib would send it, and its position in [0, 1]."""
        if self.choices:
            i = int(rng.integers(len(self.choices)))
            return self.choices[i], i / max(len(self.choices) - 1, 1)
        if self.kind == "int":
            step = int(self.step or 1)
            k = int(rng.integers((int(self.high) - int(self.low)) // step + 1))
            value = int(self.low) + k * step
            return str(value), (value - self.low) / (self.high - self.low)
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            u = float(rng.random())
            return repr(float(math.exp(lo + u * (hi - lo)))), u
        u = float(rng.random())
        return repr(float(self.low + u * (self.high - self.low))), u


#: Twelve mixed parameters; a ``d``-dimensional space is the first ``d`` of them, so every space
#: of 6 or more dimensions has all types: uniform and log-uniform doubles, ints with and without
#: a step, a discrete list of numbers and a categorical.
CATALOGUE: tuple[ParamDef, ...] = (
    ParamDef(name="lr", kind="double", low=1e-5, high=1e-1, log=True),
    ParamDef(name="dropout", kind="double", low=0.0, high=0.5),
    ParamDef(name="batch_size", kind="int", low=16, high=256, step=16),
    ParamDef(name="layers", kind="int", low=1, high=8),
    ParamDef(name="momentum", kind="discrete", choices=("0.0", "0.5", "0.9", "0.99")),
    ParamDef(name="optimizer", kind="categorical", choices=("adam", "sgd", "rmsprop", "adagrad")),
    ParamDef(name="weight_decay", kind="double", low=1e-6, high=1e-2, log=True),
    ParamDef(name="warmup", kind="double", low=0.0, high=0.2),
    ParamDef(name="hidden", kind="int", low=32, high=1024, step=32),
    ParamDef(name="heads", kind="int", low=1, high=16),
    ParamDef(name="smoothing", kind="discrete", choices=("0", "0.05", "0.1", "0.2")),
    ParamDef(name="activation", kind="categorical", choices=("relu", "gelu", "tanh")),
)


def space(dims: int) -> tuple[ParamDef, ...]:
    """The first ``dims`` parameters of the catalogue."""
    if not 1 <= dims <= len(CATALOGUE):
        raise ValueError(f"dims must be between 1 and {len(CATALOGUE)}, got {dims}")
    return CATALOGUE[:dims]


def _objective(u: Sequence[float], dims: int) -> float:
    """A smooth synthetic loss of the positions in [0, 1] (minimum near 0.3 on every axis)."""
    w = np.linspace(1.0, 0.2, dims)
    x = np.asarray(u)
    return float(np.sum(w * (x - 0.3) ** 2) + 0.1 * np.sin(6.0 * x[0]))


def make_request(
    *,
    algorithm: str,
    experiment: str,
    dims: int,
    n_completed: int,
    seed: int,
    settings: Sequence[tuple[str, str]] = (),
) -> pb.GetSuggestionsRequest:
    """A GetSuggestions request as Katib's controller sends it.

    ``n_completed`` SUCCEEDED trials with a seeded synthetic observation, then ``N_RUNNING``
    RUNNING trials without one; one new trial asked for (``current_request_number=1``,
    ``total_request_number = n_completed + N_RUNNING + 1``). The trials depend only on
    ``(dims, n_completed, seed)``, not on the algorithm or experiment name.
    """
    params = space(dims)
    objective = pb.ObjectiveSpec(type=pb.MINIMIZE, goal=0.0, objective_metric_name=METRIC)
    spec = pb.ExperimentSpec(
        objective=objective,
        algorithm=pb.AlgorithmSpec(
            algorithm_name=algorithm,
            algorithm_settings=[pb.AlgorithmSetting(name=k, value=v) for k, v in settings],
        ),
        parallel_trial_count=N_RUNNING + 1,
        max_trial_count=n_completed + 100,
    )
    spec.parameter_specs.parameters.extend(p.spec() for p in params)
    req = pb.GetSuggestionsRequest(
        experiment=pb.Experiment(name=experiment, spec=spec),
        current_request_number=1,
        total_request_number=n_completed + N_RUNNING + 1,
    )
    rng = np.random.default_rng([seed, dims, n_completed])
    for i in range(n_completed + N_RUNNING):
        values = [p.sample(rng) for p in params]
        trial = req.trials.add(name=f"{experiment}-t{i:05d}")
        trial.spec.objective.CopyFrom(objective)
        for p, (text, _u) in zip(params, values, strict=True):
            trial.spec.parameter_assignments.assignments.add(name=p.name, value=text)
        if i < n_completed:
            loss = _objective([u for _t, u in values], dims) + 0.01 * float(rng.normal())
            trial.status.condition = pb.TrialStatus.SUCCEEDED
            trial.status.observation.metrics.add(name=METRIC, value=repr(loss))
        else:
            trial.status.condition = pb.TrialStatus.RUNNING
    return req


def with_experiment(
    req: pb.GetSuggestionsRequest,
    *,
    algorithm: str,
    experiment: str,
    settings: Sequence[tuple[str, str]] = (),
) -> pb.GetSuggestionsRequest:
    """A copy of ``req`` for another algorithm and experiment name, same trials."""
    out = pb.GetSuggestionsRequest()
    out.CopyFrom(req)
    out.experiment.name = experiment
    algo = out.experiment.spec.algorithm
    algo.algorithm_name = algorithm
    del algo.algorithm_settings[:]
    algo.algorithm_settings.extend(pb.AlgorithmSetting(name=k, value=v) for k, v in settings)
    return out


# ---- server processes ------------------------------------------------------------------------
def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in bytes; empty where /proc cannot tell."""
    out: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for key in ("VmRSS", "VmHWM"):
        m = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
        if m:
            out[key] = int(m.group(1)) * 1024
    return out


class ServerProcess:
    """A suggestion server run as a child process; its port is read from its log.

    Args:
        name: a label for messages.
        argv: the command; it must log a line matching ``port_pattern`` once it serves.
        port_pattern: a regex with one group, the port.
        env: the process environment (default: this one's).
        cwd: its working directory (default: this one's).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        port_pattern: str,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.port_pattern = re.compile(port_pattern)
        self.port = 0
        self.start_rss = 0
        self.peak_rss = 0  # the highest VmHWM over every incarnation (a restart keeps the max)
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = Path(tempfile.mkstemp(prefix=f"latency-{name}-", suffix=".log")[1])

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self, timeout: float = 120.0) -> None:
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self._proc.returncode}; log:\n{self.log_tail()}"
                )
            m = self.port_pattern.search(self._log.read_text(errors="replace"))
            if m:
                self.port = int(m.group(1))
                self.start_rss = self.start_rss or proc_status(self.pid).get("VmRSS", 0)
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"{self.name} did not report its port in {timeout:.0f} s; log:\n{self.log_tail()}"
        )

    def sample_peak(self) -> int:
        """Read VmHWM now and keep the maximum; returns it."""
        if self._proc is not None and self._proc.poll() is None:
            self.peak_rss = max(self.peak_rss, proc_status(self.pid).get("VmHWM", 0))
        return self.peak_rss

    def restart(self) -> None:
        """Kill (after reading its peak RSS) and start again: used when a call overran its cap
        and the server is still busy computing the abandoned answer."""
        self.stop(grace=0.0)
        self.restarts += 1
        with self._log.open("w"):
            pass  # a fresh log, so the new port is the one found
        self.start()

    def stop(self, grace: float = 5.0) -> None:
        if self._proc is None:
            return
        self.sample_peak()
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM if grace > 0 else signal.SIGKILL)
            try:
                self._proc.wait(timeout=max(grace, 1.0) + 5.0)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def cleanup(self) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            os.unlink(self._log)
