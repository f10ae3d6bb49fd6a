"""One rec-score pairs run (Parquet in, Parquet out), timed in a process of its own.

``bench/score.py --against REF`` runs it once with this tree's movierec and once with the
commit REF's (PYTHONPATH pointing at a folder whose ``movierec/`` links to REF's stage
folders), alternately, so the two drivers are compared on the same machine at the same
time. Prints one JSON line: seconds, rows written, and which serve_batch ran.

    python bench/_e2e_run.py PAIRS.parquet OUT.parquet ARTIFACTS_DIR
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main() -> None:
    inp, out, artifacts = map(Path, sys.argv[1:4])
    import movierec.serve_batch as sb

    if hasattr(sb.ScoreConfig, "build"):  # this tree
        config = sb.ScoreConfig.build(inp, out, artifacts=artifacts, quiet=True)
    else:  # the driver before issue 11: one flat ScoreConfig
        config = sb.ScoreConfig(input=inp, output=out, artifacts=artifacts, quiet=True)
    t0, cpu0 = time.perf_counter(), time.process_time()
    manifest = sb.score_file(config)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu,
                "rows": manifest["rows_written"],
                "module": sb.__file__,
            }
        )
    )


if __name__ == "__main__":
    main()
