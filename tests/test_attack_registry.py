"""The attack registry: config schema and classes agree, names and parameters are checked,
budgets are recorded, and the per-example PGD bisection really is per example."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from lmt.attacks import ATTACKS, PGD, create_attack, list_attacks, minimal_l2
from lmt.config import load_schema


def test_schema_documents_every_attack_with_the_class_defaults() -> None:
    """Each registered attack has a $defs entry whose properties and defaults are its fields."""
    schema = load_schema()
    patterns = schema["properties"]["attack"]["properties"]["attacks"]["patternProperties"]
    for name, cls in ATTACKS.items():
        entry = schema["$defs"][f"attack_{name}"]
        assert {"$ref": f"#/$defs/attack_{name}"} in patterns.values()
        fields = {f.name: f.default for f in dataclasses.fields(cls)}
        defaults = {key: spec["default"] for key, spec in entry["properties"].items()}
        assert defaults == fields, name
        assert all(spec.get("description") for spec in entry["properties"].values()), name


def test_create_attack_names_what_is_wrong() -> None:
    with pytest.raises(KeyError, match="'sparse_rs'.*registered"):
        create_attack("sparse_rs")
    with pytest.raises(TypeError, match="'cw'.*stepz"):
        create_attack("cw.strong", {"stepz": 1000})
    with pytest.raises(ValueError, match="'pgd'.*loss"):
        create_attack("pgd", {"loss": "hinge"})
    strong = create_attack("cw.strong", {"steps": 1000})
    assert strong.steps == 1000 and strong.binary_search_steps == 9
    assert strong.budget() == {"attack": "cw", **dataclasses.asdict(strong)}


def test_pgd_bisects_each_example_on_its_own() -> None:
    """Distances 0.05 and 0.3 in one batch: each found to the bisection's precision, although
    a single shared epsilon could only fit one of them."""
    model = nn.Sequential(nn.Linear(2, 2))  # class 0 iff x_0 > 0.5
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        model[0].bias.copy_(torch.tensor([-0.5, 0.5]))
    x = torch.tensor([[0.55, 0.5], [0.8, 0.5]])
    y = torch.zeros(2, dtype=torch.long)
    attack = PGD(initial_epsilon=0.5, search_steps=12, random_start=False)
    result = minimal_l2(model, x, y, attack, progress=False)
    torch.testing.assert_close(result.distance, torch.tensor([0.05, 0.3], dtype=torch.float64), atol=2e-3, rtol=0)
    assert (result.distance >= torch.tensor([0.05, 0.3], dtype=torch.float64) - 1e-6).all()


@pytest.mark.parametrize("name", list_attacks())
def test_an_unfoolable_model_gives_inf_for_every_attack(name: str) -> None:
    """A constant model: every distance is +inf, never a bogus number, and nothing 'succeeds'."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.tensor([1.0, 0.0, 0.0]))
    small = {"cw": {"steps": 5, "binary_search_steps": 2}, "pgd": {"steps": 2, "expansion_steps": 1, "search_steps": 1}}
    attack = create_attack(name, small.get(name, {"steps": 3}))
    result = minimal_l2(model, torch.rand(5, 1, 2, 2), torch.zeros(5, dtype=torch.long), attack, progress=False)
    assert torch.isinf(result.distance).all() and not result.success.any()
