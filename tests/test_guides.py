"""The README's "Add a model" and "Add a data set" examples, run exactly as written.

Each example is copied here; it must equal the README's block (leading location comments aside),
which a test checks once the README has the section. The training-method example is run by
tests/test_methods.py.
"""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

from lmt.bounds import CertifySettings, NetworkBound
from lmt.config import validate_config
from lmt.data import load_dataset
from lmt.models import create_model, model_input_shape
from tests.readme import readme_code, without_leading_comments

# Must equal the README's block under "## Add a model".
ADD_A_MODEL = textwrap.dedent('''\
    # my_models.py
    from torch import nn
    from lmt.models import register_model

    @register_model("mlp_mnist", input_shape=(1, 28, 28))
    def mlp_mnist(in_channels=1, num_classes=10):
        return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 28 * 28, 256), nn.ReLU(),
                             nn.Linear(256, num_classes))
''')

# Must equal the README's block under "## Add a data set".
ADD_A_DATA_SET = textwrap.dedent('''\
    import torch
    from lmt.data import DATASETS, Dataset, Split

    @DATASETS.register("noise")
    def noise(data):  # the config's data: section, defaults filled in
        """Uniform noise with random labels: a smoke test of the pipeline."""
        g = torch.Generator().manual_seed(data["split_seed"])
        x, y = torch.rand(1200, 1, 28, 28, generator=g), torch.randint(0, 10, (1200,), generator=g)
        return Dataset("noise", Split(x[:1000], y[:1000]), Split(x[1000:], y[1000:]))
''')


@pytest.mark.parametrize(("heading", "copy"), [("Add a model", ADD_A_MODEL), ("Add a data set", ADD_A_DATA_SET)])
def test_the_examples_are_the_readmes(heading: str, copy: str) -> None:
    readme = readme_code(heading)
    if readme is None:
        pytest.skip(f"README.md has no python block under '## {heading}' yet")
    assert without_leading_comments(readme) == without_leading_comments(copy)


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """Write code as a module ``name`` on the path (imported by the config's ``plugins``)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    written = []

    def write(name: str, code: str) -> str:
        (tmp_path / f"{name}.py").write_text(code)
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)


def test_add_a_model_example_is_configured_built_and_bounded(plugin) -> None:
    config = validate_config({"plugins": [plugin("my_models", ADD_A_MODEL)], "model": "mlp_mnist"})
    assert config["experiments"]["default"]["model"] == "mlp_mnist"
    model, shape = create_model("mlp_mnist").eval(), model_input_shape("mlp_mnist")
    assert model(torch.rand(2, *shape)).shape == (2, 10)
    bound = NetworkBound(model, shape).certified_bound(CertifySettings(n_iter=50, n_starts=2))
    assert bound.body is not None and bound.total > 0  # ends in a linear layer: Prop. 2 applies


def test_add_a_data_set_example_loads(plugin) -> None:
    __import__(plugin("my_data", ADD_A_DATA_SET))
    data = {**validate_config({})["data"], "name": "noise", "n_train": 500}
    dataset = load_dataset(data)
    assert (len(dataset.train), len(dataset.test)) == (500, 200) and dataset.input_shape == (1, 28, 28)
    assert torch.equal(load_dataset(data).test.x, dataset.test.x)


def test_bound_your_own_model_runs_as_written(tmp_path) -> None:
    """The README's "Bound your own model": its registration block, then its three-line block
    on a model that uses what was registered, then a float32-sound certificate of that model —
    in a fresh interpreter, so the registrations do not leak into this session."""
    import subprocess

    register = readme_code("Bound your own model", 1)
    three_lines = readme_code("Bound your own model", 0)
    assert register is not None and three_lines is not None, "README's 'Bound your own model' blocks moved"
    script = "\n".join([
        "import torch; torch.manual_seed(0)",
        register,
        "model = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), Scale(16), nn.Softsign(), nn.Linear(16, 10)).eval()",
        three_lines,
        "from lmt.certify import certify_examples",
        "x = torch.rand(5, 1, 28, 28)",
        "network = NetworkBound(model, input_shape=(1, 28, 28))",
        "radii = certify_examples(network, network.certified_bound(), model, x, model(x).argmax(1)).radius",
        "assert bound.total > 0 and (radii >= 0).all() and (radii > 0).any(), radii",  # a tiny margin may round to 0
        "print('ok', bound.total)",
    ])
    (tmp_path / "guide.py").write_text(script)
    result = subprocess.run([sys.executable, str(tmp_path / "guide.py")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-1].startswith("ok")
