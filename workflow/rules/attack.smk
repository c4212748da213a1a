rule attack:
    """One configured attack ({attack} = NAME or NAME.TAG of config attack.attacks) on one run:
    Foolbox minimal L2 distances (upper bounds) at the configured budget."""
    input:
        model=RUN + "/model.pt",
    output:
        examples=RUN + "/attack_{attack}.csv",
        provenance=RUN + "/attack_{attack}.provenance.json",
    params:
        settings=stage_settings(stage_config.attack, "attack"),
    log:
        LOGS + "/attack/{method}_seed{seed}_{attack}.log",
    benchmark:
        BENCHMARKS + "/attack/{method}_seed{seed}_{attack}.tsv"
    threads: 1
    resources:
        gpu=1,
    script:
        "../scripts/attack.py"


rule gradient_bounds:
    """(B) and (C) of the inequality chain: margins over gradient-based lower bounds of the
    pairwise Lipschitz constants, global (test set) and per batch."""
    input:
        model=RUN + "/model.pt",
    output:
        examples=RUN + "/gradient_bounds.csv",
        bounds=RUN + "/gradient_bounds.json",
    params:
        settings=stage_settings(stage_config.gradient_bounds),
    log:
        LOGS + "/gradient_bounds/{method}_seed{seed}.log",
    benchmark:
        BENCHMARKS + "/gradient_bounds/{method}_seed{seed}.tsv"
    threads: 1
    script:
        "../scripts/gradient_bounds.py"


rule merge_examples:
    """One tidy per-example table per run; fails if a certificate exceeds an attack distance
    (or a gradient-based radius), naming the run, the example ids and the numbers."""
    input:
        certified=RUN + "/certified.csv",
        gradient=RUN + "/gradient_bounds.csv",
        attacks=attack_outputs(RUN + "/attack_{attack}.csv"),
    output:
        RUN + "/examples.csv",
    params:
        attacks=attack_names,
    log:
        LOGS + "/merge_examples/{method}_seed{seed}.log",
    script:
        "../scripts/merge_examples.py"
