rule train:
    """Train one method with one seed; resumes from the last finished epoch after a crash."""
    output:
        model=RUN + "/model.pt",
        log=RUN + "/train_log.csv",
        provenance=RUN + "/model.provenance.json",
    params:
        settings=stage_settings(stage_config.train, "method", "seed"),
        resume=RUN + "/resume.pt",
    log:
        LOGS + "/train/{method}_seed{seed}.log",
    benchmark:
        BENCHMARKS + "/train/{method}_seed{seed}.tsv"
    threads: 1
    resources:
        gpu=1,
    script:
        "../scripts/train.py"
