#!/usr/bin/env python3
"""Which floating-point variant of the LIVE BRISQUE MATLAB code gives the published values?

Usage: $TTPO_VENV/bin/python metrics/tools/brisque_i08.py [--enumerate | --perturb |
--families] (needs numpy and Pillow; images from $TTPO_ASSETS/calib/dist, model from
$TTPO_ASSETS/brisque). Without an option: for every filter variant, the five BRISQUE scores
of the pyiqa calibration images and their distance to the published MATLAB values.
--enumerate: every sign pattern of the constant windows of I06 and I08. --perturb: random
ulp changes of the kernels. --families: filter2's SVD path over fspecial sum orders and
LAPACKs (scipy and MKL optional, see lapack_svd). Results: docs/METRICS.md.

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
import itertools
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
# The calibration test's allowance per image: max(|pyiqa - published|, 1 %, 0.01), pyiqa
# 94.6452, -0.1082, 1.0759, 5.1423, 66.8381; I08: 0.25, the known miss.
ALLOWED = np.array([0.9464, 0.01, 0.0830, 0.25, 5.4236])
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


def two_prod(a, b):
    """Error-free product (Dekker): a*b == p + e exactly."""
    p = a * b
    c = 134217729.0 * a
    ah = c - (c - a)
    al = a - ah
    c = 134217729.0 * b
    bh = c - (c - b)
    bl = b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def fma(a, b, c):
    """Fused multiply-add round(a*b + c) (numpy has none): exact product and sum, one
    final rounding (a double rounding is possible only in rare tie cases)."""
    p, e = two_prod(a, b)
    s = p + c
    bb = s - p
    t = (p - (s - bb)) + (c - bb)
    return s + (t + e)


def corr_taps(img, taps, use_fma=False):
    """Zero-padded correlation, sequential accumulation over taps [(dy, dx, w)] in the
    given order (each output pixel: ((0 + w0 x0) + w1 x1) + ...), optionally with FMA."""
    h, w = img.shape
    p = np.zeros((h + 6, w + 6))
    p[3:-3, 3:-3] = img
    acc = np.zeros((h, w))
    for dy, dx, k in taps:
        x = p[3 + dy:3 + dy + h, 3 + dx:3 + dx + w]
        acc = fma(k, x, acc) if use_fma else acc + k * x
    return acc


def taps2d(K, order):
    """Tap list of a 7x7 correlation kernel K (K[a, b] multiplies x[i+a-3, j+b-3])."""
    idx = [(a, b) for a in range(7) for b in range(7)]  # row-major
    if order.startswith("col"):
        idx = [(a, b) for b in range(7) for a in range(7)]
    if order.endswith("rev"):
        idx = idx[::-1]
    return [(a - 3, b - 3, K[a, b]) for a, b in idx]


def filt_2d(K, order, use_fma=False):
    return lambda im: corr_taps(im, taps2d(K, order), use_fma=use_fma)


def filt_conv2_sep(hcol, hrow, first="v", natural=True, use_fma=False):
    """MATLAB conv2(hcol, hrow, A, 'same'): columns convolved with hcol, then rows with
    hrow (first="h" swaps the passes). natural: each output accumulates h(1)..h(7) in
    order (the scatter loop y(i+k-1) += h(k) x(i)); else h(7)..h(1)."""
    # Convolution with h is correlation with h reversed; tap i of the correlation
    # kernel h[::-1] is h(7-i), so natural order is the reversed tap order.
    return filt_sep(hcol[::-1], hrow[::-1], first, rev=natural, use_fma=use_fma)


def filt_sep(kv, kh, first="v", rev=False, use_fma=False):
    """Separable correlation: vertical kernel kv, horizontal kh, `first` pass first."""
    ov = [(i - 3, 0, kv[i]) for i in range(7)]
    oh = [(0, i - 3, kh[i]) for i in range(7)]
    if rev:
        ov, oh = ov[::-1], oh[::-1]

    def f(im):
        if first == "v":
            return corr_taps(corr_taps(im, ov, use_fma=use_fma), oh, use_fma=use_fma)
        return corr_taps(corr_taps(im, oh, use_fma=use_fma), ov, use_fma=use_fma)
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

# filter2's SVD split of the stencil rot90(window, 2): hcol = u(:,1)*sqrt(s(1)),
# hrow = v(:,1)*sqrt(s(1)), as computed by Intel MKL 2026.2.1 (pip wheel `mkl`, LAPACKE,
# sequential; identical for MKL_CBWR=SSE4_2/AVX2/AVX512), stored here so that the script
# needs no MKL. (u and v come out negative; the sign cancels exactly in conv2.)
MKL_SPLIT = {
    "gesdd": (["0x1.9b92991f248c3p-7", "0x1.42e11ca517a61p-4", "0x1.e5fb7c557fad1p-3",
               "0x1.5edacbc602378p-2", "0x1.e5fb7c557fad1p-3", "0x1.42e11ca517a61p-4",
               "0x1.9b92991f24882p-7"],
              ["0x1.9b92991f2487ep-7", "0x1.42e11ca517a66p-4", "0x1.e5fb7c557fad0p-3",
               "0x1.5edacbc602376p-2", "0x1.e5fb7c557fad0p-3", "0x1.42e11ca517a61p-4",
               "0x1.9b92991f24883p-7"]),
    "gesvd": (["0x1.9b92991f248dcp-7", "0x1.42e11ca517a61p-4", "0x1.e5fb7c557fad2p-3",
               "0x1.5edacbc602378p-2", "0x1.e5fb7c557fad2p-3", "0x1.42e11ca517a61p-4",
               "0x1.9b92991f24882p-7"],
              ["0x1.9b92991f2487ep-7", "0x1.42e11ca517a65p-4", "0x1.e5fb7c557fad0p-3",
               "0x1.5edacbc602376p-2", "0x1.e5fb7c557fad0p-3", "0x1.42e11ca517a61p-4",
               "0x1.9b92991f24883p-7"]),
}


def svd_splits():
    """(name, hcol, hrow) for filter2's separable path."""
    st = np.rot90(fspecial_gaussian(), 2)
    u, s, vh = np.linalg.svd(st)  # numpy's LAPACK (OpenBLAS) gesdd
    out = [("numpy gesdd", np.abs(u[:, 0]) * math.sqrt(s[0]),
            np.abs(vh[0, :]) * math.sqrt(s[0]))]
    for drv, (c, r) in MKL_SPLIT.items():
        out.append(("MKL " + drv, np.array([float.fromhex(x) for x in c]),
                    np.array([float.fromhex(x) for x in r])))
    return out


def variants():
    K = fspecial_gaussian()
    g = gauss1d()
    v = {
        "ours: separable 1-D normalised, vertical first": filt_sep(g, g, "v"),
        "separable 1-D normalised, horizontal first": filt_sep(g, g, "h"),
        "separable 1-D normalised, reversed taps": filt_sep(g, g, "v", rev=True),
        "separable 1-D normalised, FMA": filt_sep(g, g, "v", use_fma=True),
    }
    for fm in [False, True]:
        for order in ["row", "rowrev", "col", "colrev"]:
            v["2-D fspecial %s-major%s%s" % (order[:3], " reversed" if "rev" in order else "",
                                             ", FMA" if fm else "")] = filt_2d(K, order, fm)
    for name, hc, hr in svd_splits():
        for fm in [False, True]:
            for first in ["v", "h"]:
                for nat in [True, False]:
                    v["filter2 split %s, %s first, %s%s" % (
                        name, "cols" if first == "v" else "rows",
                        "natural" if nat else "reversed", ", FMA" if fm else "")] = \
                        filt_conv2_sep(hc, hr, first, nat, fm)
    v["FFT (numpy pocketfft)"] = filt_fft(K)
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
    # The text round trip of brisquescore.m ('%f' features, '%g' after svm-scale).
    f = variants()["ours: separable 1-D normalised, vertical first"]
    sc = np.array([predict(model, features(grays[n], f), text=True) for n in IMAGES])
    print("%-58s %9.4f %9.4f %9.4f %9.4f %9.4f | %.4f" % (
        "ours, features through '%f' and svm-scale '%g'", *sc, abs(sc[3] - PUBLISHED[3])))
    for lab, kw in [("ours, AGGD zeros counted left (x <= 0)", dict(zero_side="left")),
                    ("ours, AGGD zeros counted right (x >= 0)", dict(zero_side="right")),
                    ("ours, sigma = sqrt(max(var, 0))", dict(sigma_order="max"))]:
        sc = np.array([predict(model, features(grays[n], f, **kw)) for n in IMAGES])
        print("%-58s %9.4f %9.4f %9.4f %9.4f %9.4f | %.4f" % (
            lab, *sc, abs(sc[3] - PUBLISHED[3])))
    g2 = {n: load_gray(n, rounding="even") for n in IMAGES}
    print("rgb2gray rounding half to even changes %d pixels of the five images; no weighted "
          "sum lies within 3e-5 of a tie" % sum((g2[n] != grays[n]).sum() for n in IMAGES))
    print("(. = within the calibration test's allowance, x = outside; I08 column: 0.25)")


def flat_mask(im):
    """Pixels whose whole 7x7 window lies in the image and is constant."""
    from numpy.lib.stride_tricks import sliding_window_view
    w = sliding_window_view(im, (7, 7))
    m = np.zeros(im.shape, bool)
    m[3:-3, 3:-3] = w.max(axis=(2, 3)) == w.min(axis=(2, 3))
    return m


def sign_features(im, values, combos):
    """Features of one scale when the MSCN value in the constant windows of value v is
    set to sign * 1e-14 (sign from each combo, per value); other pixels from our filter."""
    s0 = mscn(im, variants()["ours: separable 1-D normalised, vertical first"])
    m = flat_mask(im)
    masks = [m & (im == v) for v in values]
    out = []
    for combo in combos:
        t = s0.copy()
        for c, mk in zip(combo, masks):
            t[mk] = c * 1e-14
        out.append(nss_features(t))
    return np.array(out)


def enumerate_signs(model):
    """Every sign pattern (-, 0, +) of the constant windows of I06 and I08."""
    sym = lambda c: "".join("-0+"[x + 1] for x in c)
    for name in ["I06", "I08"]:
        g = load_gray(name)
        ims = [g, imresize_half(g)]
        per_scale = []
        for sc, im in enumerate(ims):
            vals = np.unique(im[flat_mask(im)])
            print("%s scale %d: %d constant-window pixels, values %s" % (
                name, sc + 1, flat_mask(im).sum(), vals.astype(int).tolist()))
            combos = list(itertools.product([-1, 0, 1], repeat=len(vals)))
            per_scale.append((combos, sign_features(im, vals, combos)))
        (ca, fa), (cb, fb) = per_scale
        res = np.array([predict(model, np.concatenate(
            [np.repeat(fa[i:i + 1], len(fb), 0), fb], 1)) for i in range(len(fa))])
        pub = PUBLISHED[IMAGES.index(name)]
        err = np.abs(res - pub)
        print("%s: %d patterns, score %.4f .. %.4f (published %.4f)" % (
            name, res.size, res.min(), res.max(), pub))
        for t in [0.001, 0.01, 0.054, 0.216]:
            print("  |score - published| <= %-5g: %5.1f %%" % (t, 100 * (err <= t).mean()))
        if res.size < 100:
            for i, j in np.ndindex(res.shape):
                print("  %s | %s  %.4f" % (sym(ca[i]), sym(cb[j]), res[i, j]))
        else:
            for lab, c in [("all zero", 0), ("all +", 1), ("all -", -1)]:
                i = ca.index((c,) * len(ca[0]))
                j = cb.index((c,) * len(cb[0]))
                print("  %-8s %.4f" % (lab, res[i, j]))


def perturb(model, n, seed=1):
    """Random +-2-ulp perturbations of both 1-D kernels (a stand-in for an unknown
    LAPACK's SVD split), keeping those that give I06's published pattern (mu(249) == 249,
    mu(248) > 248, see --enumerate); full five-image scores for each."""
    rng = np.random.default_rng(seed)
    g = gauss1d()
    vals = np.arange(256.0)
    grays = {k: load_gray(k) for k in IMAGES}

    def nudge(h):
        out = h.copy()
        for i, k in enumerate(rng.integers(-2, 3, 7)):
            for _ in range(abs(k)):
                out[i] = np.nextafter(out[i], np.inf if k > 0 else -np.inf)
        return out
    rows, tried = [], 0
    while len(rows) < n:
        hc, hr = nudge(g), nudge(g)
        tried += 1
        c = np.zeros_like(vals)
        for k in hc:
            c = c + k * vals
        mu = np.zeros_like(vals)
        for k in hr:
            mu = mu + k * c
        if not (mu[249] == 249 and mu[248] > 248):
            continue
        f = filt_sep(hc, hr, "v")
        sc = np.array([predict(model, features(grays[k], f)) for k in IMAGES])
        rows.append(sc)
        print("%9.4f %9.4f %9.4f %9.4f %9.4f" % tuple(sc), flush=True)
    R = np.array(rows)
    E = np.abs(R - PUBLISHED)
    others = np.delete(E <= ALLOWED, 3, axis=1).all(1)
    print("tried %d kernels, %d reproduce I06's pattern; of those: other four within "
          "tolerance %d, and I08 <= 0.216: %d, I08 <= 0.054: %d; I08 %.4f .. %.4f, "
          "I19 %.3f .. %.3f" % (tried, n, others.sum(), (others & (E[:, 3] <= 0.216)).sum(),
                                (others & (E[:, 3] <= 0.054)).sum(), R[:, 3].min(),
                                R[:, 3].max(), R[:, 4].min(), R[:, 4].max()))


def lapack_svd(st):
    """(name, u, s, vh) of the stencil from every LAPACK at hand: numpy's, scipy's gesvd
    (both OpenBLAS) and Intel MKL's gesdd/gesvd through ctypes when $MKL_RT names
    libmkl_rt.so (pip wheel `mkl`; set MKL_THREADING_LAYER=SEQUENTIAL)."""
    out = [("np-gesdd", *np.linalg.svd(st))]
    try:
        import scipy.linalg
        out.append(("ob-gesvd", *scipy.linalg.svd(st, lapack_driver="gesvd")))
    except ImportError:
        print("(no scipy: OpenBLAS gesvd skipped)")
    if os.environ.get("MKL_RT"):
        import ctypes
        mkl = ctypes.CDLL(os.environ["MKL_RT"], mode=ctypes.RTLD_GLOBAL)
        P = ctypes.c_void_p
        for drv in ["gesdd", "gesvd"]:
            A = np.asfortranarray(st.copy())
            s, sup = np.zeros(7), np.zeros(7)
            u, vt = np.zeros((7, 7), order="F"), np.zeros((7, 7), order="F")
            if drv == "gesvd":
                r = mkl.LAPACKE_dgesvd(102, ctypes.c_char(b"A"), ctypes.c_char(b"A"), 7, 7,
                                       A.ctypes.data_as(P), 7, s.ctypes.data_as(P),
                                       u.ctypes.data_as(P), 7, vt.ctypes.data_as(P), 7,
                                       sup.ctypes.data_as(P))
            else:
                r = mkl.LAPACKE_dgesdd(102, ctypes.c_char(b"A"), 7, 7, A.ctypes.data_as(P), 7,
                                       s.ctypes.data_as(P), u.ctypes.data_as(P), 7,
                                       vt.ctypes.data_as(P), 7)
            assert r == 0
            out.append(("mkl-" + drv, u, s, vt))
    else:
        print("(MKL_RT not set: MKL SVDs skipped)")
    return out


def families(model):
    """filter2's separable path over the arithmetic choices MATLAB could have made:
    fspecial's sum(h(:)) order (sequential by columns or rows, numpy's pairwise sum, 2/4/8
    interleaved accumulators), normalised once or twice, the LAPACK that split the
    stencil, conv2's pass order, tap order, and FMA. A variant can only be MATLAB's if
    it gives I06's published pattern (see --enumerate: mu(249) == 249, mu(248) > 248);
    those are scored on all five images."""
    vals = np.arange(256.0)

    def total(h, how):
        x = h.T.ravel() if how.startswith("col") else h.ravel()
        if how.endswith("np"):
            return float(np.sum(x))
        k = 1 if how.endswith("seq") else int(how.split("acc")[1])
        acc = [0.0] * k
        for i, v in enumerate(x):
            acc[i % k] += v
        while len(acc) > 1:
            acc = [acc[i] + acc[i + 1] for i in range(0, len(acc), 2)]
        return acc[0]

    def window(how, twice):
        x, y = np.meshgrid(np.arange(-3.0, 4), np.arange(-3.0, 4))
        h = np.exp(-(x * x + y * y) / (2 * (7 / 6) ** 2))
        h[h < np.finfo(float).eps * h.max()] = 0
        h = h / total(h, how)
        return h / total(h, how) if twice else h

    def mu_const(a, b, use_fma):
        c = np.zeros_like(vals)
        for k in a:
            c = fma(k, vals, c) if use_fma else c + k * vals
        m = np.zeros_like(vals)
        for k in b:
            m = fma(k, c, m) if use_fma else m + k * c
        return m

    grays = {n: load_gray(n) for n in IMAGES}
    n_all, n_ok, done = 0, 0, {}
    for how in ["colseq", "rowseq", "colnp", "colacc2", "colacc4", "colacc8", "rowacc4"]:
        for twice in [True, False]:
            for sv, u, s, vh in lapack_svd(np.rot90(window(how, twice), 2)):
                hc = np.abs(u[:, 0]) * math.sqrt(s[0])
                hr = np.abs(vh[0, :]) * math.sqrt(s[0])
                for first, nat, fm in itertools.product(["v", "h"], [True, False],
                                                        [False, True]):
                    n_all += 1
                    a, b = (hc, hr) if first == "v" else (hr, hc)
                    if not nat:
                        a, b = a[::-1], b[::-1]
                    mu = mu_const(a, b, fm)
                    if not (mu[249] == 249 and mu[248] > 248):
                        continue
                    n_ok += 1
                    name = "%s%s %s %s first %s%s" % (
                        how, "x2" if twice else "", sv, "cols" if first == "v" else "rows",
                        "natural" if nat else "reversed", " FMA" if fm else "")
                    key = (hc.tobytes(), hr.tobytes(), first, nat, fm)
                    if key in done:
                        print("%-50s same kernels as %s" % (name, done[key]))
                        continue
                    done[key] = name
                    f = filt_conv2_sep(hc, hr, first, nat, fm)
                    sc = np.array([predict(model, features(grays[k], f)) for k in IMAGES])
                    ok = "".join("." if e <= t else "x"
                                 for e, t in zip(np.abs(sc - PUBLISHED), ALLOWED))
                    print("%-50s %9.4f %9.4f %9.4f %9.4f %9.4f %s I08 err %.4f" % (
                        name, *sc, ok, abs(sc[3] - PUBLISHED[3])), flush=True)
    print("%d variants, %d give I06's pattern (%d distinct, scored above)" % (
        n_all, n_ok, len(done)))


if __name__ == "__main__":
    model = load_model(os.path.join(assets, "brisque"))
    if "--enumerate" in sys.argv:
        enumerate_signs(model)
    elif "--families" in sys.argv:
        families(model)
    elif "--perturb" in sys.argv:
        perturb(model, 24)
    else:
        run_variants(model)
