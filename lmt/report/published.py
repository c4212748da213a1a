"""Published numbers shown beside ours: only those the project's paper notes mark as verified
(quoted from the paper, [PAPER-Q]) or reported by a named third party ([2ND]), each with its
source. Nothing else is presented as a number of the paper."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd


@dataclass(frozen=True)
class PublishedNumber:
    experiment: str  # which of our experiments it belongs beside
    method: str
    quantity: str
    value: float
    unit: str
    source: str
    status: str  # "paper (quoted)" or "third party"


PUBLISHED: tuple[PublishedNumber, ...] = (
    PublishedNumber("mnist_wk", "standard", "ratio (B)/(A)", 39.9, "×",
                    "Tsuzuku et al. 2018, §6.1 (unregularised model, 'estimated error ratios in (i)–(iii)')", "paper (quoted)"),
    PublishedNumber("mnist_wk", "standard", "ratio (C)/(B)", 1.13, "×",
                    "Tsuzuku et al. 2018, §6.1", "paper (quoted)"),
    PublishedNumber("mnist_wk", "standard", "ratio (D)/(C)", 1.82, "×",
                    "Tsuzuku et al. 2018, §6.1", "paper (quoted)"),
    PublishedNumber("mnist_wk", "lmt", "clean accuracy", 86.48, "%",
                    "BCP README (Lee et al. 2020), LMT re-trained by the BCP authors, MNIST", "third party"),
    PublishedNumber("mnist_wk", "lmt", "certified accuracy @1.58", 40.55, "%",
                    "BCP README (Lee et al. 2020), LMT re-trained by the BCP authors, MNIST", "third party"),
    PublishedNumber("mnist_wk", "lmt", "PGD-100 accuracy @1.58", 53.56, "%",
                    "BCP README (Lee et al. 2020), LMT re-trained by the BCP authors, MNIST", "third party"),
)


def published_table(experiment: str | None = None) -> pd.DataFrame:
    rows = [asdict(n) for n in PUBLISHED if experiment is None or n.experiment == experiment]
    return pd.DataFrame(rows, columns=list(PublishedNumber.__dataclass_fields__))
