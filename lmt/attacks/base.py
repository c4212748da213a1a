"""Attack upper bounds on the minimal L2 perturbation, behind our own interface, with Foolbox.

Each attack is a small frozen dataclass whose fields are its budget, registered by name with
:func:`register_attack` (Foolbox's "small base class + registry" style). ``perturb`` returns
candidate adversarial examples for one batch; :func:`minimal_l2` runs any attack batch by batch
on the model's device and returns, per example, the L2 distance of the closest adversarial
example it found, **re-checked by our own forward pass**: +inf where the attack failed (C&W
returns an all-zeros image there), 0 where the input is already misclassified.

Registered: ``cw`` (C&W-L2, the paper's budget by default), ``pgd`` (L2 PGD with a per-example
bisection over epsilon), ``deepfool`` (L2, the official code's config), ``ddn``, ``fmn``.
"""

from __future__ import annotations

import abc
import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, TypeVar

import torch
from torch import nn
from tqdm import tqdm

from lmt.params import ParamError, check_bounds, check_params

with warnings.catch_warnings():
    # foolbox 3.3.4 imports scipy.ndimage.filters (foolbox issue #702)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="foolbox")
    warnings.filterwarnings("ignore", message=".*scipy.ndimage.filters.*", category=DeprecationWarning)
    import eagerpy as ep
    import foolbox as fb

BOUNDS = (0.0, 1.0)  # every attack works in the [0, 1] pixel space the certificates use


@dataclass(frozen=True)
class Attack(abc.ABC):
    """A minimal-L2 attack and its budget; subclasses are frozen dataclasses."""

    name: ClassVar[str] = ""

    @abc.abstractmethod
    def perturb(self, fmodel: fb.PyTorchModel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Candidate adversarial examples for one batch; :func:`minimal_l2` checks them."""

    def budget(self) -> dict[str, Any]:
        """What produced the numbers: the attack's name and every budget parameter."""
        return {"attack": self.name, **dataclasses.asdict(self)}


ATTACKS: dict[str, type[Attack]] = {}
A = TypeVar("A", bound=type[Attack])


def register_attack(name: str) -> Callable[[A], A]:
    """Class decorator: make an :class:`Attack` available under ``name`` in configs."""

    def decorator(cls: A) -> A:
        if name in ATTACKS:
            raise ValueError(f"attack {name!r} is already registered")
        cls.name = name
        ATTACKS[name] = cls
        return cls

    return decorator


def list_attacks() -> list[str]:
    return sorted(ATTACKS)


def attack_type(label: str) -> str:
    """``NAME`` or ``NAME.TAG`` (one attack at several budgets) → the registered ``NAME``."""
    return label.split(".", 1)[0]


def create_attack(label: str, params: Mapping[str, Any] | None = None) -> Attack:
    """Build the attack registered under ``attack_type(label)``, its parameters checked by
    :func:`lmt.params.check_params`: an unknown name raises :class:`KeyError`, an unknown
    parameter :class:`TypeError`, a bad value :class:`lmt.params.ParamError`."""
    kind = attack_type(label)
    if kind not in ATTACKS:
        raise KeyError(f"unknown attack {kind!r}; registered: {list_attacks()}")
    return check_params(ATTACKS[kind], params, f"attack {kind!r}")


class _FoolboxMinimization(Attack):
    """An attack that Foolbox runs in minimisation mode (``epsilons=None``)."""

    @abc.abstractmethod
    def foolbox_attack(self) -> fb.attacks.base.MinimizationAttack: ...

    def perturb(self, fmodel: fb.PyTorchModel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _, adv, _ = self.foolbox_attack()(fmodel, x, y, epsilons=None)
        return adv


@register_attack("cw")
@dataclass(frozen=True)
class CW(_FoolboxMinimization):
    """Carlini–Wagner L2; the defaults are the paper's budget (notes §4.1, §7)."""

    steps: int = 100
    stepsize: float = 1e-2
    binary_search_steps: int = 9
    initial_const: float = 1e-3
    confidence: float = 0.0
    abort_early: bool = True

    def __post_init__(self) -> None:
        check_bounds(self, "steps", "binary_search_steps", ge=1)
        check_bounds(self, "stepsize", "initial_const", gt=0)
        check_bounds(self, "confidence", ge=0)

    def foolbox_attack(self) -> fb.attacks.L2CarliniWagnerAttack:
        return fb.attacks.L2CarliniWagnerAttack(
            binary_search_steps=self.binary_search_steps, steps=self.steps, stepsize=self.stepsize,
            confidence=self.confidence, initial_const=self.initial_const, abort_early=self.abort_early,
        )


CWBudget = CW  # the walking skeleton's name, kept for callers written against it


@register_attack("deepfool")
@dataclass(frozen=True)
class DeepFool(_FoolboxMinimization):
    """DeepFool L2; the defaults are the official code's config (overshoot 0.02, 50 steps)."""

    steps: int = 50
    overshoot: float = 0.02
    candidates: int = 10

    def __post_init__(self) -> None:
        check_bounds(self, "steps", ge=1)
        check_bounds(self, "overshoot", ge=0)
        check_bounds(self, "candidates", ge=2)

    def foolbox_attack(self) -> fb.attacks.L2DeepFoolAttack:
        return fb.attacks.L2DeepFoolAttack(steps=self.steps, candidates=self.candidates, overshoot=self.overshoot)


@register_attack("ddn")
@dataclass(frozen=True)
class DDN(_FoolboxMinimization):
    """Decoupled Direction and Norm (Rony et al. 2019); Foolbox's defaults."""

    steps: int = 100
    init_epsilon: float = 1.0
    gamma: float = 0.05

    def __post_init__(self) -> None:
        check_bounds(self, "steps", ge=1)
        check_bounds(self, "init_epsilon", gt=0)
        check_bounds(self, "gamma", gt=0, lt=1)  # the norm changes by a factor 1 ± gamma

    def foolbox_attack(self) -> fb.attacks.DDNAttack:
        return fb.attacks.DDNAttack(init_epsilon=self.init_epsilon, steps=self.steps, gamma=self.gamma)


@register_attack("fmn")
@dataclass(frozen=True)
class FMN(_FoolboxMinimization):
    """Fast Minimum Norm L2 (Pintor et al. 2021). Foolbox's ``max_stepsize=1.0`` overshoots
    badly on [0, 1] images; 0.1 is the default here."""

    steps: int = 100
    max_stepsize: float = 0.1
    gamma: float = 0.05

    def __post_init__(self) -> None:
        check_bounds(self, "steps", ge=1)
        check_bounds(self, "max_stepsize", gt=0)
        check_bounds(self, "gamma", gt=0, lt=1)  # epsilon changes by a factor 1 ± gamma

    def foolbox_attack(self) -> fb.attacks.L2FMNAttack:
        return fb.attacks.L2FMNAttack(steps=self.steps, max_stepsize=self.max_stepsize, gamma=self.gamma)


class _PerExampleL2PGD(fb.attacks.L2PGD):
    """Foolbox's L2 PGD with one epsilon per example (an ``(N, 1, …)`` tensor), and optionally
    the logit-margin loss max_{i≠y} z_i − z_y instead of cross-entropy.

    ``run`` only multiplies by epsilon (step size, random start) except in ``project``, which
    needs the epsilons as a flat ``(N,)`` vector to match the per-example norms.
    """

    def __init__(self, *, loss: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loss = loss

    def get_loss_fn(self, model: Any, labels: ep.Tensor) -> Callable[[ep.Tensor], ep.Tensor]:
        if self.loss == "crossentropy":
            return super().get_loss_fn(model, labels)

        def margin(inputs: ep.Tensor) -> ep.Tensor:
            logits, y = model(inputs).raw, labels.raw  # torch tensors: autograd sees through
            true = logits.gather(1, y[:, None]).squeeze(1)
            others = logits.scatter(1, y[:, None], float("-inf")).amax(1)
            return ep.astensor((others - true).sum())

        return margin

    def project(self, x: ep.Tensor, x0: ep.Tensor, epsilon: ep.Tensor) -> ep.Tensor:
        delta = x - x0
        norms = ep.maximum(delta.flatten(start=1).norms.l2(axis=-1), 1e-12)
        factor = ep.minimum(1, epsilon.flatten() / norms)
        return x0 + delta * factor.reshape((-1,) + (1,) * (x.ndim - 1))


@register_attack("pgd")
@dataclass(frozen=True)
class PGD(Attack):
    """L2 PGD turned into a minimal-distance attack by a per-example bisection over epsilon.

    Foolbox's ``L2PGD`` attacks at a fixed epsilon. Starting from ``initial_epsilon``, epsilon
    is doubled (at most ``expansion_steps`` times) for every example not yet fooled, then
    bisected ``search_steps`` times between the largest failed and the smallest successful
    epsilon, each example on its own. Each epsilon costs ``steps`` PGD iterations with step
    ``rel_stepsize·epsilon`` on ``loss`` ("margin": max_{i≠y} z_i − z_y, which heads for the
    nearest class; or Foolbox's "crossentropy"). The closest verified adversarial example is kept.
    """

    steps: int = 20
    rel_stepsize: float = 0.1
    random_start: bool = True
    loss: str = "margin"
    initial_epsilon: float = 1.0
    expansion_steps: int = 4
    search_steps: int = 8

    def __post_init__(self) -> None:
        check_bounds(self, "steps", ge=1)
        check_bounds(self, "rel_stepsize", "initial_epsilon", gt=0)
        check_bounds(self, "expansion_steps", "search_steps", ge=0)
        if self.loss not in ("margin", "crossentropy"):
            raise ParamError("loss", f"must be 'margin' or 'crossentropy', got {self.loss!r}")

    def perturb(self, fmodel: fb.PyTorchModel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        pgd = _PerExampleL2PGD(
            loss=self.loss, rel_stepsize=self.rel_stepsize, steps=self.steps, random_start=self.random_start
        )
        lo = torch.zeros(len(y), dtype=x.dtype, device=x.device)  # largest epsilon that failed
        hi = torch.full_like(lo, float("inf"))  # smallest epsilon that succeeded
        best = x.clone()  # not adversarial: the caller records +inf where nothing was found
        best_norm = torch.full_like(lo, float("inf"))

        def attempt(idx: torch.Tensor, eps: torch.Tensor) -> None:
            """PGD at per-example ``eps`` on the examples ``idx``; update the brackets."""
            xs, ys = x[idx], y[idx]
            adv = pgd.run(fmodel, xs, ys, epsilon=ep.astensor(eps.view((-1,) + (1,) * (x.ndim - 1))))
            with torch.no_grad():
                fooled = fmodel(adv).argmax(1) != ys
                norm = (adv - xs).flatten(1).norm(dim=1)
            better = fooled & (norm < best_norm[idx])
            best[idx[better]] = adv[better]
            best_norm[idx[better]] = norm[better]
            hi[idx[fooled]] = torch.minimum(hi[idx[fooled]], eps[fooled])
            lo[idx[~fooled]] = torch.maximum(lo[idx[~fooled]], eps[~fooled])

        everyone = torch.arange(len(y), device=x.device)
        eps = torch.full_like(lo, self.initial_epsilon)
        for _ in range(self.expansion_steps + 1):
            idx = everyone[torch.isinf(hi)]
            if len(idx) == 0:
                break
            attempt(idx, eps[idx])
            eps = 2 * eps
        for _ in range(self.search_steps):
            idx = everyone[torch.isfinite(hi)]
            if len(idx) == 0:
                break
            attempt(idx, (lo[idx] + hi[idx]) / 2)
        return best


@dataclass
class AttackResult:
    distance: torch.Tensor  # (N,) float64: +inf where no adversarial example was found
    success: torch.Tensor  # (N,) bool
    budget: dict[str, Any]


def minimal_l2(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: Attack,
    batch_size: int = 500,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> AttackResult:
    """Smallest L2 adversarial distance ``attack`` finds per example, inputs in [0, 1].

    Runs on ``device`` (default: where the model is); results are returned on the CPU.
    """
    if device is None:
        device = next(model.parameters()).device
    model = model.eval().to(device)
    fmodel = fb.PyTorchModel(model, bounds=BOUNDS, device=device)
    distances, successes = [], []
    for start in tqdm(range(0, len(y), batch_size), desc=attack.name, disable=not progress, mininterval=2.0):
        xb = x[start : start + batch_size].to(device)
        yb = y[start : start + batch_size].to(device)
        adv = attack.perturb(fmodel, xb, yb)
        with torch.no_grad():
            # Trust only what our own forward pass confirms.
            fooled = model(adv).argmax(1) != yb
            dist = (adv - xb).flatten(1).double().norm(dim=1)
            dist = torch.where(fooled, dist, torch.full_like(dist, float("inf")))
            # Already misclassified: distance 0 (Foolbox's tanh round trip returns ~1e-5).
            wrong = model(xb).argmax(1) != yb
            dist = torch.where(wrong, torch.zeros_like(dist), dist)
        distances.append(dist.cpu())
        successes.append((fooled | wrong).cpu())
    return AttackResult(torch.cat(distances), torch.cat(successes), attack.budget())
