"""Runs inside a separate virtualenv holding Katib's published stubs (PyPI kubeflow-katib).

Usage: python katib_stub_client.py ADDRESS OUT.json

Loads kubeflow/katib/katib_api_pb2*.py without running the kubeflow.katib package __init__
(which imports the whole SDK), then calls our server the way Katib's controller does, and dumps
the wire descriptor of Katib's messages for a field-by-field comparison with ours.
"""

import importlib
import json
import sys
import sysconfig
import types
from pathlib import Path

import grpc
from descriptor_table import descriptor_table  # beside this script

site = Path(sysconfig.get_paths()["purelib"])
for name in ("kubeflow", "kubeflow.katib"):
    pkg = types.ModuleType(name)
    pkg.__path__ = [str(site.joinpath(*name.split(".")))]
    sys.modules[name] = pkg
katib_pb = importlib.import_module("kubeflow.katib.katib_api_pb2")
katib_grpc = importlib.import_module("kubeflow.katib.katib_api_pb2_grpc")


def experiment(settings):
    exp = katib_pb.Experiment(name="katib-stubs")
    spec = exp.spec
    p = spec.parameter_specs.parameters.add(name="lr", parameter_type=katib_pb.DOUBLE)
    p.feasible_space.min, p.feasible_space.max = "0.001", "0.1"
    p.feasible_space.distribution = katib_pb.LOG_UNIFORM
    q = spec.parameter_specs.parameters.add(name="layers", parameter_type=katib_pb.INT)
    q.feasible_space.min, q.feasible_space.max = "1", "4"
    c = spec.parameter_specs.parameters.add(name="opt", parameter_type=katib_pb.CATEGORICAL)
    c.feasible_space.list.extend(["sgd", "adam"])
    c.feasible_space.distribution = katib_pb.UNIFORM
    spec.objective.type = katib_pb.MAXIMIZE
    spec.objective.objective_metric_name = "accuracy"
    spec.algorithm.algorithm_name = "gp-bo"
    for k, v in settings.items():
        spec.algorithm.algorithm_settings.add(name=k, value=v)
    return exp


def main():
    address, out_path = sys.argv[1], sys.argv[2]
    result = {}
    with grpc.insecure_channel(address) as channel:
        stub = katib_grpc.SuggestionStub(channel)
        stub.ValidateAlgorithmSettings(
            katib_pb.ValidateAlgorithmSettingsRequest(experiment=experiment({"random_state": "3"})),
            timeout=30,
        )
        result["validate_ok"] = True
        try:
            stub.ValidateAlgorithmSettings(
                katib_pb.ValidateAlgorithmSettingsRequest(experiment=experiment({"bogus": "1"})),
                timeout=30,
            )
            result["validate_bad"] = "OK"
        except grpc.RpcError as err:
            result["validate_bad"] = [err.code().name, err.details()]
        trials = []
        for i, (lr, layers, opt, acc) in enumerate(
            [
                ("0.01", "2", "adam", "0.91"),
                ("0.05", "1", "sgd", "0.85"),
                ("0.002", "4", "adam", "0.88"),
            ]
        ):
            t = katib_pb.Trial(name=f"katib-stubs-t{i}")
            for k, v in (("lr", lr), ("layers", layers), ("opt", opt)):
                t.spec.parameter_assignments.assignments.add(name=k, value=v)
            t.status.condition = katib_pb.TrialStatus.SUCCEEDED
            t.status.observation.metrics.add(name="accuracy", value=acc)
            trials.append(t)
        running = katib_pb.Trial(name="katib-stubs-run")
        for k, v in (("lr", "0.02"), ("layers", "3"), ("opt", "sgd")):
            running.spec.parameter_assignments.assignments.add(name=k, value=v)
        running.status.condition = katib_pb.TrialStatus.RUNNING
        trials.append(running)
        reply = stub.GetSuggestions(
            katib_pb.GetSuggestionsRequest(
                experiment=experiment({"n_initial_points": "2"}),
                trials=trials,
                current_request_number=3,
                total_request_number=7,
            ),
            timeout=60,
        )
        result["suggestions"] = [
            {
                "trial_name": a.trial_name,
                "labels": dict(a.labels),
                "assignments": {x.name: x.value for x in a.assignments},
            }
            for a in reply.parameter_assignments
        ]
        result["algorithm"] = {
            "name": reply.algorithm.algorithm_name,
            "settings": [s.name for s in reply.algorithm.algorithm_settings],
        }
    result["messages"], result["enums"] = descriptor_table(katib_pb)
    Path(out_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
