"""seiscluster.workflow.link_products: the run folder's links into the stage store."""

from pathlib import Path

from seiscluster.workflow import link_products


def test_links_are_relative_and_a_stemmed_folder_holds_renamed_links(tmp_path):
    store = tmp_path / "results/stages/s/abc"
    (store / "seisgo").mkdir(parents=True)
    (store / "seisgo/clusters_k5_results.pk").write_bytes(b"x")
    (store / "seisgo/.snakemake_timestamp").write_bytes(b"")
    (store / "metrics.json").write_text("{}")
    run = tmp_path / "results/run/velocity/kmeans"
    links = {str(run / "metrics.json"): str(store / "metrics.json"),
             str(run / "seisgo"): str(store / "seisgo")}
    for stem in ("kmean", "mine"):  # a new stem replaces the folder of links
        link_products(links=links, stems={str(run / "seisgo"): stem})
        assert [p.name for p in (run / "seisgo").iterdir()] == \
            [f"{stem}_clusters_k5_results.pk"]
    pk = run / "seisgo/mine_clusters_k5_results.pk"
    assert pk.is_symlink() and not Path(pk.readlink()).is_absolute()
    assert pk.read_bytes() == b"x"
    assert (run / "metrics.json").is_symlink() and (run / "metrics.json").read_text() == "{}"
    # a run folder made before stems (the folder itself a link) is replaced too
    (run / "seisgo").rename(tmp_path / "old")
    (run / "seisgo").symlink_to(store / "seisgo")
    link_products(links=links, stems={str(run / "seisgo"): "som"})
    assert not (run / "seisgo").is_symlink()
    assert [p.name for p in (run / "seisgo").iterdir()] == ["som_clusters_k5_results.pk"]
    assert not list(run.glob(".*"))
