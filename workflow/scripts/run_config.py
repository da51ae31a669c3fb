from seiscluster.fileio import write_text
from seiscluster.workflow import run_stage


def write_config(*, config: str, text: str) -> None:
    write_text(config, text)


run_stage(snakemake, write_config)  # noqa: F821 (snakemake is injected by the script directive)
