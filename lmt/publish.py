"""Published results: one Markdown file per experiment, written from a run's files, never by hand.

``lmt-bench publish RESULTS_DIR`` turns each ``RESULTS_DIR/<experiment>/`` written by the
workflow (or ``lmt-bench run``) into ``docs/results/<name>/<experiment>.md``:

- a provenance header gathered from the run's ``*.provenance.json`` records (and those embedded
  in ``bounds.json`` and ``gradient_bounds.json``): git revision(s) and whether any was dirty,
  the config file and its sha256 with the experiment's resolved settings, the machine (CPU
  model, cores, OS; never a hostname), the device(s), the total and per-stage wall time (from
  the Snakemake benchmarks where there are any, else from the records), the dates the run
  finished;
- the experiment's Markdown tables with their notes, verbatim from ``tables/*.md``;
- its PNG figures, copied beside the file (``<experiment>/<figure>.png``) where each is under
  :data:`MAX_FIGURE_BYTES`, and linked.

The README quotes these files, and ``tests/test_readme_numbers.py`` checks that every number of
its results sections appears in one of them, so a number in the README always comes from a
run whose revision and settings are on record. Publishing refuses a run from a dirty working
tree or from several revisions unless ``allow_dirty`` (and then says so in the file): such a
run cannot be reproduced from the repository. The output depends on the inputs only (no
publication time, no absolute path), so re-publishing an unchanged run changes no byte.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lmt.io import atomic_path, read_json

OUT = "docs/results"
MAX_FIGURE_BYTES = 300_000
# (table stem, heading), in the order they are published; a table that is absent is skipped.
TABLES = (
    ("table1", "Table 1"),
    ("summary", "Summary"),
    ("attacks", "Attacks"),
    ("inequality_chain", "Inequality chain"),
    ("gap", "Certificate–attack gap"),
    ("bound_comparison", "Bound comparison"),
    ("published", "Published numbers beside ours"),
    ("tradeoff", "Trade-off of a sweep"),
)
DIRTY = "+dirty"


class PublishError(Exception):
    """A results directory that cannot be published, with the reason and the file at fault."""


@dataclass(frozen=True)
class Record:
    """One provenance record and where it was found (relative to the experiment directory)."""

    source: str
    stage: str
    data: dict[str, Any]


def publish(
    results_dir: str | Path, experiments: Sequence[str] | None = None, config: str | Path | None = None,
    out: str | Path = OUT, name: str | None = None, allow_dirty: bool = False,
) -> list[Path]:
    """Publish each experiment of ``results_dir`` (or only ``experiments``) to
    ``out/<name>/<experiment>.md``; ``name`` defaults to the config file's stem, else to the
    experiment's name. Returns the files written (Markdown files and figures)."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise PublishError(f"results directory not found: {results_dir}")
    found = sorted(d.name for d in results_dir.iterdir() if (d / "tables").is_dir())
    if experiments:
        missing = [e for e in experiments if not (results_dir / e).is_dir()]
        if missing:
            raise PublishError(f"experiment {missing[0]!r} not found in {results_dir} (found: {found or 'none'})")
        selected = list(experiments)
    else:
        if not found:
            raise PublishError(f"no experiment with a tables/ directory in {results_dir}")
        selected = found
    settings = load_settings(config, selected) if config is not None else {}
    pages: dict[Path, bytes] = {}
    figure_folders = []
    for experiment in selected:  # every experiment is checked before any file is written
        folder = Path(out) / (name or (Path(config).stem if config is not None else experiment))
        pages.update(render_experiment(results_dir / experiment, folder, config, settings.get(experiment), allow_dirty))
        figure_folders.append(folder / experiment)
    for path, data in pages.items():
        _write_bytes(path, data)
    for stale in sorted(p for f in figure_folders for p in f.glob("*.png") if p not in pages):
        stale.unlink()  # a figure no longer published (removed, or grown over the limit)
    return list(pages)


def render_experiment(
    experiment_dir: Path, folder: Path, config: str | Path | None, settings: dict[str, Any] | None,
    allow_dirty: bool = False,
) -> dict[Path, bytes]:
    """The content of ``folder/<experiment>.md`` and of its copied figures, by path, from one
    experiment directory; raises :class:`PublishError` where it cannot be published."""
    experiment = experiment_dir.name
    tables = _tables(experiment_dir)
    records = provenance_records(experiment_dir)
    if not records:
        raise PublishError(f"missing provenance: no *.provenance.json under {experiment_dir}")
    revision_lines = revision_lines_of(records, experiment_dir, allow_dirty)
    if settings is not None:
        check_settings(settings, records, experiment_dir)
    figures, figure_lines = _figures(experiment_dir, experiment)
    lines = [
        f"# Results: `{experiment}`",
        "",
        f"Written by `lmt-bench publish` from `{experiment_dir.parent.name}/{experiment}/`; do not edit by hand "
        "(publish again instead).",
        "",
        "## Provenance",
        "",
        *revision_lines,
        *_config_lines(config, settings, experiment),
        f"- machine: {machine_of(records)}",
        f"- device(s): {', '.join(sorted({str(r.data.get('device', 'unknown')) for r in records}))}",
        f"- python: {_distinct(r.data.get('python') for r in records)}; "
        f"packages: {_packages(records)}",
        f"- finished: {_dates(records)}",
        *_wall_time_lines(records, experiment_dir),
        "",
        "## Tables",
        "",
    ]
    for stem, heading in TABLES:
        if stem in tables:
            lines += [f"### {heading}", "", f"`tables/{stem}.md`:", "", tables[stem].read_text().rstrip("\n"), ""]
    if figure_lines:
        lines += ["## Figures", "", *figure_lines]
    page = ("\n".join(lines).rstrip("\n") + "\n").encode()
    return {folder / f"{experiment}.md": page, **{folder / dest: fig.read_bytes() for fig, dest in figures}}


def _write_bytes(path: Path, data: bytes) -> None:
    """Write atomically, and only where the content changes (so an unchanged file keeps its
    modification time)."""
    if path.exists() and path.read_bytes() == data:
        return
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _tables(experiment_dir: Path) -> dict[str, Path]:
    """The publishable Markdown tables present, each with its provenance record."""
    tables = {}
    for stem, _ in TABLES:
        md = experiment_dir / "tables" / f"{stem}.md"
        if md.exists():
            record = md.with_name(f"{stem}.provenance.json")
            if not record.exists():
                raise PublishError(f"missing provenance: {md} has no {record.name} beside it")
            tables[stem] = md
    if not tables:
        names = ", ".join(f"{s}.md" for s, _ in TABLES)
        raise PublishError(f"no tables in {experiment_dir / 'tables'} (expected one of {names})")
    return tables


def _stage_of(relative: Path) -> str:
    """The stage that wrote a record: ``train``, ``certify``, ``attack``, ... for a run's
    files; ``tables/summary``, ``figures/...`` for the experiment's."""
    if relative.parts[0] == "runs":
        stem = relative.name.split(".")[0]
        return {"model": "train", "bounds": "certify", "certified": "certify"}.get(
            stem, "attack" if stem.startswith("attack_") else stem)
    return f"{relative.parts[0]}/{relative.name.split('.')[0]}"


def provenance_records(experiment_dir: Path) -> list[Record]:
    """Every provenance record of an experiment, in path order: ``*.provenance.json`` files and
    the ``provenance`` entries of the runs' ``bounds.json`` and ``gradient_bounds.json``."""
    records = []
    for path in sorted(experiment_dir.rglob("*.json")):
        relative = path.relative_to(experiment_dir)
        if relative.parts[0] in ("logs", "benchmarks"):
            continue
        if path.name.endswith(".provenance.json"):
            data = _read_json(path)
        elif path.name in ("bounds.json", "gradient_bounds.json"):
            data = _read_json(path).get("provenance")
            if data is None:
                continue
        else:
            continue
        if not isinstance(data, dict) or "git_revision" not in data:
            raise PublishError(f"{path} is not a provenance record (no git_revision)")
        records.append(Record(relative.as_posix(), _stage_of(relative), data))
    return records


def _read_json(path: Path) -> Any:
    try:
        return read_json(path)
    except json.JSONDecodeError as err:
        raise PublishError(f"{path} is not valid JSON: {err}") from err


def revision_lines_of(records: Sequence[Record], experiment_dir: Path, allow_dirty: bool) -> list[str]:
    """The header's revision lines; refuses dirty, unknown or mixed revisions unless allowed."""
    revisions = sorted({str(r.data["git_revision"]) for r in records})
    dirty = [r for r in revisions if r.endswith(DIRTY) or r == "unknown"]
    bases = sorted({r.removesuffix(DIRTY) for r in revisions})
    problems = []
    if dirty:
        example = next(r.source for r in records if str(r.data["git_revision"]) in dirty)
        problems.append(f"written from a dirty or unknown working tree ({', '.join(dirty)}; e.g. {example})")
    if len(bases) > 1:
        problems.append(f"written from {len(bases)} revisions ({', '.join(bases)})")
    if problems and not allow_dirty:
        raise PublishError(
            f"refusing to publish {experiment_dir}: {'; '.join(problems)}. Rerun it from a clean checkout of one "
            "revision, or pass --allow-dirty (the published file then says so)."
        )
    lines = [f"- git revision: {', '.join(f'`{r}`' for r in revisions)}"]
    if problems:
        lines.append(f"- **not reproducible from one clean revision** (published with `--allow-dirty`): "
                     f"{'; '.join(problems)}")
    return lines


def load_settings(config: str | Path, experiments: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The resolved (validated, defaults filled) settings of each experiment of ``config``."""
    from lmt.config import ConfigError, load_config

    try:
        resolved = load_config(config)["experiments"]
    except ConfigError as err:
        raise PublishError(str(err)) from err
    missing = [e for e in experiments if e not in resolved]
    if missing:
        raise PublishError(f"experiment {missing[0]!r} is not in {config} (it has {list(resolved)})")
    return {e: resolved[e] for e in experiments}


def check_settings(settings: dict[str, Any], records: Sequence[Record], experiment_dir: Path) -> None:
    """Refuse a config that is not the run's: Table 1's record must hold the settings that the
    config gives the aggregate stage."""
    from lmt import stage_config

    record = next((r for r in records if r.source == "tables/table1.provenance.json"), None)
    if record is None:
        return
    expected = json.loads(json.dumps(stage_config.aggregate(settings), sort_keys=True, default=str))
    if json.dumps(record.data.get("config"), sort_keys=True) != json.dumps(expected, sort_keys=True):
        raise PublishError(
            f"the config does not match the run: {experiment_dir / record.source} recorded other settings for the "
            "aggregate stage than the config gives it (a run with `--config KEY=VALUE` overrides needs a config file "
            "that holds them)"
        )


def shown_path(path: str | Path) -> str:
    """A config path as a published file shows it: relative to the working directory, or its
    name when absolute elsewhere (never a machine's absolute path)."""
    path = Path(path)
    if not path.is_absolute():
        return path.as_posix()
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path.name


def _config_lines(config: str | Path | None, settings: dict[str, Any] | None, experiment: str) -> list[str]:
    if config is None:
        return ["- config: not given (`--config`); each stage's settings are in its provenance record"]
    path = Path(config)
    shown = shown_path(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    body = yaml.safe_dump(settings, sort_keys=False, allow_unicode=True, default_flow_style=False).rstrip("\n")
    return [
        f"- config: `{shown}` (sha256 `{digest}`)",
        "",
        f"<details><summary>Resolved settings of <code>{experiment}</code></summary>",
        "",
        "```yaml",
        body,
        "```",
        "",
        "</details>",
        "",
    ]


def _distinct(values: Iterable[Any]) -> str:
    found = sorted({str(v) for v in values if v is not None})
    return ", ".join(found) if found else "not recorded"


def machine_of(records: Sequence[Record]) -> str:
    """The machine(s) the records name. Records written before provenance held the machine
    name none: then the publishing machine is named, and said to be that."""
    recorded = _distinct(r.data.get("machine") for r in records)
    if recorded != "not recorded":
        return recorded
    from lmt.provenance import machine

    return f"not recorded by the run; publishing machine: {machine()}"


def _packages(records: Sequence[Record]) -> str:
    versions: dict[str, set[str]] = defaultdict(set)
    for r in records:
        for package, version in (r.data.get("packages") or {}).items():
            versions[package].add(str(version))
    return ", ".join(f"{p} {'/'.join(sorted(v))}" for p, v in sorted(versions.items())) or "not recorded"


def _dates(records: Sequence[Record]) -> str:
    times = sorted(str(r.data["finished_at"]) for r in records if r.data.get("finished_at"))
    if not times:
        return "not recorded"
    return times[0] if times[0] == times[-1] else f"{times[0]} to {times[-1]}"


def duration(seconds: float) -> str:
    """``'697.4 s (11 min 37 s)'``: seconds, and hours/minutes/seconds from a minute on."""
    text = f"{seconds:.1f} s"
    whole = round(seconds)
    if whole >= 60:
        h, rest = divmod(whole, 3600)
        m, s = divmod(rest, 60)
        text += " (" + (f"{h} h " if h else "") + f"{m} min {s} s)"
    return text


def benchmark_seconds(experiment_dir: Path) -> dict[str, float]:
    """Wall time (s, mean over Snakemake's repeats) of each job's benchmark, by job name."""
    times = {}
    root = experiment_dir / "benchmarks"
    for path in sorted(root.rglob("*.tsv")) if root.is_dir() else []:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        try:
            values = [float(row["s"]) for row in rows]
        except (KeyError, TypeError, ValueError) as err:
            raise PublishError(f"{path} is not a Snakemake benchmark (no numeric 's' column)") from err
        if values:
            times[path.relative_to(root).with_suffix("").as_posix()] = sum(values) / len(values)
    return times


def _wall_time_lines(records: Sequence[Record], experiment_dir: Path) -> list[str]:
    """Total and per-stage wall time: the Snakemake benchmarks (one per job) where the run has
    them, else the provenance records' wall times, a stage that records several outputs at
    once (the aggregate stage's three tables) counted once."""
    benchmarks = benchmark_seconds(experiment_dir)
    per_stage: dict[str, list[float]] = defaultdict(list)
    if benchmarks:
        source = "Snakemake benchmarks (`benchmarks/*.tsv`), one per job"
        for job, seconds in benchmarks.items():
            per_stage[job.split("/")[0]].append(seconds)
    else:
        source = "provenance records (`wall_time_s`); outputs written together counted once"
        seen: dict[str, tuple[str, float]] = {}
        for r in records:
            stage = r.stage if r.source.startswith("runs/") else "report"
            # a run's record is one job; the report stages write one record per output set
            # (the aggregate stage three), alike in settings, inputs and finishing time
            key = r.source if stage != "report" else json.dumps(
                [r.data.get("config"), r.data.get("inputs"), r.data.get("finished_at")], sort_keys=True, default=str)
            seconds = float(r.data.get("wall_time_s") or 0.0)
            if key not in seen or seconds > seen[key][1]:
                seen[key] = (stage, seconds)
        for stage, seconds in seen.values():
            per_stage[stage].append(seconds)
    total = sum(sum(v) for v in per_stage.values())
    lines = [f"- wall time: {duration(total)} summed over the jobs (parallel jobs overlap, so the run took less; "
             f"see finished), from the {source}", "", "| stage | jobs | wall time |", "|---|---|---|"]
    lines += [f"| {stage} | {len(v)} | {duration(sum(v))} |" for stage, v in sorted(per_stage.items())]
    return lines


def _figures(experiment_dir: Path, experiment: str) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(source, destination) of each PNG figure small enough to copy, and the Markdown lines
    that show them (or say why one is not copied). Destinations are relative to the folder of
    the Markdown file, filled in by the caller."""
    pairs, lines = [], []
    root = experiment_dir / "figures"
    for png in sorted(root.glob("*.png")) if root.is_dir() else []:
        size = png.stat().st_size
        if size < MAX_FIGURE_BYTES:
            pairs.append((png, Path(experiment) / png.name))
            lines += [f"![{png.stem}]({experiment}/{png.name})", ""]
        else:
            limit = MAX_FIGURE_BYTES // 1000
            lines += [f"- `figures/{png.name}`: not copied ({size // 1000} kB; figures of {limit} kB or more "
                      "stay in the results directory)", ""]
    return pairs, lines
