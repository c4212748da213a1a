rule certify:
    """Certification-mode Lipschitz bound, per-example certified radii (Prop. 1 and 2) and the
    per-layer bound comparison of Fig. 3."""
    input:
        model=RUN + "/model.pt",
    output:
        examples=RUN + "/certified.csv",
        bounds=RUN + "/bounds.json",
        layer_bounds=RUN + "/layer_bounds.csv",  # written by certify_stage beside bounds.json
    params:
        settings=stage_settings(stage_config.certify),
    log:
        LOGS + "/certify/{method}_seed{seed}.log",
    benchmark:
        BENCHMARKS + "/certify/{method}_seed{seed}.tsv"
    threads: 1
    resources:
        gpu=1,
    script:
        "../scripts/certify.py"
