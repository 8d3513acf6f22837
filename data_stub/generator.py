"""Synthetic H&E nucleus patches in the real Kaggle layout.

How a patch is made (all in numpy, one small per-image random generator so that image ``i`` depends
only on ``(seed, split, i)``):

1. Two stain density maps, as a microscope sees them (Beer-Lambert): *eosin* (pink: cytoplasm,
   stroma, muscle fibres, with white gaps) and *haematoxylin* (purple: nuclei).
2. The centre nucleus is drawn with its class's size, shape, darkness and chromatin texture; the
   neighbours follow the class's arrangement (rows of ovals for normal epithelium, a crowd of big
   irregular nuclei for cancer, parallel cigars for muscle, clusters of small dark dots for immune
   cells), with a few nuclei of other kinds mixed in.
3. Each image gets its own stain colours and strengths (stain variation between slides), then blur
   and sensor noise.

The class parameters overlap on purpose: normal vs cancer epithelium is the hardest pair, and colour
statistics alone say little about the class (per-image stain variation is larger than the
difference the nuclei make), so a model has to look at shapes and texture.
"""
from __future__ import annotations

import numpy as np

SIZE = 100
CLASS_MIX = (0.098, 0.458, 0.088, 0.356)  # normal, cancer, muscle, immune (DATA_FACTS.md)

# Optical density of each stain per RGB channel (Ruifrok & Johnston style, tuned to the real means).
HAEMATOXYLIN = np.array([0.52, 0.88, 0.40], dtype=np.float32)
EOSIN = np.array([0.30, 0.72, 0.13], dtype=np.float32)
BACKGROUND_OD = np.array([0.05, 0.07, 0.03], dtype=np.float32)

H_BALANCE, E_BALANCE = 0.85, 1.0

_yy, _xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)


def _smoothing_matrix(n_in: int, sigma: float) -> np.ndarray:
    """(SIZE, n_in) matrix that resamples a length-n_in signal to SIZE points with a Gaussian kernel.

    ``M @ grid @ M.T`` upsamples and blurs a 2-D grid in two small matrix products, which is much
    faster than interpolating and then filtering a full image.
    """
    centres = np.linspace(0, n_in - 1, SIZE)[:, None]
    weights = np.exp(-0.5 * ((centres - np.arange(n_in)[None, :]) / sigma) ** 2)
    return (weights / weights.sum(1, keepdims=True)).astype(np.float32)


_MATRICES: dict = {}


def _smooth_field(rng: np.random.Generator, cells: int, sigma: float = 0.7) -> np.ndarray:
    """Zero-mean, unit-std random field whose blobs are about SIZE/cells pixels across."""
    key = (cells, sigma)
    if key not in _MATRICES:
        _MATRICES[key] = _smoothing_matrix(cells, sigma)
    m = _MATRICES[key]
    field = m @ rng.standard_normal((cells, cells), dtype=np.float32) @ m.T
    return (field - field.mean()) / (field.std() + 1e-6)


def _blur(rgb: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of an (H, W, 3) image as two matrix products (edges renormalised)."""
    offsets = np.arange(SIZE, dtype=np.float32)
    kernel = np.exp(-0.5 * ((offsets[:, None] - offsets[None, :]) / sigma) ** 2)
    kernel /= kernel.sum(1, keepdims=True)
    planes = kernel @ rgb.transpose(2, 0, 1) @ kernel.T
    return planes.transpose(1, 2, 0)


# --- class descriptions ---------------------------------------------------------------------------
# Each draws one nucleus of its kind: semi-axes a >= b (pixels), darkness (haematoxylin density),
# irregularity of the outline, chromatin coarseness, squareness of the ends, nucleoli, membrane rim.
# Normal and cancer epithelium overlap in every parameter: they are the hardest pair.

def _normal(rng):
    a = rng.uniform(11.0, 16.0)
    return {"a": a, "b": a * rng.uniform(0.55, 0.8), "dark": rng.uniform(0.5, 0.85),
            "irregular": rng.uniform(0.0, 0.08), "coarse": rng.uniform(0.1, 0.45),
            "square": 2.0, "nucleoli": int(rng.random() < 0.25), "rim": rng.uniform(0.1, 0.4)}


def _cancer(rng):
    a = rng.uniform(13.0, 20.0)
    return {"a": a, "b": a * rng.uniform(0.6, 0.95), "dark": rng.uniform(0.75, 1.2),
            "irregular": rng.uniform(0.03, 0.15), "coarse": rng.uniform(0.3, 0.75),
            "square": 2.0, "nucleoli": int(rng.integers(0, 3)), "rim": rng.uniform(0.15, 0.5)}


def _muscle(rng):
    return {"a": rng.uniform(20.0, 34.0), "b": rng.uniform(4.0, 6.5), "dark": rng.uniform(0.55, 0.9),
            "irregular": rng.uniform(0.0, 0.04), "coarse": rng.uniform(0.1, 0.3),
            "square": rng.uniform(2.6, 4.0), "nucleoli": 0, "rim": 0.0}


def _immune(rng):
    a = rng.uniform(6.5, 9.5)
    return {"a": a, "b": a * rng.uniform(0.85, 1.0), "dark": rng.uniform(0.85, 1.25),
            "irregular": rng.uniform(0.0, 0.05), "coarse": rng.uniform(0.05, 0.25),
            "square": 2.0, "nucleoli": 0, "rim": 0.0}


NUCLEUS_KINDS = (_normal, _cancer, _muscle, _immune)


def _draw_nucleus(h_map, texture, rng, cx, cy, angle, a, b, dark, irregular, coarse, square,
                  nucleoli, rim):
    """Adds one nucleus to the haematoxylin map (in place), drawn on its bounding box only."""
    reach = a * (1 + 2 * irregular) + 3
    x0, x1 = int(max(cx - reach, 0)), int(min(cx + reach + 1, SIZE))
    y0, y1 = int(max(cy - reach, 0)), int(min(cy + reach + 1, SIZE))
    if x0 >= x1 or y0 >= y1:
        return
    xx, yy = _xx[y0:y1, x0:x1], _yy[y0:y1, x0:x1]
    c, s = np.cos(angle), np.sin(angle)
    u, v = ((xx - cx) * c + (yy - cy) * s) / a, (-(xx - cx) * s + (yy - cy) * c) / b
    r = (np.abs(u) ** square + np.abs(v) ** square) ** (1.0 / square)
    # irregular outline: the boundary radius wobbles with a few low harmonics of the angle
    boundary = 1.0
    if irregular > 0:
        phi = np.arctan2(v, u)
        for k in (2, 3, 5):
            boundary = boundary + irregular * rng.uniform(0.3, 1.0) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    edge = np.clip((boundary - r) * b * 0.8 + 0.5, 0.0, 1.0)  # ~1 px soft edge
    # chromatin: even for smooth nuclei, clumped for coarse ones; a darker rim (nuclear membrane)
    inside = 1.0 + coarse * texture[y0:y1, x0:x1] + rim * np.clip(r / boundary - 0.7, 0, 0.3) / 0.3
    density = dark * edge * np.clip(inside, 0.25, None)
    for _ in range(nucleoli):  # nucleoli: small very dark dots inside big nuclei
        t, q = rng.uniform(-0.4, 0.4, size=2)
        nx, ny = cx + a * t * c - b * q * s, cy + a * t * s + b * q * c
        width = rng.uniform(1.0, 1.8)
        density += 0.8 * dark * edge * np.exp(-((xx - nx) ** 2 + (yy - ny) ** 2) / (2 * width ** 2))
    np.maximum(h_map[y0:y1, x0:x1], density, out=h_map[y0:y1, x0:x1])


def _around(rng, dist_low, dist_high):
    ang, dist = rng.uniform(0, 2 * np.pi), rng.uniform(dist_low, dist_high)
    return 50 + dist * np.cos(ang), 50 + dist * np.sin(ang)


def _neighbours(label, rng, centre, angle):
    """(position, angle, parameters) of the nuclei around the centre one, by the class's arrangement."""
    out = []
    if label == 0:  # gland lining: a row of similar ovals, side by side, all pointing the same way
        row = angle + np.pi / 2
        step = 2 * centre["b"] + rng.uniform(1.0, 4.0)
        for k in (-3, -2, -1, 1, 2, 3):
            x, y = 50 + k * step * np.cos(row), 50 + k * step * np.sin(row)
            out.append(((x + rng.normal(0, 1.5), y + rng.normal(0, 1.5)), angle + rng.normal(0, 0.15), _normal(rng)))
        if rng.random() < 0.5:  # often a second row further off
            shift = rng.uniform(30, 45) * rng.choice([-1, 1])
            for k in (-2, -1, 0, 1, 2):
                x = 50 + k * step * np.cos(row) + shift * np.cos(angle)
                y = 50 + k * step * np.sin(row) + shift * np.sin(angle)
                out.append(((x, y), angle + rng.normal(0, 0.2), _normal(rng)))
        n_other = rng.integers(0, 3)
    elif label == 1:  # crowded, overlapping big irregular nuclei in every direction
        for _ in range(rng.integers(4, 9)):
            out.append((_around(rng, 22, 48), rng.uniform(0, np.pi), _cancer(rng) if rng.random() < 0.75 else _normal(rng)))
        n_other = rng.integers(0, 2)
    elif label == 2:  # sparse parallel cigars along the fibres
        for _ in range(rng.integers(1, 4)):
            off, along = rng.uniform(14, 42) * rng.choice([-1, 1]), rng.uniform(-40, 40)
            pos = (50 + along * np.cos(angle) - off * np.sin(angle), 50 + along * np.sin(angle) + off * np.cos(angle))
            out.append((pos, angle + rng.normal(0, 0.1), _muscle(rng)))
        n_other = rng.integers(0, 3)
    else:  # a cluster of small dark round cells
        for _ in range(rng.integers(5, 12)):
            out.append((_around(rng, 16, 50), rng.uniform(0, np.pi), _immune(rng)))
        n_other = rng.integers(0, 3)
    for _ in range(n_other):  # tissue is mixed: nuclei of any kind around
        kind = rng.choice(4, p=CLASS_MIX)
        out.append((_around(rng, 28, 60), rng.uniform(0, np.pi), NUCLEUS_KINDS[kind](rng)))
    return out


def render_patch(label: int, rng: np.random.Generator) -> np.ndarray:
    """One 100x100 RGB uint8 patch of class ``label``."""
    angle = rng.uniform(0, np.pi)
    # eosin: textured pink tissue with white gaps (lumen, tears); muscle shows long parallel fibres
    tissue = _smooth_field(rng, 6)
    eosin = 0.5 + rng.uniform(0.08, 0.22) * tissue + 0.08 * _smooth_field(rng, 22) + 0.05 * _smooth_field(rng, 45)
    fibrous = 1.0 if label == 2 else rng.uniform(0.0, 0.6)
    v = -_xx * np.sin(angle) + _yy * np.cos(angle)
    eosin += 0.09 * fibrous * np.sin(2 * np.pi * v / rng.uniform(5.0, 9.0) + 4.0 * _smooth_field(rng, 5))
    gap_level = rng.uniform(-3.0, 0.0)  # how much white space this patch shows
    eosin *= np.clip((tissue - gap_level) * 1.2, 0.0, 1.0)

    # haematoxylin: the nuclei, neighbours first so the centre one lies on top
    haem = np.zeros((SIZE, SIZE), np.float32)
    texture = _smooth_field(rng, 30)
    centre = NUCLEUS_KINDS[label](rng)
    for (cx, cy), ang, params in _neighbours(label, rng, centre, angle):
        _draw_nucleus(haem, texture, rng, cx, cy, ang, **params)
    _draw_nucleus(haem, texture, rng, 50 + rng.normal(0, 1.5), 50 + rng.normal(0, 1.5), angle, **centre)
    haem += 0.08 * eosin  # haematoxylin counterstains the cytoplasm a little
    eosin = eosin * (1 - 0.4 * np.clip(haem, 0, 1))  # nuclei displace cytoplasm

    # per-slide stain colours and strengths, then optics: blur and sensor noise
    h_vec = HAEMATOXYLIN * rng.uniform(0.85, 1.15, 3).astype(np.float32)
    e_vec = EOSIN * rng.uniform(0.85, 1.15, 3).astype(np.float32)
    # Stain strengths are set so that the patch's overall amount of each stain is drawn the same way
    # for every class (partly: alpha < 1 keeps some of the real differences). Without this, "how
    # purple is the patch" alone would tell the classes apart, which the real data does not allow.
    h_strength = rng.uniform(0.12, 0.40) / (max(float(haem.mean()), 0.02) ** H_BALANCE * 0.25 ** (1 - H_BALANCE))
    e_strength = rng.uniform(0.2, 0.6) / (max(float(eosin.mean()), 0.05) ** E_BALANCE * 0.39 ** (1 - E_BALANCE))
    od = (h_strength * haem[..., None] * h_vec + e_strength * eosin[..., None] * e_vec
          + BACKGROUND_OD * rng.uniform(0.5, 1.5))
    rgb = _blur(np.exp(-od), rng.uniform(0.8, 1.5))
    # exposure and focus differ between scans: a random contrast, so the spread of colours in a
    # patch says little about its class either
    centre_colour = rgb.mean((0, 1))
    rgb = centre_colour + (rgb - centre_colour) * rng.uniform(0.7, 1.25)
    rgb += 0.012 * rng.standard_normal(rgb.shape, dtype=np.float32)
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator for one image: independent of how many images are made, or in what order."""
    return np.random.default_rng([seed, {"train": 1, "test": 2}[split], index])


def make_image(seed: int, split: str, index: int) -> tuple[int, np.ndarray]:
    """(label, RGB uint8 patch) of image ``index`` of ``split``.

    Run it under ``threadpoolctl.threadpool_limits(1)`` as make_stub does: its small matrix products
    are several times slower when BLAS spreads them over threads.
    """
    rng = image_rng(seed, split, index)
    label = int(rng.choice(4, p=CLASS_MIX))
    return label, render_patch(label, rng)
