"""Which ONNX opsets this installation can both write and run, and at which IR version."""

from __future__ import annotations

import functools

import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from movierec.serve_batch.errors import UsageError

MIN_OPSET = 17
#: The newest ONNX IR version that onnxruntime 1.17, the oldest that pyproject.toml
#: accepts, can load. Opsets 17-20 need no more (IR 8 or 9); newer opsets need IR 10+.
ONNXRUNTIME_FLOOR_MAX_IR = 9


def ir_version_for(opset: int) -> int:
    """The lowest ONNX IR version that a model importing ``opset`` (default domain) needs,
    from onnx's release table: files an older onnxruntime can still load.

    The exporter writes the newest IR version that the installed onnx knows (IR 10 with
    onnx 1.16+), which onnxruntime < 1.18 refuses although opset 17 needs only IR 8.
    """
    return helper.find_min_ir_version_for([helper.make_opsetid("", opset)])


@functools.cache
def max_supported_opset() -> int:
    """The newest opset that the installed onnx defines and onnxruntime loads.

    onnxruntime publishes no such number, so a one-node model is loaded at each
    candidate opset, newest first.
    """
    newest = onnx.defs.onnx_opset_version()
    for opset in range(newest, MIN_OPSET - 1, -1):
        graph = helper.make_graph(
            [helper.make_node("Identity", ["x"], ["y"])],
            "probe",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = ir_version_for(opset)
        try:
            ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        except Exception:
            continue
        return opset
    return MIN_OPSET


def check_opset(opset: int) -> int:
    """Refuse an opset outside ``MIN_OPSET..max_supported_opset()``, saying the range."""
    newest = max_supported_opset()
    if not MIN_OPSET <= opset <= newest:
        raise UsageError(
            f"--opset {opset} is not supported: choose {MIN_OPSET} to {newest} (the newest "
            f"opset that onnx {onnx.__version__} and onnxruntime {ort.__version__} both support)"
        )
    return opset
