"""Validation: one case per webhook rule with its exact message, the service's check, the CLI."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from suggestion_service.cli import main
from suggestion_service.local.commands import validate_command
from suggestion_service.local.experiment import Document
from suggestion_service.local.validate import validate_all, validate_document

from .conftest import KATIB_EXAMPLE, write_yaml

Body = dict[str, Any]


def problems(body: Body) -> list[str]:
    return [str(p) for p in validate_document(Document("x.yaml", body))]


def test_valid_tiny_experiment(make_body: Callable[..., Body], stub: Any) -> None:
    assert problems(make_body()) == []
    assert validate_all(Document("x.yaml", make_body()), lambda: stub) == []


@pytest.mark.skipif(not KATIB_EXAMPLE.exists(), reason="Katib example not available")
def test_katib_example_passes_the_webhook_checks(stub: Any) -> None:
    body = yaml.safe_load(KATIB_EXAMPLE.read_text())
    assert problems(body) == []
    # ... and our service names the algorithm it does not serve
    got = [str(p) for p in validate_all(Document("k.yaml", body), lambda: stub)]
    assert got == [
        "spec.algorithm.algorithmName: 'bayesianoptimization' is not served here; "
        f"allowed: {_served()}"
    ]
    body["spec"]["algorithm"] = {"algorithmName": "gp-bo"}
    assert validate_all(Document("k.yaml", body), lambda: stub) == []


def _served() -> list[str]:
    from suggestion_service.core.registry import algorithm_names

    return algorithm_names()


def _set(body: Body, path: str, value: Any) -> Body:
    node = body
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    last = keys[-1]
    if value is DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return body


DELETE = object()
TS = "spec.trialTemplate"
C0 = "spec.trialTemplate.trialSpec.spec.template.spec.containers.0"

CASES: list[tuple[str, list[tuple[str, Any]], list[str]]] = [
    (
        "name too long",
        [("metadata.name", "a" * 41)],
        [
            'metadata.name: Invalid value: "'
            + "a" * 41
            + '": Name must be less than or equal to 40 characters'
        ],
    ),
    (
        "name not DNS-safe",
        [("metadata.name", "Tiny_exp")],
        [
            'metadata.name: Invalid value: "Tiny_exp": name must consist of lower case '
            "alphanumeric characters or '-', start with an alphabetic character, and end with an "
            "alphanumeric character (e.g. 'my-name', or 'abc-123', regex used for validation is "
            "'^[a-z]([-a-z0-9]*[a-z0-9])?)'"
        ],
    ),
    (
        "name missing",
        [("metadata.name", DELETE)],
        ["metadata.name: Required value: must be specified"],
    ),
    (
        "maxTrialCount 0",
        [("spec.maxTrialCount", 0)],
        [
            "spec.maxTrialCount: Invalid value: 0: must be greater than 0",
            "spec.maxFailedTrialCount: Invalid value: 3: should be less than or equal to "
            "spec.maxTrialCount",
            "spec.parallelTrialCount: Invalid value: 2: should be less than or equal to "
            "spec.maxTrialCount",
        ],
    ),
    (
        "parallelTrialCount 0",
        [("spec.parallelTrialCount", 0)],
        ["spec.parallelTrialCount: Invalid value: 0: must be greater than 0"],
    ),
    (
        "parallel above max",
        [("spec.parallelTrialCount", 7)],
        [
            "spec.parallelTrialCount: Invalid value: 7: should be less than or equal to "
            "spec.maxTrialCount"
        ],
    ),
    (
        "maxFailedTrialCount negative",
        [("spec.maxFailedTrialCount", -1)],
        ["spec.maxFailedTrialCount: Invalid value: -1: should not be less than 0"],
    ),
    (
        "count not an integer",
        [("spec.maxTrialCount", "ten")],
        ['spec.maxTrialCount: Invalid value: "ten": must be an integer'],
    ),
    (
        "objective type",
        [("spec.objective.type", "lowest")],
        ['spec.objective.type: Invalid value: "lowest": must be minimize or maximize'],
    ),
    (
        "objective metric missing",
        [("spec.objective.objectiveMetricName", DELETE)],
        ["spec.objective.objectiveMetricName: Required value: must be specified"],
    ),
    (
        "objective metric repeated",
        [("spec.objective.additionalMetricNames", ["acc", "loss"])],
        [
            'spec.objective.additionalMetricNames: Invalid value: ["acc", "loss"]: should not '
            "contain spec.objective.objectiveMetricName"
        ],
    ),
    (
        "metric strategy",
        [("spec.objective.metricStrategies", [{"name": "loss", "value": "avg"}])],
        [
            'spec.objective.metricStrategies[0].value: Unsupported value: "avg": supported values: '
            '"min", "max", "latest"'
        ],
    ),
    (
        "algorithm name missing",
        [("spec.algorithm.algorithmName", "")],
        ["spec.algorithm.algorithmName: Required value: must be specified"],
    ),
    (
        "parameter type",
        [("spec.parameters.0.parameterType", "float")],
        [
            'spec.parameters[0].parameterType: Invalid value: "float": parameterType: float is not '
            "supported"
        ],
    ),
    (
        "distribution",
        [("spec.parameters.0.feasibleSpace.distribution", "gamma")],
        [
            'spec.parameters[0].feasibleSpace.distribution: Invalid value: "gamma": distribution: '
            "gamma is not supported"
        ],
    ),
    (
        "feasible space missing",
        [("spec.parameters.0.feasibleSpace", DELETE)],
        ["spec.parameters[0].feasibleSpace: Required value: feasibleSpace must be specified"],
    ),
    (
        "min missing",
        [("spec.parameters.0.feasibleSpace.min", DELETE)],
        [
            "spec.parameters[0].feasibleSpace.max: Required value: feasibleSpace.max or "
            "feasibleSpace.min must be specified for parameterType: double"
        ],
    ),
    (
        "list on a double",
        [("spec.parameters.0.feasibleSpace.list", ["1", "2"])],
        [
            'spec.parameters[0].feasibleSpace.list: Invalid value: ["1", "2"]: feasibleSpace.list '
            "is not supported for parameterType: double"
        ],
    ),
    (
        "min not below max",
        [("spec.parameters.0.feasibleSpace.min", "2")],
        ["spec.parameters[0].feasibleSpace: min (2) must be less than max (1)"],
    ),
    (
        "log with min 0",
        [("spec.parameters.0.feasibleSpace.distribution", "logUniform")],
        [
            "spec.parameters[0].feasibleSpace.min: logUniform needs min > 0, got 0; use uniform or "
            "normal"
        ],
    ),
    (
        "categorical with bounds",
        [
            (
                "spec.parameters.0",
                {
                    "name": "x",
                    "parameterType": "categorical",
                    "feasibleSpace": {"list": ["a"], "max": "3"},
                },
            )
        ],
        [
            # Katib shows the value after its defaults (distribution: uniform)
            'spec.parameters[0].feasibleSpace: Invalid value: {"list": ["a"], "max": "3", '
            '"distribution": "uniform"}: '
            "feasibleSpace .max, .min and .step is not supported for parameterType: categorical"
        ],
    ),
    (
        "no parameters",
        [("spec.parameters", [])],
        ["spec: Required value: spec.parameters or spec.nasConfig must be specified"],
    ),
    (
        "primary container name missing",
        [(f"{TS}.primaryContainerName", DELETE)],
        ["spec.trialTemplate.primaryContainerName: Required value: must be specified"],
    ),
    (
        "trial parameter reference unknown",
        [(f"{TS}.trialParameters.0.reference", "lr")],
        [
            'spec.trialTemplate.trialParameters[0].reference: Invalid value: "lr": parameter '
            "reference lr does not exist in spec.parameters: ['x']"
        ],
    ),
    (
        "trial parameter unused",
        [
            (
                f"{TS}.trialParameters",
                [
                    {"name": "xValue", "reference": "x"},
                    {"name": "trialName", "reference": "${trialSpec.Name}"},
                    {"name": "unused", "reference": "${trialSpec.Namespace}"},
                ],
            )
        ],
        [
            'spec.trialTemplate.trialParameters[2].name: Invalid value: "unused": parameter name: '
            "unused in spec.trialParameters not found in spec.trialTemplate"
        ],
    ),
    (
        "placeholder unresolved",
        [(f"{C0}.args.0", "--x=${trialParameters.learningRate}")],
        [
            'spec.trialTemplate.trialParameters[0].name: Invalid value: "xValue": parameter name: '
            "xValue in spec.trialParameters not found in spec.trialTemplate",
            'spec.trialTemplate: Invalid value: "": parameters: '
            "['${trialParameters.learningRate}'] in spec.trialTemplate not found in "
            "spec.trialTemplate.trialParameters",
        ],
    ),
    (
        "trial parameter without reference",
        [(f"{TS}.trialParameters.0.reference", DELETE)],
        [
            'spec.trialTemplate.trialParameters[0]: Invalid value: "": name and reference must be '
            "specified and name must not contain '{' or '}'",
            "spec.trialTemplate: Invalid value: \"\": parameters: ['${trialParameters.xValue}'] in "
            "spec.trialTemplate not found in spec.trialTemplate.trialParameters",
        ],
    ),
    (
        "trial template missing",
        [(TS, DELETE)],
        ["spec.trialTemplate: Required value: must be specified"],
    ),
    (
        "collector kind",
        [("spec.metricsCollectorSpec", {"collector": {"kind": "Stdout"}})],
        [
            'spec.metricsCollectorSpec.collector.kind: Invalid value: "Stdout": invalid metrics '
            "collector kind: Stdout"
        ],
    ),
    (
        "file collector without absolute path",
        [
            (
                "spec.metricsCollectorSpec",
                {
                    "collector": {"kind": "File"},
                    "source": {
                        "fileSystemPath": {"kind": "File", "path": "metrics.txt", "format": "TEXT"}
                    },
                },
            )
        ],
        [
            "spec.metricsCollectorSpec.source.fileSystemPath.path: Required value: file path where "
            "metrics file exists is required"
        ],
    ),
    (
        "filter without two groups",
        [("spec.metricsCollectorSpec", {"source": {"filter": {"metricsFormat": ["loss=(\\d+)"]}}})],
        [
            "spec.metricsCollectorSpec.source.filter.metricsFormat: Invalid value: "
            '"loss=(\\\\d+)": two top subexpressions are required'
        ],
    ),
    (
        "resume policy",
        [("spec.resumePolicy", "Sometimes")],
        ['spec.resumePolicy: Invalid value: "Sometimes": invalid ResumePolicyType'],
    ),
]


@pytest.mark.parametrize(("case", "edits", "expected"), CASES, ids=[c[0] for c in CASES])
def test_rule(
    make_body: Callable[..., Body], case: str, edits: list[tuple[str, Any]], expected: list[str]
) -> None:
    body = make_body()
    for path, value in edits:
        _set(body, path, value)
    assert problems(body) == expected


def test_every_problem_is_listed(make_body: Callable[..., Body]) -> None:
    body = make_body()
    _set(body, "metadata.name", "Bad")
    _set(body, "spec.maxFailedTrialCount", -2)
    _set(body, "spec.objective.type", "")
    _set(body, "spec.resumePolicy", "Maybe")
    fields = [p.field for p in validate_document(Document("x", body))]
    assert fields == [
        "metadata.name",
        "spec.maxFailedTrialCount",
        "spec.objective.type",
        "spec.resumePolicy",
    ]


def test_service_rejects_a_setting(make_body: Callable[..., Body], stub: Any) -> None:
    body = make_body()
    body["spec"]["algorithm"]["algorithmSettings"].append({"name": "n_trees", "value": "5"})
    got = [str(p) for p in validate_all(Document("x", body), lambda: stub)]
    assert len(got) == 1
    assert got[0].startswith(
        "spec.algorithm.algorithmSettings[n_trees]: unknown setting for "
        "algorithm 'random'; allowed: ["
    )


def test_service_not_asked_when_parameters_are_broken(make_body: Callable[..., Body]) -> None:
    body = make_body()
    _set(body, "spec.parameters.0.feasibleSpace.min", "5")

    def no_service() -> Any:
        raise AssertionError("the service must not be asked")

    got = [str(p) for p in validate_all(Document("x", body), no_service)]
    assert got == ["spec.parameters[0].feasibleSpace: min (5) must be less than max (1)"]


def test_command_multi_document_and_directory(
    tmp_path: Path, make_body: Callable[..., Body]
) -> None:
    good, bad = make_body(), make_body()
    _set(bad, "metadata.name", "bad-one")
    _set(bad, "spec.maxTrialCount", -1)
    _set(bad, "spec.parallelTrialCount", 0)
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}
    d = tmp_path / "exps"
    d.mkdir()
    write_yaml(d / "a.yaml", good, other, bad)
    write_yaml(d / "b.yml", good)
    (d / "notes.txt").write_text("not yaml: [")
    out = io.StringIO()
    assert validate_command([d], service=False, out=out) == 1
    assert out.getvalue() == (
        f"{d}/a.yaml#0 (tiny): valid\n"
        f"{d}/a.yaml#2 (bad-one): 4 problems\n"
        "  - spec.maxTrialCount: Invalid value: -1: must be greater than 0\n"
        "  - spec.parallelTrialCount: Invalid value: 0: must be greater than 0\n"
        "  - spec.maxFailedTrialCount: Invalid value: 3: should be less than or equal to "
        "spec.maxTrialCount\n"
        "  - spec.parallelTrialCount: Invalid value: 0: should be less than or equal to "
        "spec.maxTrialCount\n"
        f"{d}/b.yml (tiny): valid\n"
    )
    out = io.StringIO()
    assert validate_command([d / "b.yml"], service=False, out=out) == 0


def test_cli_exit_codes(
    tmp_path: Path, make_body: Callable[..., Body], capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_yaml(tmp_path / "good.yaml", make_body())
    body = make_body()
    _set(body, "spec.algorithm.algorithmName", "bayesianoptimization")
    unknown = write_yaml(tmp_path / "unknown.yaml", body)
    assert main(["validate", str(good)]) == 0
    assert main(["validate", str(unknown)]) == 1
    assert "spec.algorithm.algorithmName: 'bayesianoptimization' is not served here" in (
        capsys.readouterr().out
    )
    assert main(["validate", str(tmp_path / "missing.yaml")]) == 2
    (tmp_path / "broken.yaml").write_text("spec: [unclosed\n")
    assert main(["validate", str(tmp_path / "broken.yaml")]) == 2
    assert "cannot read YAML" in capsys.readouterr().out
