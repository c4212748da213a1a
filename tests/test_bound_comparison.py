"""The Fig. 3 comparison table: per-layer bounds and their per-network propagation."""

from __future__ import annotations

import json
import math

import pytest

from lmt.bounds import CertifySettings, NetworkBound, compare_bounds, comparison_frame
from lmt.models import create_model

SETTINGS = CertifySettings(n_iter=300, n_starts=2)


def test_wong_kolter_comparison_orders_the_bounds_like_fig3() -> None:
    model = create_model("wong_kolter_mnist")
    network = NetworkBound(model, (1, 28, 28))
    certified = network.certified_bound(SETTINGS)
    comparison = compare_bounds(network, SETTINGS, certified=certified)
    layers = comparison.layers
    assert list(layers["type"]) == ["Conv2d", "ReLU", "Conv2d", "ReLU", "Flatten", "Linear", "ReLU", "Linear"]
    convs = layers[layers["type"] == "Conv2d"]
    # estimate (a guaranteed lower bound) ≤ deterministic certificate; Thm 1/2 ≤ Cor. 1 ≤ Cisse+ ≤ Peck+
    assert (convs["estimate"] <= convs["certified"]).all()
    assert (convs["certified"] <= convs["estimate"] * 1.02).all(), "the FFT bound is tight here"
    for column, looser in [("thm1_2", "cor1"), ("cor1", "cisse"), ("cisse", "peck"), ("thm1_2", "frobenius")]:
        assert (convs[column] <= convs[looser]).all(), (column, looser)
    net = comparison.network.set_index("scope")
    assert net.loc["total", "certified"] == pytest.approx(certified.total, rel=1e-12)
    assert net.loc["body", "certified"] == pytest.approx(certified.body, rel=1e-12)
    for column, looser in [("thm1_2", "cor1"), ("cor1", "cisse"), ("cisse", "peck"), ("peck", "frobenius")]:
        assert net.loc["total", column] <= net.loc["total", looser]
    product = math.prod(layers["cor1"])
    assert net.loc["total", "cor1"] == pytest.approx(product, rel=1e-12), "a chain multiplies"
    frame = comparison_frame(comparison)
    assert list(frame["type"].iloc[-2:]) == ["network", "network"]
    assert list(frame["layer"].iloc[-2:]) == ["total", "body"]
    json.dumps(comparison.network_dict(), allow_nan=False)


def test_residual_network_comparison_follows_the_graph() -> None:
    model = create_model("wrn_16_4_avg").eval()
    network = NetworkBound(model, (3, 8, 8))
    comparison = compare_bounds(network, CertifySettings(n_iter=30, n_starts=1))
    layers = comparison.layers
    assert "Conv2d+BatchNorm2d" in set(layers["type"]) and "AvgPool2d" in set(layers["type"])
    net = comparison.network.set_index("scope")
    # Residual additions add: the network bound is far below the product over all layers.
    assert net.loc["total", "certified"] < 0.5 * math.prod(layers["certified"])
    assert net.loc["total", "cor1"] <= net.loc["total", "cisse"]
    json.dumps(comparison.network_dict(), allow_nan=False)
