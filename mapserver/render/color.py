"""Colour interpolation for ArcGIS ``algorithmic`` colour ramps: HSV, CIELab and LCh.

``esriHSVAlgorithm`` interpolates hue (the shorter way round), saturation and value;
``esriCIELabAlgorithm`` interpolates L*, a*, b* (D65, sRGB companding);
``esriLabLChAlgorithm`` interpolates lightness, chroma and hue (the shorter way) of the same
Lab colours. Alpha is interpolated linearly.
"""

from __future__ import annotations

import numpy as np
from matplotlib.colors import hsv_to_rgb, rgb_to_hsv

WHITE = np.array([0.95047, 1.0, 1.08883])  # D65
M_RGB_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                      [0.2126729, 0.7151522, 0.0721750],
                      [0.0193339, 0.1191920, 0.9503041]])
M_XYZ_RGB = np.linalg.inv(M_RGB_XYZ)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb, dtype=float)
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = lin @ M_RGB_XYZ.T / WHITE
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                     200 * (f[..., 1] - f[..., 2])], axis=-1)


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    lab = np.asarray(lab, dtype=float)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    xyz = np.where(f > 6 / 29, f ** 3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * WHITE
    lin = np.clip(xyz @ M_XYZ_RGB.T, 0, 1)
    rgb = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)
    return np.clip(rgb, 0, 1)


def _hue_lerp(h0: float, h1: float, t: np.ndarray, turn: float) -> np.ndarray:
    d = (h1 - h0) % turn
    if d > turn / 2:
        d -= turn
    return (h0 + d * t) % turn


def ramp_colors(a: tuple, b: tuple, algorithm: str, n: int) -> np.ndarray:
    """``n`` RGBA colours (0..1 floats) from ``a`` to ``b`` (0..1 RGBA tuples)."""
    t = np.linspace(0.0, 1.0, n)
    ca, cb = np.asarray(a[:3], dtype=float), np.asarray(b[:3], dtype=float)
    if algorithm == "esriHSVAlgorithm":
        ha, hb = rgb_to_hsv(ca), rgb_to_hsv(cb)
        # a grey has no hue: take the other end's, so the ramp does not swing through red
        if ha[1] == 0:
            ha[0] = hb[0]
        if hb[1] == 0:
            hb[0] = ha[0]
        hsv = np.column_stack([_hue_lerp(ha[0], hb[0], t, 1.0),
                               ha[1] + (hb[1] - ha[1]) * t, ha[2] + (hb[2] - ha[2]) * t])
        rgb = hsv_to_rgb(hsv)
    elif algorithm == "esriCIELabAlgorithm":
        la, lb = srgb_to_lab(ca), srgb_to_lab(cb)
        rgb = lab_to_srgb(la[None, :] + (lb - la)[None, :] * t[:, None])
    elif algorithm == "esriLabLChAlgorithm":
        la, lb = srgb_to_lab(ca), srgb_to_lab(cb)
        c0, c1 = np.hypot(la[1], la[2]), np.hypot(lb[1], lb[2])
        h0, h1 = np.arctan2(la[2], la[1]), np.arctan2(lb[2], lb[1])
        if c0 < 1e-6:
            h0 = h1
        if c1 < 1e-6:
            h1 = h0
        h = _hue_lerp(h0, h1, t, 2 * np.pi)
        c = c0 + (c1 - c0) * t
        lab = np.column_stack([la[0] + (lb[0] - la[0]) * t, c * np.cos(h), c * np.sin(h)])
        rgb = lab_to_srgb(lab)
    else:
        raise ValueError(f"unknown algorithm {algorithm!r}")
    alpha = a[3] + (b[3] - a[3]) * t
    return np.column_stack([rgb, alpha])
