"""rec-score with every base dependency at its floor gives the newest versions' outputs.

    python bench/floors.py --artifacts DIR --floor-python .venv-min/bin/python \\
        [--opsets 17 18 19 20]

Run from the newest environment (it has torch, for rec-export). DIR holds a trained
checkpoint with its test and train + validation pairs (``rec-train --artifacts DIR``). For each
opset, the checkpoint is exported into a temporary folder, then both interpreters run
``rec-score`` on three jobs: the test pairs Parquet -> Parquet, the same pairs CSV ->
CSV with ``--top-k 10``, and catalog mode (every user, ``--exclude`` the train + validation pairs).
The outputs must match: predicted ratings bit for bit, top-k tables row for row, CSV
files byte for byte. The floor environment is made with
``python3 -m venv .venv-min && .venv-min/bin/pip install -c constraints-min.txt -e .``.
Writes bench/results/floors.json; exits 1 when an output differs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from _common import REPO, RESULTS, print_table

from movierec.serve_batch import contract

VERSIONS = (
    "import importlib.metadata as m, json, platform; print(json.dumps({'python': "
    "platform.python_version(), **{p: m.version(p) for p in "
    "('onnxruntime', 'numpy', 'pyarrow', 'click', 'tqdm')}}))"
)


def run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


def export(artifacts: Path, out: Path, opset: int) -> int:
    """Export the checkpoint at ``opset`` into ``out``; the IR version of model.onnx."""
    rec_export = str(Path(sys.executable).with_name("rec-export"))
    run([rec_export, "--artifacts", str(artifacts), "--output", str(out), "--opset", str(opset)])
    return onnx.load(str(out / contract.MODEL_FILE), load_external_data=False).ir_version


def write_inputs(artifacts: Path, folder: Path) -> dict[str, list[str]]:
    pairs = pq.read_table(artifacts / contract.TEST_PAIRS_FILE)
    pacsv.write_csv(pairs, folder / "pairs.csv")
    known = pq.read_table(artifacts / contract.TRAIN_VAL_PAIRS_FILE, columns=[contract.USER_COL])
    users = np.unique(known.column(0).to_numpy())
    pq.write_table(pa.table({contract.USER_COL: users}), folder / "users.parquet")
    return {
        "pairs parquet->parquet": [str(artifacts / contract.TEST_PAIRS_FILE), "scores.parquet"],
        "pairs csv->csv --top-k 10": [str(folder / "pairs.csv"), "scores.csv", "--top-k", "10"],
        "catalog --top-k 10": [
            str(folder / "users.parquet"),
            "top.parquet",
            "--all-movies",
            "--top-k",
            "10",
            "--exclude",
            str(artifacts / contract.TRAIN_VAL_PAIRS_FILE),
        ],
    }


def outputs_of(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.endswith(".manifest.json"))


def compare(newest: Path, floor: Path) -> dict:
    """Every output file of ``newest`` against ``floor``'s: ratings bits, rows, bytes."""
    result = {"files": [], "equal": True}
    names = [p.name for p in outputs_of(newest)]
    if names != [p.name for p in outputs_of(floor)]:
        return {"files": names, "equal": False, "problem": "different output files"}
    for name in names:
        a_path, b_path = newest / name, floor / name
        if name.endswith(".parquet"):
            a, b = pq.read_table(a_path), pq.read_table(b_path)
        else:
            a, b = pacsv.read_csv(a_path), pacsv.read_csv(b_path)
        ratings_bits = None
        if contract.PREDICTION_COL in a.column_names and contract.PREDICTION_COL in b.column_names:
            x = np.asarray(a.column(contract.PREDICTION_COL).to_numpy(), np.float32)
            y = np.asarray(b.column(contract.PREDICTION_COL).to_numpy(), np.float32)
            ratings_bits = x.shape == y.shape and np.array_equal(
                x.view(np.uint32), y.view(np.uint32)
            )
        same_rows = a.equals(b)
        same_bytes = a_path.read_bytes() == b_path.read_bytes() if ".csv" in name else None
        equal = same_rows and ratings_bits is not False and same_bytes is not False
        result["equal"] &= equal
        result["files"].append(
            {
                "file": name,
                "rows": a.num_rows,
                "ratings_bit_identical": ratings_bits,
                "rows_equal": same_rows,
                "bytes_equal": same_bytes,
            }
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, required=True, help="rec-train's folder")
    parser.add_argument("--floor-python", required=True, help="the floor environment's python")
    parser.add_argument("--opsets", type=int, nargs="+", default=[17, 18, 19, 20])
    parser.add_argument("--out", type=Path, default=RESULTS / "floors.json")
    args = parser.parse_args()

    envs = {"newest": sys.executable, "floor": args.floor_python}
    versions = {name: json.loads(run([py, "-c", VERSIONS])) for name, py in envs.items()}
    results, rows, all_equal = [], [], True
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        jobs = write_inputs(args.artifacts, tmp)
        for opset in args.opsets:
            model_dir = tmp / f"opset{opset}"
            ir = export(args.artifacts, model_dir, opset)
            for j, (job, job_args) in enumerate(jobs.items()):
                outs = {name: tmp / f"opset{opset}-job{j}-{name}" for name in envs}
                for name, python in envs.items():
                    outs[name].mkdir()
                    cmd = [python, "-m", "movierec.serve_batch", job_args[0]]
                    cmd += [str(outs[name] / job_args[1]), *job_args[2:]]
                    run(cmd + ["--artifacts", str(model_dir), "--quiet"])
                check = compare(outs["newest"], outs["floor"])
                all_equal &= check["equal"]
                results.append({"opset": opset, "ir_version": ir, "job": job, **check})
                detail = ", ".join(
                    f"{f['file']} {f['rows']} rows"
                    + (" ratings bit-identical" if f["ratings_bit_identical"] else "")
                    + (" bytes equal" if f["bytes_equal"] else "")
                    for f in check["files"]
                )
                rows.append(
                    (
                        f"opset {opset} (IR {ir}) | {job}",
                        ("EQUAL  " if check["equal"] else "DIFFER ") + detail,
                    )
                )
    for name, v in versions.items():
        print(f"{name}: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    print_table(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"versions": versions, "results": results, "all_equal": all_equal}
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")
    sys.exit(0 if all_equal else 1)


if __name__ == "__main__":
    main()
