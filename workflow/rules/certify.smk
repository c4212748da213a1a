rule certify:
    """Certification-mode Lipschitz bound, per-example certified radii (Prop. 1 and 2) and the
    per-layer bound comparison of Fig. 3."""
    input:
        model=RUN.model,
    output:
        examples=RUN.certified,
        bounds=RUN.bounds,
        layer_bounds=RUN.layer_bounds,
    params:
        settings=stage_settings(stage_config.certify),
    log:
        RUN.log("certify"),
    benchmark:
        RUN.benchmark("certify")
    threads: 1
    resources:
        gpu=1,
    conda:
        ENVIRONMENT
    script:
        "../scripts/certify.py"


rule smoothing:
    """Randomized smoothing (Cohen et al. 2019, CERTIFY; config certify.smoothing, only where it
    is set): per-example probabilistic radii of the smoothed classifier."""
    input:
        model=RUN.model,
    output:
        examples=RUN.smoothing,
        provenance=provenance_path(RUN.smoothing),
    params:
        settings=stage_settings(stage_config.smoothing),
    log:
        RUN.log("smoothing"),
    benchmark:
        RUN.benchmark("smoothing")
    threads: 1
    resources:
        gpu=1,
    conda:
        ENVIRONMENT
    script:
        "../scripts/smoothing.py"
