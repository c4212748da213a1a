"""The harness's invariant on trained models: certified radius ≤ attack distance, per example."""

from __future__ import annotations

import pytest
import torch

from lmt.attacks import CWBudget, minimal_l2
from lmt.certify import radius_prop1, radius_prop2
from lmt.train import predict


@pytest.mark.slow
@pytest.mark.parametrize("run", ["standard", "lmt"])
def test_certified_radius_never_exceeds_cw_distance(run: str, trained_models, mnist) -> None:
    trained = trained_models[run]
    x, y = mnist.test.x[:200], mnist.test.y[:200]
    bound = trained.bound.certified_bound()
    logits = predict(trained.model, x)
    r2 = radius_prop2(logits, y, bound.head_weight, bound.body)
    r1 = radius_prop1(logits, y, bound.total)
    result = minimal_l2(trained.model, x, y, CWBudget(), batch_size=200, progress=False)
    found = result.success
    assert found.float().mean() > 0.5, "the attack should find most adversarial examples"
    assert (r1 <= r2 + 1e-12).all(), "Prop. 2 is never looser than Prop. 1"
    violations = (r2 > result.distance).nonzero().flatten().tolist()
    assert not violations, f"certified radius > C&W distance on examples {violations}"
    misclassified = logits.argmax(1) != y
    assert (result.distance[misclassified] == 0).all() and (r2[misclassified] == 0).all()
    assert torch.isinf(result.distance[~found]).all(), "attack failures are recorded as +inf"


@pytest.mark.slow
def test_lmt_enlarges_certified_radii(trained_models, mnist) -> None:
    radii = {}
    for run, trained in trained_models.items():
        bound = trained.bound.certified_bound()
        logits = predict(trained.model, mnist.test.x)
        radii[run] = radius_prop2(logits, mnist.test.y, bound.head_weight, bound.body)
    assert radii["lmt"].median() > 2 * radii["standard"].median()


def test_attack_success_is_checked_by_our_own_forward_pass() -> None:
    """A model that is constant cannot be fooled: every distance is +inf, never a bogus number."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.tensor([1.0, 0.0]))
    x = torch.rand(5, 1, 2, 2)
    result = minimal_l2(model, x, torch.zeros(5, dtype=torch.long), CWBudget(steps=5, binary_search_steps=2), progress=False)
    assert torch.isinf(result.distance).all() and not result.success.any()
