# Experiment-level tables (CSV, Markdown, LaTeX) and figures (PNG, PDF) from the runs' files;
# each rule calls one stage of lmt/report/stages.py. `snakemake --report` shows every table and
# figure registered with report() below, with its caption from workflow/report/.


def table(name, caption):
    """The three files of one table; the CSV goes into the HTML report."""
    stem = f"{RESULTS}/tables/{name}"
    return {
        "csv": report(stem + ".csv", caption=f"../report/{caption}", category="Tables", subcategory="{experiment}"),
        "md": stem + ".md",
        "tex": stem + ".tex",
    }


def figure(name, caption):
    """The two files of one figure; the PNG goes into the HTML report."""
    stem = f"{RESULTS}/figures/{name}"
    return {
        "png": report(stem + ".png", caption=f"../report/{caption}", category="Figures", subcategory="{experiment}"),
        "pdf": stem + ".pdf",
    }


rule aggregate:
    """Per-method summary, per-attack table and Table 1 (means ± std over seeds)."""
    input:
        per_run(RUN + "/examples.csv"),
    output:
        metrics=RESULTS + "/tables/metrics.csv",
        **{f"summary_{k}": v for k, v in table("summary", "summary.rst").items()},
        **{f"attacks_{k}": v for k, v in table("attacks", "attacks.rst").items()},
        **{f"table1_{k}": v for k, v in table("table1", "table1.rst").items()},
    params:
        runs=run_labels,
        report=experiment_setting("report"),
    log:
        LOGS + "/aggregate.log",
    script:
        "../scripts/aggregate.py"


rule inequality_chain:
    """Ratios (B)/(A), (C)/(B), (D)/(C) of the inequality chain of §6.1, per (method, seed)."""
    input:
        per_run(RUN + "/examples.csv"),
    output:
        **table("inequality_chain", "inequality_chain.rst"),
    params:
        runs=run_labels,
    log:
        LOGS + "/inequality_chain.log",
    script:
        "../scripts/inequality_chain.py"


rule published_comparison:
    """Verified published numbers (config report.published) beside ours."""
    input:
        summary=RESULTS + "/tables/summary.csv",
        chain=RESULTS + "/tables/inequality_chain.csv",
    output:
        **table("published", "published.rst"),
    params:
        published=experiment_setting("report", "published"),
    log:
        LOGS + "/published_comparison.log",
    script:
        "../scripts/published_comparison.py"


rule plot_accuracy_vs_radius:
    """Certified (solid) and under-attack (dashed) accuracy against the L2 radius."""
    input:
        per_run(RUN + "/examples.csv"),
    output:
        **figure("accuracy_vs_radius", "accuracy_vs_radius.rst"),
    params:
        runs=run_labels,
        radii=experiment_setting("report", "radii"),
    log:
        LOGS + "/plot_accuracy_vs_radius.log",
    script:
        "../scripts/plot_examples.py"


rule plot_inequality_chain:
    """Fig. 4: the chain ratios per example."""
    input:
        per_run(RUN + "/examples.csv"),
    output:
        **figure("inequality_chain", "inequality_chain_figure.rst"),
    params:
        runs=run_labels,
        published=experiment_setting("report", "published"),
    log:
        LOGS + "/plot_inequality_chain.log",
    script:
        "../scripts/plot_examples.py"


rule plot_certified_vs_attack:
    """Certified radius against the smallest attack distance, per example."""
    input:
        per_run(RUN + "/examples.csv"),
    output:
        **figure("certified_vs_attack", "certified_vs_attack.rst"),
    params:
        runs=run_labels,
    log:
        LOGS + "/plot_certified_vs_attack.log",
    script:
        "../scripts/plot_examples.py"


rule bound_comparison:
    """Fig. 3 and its table: Thm 1/2, Cor. 1, Cisse+, Peck+ and the certified bound per layer."""
    input:
        per_run(RUN + "/layer_bounds.csv"),
    output:
        **{f"figure_{k}": v for k, v in figure("bound_comparison", "bound_comparison_figure.rst").items()},
        **{f"table_{k}": v for k, v in table("bound_comparison", "bound_comparison.rst").items()},
    params:
        runs=run_labels,
    log:
        LOGS + "/bound_comparison.log",
    script:
        "../scripts/bound_comparison.py"


rule plot_certified_perturbations:
    """Fig. 5: test images beside perturbations of their certified size (first seed per method)."""
    input:
        models=per_run(RUN + "/model.pt"),
        examples=per_run(RUN + "/examples.csv"),
    output:
        **figure("certified_perturbations", "certified_perturbations.rst"),
    params:
        runs=run_labels,
        report=experiment_setting("report"),
    log:
        LOGS + "/plot_certified_perturbations.log",
    threads: 1
    script:
        "../scripts/plot_certified_perturbations.py"
