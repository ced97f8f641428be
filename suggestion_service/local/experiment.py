"""Katib Experiment documents: loading YAML, the typed view the runner needs, protobuf, templates.

Defaults are those Katib's mutating webhook fills: parallelTrialCount 3, metrics collector StdOut,
distribution uniform, and a metric strategy per metric (min when minimizing, max when maximizing).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .._generated import api_pb2 as pb
from ..katib.convert import experiment_to_pb, text

API_VERSION = "kubeflow.org/v1beta1"
KIND = "Experiment"
DEFAULT_PARALLEL = 3
COLLECTOR_KINDS = (
    "StdOut",
    "File",
    "TensorFlowEvent",
    "PrometheusMetric",
    "Custom",
    "None",
    "Push",
)
#: Collectors the local runner can read.
LOCAL_COLLECTORS = ("StdOut", "File")
PLACEHOLDER = re.compile(r"\$\{trialParameters\.([^}]*)\}")
_META = re.compile(r"^\$\{trialSpec\.(Name|Namespace|Kind|APIVersion|Labels\[([^]]+)\])\}$")


#: Kubeflow training job kinds whose trial template Katib's webhook fills with its defaults.
KUBEFLOW_JOB_KINDS = ("TFJob", "PyTorchJob", "XGBoostJob", "MPIJob", "TrainJob")
DEFAULT_METRICS_FILE = "/var/log/katib/metrics.log"
DEFAULT_TFEVENT_DIR = "/var/log/katib/tfevent/"
_COMPLETE = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
_SUCCEEDED = 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'
_FAILED = 'status.conditions.#(type=="Failed")#|#(status=="True")#'


def katib_defaults(body: Any) -> Any:
    """A copy of an Experiment document with what Katib's mutating webhook fills in
    (``Experiment.SetDefault``): parallelTrialCount 3, resumePolicy Never, a metric strategy
    per metric (min when minimizing, max when maximizing, else latest), a Job's or Kubeflow
    job's success and failure conditions, the StdOut collector, a File collector's kind,
    path and format (TEXT), a TensorFlowEvent collector's directory, and ``distribution:
    uniform``. Anything that is not a mapping where one is expected is left alone."""
    if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
        return copy.deepcopy(body)
    out = copy.deepcopy(body)
    spec: dict[str, Any] = out["spec"]
    spec.setdefault("parallelTrialCount", DEFAULT_PARALLEL)
    if not spec.get("resumePolicy"):
        spec["resumePolicy"] = "Never"
    obj = spec.get("objective")
    if isinstance(obj, dict):
        kind = {"minimize": "min", "maximize": "max"}.get(text(obj.get("type")), "latest")
        strategies = obj.get("metricStrategies")
        if not isinstance(strategies, list):
            strategies = obj["metricStrategies"] = []
        named = {text(as_dict(s).get("name")) for s in strategies}
        for metric in (obj.get("objectiveMetricName"), *as_list(obj.get("additionalMetricNames"))):
            if text(metric) not in named:
                strategies.append({"name": text(metric), "value": kind})
                named.add(text(metric))
    tt = spec.get("trialTemplate")
    if isinstance(tt, dict) and isinstance(tt.get("trialSpec"), dict):
        job_kind = text(tt["trialSpec"].get("kind"))
        if job_kind in ("Job", "TrainJob", *KUBEFLOW_JOB_KINDS):
            succeeded = _SUCCEEDED if job_kind in KUBEFLOW_JOB_KINDS[:4] else _COMPLETE
            tt["successCondition"] = tt.get("successCondition") or succeeded
            tt["failureCondition"] = tt.get("failureCondition") or _FAILED
        if job_kind == "TrainJob" and not tt.get("primaryPodLabels"):
            tt["primaryPodLabels"] = {
                "jobset.sigs.k8s.io/replicatedjob-name": "node",
                "batch.kubernetes.io/job-completion-index": "0",
            }
        elif job_kind in KUBEFLOW_JOB_KINDS and not tt.get("primaryPodLabels"):
            tt["primaryPodLabels"] = {"training.kubeflow.org/job-role": "master"}
    mcs = spec.get("metricsCollectorSpec")
    if mcs is None:
        mcs = spec["metricsCollectorSpec"] = {}
    if isinstance(mcs, dict):
        if mcs.get("collector") is None:
            mcs["collector"] = {"kind": "StdOut"}
        kind = text(as_dict(mcs.get("collector")).get("kind"))
        if kind in ("File", "TensorFlowEvent"):
            source = mcs.setdefault("source", {})
            if isinstance(source, dict):
                fsp = source.setdefault("fileSystemPath", {})
                if isinstance(fsp, dict):
                    file = kind == "File"
                    fsp["kind"] = fsp.get("kind") or ("File" if file else "Directory")
                    fsp["path"] = fsp.get("path") or (
                        DEFAULT_METRICS_FILE if file else DEFAULT_TFEVENT_DIR
                    )
                    if file:
                        fsp["format"] = fsp.get("format") or "TEXT"
    for p in as_list(spec.get("parameters")):
        fs = as_dict(p).get("feasibleSpace")
        if isinstance(fs, dict) and not fs.get("distribution"):
            fs["distribution"] = "uniform"
    return out


class ExperimentError(Exception):
    """The input cannot be used (unreadable file, bad YAML, not a valid Experiment)."""


@dataclass(frozen=True)
class Document:
    """One YAML document: ``source`` is ``path`` or ``path#index`` for multi-document files."""

    source: str
    body: Any

    @property
    def is_experiment(self) -> bool:
        return isinstance(self.body, dict) and self.body.get("kind") == KIND

    @property
    def name(self) -> str:
        meta = self.body.get("metadata") if isinstance(self.body, dict) else None
        return str(meta.get("name") or "") if isinstance(meta, dict) else ""


def load_documents(paths: Sequence[Path]) -> list[Document]:
    """Every YAML document in the given files and directories (``*.yaml``/``*.yml``, sorted).

    Raises:
        ExperimentError: a path is missing or a file is not valid YAML.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
            )
        elif path.is_file():
            files.append(path)
        else:
            raise ExperimentError(f"{path}: no such file or directory")
    docs: list[Document] = []
    for file in files:
        try:
            bodies = [
                b for b in yaml.safe_load_all(file.read_text(encoding="utf-8")) if b is not None
            ]
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ExperimentError(f"{file}: cannot read YAML: {exc}") from None
        for i, body in enumerate(bodies):
            docs.append(Document(f"{file}#{i}" if len(bodies) > 1 else str(file), body))
    return docs


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


@dataclass(frozen=True, kw_only=True)
class Collector:
    """Where a trial's metrics come from."""

    kind: str = "StdOut"
    path: str = ""
    file_format: str = "TEXT"
    filters: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Container:
    """The primary container after substitution: what the local runner executes."""

    command: tuple[str, ...]
    env: tuple[tuple[str, str], ...]


@dataclass(frozen=True, kw_only=True)
class Experiment:
    """The fields of a (validated) Experiment the runner uses; ``body`` keeps the full document."""

    name: str
    namespace: str
    goal: str  # "minimize" or "maximize"
    objective_metric: str
    additional_metrics: tuple[str, ...]
    strategies: Mapping[str, str]
    target: float | None
    algorithm: str
    settings: tuple[tuple[str, str], ...]
    parallel: int
    max_trials: int | None
    max_failed: int | None
    collector: Collector
    primary_container: str
    body: Mapping[str, Any]

    @property
    def metric_names(self) -> tuple[str, ...]:
        return (self.objective_metric, *self.additional_metrics)

    @property
    def spec(self) -> dict[str, Any]:
        return as_dict(self.body.get("spec"))

    @property
    def active_deadline(self) -> tuple[float, str] | None:
        """The trial template's ``activeDeadlineSeconds`` (the Job's or its pod's, the smaller)
        and where it was set, or None."""
        trial_spec = as_dict(as_dict(self.spec.get("trialTemplate")).get("trialSpec"))
        job = as_dict(trial_spec.get("spec"))
        pod = as_dict(as_dict(job.get("template")).get("spec"))
        found = [
            (float(v), where)
            for v, where in (
                (job.get("activeDeadlineSeconds"), "spec.activeDeadlineSeconds"),
                (pod.get("activeDeadlineSeconds"), "spec.template.spec.activeDeadlineSeconds"),
            )
            if isinstance(v, int | float) and not isinstance(v, bool) and v > 0
        ]
        return min(found) if found else None

    def defaulted_spec(
        self, *, parallel: int | None = None, max_trials: int | None = None
    ) -> dict[str, Any]:
        """The spec after Katib's mutating webhook (:func:`katib_defaults`); ``parallel`` and
        ``max_trials`` replace the counts as an edit of the running Experiment would."""
        spec: dict[str, Any] = as_dict(as_dict(katib_defaults(dict(self.body))).get("spec"))
        if parallel is not None:
            spec["parallelTrialCount"] = parallel
        if max_trials is not None:
            spec["maxTrialCount"] = max_trials
        return spec

    def to_pb(self, *, parallel: int | None = None, max_trials: int | None = None) -> pb.Experiment:
        """The Experiment as Katib's controller sends it (see :meth:`defaulted_spec`)."""
        return experiment_to_pb(
            self.name, self.defaulted_spec(parallel=parallel, max_trials=max_trials)
        )

    def trial_parameters(self) -> list[tuple[str, str]]:
        tt = as_dict(self.spec.get("trialTemplate"))
        return [
            (text(as_dict(tp).get("name")), text(as_dict(tp).get("reference")))
            for tp in as_list(tt.get("trialParameters"))
        ]

    def render(
        self, *, trial_name: str, assignments: Mapping[str, str], labels: Mapping[str, str]
    ) -> Container:
        """Substitute ``${trialParameters.*}`` in the trial template and return its primary
        container's command (``command`` then ``args``) and ``env``.

        Raises:
            ExperimentError: the primary container is missing or has no command.
        """
        values: dict[str, str] = {}
        tt = as_dict(self.spec.get("trialTemplate"))
        trial_spec = as_dict(tt.get("trialSpec"))
        for name, ref in self.trial_parameters():
            meta = _META.match(ref)
            if meta is None:
                values[name] = assignments.get(ref, "")
            elif meta.group(1) == "Name":
                values[name] = trial_name
            elif meta.group(1) == "Namespace":
                values[name] = self.namespace
            elif meta.group(1) == "Kind":
                values[name] = text(trial_spec.get("kind"))
            elif meta.group(1) == "APIVersion":
                values[name] = text(trial_spec.get("apiVersion"))
            else:
                values[name] = labels.get(meta.group(2), "")
        rendered = _substitute(copy.deepcopy(trial_spec), values)
        container = find_container(rendered, self.primary_container)
        if container is None:
            raise ExperimentError(
                f"spec.trialTemplate.trialSpec has no container named {self.primary_container!r}"
            )
        command = [text(c) for c in as_list(container.get("command"))]
        if not command:
            raise ExperimentError(
                f"container {self.primary_container!r} sets no command; the "
                "local runner (like Katib's metrics collector) needs one"
            )
        command += [text(a) for a in as_list(container.get("args"))]
        env = tuple(
            (text(as_dict(e).get("name")), text(as_dict(e).get("value")))
            for e in as_list(container.get("env"))
            if "value" in as_dict(e)
        )
        return Container(command=tuple(command), env=env)


def _substitute(node: Any, values: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), node)
    if isinstance(node, list):
        return [_substitute(v, values) for v in node]
    if isinstance(node, dict):
        return {k: _substitute(v, values) for k, v in node.items()}
    return node


def find_container(node: Any, name: str) -> dict[str, Any] | None:
    """The container called ``name`` anywhere in a Job, PyTorchJob, TFJob, ... spec."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                for c in value:
                    if isinstance(c, dict) and c.get("name") == name:
                        return c
            found = find_container(value, name)
            if found is not None:
                return found
    elif isinstance(node, list):
        for value in node:
            found = find_container(value, name)
            if found is not None:
                return found
    return None


def _int_or_none(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ExperimentError(f"{value!r} is not an integer")
    return value


def parse_experiment(doc: Document) -> Experiment:
    """The typed view of an Experiment document that passed :func:`validate_document`.

    Raises:
        ExperimentError: the document is not an Experiment this runner can use.
    """
    if not doc.is_experiment:
        raise ExperimentError(f"{doc.source}: not a Katib Experiment (kind: {KIND})")
    body = as_dict(doc.body)
    meta, spec = as_dict(body.get("metadata")), as_dict(body.get("spec"))
    obj = as_dict(spec.get("objective"))
    goal = text(obj.get("type"))
    metric = text(obj.get("objectiveMetricName"))
    additional = tuple(text(m) for m in as_list(obj.get("additionalMetricNames")))
    default = "max" if goal == "maximize" else "min"
    strategies = dict.fromkeys((metric, *additional), default)
    for raw in as_list(obj.get("metricStrategies")):
        ms = as_dict(raw)
        strategies[text(ms.get("name"))] = text(ms.get("value"))
    target = obj.get("goal")
    alg = as_dict(spec.get("algorithm"))
    mc = as_dict(as_dict(as_dict(katib_defaults(body)).get("spec")).get("metricsCollectorSpec"))
    source = as_dict(mc.get("source"))
    fsp = as_dict(source.get("fileSystemPath"))
    collector = Collector(
        kind=text(as_dict(mc.get("collector")).get("kind")) or "StdOut",
        path=text(fsp.get("path")),
        file_format=text(fsp.get("format")).upper() or "TEXT",
        filters=tuple(text(f) for f in as_list(as_dict(source.get("filter")).get("metricsFormat"))),
    )
    try:
        return Experiment(
            name=text(meta.get("name")),
            namespace=text(meta.get("namespace")) or "default",
            goal=goal,
            objective_metric=metric,
            additional_metrics=additional,
            strategies=strategies,
            target=None if target is None else float(target),
            algorithm=text(alg.get("algorithmName")),
            settings=tuple(
                (text(as_dict(s).get("name")), text(as_dict(s).get("value")))
                for s in as_list(alg.get("algorithmSettings"))
            ),
            parallel=_int_or_none(spec.get("parallelTrialCount")) or DEFAULT_PARALLEL,
            max_trials=_int_or_none(spec.get("maxTrialCount")),
            max_failed=_int_or_none(spec.get("maxFailedTrialCount")),
            collector=collector,
            primary_container=text(as_dict(spec.get("trialTemplate")).get("primaryContainerName")),
            body=body,
        )
    except (TypeError, ValueError) as exc:
        raise ExperimentError(f"{doc.source}: {exc}") from None
