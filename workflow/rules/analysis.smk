rule aggregate:
    """Clean, certified and under-attack accuracy at the configured radii, per method; accuracy
    under each attack at each radius and median distances, per (method, attack)."""
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
        attacks=report(
            RESULTS + "/tables/attacks.csv",
            caption="../report/attacks.rst",
            category="Tables",
        ),
        attacks_markdown=RESULTS + "/tables/attacks.md",
    params:
        runs=run_labels,
        radii=experiment_setting("report", "radii"),
    log:
        LOGS + "/aggregate.log",
    script:
        "../scripts/aggregate.py"


rule inequality_chain:
    """Ratios (B)/(A), (C)/(B), (D)/(C) of the inequality chain of §6.1, per (method, seed)."""
    input:
        per_run(RUN + "/examples.csv"),
    output:
        table=report(
            RESULTS + "/tables/inequality_chain.csv",
            caption="../report/inequality_chain.rst",
            category="Tables",
        ),
        markdown=RESULTS + "/tables/inequality_chain.md",
    params:
        runs=run_labels,
    log:
        LOGS + "/inequality_chain.log",
    script:
        "../scripts/inequality_chain.py"


rule plot_accuracy_vs_radius:
    """Certified (solid) and under-attack (dashed; smallest distance over all attacks) accuracy
    against the L2 radius."""
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
