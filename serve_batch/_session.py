"""onnxruntime session with every option spelled out (no hidden defaults)."""

from __future__ import annotations

import os
from pathlib import Path

import onnxruntime as ort

from movierec.serve_batch import contract
from movierec.serve_batch.errors import ArtifactError

PROVIDERS = ["CPUExecutionProvider"]

#: Pairs per onnxruntime call of the pairs graph (at most): small enough that one call's
#: intermediate arrays stay in the CPU caches. bench/tune_ort.py, ml-100k default model,
#: 2 calls side by side, two runs: 2048 pairs 5.58-7.65 M pairs/s; 1024: 5.78-6.49;
#: 4096: 4.82-7.03; 512: 4.92-5.49 (one thread: 2048 best, 3.50-3.90). rec-score end to
#: end, 10M pairs, best of 4: 2048 4.09 M pairs/s; 1024 3.80; 4096 4.04.
RUN_ROWS = 2048


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def session_threads(threads: int | None, parallelism: str = "calls") -> tuple[int, int]:
    """``(intra-op threads, side-by-side calls)`` for ``threads`` (0/None: every core);
    ``parallelism``: "calls" or "intra" (``movierec.serve_batch._config.PARALLELISM``)."""
    n = int(threads) if threads else available_cores()
    return (1, n) if parallelism == "calls" else (n, 1)


_GRAPH_OPT = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def build_session_options(threads: int | None, graph_opt: str) -> ort.SessionOptions:
    """Sequential execution, ``threads`` intra-op threads (0/None: onnxruntime's default).

    Spinning is turned off so idle ORT threads leave the CPU to Arrow's reading and
    writing between calls.
    """
    if graph_opt not in _GRAPH_OPT:
        raise ArtifactError(f"graph_opt must be one of {', '.join(_GRAPH_OPT)}, got {graph_opt!r}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or 0)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = _GRAPH_OPT[graph_opt]
    opts.log_severity_level = 3  # errors only: warnings would break the one-line contract
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def create_session(path: Path, threads: int | None, graph_opt: str) -> ort.InferenceSession:
    """A CPU session for the ONNX file ``path``; ``ArtifactError`` if it cannot be loaded."""
    try:
        return ort.InferenceSession(
            str(path),
            sess_options=build_session_options(threads, graph_opt),
            providers=PROVIDERS,
        )
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(f"{path}: not a loadable ONNX model ({first})") from exc


def open_session(model_path: Path, threads: int | None, graph_opt: str) -> ort.InferenceSession:
    """Create the CPU session and check the graph has the contract's inputs and output."""
    session = create_session(model_path, threads, graph_opt)
    inputs = {i.name: i.type for i in session.get_inputs()}
    shapes = {i.name: i.shape for i in session.get_inputs()}
    output_types = {o.name: o.type for o in session.get_outputs()}
    outputs = list(output_types)
    for name in (contract.INPUT_USER, contract.INPUT_MOVIE):
        if name not in inputs:
            raise ArtifactError(
                f"{model_path}: expected an input named {name!r} (int64), "
                f"found inputs {sorted(inputs)}"
            )
        if inputs[name] != "tensor(int64)":
            raise ArtifactError(f"{model_path}: input {name!r} is {inputs[name]}, expected int64")
        shape = shapes[name]
        if len(shape) != 1 or isinstance(shape[0], int):
            raise ArtifactError(
                f"{model_path}: input {name!r} has shape {shape}, expected [batch] with a "
                "dynamic batch dimension (an export traced with a fixed batch; re-export "
                "with rec-export)"
            )
    if contract.OUTPUT_RATING not in outputs:
        raise ArtifactError(
            f"{model_path}: expected an output named {contract.OUTPUT_RATING!r}, found {outputs}"
        )
    for name in (contract.OUTPUT_RATING, contract.OUTPUT_RANK):
        if name in output_types and output_types[name] != "tensor(float)":
            raise ArtifactError(
                f"{model_path}: output {name!r} is {output_types[name]}, expected float32"
            )
    return session


def has_rank_output(session: ort.InferenceSession) -> bool:
    """Whether the graph has the optional ``rank_score`` output (a ranking head)."""
    return any(o.name == contract.OUTPUT_RANK for o in session.get_outputs())
