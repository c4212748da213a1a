"""The README's results blocks: sections copied from the published results files under
``docs/results/`` (written by ``lmt-bench publish`` or a benchmark's ``--out``), so every number
the README shows comes from a file a command wrote, never from typing."""

from __future__ import annotations

import re
from pathlib import Path

from lmt.docs.parameters import REPO

# README block name -> (results file relative to the repository, heading of the section to copy)
RESULT_SECTIONS: dict[str, tuple[str, str]] = {
    "results-default-provenance": ("docs/results/config/default.md", "Provenance"),
    "results-default-table1": ("docs/results/config/default.md", "Table 1"),
    "results-default-chain": ("docs/results/config/default.md", "Inequality chain"),
    "results-default-published": ("docs/results/config/default.md", "Published numbers beside ours"),
    "results-mnist-full-provenance": ("docs/results/mnist_full/mnist_wk_full.md", "Provenance"),
    "results-mnist-full-table1": ("docs/results/mnist_full/mnist_wk_full.md", "Table 1"),
    "results-mnist-full-chain": ("docs/results/mnist_full/mnist_wk_full.md", "Inequality chain"),
    "results-mnist-full-published": ("docs/results/mnist_full/mnist_wk_full.md", "Published numbers beside ours"),
    "results-mnist-cwadv-provenance": ("docs/results/mnist_full/mnist_cw_adv_full.md", "Provenance"),
    "results-mnist-cwadv-attacks": ("docs/results/mnist_full/mnist_cw_adv_full.md", "Attacks"),
    "results-mnist-cwadv-chain": ("docs/results/mnist_full/mnist_cw_adv_full.md", "Inequality chain"),
    "results-mnist-sweep-tradeoff": ("docs/results/mnist_full/mnist_lmt_c.md", "Trade-off of a sweep"),
    "results-mnist-long-tradeoff": ("docs/results/mnist_full/mnist_lmt_long.md", "Trade-off of a sweep"),
    "results-mnist-long-summary": ("docs/results/mnist_full/mnist_lmt_long.md", "Summary"),
    "results-mnist-unclipped-tradeoff": ("docs/results/mnist_full/mnist_lmt_unclipped.md", "Trade-off of a sweep"),
    "results-modern-mnist-provenance": ("docs/results/modern_mnist/overview.md", "Provenance"),
    "results-modern-mnist-overview": ("docs/results/modern_mnist/overview.md", "Overview at 1.58"),
    "results-modern-mnist-published": ("docs/results/modern_mnist/overview.md", "Published numbers"),
    "results-training-steps-wk": ("docs/results/benchmarks/training_steps_wk_cpu.md", "Results"),
    "results-training-steps-wrn": ("docs/results/benchmarks/training_steps_wrn_cpu.md", "Results"),
    "results-training-variants-wk": ("docs/results/benchmarks/training_variants_wk_cpu.md", "Results"),
    "results-training-variants-wrn": ("docs/results/benchmarks/training_variants_wrn_cpu.md", "Results"),
    "results-training-minimum-wk": ("docs/results/benchmarks/training_minimum_wk_cpu.md", "Results"),
    "results-phases-wk": ("docs/results/benchmarks/phases_wk_cpu.md", "Results"),
    "results-training-ops": ("docs/results/benchmarks/training_ops.md", "Results"),
    "results-pipeline": ("docs/results/benchmarks/pipeline_cpu.md", "Results"),
}


def section(path: str | Path, heading: str) -> str:
    """The body of the section headed ``heading`` (any level) of the Markdown file ``path``,
    up to the next heading of the same or a higher level, without the ``tables/…md:`` line that
    publish puts before a table (of a Provenance section only its bullet lines); a missing file
    or heading is an error naming it."""
    file = REPO / path
    if not file.exists():
        raise ValueError(f"{path}: no such results file (publish the run, or run the benchmark with --out)")
    lines = file.read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if re.fullmatch(rf"(#+) {re.escape(heading)}", line)]
    if len(starts) != 1:
        raise ValueError(f"{path}: expected one heading {heading!r}, found {len(starts)}")
    level = len(lines[starts[0]].split(" ")[0])
    body = []
    for line in lines[starts[0] + 1:]:
        match = re.match(r"(#+) ", line)
        if match and len(match.group(1)) <= level:
            break
        body.append(line)
    body = [line for line in body if not re.fullmatch(r"`tables/\w+\.md`:", line)]
    if heading == "Provenance":  # its bullet lines; the resolved settings and stage table stay in the file
        fenced, bullets = False, []
        for line in body:
            fenced ^= line.startswith("```")
            if not fenced and line.startswith("- "):
                bullets.append(line)
        body = bullets
    text = "\n".join(body).strip("\n")
    return f"From [`{path}`]({path}):\n\n{text}\n"
