#!/usr/bin/env python3
"""Which floating-point variant of the LIVE BRISQUE MATLAB code gives the published values?

Usage: $TTPO_VENV/bin/python metrics/tools/brisque_i08.py [--enumerate]
(needs numpy and Pillow; images from $TTPO_ASSETS/calib/dist, model from
$TTPO_ASSETS/brisque). Prints, for every variant, the five BRISQUE scores of the pyiqa
calibration images and their distance to the published MATLAB values.

The reference (brisquescore.m / brisque_feature.m of the LIVE release): rgb2gray on uint8,
double, window = fspecial('gaussian', 7, 7/6) normalised again, mu = filter2(window, im,
'same'), sigma = sqrt(abs(filter2(window, im.*im, 'same') - mu.*mu)), structdis =
(im - mu)./(sigma + 1), GGD / AGGD moment fits on the grid 0.2:0.001:10, imresize(im, 0.5)
for the second scale; features written with '%f', svm-scale (%g), svm-predict.

Why variants matter: in a window where the image is constant (v), the exact MSCN value is 0,
but a filter gives mu = v, v - ulp or v + ulp depending on its kernel values and summation
order. Zeros are ignored by the AGGD fit's left/right means while tiny non-zero values are
counted, which moves the right variance of the pair products and hence the score.
"""
import math
import os
import sys

import numpy as np
from PIL import Image

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
assets = os.environ.get("TTPO_ASSETS", os.path.join(root, ".cache", "assets"))

IMAGES = ["I03", "I04", "I06", "I08", "I19"]
PUBLISHED = np.array([94.6421, -0.1076, 0.9929, 5.3583, 72.2617])
PYIQA = np.array([94.6452, -0.1082, 1.0759, 5.1423, 66.8381])
# The calibration test's current allowance per image (I08: 0.25, the known miss).
ALLOWED = np.array([0.0310, 0.01, 0.0830, 0.25, 5.4236])
RUST = np.array([94.6459, -0.1072, 0.9900, 5.5939, 71.6724])

# ---------------------------------------------------------------- model (libsvm files)


def load_model(d):
    lines = open(os.path.join(d, "allmodel")).read().split("\n")
    hdr = {}
    i = 0
    while lines[i].strip() != "SV":
        k, *v = lines[i].split()
        hdr[k] = v
        i += 1
    coef, sv = [], []
    for ln in lines[i + 1:]:
        t = ln.split()
        if not t:
            continue
        coef.append(float(t[0]))
        row = np.zeros(36)
        for e in t[1:]:
            a, b = e.split(":")
            row[int(a) - 1] = float(b)
        sv.append(row)
    rl = open(os.path.join(d, "ranges.txt")).read().split("\n")
    lo, hi = map(float, rl[1].split())
    fmin, fmax = np.zeros(36), np.zeros(36)
    for ln in rl[2:]:
        t = ln.split()
        if len(t) == 3:
            fmin[int(t[0]) - 1], fmax[int(t[0]) - 1] = float(t[1]), float(t[2])
    return dict(gamma=float(hdr["gamma"][0]), rho=float(hdr["rho"][0]),
                coef=np.array(coef), sv=np.array(sv), lo=lo, hi=hi, fmin=fmin, fmax=fmax)


def scale_features(m, f):
    """svm-scale: bounds map exactly to lower/upper."""
    f = np.asarray(f, dtype=np.float64)
    s = m["lo"] + (m["hi"] - m["lo"]) * (f - m["fmin"]) / (m["fmax"] - m["fmin"])
    s = np.where(f == m["fmin"], m["lo"], s)
    return np.where(f == m["fmax"], m["hi"], s)


def predict(m, f, text=False):
    """sum_i coef_i exp(-gamma ||x - sv_i||^2) - rho. f: (..., 36).

    text=True mimics brisquescore.m's file round trip: features printed with '%f',
    svm-scale writes '%g' (6 significant digits)."""
    f = np.asarray(f, dtype=np.float64)
    if text:
        f = np.round(f, 6)
    x = scale_features(m, f)
    if text:
        x = np.vectorize(lambda v: float("%g" % v))(x)
    d2 = ((x[..., None, :] - m["sv"]) ** 2).sum(-1)
    return (m["coef"] * np.exp(-m["gamma"] * d2)).sum(-1) - m["rho"]


# ---------------------------------------------------------------- image pipeline

MATLAB_COEF = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])


def load_gray(name, coef=MATLAB_COEF, rounding="away"):
    rgb = np.asarray(Image.open(os.path.join(assets, "calib", "dist", name + ".bmp"))
                     .convert("RGB")).astype(np.float64)
    y = rgb[..., 0] * coef[0] + rgb[..., 1] * coef[1] + rgb[..., 2] * coef[2]
    if rounding == "away":
        y = np.floor(y + 0.5)
    else:
        y = np.round(y)  # half to even
    return np.clip(y, 0, 255)


def fspecial_gaussian(n=7, sigma=7 / 6):
    """MATLAB fspecial('gaussian'), then brisque_feature.m's second normalisation.
    sum(h(:)) is taken in column-major order, sequentially."""
    r = (n - 1) / 2
    x, y = np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1))
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(float).eps * h.max()] = 0
    for _ in range(2):
        s = 0.0
        for v in h.T.ravel():
            s += v
        h = h / s
    return h


def gauss1d(n=7, sigma=7 / 6):
    r = (n - 1) / 2
    w = np.exp(-(np.arange(n) - r) ** 2 / (2 * sigma * sigma))
    s = 0.0
    for v in w:
        s += v
    return w / s


def corr_taps(img, taps, dtype=np.float64):
    """Zero-padded correlation, sequential accumulation over taps [(dy, dx, w)] in the
    given order (each output pixel: ((0 + w0 x0) + w1 x1) + ...)."""
    h, w = img.shape
    p = np.zeros((h + 6, w + 6), dtype=dtype)
    p[3:-3, 3:-3] = img
    acc = np.zeros((h, w), dtype=dtype)
    for dy, dx, k in taps:
        acc = acc + dtype(k) * p[3 + dy:3 + dy + h, 3 + dx:3 + dx + w]
    return acc


def taps2d(K, order):
    """Tap list of a 7x7 correlation kernel K (K[a, b] multiplies x[i+a-3, j+b-3])."""
    idx = [(a, b) for a in range(7) for b in range(7)]  # row-major
    if order.startswith("col"):
        idx = [(a, b) for b in range(7) for a in range(7)]
    if order.endswith("rev"):
        idx = idx[::-1]
    return [(a - 3, b - 3, K[a, b]) for a, b in idx]


def filt_2d(K, order, dtype=np.float64):
    return lambda im: corr_taps(im, taps2d(K, order), dtype)


def filt_sep(kv, kh, first="v", rev=False, dtype=np.float64):
    """Separable correlation: vertical kernel kv, horizontal kh, `first` pass first."""
    ov = [(i - 3, 0, kv[i]) for i in range(7)]
    oh = [(0, i - 3, kh[i]) for i in range(7)]
    if rev:
        ov, oh = ov[::-1], oh[::-1]

    def f(im):
        if first == "v":
            return corr_taps(corr_taps(im, ov, dtype), oh, dtype)
        return corr_taps(corr_taps(im, oh, dtype), ov, dtype)
    return f


def filt_fft(K):
    def f(im):
        h, w = im.shape
        H, W = h + 6, w + 6
        F = np.fft.rfft2(im, (H, W)) * np.fft.rfft2(K[::-1, ::-1], (H, W))
        return np.fft.irfft2(F, (H, W))[3:3 + h, 3:3 + w]
    return f


def mscn(im, filt, sigma_order="abs"):
    mu = filt(im)
    mu2 = filt(im * im)
    if sigma_order == "abs":
        sig = np.sqrt(np.abs(mu2 - mu * mu))
    else:  # max(., 0): negative variance clipped (pyiqa style)
        sig = np.sqrt(np.maximum(mu2 - mu * mu, 0))
    return (im - mu) / (sig + 1)


GAM = 0.2 + 0.001 * np.arange(9801)
_g = np.vectorize(math.gamma)
R_GGD = _g(1 / GAM) * _g(3 / GAM) / _g(2 / GAM) ** 2
R_AGGD = _g(2 / GAM) ** 2 / (_g(1 / GAM) * _g(3 / GAM))


def ggd(v):
    s2 = np.mean(v * v)
    e = np.mean(np.abs(v))
    return GAM[np.argmin(np.abs(s2 / e ** 2 - R_GGD))], math.sqrt(s2)


def aggd(v, zero_side=None):
    """zero_side: None (MATLAB: x<0 left, x>0 right, zeros in neither), 'left' (x<=0),
    'right' (x>=0)."""
    if zero_side == "left":
        left, right = v[v <= 0], v[v > 0]
    elif zero_side == "right":
        left, right = v[v < 0], v[v >= 0]
    else:
        left, right = v[v < 0], v[v > 0]
    ls = math.sqrt(np.mean(left * left))
    rs = math.sqrt(np.mean(right * right))
    gh = ls / rs
    rhat = np.mean(np.abs(v)) ** 2 / np.mean(v * v)
    rn = rhat * (gh ** 3 + 1) * (gh + 1) / (gh ** 2 + 1) ** 2
    a = GAM[np.argmin(np.abs(R_AGGD - rn))]
    return a, ls, rs


def nss_features(s, zero_side=None):
    a, sd = ggd(s.ravel())
    out = [a, sd * sd]
    for dy, dx in [(0, 1), (1, 0), (1, 1), (-1, 1)]:
        pair = s * np.roll(s, (dy, dx), axis=(0, 1))
        a, ls, rs = aggd(pair.ravel(), zero_side)
        c = math.sqrt(math.gamma(1 / a)) / math.sqrt(math.gamma(3 / a))
        mean = (rs - ls) * (math.gamma(2 / a) / math.gamma(1 / a)) * c
        out += [a, mean, ls * ls, rs * rs]
    return out


def cubic(x):
    ax = np.abs(x)
    return np.where(ax <= 1, 1.5 * ax ** 3 - 2.5 * ax ** 2 + 1,
                    np.where(ax <= 2, -0.5 * ax ** 3 + 2.5 * ax ** 2 - 4 * ax + 2, 0.0))


def contributions(n, scale=0.5):
    out_len = math.ceil(n * scale)
    kw = 4 / scale
    x = np.arange(1, out_len + 1)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kw / 2)
    P = math.ceil(kw) + 2
    ind = left[:, None] + np.arange(P)[None, :]
    wts = scale * cubic(scale * (u[:, None] - ind))
    wts = wts / wts.sum(1, keepdims=True)
    aux = np.concatenate([np.arange(n), np.arange(n)[::-1]])
    ind = aux[((ind - 1) % (2 * n)).astype(int)]
    keep = ~np.all(wts == 0, axis=0)
    return wts[:, keep], ind[:, keep]


def imresize_half(im):
    """MATLAB imresize(im, 0.5): rows first, then columns; taps summed in order."""
    w, ind = contributions(im.shape[0])
    acc = np.zeros((w.shape[0], im.shape[1]))
    for j in range(w.shape[1]):
        acc = acc + w[:, j:j + 1] * im[ind[:, j], :]
    w, ind = contributions(im.shape[1])
    out = np.zeros((acc.shape[0], w.shape[0]))
    for j in range(w.shape[1]):
        out = out + w[None, :, j] * acc[:, ind[:, j]]
    return out


def features(gray, filt, sigma_order="abs", zero_side=None):
    f = []
    im = gray
    for sc in range(2):
        f += nss_features(mscn(im, filt, sigma_order), zero_side)
        if sc == 0:
            im = imresize_half(im)
    return np.array(f)


# ---------------------------------------------------------------- variants

def variants():
    K = fspecial_gaussian()
    g = gauss1d()
    st = np.rot90(K, 2)
    u, s, vh = np.linalg.svd(st)
    hcol = u[:, 0] * math.sqrt(s[0])
    hrow = vh[0, :] * math.sqrt(s[0])
    # conv2(hcol, hrow, x) convolves: as a correlation the kernels are reversed.
    v = {
        "ours: separable 1-D normalised, vertical first": filt_sep(g, g, "v"),
        "separable 1-D normalised, horizontal first": filt_sep(g, g, "h"),
        "separable 1-D, reversed tap order": filt_sep(g, g, "v", rev=True),
        "2-D fspecial, row-major": filt_2d(K, "row"),
        "2-D fspecial, row-major reversed": filt_2d(K, "rowrev"),
        "2-D fspecial, column-major": filt_2d(K, "col"),
        "2-D fspecial, column-major reversed (conv2 of rot90)": filt_2d(K, "colrev"),
        "filter2 SVD split (numpy), columns first": filt_sep(hcol[::-1], hrow[::-1], "v"),
        "filter2 SVD split (numpy), columns first, reversed taps":
            filt_sep(hcol[::-1], hrow[::-1], "v", rev=True),
        "FFT (numpy pocketfft)": filt_fft(K),
    }
    return v


def run_variants(model):
    grays = {n: load_gray(n) for n in IMAGES}
    print("%-58s %9s %9s %9s %9s %9s | %s" % ("variant", *IMAGES, "I08 err"))
    print("%-58s %9.4f %9.4f %9.4f %9.4f %9.4f |" % ("published (MATLAB)", *PUBLISHED))
    print("%-58s %9.4f %9.4f %9.4f %9.4f %9.4f |" % ("Rust (docs/METRICS.md)", *RUST))
    for name, filt in variants().items():
        sc = []
        for n in IMAGES:
            f = features(grays[n], filt)
            sc.append(predict(model, f))
        sc = np.array(sc)
        ok = "".join("." if e <= a else "x" for e, a in zip(np.abs(sc - PUBLISHED), ALLOWED))
        print("%-58s %9.4f %9.4f %9.4f %9.4f %9.4f | %.4f %s" % (
            name, *sc, abs(sc[3] - PUBLISHED[3]), ok))


if __name__ == "__main__":
    model = load_model(os.path.join(assets, "brisque"))
    run_variants(model)
