# lmt-bench: train → certify → attack → aggregate, for every configured method and seed.
# Run:  snakemake --cores 2 --workflow-profile workflow/profiles/default   (or: make reproduce)
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/certify.smk"
include: "workflow/rules/attack.smk"
include: "workflow/rules/analysis.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
