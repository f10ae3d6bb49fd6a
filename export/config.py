"""``ExportConfig``: the one configuration of ``rec-export``, built by the CLI."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from movierec.serve_batch import contract

DEFAULT_OPSET = 17
#: ``folded``: the first Linear layer folded into the embedding tables (cheaper, same
#: function); ``plain``: the network as trained.
GRAPHS = ("folded", "plain")
#: Largest absolute difference allowed between PyTorch and the exported model.
PARITY_ATOL = 1e-4
#: Random known pairs scored on both sides, beside the test split.
PARITY_RANDOM_PAIRS = 10_000
#: Test-split pairs scored on both sides: the whole split up to this many (ml-100k's and
#: ml-latest-small's are whole), else a seeded sample, so export time does not grow with
#: the data.
PARITY_TEST_PAIRS = 50_000


@dataclass(frozen=True)
class ExportConfig:
    """Which checkpoint to export, at which opset, and where to write."""

    artifacts: Path = Path("artifacts")
    output: Path | None = None  # folder for model.onnx and id_mapping.json; default artifacts
    opset: int = DEFAULT_OPSET
    graph: str = "folded"  # "folded" (first Linear folded into the tables) or "plain"
    atol: float = PARITY_ATOL
    parity_pairs: int = PARITY_RANDOM_PAIRS
    parity_test_pairs: int = PARITY_TEST_PAIRS
    seed: int = 0
    quiet: bool = False

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.artifacts) / contract.CHECKPOINT_FILE

    @property
    def output_dir(self) -> Path:
        return Path(self.output if self.output is not None else self.artifacts)

    @property
    def model_path(self) -> Path:
        return self.output_dir / contract.MODEL_FILE

    @property
    def mapping_path(self) -> Path:
        return self.output_dir / contract.MAPPING_FILE

    @property
    def catalog_path(self) -> Path:
        return self.output_dir / contract.CATALOG_FILE

    def to_dict(self) -> dict:
        d = asdict(self)
        d["artifacts"] = str(self.artifacts)
        d["output"] = None if self.output is None else str(self.output)
        return d
