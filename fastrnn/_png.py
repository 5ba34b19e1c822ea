"""A dependency-free PNG line plot: loss and accuracy against the update, side by side.

Plain NumPy rasterising and zlib encoding, so that ``fastrnn train`` can draw its curves with only
the runtime dependencies installed. Labels use a 5x7 glyph set of the characters they need.
"""
import struct
import zlib

import numpy as np

_GLYPHS = {  # 7 rows of 5 columns, '#' = ink
    '0': ['.###.', '#...#', '#..##', '#.#.#', '##..#', '#...#', '.###.'],
    '1': ['..#..', '.##..', '..#..', '..#..', '..#..', '..#..', '.###.'],
    '2': ['.###.', '#...#', '....#', '...#.', '..#..', '.#...', '#####'],
    '3': ['#####', '...#.', '..#..', '...#.', '....#', '#...#', '.###.'],
    '4': ['...#.', '..##.', '.#.#.', '#..#.', '#####', '...#.', '...#.'],
    '5': ['#####', '#....', '####.', '....#', '....#', '#...#', '.###.'],
    '6': ['..##.', '.#...', '#....', '####.', '#...#', '#...#', '.###.'],
    '7': ['#####', '....#', '...#.', '..#..', '.#...', '.#...', '.#...'],
    '8': ['.###.', '#...#', '#...#', '.###.', '#...#', '#...#', '.###.'],
    '9': ['.###.', '#...#', '#...#', '.####', '....#', '...#.', '.##..'],
    '.': ['.....', '.....', '.....', '.....', '.....', '.##..', '.##..'],
    '%': ['##...', '##..#', '...#.', '..#..', '.#...', '#..##', '...##'],
    '-': ['.....', '.....', '.....', '#####', '.....', '.....', '.....'],
    ' ': ['.....', '.....', '.....', '.....', '.....', '.....', '.....'],
    'A': ['.###.', '#...#', '#...#', '#####', '#...#', '#...#', '#...#'],
    'C': ['.###.', '#...#', '#....', '#....', '#....', '#...#', '.###.'],
    'E': ['#####', '#....', '#....', '####.', '#....', '#....', '#####'],
    'L': ['#....', '#....', '#....', '#....', '#....', '#....', '#####'],
    'O': ['.###.', '#...#', '#...#', '#...#', '#...#', '#...#', '.###.'],
    'P': ['####.', '#...#', '#...#', '####.', '#....', '#....', '#....'],
    'R': ['####.', '#...#', '#...#', '####.', '#.#..', '#..#.', '#...#'],
    'S': ['.####', '#....', '#....', '.###.', '....#', '....#', '####.'],
    'T': ['#####', '..#..', '..#..', '..#..', '..#..', '..#..', '..#..'],
    'U': ['#...#', '#...#', '#...#', '#...#', '#...#', '#...#', '.###.'],
    'Y': ['#...#', '#...#', '.#.#.', '..#..', '..#..', '..#..', '..#..'],
}


def _text(img, x, y, s, color, scale=2):
    for ch in s.upper():
        glyph = _GLYPHS.get(ch, _GLYPHS[" "])
        for r in range(7):
            for c in range(5):
                if glyph[r][c] == "#":
                    img[y + r * scale:y + (r + 1) * scale, x + c * scale:x + (c + 1) * scale] = color
        x += 6 * scale


def _line(img, x0, y0, x1, y1, color):
    n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.linspace(x0, x1, n).round().astype(int)
    ys = np.linspace(y0, y1, n).round().astype(int)
    ok = (ys >= 0) & (ys < img.shape[0]) & (xs >= 0) & (xs < img.shape[1])
    img[ys[ok], xs[ok]] = color
    img[np.clip(ys[ok] + 1, 0, img.shape[0] - 1), xs[ok]] = color


def _panel(img, x0, y0, w, h, xs, ys, title, lo, hi, label_fmt):
    black, grey, blue = (0, 0, 0), (200, 200, 200), (31, 119, 180)
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        gy = int(y0 + h - frac * h)
        img[gy, x0:x0 + w] = grey
    img[y0:y0 + h, x0] = black
    img[y0 + h, x0:x0 + w] = black
    _text(img, x0, y0 - 24, title, black)
    _text(img, x0 - 70, y0 - 4, label_fmt(hi), black)
    _text(img, x0 - 70, y0 + h - 10, label_fmt(lo), black)
    if len(xs) == 0:
        return
    span = max(xs[-1] - xs[0], 1)
    px = x0 + (np.asarray(xs, float) - xs[0]) / span * (w - 1)
    py = y0 + h - (np.clip(np.asarray(ys, float), lo, hi) - lo) / max(hi - lo, 1e-12) * h
    if len(px) == 1:
        img[int(py[0]) - 2:int(py[0]) + 3, int(px[0]) - 2:int(px[0]) + 3] = blue
    for i in range(len(px) - 1):
        _line(img, px[i], py[i], px[i + 1], py[i + 1], blue)
    _text(img, x0 + w - 150, y0 + h + 12, f"STEP {int(xs[-1])}", black)


def write_png(path, rgb):
    """Write an (H, W, 3) uint8 array as a PNG file."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[row].tobytes() for row in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def training_plot(path, loss, accuracy):
    """Loss per target (log scale) and accuracy (%) against the update number."""
    W, H = 1000, 420
    img = np.full((H, W, 3), 255, dtype=np.uint8)
    steps = np.arange(1, len(loss) + 1)
    lossv = np.maximum(np.asarray(loss, float), 1e-8)
    logl = np.log10(lossv)
    lo, hi = np.floor(logl.min()), np.ceil(logl.max()) if len(logl) else 1.0
    if hi <= lo:
        hi = lo + 1
    _panel(img, 90, 60, 380, 300, steps, logl, "LOSS", lo, hi, lambda v: f"{10 ** v:.0E}".replace("E-0", "E-").replace("E+0", "E"))
    acc_x = [a for a, _ in accuracy]
    acc_y = [100 * b for _, b in accuracy]
    _panel(img, 590, 60, 380, 300, acc_x, acc_y, "ACCURACY %", 0, 100, lambda v: f"{v:.0f}%")
    write_png(path, img)
    return path
