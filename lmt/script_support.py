"""What every Snakemake script adapter needs: its log file and its thread budget."""

from __future__ import annotations

import contextlib
import sys
import traceback
from typing import Any, Iterator

import torch


@contextlib.contextmanager
def snakemake_job(snakemake: Any) -> Iterator[None]:
    """Send stdout/stderr (progress bars included) to the rule's log and honour ``threads``.

    An exception is written to the log as well, then re-raised so the job fails.
    """
    torch.set_num_threads(max(1, int(getattr(snakemake, "threads", 1))))
    log_path = snakemake.log[0] if snakemake.log else None
    if log_path is None:
        yield
        return
    with open(log_path, "w", buffering=1) as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            yield
        except BaseException:
            traceback.print_exc(file=log)
            raise


def run_labels(runs: Any) -> list[tuple[str, int]]:
    """Snakemake params arrive as lists; restore (method, seed) tuples."""
    return [(str(method), int(seed)) for method, seed in runs]


def stem(path: str) -> str:
    """``results/x/tables/summary.csv`` -> ``results/x/tables/summary`` (a table's or figure's
    stem: the stage writes every format beside it)."""
    return str(path).rsplit(".", 1)[0]
