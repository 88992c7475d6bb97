"""TOPIQ-NR references from pyiqa's own CFANet (ResNet-50, no-reference) on random weights.

Usage: iqa_reference_topiq.py OUT_DIR

Builds pyiqa's `topiq_nr` network (CFANet with pyiqa's default_model_configs arguments for
`topiq_nr`: semantic_model_name='resnet50', model_name='cfanet_nr_koniq_res50',
use_ref=False; no test-time resize, one crop), with pretrained=False and
backbone_pretrain=False so nothing is downloaded, fills it with seeded random weights and
writes

- OUT_DIR/topiq.pth: the weights in the published checkpoint's layout, `{'params':
  state_dict}` (pyiqa loads its checkpoints with weight_keys='params');
- OUT_DIR/topiq.safetensors: per image (key prefix = file stem): `image` (H, W, 3 uint8),
  the backbone features `feat0..feat4` (only for the first calibration image and
  astronaut, to keep the file small), the per-level reduced features `reduce0..reduce4`
  (dim_reduce output, before the position embedding), the per-level self-attention tokens
  `tokens0..tokens4`, the cross-attention queries `query1..query4`, the pooled feature
  `pooled` (attn_pool output averaged over tokens) and `score` (pyiqa's forward);
- OUT_DIR/topiq.json: names, sizes and scores.

Random weights (why the scaling): conv weights He-normal, so the ReLU network neither
explodes nor vanishes; the last BatchNorm of every residual branch gets gamma in
[0.1, 0.3] so that the 16 residual additions keep the activations in a sensible range;
BatchNorm running statistics are random (mean N(0, 0.1), var U(0.5, 1.5)) so the folded
normalisation is exercised. The head keeps pyiqa's own initialisation (Kaiming linears),
except the gated pooling convs (He-normal, bias N(0, 0.1), so the sigmoid gates spread
instead of sitting at 0.5), the last linear (weight x4, bias 0.5: scores around 0.5 with a
visible spread, like KonIQ's 0..1 range), the LayerNorms (weight U(0.8, 1.2), bias N(0, 0.05)) and the position embeddings
(std 0.5 instead of 0.02, so the bicubic resize of the embedding matters to the score).
The script prints per-level statistics (including the gating sigmoid's range) to show
the features are not degenerate.
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pyiqa_archs  # noqa: E402

SEED = 20260219
DETAIL = ("I03", "astronaut")  # images whose (large) backbone features are stored


def randomize(net: torch.nn.Module, gen: torch.Generator) -> None:
    def normal(shape, std):
        return torch.randn(shape, generator=gen) * std

    def uniform(shape, lo, hi):
        return torch.rand(shape, generator=gen) * (hi - lo) + lo

    with torch.no_grad():
        for name, m in net.semantic_model.named_modules():
            if isinstance(m, torch.nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(normal(m.weight.shape, (2.0 / fan_in) ** 0.5))
            elif isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                last = name.endswith("bn3")
                m.weight.copy_(uniform(c, 0.1, 0.3) if last else uniform(c, 0.5, 1.0))
                m.bias.copy_(normal(c, 0.1))
                m.running_mean.copy_(normal(c, 0.1))
                m.running_var.copy_(uniform(c, 0.5, 1.5))
        for m in net.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.copy_(uniform(m.weight.shape, 0.8, 1.2))
                m.bias.copy_(normal(m.bias.shape, 0.05))
        for m in net.weight_pool.modules():
            if isinstance(m, torch.nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(normal(m.weight.shape, (2.0 / fan_in) ** 0.5))
                m.bias.copy_(normal(m.bias.shape, 0.1))
        last = net.score_linear[-1]
        last.weight.mul_(4.0)
        last.bias.fill_(0.5)
        net.h_emb.copy_(normal(net.h_emb.shape, 0.5))
        net.w_emb.copy_(normal(net.w_emb.shape, 0.5))
        # The default zero biases of the attention projections would leave a whole
        # tensor untested.
        for m in net.modules():
            if isinstance(m, torch.nn.MultiheadAttention):
                m.in_proj_bias.copy_(normal(m.in_proj_bias.shape, 0.05))
                m.out_proj.bias.copy_(normal(m.out_proj.bias.shape, 0.05))


def images(assets: Path):
    files = sorted((assets / "calib" / "dist").glob("*.bmp")) + sorted(
        p for p in (assets / "photos").iterdir() if p.suffix.lower() in (".png", ".jpg")
    )
    for p in files:
        # pyiqa's imread2tensor: PIL, RGB, uint8 / 255.
        yield p.stem, np.asarray(Image.open(p).convert("RGB"), dtype=np.uint8)


def main() -> None:
    import os

    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    assets = Path(os.environ["TTPO_ASSETS"])
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    topiq = pyiqa_archs.arch("topiq_arch")
    net = topiq.CFANet(
        semantic_model_name="resnet50",
        model_name="cfanet_nr_koniq_res50",
        use_ref=False,
        pretrained=False,
        backbone_pretrain=False,
    )
    gen = torch.Generator().manual_seed(SEED)
    randomize(net, gen)
    net.eval()
    state = {k: v.contiguous().clone() for k, v in net.state_dict().items()}
    torch.save({"params": state}, out / "topiq.pth")

    captured = {}

    def hook(key):
        def f(_m, _inp, output):
            captured[key] = output

        return f

    net.semantic_model.register_forward_hook(hook("feats"))
    for i in range(5):
        net.dim_reduce[i].register_forward_hook(hook(f"reduce{i}"))
        net.sa_attn_blks[i].register_forward_hook(hook(f"tokens{i}"))
        net.weight_pool[i].weight_blk.register_forward_hook(hook(f"gate{i}"))
    for j in range(4):
        net.attn_blks[j].register_forward_hook(hook(f"query{j + 1}"))
    net.attn_pool.register_forward_hook(hook("final"))

    tensors = {}
    meta = []
    for stem, arr in images(assets):
        x = torch.from_numpy(arr.copy()).permute(2, 0, 1)[None].float() / 255.0
        captured.clear()
        with torch.no_grad():
            score = net(x)
        h, w = arr.shape[:2]
        tensors[f"{stem}.image"] = torch.from_numpy(arr.copy())
        if stem in DETAIL:
            for i, f in enumerate(captured["feats"]):
                tensors[f"{stem}.feat{i}"] = f.contiguous()
        for i in range(5):
            tensors[f"{stem}.reduce{i}"] = captured[f"reduce{i}"].contiguous()
            tensors[f"{stem}.tokens{i}"] = captured[f"tokens{i}"].contiguous()
        for j in range(1, 5):
            tensors[f"{stem}.query{j}"] = captured[f"query{j}"].contiguous()
        tensors[f"{stem}.pooled"] = captured["final"].mean(dim=0).contiguous()
        tensors[f"{stem}.score"] = score.reshape(1).contiguous()
        gates = [captured[f"gate{i}"] for i in range(5)]
        stats = " ".join(
            f"L{i}: feat std {f.std():.3g} gate {g.min():.2f}..{g.max():.2f}"
            for i, (f, g) in enumerate(zip(captured["feats"], gates))
        )
        print(f"{stem} {w}x{h} score {score.item():.6f} | {stats}")
        meta.append({"name": stem, "width": w, "height": h, "score": score.item()})
    save_file(tensors, str(out / "topiq.safetensors"))
    (out / "topiq.json").write_text(json.dumps({"seed": SEED, "images": meta}, indent=1))


if __name__ == "__main__":
    main()
