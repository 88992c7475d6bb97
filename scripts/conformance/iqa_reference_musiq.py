"""MUSIQ reference: pyiqa's own MUSIQ architecture (musiq_arch.py) with seeded random weights.

Usage: iqa_reference_musiq.py OUT_DIR

Writes
- OUT_DIR/musiq.pth: the weights as pyiqa's published KonIQ/SPAQ checkpoints are laid out
  (a plain state dict, `head.weight` of shape (1, 384)),
- OUT_DIR/musiq_ava.pth: the same weights with the AVA head (`head.0.weight`, (10, 384),
  softmax + dist_to_mos), the layout of musiq_ava_ckpt,
- OUT_DIR/musiq.safetensors: per image `<name>.image` (H, W, 3 uint8, the input as pyiqa
  reads it), `<name>.patches` (pyiqa's multi-scale patch tensor: resize, padding, hashed
  positions, scale ids, mask), `<name>.embedding` (the patch tokens after the ResNet stem and
  the embedding Linear), `<name>.encoded` (the encoder output, class token first),
  `<name>.score` and `<name>.score_ava`.
- OUT_DIR/musiq.json: the scores and the time pyiqa's forward takes (2 threads).

Random weights: every tensor is drawn from a seeded normal distribution. Linear weights have
std 1/sqrt(fan_in) (unit-variance outputs for unit-variance inputs); the query and key weights
get 2/sqrt(fan_in) so that the attention is far from uniform; norm scales are 1 + 0.1 N(0,1),
biases 0.1 N(0,1); the class token and the position/scale embeddings std 0.5 so that they
shift the tokens visibly. Convolutions are weight-standardised by the model (StdConv), so
their scale does not matter. The head bias is 0.5 (koniq) so the score is not centred at 0.
"""
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pyiqa_archs  # noqa: E402

musiq_arch = pyiqa_archs.arch("musiq_arch")
from pyiqa.data.multiscale_trans_util import get_multiscale_patches  # noqa: E402


def randomize(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.state_dict().items()):
            n = lambda: torch.randn(p.shape, generator=g, dtype=torch.float64).float()
            if name.endswith("weight") and p.dim() == 2:
                s = 1.0 / math.sqrt(p.shape[1])
                if ".query." in name or ".key." in name:
                    s *= 2.0
                p.copy_(n() * s)
            elif name.endswith("weight") and p.dim() == 4:
                p.copy_(n())
            elif name.endswith("weight"):  # GroupNorm / LayerNorm scale
                p.copy_(1.0 + 0.1 * n())
            elif name.endswith("bias"):
                p.copy_(0.1 * n())
            else:  # cls, position_emb, scale_emb
                p.copy_(0.5 * n())


def load_images():
    assets = Path(os.environ["TTPO_ASSETS"])
    files = sorted((assets / "calib" / "dist").glob("*.bmp")) + sorted(
        (assets / "photos").iterdir()
    )
    # pyiqa reads images as PIL RGB -> uint8 -> /255.
    return [(f.stem, np.asarray(Image.open(f).convert("RGB"))) for f in files]


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    torch.manual_seed(0)

    koniq = musiq_arch.MUSIQ(num_class=1, pretrained=False).eval()
    randomize(koniq, 19)
    with torch.no_grad():
        koniq.head.bias.fill_(0.5)
    ava = musiq_arch.MUSIQ(num_class=10, pretrained=False).eval()
    sd = {k: v for k, v in koniq.state_dict().items() if not k.startswith("head.")}
    g = torch.Generator().manual_seed(20)
    sd["head.0.weight"] = torch.randn(10, 384, generator=g, dtype=torch.float64).float() * 0.2
    sd["head.0.bias"] = torch.randn(10, generator=g, dtype=torch.float64).float() * 0.5
    ava.load_state_dict(sd, strict=True)
    torch.save(koniq.state_dict(), out / "musiq.pth")
    torch.save(ava.state_dict(), out / "musiq_ava.pth")

    feats = {}
    hooks = {
        "embedding": koniq.embedding,
        "encoded": koniq.transformer_encoder,
    }
    captured = {}
    for key, mod in hooks.items():
        mod.register_forward_hook(lambda m, i, o, key=key: captured.__setitem__(key, o))

    summary = {"images": {}, "torch_threads": 2}
    for name, img in load_images():
        x = torch.from_numpy(img.copy()).permute(2, 0, 1).float().div(255.0).unsqueeze(0)
        with torch.no_grad():
            patches = get_multiscale_patches((x - 0.5) * 2, **koniq.data_preprocess_opts)
            t0 = time.perf_counter()
            score = koniq(x)
            dt = time.perf_counter() - t0
            score_ava = ava(x)
        feats[f"{name}.image"] = torch.from_numpy(img.copy())
        feats[f"{name}.patches"] = patches[0].contiguous()
        feats[f"{name}.embedding"] = captured["embedding"][0].contiguous()
        feats[f"{name}.encoded"] = captured["encoded"][0].contiguous()
        feats[f"{name}.score"] = score.reshape(1).double()
        feats[f"{name}.score_ava"] = score_ava.reshape(1).double()
        summary["images"][name] = {
            "size": [img.shape[1], img.shape[0]],
            "seq_len": patches.shape[1],
            "score": score.item(),
            "score_ava": score_ava.item(),
            "seconds": dt,
        }
        print(f"{name}: {img.shape[1]}x{img.shape[0]} seq {patches.shape[1]} "
              f"score {score.item():.6f} ava {score_ava.item():.6f} ({dt:.3f} s)")

    # pyiqa's time for one 512x512 photo, median of 3.
    x = next(
        torch.from_numpy(i.copy()).permute(2, 0, 1).float().div(255.0).unsqueeze(0)
        for n, i in load_images() if n == "astronaut"
    )
    times = []
    with torch.no_grad():
        for _ in range(3):
            t0 = time.perf_counter()
            koniq(x)
            times.append(time.perf_counter() - t0)
    summary["astronaut_median_s"] = sorted(times)[1]
    print(f"pyiqa MUSIQ astronaut 512x512: median {sorted(times)[1]:.3f} s of {times}")

    save_file(feats, str(out / "musiq.safetensors"))
    (out / "musiq.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
