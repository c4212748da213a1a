rule attack:
    """One configured attack ({attack} = NAME or NAME.TAG of config attack.attacks) on one run:
    Foolbox minimal L2 distances (upper bounds) at the configured budget."""
    input:
        model=RUN.model,
    output:
        examples=RUN.attack("{attack}"),
        provenance=provenance_path(RUN.attack("{attack}")),
    params:
        settings=stage_settings(stage_config.attack, "attack"),
    log:
        RUN.log("attack", "{attack}"),
    benchmark:
        RUN.benchmark("attack", "{attack}")
    threads: 1
    resources:
        gpu=1,
    conda:
        ENVIRONMENT
    script:
        "../scripts/attack.py"


rule gradient_bounds:
    """(B) and (C) of the inequality chain: margins over gradient-based lower bounds of the
    pairwise Lipschitz constants, global (test set) and per batch."""
    input:
        model=RUN.model,
    output:
        examples=RUN.gradient_bounds_csv,
        bounds=RUN.gradient_bounds_json,
    params:
        settings=stage_settings(stage_config.gradient_bounds),
    log:
        RUN.log("gradient_bounds"),
    benchmark:
        RUN.benchmark("gradient_bounds")
    threads: 1
    resources:
        gpu=1,
    conda:
        ENVIRONMENT
    script:
        "../scripts/gradient_bounds.py"


rule merge_examples:
    """One tidy per-example table per run; fails if a certificate exceeds an attack distance
    (or a gradient-based radius), naming the run, the example ids and the numbers, or if the
    randomized-smoothing columns (where configured) break their invariants."""
    input:
        certified=RUN.certified,
        gradient=RUN.gradient_bounds_csv,
        attacks=attack_outputs,
        smoothing=smoothing_outputs,
    output:
        examples=RUN.examples,
    params:
        attacks=attack_names,
    log:
        RUN.log("merge_examples"),
    benchmark:
        RUN.benchmark("merge_examples")
    conda:
        ENVIRONMENT
    script:
        "../scripts/merge_examples.py"
