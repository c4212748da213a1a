rule certify:
    """Certification-mode Lipschitz bound and per-example certified radii (Prop. 1 and 2)."""
    input:
        model=RUN + "/model.pt",
    output:
        examples=RUN + "/certified.csv",
        bounds=RUN + "/bounds.json",
    log:
        LOGS + "/certify/{method}_seed{seed}.log",
    benchmark:
        BENCHMARKS + "/certify/{method}_seed{seed}.tsv"
    threads: 1
    resources:
        gpu=1,
    script:
        "../scripts/certify.py"
