#!/usr/bin/env python3
"""PyTorch/diffusers reference timings for TTPO, on a diffusers model folder
(e.g. the output of `make_reference.py OUT --full sd21`). Prints JSON.

    python bench_torch.py MODEL_DIR [--threads N] [--device cpu|cuda]
                          [--dtype f32|f16|bf16] [--repeat K] [--warmup W] [--img2img]

Times (median of K runs after W warm-up runs, seconds):
  unet         one UNet call, batch 1, latent LxL (default 64), 77 text tokens
  vae_encode   VAE encode at 8L x 8L (default 512x512), posterior mean
  vae_decode   VAE decode of a LxL latent
--img2img additionally times a TTPO-like Stage I: 15 img2img candidates
(strengths 0.10..0.30 x 3 seeds, 50 DDIM steps, CFG 7.5 batched as
[uncond x3, cond x3] = UNet batch 6), one explicit diffusers-component loop
per strength (encode once, decode all 15 candidates).
--img2img-small PX additionally times one small img2img run, once: a PX x PX image
encoded, strength 0.3 of 50 DDIM steps (15 UNet calls, CFG 7.5 as one batch-2 call each),
decoded (the same loop as TTPO's `core/examples/bench.rs --img2img PX`).
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def timeit(fn, dev, repeat, warmup):
    for _ in range(warmup):
        fn()
    sync(dev)
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync(dev)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), ts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="f32", choices=list(DTYPES))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--latent", type=int, default=64, help="latent side (image side = 8x... "
                    "the VAE's factor); 64 = 512x512 for SD")
    ap.add_argument("--img2img", action="store_true")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--img2img-small", type=int, default=None, metavar="PX")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev, dt = torch.device(a.device), DTYPES[a.dtype]
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_pretrained(os.path.join(a.model_dir, "unet"), torch_dtype=dt).to(dev).eval()
    vae = AutoencoderKL.from_pretrained(os.path.join(a.model_dir, "vae"), torch_dtype=dt).to(dev).eval()
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    L, H = a.latent, a.latent * factor
    ctx_dim = unet.config.cross_attention_dim
    res = dict(model_dir=os.path.abspath(a.model_dir), device=a.device, dtype=a.dtype,
               threads=torch.get_num_threads(), repeat=a.repeat, warmup=a.warmup,
               latent=[L, L], image=[H, H], torch=torch.__version__,
               device_name=torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu")
    x = torch.randn(1, 4, L, L, device=dev, dtype=dt)
    c = torch.randn(1, 77, ctx_dim, device=dev, dtype=dt)
    img = torch.rand(1, 3, H, H, device=dev, dtype=dt) * 2 - 1
    t = torch.tensor(501, device=dev)
    with torch.inference_mode():
        res["unet"], res["unet_all"] = timeit(lambda: unet(x, t, encoder_hidden_states=c).sample, dev, a.repeat, a.warmup)
        res["vae_encode"], res["vae_encode_all"] = timeit(lambda: vae.encode(img).latent_dist.mean, dev, a.repeat, a.warmup)
        res["vae_decode"], res["vae_decode_all"] = timeit(lambda: vae.decode(x).sample, dev, a.repeat, a.warmup)
        if a.img2img:
            res["img2img"] = stage1(unet, vae, a.model_dir, dev, dt, img, ctx_dim, a.steps)
        if a.img2img_small:
            res["img2img_small"] = small_img2img(unet, vae, a.model_dir, dev, dt, ctx_dim,
                                                 a.img2img_small)
    print(json.dumps(res, indent=1))


def stage1(unet, vae, model_dir, dev, dt, img, ctx_dim, steps,
           strengths=(0.10, 0.15, 0.20, 0.25, 0.30), seeds=(0, 1, 2), gs=7.5):
    sched = DDIMScheduler.from_pretrained(os.path.join(model_dir, "scheduler"))
    if not isinstance(sched, DDIMScheduler):
        sched = DDIMScheduler.from_config(sched.config)
    # text states: stand-ins of the right shape (the text encoder is not timed)
    gen = torch.Generator().manual_seed(1234)
    cond = torch.randn(1, 77, ctx_dim, generator=gen).to(dev, dt)
    uncond = torch.randn(1, 77, ctx_dim, generator=gen).to(dev, dt)
    n = len(seeds)
    ctx = torch.cat([uncond.expand(n, -1, -1), cond.expand(n, -1, -1)])
    sync(dev)
    t0 = time.perf_counter()
    sf = vae.config.scaling_factor
    z0 = vae.encode(img).latent_dist.mean * sf
    calls, outs = 0, []
    for s in strengths:
        sched.set_timesteps(steps)
        init_timestep = min(int(steps * s), steps)
        t_start = max(steps - init_timestep, 0)
        ts = sched.timesteps[t_start * sched.order:]
        noise = torch.cat([torch.randn(z0.shape, generator=torch.Generator().manual_seed(sd))
                           for sd in seeds]).to(dev, dt)
        lat = sched.add_noise(z0.expand(n, -1, -1, -1), noise, ts[:1].repeat(n))
        for tt in ts:
            eps = unet(torch.cat([lat, lat]), tt, encoder_hidden_states=ctx).sample
            eu, ec = eps.chunk(2)
            lat = sched.step(eu + gs * (ec - eu), tt, lat, eta=0.0).prev_sample
            calls += 1
        outs.append(lat)
    imgs = [vae.decode(l[i:i + 1] / sf).sample.clamp(-1, 1) for l in outs for i in range(n)]
    sync(dev)
    total = time.perf_counter() - t0
    return dict(candidates=len(imgs), steps=steps, strengths=list(strengths), seeds=list(seeds),
                guidance_scale=gs, unet_calls=calls, unet_batch=2 * n, total_s=total,
                unet_calls_per_s=calls / total, unet_samples_per_s=calls * 2 * n / total)


def small_img2img(unet, vae, model_dir, dev, dt, ctx_dim, side, steps=50, strength=0.3, gs=7.5):
    sched = DDIMScheduler.from_pretrained(os.path.join(model_dir, "scheduler"))
    if not isinstance(sched, DDIMScheduler):
        sched = DDIMScheduler.from_config(sched.config)
    gen = torch.Generator().manual_seed(99)
    img = (torch.rand(1, 3, side, side, generator=gen) * 2 - 1).to(dev, dt)
    # text states: stand-ins of the right shape (our side encodes its prompts before timing)
    ctx = torch.randn(2, 77, ctx_dim, generator=gen).to(dev, dt)
    sched.set_timesteps(steps)
    t_start = steps - min(int(steps * strength), steps)
    ts = sched.timesteps[t_start * sched.order:]
    sync(dev)
    t0 = time.perf_counter()
    sf = vae.config.scaling_factor
    z0 = vae.encode(img).latent_dist.mean * sf
    lat = sched.add_noise(z0, torch.randn(z0.shape, generator=gen).to(dev, dt), ts[:1])
    for tt in ts:
        eps = unet(torch.cat([lat, lat]), tt, encoder_hidden_states=ctx).sample
        eu, ec = eps.chunk(2)
        lat = sched.step(eu + gs * (ec - eu), tt, lat, eta=0.0).prev_sample
    out = vae.decode(lat / sf).sample
    sync(dev)
    total = time.perf_counter() - t0
    assert out.shape[-1] == side
    return dict(side=side, unet_calls=len(ts), unet_batch=2, steps=steps, strength=strength,
                guidance_scale=gs, total_s=total, s_per_step=total / len(ts))


if __name__ == "__main__":
    main()
