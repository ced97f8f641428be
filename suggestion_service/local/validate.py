"""The checks Katib's admission webhook makes on an Experiment, then the service's own.

Katib's defaults (its mutating webhook) are applied first. Messages use the webhook's field paths
and Kubernetes' field-error form (``spec.maxTrialCount: Invalid value: 0: must be greater than
0``). Unlike the webhook, which stops at some problems, every problem is listed. What the local
runner cannot run (NAS, configMap templates, a primary container it cannot find or that sets no
command, collectors other than StdOut and File) is not a Katib problem: :func:`local_problems`
lists it apart, and only ``dcsa run`` refuses it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from .._generated import api_pb2 as pb
from .._generated import api_pb2_grpc as pb_grpc
from ..core.errors import InvalidArgumentError
from ..katib import convert
from ..katib.convert import text
from .experiment import (
    COLLECTOR_KINDS,
    PLACEHOLDER,
    Document,
    Experiment,
    as_dict,
    as_list,
    find_container,
    katib_defaults,
    parse_experiment,
)

MAX_NAME_LENGTH = 40
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_NAME_MSG = (
    "name must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name', or "
    "'abc-123', regex used for validation is '^[a-z]([-a-z0-9]*[a-z0-9])?)'"
)
_META_REF = re.compile(
    r"^\$\{trialSpec\.(Name|Namespace|Kind|APIVersion|"
    r"(Labels|Annotations)\[[^]]+\])\}$"
)
_TYPES = ("double", "int", "discrete", "categorical")
_DISTRIBUTIONS = ("uniform", "logUniform", "normal", "logNormal")
_RESUME = ("", "Never", "LongRunning", "FromVolume")
_STRATEGIES = ("min", "max", "latest")
_TWO_GROUPS = re.compile(r".*\(.*\).*\(.*\).*")
_SERVICE_FIELDS = ("spec.parameters", "spec.objective", "spec.algorithm", "spec.nasConfig")


@dataclass(frozen=True)
class Problem:
    """One problem, rendered as Kubernetes renders a field error."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def _show(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def invalid(field: str, value: Any, detail: str) -> Problem:
    return Problem(field, f"Invalid value: {_show(value)}: {detail}")


def required(field: str, detail: str) -> Problem:
    return Problem(field, f"Required value: {detail}")


def unsupported(field: str, value: Any, allowed: Sequence[str]) -> Problem:
    return Problem(
        field,
        f"Unsupported value: {_show(value)}: supported values: "
        + ", ".join(json.dumps(a) for a in allowed if a),
    )


def validate_document(doc: Document) -> list[Problem]:
    """Every webhook (and local runner) problem of one Experiment document, in Katib's order."""
    if not isinstance(doc.body, dict):
        return [Problem("<document>", "not a YAML mapping")]
    body = katib_defaults(doc.body)  # the mutating webhook runs before the validating one
    problems: list[Problem] = []
    if body.get("apiVersion") != "kubeflow.org/v1beta1":
        problems.append(unsupported("apiVersion", body.get("apiVersion"), ["kubeflow.org/v1beta1"]))
    meta = as_dict(body.get("metadata"))
    name = text(meta.get("name"))
    if not name:
        problems.append(required("metadata.name", "must be specified"))
    else:
        if len(name) > MAX_NAME_LENGTH:
            problems.append(
                invalid("metadata.name", name, "Name must be less than or equal to 40 characters")
            )
        if not _NAME.match(name):
            problems.append(invalid("metadata.name", name, _NAME_MSG))
    spec = body.get("spec")
    if not isinstance(spec, dict):
        return [*problems, required("spec", "must be specified")]
    problems += _counts(spec)
    problems += _objective(spec)
    problems += _algorithm(spec)
    problems += _early_stopping(spec)
    resume = spec.get("resumePolicy", "")
    if resume not in _RESUME:
        problems.append(invalid("spec.resumePolicy", resume, "invalid ResumePolicyType"))
    problems += _trial_template(spec)
    params = as_list(spec.get("parameters"))
    if not params and spec.get("nasConfig") is None:
        problems.append(required("spec", "spec.parameters or spec.nasConfig must be specified"))
    problems += _parameters(params)
    problems += _metrics_collector(spec)
    return problems


def _int_field(spec: dict[str, Any], key: str, problems: list[Problem]) -> int | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(invalid(f"spec.{key}", value, "must be an integer"))
        return None
    return value


def _counts(spec: dict[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    failed = _int_field(spec, "maxFailedTrialCount", out)
    most = _int_field(spec, "maxTrialCount", out)
    parallel = _int_field(spec, "parallelTrialCount", out)
    if failed is not None and failed < 0:
        out.append(invalid("spec.maxFailedTrialCount", failed, "should not be less than 0"))
    if most is not None and most <= 0:
        out.append(invalid("spec.maxTrialCount", most, "must be greater than 0"))
    if parallel is not None and parallel <= 0:
        out.append(invalid("spec.parallelTrialCount", parallel, "must be greater than 0"))
    if failed is not None and most is not None and failed > most:
        out.append(
            invalid(
                "spec.maxFailedTrialCount",
                failed,
                "should be less than or equal to spec.maxTrialCount",
            )
        )
    if parallel is not None and most is not None and parallel > most:
        out.append(
            invalid(
                "spec.parallelTrialCount",
                parallel,
                "should be less than or equal to spec.maxTrialCount",
            )
        )
    return out


def _objective(spec: dict[str, Any]) -> list[Problem]:
    obj = spec.get("objective")
    if not isinstance(obj, dict):
        return [required("spec.objective", "must be specified")]
    out: list[Problem] = []
    if obj.get("type") not in ("minimize", "maximize"):
        out.append(
            invalid("spec.objective.type", text(obj.get("type")), "must be minimize or maximize")
        )
    metric = text(obj.get("objectiveMetricName"))
    if not metric:
        out.append(required("spec.objective.objectiveMetricName", "must be specified"))
    additional = [text(m) for m in as_list(obj.get("additionalMetricNames"))]
    if metric and metric in additional:
        out.append(
            invalid(
                "spec.objective.additionalMetricNames",
                additional,
                "should not contain spec.objective.objectiveMetricName",
            )
        )
    goal = obj.get("goal")
    if goal is not None and (isinstance(goal, bool) or not isinstance(goal, (int, float))):
        out.append(invalid("spec.objective.goal", goal, "must be a number"))
    for i, s in enumerate(as_list(obj.get("metricStrategies"))):
        value = as_dict(s).get("value")
        if value not in _STRATEGIES:
            out.append(
                unsupported(f"spec.objective.metricStrategies[{i}].value", value, _STRATEGIES)
            )
    return out


def _algorithm(spec: dict[str, Any]) -> list[Problem]:
    alg = spec.get("algorithm")
    if not isinstance(alg, dict):
        return [required("spec.algorithm", "must be specified")]
    if not text(alg.get("algorithmName")):
        return [required("spec.algorithm.algorithmName", "must be specified")]
    return []


def _early_stopping(spec: dict[str, Any]) -> list[Problem]:
    es = spec.get("earlyStopping")
    if es is None:
        return []
    if not text(as_dict(es).get("algorithmName")):
        return [required("spec.earlyStopping.algorithmName", "must be specified")]
    return []


def _parameters(params: list[Any]) -> list[Problem]:
    out: list[Problem] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(params):
        where = f"spec.parameters[{i}]"
        p = as_dict(raw)
        mine: list[Problem] = []
        name, ptype = text(p.get("name")), text(p.get("parameterType"))
        if not name:
            mine.append(required(f"{where}.name", "must be specified"))
        elif name in seen:
            mine.append(
                invalid(
                    f"{where}.name",
                    name,
                    f"duplicate parameter name (also spec.parameters[{seen[name]}])",
                )
            )
        else:
            seen[name] = i
        if ptype not in _TYPES:
            mine.append(
                invalid(f"{where}.parameterType", ptype, f"parameterType: {ptype} is not supported")
            )
        fs = as_dict(p.get("feasibleSpace"))
        dist = text(fs.get("distribution"))
        if dist and dist not in _DISTRIBUTIONS:
            mine.append(
                invalid(
                    f"{where}.feasibleSpace.distribution",
                    dist,
                    f"distribution: {dist} is not supported",
                )
            )
        if not fs:
            mine.append(required(f"{where}.feasibleSpace", "feasibleSpace must be specified"))
        elif ptype in ("double", "int"):
            if as_list(fs.get("list")):
                mine.append(
                    invalid(
                        f"{where}.feasibleSpace.list",
                        as_list(fs.get("list")),
                        f"feasibleSpace.list is not supported for parameterType: {ptype}",
                    )
                )
            if text(fs.get("max")) == "" or text(fs.get("min")) == "":
                mine.append(
                    required(
                        f"{where}.feasibleSpace.max",
                        f"feasibleSpace.max or feasibleSpace.min must be specified "
                        f"for parameterType: {ptype}",
                    )
                )
        elif ptype in ("discrete", "categorical") and any(
            text(fs.get(k)) for k in ("max", "min", "step")
        ):
            mine.append(
                invalid(
                    f"{where}.feasibleSpace",
                    fs,
                    f"feasibleSpace .max, .min and .step is not supported for "
                    f"parameterType: {ptype}",
                )
            )
        if not mine:
            # the service's own space rules (min < max, numbers, steps, log needs min > 0, ...),
            # through the converter the service parses requests with
            try:
                [spec] = convert.parameters_to_pb([p])
                convert.to_parameter(spec, where)
            except InvalidArgumentError as exc:
                mine.append(Problem(exc.field, exc.message))
        out += mine
    return out


def _trial_template(spec: dict[str, Any]) -> list[Problem]:
    path = "spec.trialTemplate"
    tt = spec.get("trialTemplate")
    if not isinstance(tt, dict):
        return [required(path, "must be specified")]
    out: list[Problem] = []
    primary = text(tt.get("primaryContainerName"))
    if not primary:
        out.append(required(f"{path}.primaryContainerName", "must be specified"))
    if not text(tt.get("successCondition")) or not text(tt.get("failureCondition")):
        out.append(required(path, "successCondition and failureCondition must be specified"))
    if tt.get("trialParameters") is None:
        return [*out, required(f"{path}.trialParameters", "must be specified")]
    trial_spec, config_map = tt.get("trialSpec"), tt.get("configMap")
    if trial_spec is None and config_map is None:
        return [
            *out,
            required(
                f"{path}.TrialSource",
                "spec.trialTemplate.trialSpec or spec.trialTemplate.configMap must be specified",
            ),
        ]
    if trial_spec is not None and config_map is not None:
        return [
            *out,
            required(
                path,
                "only one of spec.trialTemplate.trialSpec or "
                "spec.trialTemplate.configMap can be specified",
            ),
        ]
    if config_map is not None:
        cm = as_dict(config_map)
        if not all(
            text(cm.get(k)) for k in ("configMapName", "configMapNamespace", "templatePath")
        ):
            out.append(
                required(
                    f"{path}.configMap",
                    "configMapName, configMapNamespace and templatePath must be specified",
                )
            )
        return out  # the template itself is in the cluster: Katib checks it there
    # one line, as Katib marshals the template (a YAML dump would fold long strings)
    template = json.dumps(trial_spec, sort_keys=True, ensure_ascii=False, default=str)
    param_names = {text(as_dict(p).get("name")) for p in as_list(spec.get("parameters"))}
    names: set[str] = set()
    refs: set[str] = set()
    tps = as_list(tt.get("trialParameters"))
    for i, raw in enumerate(tps):
        tp = as_dict(raw)
        where = f"{path}.trialParameters[{i}]"
        name, ref = text(tp.get("name")), text(tp.get("reference"))
        if not name or not ref or "{" in name or "}" in name:
            out.append(
                invalid(
                    where,
                    "",
                    "name and reference must be specified and name must not contain '{' or '}'",
                )
            )
            continue
        if name in names:
            out.append(
                invalid(
                    f"{where}.name",
                    name,
                    f"parameter name {name} can't be "
                    "duplicated in spec.trialTemplate.trialParameters",
                )
            )
            continue
        if ref in refs:
            out.append(
                invalid(
                    f"{where}.reference",
                    ref,
                    f"parameter reference {ref} can't be "
                    "duplicated in spec.trialTemplate.trialParameters",
                )
            )
            continue
        names.add(name)
        refs.add(ref)
        if param_names and not _META_REF.match(ref) and ref not in param_names:
            out.append(
                invalid(
                    f"{where}.reference",
                    ref,
                    f"parameter reference {ref} does not "
                    f"exist in spec.parameters: {sorted(param_names)}",
                )
            )
        placeholder = f"${{trialParameters.{name}}}"
        if placeholder not in template:
            out.append(
                invalid(
                    f"{where}.name",
                    name,
                    f"parameter name: {name} in "
                    "spec.trialParameters not found in spec.trialTemplate",
                )
            )
        template = template.replace(placeholder, "test-value")
    left = sorted({m.group(0) for m in PLACEHOLDER.finditer(template)})
    if left:
        out.append(
            invalid(
                path,
                "",
                f"parameters: {left} in spec.trialTemplate not found in "
                "spec.trialTemplate.trialParameters",
            )
        )
    ts = as_dict(trial_spec)
    meta = as_dict(ts.get("metadata"))
    if meta.get("name") or meta.get("namespace"):
        out.append(
            invalid(
                path,
                "",
                "metadata.name and metadata.namespace in spec.trialTemplate must be omitted",
            )
        )
    if not ts.get("apiVersion") or not ts.get("kind"):
        out.append(required(path, "APIVersion and Kind in spec.trialTemplate must be specified"))
    return out


def _metrics_collector(spec: dict[str, Any]) -> list[Problem]:
    path = "spec.metricsCollectorSpec"
    mc = as_dict(spec.get("metricsCollectorSpec"))
    kind = text(as_dict(mc.get("collector")).get("kind")) or "StdOut"
    source = as_dict(mc.get("source"))
    fsp = as_dict(source.get("fileSystemPath"))
    out: list[Problem] = []
    if kind not in COLLECTOR_KINDS:
        out.append(
            invalid(f"{path}.collector.kind", kind, f"invalid metrics collector kind: {kind}")
        )
    elif kind == "File":
        if fsp.get("kind") != "File" or not os.path.isabs(text(fsp.get("path"))):
            out.append(
                required(
                    f"{path}.source.fileSystemPath.path",
                    "file path where metrics file exists is required",
                )
            )
        fmt = text(fsp.get("format"))
        if fmt not in ("TEXT", "JSON"):
            out.append(
                required(
                    f"{path}.source.fileSystemPath.format",
                    "format of metrics file is required for metrics collector",
                )
            )
        if fmt == "JSON" and source.get("filter") is not None:
            out.append(
                invalid(
                    f"{path}.source.filter",
                    "",
                    "filter must be nil when format of metrics file is json",
                )
            )
    for raw in as_list(as_dict(source.get("filter")).get("metricsFormat")):
        f = text(raw)
        try:
            re.compile(f)
        except re.error as exc:
            out.append(invalid(f"{path}.source.filter.metricsFormat", f, f"invalid filter: {exc}"))
            continue
        if not _TWO_GROUPS.match(f):
            out.append(
                invalid(
                    f"{path}.source.filter.metricsFormat", f, "two top subexpressions are required"
                )
            )
    return out


def local_problems(exp: Experiment) -> list[Problem]:
    """What the local runner cannot do although Katib can: ``dcsa run`` refuses these,
    ``dcsa validate`` reports them apart from Katib's problems."""
    out: list[Problem] = []
    spec = exp.spec
    tt = as_dict(spec.get("trialTemplate"))
    if spec.get("nasConfig") is not None:
        out.append(Problem("spec.nasConfig", "neural architecture search is not supported"))
    if tt.get("configMap") is not None:
        out.append(
            Problem(
                "spec.trialTemplate.configMap",
                "the template is in a ConfigMap of the cluster; inline it as "
                "spec.trialTemplate.trialSpec",
            )
        )
    elif isinstance(tt.get("trialSpec"), dict):
        kind = text(as_dict(tt["trialSpec"]).get("kind"))
        primary = exp.primary_container
        container = find_container(tt["trialSpec"], primary) if primary else None
        if container is None:
            out.append(
                Problem(
                    "spec.trialTemplate.primaryContainerName",
                    f"no container named {primary!r} in the {kind or 'trial'} template: the "
                    "local runner runs the primary container of a Job-like template "
                    "(containers: [...]) as a process",
                )
            )
        elif not as_list(container.get("command")):
            out.append(
                Problem(
                    "spec.trialTemplate.trialSpec",
                    f"container {primary!r} sets no command: the local runner runs the command, "
                    "it cannot run an image's entrypoint",
                )
            )
    if exp.collector.kind not in ("StdOut", "File"):
        out.append(
            Problem(
                "spec.metricsCollectorSpec.collector.kind",
                f"{exp.collector.kind}: the local runner reads metrics with the StdOut or File "
                "collector only",
            )
        )
    return out


def validate_with_service(
    exp: Experiment, stub: pb_grpc.SuggestionStub, *, timeout: float = 30.0
) -> list[Problem]:
    """Ask the suggestion service (``ValidateAlgorithmSettings``), as Katib's controller does.

    UNIMPLEMENTED counts as valid, as in Katib; any other error is one problem.
    """
    try:
        stub.ValidateAlgorithmSettings(
            pb.ValidateAlgorithmSettingsRequest(experiment=exp.to_pb()), timeout=timeout
        )
    except grpc.RpcError as err:
        code = err.code()
        if code is grpc.StatusCode.UNIMPLEMENTED:
            return []
        details = err.details() or ""
        field, sep, message = details.partition(": ")
        if sep and field.startswith(("spec.", "metadata.", "current_request_number")):
            return [Problem(field, message)]
        return [Problem("ValidateAlgorithmSettings", f"{code.name}: {details}")]
    return []


def validate_all(
    doc: Document, stub_factory: Callable[[], pb_grpc.SuggestionStub] | None
) -> list[Problem]:
    """Webhook checks, then the service's (when the fields it reads are sound).

    Args:
        stub_factory: returns a connected stub (started lazily); None skips the service.
    """
    problems = validate_document(doc)
    if stub_factory is None:
        return problems
    # The service re-checks parameters and objective; asking it about a spec already known to be
    # broken there would only repeat a problem in other words.
    if any(p.field == "spec" or p.field.startswith(_SERVICE_FIELDS) for p in problems):
        return problems
    try:
        exp = parse_experiment(doc)
    except Exception:
        return problems
    for p in validate_with_service(exp, stub_factory()):
        if str(p) not in {str(q) for q in problems}:
            problems.append(p)
    return problems
