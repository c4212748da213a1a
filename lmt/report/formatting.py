"""Formatting of result tables: 'mean ± std' cells, and one table written as CSV, Markdown and
LaTeX (booktabs) alike, so the three never disagree."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import pandas as pd

from lmt.io import atomic_path, write_csv
from lmt.paths import TABLE_FORMATS

_LATEX_SYMBOLS = {"±": r"$\pm$", "—": "--", "–": "--", "≥": r"$\geq$", "≤": r"$\leq$", "×": r"$\times$",
                  "√": r"$\surd$", "‖": r"$\|$"}


def mean_std(mean: float, std: float, n_seeds: int, percent: bool, digits: int | None = None) -> str:
    """``'90.6'`` for one seed, ``'90.6 ± 0.4'`` for several; percentages × 100 with one
    decimal, other values with three significant digits; NaN as an em dash."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    scale = 100.0 if percent else 1.0
    fmt = f"{{:.{1 if digits is None else digits}f}}" if percent else f"{{:.{3 if digits is None else digits}g}}"
    text = fmt.format(mean * scale)
    if n_seeds > 1 and std is not None and not math.isnan(std):
        text += " ± " + fmt.format(std * scale)
    return text


def interval(low: float, high: float, percent: bool = True, digits: int = 1) -> str:
    """``'[89.9, 91.2]'``: a confidence interval, in percent (× 100) with ``digits`` decimals by
    default; an em dash when a bound is missing (NaN)."""
    if any(v is None or math.isnan(v) for v in (low, high)):
        return "—"
    scale = 100.0 if percent else 1.0
    return f"[{low * scale:.{digits}f}, {high * scale:.{digits}f}]"


def latex_table(frame: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs LaTeX table (needs ``\\usepackage{booktabs}``); text is escaped and '±'
    becomes ``$\\pm$``."""
    body = frame.astype(str).to_latex(
        index=False, escape=True, caption=caption, label=label, position="htbp",
        column_format="l" * frame.shape[1],
    )
    for text, latex in _LATEX_SYMBOLS.items():
        body = body.replace(text, latex)
    return body


def write_table(
    stem: str | Path, data: pd.DataFrame, display: pd.DataFrame, caption: str, note: str = "",
    formats: Sequence[str] = TABLE_FORMATS,
) -> list[Path]:
    """``stem``.csv (the numbers, full precision), ``stem``.md and ``stem``.tex (``display``:
    the formatted cells), each written atomically. ``note`` follows the Markdown table and goes
    into the LaTeX caption."""
    stem = Path(stem)
    written = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        if fmt == "csv":
            write_csv(path, data)
        elif fmt == "md":
            with atomic_path(path) as tmp:
                tmp.write_text(display.to_markdown(index=False, disable_numparse=True) + "\n" + (f"\n{note}\n" if note else ""))
        elif fmt == "tex":
            with atomic_path(path) as tmp:
                tmp.write_text(latex_table(display, f"{caption} {note}".strip(), f"tab:{stem.name}"))
        else:
            raise ValueError(f"unknown table format {fmt!r}; choose from {TABLE_FORMATS}")
        written.append(path)
    return written
