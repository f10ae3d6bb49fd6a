"""Export a ``RecommenderNet`` to ONNX and check what was really written."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from movierec.export.opsets import ir_version_for
from movierec.serve_batch import contract
from movierec.serve_batch.errors import ArtifactError

#: Rows of the example batch traced by the exporter; >= 2 keeps the batch axis dynamic.
EXAMPLE_BATCH = 4


@contextlib.contextmanager
def _quiet_exporter():
    """The dynamo exporter prints progress and warns about unrelated operators: hide it."""
    names = ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "onnx_ir")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def export_onnx(module: nn.Module, path: Path, opset: int, metadata: dict[str, str]) -> None:
    """Write the pairs graph ``module`` to ``path`` at ``opset`` with a dynamic batch axis
    and ``metadata``."""
    example = (
        torch.arange(EXAMPLE_BATCH, dtype=torch.int64),
        torch.arange(EXAMPLE_BATCH, dtype=torch.int64),
    )
    batch = torch.export.Dim(contract.BATCH_AXIS, min=1)
    model = _export(
        module,
        example,
        opset,
        input_names=[contract.INPUT_USER, contract.INPUT_MOVIE],
        output_names=[contract.OUTPUT_RATING, contract.OUTPUT_RANK],
        dynamic_shapes=({0: batch}, {0: batch}),
    )
    check_io(model)
    _save(model, path, metadata)


def export_catalog_onnx(
    module: nn.Module, path: Path, n_movies: int, opset: int, metadata: dict[str, str]
) -> None:
    """Write the catalog graph (``movierec.export.folding.CatalogNet``) to ``path``: dynamic
    user and exclusion axes, K as an input, TopK inside; its ``META_CATALOG`` metadata
    tells the scorer the layout, the movie count, the kind of bound and the call size."""
    users = torch.export.Dim(contract.USERS_AXIS, min=1)
    pairs = torch.export.Dim(contract.EXCLUDED_AXIS, min=0)
    example = (
        torch.arange(EXAMPLE_BATCH, dtype=torch.int64),
        torch.tensor([0, EXAMPLE_BATCH * n_movies - 1], dtype=torch.int64),
        torch.tensor(min(3, n_movies), dtype=torch.int64),
    )
    model = _export(
        module,
        example,
        opset,
        input_names=[contract.INPUT_USER, contract.INPUT_EXCLUDED, contract.INPUT_K],
        output_names=[contract.OUTPUT_TOP_MOVIE, contract.OUTPUT_TOP_BOUND],
        dynamic_shapes=({0: users}, {0: pairs}, None),
    )
    check_catalog_io(model)
    catalog = {
        "format": contract.CATALOG_FORMAT,
        "movies": n_movies,
        "bound": module.bound,
        "call_pairs": module.call_pairs,
    }
    _save(model, path, {**metadata, contract.META_CATALOG: json.dumps(catalog, sort_keys=True)})


def _export(
    module: nn.Module,
    example: tuple[torch.Tensor, ...],
    opset: int,
    *,
    input_names: list[str],
    output_names: list[str],
    dynamic_shapes: tuple,
) -> onnx.ModelProto:
    """torch's exporter works at opset 18 and converts down; it can leave a different opset
    in the file with only a warning, so the result is checked. The file gets the lowest
    IR version that the opset needs (``ir_version_for``), not the exporter's newest."""
    module = module.eval()
    with torch.no_grad(), _quiet_exporter():
        program = torch.onnx.export(
            module,
            example,
            dynamo=True,
            opset_version=opset,
            input_names=input_names,
            output_names=output_names,
            dynamic_shapes=dynamic_shapes,
            optimize=True,
            verbose=False,
        )
    model = program.model_proto
    declared = declared_opset(model)
    if declared != opset:
        raise ArtifactError(
            f"the exporter wrote opset {declared} although opset {opset} was requested; "
            "nothing was written (try another --opset or another torch/onnxscript version)"
        )
    model.ir_version = ir_version_for(opset)
    return model


def _save(model: onnx.ModelProto, path: Path, metadata: dict[str, str]) -> None:
    for key, value in sorted(metadata.items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model, full_check=True)
    onnx.save_model(model, str(path))


def declared_opset(model: onnx.ModelProto) -> int | None:
    """The default-domain opset a model declares."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return None


def check_io(model: onnx.ModelProto) -> None:
    """Inputs and output have the contract's names, types and a dynamic batch axis."""
    expected_inputs = {
        contract.INPUT_USER: onnx.TensorProto.INT64,
        contract.INPUT_MOVIE: onnx.TensorProto.INT64,
    }
    got_inputs = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    got_outputs = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    problems = []
    if got_inputs != expected_inputs:
        problems.append(f"inputs {got_inputs} (expected {expected_inputs})")
    expected_outputs = {
        contract.OUTPUT_RATING: onnx.TensorProto.FLOAT,
        contract.OUTPUT_RANK: onnx.TensorProto.FLOAT,
    }
    if got_outputs != expected_outputs:
        problems.append(f"outputs {got_outputs} (expected {expected_outputs})")
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims) != 1 or dims[0].HasField("dim_value"):
            problems.append(
                f"{value.name} has shape {[str(d).strip() for d in dims]}, "
                "expected one dynamic batch axis"
            )
    if problems:
        raise ArtifactError(
            "the exported graph breaks the scorer's contract: " + "; ".join(problems)
        )


def check_catalog_io(model: onnx.ModelProto) -> None:
    """The catalog graph's inputs and outputs: names, types and shapes of the contract."""
    T = onnx.TensorProto
    expected = {
        contract.INPUT_USER: (T.INT64, 1),
        contract.INPUT_EXCLUDED: (T.INT64, 1),
        contract.INPUT_K: (T.INT64, 0),
        contract.OUTPUT_TOP_MOVIE: (T.INT64, 2),
        contract.OUTPUT_TOP_BOUND: (T.FLOAT, 2),
    }
    values = {v.name: v for v in list(model.graph.input) + list(model.graph.output)}
    problems = []
    if set(values) != set(expected):
        problems.append(f"inputs and outputs {sorted(values)} (expected {sorted(expected)})")
    for name, (elem, rank) in expected.items():
        value = values.get(name)
        if value is None:
            continue
        dims = value.type.tensor_type.shape.dim
        if value.type.tensor_type.elem_type != elem or len(dims) != rank:
            problems.append(f"{name} has type {value.type.tensor_type.elem_type}, rank {len(dims)}")
        elif rank and dims[0].HasField("dim_value"):
            problems.append(f"{name}: its first axis is fixed, expected it dynamic")
    if problems:
        raise ArtifactError(
            "the exported catalog graph breaks the scorer's contract: " + "; ".join(problems)
        )
