rule aggregate:
    """Clean, certified and under-attack accuracy at the configured radii, per method."""
    input:
        per_run(RUN + "/examples.csv"),
    output:
        metrics=RESULTS + "/tables/metrics.csv",
        summary=report(
            RESULTS + "/tables/summary.csv",
            caption="../report/summary.rst",
            category="Tables",
        ),
        markdown=RESULTS + "/tables/summary.md",
    params:
        runs=run_labels,
        radii=experiment_setting("report", "radii"),
    log:
        LOGS + "/aggregate.log",
    script:
        "../scripts/aggregate.py"


rule plot_accuracy_vs_radius:
    """Certified (solid) and under-C&W (dashed) accuracy against the L2 radius."""
    input:
        per_run(RUN + "/examples.csv"),
    output:
        png=report(
            RESULTS + "/figures/accuracy_vs_radius.png",
            caption="../report/accuracy_vs_radius.rst",
            category="Figures",
        ),
        pdf=RESULTS + "/figures/accuracy_vs_radius.pdf",
    params:
        runs=run_labels,
        radii=experiment_setting("report", "radii"),
        title="{experiment}",
    log:
        LOGS + "/plot_accuracy_vs_radius.log",
    script:
        "../scripts/plot_accuracy_vs_radius.py"
