"""Data that ships or is generated here: scikit-learn's digits, the rendered `shapes` orientation task."""
import math
from pathlib import Path

import numpy as np

from improve.data.sources.base import Items, Raw, Source


# ---------------------------------------------------------------- digits
def digits_source(ds, root: Path) -> Source:
    import sklearn
    from sklearn.datasets import load_digits

    def load() -> Raw:
        bunch = load_digits()
        images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
        return Raw(train=Items(labels=bunch.target.astype(np.int64), images=images))

    return Source(key={"sklearn": sklearn.__version__}, class_names=[str(i) for i in range(10)], load=load,
                  native_channels=1)


# ---------------------------------------------------------------- shapes (generated)
# Mirror-symmetric shapes with no rotational symmetry: their orientation is defined over 360 degrees,
# and a horizontal flip maps orientation t (0 = up) to -t, i.e. to another class.
_SHAPES = {
    "arrow": [(0.0, 1.0), (0.6, 0.2), (0.22, 0.2), (0.22, -1.0), (-0.22, -1.0), (-0.22, 0.2), (-0.6, 0.2)],
    "triangle": [(0.0, 1.0), (0.5, -0.8), (-0.5, -0.8)],
    "tee": [(-0.8, 1.0), (0.8, 1.0), (0.8, 0.55), (0.2, 0.55), (0.2, -1.0), (-0.2, -1.0), (-0.2, 0.55), (-0.8, 0.55)],
}


def draw_outline(points, size: int, angle_deg: float, scale: float, dx: float, dy: float, fill=255, background=0,
                 mode: str = "L"):
    """A PIL image of one filled outline (points in [-1, 1], y up) on a plain background, rotated counter-clockwise
    by `angle_deg`, scaled and moved by (dx, dy) in half-widths, antialiased by 4x supersampling."""
    from PIL import Image, ImageDraw

    ss = 4  # supersampling factor
    canvas = Image.new(mode, (size * ss, size * ss), background)
    t = math.radians(angle_deg)
    c, s = math.cos(t), math.sin(t)
    half = size * ss / 2
    pts = []
    for x, y in points:
        rx, ry = x * c - y * s, x * s + y * c  # rotate counter-clockwise in a y-up frame
        pts.append((half + (rx * scale + dx) * half, half - (ry * scale + dy) * half))
    ImageDraw.Draw(canvas).polygon(pts, fill=fill)
    return canvas.resize((size, size), Image.BILINEAR)


def render_shape(shape: str, angle_deg: float, size: int, scale: float, dx: float, dy: float) -> np.ndarray:
    """Draw one white shape on black, pointing at `angle_deg` (0 = up, counter-clockwise), antialiased."""
    return np.asarray(draw_outline(_SHAPES[shape], size, angle_deg, scale, dx, dy), dtype=np.uint8)


def shapes_source(ds, root: Path) -> Source:
    k, n, size, seed, noise = ds.classes, ds.samples_per_class, ds.native_size, ds.seed, ds.noise
    width = 360.0 / k

    def load() -> Raw:
        rng = np.random.default_rng(seed)
        names = sorted(_SHAPES)
        images = np.empty((k * n, size, size), np.uint8)
        labels = np.repeat(np.arange(k), n)
        for i, label in enumerate(labels):
            angle = label * width + rng.uniform(-0.45, 0.45) * width
            img = render_shape(names[rng.integers(len(names))], angle, size, scale=rng.uniform(0.3, 0.75),
                               dx=rng.uniform(-0.25, 0.25), dy=rng.uniform(-0.25, 0.25)).astype(np.float32)
            img += rng.normal(0.0, 255 * noise, img.shape)
            images[i] = np.clip(img, 0, 255).astype(np.uint8)
        return Raw(train=Items(labels=labels.astype(np.int64), images=images))

    names = [f"{round(i * width) % 360}deg" for i in range(k)]
    return Source(key={"classes": k, "n": n, "size": size, "seed": seed, "noise": noise, "version": 2}, class_names=names,
                  load=load, native_channels=1)
