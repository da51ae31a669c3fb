from seiscluster.fileio import write_text
from seiscluster.workflow import end_job, run_stage


def write_config(*, config: str, text: str) -> None:
    write_text(config, text)


run_stage(snakemake, write_config)  # noqa: F821 (snakemake is injected by the script directive)
end_job()
