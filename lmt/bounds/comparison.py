"""The bound comparison of the paper's Fig. 3, per layer and per network.

The compared bounds are :data:`COMPARISON_COLUMNS` (notes §2.3), defined here once for the
layer bounds' :meth:`~lmt.bounds.LayerBound.compare`, ``layer_bounds.csv``, ``bounds.json``
and the figure. ``certified`` is the bound the certificate uses, ``estimate`` the power
iteration's guaranteed lower bound of the operator norm (convolutions only). Layers without
their own comparison bounds (activations, pooling, BatchNorm) enter every column with the same
factor, so each network row is the graph bound (products along paths, sums at additions)
with that column's layer bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from lmt.bounds.graph import CertifiedBound, NetworkBound, Step, eval_mode
from lmt.bounds.registry import CertifySettings


@dataclass(frozen=True)
class ComparisonColumn:
    """One compared bound: its column (and key of ``compare()``), its Fig. 3 legend, what it is."""

    name: str
    label: str
    meaning: str
    in_figure: bool = True  # one of the paper's bars


COMPARISON_COLUMNS = (
    ComparisonColumn("thm1_2", "Thm. 1, 2",
                     "operator norm by the float64 power iteration with the Thm 2 error term"),
    ComparisonColumn("cor1", "Cor. 1", "√n·‖W′‖₂"),
    ComparisonColumn("cisse", "Cisse+", "√(kh·kw)·‖W′‖₂ (Parseval networks)"),
    ComparisonColumn("peck", "Peck+", "√n·‖W′‖_F (our reading of Peck et al.: the Frobenius-type "
                     "quantity of the official helper in Cor. 1's form)"),
    ComparisonColumn("frobenius", "Frobenius", "‖A‖_F of the layer's full operator", in_figure=False),
)
COLUMNS: tuple[str, ...] = tuple(column.name for column in COMPARISON_COLUMNS)


@dataclass
class BoundComparison:
    layers: pd.DataFrame  # one row per bounded operation
    network: pd.DataFrame  # rows "total" (L_F) and "body" (L_G); one column per bound

    def network_dict(self) -> dict[str, dict[str, float | None]]:
        """{bound: {"total": L_F, "body": L_G or None}}, ready for JSON."""
        table = self.network.set_index("scope")
        return {
            column: {scope: None if math.isnan(v) else float(v) for scope, v in table[column].items()}
            for column in table.columns
        }


def compare_bounds(
    network: NetworkBound, settings: CertifySettings = CertifySettings(),
    certified: CertifiedBound | None = None,
) -> BoundComparison:
    """Per-layer and per-network comparison bounds; reuses ``certified`` if given."""
    known = {row["node"]: row for row in certified.layers} if certified is not None else {}
    rows: dict[str, dict[str, Any]] = {}
    with eval_mode(network.model[0]), torch.no_grad():
        for step in network.steps:
            if step.kind == "layer":
                rows[step.node] = _layer_row(network, step, settings, known.get(step.node))
        totals = {}
        for column in ("certified", *COLUMNS):
            bounds, body = network.propagate(lambda step, c=column: rows[step.node][c], upward=True)
            totals[column] = {
                "total": float(bounds[network.output]),
                "body": math.nan if body is None else float(body),
            }
    layers = pd.DataFrame(list(rows.values()))
    return BoundComparison(layers, pd.DataFrame(totals).rename_axis("scope").reset_index())


def _layer_row(
    network: NetworkBound, step: Step, settings: CertifySettings, known: dict[str, Any] | None
) -> dict[str, Any]:
    ctx = network.context(step, "certify", settings)
    if known is None:
        certified = step.bound.certify(step.target, ctx)
        value, method = certified.value, certified.method
    else:
        value, method = known["bound"], known["method"]
    extra = step.bound.compare(step.target, ctx) or {}
    row: dict[str, Any] = {
        "layer": step.layer, "node": step.node, "type": step.type_name,
        "input_shape": "x".join(map(str, step.input_shape)),
        "certified": value, "method": method,
        "estimate": extra.get("estimate", math.nan),
    }
    row.update({column: extra.get(column, value) for column in COLUMNS})
    return row


def comparison_frame(comparison: BoundComparison) -> pd.DataFrame:
    """One table for ``layer_bounds.csv``: the layers, then the two network rows
    (type ``network``, layer ``total`` = L_F and ``body`` = L_G)."""
    network = comparison.network.rename(columns={"scope": "layer"}).assign(type="network")
    return pd.concat([comparison.layers, network], ignore_index=True)
