"""Every registry, timm-style: each registered entry is listed, builds from its defaults, and an
unknown name or parameter is an error naming it (the unknown name's error lists the registered
ones).

The generic checks run over every :class:`lmt.registry.Registry` that the modules below expose
(models, methods, data sets, published-number sets, certificate kinds, attacks, layer bounds and
combiners); a module that stops exposing one fails.
"""

from __future__ import annotations

import importlib

import pytest
import torch

from lmt.bounds import CertifySettings, NetworkBound
from lmt.certify import CERTIFICATES, certify_examples
from lmt.config import validate_config
from lmt.data import DATASETS, DataUnavailableError, load_dataset
from lmt.methods import Method, create_method, list_methods
from lmt.models import create_model, list_models, model_input_shape
from lmt.registry import Registry
from lmt.report.published import PUBLISHED_SETS, published_numbers

MODULES = ("lmt.models", "lmt.methods", "lmt.data", "lmt.report.published", "lmt.certify", "lmt.attacks",
           "lmt.bounds.registry")


def _registries_of(module_name: str) -> list[Registry]:
    module = importlib.import_module(module_name)
    return [value for value in vars(module).values() if isinstance(value, Registry)]


def _every_registry() -> list:
    """One parameter per registry (once, where several modules expose it)."""
    params, seen = [], set()
    for module_name in MODULES:
        registries = _registries_of(module_name)
        assert registries, f"{module_name} exposes no lmt.registry.Registry"
        params += [pytest.param(r, id=f"{module_name}:{r.kind}") for r in registries if id(r) not in seen]
        seen.update(id(r) for r in registries)
    return params


REGISTRIES = _every_registry()


@pytest.mark.parametrize("registry", REGISTRIES)
def test_every_entry_is_listed_and_found(registry: Registry) -> None:
    names = registry.list()
    assert names, f"no {registry.kind} is registered"
    assert len(names) == len(registry.entries())
    for name in names:
        assert name in registry and registry.entry(name).name == name


@pytest.mark.parametrize("registry", REGISTRIES)
def test_an_unknown_name_is_rejected_listing_the_registered_ones(registry: Registry) -> None:
    with pytest.raises(KeyError) as caught:
        registry.entry("no_such_entry")
    message = caught.value.args[0]
    assert f"unknown {registry.kind} 'no_such_entry'" in message
    assert all(repr(name) in message for name in registry.list()), message


@pytest.mark.parametrize("registry", REGISTRIES)
def test_defaults_are_valid_and_an_unknown_parameter_is_named(registry: Registry) -> None:
    for name in registry.list():
        registry.params(name, {})
        with pytest.raises(TypeError, match=rf"{registry.kind} .*no_such_parameter"):
            registry.params(name, {"no_such_parameter": 1})


@pytest.mark.parametrize("name", list_models())
def test_every_model_builds_and_runs_at_its_input_shape(name: str) -> None:
    model = create_model(name).eval()
    with torch.no_grad():
        logits = model(torch.rand(2, *model_input_shape(name)))
    assert logits.shape == (2, 10)
    with pytest.raises(TypeError, match="no_such_parameter"):
        create_model(name, no_such_parameter=1)


@pytest.mark.parametrize("name", list_methods())
def test_every_method_is_created_from_its_defaults(name: str) -> None:
    method = create_method(name)
    assert isinstance(method, Method) and method.name == name
    assert type(create_method(f"{name}.tagged")) is type(method)
    with pytest.raises(TypeError, match=rf"method '{name}' has no parameter\(s\) \['no_such_parameter'\]"):
        create_method(name, {"no_such_parameter": 1})


@pytest.mark.parametrize("name", DATASETS.list())
def test_every_data_set_loads_or_offline_names_what_to_put_where(name: str, tmp_path) -> None:
    data = validate_config({"data": {"name": name, "data_dir": str(tmp_path)}})["data"]
    try:
        dataset = load_dataset(data)
    except DataUnavailableError as err:  # torchvision's, offline
        assert str(tmp_path) in str(err) and "download: true" in str(err)
        return
    assert dataset.name == name
    assert len(dataset.test) == data["n_test_embedded"] and len(dataset.train) > 0
    for split in (dataset.train, dataset.test):
        assert split.x.dtype == torch.float32 and 0 <= float(split.x.min()) <= float(split.x.max()) <= 1
        assert split.y.dtype == torch.int64 and int(split.y.max()) < dataset.num_classes


@pytest.mark.parametrize("key,value", [("data", {"name": "no_such_data"}), ("report", {"published": "no_such_set"})])
def test_config_names_come_from_the_registries(key: str, value: dict) -> None:
    """Adding a data set or a published-number set is its registration alone: the config checks
    names against the registries (no schema enum to keep in step)."""
    from lmt.config import ConfigError

    with pytest.raises(ConfigError, match=rf"'{key}\.{next(iter(value))}': unknown name 'no_such_[a-z]+'; registered"):
        validate_config({key: value})


@pytest.mark.parametrize("name", PUBLISHED_SETS.list())
def test_every_published_set_loads(name: str) -> None:
    numbers = published_numbers(name)
    assert numbers and all(n.published_set == name for n in numbers)


@pytest.mark.parametrize("name", CERTIFICATES.list())
def test_every_certificate_kind_certifies_from_its_defaults(name: str) -> None:
    model = create_model("wong_kolter_mnist").eval()
    settings = CERTIFICATES.params(name, {"n_iter": 20, "n_starts": 1})
    network = NetworkBound(model, model_input_shape("wong_kolter_mnist"))
    x = torch.rand(4, *model_input_shape("wong_kolter_mnist"))
    certificates = CERTIFICATES.get(name)(network, network.certified_bound(settings), model, x,
                                          model(x).argmax(1), settings)
    assert certificates.radius.shape == (4,) and (certificates.radius >= 0).all()


def test_the_lipschitz_margin_certificate_is_certify_examples() -> None:
    assert CERTIFICATES.get("lipschitz_margin") is certify_examples
    assert CERTIFICATES.params("lipschitz_margin", {}) == CertifySettings()
