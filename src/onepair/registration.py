"""Registering and trimming two panels of a figure: the geometry behind :mod:`onepair.figures`.

:func:`register` finds the sub-pixel offset of an output panel against its
input panel (phase correlation on luminance, Hann window, upsampled DFT, the
cross-power spectrum divided by the square root of its magnitude);
:func:`shift_panel` undoes it; :func:`valid_span` says which input rows and
columns survive the offset; :func:`trim` keeps the largest clean rectangle
(no gutters, frames or labels: where a robust 5x5 linear filter fails to
predict the output from the input). The steps are described in
:mod:`onepair.figures`.
"""

from __future__ import annotations

import math

import numpy as np

from onepair.images import match_channels

KERNEL = 5  # size of the linear filter that predicts the output from the input


def _luminance(image: np.ndarray) -> np.ndarray:
    return match_channels(image, 1)[:, :, 0].astype(np.float64)


def register(
    x: np.ndarray, y: np.ndarray, k: int, upsample_factor: int
) -> tuple[np.ndarray, float]:
    """(dy, dx) in output pixels where ``y`` shows the origin of ``x`` brought to scale k,
    and the correlation of their luminances overlapped at that shift (how well they match).
    """
    from skimage.registration import phase_cross_correlation
    from skimage.transform import resize

    ref = _luminance(x)
    if k > 1:
        ref = resize(ref, (k * ref.shape[0], k * ref.shape[1]), order=3, mode="reflect")
    mov = _luminance(y)
    h, w = min(ref.shape[0], mov.shape[0]), min(ref.shape[1], mov.shape[1])
    window = np.outer(np.hanning(h), np.hanning(w))
    a, b = ref[:h, :w], mov[:h, :w]
    a, b = (a - a.mean()) * window, (b - b.mean()) * window
    fa, fb = np.fft.fft2(a), np.fft.fft2(b)
    power = np.abs(fa * np.conj(fb))
    fa /= np.sqrt(np.maximum(power, 1e-12 * power.max()))  # half-way to phase-only
    shift, _, _ = phase_cross_correlation(
        fa, fb, upsample_factor=upsample_factor, space="fourier", normalization=None
    )
    dy, dx = (int(round(-s)) for s in shift)
    a = ref[max(0, -dy) : mov.shape[0] - dy, max(0, -dx) : mov.shape[1] - dx]
    b = mov[max(0, dy) : max(0, dy) + a.shape[0], max(0, dx) : max(0, dx) + a.shape[1]]
    a = a[: b.shape[0], : b.shape[1]]
    score = np.corrcoef(a.ravel(), b.ravel())[0, 1] if min(a.shape) > 1 else 0.0
    return -np.asarray(shift, dtype=np.float64), float(np.nan_to_num(score))


def shift_panel(y: np.ndarray, offset: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``out[j, l] = y[j + dy, l + dx]`` on a grid of ``shape`` (cubic spline, edges nearest)."""
    from scipy.ndimage import map_coordinates

    grid = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    grid[0] += offset[0]
    grid[1] += offset[1]
    channels = [
        map_coordinates(y[:, :, c].astype(np.float64), grid, order=3, mode="nearest")
        for c in range(y.shape[2])
    ]
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0).astype(np.float32)


def valid_span(
    offset: np.ndarray, y_shape: tuple[int, int], k: int, size: tuple[int, int]
) -> list[tuple[int, int]]:
    """Input rows and columns [first, last) whose output pixels came from inside the panel."""
    spans = []
    for off, n_out, n_in in zip(offset, y_shape, size, strict=True):
        margin = 0.0 if abs(off - round(off)) < 1e-3 else 1.0  # spline edge support
        low, high = -off + margin, n_out - 1 - off - margin
        first = max(0, math.ceil(low / k - 1e-9))
        last = min(n_in, math.floor((high - k + 1) / k + 1e-9) + 1)
        if last - first < 1:
            raise ValueError(
                f"after registration (offset {off:+.2f} output pixels) the output panel covers "
                "none of the input panel; check that the boxes show the same image"
            )
        spans.append((first, last))
    return spans


def trim(
    x: np.ndarray, y: np.ndarray, k: int, rows: tuple[int, int], cols: tuple[int, int]
) -> tuple[tuple[int, int], tuple[int, int], float]:
    """The largest clean rectangle of input pixels, and R^2 of the linear prediction in it.

    Clean: inside the registered span, not in a near-uniform edge row or column
    of either panel, and not (within the edge band, a fifth of the size) where
    the smoothed residual of the linear prediction is an outlier (median + 8
    robust sigma, at least twice the median and 0.01), dilated by 4 pixels (the
    smoothing radius, and a margin for faint glyph edges).
    """
    from scipy.ndimage import binary_dilation, uniform_filter

    h, w = x.shape[:2]
    valid = np.zeros((h, w), bool)
    valid[rows[0] : rows[1], cols[0] : cols[1]] = True
    y_small = y.reshape(h, k, w, k, -1).mean(axis=(1, 3))
    for image in (x, y_small):
        valid = _strip_uniform(image, valid)
    x_up = _upscale(x, k)
    prediction = _predict(x_up, y, np.kron(valid, np.ones((k, k), bool)))
    error = ((y - prediction) ** 2).mean(axis=2).reshape(h, k, w, k).mean(axis=(1, 3))
    smooth = uniform_filter(np.sqrt(error), 5, mode="nearest")
    inside = smooth[valid]
    median = float(np.median(inside))
    sigma = 1.4826 * float(np.median(np.abs(inside - median)))
    rr, cc = np.nonzero(valid)
    top, bottom, left, right = rr.min(), rr.max() + 1, cc.min(), cc.max() + 1
    band_r, band_c = max(8, (bottom - top) // 5), max(8, (right - left) // 5)
    band = np.zeros((h, w), bool)
    band[top : top + band_r] = band[bottom - band_r : bottom] = True
    band[:, left : left + band_c] = band[:, right - band_c : right] = True
    bad = (smooth > max(median + 8 * sigma, 2 * median, 0.01)) & band
    clean = valid & ~binary_dilation(bad, iterations=4)
    (r0, r1), (c0, c1) = largest_rectangle(clean)
    if min(r1 - r0, c1 - c0) < 4:
        raise ValueError(
            f"no clean region of at least 4x4 pixels is left in the {h}x{w} input panel after "
            "trimming borders and labels; draw the boxes tighter around the panels"
        )
    truth = y[k * r0 : k * r1, k * c0 : k * c1]
    guess = prediction[k * r0 : k * r1, k * c0 : k * c1]
    total = float(((truth - truth.mean(axis=(0, 1))) ** 2).sum())
    r2 = 1.0 - float(((truth - guess) ** 2).sum()) / total if total > 0 else 1.0
    return (r0, r1), (c0, c1), r2


def _strip_uniform(image: np.ndarray, valid: np.ndarray, tol: float = 0.04) -> np.ndarray:
    """``valid``'s rectangle without edge rows/columns of near-constant colour.

    A row (column) is near-constant when 90% of its pixels lie within ``tol``
    of its median in every channel. Rows, columns, then rows again are
    stripped from each edge inwards, so a frame's corners do not hide it.
    """
    rr, cc = np.nonzero(valid)
    r0, r1, c0, c1 = rr.min(), rr.max() + 1, cc.min(), cc.max() + 1

    def flat(line: np.ndarray) -> bool:
        near = np.abs(line - np.median(line, axis=0)) <= tol
        return bool(near.all(axis=-1).mean() >= 0.9)

    for axis in (0, 1, 0):
        if axis == 0:
            while r1 - r0 > 1 and flat(image[r0, c0:c1]):
                r0 += 1
            while r1 - r0 > 1 and flat(image[r1 - 1, c0:c1]):
                r1 -= 1
        else:
            while c1 - c0 > 1 and flat(image[r0:r1, c0]):
                c0 += 1
            while c1 - c0 > 1 and flat(image[r0:r1, c1 - 1]):
                c1 -= 1
    kept = np.zeros_like(valid)
    kept[r0:r1, c0:c1] = True
    return valid & kept


def _upscale(x: np.ndarray, k: int) -> np.ndarray:
    if k == 1:
        return x
    from skimage.transform import resize

    shape = (k * x.shape[0], k * x.shape[1], x.shape[2])
    return resize(x, shape, order=3, mode="reflect", anti_aliasing=False).astype(np.float32)


def _predict(x: np.ndarray, y: np.ndarray, mask: np.ndarray, samples: int = 8_000) -> np.ndarray:
    """``y`` predicted from same-size ``x`` by a KERNEL x KERNEL filter per channel pair + bias.

    Least squares (normal equations, a tiny ridge) on up to ``samples`` pixels
    of ``mask``, refitted once without the pixels whose residual exceeds three times the median.
    """
    from scipy.ndimage import correlate

    pad = KERNEL // 2
    rr, cc = np.nonzero(mask)
    if rr.size > samples:
        keep = np.random.default_rng(0).choice(rr.size, samples, replace=False)
        rr, cc = rr[keep], cc[keep]
    padded = np.pad(x.astype(np.float64), ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    columns = [
        padded[rr + dy, cc + dx, c]
        for c in range(x.shape[2])
        for dy in range(KERNEL)
        for dx in range(KERNEL)
    ]
    a = np.stack(columns + [np.ones(rr.size)], axis=1)
    b = y[rr, cc].astype(np.float64)
    use = np.ones(rr.size, bool)
    for _ in range(2):
        gram = a[use].T @ a[use]
        ridge = 1e-6 * np.trace(gram) / len(gram) * np.eye(len(gram))  # flat panels stay solvable
        coef = np.linalg.solve(gram + ridge, a[use].T @ b[use])
        residual = np.sqrt(((a @ coef - b) ** 2).mean(axis=1))
        use = residual <= 3 * np.median(residual) + 1e-6
    weights = coef[:-1].reshape(x.shape[2], KERNEL, KERNEL, y.shape[2])
    out = np.empty(y.shape, np.float64)
    for o in range(y.shape[2]):
        out[:, :, o] = coef[-1, o] + sum(
            correlate(x[:, :, c].astype(np.float64), weights[c, :, :, o], mode="reflect")
            for c in range(x.shape[2])
        )
    return out.astype(np.float32)


def largest_rectangle(mask: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    """Rows and columns [first, last) of the largest all-True rectangle (histogram method)."""
    h, w = mask.shape
    heights = np.zeros(w + 1, int)  # a zero sentinel closes every run
    best, found = 0, ((0, 0), (0, 0))
    for r in range(h):
        heights[:w] = np.where(mask[r], heights[:w] + 1, 0)
        stack: list[tuple[int, int]] = []  # (start column, height), heights increasing
        for c, height in enumerate(heights.tolist()):
            start = c
            while stack and stack[-1][1] >= height:
                start, top = stack.pop()
                if top * (c - start) > best:
                    best, found = top * (c - start), ((r - top + 1, r + 1), (start, c))
            stack.append((start, height))
    return found
