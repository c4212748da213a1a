rule attack_cw:
    """Foolbox C&W-L2 minimal distances (upper bounds) at the configured budget."""
    input:
        model=RUN + "/model.pt",
    output:
        examples=RUN + "/attack_cw.csv",
        provenance=RUN + "/attack_cw.provenance.json",
    log:
        LOGS + "/attack_cw/{method}_seed{seed}.log",
    benchmark:
        BENCHMARKS + "/attack_cw/{method}_seed{seed}.tsv"
    threads: 1
    script:
        "../scripts/attack.py"


rule merge_examples:
    """One tidy per-example table per run; fails if a certificate exceeds an attack distance."""
    input:
        certified=RUN + "/certified.csv",
        attack=RUN + "/attack_cw.csv",
    output:
        RUN + "/examples.csv",
    log:
        LOGS + "/merge_examples/{method}_seed{seed}.log",
    script:
        "../scripts/merge_examples.py"
