# Experiment-level tables (CSV, Markdown, LaTeX) from the runs' per-example files; each rule calls
# one stage of lmt/report/stages.py. The CSVs go into the `snakemake --report` HTML report.


rule aggregate:
    """Per-method summary, per-attack table and Table 1 (means ± std over seeds)."""
    input:
        per_run("examples"),
    output:
        metrics=EXPERIMENT.metrics,
        **{f"summary_{k}": v for k, v in table("summary", "summary.rst").items()},
        **{f"attacks_{k}": v for k, v in table("attacks", "attacks.rst").items()},
        **{f"table1_{k}": v for k, v in table("table1", "table1.rst").items()},
    params:
        runs=run_labels,
        settings=stage_settings(stage_config.aggregate),
    log:
        EXPERIMENT.log("aggregate"),
    benchmark:
        EXPERIMENT.benchmark("aggregate")
    conda:
        ENVIRONMENT
    script:
        "../scripts/aggregate.py"


rule inequality_chain:
    """Ratios (B)/(A), (C)/(B), (D)/(C) of the inequality chain of §6.1, per (method, seed)."""
    input:
        per_run("examples"),
    output:
        **table("inequality_chain", "inequality_chain.rst"),
    params:
        runs=run_labels,
        settings=stage_settings(stage_config.inequality_chain),
    log:
        EXPERIMENT.log("inequality_chain"),
    benchmark:
        EXPERIMENT.benchmark("inequality_chain")
    conda:
        ENVIRONMENT
    script:
        "../scripts/inequality_chain.py"


rule published_comparison:
    """Verified published numbers (config report.published) beside ours."""
    input:
        summary=EXPERIMENT.table("summary").files["csv"],
        chain=EXPERIMENT.table("inequality_chain").files["csv"],
    output:
        **table("published", "published.rst"),
    params:
        settings=stage_settings(stage_config.published_comparison),
    log:
        EXPERIMENT.log("published_comparison"),
    benchmark:
        EXPERIMENT.benchmark("published_comparison")
    conda:
        ENVIRONMENT
    script:
        "../scripts/published_comparison.py"
