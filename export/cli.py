"""``rec-export``: the command line over :func:`movierec.export.pipeline.run_export`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from movierec.export.config import (
    DEFAULT_OPSET,
    GRAPHS,
    PARITY_ATOL,
    PARITY_RANDOM_PAIRS,
    PARITY_TEST_PAIRS,
    ExportConfig,
)
from movierec.serve_batch import contract
from movierec.serve_batch.cli_support import (
    EXIT_CODES_HELP,
    artifacts_option,
    quiet_option,
    run_command,
    setup_logging,
    version_option,
)

log = logging.getLogger(__name__)

_EPILOG = (
    f"""\b
Writes {contract.MODEL_FILE} (inputs {contract.INPUT_USER} and {contract.INPUT_MOVIE}: int64
[batch]; outputs {contract.OUTPUT_RATING} and {contract.OUTPUT_RANK}: float32 [batch])
and {contract.MAPPING_FILE} (raw IDs -> embedding rows, rating scale, fallback means, titles),
{contract.CATALOG_FILE} (catalog mode: each user's K movies with the highest upper bounds
of the rank score; users, excluded pairs as sorted keys and K in, TopK inside), plus
export_report.json with the parity figures.
\b
Parity: the test split (all of it up to {PARITY_TEST_PAIRS:,} pairs, else a seeded sample of
that many) and {PARITY_RANDOM_PAIRS:,} random known pairs are scored by PyTorch and by
rec-score's own code; the catalog graph's bounds must hold for a sample of users and its
top-k tables equal the pairs graph's; above --atol the export fails and publishes nothing.
\b
Bad input (exit 2): a missing or incompatible checkpoint, an unwritable output,
an unsupported opset, or failed parity.
"""
    + EXIT_CODES_HELP
)

#: What an interrupted rec-export leaves as it was (the line printed on SIGINT/SIGTERM).
UNTOUCHED = (
    f"{contract.MODEL_FILE}, {contract.CATALOG_FILE} and {contract.MAPPING_FILE} in the "
    "output folder were left as they were (they are renamed into place only after parity)"
)


@click.command(
    name="rec-export",
    epilog=_EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@artifacts_option(f"Folder holding {contract.CHECKPOINT_FILE} from rec-train.")
@click.option(
    "--opset",
    type=int,
    default=DEFAULT_OPSET,
    show_default=True,
    help="ONNX opset to write, from 17 to the newest that the installed onnx and "
    "onnxruntime support; the file is checked to declare exactly this opset.",
)
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Folder to write {contract.MODEL_FILE}, {contract.CATALOG_FILE} and "
    f"{contract.MAPPING_FILE} into. "
    "[default: the --artifacts folder]",
)
@click.option(
    "--graph",
    type=click.Choice(GRAPHS),
    default="folded",
    show_default=True,
    help="'folded': the MLP's first Linear layer folded into the embedding tables (the same "
    "function, 4x (the seed network) to 15x (the default) fewer operations per pair); "
    "'plain': the network as trained.",
)
@click.option(
    "--atol",
    type=click.FloatRange(min=0),
    default=PARITY_ATOL,
    show_default=True,
    help="Largest absolute rating difference allowed between PyTorch and ONNX.",
)
@quiet_option()
@version_option()
def cli(
    artifacts: Path, opset: int, output: Path | None, graph: str, atol: float, quiet: bool
) -> None:
    """Convert the best rec-train checkpoint to ONNX plus a JSON ID mapping, and prove it."""
    from movierec.export.pipeline import run_export  # imports torch: keep --help fast

    setup_logging(quiet)
    result = run_export(
        ExportConfig(
            artifacts=artifacts, output=output, opset=opset, graph=graph, atol=atol, quiet=quiet
        )
    )
    log.info(
        "wrote %s and %s (max |diff| vs PyTorch %.3g)",
        result.model_path,
        result.mapping_path,
        result.parity.max_abs_diff,
    )


def main() -> None:
    sys.exit(run_command(cli, untouched=UNTOUCHED))


if __name__ == "__main__":
    main()
