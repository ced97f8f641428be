"""The pure katib-config merge: our entries in, Katib's bytes untouched, remove restores."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from suggestion_service.k8s.katib_config import (
    ForeignEntryError,
    KatibConfigError,
    add_entries,
    format_owned,
    parse_owned,
    remove_entries,
    render_snippet,
    validate_entries,
)

from .conftest import FIXTURES

STOCK = (FIXTURES / "katib-config.yaml").read_text()
KATIB_NAMES = [
    "random",
    "tpe",
    "grid",
    "hyperband",
    "bayesianoptimization",
    "cmaes",
    "sobol",
    "multivariate-tpe",
    "enas",
    "darts",
    "pbt",
]


def entry(name: str, image: str = "dcsa:1", memory: str = "1Gi") -> dict[str, Any]:
    return {
        "algorithmName": name,
        "image": image,
        "resources": {"limits": {"memory": memory, "cpu": "2"}},
        "env": [{"name": "OMP_NUM_THREADS", "value": "2"}],
        "ports": [{"name": "metrics", "containerPort": 8000, "protocol": "TCP"}],
    }


OURS = [entry("dcsa-bo"), entry("dc-bo"), entry("sa-bo"), entry("gp-bo")]


def names(text: str) -> list[str]:
    return [e["algorithmName"] for e in yaml.safe_load(text)["runtime"]["suggestions"]]


def test_add_appends_ours_and_keeps_every_other_byte() -> None:
    result = add_entries(STOCK, OURS, owned=())
    assert result.in_place and result.changed
    assert result.owned == ("dcsa-bo", "dc-bo", "sa-bo", "gp-bo")
    assert names(result.text) == [*KATIB_NAMES, "dcsa-bo", "dc-bo", "sa-bo", "gp-bo"]
    # Everything before our block and everything after it is the original text.
    cut = STOCK.index("    # end of Katib's suggestions")
    assert result.text.startswith(STOCK[:cut])
    assert result.text.endswith(STOCK[cut:])
    doc = yaml.safe_load(result.text)
    original = yaml.safe_load(STOCK)
    assert doc["runtime"]["suggestions"][: len(KATIB_NAMES)] == original["runtime"]["suggestions"]
    assert doc["runtime"]["suggestions"][len(KATIB_NAMES) :] == OURS
    assert {k: v for k, v in doc.items() if k != "runtime"} == {
        k: v for k, v in original.items() if k != "runtime"
    }
    assert doc["runtime"]["earlyStoppings"] == original["runtime"]["earlyStoppings"]


def test_add_is_idempotent_and_remove_restores_the_exact_text() -> None:
    first = add_entries(STOCK, OURS, owned=())
    second = add_entries(first.text, OURS, owned=first.owned)
    assert second.text == first.text
    assert not second.changed
    removed = remove_entries(second.text, owned=second.owned)
    assert removed.text == STOCK
    assert removed.owned == ()


def test_add_replaces_our_changed_entries_and_drops_names_no_longer_registered() -> None:
    first = add_entries(STOCK, OURS, owned=())
    updated = add_entries(
        first.text, [entry("dcsa-bo", image="dcsa:2", memory="3Gi")], owned=first.owned
    )
    suggestions = yaml.safe_load(updated.text)["runtime"]["suggestions"]
    assert [e["algorithmName"] for e in suggestions] == [*KATIB_NAMES, "dcsa-bo"]
    assert suggestions[-1]["image"] == "dcsa:2"
    assert suggestions[-1]["resources"]["limits"]["memory"] == "3Gi"
    assert remove_entries(updated.text, updated.owned).text == STOCK


def test_add_refuses_to_overwrite_an_entry_it_did_not_write() -> None:
    with pytest.raises(ForeignEntryError, match="'random'") as info:
        add_entries(STOCK, [entry("dcsa-bo"), entry("random")], owned=())
    assert info.value.names == ("random",)


def test_random_can_be_ours_once_recorded_as_ours() -> None:
    no_random = remove_entries(STOCK, owned=["random"])  # someone removed Katib's random
    assert "random" not in names(no_random.text)
    added = add_entries(no_random.text, [entry("random")], owned=())
    again = add_entries(added.text, [entry("random")], owned=added.owned)
    assert again.text == added.text


def test_remove_leaves_entries_it_does_not_own() -> None:
    result = remove_entries(STOCK, owned=["dcsa-bo"])
    assert result.text == STOCK and not result.changed


def test_remove_of_a_middle_entry_keeps_its_neighbours_and_comments() -> None:
    result = remove_entries(STOCK, owned=["grid"])
    assert result.in_place
    assert names(result.text) == [n for n in KATIB_NAMES if n != "grid"]
    assert "# hyperopt serves two algorithms" in result.text
    assert "memory: 400Mi   # NAS needs more than the default" in result.text


def test_flow_style_list_falls_back_to_a_structural_rewrite() -> None:
    text = "runtime:\n  suggestions: [{algorithmName: tpe, image: t}]\nother: {a: 1}\n"
    result = add_entries(text, OURS[:1], owned=())
    assert not result.in_place
    doc = yaml.safe_load(result.text)
    assert doc["other"] == {"a": 1}
    assert doc["runtime"]["suggestions"] == [{"algorithmName": "tpe", "image": "t"}, OURS[0]]


def test_missing_suggestions_key_is_created() -> None:
    text = "runtime:\n  metricsCollectors:\n    - kind: StdOut\n      image: x\n"
    result = add_entries(text, OURS[:1], owned=())
    doc = yaml.safe_load(result.text)
    assert doc["runtime"]["metricsCollectors"] == [{"kind": "StdOut", "image": "x"}]
    assert doc["runtime"]["suggestions"] == OURS[:1]


def test_removing_every_entry_leaves_a_valid_document() -> None:
    text = "runtime:\n  suggestions:\n    - algorithmName: dcsa-bo\n      image: x\nkind: K\n"
    result = remove_entries(text, owned=["dcsa-bo"])
    doc = yaml.safe_load(result.text)
    assert not (doc["runtime"]["suggestions"] or [])
    assert doc["kind"] == "K"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "must be a YAML mapping"),
        ("runtime: [1]\n", "runtime must be a mapping"),
        ("runtime:\n  suggestions: {a: 1}\n", "runtime.suggestions must be a list"),
        ("runtime: {\n", "not valid YAML"),
    ],
)
def test_malformed_config_is_rejected_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(KatibConfigError, match=message):
        add_entries(text, OURS, owned=())


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([], "non-empty YAML list"),
        ([{"algorithmName": "Bad_Name", "image": "x"}], "DNS-1123"),
        ([entry("dcsa-bo"), entry("dcsa-bo")], "appears twice"),
        ([{"algorithmName": "dcsa-bo", "image": ""}], "image must be"),
        ([{"algorithmName": "dcsa-bo", "image": "x"}], "resources.limits.memory"),
        (
            [{**entry("dcsa-bo"), "ports": [{"name": "suggestion-api", "containerPort": 6789}]}],
            "reserved by Katib",
        ),
    ],
)
def test_invalid_entries_are_rejected(entries: list[Any], message: str) -> None:
    with pytest.raises(KatibConfigError, match=message):
        validate_entries(entries)


def test_owner_annotation_round_trip() -> None:
    assert parse_owned(format_owned(["sa-bo", "dcsa-bo", "sa-bo"])) == ("dcsa-bo", "sa-bo")
    assert parse_owned(None) == ()
    assert parse_owned("") == ()


def test_snippet_is_a_list_that_pastes_under_suggestions() -> None:
    snippet = render_snippet(OURS, indent=4)
    pasted = STOCK.replace("    # end of Katib's suggestions\n", snippet)
    assert names(pasted) == [*KATIB_NAMES, "dcsa-bo", "dc-bo", "sa-bo", "gp-bo"]
