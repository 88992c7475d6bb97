#!/usr/bin/env python3
"""Checks a "Restore first" result of the GIMP tests (standard library only).

check-restore.py BEFORE.png PURE.png NEW.png SCALE [AFTER.png]
  BEFORE: the layer the plug-in read; PURE: the network alone on it (`ttpo restore`);
  NEW: the plug-in's new layer; AFTER: the original layer after the run (must equal BEFORE).
Asserts NEW is SCALE times BEFORE's size, and refined: it differs from PURE (the network's
output alone) by more than 8 levels somewhere. Prints the differences.
"""
import struct
import sys
import zlib


def png(path):
    """8/16-bit RGB/RGBA, non-interlaced PNG (GIMP writes 8-bit, ttpo 16-bit): w, h and
    rows of RGB in 0..255 (16-bit samples divided by 257)."""
    d = open(path, 'rb').read()
    i, idat = 8, b''
    while i < len(d):
        n, t = struct.unpack('>I4s', d[i:i + 8])
        c = d[i + 8:i + 8 + n]
        i += 12 + n
        if t == b'IHDR':
            w, h, bd, ct, _, _, interlace = struct.unpack('>IIBBBBB', c)
        elif t == b'IDAT':
            idat += c
    assert bd in (8, 16) and ct in (2, 6) and interlace == 0, (path, bd, ct, interlace)
    ch = (3 if ct == 2 else 4) * (bd // 8)  # bytes per pixel
    raw, s = zlib.decompress(idat), w * ch
    rows, prev = [], bytearray(s)
    for y in range(h):
        f = raw[y * (s + 1)]
        r = bytearray(raw[y * (s + 1) + 1:(y + 1) * (s + 1)])
        for x in range(s):
            a = r[x - ch] if x >= ch else 0
            b = prev[x]
            c = prev[x - ch] if x >= ch else 0
            if f == 1:
                r[x] = (r[x] + a) & 255
            elif f == 2:
                r[x] = (r[x] + b) & 255
            elif f == 3:
                r[x] = (r[x] + (a + b) // 2) & 255
            elif f == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                r[x] = (r[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(r)
        prev = r
    if bd == 8:
        return w, h, [[tuple(row[x * ch:x * ch + 3]) for x in range(w)] for row in rows]
    return w, h, [[tuple(((row[x * ch + 2 * c] << 8) | row[x * ch + 2 * c + 1]) / 257 for c in range(3))
                   for x in range(w)] for row in rows]


def main():
    before_p, pure_p, new_p, scale = sys.argv[1:5]
    scale = int(scale)
    bw, bh, before = png(before_p)
    pw, ph, pure = png(pure_p)
    nw, nh, new = png(new_p)
    if len(sys.argv) > 5:
        aw, ah, after = png(sys.argv[5])
        assert (aw, ah) == (bw, bh) and after == before, "the original layer changed"
    want = (bw * scale, bh * scale)
    assert (nw, nh) == want, f"new layer {nw}x{nh}, want {want[0]}x{want[1]}"
    assert (pw, ph) == want, f"ttpo restore gave {pw}x{ph}, want {want[0]}x{want[1]}"
    d = [abs(p[c] - q[c]) for rp, rq in zip(pure, new) for p, q in zip(rp, rq) for c in range(3)]
    near = [abs(new[y][x][c] - before[y // scale][x // scale][c])
            for y in range(nh) for x in range(nw) for c in range(3)]
    print(f"restore {scale}x: {bw}x{bh} -> {nw}x{nh}; new layer vs the network alone: mean "
          f"{sum(d) / len(d):.2f}, max {max(d):.1f} levels; vs the input repeated {scale}x: mean "
          f"{sum(near) / len(near):.2f} levels")
    assert max(d) > 8, "the new layer is the network's output alone: not refined"


if __name__ == "__main__":
    main()
