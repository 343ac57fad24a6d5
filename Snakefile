"""gradlab sweep: models x variants x seeds x methods x epsilons -> tables -> HTML report.

Run:  snakemake --cores 2          (profiles/default is applied automatically)
Config: config/config.yaml, every key explained in config/README.md.
"""

import mimetypes
import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from gradlab.config import ConfigError, normalise

min_version("9.0")


configfile: "config/config.yaml"


# The one validation of the config: one-line errors naming key, value and what is allowed
# (and YAML's 1e-3 read as text becomes the number it means). The jobs trust the result.
try:
    CFG = normalise(config)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None


report: "workflow/report/workflow.rst"


# snakemake --report: the tables are Parquet files (offered for download, not shown as text)
mimetypes.add_type("application/vnd.apache.parquet", ".parquet")


include: "workflow/rules/common.smk"
include: "workflow/rules/check.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/report.smk"


# Run by the main snakemake process, never submitted to a cluster (cheap, need every file).
localrules:
    aggregate,
    examples,
    report,
    all,


rule all:
    default_target: True
    input:
        REPORT_HTML,


onsuccess:
    if os.path.exists(REPORT_HTML):
        print(f"gradlab report: {os.path.abspath(REPORT_HTML)}")
