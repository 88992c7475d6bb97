#!/usr/bin/env python3
"""Reload a model folder written by make_reference.py with diffusers/transformers'
own loaders and recompute reference tensors from it (round-trip check).

    python verify_reference.py OUT_DIR/sd1_eps [OUT_DIR/sd2_v ...]
"""
import os
import sys

import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from safetensors.torch import load_file
from transformers import CLIPTextModel, CLIPTokenizer, CLIPTokenizerFast


def close(name, a, b, tol):
    err = (a.float() - b.float()).abs().max().item()
    ok = err <= tol
    print(f"  {'ok ' if ok else 'BAD'} {name}: max abs err {err:.3g} (tol {tol:g})")
    return ok


def main():
    good = True
    for d in sys.argv[1:]:
        print(d)
        r = load_file(os.path.join(d, "reference.safetensors"))
        full = "unet_out_t501" in r
        t = 501 if full else 281
        with torch.no_grad():
            unet = UNet2DConditionModel.from_pretrained(os.path.join(d, "unet")).eval()
            out = unet(r["unet_sample"], torch.tensor(t), encoder_hidden_states=r["unet_text"]).sample
            good &= close(f"unet_out_t{t}", out, r[f"unet_out_t{t}"], 1e-5)
            del unet
            vae = AutoencoderKL.from_pretrained(os.path.join(d, "vae")).eval()
            good &= close("vae_decode_out", vae.decode(r["vae_decode_in"]).sample, r["vae_decode_out"], 1e-5)
            if full:
                continue
            good &= close("vae_posterior_mean", vae.encode(r["vae_image"]).latent_dist.mean,
                          r["vae_posterior_mean"], 1e-5)
            if os.path.exists(os.path.join(d, "unet", "diffusion_pytorch_model.fp16.safetensors")):
                u16 = UNet2DConditionModel.from_pretrained(os.path.join(d, "unet"), variant="fp16",
                                                           torch_dtype=torch.float32).eval()
                o16 = u16(r["unet_sample"], torch.tensor(t), encoder_hidden_states=r["unet_text"]).sample
                good &= close("unet_out_t281 (fp16 variant weights, f32 compute)", o16, r["unet_out_t281"], 5e-2)
            te = CLIPTextModel.from_pretrained(os.path.join(d, "text_encoder")).eval()
            toks = [CLIPTokenizer.from_pretrained(os.path.join(d, "tokenizer"))]
            if os.path.exists(os.path.join(d, "tokenizer", "tokenizer.json")):
                toks.append(CLIPTokenizerFast.from_pretrained(os.path.join(d, "tokenizer")))
            import json
            prompts = json.load(open(os.path.join(d, "reference.json")))["prompts"]
            for i, p in enumerate(prompts):
                for tok in toks:
                    ids = tok(p, padding="max_length", max_length=77, truncation=True,
                              return_tensors="pt").input_ids
                    same = torch.equal(ids, r[f"clip_ids_{i}"])
                    good &= same
                    print(f"  {'ok ' if same else 'BAD'} clip_ids_{i} ({type(tok).__name__})")
                good &= close(f"clip_hidden_{i}", te(r[f"clip_ids_{i}"]).last_hidden_state,
                              r[f"clip_hidden_{i}"], 1e-5)
            pipe = StableDiffusionPipeline.from_pretrained(d, safety_checker=None)
            print(f"  ok  StableDiffusionPipeline.from_pretrained: scheduler "
                  f"{type(pipe.scheduler).__name__} ({pipe.scheduler.config.prediction_type})")
    print("ALL OK" if good else "MISMATCHES")
    sys.exit(0 if good else 1)


if __name__ == "__main__":
    main()
