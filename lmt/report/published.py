"""Published numbers shown beside ours: only those the project's paper notes mark as verified
(quoted from the paper, [PAPER-Q]) or reported by a named third party ([2ND]), each with its
source. Nothing else is presented as a number of the paper.

An experiment opts in with ``report.published: <set>`` (``mnist_wk``, ``modern_mnist``,
``cifar10``); the
comparison table then puts our value of the same quantity (mean ± std over seeds) beside each
published one: that of our method of the same name, and where the number names a ``model`` only
on that network (a published number of another network, or of a method the experiment does not
run, shows "no counterpart"; where the experiment sweeps the method, each run of the sweep, e.g.
``lmt.c4``, gets its own row). Probabilistic numbers (randomized smoothing) say so in their
quantity. The sets are registered by name in :data:`PUBLISHED_SETS` (a
:class:`lmt.registry.Registry`, each entry the set's numbers); the config checks
``report.published`` against that registry.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import pandas as pd

from lmt.registry import Registry
from lmt.report.formatting import mean_std

_PAPER = "Tsuzuku, Sato, Sugiyama 2018 (arXiv:1802.04034), §6.1: unregularised model, 'estimated error ratios in (i)–(iii)'"
_BCP = "BCP README (Lee et al., NeurIPS 2020), LMT re-trained by the BCP authors"
_PRACH = ("Prach, Brau, Buttazzo, Lampert, '1-Lipschitz Layers Compared: Memory, Speed, and Certifiable "
          "Robustness', CVPR 2024 (arXiv:2311.16833): CIFAR-10, medium ConvNet (-M), 24-h budget, "
          "certified accuracy at 36/255; checked against the authors' published run statistics, the last "
          "epoch's val_robstacc_36 and val_accuracy in berndprach/1LipschitzLayersCompared "
          "data/runs/CIFAR10/final_training_24h/ConvNetM/<layer>/*/training_statistics.csv (commit 01e3f2a)")
_LIRESNET = ("Hu, Leino, Wang, Fredrikson, 'A Recipe for Improved Certifiable Robustness', ICLR 2024 "
             "(hukkai/liresnet README): LiResNet trained with diffusion-generated data, CIFAR-10, "
             "certified accuracy at 36/255")
_COHEN = ("Cohen, Rosenfeld, Kolter, 'Certified Adversarial Robustness via Randomized Smoothing', ICML 2019 "
          "(arXiv:1902.02918): ResNet-110 on CIFAR-10, best σ per radius, computed from the per-example "
          "certification logs published in locuslab/smoothing (commit 78a4d94): at 36/255 the best is "
          "σ = 0.12, data/certify/cifar10/resnet110/noise_0.12/test/sigma_0.12, 348 of its 500 test images "
          "(every 20th) correct with radius ≥ 36/255")
_GLORO = ("Leino, Wang, Fredrikson, 'Globally-Robust Neural Networks', ICML 2021 (gloronet site): GloRo 4C3F "
          "network on MNIST, verified-robust accuracy")


@dataclass(frozen=True)
class PublishedNumber:
    published_set: str  # the experiment kind it belongs beside (config: report.published)
    method: str  # our method name it compares with
    quantity: str
    value: float
    unit: str  # "%" or "×"
    metric: str  # our summary metric ("chain:<ratio>" for a median chain ratio)
    source: str
    status: str  # "paper (quoted)" or "third party"
    model: str | None = None  # our network (config `model`) it compares with; None: any


PUBLISHED_SETS: Registry[tuple[PublishedNumber, ...]] = Registry("published-number set")


def register_published(*numbers: PublishedNumber) -> None:
    """Register the sets of ``numbers`` (by their ``published_set``), each with its numbers in order."""
    for name in dict.fromkeys(n.published_set for n in numbers):
        PUBLISHED_SETS.add(name, tuple(n for n in numbers if n.published_set == name))


def published_numbers(published_set: str) -> tuple[PublishedNumber, ...]:
    """The numbers of a registered set; an unknown set is a KeyError listing the registered ones."""
    return PUBLISHED_SETS.get(published_set)


register_published(
    PublishedNumber("mnist_wk", "standard", "median ratio (B)/(A)", 39.9, "×", "chain:(B)/(A)", _PAPER, "paper (quoted)"),
    PublishedNumber("mnist_wk", "standard", "median ratio (C)/(B)", 1.13, "×", "chain:(C)/(B)", _PAPER, "paper (quoted)"),
    PublishedNumber("mnist_wk", "standard", "median ratio (D)/(C)", 1.82, "×", "chain:(D)/(C)", _PAPER, "paper (quoted)"),
    PublishedNumber("mnist_wk", "lmt", "clean accuracy", 86.48, "%", "clean_accuracy", f"{_BCP}, MNIST", "third party"),
    PublishedNumber("mnist_wk", "lmt", "certified accuracy @1.58", 40.55, "%", "certified_accuracy@1.58",
                    f"{_BCP}, MNIST", "third party"),
    PublishedNumber("mnist_wk", "lmt", "PGD-100 accuracy @1.58", 53.56, "%", "pgd_accuracy@1.58",
                    f"{_BCP}, MNIST", "third party"),
    # MNIST at the modern literature's radius (config/modern_mnist.yaml): GloRo's own network
    # and BCP's LMT; ours are the methods of the same name on whichever network the experiment uses.
    PublishedNumber("modern_mnist", "gloro", "certified accuracy @1.58", 62.8, "%", "certified_accuracy@1.58",
                    _GLORO, "third party"),
    PublishedNumber("modern_mnist", "lmt", "clean accuracy", 86.48, "%", "clean_accuracy", f"{_BCP}, MNIST",
                    "third party"),
    PublishedNumber("modern_mnist", "lmt", "certified accuracy @1.58", 40.55, "%", "certified_accuracy@1.58",
                    f"{_BCP}, MNIST", "third party"),
    PublishedNumber("cifar10", "lmt", "clean accuracy (BCP Model1)", 56.49, "%", "clean_accuracy",
                    f"{_BCP}, CIFAR-10, their 'Model1' CNN", "third party"),
    PublishedNumber("cifar10", "lmt", "PGD-100 accuracy @36/255 (BCP Model1)", 49.83, "%", "pgd_accuracy@0.1412",
                    f"{_BCP}, CIFAR-10, their 'Model1' CNN", "third party"),
    PublishedNumber("cifar10", "lmt", "certified accuracy @36/255 (BCP Model1)", 37.20, "%", "certified_accuracy@0.1412",
                    f"{_BCP}, CIFAR-10, their 'Model1' CNN", "third party"),
    PublishedNumber("cifar10", "lmt", "clean accuracy (BCP Model2)", 63.05, "%", "clean_accuracy",
                    f"{_BCP}, CIFAR-10, their 'Model2' CNN", "third party"),
    PublishedNumber("cifar10", "lmt", "PGD-100 accuracy @36/255 (BCP Model2)", 58.32, "%", "pgd_accuracy@0.1412",
                    f"{_BCP}, CIFAR-10, their 'Model2' CNN", "third party"),
    PublishedNumber("cifar10", "lmt", "certified accuracy @36/255 (BCP Model2)", 38.11, "%", "certified_accuracy@0.1412",
                    f"{_BCP}, CIFAR-10, their 'Model2' CNN", "third party"),
    # 1-Lipschitz networks at 36/255 (Prach et al.'s medium ConvNet; ours are the small ConvNet-S
    # with the same layer, trained with the offset cross-entropy as theirs are).
    PublishedNumber("cifar10", "offset_ce", "certified accuracy @36/255 (SOC-M; ours ConvNet-S)", 66.3, "%",
                    "certified_accuracy@0.1412", _PRACH, "third party", model="soc_convnet_s"),
    PublishedNumber("cifar10", "offset_ce", "clean accuracy (SOC-M; ours ConvNet-S)", 76.9, "%", "clean_accuracy",
                    _PRACH, "third party", model="soc_convnet_s"),
    PublishedNumber("cifar10", "offset_ce", "certified accuracy @36/255 (SLL-M; ours ConvNet-S)", 62.8, "%",
                    "certified_accuracy@0.1412", _PRACH, "third party", model="sll_convnet_s"),
    PublishedNumber("cifar10", "offset_ce", "certified accuracy @36/255 (AOL-M; ours ConvNet-S)", 61.0, "%",
                    "certified_accuracy@0.1412", _PRACH, "third party", model="aol_convnet_s"),
    PublishedNumber("cifar10", "offset_ce", "certified accuracy @36/255 (CPL-M; ours ConvNet-S)", 65.1, "%",
                    "certified_accuracy@0.1412", _PRACH, "third party", model="cpl_convnet_s"),
    # LiResNet is no network of ours: a method name we do not run, so it shows "no counterpart".
    PublishedNumber("cifar10", "liresnet", "certified accuracy @36/255 (LiResNet, generated data)", 78.1, "%",
                    "certified_accuracy@0.1412", _LIRESNET, "third party"),
    # Randomized smoothing: Cohen's Gaussian-noise training (our method gaussian_noise, not run
    # by config/cifar10.yaml) and a probabilistic certificate of the smoothed classifier.
    PublishedNumber("cifar10", "gaussian_noise",
                    "RS certified accuracy @36/255 (probabilistic: randomized smoothing, smoothed classifier, "
                    "Cohen's ResNet-110)", 69.6, "%", "smoothed_certified_accuracy@0.1412", _COHEN, "third party"),
)


def published_table(published_set: str | None = None) -> pd.DataFrame:
    """The numbers of one set (of every set, in registration order, with None) as a table."""
    sets = PUBLISHED_SETS.entries() if published_set is None else [published_set]
    rows = [asdict(n) for name in sets for n in published_numbers(name)]
    return pd.DataFrame(rows, columns=list(PublishedNumber.__dataclass_fields__))


NOT_TABULATED = "not run or not tabulated"


def _ours(
    number: PublishedNumber, summary: pd.DataFrame, chain: pd.DataFrame, model: str | None = None,
) -> tuple[float, float, int, str]:
    """(mean, std, n_seeds, why missing) of our value of the number's quantity; NaN and a reason
    where we lack it: no counterpart (the number is of a network other than this experiment's
    ``model``, or of a method this experiment does not run), or the attack was not run or the
    radius not tabulated."""
    nan = float("nan")
    if number.model is not None and model is not None and number.model != model:
        return nan, nan, 0, f"no counterpart: published on {number.model}, ours on {model}"
    if number.metric.startswith("chain:"):
        rows = chain[(chain["method"] == number.method) & (chain["ratio"] == number.metric[len("chain:"):])]
        if rows.empty:
            return nan, nan, 0, NOT_TABULATED
        return float(rows["median"].mean()), float(rows["median"].std(ddof=1)), len(rows), ""
    rows = summary[summary["method"] == number.method]
    if rows.empty:
        return nan, nan, 0, f"no counterpart: method {number.method} not run here"
    if number.metric not in summary.columns:
        return nan, nan, 0, NOT_TABULATED
    row = rows.iloc[0]
    scale = 100.0 if number.unit == "%" else 1.0
    return row[number.metric] * scale, row.get(f"{number.metric}_std", nan) * scale, int(row["n_seeds"]), ""


def comparison_table(
    published_set: str, summary: pd.DataFrame, chain: pd.DataFrame, model: str | None = None,
) -> pd.DataFrame:
    """Every published number of ``published_set`` with ours beside it (``model``: this
    experiment's network, for the numbers that name one; ``ours_missing``: why ours is absent)."""
    rows = []
    for number in published_numbers(published_set):
        for label in counterparts(number.method, summary):
            mean, std, n, missing = _ours(replace(number, method=label), summary, chain, model)
            rows.append({**asdict(number), "method": label, "ours": mean, "ours_std": std, "our_seeds": n,
                         "ours_missing": missing})
    return pd.DataFrame(rows, columns=[*PublishedNumber.__dataclass_fields__, "ours", "ours_std", "our_seeds",
                                       "ours_missing"])


def counterparts(method: str, summary: pd.DataFrame) -> list[str]:
    """Our runs a published number of ``method`` is compared with: the run of that name, else
    every labelled run of it (a sweep's ``lmt.c4``, ``lmt.c8``, or a tagged ``lmt.long``), in
    the summary's order; the name alone where there is none (its row then says so)."""
    ran = list(dict.fromkeys(summary["method"])) if "method" in summary else []
    if method in ran:
        return [method]
    return [label for label in ran if label.startswith(f"{method}.")] or [method]


def comparison_display(table: pd.DataFrame) -> pd.DataFrame:
    """Method, quantity, published value, ours (mean ± std), status and source."""
    return pd.DataFrame(
        {
            "method": table["method"],
            "quantity": [f"{q} ({u})" for q, u in zip(table["quantity"], table["unit"])],
            "published": [mean_std(v, float("nan"), 1, False, 4) for v in table["value"]],
            "ours": [
                mean_std(m, s, int(n), False, 4) if n else f"— ({why or NOT_TABULATED})"
                for m, s, n, why in zip(table["ours"], table["ours_std"], table["our_seeds"],
                                        table.get("ours_missing", pd.Series([""] * len(table))).fillna(""))
            ],
            "status": table["status"],
            "source": table["source"],
        }
    )
