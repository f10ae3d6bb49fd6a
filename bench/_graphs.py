"""A trained checkpoint and its exported graphs for the speed benchmarks (needs torch).

``prepare_graphs`` trains the default model on ../shared/data/ml-100k when the artifacts
folder has no checkpoint, then exports it twice with ``rec-export``'s own code: the folded
graph (the default, with its catalog graph) and the plain graph. Exports are reused while
the checkpoint is unchanged.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from _common import REPO, RESULTS

from movierec.serve_batch import contract

DATA = REPO.parent / "shared" / "data" / "ml-100k"
GRAPHS = ("folded", "plain")


@dataclass
class Graphs:
    artifacts: Path  # the checkpoint's folder
    folders: dict[str, Path]  # graph name -> folder with model.onnx + id_mapping.json


def prepare_graphs(artifacts: Path | None, tag: str = "default", quiet: bool = True) -> Graphs:
    """Train (if needed) and export both graphs into bench/results/graphs/TAG/."""
    artifacts = Path(artifacts) if artifacts else RESULTS / "artifacts"
    checkpoint = artifacts / contract.CHECKPOINT_FILE
    if not checkpoint.is_file():
        if not DATA.is_dir():
            raise SystemExit(
                f"{checkpoint} is missing and {DATA} is absent: pass --artifacts with a "
                "rec-train output folder"
            )
        from movierec.train.config import TrainConfig
        from movierec.train.pipeline import run_training

        print(f"training the default model on {DATA} into {artifacts} ...", flush=True)
        run_training(TrainConfig.for_arch("hybrid", data=DATA, artifacts=artifacts, quiet=quiet))
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    folders = {}
    for graph in GRAPHS:
        out = RESULTS / "graphs" / tag / graph
        stamp = out / "checkpoint.sha256"
        if not (stamp.is_file() and stamp.read_text().strip() == digest):
            from movierec.export.config import ExportConfig
            from movierec.export.pipeline import run_export

            print(f"exporting the {graph} graph into {out} ...", flush=True)
            run_export(ExportConfig(artifacts=artifacts, output=out, graph=graph, quiet=quiet))
            stamp.write_text(digest + "\n")
        folders[graph] = out
    return Graphs(artifacts, folders)


def graph_metadata(folder: Path) -> dict:
    import onnx

    model = onnx.load(str(folder / contract.MODEL_FILE), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    return {
        "graph": meta.get(contract.META_GRAPH),
        "arch": json.loads(meta.get(contract.META_ARCH, "{}")),
        "opset": meta.get(contract.META_OPSET),
    }
