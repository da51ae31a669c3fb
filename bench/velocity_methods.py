"""Every velocity method side by side, from finished runs: k, scores, fit time, the adjusted
Rand index between every pair of clusterings and the consensus summary.

Run the workflow first (every method; a second run for agglomerative with connectivity),
then give the run folders::

    O='"branches=[velocity]","velocity.methods=[kmeans,som,gmm,agglomerative]","velocity.consensus.seeds=5"'
    snakemake --cores 2 --config run=cascadia \\
      overrides="[$O,\\"data=cascadia\\",\\"velocity.profiles.zrange=[0,60]\\",\\"velocity.profiles.dz=2\\"]"
    snakemake --cores 2 --config run=cascadia_nb \\
      overrides="[$O,\\"data=cascadia\\",\\"velocity.profiles.zrange=[0,60]\\",\\"velocity.profiles.dz=2\\",\\"velocity.agglomerative.connectivity=neighbours\\",\\"velocity.consensus.methods=[agglomerative]\\"]"
    python bench/velocity_methods.py results/cascadia results/cascadia_nb

A clustering that a later folder repeats (the stages it shares with an earlier run) is
listed once. ARI is computed over the profiles both label (every profile of the model).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from sklearn.metrics import adjusted_rand_score

METHODS = ("kmeans", "som", "gmm", "agglomerative")


def clusterings(folders: list[Path]) -> dict[str, tuple[pd.Series, dict]]:
    """``<run>/<method>`` -> (cluster of every profile keyed by lat/lon, metrics), repeats
    of an earlier folder's clustering left out."""
    out: dict[str, tuple[pd.Series, dict]] = {}
    for folder in folders:
        for method in METHODS:
            table = folder / "velocity" / method / "cluster_map.csv"
            if not table.is_file():
                continue
            frame = pd.read_csv(table)
            labels = frame.set_index(["lat", "lon"])["cluster"]
            labels = labels[~labels.index.duplicated()]
            metrics = json.loads((table.parent / "metrics.json").read_text())
            if any(m == metrics for _, m in out.values()):
                continue
            extra = metrics.get("connectivity")
            name = f"{method}" + (f" ({extra})" if extra else "")
            out[name] = (labels, metrics)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="finished run folders")
    args = parser.parse_args()
    found = clusterings(args.folders)
    rows = []
    for name, (_, m) in found.items():
        rows.append({"clustering": name, "k": m.get("n_clusters"),
                     "weights": m.get("weights"), "silhouette": m.get("silhouette"),
                     "calinski_harabasz": m.get("calinski_harabasz"),
                     "fit_s": m.get("fit_seconds"),
                     "warnings": ",".join(w["code"] for w in m.get("warnings", [])) or "-"})
    print(pd.DataFrame(rows).to_string(index=False, float_format="{:.3f}".format))
    names = list(found)
    ari = pd.DataFrame(index=names, columns=names, dtype=float)
    for a in names:
        for b in names:
            la, lb = found[a][0], found[b][0]
            common = la.index.intersection(lb.index)
            ari.loc[a, b] = adjusted_rand_score(la[common], lb[common])
    print("\nadjusted Rand index between the clusterings")
    print(ari.to_string(float_format="{:.3f}".format))
    print("\nconsensus (velocity/consensus/metrics.json)")
    for folder in args.folders:
        path = folder / "velocity/consensus/metrics.json"
        if not path.is_file():
            continue
        record = json.loads(path.read_text())
        frame = pd.DataFrame([{"run": folder.name, "method": method,
                               **{k: v for k, v in r.items() if not isinstance(v, list)}}
                              for method, r in record["methods"].items()])
        print(f"{folder}: {record['seeds']} refits on {record['fraction']:.0%} draws, "
              f"low agreement below {record['low_agreement']}; warnings: "
              f"{[w['code'] for w in record['warnings']] or 'none'}")
        print(frame.to_string(index=False, float_format="{:.3f}".format))


if __name__ == "__main__":
    main()
