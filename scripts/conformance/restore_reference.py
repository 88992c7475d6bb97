#!/usr/bin/env python3
"""Reference outputs of the Real-ESRGAN ncnn networks, from ncnn itself (pyncnn, CPU).

    python restore_reference.py OUT_DIR

Runs each network TTPO loads (core/src/restore) on crops of real photographs with ncnn's
own runtime on the CPU and writes, per network, OUT_DIR/<kind>.safetensors with
`<crop>.input` (1, 3, h, w) and `<crop>.output` (1, 3, s*h, s*w), f32, RGB in [0, 1]
(ncnn's blob layout is C x H x W, the batch axis added here), plus OUT_DIR/restore.json
with the crop boxes and the ncnn version, and OUT_DIR/crops.safetensors (the crops, for
restore_reference_tfjs.js, which writes the RDN references). core/tests/restore.rs compares
against them.

Inputs: $TTPO_ASSETS/restore/*.param|bin and $TTPO_ASSETS/photos (scripts/fetch-assets.sh).
ncnn runs in full f32: fp16/bf16 storage and arithmetic, int8 and Winograd are switched
off, so the reference is the plain f32 arithmetic of the graph (the f16 weights in the
.bin are widened to f32 on load, as TTPO does).
"""
import json
import os
import sys

import ncnn
import numpy as np
from PIL import Image
from safetensors.numpy import save_file

KINDS = {
    "realesrgan-x4": ("realesrgan-x4plus", 4),
    "realesr-animevideov3-x2": ("realesr-animevideov3-x2", 2),
    "realesr-animevideov3-x4": ("realesr-animevideov3-x4", 4),
}
# (name, photo, x, y, w, h): non-square on purpose, so a transposed axis shows.
CROPS = [
    ("astronaut", "astronaut.png", 160, 64, 64, 48),
    ("coffee", "coffee.png", 200, 150, 48, 64),
]


def load_net(param, binf):
    net = ncnn.Net()
    o = net.opt
    o.use_vulkan_compute = False
    o.num_threads = 2
    for flag in (
        "use_fp16_packed",
        "use_fp16_storage",
        "use_fp16_arithmetic",
        "use_bf16_storage",
        "use_int8_inference",
        "use_winograd_convolution",
    ):
        if hasattr(o, flag):
            setattr(o, flag, False)
    assert net.load_param(param) == 0, param
    assert net.load_model(binf) == 0, binf
    return net


def main():
    out = sys.argv[1]
    assets = os.environ.get("TTPO_ASSETS") or os.path.join(
        os.path.dirname(__file__), "..", "..", ".cache", "assets"
    )
    os.makedirs(out, exist_ok=True)
    crops = {}
    for name, photo, x, y, w, h in CROPS:
        img = np.asarray(Image.open(os.path.join(assets, "photos", photo)).convert("RGB"))
        crop = img[y : y + h, x : x + w].astype(np.float32) / np.float32(255.0)
        crops[name] = np.ascontiguousarray(crop.transpose(2, 0, 1))
    # The crops for restore_reference_tfjs.js (Node has no PNG decoder of its own).
    save_file({k: v[None] for k, v in crops.items()}, os.path.join(out, "crops.safetensors"))
    for kind, (stem, scale) in KINDS.items():
        d = os.path.join(assets, "restore")
        net = load_net(os.path.join(d, stem + ".param"), os.path.join(d, stem + ".bin"))
        tensors = {}
        for name, chw in crops.items():
            ex = net.create_extractor()
            ex.input("data", ncnn.Mat(chw))
            ret, y = ex.extract("output")
            assert ret == 0, (kind, name, ret)
            y = np.array(y, dtype=np.float32)
            assert y.shape == (3, chw.shape[1] * scale, chw.shape[2] * scale), y.shape
            tensors[f"{name}.input"] = chw[None]
            tensors[f"{name}.output"] = np.ascontiguousarray(y[None])
            print(f"restore_reference: {kind} {name} {chw.shape} -> {y.shape}, "
                  f"range [{y.min():.4f}, {y.max():.4f}]")
        save_file(tensors, os.path.join(out, f"{kind}.safetensors"))
    meta = {
        "ncnn": getattr(ncnn, "__version__", "unknown"),
        "crops": [dict(zip(("name", "photo", "x", "y", "w", "h"), c)) for c in CROPS],
        "kinds": {k: {"files": v[0], "scale": v[1]} for k, v in KINDS.items()},
    }
    with open(os.path.join(out, "restore.json"), "w") as f:
        json.dump(meta, f, indent=1)


if __name__ == "__main__":
    main()
