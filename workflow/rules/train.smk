rule train:
    """Train one method with one seed; resumes from the last finished epoch after a crash."""
    output:
        model=RUN.model,
        train_log=RUN.train_log,
        provenance=provenance_path(RUN.model),
    params:
        settings=stage_settings(stage_config.train, "method", "seed"),
        resume=RUN.resume,
    log:
        RUN.log("train"),
    benchmark:
        RUN.benchmark("train")
    threads: 1
    resources:
        gpu=1,
    conda:
        ENVIRONMENT
    script:
        "../scripts/train.py"
