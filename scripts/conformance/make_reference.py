#!/usr/bin/env python3
"""Generate deterministic Stable Diffusion reference models and tensors with
diffusers/transformers, for TTPO's Rust conformance tests.

    python make_reference.py OUT_DIR                # tiny: OUT_DIR/sd1_eps, OUT_DIR/sd2_v
    python make_reference.py OUT_DIR --full sd15    # OUT_DIR/sd15_full (SD 1.5 architecture)
    python make_reference.py OUT_DIR --full sd21    # OUT_DIR/sd21_full (SD 2.1-base architecture)

Every model folder is a diffusers pipeline folder (model_index.json, unet/,
vae/, text_encoder/, tokenizer/, scheduler/) with f32 safetensors, plus
reference.safetensors and reference.json. See README.md for tensor names.
"""
import argparse
import copy
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import torch
from diffusers import (AutoencoderKL, DDIMInverseScheduler, DDIMScheduler,
                       StableDiffusionPipeline, UNet2DConditionModel)
from safetensors.torch import load_file, save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, CLIPTokenizerFast

SEED = 20240611
P0 = "a photo of an astronaut riding a horse"
P1 = ""
P2 = ("a highly detailed photograph of a small red house standing on a green hill under a "
      "bright blue sky with white clouds, a river running through the valley below, tall "
      "trees and flowers in the garden, a cat sitting in the window, an old man walking a "
      "dog on the road, mountains far away in the light of the evening sun, birds flying "
      "over the water, and a boat on the river near the bridge in the town")
PROMPTS = [P0, P1, P2]
IMG2IMG_CASES = [(50, 0.1), (50, 0.15), (50, 0.3), (10, 0.5), (20, 0.75), (50, 1.0), (7, 0.33)]

SCHED_KW = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                num_train_timesteps=1000, steps_offset=1, set_alpha_to_one=False,
                clip_sample=False, timestep_spacing="leading")


# ----------------------------------------------------------------------------
# tiny CLIP BPE vocabulary
# ----------------------------------------------------------------------------
def bytes_to_unicode():
    """GPT-2/CLIP byte -> printable unicode character table (256 entries, in order)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return list(zip(bs, [chr(c) for c in cs]))


CORPUS = (P0 + " " + P2 + " " + """
a photo of a cat. a painting of a dog. a portrait of a woman with long hair. a man in a suit.
high quality, best quality, sharp focus, detailed, realistic, photograph, restoration, restore
the old photo, remove noise, remove blur, scratches, damaged photograph, film grain, vintage,
black and white, color, colour, face, faces, eyes, people, person, street, city, building,
landscape, portrait, astronaut, horse, riding, space, moon, night, light, sunset, beach, sea,
forest, snow, winter, summer, family, children, wedding, dress, shirt, hat, glasses, smiling,
the quick brown fox jumps over the lazy dog. this is a test of the tokenizer with some words
that are common in english: and, the, of, to, in, is, it, with, for, on, as, by, at, from.
""").lower()


def learn_bpe(text, n_merges):
    """Tiny deterministic BPE learner in the CLIP convention (</w> on the last char)."""
    import re
    words = {}
    for w in re.findall(r"[a-z]+|[0-9]|[^\sa-z0-9]+", text):
        words[w] = words.get(w, 0) + 1
    segs = {w: tuple(w[:-1]) + (w[-1] + "</w>",) for w in words}
    merges = []
    for _ in range(n_merges):
        counts = {}
        for w, s in segs.items():
            for a, b in zip(s, s[1:]):
                counts[(a, b)] = counts.get((a, b), 0) + words[w]
        if not counts:
            break
        best = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        merges.append(best)
        for w, s in segs.items():
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(s[i] + s[i + 1])
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            segs[w] = tuple(out)
    return merges


def write_vocab(dirname, n_merges=300):
    chars = [c for _, c in bytes_to_unicode()]
    merges = learn_bpe(CORPUS, n_merges)
    tokens = chars + [c + "</w>" for c in chars] + [a + b for a, b in merges] \
        + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {}
    for t in tokens:  # a merge can reproduce an existing token; keep first id (as CLIP does)
        vocab.setdefault(t, len(vocab))
    os.makedirs(dirname, exist_ok=True)
    vf, mf = os.path.join(dirname, "vocab.json"), os.path.join(dirname, "merges.txt")
    with open(vf, "w", encoding="utf-8") as fh:
        json.dump(vocab, fh, ensure_ascii=False)
    with open(mf, "w", encoding="utf-8") as fh:
        fh.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return vf, mf, len(vocab)


def make_tokenizers(tmp, pad):
    vf, mf, n = write_vocab(tmp)
    kw = dict(unk_token="<|endoftext|>", bos_token="<|startoftext|>", eos_token="<|endoftext|>",
              pad_token=pad, model_max_length=77)
    slow = CLIPTokenizer(vf, mf, **kw)
    fast = CLIPTokenizerFast(vocab_file=vf, merges_file=mf, **kw)
    return slow, fast, n


# ----------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------
def perturb(model, gen):
    """Make every parameter non-trivial: norms get weight 1+0.1*N, bias 0.1*N;
    every other parameter (incl. biases) gets +0.02*N on top of default init."""
    with torch.no_grad():
        done = set()
        for m in model.modules():
            if isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
                if m.weight is not None:
                    m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=gen))
                    done.add(id(m.weight))
                if m.bias is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
                    done.add(id(m.bias))
        for _, p in model.named_parameters():
            if id(p) not in done:
                p.add_(0.02 * torch.randn(p.shape, generator=gen))


def tiny_unet(v2):
    return UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(32, 64, 64),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=(2, 4, 4) if v2 else 4,
        norm_num_groups=8, use_linear_projection=v2)


def tiny_vae():
    return AutoencoderKL(
        in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(32, 64), layers_per_block=1, latent_channels=4,
        norm_num_groups=8, sample_size=32, scaling_factor=0.18215)


def tiny_text(v2, vocab_size, tok):
    return CLIPTextModel(CLIPTextConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, hidden_act="gelu" if v2 else "quick_gelu",
        projection_dim=32, vocab_size=vocab_size, layer_norm_eps=1e-5,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id))


# Exact architecture values of the Hub repos' config.json files.
FULL = {
    "sd15": dict(  # runwayml/stable-diffusion-v1-5
        unet=dict(act_fn="silu", attention_head_dim=8, block_out_channels=[320, 640, 1280, 1280],
                  center_input_sample=False, cross_attention_dim=768,
                  down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                    "CrossAttnDownBlock2D", "DownBlock2D"],
                  downsample_padding=1, flip_sin_to_cos=True, freq_shift=0, in_channels=4,
                  layers_per_block=2, mid_block_scale_factor=1, norm_eps=1e-5,
                  norm_num_groups=32, out_channels=4, sample_size=64,
                  up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                                  "CrossAttnUpBlock2D"]),
        vae_sample_size=512,
        text=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                  num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                  projection_dim=768, vocab_size=49408, layer_norm_eps=1e-5,
                  bos_token_id=0, eos_token_id=2, pad_token_id=1, initializer_factor=1.0,
                  initializer_range=0.02, attention_dropout=0.0, dropout=0.0),
        prediction_type="epsilon", pad="<|endoftext|>"),
    "sd21": dict(  # stabilityai/stable-diffusion-2-1-base
        unet=dict(act_fn="silu", attention_head_dim=[5, 10, 20, 20],
                  block_out_channels=[320, 640, 1280, 1280], center_input_sample=False,
                  cross_attention_dim=1024,
                  down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                    "CrossAttnDownBlock2D", "DownBlock2D"],
                  downsample_padding=1, dual_cross_attention=False, flip_sin_to_cos=True,
                  freq_shift=0, in_channels=4, layers_per_block=2, mid_block_scale_factor=1,
                  norm_eps=1e-5, norm_num_groups=32, num_class_embeds=None,
                  only_cross_attention=False, out_channels=4, sample_size=64,
                  up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                                  "CrossAttnUpBlock2D"],
                  use_linear_projection=True, upcast_attention=False),
        vae_sample_size=768,
        text=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
                  num_attention_heads=16, max_position_embeddings=77, hidden_act="gelu",
                  projection_dim=512, vocab_size=49408, layer_norm_eps=1e-5,
                  bos_token_id=0, eos_token_id=2, pad_token_id=1, initializer_factor=1.0,
                  initializer_range=0.02, attention_dropout=0.0, dropout=0.0),
        prediction_type="v_prediction", pad="!"),
}


def full_vae(sample_size):
    return AutoencoderKL(
        act_fn="silu", block_out_channels=[128, 256, 512, 512],
        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
        norm_num_groups=32, sample_size=sample_size, scaling_factor=0.18215)


def save_pipeline(out, unet, vae, text, tok, sched):
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet,
                                   scheduler=sched, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(out, safe_serialization=True)


def write_transformers5_layout(out):
    """OUT_tf5/: the same pipeline with the text encoder as transformers 5.x saves a
    CLIPTextModel: the tensors without the `text_model.` prefix (`embeddings.*`,
    `encoder.layers.N.*`, `final_layer_norm.*`). The other entries are links to OUT's."""
    dst = out + "_tf5"
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(os.path.join(dst, "text_encoder"))
    for entry in sorted(os.listdir(out)):
        if entry != "text_encoder":
            os.symlink(os.path.join("..", os.path.basename(out), entry), os.path.join(dst, entry))
    src = os.path.join(out, "text_encoder")
    shutil.copy(os.path.join(src, "config.json"), os.path.join(dst, "text_encoder"))
    tensors = load_file(os.path.join(src, "model.safetensors"))
    assert all(k.startswith("text_model.") for k in tensors), "4.x layout expected"
    save_file({k[len("text_model."):]: v for k, v in tensors.items()},
              os.path.join(dst, "text_encoder", "model.safetensors"), metadata={"format": "pt"})


# ----------------------------------------------------------------------------
# references
# ----------------------------------------------------------------------------
def img2img_timesteps(sched_cfg, n, strength):
    s = DDIMScheduler.from_config(sched_cfg)
    s.set_timesteps(n)
    init_timestep = min(int(n * strength), n)
    t_start = max(n - init_timestep, 0)
    ts = s.timesteps[t_start * s.order:]
    return dict(num_inference_steps=n, strength=strength, init_timestep=init_timestep,
                t_start=t_start, timesteps=[int(t) for t in ts])


def scheduler_refs(sched_cfg, ref, meta):
    s = DDIMScheduler.from_config(sched_cfg)
    ref["alphas_cumprod"] = s.alphas_cumprod.to(torch.float64)
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    ref["alphas_cumprod_exact_f64"] = torch.cumprod(1.0 - betas, 0)
    meta["scheduler"] = {k: (v if not isinstance(v, tuple) else list(v))
                         for k, v in dict(sched_cfg).items() if not k.startswith("_")}
    ts = {}
    for spacing in ["leading", "trailing", "linspace"]:
        ts[spacing] = {}
        for n in [1, 10, 20, 50]:
            s2 = DDIMScheduler.from_config(sched_cfg, timestep_spacing=spacing)
            s2.set_timesteps(n)
            ts[spacing][str(n)] = [int(t) for t in s2.timesteps]
    meta["ddim_timesteps"] = ts
    meta["img2img"] = [img2img_timesteps(sched_cfg, n, st) for n, st in IMG2IMG_CASES]


def unet_refs(unet, sched_cfg, gen, ref, meta, text_dim):
    sample = torch.randn(2, 4, 16, 16, generator=gen)
    text = torch.randn(2, 77, text_dim, generator=gen)
    ref["unet_sample"], ref["unet_text"] = sample, text
    for t in [1, 281, 901]:
        ref[f"unet_out_t{t}"] = unet(sample, torch.tensor(t), encoder_hidden_states=text).sample
    # one DDIM step at t=281 with 50 steps
    s = DDIMScheduler.from_config(sched_cfg)
    s.set_timesteps(50)
    eps = ref["unet_out_t281"]
    out0 = s.step(eps, 281, sample, eta=0.0)
    noise = torch.randn(sample.shape, generator=gen)
    out1 = s.step(eps, 281, sample, eta=1.0, variance_noise=noise)
    prev_t = 281 - 1000 // 50
    ref["ddim_prev_eta0"], ref["ddim_x0"] = out0.prev_sample, out0.pred_original_sample
    ref["ddim_variance_noise"], ref["ddim_prev_eta1"] = noise, out1.prev_sample
    ac = s.alphas_cumprod
    var = (1 - ac[prev_t]) / (1 - ac[281]) * (1 - ac[281] / ac[prev_t])
    meta["ddim_step"] = dict(
        num_inference_steps=50, timestep=281, prev_timestep=prev_t,
        alpha_prod_t=float(ac[281]), alpha_prod_t_prev=float(ac[prev_t]),
        eta1_std_dev_t=float(var.sqrt()), model_output="unet_out_t281", sample="unet_sample",
        prediction_type=sched_cfg["prediction_type"])
    # one inversion step
    inv = DDIMInverseScheduler.from_config(sched_cfg)
    inv.set_timesteps(50)
    ref["ddim_inverse_next"] = inv.step(eps, 281, sample).prev_sample
    meta["ddim_inverse_step"] = dict(
        scheduler="DDIMInverseScheduler.from_config(same config); set_timesteps(50)",
        inverse_timesteps=[int(t) for t in inv.timesteps],
        call="step(model_output=unet_out_t281, timestep=281, sample=unet_sample)",
        from_timestep=281 - 20, to_timestep=281,
        alpha_prod_from=float(ac[261]), alpha_prod_to=float(ac[281]),
        note="diffusers' DDIMInverseScheduler.step(t) treats `sample` as being at t - 1000//N "
             "(here 261; alphas_cumprod[261]) and returns the latent at t (281; "
             "alphas_cumprod[281]). The model output is the one computed at t=281 "
             "(as in diffusers' inversion pipelines, which call unet(latents, t) with t from "
             "the ascending inverse timesteps). For t - 1000//N < 0 (first step t=1) it uses "
             "initial_alpha_cumprod = alphas_cumprod[0] (set_alpha_to_one=False).")


def vae_refs(vae, gen, ref, size=32):
    low = torch.randn(1, 3, size // 8, size // 8, generator=gen)
    img = torch.tanh(1.5 * torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic",
                                                          align_corners=False))
    ref["vae_image"] = img
    ref["vae_posterior_mean"] = vae.encode(img).latent_dist.mean
    z = torch.randn(1, 4, size // 2, size // 2, generator=gen)
    ref["vae_decode_in"] = z
    ref["vae_decode_out"] = vae.decode(z).sample


def clip_refs(tok_dir, text, ref, meta, check_fast):
    tok = CLIPTokenizer.from_pretrained(tok_dir)
    fast = CLIPTokenizerFast.from_pretrained(tok_dir) if check_fast else None
    meta["prompts"] = PROMPTS
    lengths = []
    for i, p in enumerate(PROMPTS):
        enc = tok(p, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
        ids = enc.input_ids.to(torch.int64)
        if fast is not None:
            ids_f = fast(p, padding="max_length", max_length=77, truncation=True,
                         return_tensors="pt").input_ids
            assert torch.equal(ids, ids_f), f"slow/fast tokenizer mismatch on prompt {i}"
        ref[f"clip_ids_{i}"] = ids
        ref[f"clip_hidden_{i}"] = text(ids).last_hidden_state
        lengths.append(len(tok(p, truncation=False).input_ids))
    meta["prompt_token_counts_untruncated"] = lengths
    meta["tokens_p0"] = tok.convert_ids_to_tokens(ref["clip_ids_0"][0, :lengths[0]].tolist())
    meta["tokenizer"] = dict(bos=tok.bos_token_id, eos=tok.eos_token_id, pad=tok.pad_token_id,
                             pad_token=tok.pad_token, vocab_size=len(tok))
    return tok


def img2img_ref(unet, vae, text, tok, sched_cfg, gen, ref, meta):
    low = torch.randn(1, 3, 4, 4, generator=gen)
    img = torch.tanh(1.5 * torch.nn.functional.interpolate(low, size=(32, 32), mode="bicubic",
                                                          align_corners=False))
    noise = torch.randn(1, 4, 16, 16, generator=gen)
    sf = vae.config.scaling_factor

    def enc(p):
        ids = tok(p, padding="max_length", max_length=77, truncation=True,
                  return_tensors="pt").input_ids
        return text(ids).last_hidden_state
    cond, uncond = enc(P0), enc("")
    s = DDIMScheduler.from_config(sched_cfg)
    n, strength, gs = 10, 0.5, 7.5
    s.set_timesteps(n)
    info = img2img_timesteps(sched_cfg, n, strength)
    ts = s.timesteps[info["t_start"]:]
    z0 = vae.encode(img).latent_dist.mean * sf
    latents = s.add_noise(z0, noise, ts[:1])
    ctx = torch.cat([uncond, cond])
    for t in ts:
        eps = unet(torch.cat([latents] * 2), t, encoder_hidden_states=ctx).sample
        eu, ec = eps.chunk(2)
        latents = s.step(eu + gs * (ec - eu), t, latents, eta=0.0).prev_sample
    out = vae.decode(latents / sf).sample.clamp(-1, 1)
    ref.update(i2i_image=img, i2i_noise=noise, i2i_cond=cond, i2i_uncond=uncond,
               i2i_z0=z0, i2i_latent_out=latents, i2i_image_out=out)
    meta["img2img_run"] = dict(prompt=P0, negative_prompt="", guidance_scale=gs,
                               num_inference_steps=n, strength=strength, eta=0.0,
                               t_start=info["t_start"], timesteps=[int(t) for t in ts],
                               scaling_factor=sf, z0="posterior mean * scaling_factor",
                               unet_batch="[uncond, cond]")


def write_refs(out, ref, meta):
    ref = {k: v.detach().contiguous() for k, v in ref.items()}
    save_file(ref, os.path.join(out, "reference.safetensors"))
    meta["tensors"] = {k: dict(shape=list(v.shape), dtype=str(v.dtype).replace("torch.", ""))
                       for k, v in sorted(ref.items())}
    meta["versions"] = dict(torch=torch.__version__, diffusers=__import__("diffusers").__version__,
                            transformers=__import__("transformers").__version__)
    with open(os.path.join(out, "reference.json"), "w") as fh:
        json.dump(meta, fh, indent=1)


def make_tiny(root, v2):
    name = "sd2_v" if v2 else "sd1_eps"
    out = os.path.join(root, name)
    torch.manual_seed(SEED + (2 if v2 else 1))
    gen = torch.Generator().manual_seed(SEED + (20 if v2 else 10))
    with tempfile.TemporaryDirectory() as tmp:
        slow, fast, nvocab = make_tokenizers(tmp, "!" if v2 else "<|endoftext|>")
    unet, vae, text = tiny_unet(v2), tiny_vae(), tiny_text(v2, nvocab, slow)
    for m in (unet, vae, text):
        perturb(m, gen)
        m.eval()
    sched_cfg = dict(SCHED_KW, prediction_type="v_prediction" if v2 else "epsilon")
    sched = DDIMScheduler(**sched_cfg)
    save_pipeline(out, unet, vae, text, slow, sched)
    if v2:
        fast.save_pretrained(os.path.join(out, "tokenizer"))  # adds tokenizer.json
    else:
        # half-precision variant file next to the f32 one (a copy: the f32 model is kept exact)
        copy.deepcopy(unet).to(torch.float16).save_pretrained(
            os.path.join(out, "unet"), variant="fp16", safe_serialization=True)
    ref, meta = {}, dict(model=name, seed=SEED,
                         timestep_convention="UNet timestep is an integer (0..999) given as a "
                                             "0-dim int64 tensor; diffusers casts to f32 for the "
                                             "sinusoidal embedding (flip_sin_to_cos=True, "
                                             "freq_shift=0). Text encoder called without "
                                             "attention_mask (causal mask only).")
    with torch.no_grad():
        scheduler_refs(sched.config, ref, meta)
        unet_refs(unet, sched.config, gen, ref, meta, 32)
        vae_refs(vae, gen, ref)
        tok = clip_refs(os.path.join(out, "tokenizer"), text, ref, meta, check_fast=v2)
        img2img_ref(unet, vae, text, tok, sched.config, gen, ref, meta)
    write_refs(out, ref, meta)
    write_transformers5_layout(out)
    return out


def make_full(root, which):
    spec = FULL[which]
    out = os.path.join(root, f"{which}_full")
    torch.manual_seed(SEED + 100)
    gen = torch.Generator().manual_seed(SEED + 101)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        slow, _, _ = make_tokenizers(tmp, spec["pad"])
    sched_cfg = dict(SCHED_KW, prediction_type=spec["prediction_type"])
    sched = DDIMScheduler(**sched_cfg)
    unet = UNet2DConditionModel(**spec["unet"]).eval()
    perturb(unet, gen)
    vae = full_vae(spec["vae_sample_size"]).eval()
    perturb(vae, gen)
    text = CLIPTextModel(CLIPTextConfig(**spec["text"])).eval()
    print(f"[{which}] built in {time.time() - t0:.1f}s", file=sys.stderr)
    save_pipeline(out, unet, vae, text, slow, sched)
    del text
    print(f"[{which}] saved at {time.time() - t0:.1f}s", file=sys.stderr)
    ref = {}
    with torch.no_grad():
        ref["unet_sample"] = torch.randn(1, 4, 32, 32, generator=gen)
        ref["unet_text"] = torch.randn(1, 77, spec["unet"]["cross_attention_dim"], generator=gen)
        ref["unet_out_t501"] = unet(ref["unet_sample"], torch.tensor(501),
                                    encoder_hidden_states=ref["unet_text"]).sample
        del unet
        ref["vae_decode_in"] = torch.randn(1, 4, 32, 32, generator=gen)
        ref["vae_decode_out"] = vae.decode(ref["vae_decode_in"]).sample
    write_refs(out, ref, dict(model=f"{which}_full", seed=SEED, timestep=501,
                              note="random weights; only UNet and VAE are compared"))
    print(f"[{which}] done at {time.time() - t0:.1f}s", file=sys.stderr)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--full", choices=["sd15", "sd21"])
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    t0 = time.time()
    if a.full:
        print(make_full(a.out_dir, a.full))
    else:
        for v2 in (False, True):
            print(make_tiny(a.out_dir, v2))
    print(f"make_reference: done in {time.time() - t0:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
