"""The benchmark problem set (benchmarks/problems.py): its split, its spaces, its scaling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks import problems as ps
from benchmarks._suite_drive import Task, experiment_spec


def test_split_is_disjoint_and_covers_every_problem() -> None:
    assert set(ps.TUNE).isdisjoint(ps.CHECK)
    assert set(ps.TUNE) | set(ps.CHECK) == set(ps.PROBLEMS)
    assert {"equal", "unequal", "interaction-0", "interaction-0.1", "interaction-0.5"} <= set(
        ps.TUNE
    )
    multi = [n for n, p in ps.PROBLEMS.items() if not p.single_group]
    single = [n for n, p in ps.PROBLEMS.items() if p.single_group]
    assert len(multi) >= 16
    assert len(single) >= 2
    for names in (ps.TUNE, ps.CHECK):
        kinds = {s.type for n in names for s in ps.PROBLEMS[n].specs()}
        assert kinds == {"double", "int", "discrete", "categorical"}
        assert any(ps.PROBLEMS[n].single_group for n in names)
        assert any(ps.PROBLEMS[n].noise for n in names)


@pytest.mark.parametrize("name", sorted(ps.PROBLEMS))
def test_problem_space_and_value(name: str) -> None:
    prob = ps.PROBLEMS[name]
    specs = prob.specs()
    assert 6 <= len(specs) <= 24
    assert len({s.name for s in specs}) == len(specs)
    groups = prob.subnetworks()
    assert prob.single_group or 2 <= len(groups) <= 6
    rng = np.random.default_rng(0)
    values = [prob.value(ps.random_assignment(prob, rng)) for _ in range(200)]
    assert all(math.isfinite(v) and v >= 0 for v in values)
    # a random point scores about 1 (interactions add to that), the optimum about 0
    assert 0.7 < float(np.median(values)) < 3.0
    assert prob.fingerprint() == prob.fingerprint()
    exp = experiment_spec(
        prob,
        "gp-bo",
        [("random_state", "0")],
        Task(problem=name, arm="gp-bo", batch=1, seed=0, budget=10),
    )
    assert [p.name for p in exp.spec.parameter_specs.parameters] == [s.name for s in specs]
    assert len(exp.name) <= 40


def test_components_are_zero_at_their_optimum() -> None:
    h6 = ps.PROBLEMS["single-h6"]
    best = dict(
        zip(
            [f"x{i}" for i in range(6)],
            [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573],
            strict=True,
        )
    )
    assert h6.value({k: repr(v) for k, v in best.items()}) == pytest.approx(0.0, abs=1e-4)


def test_categorical_variant_matters() -> None:
    prob = ps.PROBLEMS["single-mixed-sty8"]
    rng = np.random.default_rng(1)
    a = ps.random_assignment(prob, rng)
    scores = {c: prob.value({**a, "act": c}) for c in ("relu", "gelu", "tanh", "elu")}
    assert len(set(scores.values())) == 4


@pytest.mark.parametrize("fid", [2, 10, 15, 21])
def test_bbob_component_is_zero_at_the_bbob_optimum(fid: int) -> None:
    # ioh's optimum of the instance, mapped onto [0, 1] coordinates of the component's domain
    ioh = pytest.importorskip("ioh", reason="ioh is in the dev extra")
    f = ioh.get_problem(
        fid, instance=ps.BBOB_INSTANCE, dimension=4, problem_class=ioh.ProblemClass.BBOB
    )
    prob = ps.Composite("bbob-at-optimum", (ps.Comp("", f"bbob{fid}", 4),))
    at = {f"x{i}": repr(float((x + 5.0) / 10.0)) for i, x in enumerate(f.optimum.x)}
    assert prob.value(at) == pytest.approx(0.0, abs=1e-9)
    rng = np.random.default_rng(3)
    assert prob.value(ps.random_assignment(prob, rng)) > 0.01


def test_bbob_problems_are_tune_only() -> None:
    assert ps.BBOB and set(ps.BBOB) <= set(ps.TUNE)
    assert ps.SETS["tune-bbob"] == ps.BBOB
    for name in ps.CHECK:
        prob = ps.PROBLEMS[name]
        assert isinstance(prob, ps.Composite)
        assert not any(c.fn.startswith("bbob") for c in prob.comps)


def test_edge_problems_have_their_optimum_on_bounds() -> None:
    # each edge-* component's optimum sits at an end of every one of its ranges
    assert ps.EDGE and set(ps.EDGE) <= set(ps.TUNE)
    assert ps.SETS["tune-edge"] == ps.EDGE
    prob = ps.PROBLEMS["edge-all"]
    # Rosenbrock's optimum at the upper end, Levy's and Styblinski-Tang's at the lower end
    at = {
        **{f"ros__x{i}": "1" for i in range(4)},
        **{f"levy__x{i}": "0" for i in range(4)},
        **{f"sty__x{i}": "0" for i in range(4)},
    }
    assert set(at) == {s.name for s in prob.specs()}
    assert prob.value(at) == pytest.approx(0.0, abs=1e-9)
    inside = {k: "0.5" for k in at}
    assert prob.value(inside) > 0.05
    rng = np.random.default_rng(4)
    assert prob.value(ps.random_assignment(prob, rng)) > 0.05
