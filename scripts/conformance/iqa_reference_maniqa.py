#!/usr/bin/env python3
"""MANIQA reference features and scores from pyiqa's own architecture code (CPU, f32).

    python iqa_reference_maniqa.py OUT_DIR
    python iqa_reference_maniqa.py --time IMAGE [CROPS_PER_SIDE]   # pyiqa's time, median of 3

Builds pyiqa's `MANIQA` (maniqa_arch.py + maniqa_swin.py + timm's vit_base_patch8_224) with
pyiqa's `maniqa` options (the KonIQ checkpoint's: swin scale 0.8), no download (timm's
`pretrained=True` is patched to False), fills it with seeded random weights and writes:

- OUT_DIR/maniqa.pth: `model.state_dict()` saved with torch.save, the layout of pyiqa's
  published files (a flat state dict, loaded with weight_keys=None).
- OUT_DIR/maniqa.safetensors:
  - `<name>.image` (H, W, 3) uint8: every input, as pyiqa reads it (so no decoder differs);
  - `<name>.crops` (n, 3, 224, 224): the normalised crops of TTPO's default grid (3x3)
    for every image, through pyiqa's own normalisation and resize rule;
  - `<name>.uniform_pos` (20, 2) int32: the (top, left) of pyiqa's own `uniform_crop` with
    its default test_sample=20, found by cropping a coordinate image with that function;
  - for the images run through the whole net (FULL): `<name>.score` (1,), the per-patch
    `<name>.patch_score` / `<name>.patch_weight` (n, 784) and, for the first crop,
    `<name>.vit` (784, 3072) (blocks 6-9 concatenated), `<name>.stage1` (768, 28, 28) and
    `<name>.stage2` (384, 28, 28).
- OUT_DIR/maniqa.json: image names, grids and activation statistics.

The whole net is run on few images (it costs ~100 GMAC per 224 crop); the crop and resize
rules, which are cheap, on all of them, including `small` (a 200x150 cut of chelsea, which
pyiqa upscales so that its shorter side is 225).

Random weights: every parameter is redrawn from a seeded generator: matrices N(0, g^2/fan_in)
with g = 1 in the ViT and g = 0.5 after it (at g = 1 the channel attention over 3072 rows
saturates, the features grow to std ~100 and every sigmoid weight is 0 or 1; at 0.5 the
stage outputs keep std ~2-3 and the weights spread over ~0.35-0.7), LayerNorm weights
1 + N(0, 0.1^2) and biases N(0, 0.05^2) so that their application is tested, Swin's relative
position tables N(0, 0.5^2) so the bias visibly shifts the attention, and fc_score's last
bias +0.5 so the final ReLU passes most patches (a zero score would hide the weighting).
The statistics in maniqa.json show the features are not degenerate.
"""
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pyiqa_archs  # noqa: E402

CROP = 224
GRID = 3  # TTPO's default: 3x3 crops (core/src/scoring/maniqa.rs)
# Images through the whole net, with the crops per side of the grid used (2x2 on one image
# tests the pooling over crops; the 3x3 crops themselves are compared on every image).
FULL = [("astronaut", 2), ("I03", 1), ("small", 1)]


def build():
    import timm

    create = timm.create_model

    def no_download(*args, **kwargs):
        kwargs["pretrained"] = False
        return create(*args, **kwargs)

    timm.create_model = no_download
    arch = pyiqa_archs.arch("maniqa_arch")
    arch.timm.create_model = no_download
    model = arch.MANIQA(pretrained=False, scale=0.8)
    return arch, model


def randomize(model):
    g = torch.Generator().manual_seed(19)
    with torch.no_grad():
        for name, p in model.named_parameters():
            n = torch.randn(p.shape, generator=g)
            if "relative_position_bias_table" in name:
                p.copy_(0.5 * n)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * n)
            elif name.endswith("bias"):
                p.copy_(0.05 * n)
            elif name in ("vit.cls_token", "vit.pos_embed"):
                p.copy_(0.2 * n)
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                gain = 1.0 if name.startswith("vit.") else 0.5
                p.copy_(gain * n / fan_in**0.5)
        model.fc_score[3].bias.add_(0.5)


def grid_positions(size, k):
    if k == 1:
        return [(size - CROP) // 2]
    return [i * (size - CROP) // (k - 1) for i in range(k)]


def resize_rule(x):
    """pyiqa's rule (arch_util.uniform_crop): upscale when the shorter side is <= 224."""
    h, w = x.shape[-2:]
    if min(h, w) <= CROP:
        x = F.interpolate(x, scale_factor=(CROP + 1) / min(h, w), mode="bilinear")
    return x


def make_grid_crop(k):
    def grid_crop(x, crop_size, crop_num):
        x = resize_rule(x)
        h, w = x.shape[-2:]
        crops = [
            x[..., t : t + CROP, l : l + CROP]
            for t in grid_positions(h, k)
            for l in grid_positions(w, k)
        ]
        return torch.stack(crops, dim=1).reshape(-1, 3, CROP, CROP)

    return grid_crop


def images():
    assets = Path(os.environ["TTPO_ASSETS"])
    out = {}
    for p in sorted((assets / "calib" / "dist").glob("*.bmp")):
        out[p.stem] = np.asarray(Image.open(p).convert("RGB"))
    for p in sorted((assets / "photos").iterdir()):
        out[p.stem] = np.asarray(Image.open(p).convert("RGB"))
    out["small"] = np.ascontiguousarray(out["chelsea"][60:210, 100:300])
    return out


def time_pyiqa(path, k):
    """pyiqa's forward on one image with the k x k grid (and 2 threads), median of 3."""
    import time

    torch.set_num_threads(2)
    arch, model = build()
    randomize(model)
    model.eval()
    arch.uniform_crop = make_grid_crop(k)
    arr = np.asarray(Image.open(path).convert("RGB"))
    x = torch.from_numpy(arr.copy()).permute(2, 0, 1)[None].float() / 255.0
    times = []
    for _ in range(3):
        t = time.perf_counter()
        with torch.no_grad():
            s = model(x)
        times.append(time.perf_counter() - t)
        print(f"score {float(s):.7f} in {times[-1]:.2f} s", flush=True)
    print(f"median {sorted(times)[1]:.2f} s ({k}x{k} crops, torch {torch.__version__})")


def main():
    if sys.argv[1] == "--time":
        return time_pyiqa(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else GRID)
    out_dir = Path(sys.argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    arch, model = build()
    randomize(model)
    model.eval()
    torch.save(model.state_dict(), out_dir / "maniqa.pth")
    arch_util = sys.modules["pyiqa.archs.arch_util"]

    record = {}
    orig_extract = model.extract_feature

    def extract(save_output):
        x = orig_extract(save_output)
        record["vit"] = x
        return x

    model.extract_feature = extract
    model.swintransformer1.register_forward_hook(lambda m, i, o: record.__setitem__("stage1", o))
    model.swintransformer2.register_forward_hook(lambda m, i, o: record.__setitem__("stage2", o))
    model.fc_score.register_forward_hook(lambda m, i, o: record.__setitem__("ps", o))
    model.fc_weight.register_forward_hook(lambda m, i, o: record.__setitem__("pw", o))

    tensors, stats = {}, {}
    imgs = images()
    full = dict(FULL)
    for name, arr in imgs.items():
        tensors[f"{name}.image"] = torch.from_numpy(arr.copy())
        x = torch.from_numpy(arr.copy()).permute(2, 0, 1)[None].float() / 255.0
        xn = (x - model.default_mean) / model.default_std
        tensors[f"{name}.crops"] = make_grid_crop(GRID)(xn, CROP, GRID * GRID).contiguous()
        # pyiqa's own uniform_crop, on a coordinate image of the (resized) size.
        h, w = resize_rule(x).shape[-2:]
        coords = torch.stack(
            torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
        )
        coords = torch.cat([coords, coords[:1]])[None]
        c = arch_util.uniform_crop(coords, crop_size=CROP, crop_num=20)
        tensors[f"{name}.uniform_pos"] = c[:, :2, 0, 0].to(torch.int32).contiguous()
        if name in full:
            arch.uniform_crop = make_grid_crop(full[name])
            with torch.no_grad():
                score = model(x)
            tensors[f"{name}.score"] = score.reshape(1).contiguous()
            tensors[f"{name}.patch_score"] = record["ps"].reshape(record["ps"].shape[0], -1).contiguous()
            tensors[f"{name}.patch_weight"] = record["pw"].reshape(record["pw"].shape[0], -1).contiguous()
            tensors[f"{name}.vit"] = record["vit"][0].contiguous()
            tensors[f"{name}.stage1"] = record["stage1"][0].contiguous()
            tensors[f"{name}.stage2"] = record["stage2"][0].contiguous()
            ps = record["ps"]
            stats[name] = {
                "score": float(score),
                "grid": full[name],
                "vit_std": float(record["vit"].std()),
                "stage1_std": float(record["stage1"].std()),
                "stage2_std": float(record["stage2"].std()),
                "patch_score_positive": float((ps > 0).float().mean()),
                "patch_weight_min_max": [float(record["pw"].min()), float(record["pw"].max())],
            }
            print(name, stats[name], flush=True)
    save_file(tensors, str(out_dir / "maniqa.safetensors"))
    meta = {
        "images": list(imgs),
        "grid": GRID,
        "full": FULL,
        "swin_scale": 0.8,
        "torch": torch.__version__,
        "stats": stats,
    }
    (out_dir / "maniqa.json").write_text(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
