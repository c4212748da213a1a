"""``lmt-bench publish``: docs/results/ files from a results directory, with provenance.

The results directories here are synthetic: tiny tables and provenance records laid out as
:mod:`lmt.paths` names them and shaped like :func:`lmt.provenance.record`'s, so no run is needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lmt import stage_config
from lmt.config import load_config
from lmt.io import write_json
from lmt.paths import RunPaths, provenance_path
from lmt.publish import MAX_FIGURE_BYTES, PublishError, duration, publish
from tests.conftest import REPO

REVISION = "0123456789abcdef0123456789abcdef01234567"
TABLE1 = """| method   | clean   | C&W @0.5   | cert. @0.5   |
|:---------|:--------|:-----------|:-------------|
| standard | 95.5 %  | 90.8 %     | 0.0 %        |
| lmt      | 91.3 %  | 85.7 %     | 70.1 %       |

Mean ± sample standard deviation over seeds where there are several.
"""


def _record(config: dict, wall: float, device: str = "cpu", revision: str = REVISION, **extra) -> dict:
    return {
        "config": config, "packages": {"torch": "2.14.1", "numpy": "2.3.0"}, "python": "3.12.3",
        "machine": "AMD EPYC 7763, 16 cores, Linux 6.1 x86_64", "git_revision": revision, "device": device,
        "device_selection": None, "float_settings": {"fp32_precision": "ieee"}, "wall_time_s": wall,
        "finished_at": "2026-12-01T10:00:00+0000", **extra,
    }


def make_results(root: Path, experiment: str = "demo", revision: str = REVISION, table_config: dict | None = None,
                 benchmarks: bool = False) -> Path:
    """A results directory holding one experiment with two tables, one run and one figure."""
    exp = root / experiment
    tables = exp / "tables"
    tables.mkdir(parents=True)
    (tables / "table1.md").write_text(TABLE1)
    (tables / "summary.md").write_text("| method | clean |\n|:--|:--|\n| lmt | 91.3 % |\n")
    (tables / "table1.csv").write_text("method,clean\nlmt,0.913\n")
    inputs = [f"results/{experiment}/runs/lmt/seed0/examples.csv"]
    table_config = table_config if table_config is not None else {"report": {"radii": [0.5]}}
    for stem in ("table1", "summary"):  # the aggregate stage: one record per table, counted once
        write_json(tables / f"{stem}.provenance.json",
                   _record(table_config, 2.0, revision=revision, inputs=inputs))
    run = RunPaths.of(experiment, "lmt", 0)
    run_dir = root / Path(run.dir).relative_to("results")
    write_json(run_dir / Path(provenance_path(run.model)).name, _record({"training": {"epochs": 1}}, 600.5,
                                                                         device="cuda:0 (NVIDIA H200)"))
    write_json(run_dir / "bounds.json", {"lipschitz_bound": 3.0, "provenance": _record({"certify": {}}, 30.0)})
    write_json(run_dir / Path(provenance_path(run.attack("cw"))).name, _record({"attack": {"label": "cw"}}, 66.0))
    figures = exp / "figures"
    figures.mkdir()
    (figures / "accuracy_vs_radius.png").write_bytes(b"\x89PNG small")
    (figures / "huge.png").write_bytes(b"\0" * MAX_FIGURE_BYTES)
    (figures / "accuracy_vs_radius.pdf").write_bytes(b"%PDF")
    if benchmarks:
        (exp / "benchmarks" / "train").mkdir(parents=True)
        header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
        row = "610.25\t0:10:10\t1\t1\t1\t1\t0\t0\t1\t600\n"
        (exp / "benchmarks" / "train" / "lmt_seed0.tsv").write_text(header + row)
        (exp / "benchmarks" / "aggregate.tsv").write_text(header + "3.5\t0:00:03\t1\t1\t1\t1\t0\t0\t1\t3\n")
    return root


def test_publish_writes_provenance_tables_and_figures(tmp_path) -> None:
    results = make_results(tmp_path / "results")
    out = tmp_path / "docs" / "results"
    written = publish(results, out=out)
    page = out / "demo" / "demo.md"
    assert written == [page, out / "demo" / "demo" / "accuracy_vs_radius.png"]
    text = page.read_text()
    assert f"- git revision: `{REVISION}`" in text and "not reproducible" not in text
    assert "AMD EPYC 7763, 16 cores, Linux 6.1 x86_64" in text and "device(s): cpu, cuda:0 (NVIDIA H200)" in text
    assert "torch 2.14.1" in text and "2026-12-01T10:00:00+0000" in text
    # 600.5 + 30 + 66 (runs) + 2.0 (the aggregate stage's two records, counted once)
    assert f"wall time: {duration(698.5)} summed over the jobs" in text and "11 min 38 s" in text
    assert "| train | 1 | 600.5 s (10 min 0 s) |" in text and "| report | 1 | 2.0 s |" in text
    assert TABLE1.rstrip("\n") in text  # verbatim, with its note
    assert text.index("### Table 1") < text.index("### Summary")
    assert "![accuracy_vs_radius](demo/accuracy_vs_radius.png)" in text
    assert "`figures/huge.png`: not copied (300 kB; figures of 300 kB or more" in text
    assert "config: not given" in text
    assert str(tmp_path) not in text  # no absolute path: the file does not depend on where the run lay


def test_publish_reads_what_the_stages_write(tmp_path) -> None:
    """Tables and records written by the stages' own helpers, not hand-made look-alikes."""
    import pandas as pd

    from lmt.provenance import machine, record
    from lmt.report.formatting import write_table

    exp = tmp_path / "results" / "real"
    frame = pd.DataFrame({"method": ["lmt"], "clean": ["91.3 %"]})
    write_table(exp / "tables" / "table1", frame, frame, "Table 1.", "A note.")
    write_json(exp / "tables" / "table1.provenance.json", record({"report": {}}, "cpu", 1.25, inputs=[]))
    publish(tmp_path / "results", out=tmp_path / "out", allow_dirty=True)  # this checkout may be dirty
    text = (tmp_path / "out" / "real" / "real.md").read_text()
    assert "| lmt      | 91.3 %  |" in text and "A note." in text
    assert f"- machine: {machine()}\n" in text and "wall time: 1.2 s summed over the jobs" in text


def test_publish_puts_the_gap_table_under_its_heading_after_the_chain(tmp_path) -> None:
    results = make_results(tmp_path / "results")
    tables = results / "demo" / "tables"
    for stem, body in (("inequality_chain", "| method | (B)/(A) |\n|:--|:--|\n| lmt | 1.65 |\n"),
                       ("gap", "| method | median gap |\n|:--|:--|\n| lmt | 0.61 |\n")):
        (tables / f"{stem}.md").write_text(body)
        write_json(tables / f"{stem}.provenance.json", _record({"report": {"radii": [0.5]}}, 1.0))
    publish(results, out=tmp_path / "out")
    text = (tmp_path / "out" / "demo" / "demo.md").read_text()
    assert "### Certificate–attack gap\n\n`tables/gap.md`:\n\n| method | median gap |" in text
    assert text.index("### Summary") < text.index("### Inequality chain") < text.index("### Certificate–attack gap")


def test_publish_prefers_the_snakemake_benchmarks_for_wall_time(tmp_path) -> None:
    publish(make_results(tmp_path / "results", benchmarks=True), out=tmp_path / "out")
    text = (tmp_path / "out" / "demo" / "demo.md").read_text()
    assert f"wall time: {duration(613.75)} summed over the jobs" in text and "from the Snakemake benchmarks" in text
    assert "| train | 1 | 610.2 s (10 min 10 s) |" in text and "| aggregate | 1 | 3.5 s |" in text


def test_publishing_twice_gives_identical_bytes(tmp_path) -> None:
    results = make_results(tmp_path / "results")
    stale = tmp_path / "out" / "demo" / "demo" / "removed_figure.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    first = {p: p.read_bytes() for p in publish(results, out=tmp_path / "out")}
    assert not stale.exists()  # a figure the run no longer has is no longer published
    second = {p: p.read_bytes() for p in publish(results, out=tmp_path / "out")}
    assert first == second
    # the same run elsewhere publishes the same bytes
    other = make_results(tmp_path / "elsewhere" / "results")
    again = publish(other, out=tmp_path / "out2")
    assert [p.read_bytes() for p in again] == list(first.values())


def test_publish_with_the_config_records_its_hash_and_settings(tmp_path) -> None:
    config = REPO / "config" / "config.yaml"
    settings = load_config(config)["experiments"]["default"]
    table_config = json.loads(json.dumps(stage_config.aggregate(settings)))
    results = make_results(tmp_path / "results", experiment="default", table_config=table_config)
    publish(results, config=config, out=tmp_path / "out")
    text = (tmp_path / "out" / "config" / "default.md").read_text()  # NAME: the config's stem
    import hashlib

    assert f"(sha256 `{hashlib.sha256(config.read_bytes()).hexdigest()}`)" in text
    assert "<details><summary>Resolved settings of <code>default</code></summary>" in text
    assert "```yaml\nexperiment: default\n" in text
    publish(results, config=config, out=tmp_path / "out", name="paper")
    assert (tmp_path / "out" / "paper" / "default.md").read_bytes() == text.encode()


def test_publish_refuses_a_config_that_is_not_the_runs(tmp_path) -> None:
    results = make_results(tmp_path / "results", experiment="default", table_config={"report": {"radii": [9.0]}})
    with pytest.raises(PublishError, match=r"does not match the run: .*table1\.provenance\.json"):
        publish(results, config=REPO / "config" / "config.yaml", out=tmp_path / "out")


def test_publish_names_the_publishing_machine_where_the_run_did_not(tmp_path) -> None:
    from lmt.provenance import machine

    results = make_results(tmp_path / "results")
    for path in results.rglob("*.json"):
        data = json.loads(path.read_text())
        (data.get("provenance") or data).pop("machine")
        path.write_text(json.dumps(data))
    publish(results, out=tmp_path / "out")
    assert f"- machine: not recorded by the run; publishing machine: {machine()}\n" in (
        tmp_path / "out" / "demo" / "demo.md").read_text()


def test_publish_refuses_a_dirty_revision_unless_allowed(tmp_path) -> None:
    results = make_results(tmp_path / "results", revision=REVISION + "+dirty")
    with pytest.raises(PublishError, match=r"dirty .*tables/summary\.provenance\.json.*--allow-dirty"):
        publish(results, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    publish(results, out=tmp_path / "out", allow_dirty=True)
    text = (tmp_path / "out" / "demo" / "demo.md").read_text()
    assert "**not reproducible from one clean revision** (published with `--allow-dirty`)" in text


def test_publish_refuses_mixed_revisions(tmp_path) -> None:
    results = make_results(tmp_path / "results", revision="f" * 40)  # tables at one revision, runs at another
    with pytest.raises(PublishError, match=r"written from 2 revisions"):
        publish(results, out=tmp_path / "out")


def test_one_unpublishable_experiment_writes_nothing(tmp_path) -> None:
    results = make_results(tmp_path / "results")
    make_results(tmp_path / "results", experiment="zz_dirty", revision=REVISION + "+dirty")
    with pytest.raises(PublishError, match="zz_dirty"):
        publish(results, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda r: r / "nope", r"results directory not found: .*nope"),
        (lambda r: (r / "demo" / "tables" / "table1.provenance.json").unlink() or r,
         r"missing provenance: .*table1\.md has no table1\.provenance\.json"),
        (lambda r: [p.unlink() for p in (r / "demo" / "tables").glob("*.md")] and r, r"no tables in .*demo/tables"),
        (lambda r: [p.unlink() for p in (r / "demo").rglob("*.json")] and r,
         r"missing provenance"),
    ],
)
def test_publish_names_the_problem(tmp_path, damage, message) -> None:
    results = damage(make_results(tmp_path / "results"))
    with pytest.raises(PublishError, match=message):
        publish(results, out=tmp_path / "out")


def test_publish_names_a_missing_experiment(tmp_path) -> None:
    with pytest.raises(PublishError, match=r"experiment 'other' not found .*\['demo'\]"):
        publish(make_results(tmp_path / "results"), ["other"], out=tmp_path / "out")
    with pytest.raises(PublishError, match=r"no experiment with a tables/ directory"):
        (tmp_path / "empty").mkdir()
        publish(tmp_path / "empty", out=tmp_path / "out")


def test_cli_publish_prints_the_files_and_reports_errors(tmp_path) -> None:
    make_results(tmp_path / "results")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ok = subprocess.run([sys.executable, "-m", "lmt", "publish", "results", "--out", "docs/results"],
                        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[0] == "docs/results/demo/demo.md"
    bad = subprocess.run([sys.executable, "-m", "lmt", "publish", "missing"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert bad.returncode == 2 and "lmt-bench: results directory not found: missing" in bad.stderr
