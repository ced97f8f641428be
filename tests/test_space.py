"""Search-space parsing, warping, snapping and Katib string forms."""

from __future__ import annotations

import numpy as np
import pytest

from suggestion_service.core.errors import InvalidSearchSpaceError
from suggestion_service.core.space import format_double, make_parameter, make_space


def param(**kw):  # type: ignore[no-untyped-def]
    base = {"name": "p", "type_name": "double", "where": "spec.parameters[0]"}
    base.update(kw)
    return make_parameter(**base)


@pytest.mark.parametrize(
    ("kw", "field", "text"),
    [
        ({"min_text": "1", "max_text": "1"}, "spec.parameters[0].feasibleSpace", "less than max"),
        ({"min_text": "2", "max_text": "1"}, "spec.parameters[0].feasibleSpace", "less than max"),
        (
            {"min_text": "a", "max_text": "1"},
            "spec.parameters[0].feasibleSpace.min",
            "not a number",
        ),
        ({"min_text": "0", "max_text": "nan"}, "spec.parameters[0].feasibleSpace.max", "finite"),
        (
            {"min_text": "0", "max_text": "1", "step_text": "0"},
            "spec.parameters[0].feasibleSpace.step",
            "> 0",
        ),
        (
            {"min_text": "0", "max_text": "1", "step_text": "-0.1"},
            "spec.parameters[0].feasibleSpace.step",
            "> 0",
        ),
        (
            {"min_text": "0", "max_text": "1", "distribution": "logUniform"},
            "spec.parameters[0].feasibleSpace.min",
            "needs min > 0",
        ),
        (
            {"min_text": "-1", "max_text": "1", "distribution": "logNormal"},
            "spec.parameters[0].feasibleSpace.min",
            "needs min > 0",
        ),
        (
            {"min_text": "0", "max_text": "1", "distribution": "cauchy"},
            "spec.parameters[0].feasibleSpace.distribution",
            "allowed",
        ),
        (
            {"type_name": "float", "min_text": "0", "max_text": "1"},
            "spec.parameters[0].parameterType",
            "allowed",
        ),
        (
            {"type_name": "int", "min_text": "0.5", "max_text": "3"},
            "spec.parameters[0].feasibleSpace.min",
            "integer",
        ),
        (
            {"type_name": "int", "min_text": "0", "max_text": "3", "step_text": "1.5"},
            "spec.parameters[0].feasibleSpace.step",
            "integer",
        ),
        ({"type_name": "categorical"}, "spec.parameters[0].feasibleSpace.list", "at least one"),
        (
            {"type_name": "categorical", "choices": ["a", "a"]},
            "spec.parameters[0].feasibleSpace.list",
            "unique",
        ),
        (
            {"type_name": "discrete", "choices": ["1", "x"]},
            "spec.parameters[0].feasibleSpace.list[1]",
            "not a number",
        ),
        (
            {"type_name": "discrete", "choices": []},
            "spec.parameters[0].feasibleSpace.list",
            "at least one",
        ),
        (
            {"type_name": "double", "min_text": "0"},
            "spec.parameters[0].feasibleSpace",
            "both min and max",
        ),
        ({"name": "", "min_text": "0", "max_text": "1"}, "spec.parameters[0].name", "empty"),
    ],
)
def test_bad_parameters_name_the_field(kw: dict[str, object], field: str, text: str) -> None:
    with pytest.raises(InvalidSearchSpaceError) as err:
        param(**kw)
    assert err.value.field == field
    assert text in err.value.message


def test_duplicate_names_rejected() -> None:
    a = param(min_text="0", max_text="1")
    with pytest.raises(InvalidSearchSpaceError, match=r"spec.parameters\[1\].name: duplicate"):
        make_space([a, a])


def test_negative_double_with_uniform_is_fine() -> None:
    """Katib's skopt forces log-uniform and crashes on min <= 0; we do not."""
    p = param(min_text="-5", max_text="0")
    x = p.from_latent(np.linspace(0, 1, 11))
    assert x.min() == -5 and x.max() == 0


def test_int_with_step_hits_every_grid_value_equally() -> None:
    p = param(type_name="int", min_text="2", max_text="11", step_text="3")  # 2 5 8 11
    x = p.from_latent((np.arange(4000) + 0.5) / 4000)
    values, counts = np.unique(x, return_counts=True)
    assert values.tolist() == [2, 5, 8, 11]
    assert counts.tolist() == [1000] * 4
    assert [p.format(v) for v in values] == ["2", "5", "8", "11"]


def test_double_step_is_written_without_binary_noise() -> None:
    p = param(min_text="0", max_text="1", step_text="0.1")
    x = p.from_latent(np.array([0.35]))  # 4th of 11 cells -> 0.3
    assert p.format(x[0]) == "0.3"


def test_log_uniform_warp_is_uniform_in_log_space() -> None:
    p = param(min_text="0.001", max_text="10", distribution="logUniform")
    assert p.unwarp(np.array([0.25]))[0] == pytest.approx(0.01)
    assert p.warp(np.array([1.0]))[0] == pytest.approx(0.75)


def test_normal_is_centred_truncated_at_three_sigma() -> None:
    p = param(min_text="0", max_text="6", distribution="normal")
    x = p.from_latent(np.random.default_rng(0).random(20000))
    assert x.min() >= 0 and x.max() <= 6
    assert x.mean() == pytest.approx(3.0, abs=0.03)
    assert x.std() == pytest.approx(0.986, abs=0.03)  # sigma 1 truncated at +-3


def test_discrete_written_exactly_as_listed_and_sorted_numerically() -> None:
    p = param(type_name="discrete", choices=["10", "2", "0.50"])
    assert p.labels == ("0.50", "2", "10")
    assert p.format(p.parse("0.5", where="x")) == "0.50"
    assert p.features(np.array([0.0, 2.0])).tolist() == [0.0, 1.0]
    assert p.from_feature(np.array([0.02, 0.98])).tolist() == [0.0, 2.0]


def test_categorical_feature_is_the_category_index() -> None:
    p = param(type_name="categorical", choices=["a", "b", "c"])
    assert p.features(np.array([1.0, 2.0])).tolist() == [1.0, 2.0]
    with pytest.raises(InvalidSearchSpaceError, match="not one of"):
        p.parse("d", where="x")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (1e-05, "0.00001"),
        (123.5, "123.5"),
        (-2.0, "-2"),
        (1e20, "100000000000000000000"),
    ],
)
def test_format_double(value: float, text: str) -> None:
    assert format_double(value) == text


def test_parse_rejects_out_of_range_values() -> None:
    p = param(min_text="0", max_text="1")
    with pytest.raises(InvalidSearchSpaceError, match="outside"):
        p.parse("1.5", where="x")
