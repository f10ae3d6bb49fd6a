"""movierec: train a MovieLens rating model with PyTorch, export it to ONNX, score it in
batch without PyTorch, and run it nightly.

The stages are the subpackages ``movierec.train``, ``movierec.export``,
``movierec.serve_batch`` and ``movierec.nightly``. Importing this package imports none
of them (the torch-free scorer stays torch-free).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("movierec")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
