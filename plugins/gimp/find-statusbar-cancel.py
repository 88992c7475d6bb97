#!/usr/bin/env python3
"""Finds the Cancel button that GIMP's status bar shows while a plug-in reports progress.

    find-statusbar-cancel.py IDLE.ppm BUSY.ppm X Y WIDTH HEIGHT

IDLE and BUSY are screenshots (binary PPM, `import -window root -depth 8 ppm:FILE`) taken
before the plug-in started and while it runs; X Y WIDTH HEIGHT is the image window. In the
window's bottom 40 rows, the status bar turns into a progress bar with the Cancel button at
its right end (GIMP 2.10 and 3), so the rightmost wide run of changed columns ends with it.
Prints "x y", a point inside it, or exits 1 when nothing changed there.
"""
import sys


def load(path):
    data = open(path, "rb").read()
    fields, pos = [], 0
    while len(fields) < 4:  # magic, width, height, maxval; skip comments
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    assert fields[0] == b"P6" and int(fields[3]) == 255, "need an 8-bit binary PPM"
    return int(fields[1]), int(fields[2]), data[pos + 1:]


w, h, idle = load(sys.argv[1])
w2, h2, busy = load(sys.argv[2])
assert (w, h) == (w2, h2), "screenshots of different sizes"
x0, y0, ww, wh = (int(v) for v in sys.argv[3:7])
rows = range(max(0, y0 + wh - 40), min(h, y0 + wh))
cols = range(max(0, x0), min(w, x0 + ww))
changed = {}  # column -> rows that differ
for y in rows:
    for x in cols:
        i = 3 * (y * w + x)
        if idle[i:i + 3] != busy[i:i + 3]:
            changed.setdefault(x, []).append(y)
if not changed:
    sys.exit(1)
# Runs of changed columns (gaps under 5 px join); the rightmost run at least 16 px wide
# (narrower ones are separators and grips) ends with the button: "(icon) Cancel" is 50 px
# or more in both versions, so 15 px left of the run's end is on its label.
runs = []
for x in sorted(changed):
    if runs and x - runs[-1][1] <= 4:
        runs[-1][1] = x
    else:
        runs.append([x, x])
wide = [r for r in runs if r[1] - r[0] >= 16]
if not wide:
    sys.exit(1)
left, right = wide[-1]
x = right - 15
ys = sorted(y for c in range(max(left, right - 30), right + 1) for y in changed.get(c, []))
print(x, (ys[0] + ys[-1]) // 2)
