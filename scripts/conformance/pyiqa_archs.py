"""Import pyiqa's architecture modules without pyiqa's package __init__ files.

pyiqa's `__init__` (and `pyiqa.archs.__init__`, which imports every arch in the wheel) pull
in datasets, OpenCV, facexlib, CLIP weights and more that the conformance runs never use.
Here the packages are registered as empty namespace modules pointing at the wheel's folders,
so `import pyiqa.archs.musiq_arch` runs only that file and what it imports itself. Modules
an arch imports but never uses on the no-reference path (facexlib's face helper for TOPIQ's
face models) are stubbed.
"""
import importlib
import importlib.util
import sys
import types
from pathlib import Path


def _namespace(name: str, folder: Path) -> None:
    if name in sys.modules:
        return
    module = types.ModuleType(name)
    module.__path__ = [str(folder)]
    module.__package__ = name
    sys.modules[name] = module


def _stub(name: str, **attrs) -> None:
    module = types.ModuleType(name)
    module.__path__ = []
    for key, value in attrs.items():
        setattr(module, key, value)
    sys.modules[name] = module


def arch(name: str):
    """The module `pyiqa.archs.<name>` (e.g. `musiq_arch`), imported on its own."""
    if "pyiqa" in sys.modules:
        return importlib.import_module(f"pyiqa.archs.{name}")
    spec = importlib.util.find_spec("pyiqa")
    root = Path(spec.submodule_search_locations[0])
    _namespace("pyiqa", root)
    for sub in ("archs", "utils", "data", "matlab_utils"):
        _namespace(f"pyiqa.{sub}", root / sub)
    if "facexlib" not in sys.modules:
        class FaceRestoreHelper:  # only TOPIQ's face-IQA variant uses it
            def __init__(self, *a, **k):
                raise RuntimeError("facexlib is stubbed in the conformance venv")
        _stub("facexlib")
        _stub("facexlib.utils")
        _stub("facexlib.utils.face_restoration_helper", FaceRestoreHelper=FaceRestoreHelper)
    if importlib.util.find_spec("scipy") is None:
        def factorial(*a, **k):  # only the steerable pyramid (CW-SSIM, NLPD) needs it
            raise RuntimeError("scipy is stubbed in the conformance venv")
        _stub("scipy")
        _stub("scipy.special", factorial=factorial)
    # matlab_utils/__init__ re-exports helpers from its files; run it for real.
    sys.modules.pop("pyiqa.matlab_utils")
    importlib.import_module("pyiqa.matlab_utils")
    return importlib.import_module(f"pyiqa.archs.{name}")
