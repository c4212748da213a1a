# lmt-bench: train → certify → attack → aggregate, for every configured method and seed.
# Run:  snakemake --cores 2 --workflow-profile workflow/profiles/default   (or: make reproduce)
from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless the command line names config files (--configfile): those then
# stand alone, so `--configfile config/paper.yaml` runs the paper's experiments and nothing else
# (Snakemake would otherwise merge them into the default's experiments). `--config KEY=VALUE`
# still overrides single keys of whichever config is in use.
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/certify.smk"
include: "workflow/rules/attack.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
