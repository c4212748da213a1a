# Experiment-level figures (PNG, PDF); each rule calls one stage of lmt/report/stages.py.
# `snakemake --report` shows every figure registered with report(), with its caption from
# workflow/report/.


rule plot_accuracy_vs_radius:
    """Certified (solid) and under-attack (dashed) accuracy against the L2 radius."""
    input:
        per_run("examples"),
    output:
        **figure("accuracy_vs_radius", "accuracy_vs_radius.rst"),
    params:
        runs=run_labels,
        settings=stage_settings(stage_config.accuracy_figure),
    log:
        EXPERIMENT.log("plot_accuracy_vs_radius"),
    benchmark:
        EXPERIMENT.benchmark("plot_accuracy_vs_radius")
    conda:
        ENVIRONMENT
    script:
        "../scripts/plot_examples.py"


rule plot_inequality_chain:
    """Fig. 4: the chain ratios per example."""
    input:
        per_run("examples"),
    output:
        **figure("inequality_chain", "inequality_chain_figure.rst"),
    params:
        runs=run_labels,
        settings=stage_settings(stage_config.chain_figure),
    log:
        EXPERIMENT.log("plot_inequality_chain"),
    benchmark:
        EXPERIMENT.benchmark("plot_inequality_chain")
    conda:
        ENVIRONMENT
    script:
        "../scripts/plot_examples.py"


rule plot_certified_vs_attack:
    """Certified radius against the smallest attack distance, per example."""
    input:
        per_run("examples"),
    output:
        **figure("certified_vs_attack", "certified_vs_attack.rst"),
    params:
        runs=run_labels,
        settings=stage_settings(stage_config.titled_figure),
    log:
        EXPERIMENT.log("plot_certified_vs_attack"),
    benchmark:
        EXPERIMENT.benchmark("plot_certified_vs_attack")
    conda:
        ENVIRONMENT
    script:
        "../scripts/plot_examples.py"


rule gap:
    """The certificate–attack gap: per example [best certified radius, smallest attack distance]."""
    input:
        per_run("examples"),
    output:
        **{f"figure_{k}": v for k, v in figure("gap", "gap_figure.rst").items()},
        **{f"table_{k}": v for k, v in table("gap", "gap.rst").items()},
    params:
        runs=run_labels,
        settings=stage_settings(stage_config.gap),
    log:
        EXPERIMENT.log("gap"),
    benchmark:
        EXPERIMENT.benchmark("gap")
    conda:
        ENVIRONMENT
    script:
        "../scripts/gap.py"


rule bound_comparison:
    """Fig. 3 and its table: Thm 1/2, Cor. 1, Cisse+, Peck+ and the certified bound per layer."""
    input:
        per_run("layer_bounds"),
    output:
        **{f"figure_{k}": v for k, v in figure("bound_comparison", "bound_comparison_figure.rst").items()},
        **{f"table_{k}": v for k, v in table("bound_comparison", "bound_comparison.rst").items()},
    params:
        runs=run_labels,
        settings=stage_settings(stage_config.titled_figure),
    log:
        EXPERIMENT.log("bound_comparison"),
    benchmark:
        EXPERIMENT.benchmark("bound_comparison")
    conda:
        ENVIRONMENT
    script:
        "../scripts/bound_comparison.py"


rule plot_certified_perturbations:
    """Fig. 5: test images beside perturbations of their certified size (first seed per method)."""
    input:
        models=per_run("model"),
        examples=per_run("examples"),
    output:
        **figure("certified_perturbations", "certified_perturbations.rst"),
    params:
        runs=run_labels,
        settings=stage_settings(stage_config.perturbation_figure),
    log:
        EXPERIMENT.log("plot_certified_perturbations"),
    benchmark:
        EXPERIMENT.benchmark("plot_certified_perturbations")
    conda:
        ENVIRONMENT
    threads: 1
    script:
        "../scripts/plot_certified_perturbations.py"


rule tradeoff:
    """Clean against certified accuracy per swept value (only experiments with a sweep)."""
    input:
        EXPERIMENT.metrics,
    output:
        **{f"figure_{k}": v for k, v in figure("tradeoff", "tradeoff_figure.rst").items()},
        **{f"table_{k}": v for k, v in table("tradeoff", "tradeoff.rst").items()},
    params:
        settings=stage_settings(stage_config.tradeoff),
    log:
        EXPERIMENT.log("tradeoff"),
    benchmark:
        EXPERIMENT.benchmark("tradeoff")
    conda:
        ENVIRONMENT
    script:
        "../scripts/tradeoff.py"
