#!/usr/bin/env python3
"""Reference CLIP-IQA with transformers' CLIPModel on a tiny random CLIP, for core/tests/clip_iqa.rs.

Usage: clip_iqa_reference.py DIR IMAGE...

DIR must hold a CLIP tokenizer (vocab.json + merges.txt). The script builds a tiny CLIPModel
with random weights (seeded; the real architecture and tensor names), saves it into DIR
(config.json + model.safetensors + preprocessor_config.json) and prints JSON: the normalised
prompt embeddings and, per image, the normalised image embedding and the positive-prompt
probability of each antonym pair (softmax at logit scale 100).
"""
import json
import sys

import torch
from PIL import Image
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

PAIRS = [("Good photo.", "Bad photo."), ("High quality.", "Low quality."), ("Sharp photo.", "Blurry photo.")]


def main(d, images):
    torch.manual_seed(0)
    tok = CLIPTokenizer.from_pretrained(d)
    n = len(tok.get_vocab())
    cfg = CLIPConfig(
        text_config=dict(vocab_size=n, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
                         bos_token_id=n - 2, eos_token_id=n - 1, pad_token_id=1),
        vision_config=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                           image_size=224, patch_size=32, hidden_act="quick_gelu"),
        projection_dim=16,
    )
    model = CLIPModel(cfg).eval()
    # Random init leaves LayerNorms at identity and biases at zero; perturb everything so
    # that every tensor matters.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "logit_scale":
                continue
            p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(d, safe_serialization=True)
    proc = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    proc.save_pretrained(d)
    prompts = [p for pair in PAIRS for p in pair]
    with torch.no_grad():
        t = tok(prompts, padding=True, return_tensors="pt")
        tf = model.get_text_features(input_ids=t["input_ids"], attention_mask=t["attention_mask"])
        tf = tf / tf.norm(dim=-1, keepdim=True)
        out = {"text": tf.tolist(), "ids": t["input_ids"].tolist(), "images": []}
        for path in images:
            pix = proc(images=Image.open(path).convert("RGB"), return_tensors="pt")["pixel_values"]
            f = model.get_image_features(pixel_values=pix)
            f = f / f.norm(dim=-1, keepdim=True)
            probs = (100.0 * f @ tf.T).reshape(-1, 2).softmax(-1)[:, 0]
            out["images"].append({"path": path, "embedding": f[0].tolist(), "pairs": probs.tolist(),
                                  "pixels_sum": float(pix.double().sum())})
    print(json.dumps(out))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2:])
