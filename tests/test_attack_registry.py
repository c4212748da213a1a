"""The attack registry: every attack module registers its attack, each is built from its
defaults and rejects unknown parameters by name, config schema and classes agree, budgets are
recorded, the per-example PGD bisection really is per example, and the README's "Add an attack"
guide runs as written."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

import lmt.attacks
from lmt.attacks import ATTACKS, Attack, create_attack, list_attacks, minimal_l2
from lmt.attacks.base import BOUNDS, frozen_parameters
from lmt.attacks.foolbox_import import fb
from lmt.attacks.pgd import PGD
from lmt.config import load_schema
from lmt.docs.schema import documented_attacks
from tests.conftest import REPO


def _attack_classes_in_the_package() -> list[type]:
    """Every Attack subclass defined in an attack module of lmt/attacks/ (all but the base)."""
    found = []
    for info in pkgutil.iter_modules(lmt.attacks.__path__):
        if info.name == "base":
            continue
        module = importlib.import_module(f"lmt.attacks.{info.name}")
        found += [cls for _, cls in inspect.getmembers(module, inspect.isclass)
                  if issubclass(cls, Attack) and not inspect.isabstract(cls) and cls.__module__ == module.__name__]
    return found


def test_every_attack_in_the_package_is_registered_and_listed() -> None:
    classes = _attack_classes_in_the_package()
    assert len(classes) >= 5
    registered = {ATTACKS.get(name): name for name in list_attacks()}
    for cls in classes:
        assert cls in registered, f"{cls.__qualname__} is not registered"
    assert sorted(documented_attacks()) == list_attacks()  # no plugin has crept in


@pytest.mark.parametrize("name", list_attacks())
def test_every_attack_is_built_from_its_defaults(name: str) -> None:
    cls = ATTACKS.get(name)
    attack = create_attack(name)
    assert type(attack) is cls and attack == cls() and attack.name == name
    assert attack.budget() == {"attack": name, **dataclasses.asdict(cls())}
    assert create_attack(f"{name}.tagged") == attack


@pytest.mark.parametrize("name", list_attacks())
def test_every_attack_rejects_an_unknown_parameter_by_name(name: str) -> None:
    fields = [f.name for f in dataclasses.fields(ATTACKS.get(name))]
    message = rf"attack '{name}' has no parameter\(s\) \['no_such_budget'\]; it takes {re.escape(str(fields))}"
    with pytest.raises(TypeError, match=message):
        create_attack(name, {"no_such_budget": 1})


def test_an_unregistered_attack_has_no_name_to_record() -> None:
    @dataclasses.dataclass(frozen=True)
    class Unregistered(PGD):
        """Not registered."""

    with pytest.raises(LookupError, match="Unregistered is not registered.*ATTACKS.register"):
        Unregistered().budget()


def test_schema_documents_every_attack_with_the_class_defaults() -> None:
    """Each registered attack has a $defs entry whose properties and defaults are its fields."""
    schema = load_schema()
    patterns = schema["properties"]["attack"]["properties"]["attacks"]["patternProperties"]
    for name, cls in documented_attacks().items():
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


SMALL_BUDGETS = {"cw": {"steps": 10, "binary_search_steps": 2},
                 "pgd": {"steps": 3, "expansion_steps": 2, "search_steps": 3}}


@pytest.mark.parametrize("name", list_attacks())
def test_attacks_run_on_frozen_weights_with_the_same_result(name: str) -> None:
    """minimal_l2 runs each attack with the weights' requires_grad off (Foolbox's backward would
    otherwise compute every weight gradient too): the candidates are bitwise those of the
    trainable model, no weight gradient is written, and requires_grad is restored (also where
    the attack raises)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(36, 3)).eval()
    x, y = torch.rand(6, 1, 8, 8), torch.randint(0, 3, (6,))
    attack = create_attack(name, SMALL_BUDGETS.get(name, {"steps": 5}))
    fmodel = fb.PyTorchModel(model, bounds=BOUNDS)
    candidates = []
    for freeze in (False, True):
        torch.manual_seed(1)
        with frozen_parameters(model) if freeze else contextlib.nullcontext():
            candidates.append(attack.perturb(fmodel, x, y))
            assert all(p.requires_grad != freeze for p in model.parameters())
    assert torch.equal(candidates[0], candidates[1])
    for p in model.parameters():
        p.grad = None
    minimal_l2(model, x, y, attack, progress=False)
    assert all(p.requires_grad and p.grad is None for p in model.parameters())
    with pytest.raises(RuntimeError, match="inside"), frozen_parameters(model):
        raise RuntimeError("inside")
    assert all(p.requires_grad for p in model.parameters())


def _readme_guide() -> str:
    """The first fenced Python block under the README's "## Add an attack" heading."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Add an attack\n(.*?)(?=^## )", readme + "\n## ", re.MULTILINE | re.DOTALL)
    if section is None:
        pytest.skip("README.md has no '## Add an attack' section yet (its example is what this test runs)")
    block = re.search(r"^```python\n(.*?)^```", section[1], re.MULTILINE | re.DOTALL)
    assert block, "the README's 'Add an attack' section has no ```python block"
    return block[1]


GUIDE_CHECK = textwrap.dedent('''
    """Run in a fresh interpreter, so that the guide's attack stays out of the test session."""
    import sys
    import pytest, torch
    from torch import nn
    from lmt.attacks import create_attack, list_attacks, minimal_l2
    from lmt.config import ConfigError, validate_config
    from lmt.docs.schema import documented_attacks

    name = sys.argv[1]
    config = validate_config({"plugins": ["readme_attack"], "attack": {"attacks": {name: {}, f"{name}.tag": {}}}})
    assert name in list_attacks() and name not in documented_attacks()  # a plugin is not documented
    with pytest.raises(ConfigError, match=f"attack.attacks.{name}.*no_such_budget"):
        validate_config({"plugins": ["readme_attack"], "attack": {"attacks": {name: {"no_such_budget": 1}}}})
    # class 0 iff x_0 > 0.5: exact distances 0.05, 0.3 and 0 (misclassified)
    model = nn.Sequential(nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        model[0].bias.copy_(torch.tensor([-0.5, 0.5]))
    x, y = torch.tensor([[0.55, 0.5], [0.8, 0.5], [0.3, 0.5]]), torch.zeros(3, dtype=torch.long)
    attack = create_attack(name, config["experiments"]["default"]["attack"]["attacks"][name])
    result = minimal_l2(model, x, y, attack, progress=False)
    exact = torch.tensor([0.05, 0.3, 0.0], dtype=torch.float64)
    assert (result.distance >= exact - 1e-6).all(), result.distance
    assert result.distance[2] == 0 and result.budget["attack"] == name
    print("guide ok", result.distance.tolist())
''')


def test_readme_add_an_attack_guide_runs_as_written(tmp_path) -> None:
    """The README's example, as a plugin module: it validates in a config (an unknown parameter
    named), runs through minimal_l2 with distances ≥ the exact ones, and is not documented."""
    guide = _readme_guide()
    name = re.search(r"@ATTACKS\.register\(\"(\w+)\"\)", guide)
    assert name, "the guide registers no attack with @ATTACKS.register(\"NAME\")"
    (tmp_path / "readme_attack.py").write_text(guide)
    (tmp_path / "check.py").write_text(GUIDE_CHECK)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    run = subprocess.run([sys.executable, str(tmp_path / "check.py"), name[1]], capture_output=True, text=True,
                         env=env, timeout=300)
    assert run.returncode == 0 and "guide ok" in run.stdout, run.stdout + run.stderr
