"""What every Snakemake script adapter needs: its log file, its thread budget, and the stage's
arguments as its rule declares them."""

from __future__ import annotations

import contextlib
import sys
import traceback
from typing import Any, Callable, Iterator

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


def run_stage(snakemake: Any, stage: Callable[..., Any], **extra: Any) -> None:
    """Call a per-run stage of :mod:`lmt.pipeline` as its rule declares it, inside
    :func:`snakemake_job`: ``stage(settings, **named inputs, **named outputs, **extra)``. A run
    stage names its file parameters as its rule names its inputs and outputs."""
    with snakemake_job(snakemake):
        stage(snakemake.params.settings, **dict(snakemake.input.items()), **dict(snakemake.output.items()), **extra)


def experiment_inputs(snakemake: Any) -> tuple[Any, list[str], list[tuple[str, int]]]:
    """What every experiment-level stage of :mod:`lmt.report.stages` takes first: its settings,
    the runs' files (in the configured order) and the runs' (method, seed) labels."""
    return snakemake.params.settings, list(snakemake.input), run_labels(snakemake.params.runs)


def run_labels(runs: Any) -> list[tuple[str, int]]:
    """Snakemake params arrive as lists; restore (method, seed) tuples."""
    return [(str(method), int(seed)) for method, seed in runs]


def stem(path: str) -> str:
    """``results/x/tables/summary.csv`` -> ``results/x/tables/summary`` (a table's or figure's
    stem: the stage writes every format beside it)."""
    return str(path).rsplit(".", 1)[0]
