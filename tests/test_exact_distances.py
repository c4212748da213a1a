"""Attacks, certificates and the inequality chain against 2-D classifiers whose minimal L2
adversarial distance is known exactly.

* Affine F(x) = W x + b: the distance is min_{i≠y} (z_y − z_i) / ‖w_y − w_i‖.
* A 1-hidden-layer ReLU net on 2-D inputs: piecewise affine, one piece per activation pattern.
  The closest misclassified point lies on some line {z_i = z_y} of some piece, so the exact
  distance is the minimum, over patterns and classes, of the distance to that line clipped to
  the piece (and to the [0, 1]² box for attacks). A dense grid cross-checks the oracle.

Every attack distance ≥ exact (within float tolerance), every certificate ≤ exact, and the
attacks must be reasonably tight too, so that a broken attack cannot pass by returning +inf.
"""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from lmt.inequality_chain import gradient_bounds
from lmt.attacks import create_attack, list_attacks, minimal_l2
from lmt.bounds import NetworkBound
from lmt.certify import certify_examples, radius_prop2

TOL = 1e-5  # attacks run the float32 model: its decision boundary is the exact one up to rounding
BOX = (np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]), np.array([0.0, 0.0, 1.0, 1.0]))

# Budgets scaled to distances of 0.02–0.2 (the defaults suit MNIST-sized distances of about 1):
# DDN's first norm, FMN's step size and PGD's first epsilon are smaller.
BUDGETS = {
    "cw": {},
    "deepfool": {},
    "ddn": {"init_epsilon": 0.1},
    "fmn": {"max_stepsize": 0.02},
    "pgd": {"initial_epsilon": 0.25, "search_steps": 10},
}
# Median ratio attack / exact that each attack must reach on these problems.
TIGHTNESS = {"cw": 1.1, "deepfool": 1.05, "ddn": 1.3, "fmn": 1.3, "pgd": 1.15}


def _linear() -> nn.Sequential:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(2, 3))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[4.0, 1.0], [-2.0, 3.5], [-1.0, -4.0]]))
        model[0].bias.copy_(torch.tensor([-1.5, -0.3, 1.6]))
    return model.eval()


def _relu_net() -> nn.Sequential:
    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 3))
    with torch.no_grad():
        model[0].weight.mul_(6.0)
        model[0].bias.copy_(-(model[0].weight @ torch.full((2,), 0.5)) + 0.3 * torch.randn(6))  # kinks near the centre
    return model.eval()


def _pieces(model: nn.Sequential):
    """Affine pieces (A, c, G, h) of the network: z = A x + c on {x : G x + h ≥ 0}."""
    if len(model) == 1:
        w, b = (p.detach().double().numpy() for p in (model[0].weight, model[0].bias))
        yield w, b, np.zeros((0, 2)), np.zeros(0)
        return
    w1, b1, w2, b2 = (p.detach().double().numpy() for p in (model[0].weight, model[0].bias, model[2].weight, model[2].bias))
    for pattern in itertools.product([0.0, 1.0], repeat=len(b1)):
        active = np.array(pattern)
        sign = 2 * active - 1
        yield w2 @ (active[:, None] * w1), w2 @ (active * b1) + b2, sign[:, None] * w1, sign * b1


def exact_distance(model: nn.Sequential, x0: np.ndarray, y: int, box: bool) -> float:
    """Smallest ‖x − x0‖ with some z_i(x) ≥ z_y(x), i ≠ y (inside [0, 1]² if ``box``)."""
    best = math.inf
    for a, c, g, h in _pieces(model):
        if box:
            g, h = np.vstack([g, BOX[0]]), np.concatenate([h, BOX[1]])
        for i in range(len(c)):
            if i == y:
                continue
            normal, offset = a[i] - a[y], c[i] - c[y]  # f(x) = normal·x + offset, boundary f = 0
            norm = np.linalg.norm(normal)
            if norm < 1e-12:
                assert abs(offset) > 1e-9, "degenerate test network: a piece lies on the boundary"
                continue
            point = -offset * normal / norm**2
            direction = np.array([-normal[1], normal[0]]) / norm
            lo, hi = -math.inf, math.inf  # the piece's constraints on t along the line
            slope, rest = g @ direction, -(g @ point + h)
            for s, r in zip(slope, rest):
                if abs(s) < 1e-15:
                    if r > 1e-12:
                        lo, hi = math.inf, -math.inf
                elif s > 0:
                    lo = max(lo, r / s)
                else:
                    hi = min(hi, r / s)
            if lo > hi:
                continue
            t = min(max((x0 - point) @ direction, lo), hi)
            best = min(best, float(np.linalg.norm(point + t * direction - x0)))
    return best


def _problem(model: nn.Sequential, n: int = 40, n_wrong: int = 4):
    """Correctly classified points in the centre of the box (plus a few mislabelled ones)
    whose exact distances stay well inside the box, with both oracles."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0.3, 0.7, size=(400, 2)).astype(np.float32)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).argmax(1).numpy()
    free = np.array([exact_distance(model, xi.astype(np.float64), int(yi), box=False) for xi, yi in zip(x, y)])
    keep = np.flatnonzero((free > 0.02) & (free < 0.2))[:n]
    assert len(keep) == n, "the test network should have enough points near a boundary"
    x, y, free = x[keep], y[keep].copy(), free[keep]
    boxed = np.array([exact_distance(model, xi.astype(np.float64), int(yi), box=True) for xi, yi in zip(x, y)])
    y[:n_wrong] = (y[:n_wrong] + 1) % 3  # misclassified: every distance and radius is 0
    free[:n_wrong] = boxed[:n_wrong] = 0.0
    return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(free), torch.from_numpy(boxed)


MODELS = {"linear": _linear, "relu": _relu_net}


@pytest.fixture(scope="module", params=sorted(MODELS))
def problem(request):
    model = MODELS[request.param]()
    return (request.param, model, *_problem(model))


def test_oracle_agrees_with_a_dense_grid(problem) -> None:
    """The oracle itself: no misclassified grid point is closer; one is within the grid step."""
    _, model, x, y, _, boxed = problem
    step = 1 / 800
    axis = np.arange(0, 1 + step / 2, step)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        pred = copy.deepcopy(model).double()(torch.from_numpy(grid)).argmax(1).numpy()
    for xi, yi, d in list(zip(x.numpy(), y.numpy(), boxed.numpy()))[4:]:
        wrong = grid[pred != yi]
        nearest = np.linalg.norm(wrong - xi, axis=1).min()
        assert d - 1e-9 <= nearest <= d + 2 * step, (xi, yi, d, nearest)


@pytest.mark.parametrize("name", list_attacks())
def test_every_attack_is_at_least_the_exact_distance_and_close_to_it(problem, name: str) -> None:
    kind, model, x, y, _, boxed = problem
    torch.manual_seed(0)
    result = minimal_l2(model, x, y, create_attack(name, BUDGETS[name]), batch_size=len(y), progress=False)
    assert not (result.distance < boxed - TOL).any(), (
        f"{name} on {kind}: distance below the exact minimum at {torch.nonzero(result.distance < boxed - TOL).flatten().tolist()}"
    )
    assert (result.distance[:4] == 0).all() and result.success[:4].all(), "misclassified inputs: distance 0"
    assert result.success.all(), f"{name} on {kind} failed on {torch.nonzero(~result.success).flatten().tolist()}"
    ratio = (result.distance[4:] / boxed[4:]).median()
    assert ratio <= TIGHTNESS[name], f"{name} on {kind}: median distance / exact = {ratio:.3f}"


def test_certificates_never_exceed_the_exact_distance(problem) -> None:
    """With tolerance 0: the certificate is computed from float64 margins minus the rounding
    bound (lmt.certify.certify_examples), as the workflow computes it."""
    kind, model, x, y, free, _ = problem
    network = NetworkBound(model, (2,))
    bound = network.certified_bound()
    certificates = certify_examples(network, bound, model, x, y)
    r2, r1 = certificates.radius, certificates.radius_prop1
    assert (r1 <= r2).all()
    assert (r2 <= free).all(), f"Prop. 2 above the exact distance on {kind}"
    assert (r2[:4] == 0).all() and (r2[4:] > 0).all()
    if kind == "linear":
        torch.testing.assert_close(r2, free, rtol=1e-4, atol=0)  # tight up to the rounding term


def test_inequality_chain_orders_the_radii(problem) -> None:
    """(A) ≤ (B) ≤ (C); on the affine model the gradient is constant, so all three are exact."""
    kind, model, x, y, free, _ = problem
    bound = NetworkBound(model, (2,)).certified_bound()
    with torch.no_grad():
        logits = model(x).double()
    a = radius_prop2(logits, y, bound.head_weight, bound.body)
    chain = gradient_bounds(model, x, y, batch_size=10, n_noise=5, progress=False)
    assert (a <= chain.radius_global * (1 + 1e-5)).all()
    assert (chain.radius_global <= chain.radius_local * (1 + 1e-9)).all()
    if kind == "linear":
        torch.testing.assert_close(chain.radius_global, free, rtol=0, atol=1e-5)
        torch.testing.assert_close(chain.radius_local, free, rtol=0, atol=1e-5)
