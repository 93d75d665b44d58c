"""Datasets of the experiments: the two-point dataset of the paper's App. B.1, XOR (Sec. 4.4) and the
Gaussian-blob context task of Sec. 4.5 (App. B.3). MNIST (Sec. 4.6) is :func:`mnist`, the real files
(:mod:`repalign._mnist`). Every loader returns the one dataset type, :class:`~repalign.dataset.Dataset`
(``x, y = ds`` unpacks it; the extras are attributes).

The released code, which made the published figures, places the points at inputs -1 and 0 and targets
0.6 and 0.6 + sqrt(0.5), so ``||x2-x1||^2 = 1`` and ``||y2-y1||^2 = 0.5``; the App. B.1 text says
``dx = 0.5, dy = 1``. The defaults follow the code (:data:`repalign.profiles.TWO_POINT`).
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax

from . import _validate as v
from ._mnist import MNISTChecksumError, MNISTUnavailableError, mnist
from .dataset import Dataset, read_only
from .profiles import TWO_POINT

__all__ = ["Dataset", "two_point", "xor", "XOR_LABELS", "blobs", "mnist", "MNISTUnavailableError",
           "MNISTChecksumError"]

#: The four XOR inputs, in the order of :func:`xor`.
XOR_LABELS = ("(0,0)", "(0,1)", "(1,0)", "(1,1)")


def two_point(
    dx_sq: float = TWO_POINT["dx_sq"],
    dy_target_sq: float = TWO_POINT["dy_target_sq"],
    *,
    x1: float = TWO_POINT["x1"],
    y1: float = TWO_POINT["y1"],
    input_dim: int = 1,
    output_dim: int = 1,
) -> Dataset:
    """The two-point dataset at squared input distance ``dx_sq`` and target distance ``dy_target_sq``.

    Every coordinate of ``x1`` equals ``x1`` and ``x2 = x1 + sqrt(dx_sq / input_dim)`` in every
    coordinate, so ``||x2 - x1||^2 = dx_sq`` for any ``input_dim``; the targets are built the same way.
    With the defaults this is the dataset of the released code: inputs -1, 0 and targets 0.6,
    0.6 + sqrt(0.5).

    Parameters
    ----------
    dx_sq : float, optional
        Squared input distance ``||x2 - x1||^2`` (> 0). Default 1.0.
    dy_target_sq : float, optional
        Squared target distance ``||y2 - y1||^2`` (>= 0; 0 gives identical targets). Default 0.5.
    x1, y1 : float, keyword-only
        Every coordinate of the first input and of the first target. Defaults -1.0 and 0.6.
    input_dim, output_dim : int, keyword-only
        Dimensions of the inputs and targets (>= 1). Default 1.

    Returns
    -------
    Dataset
        ``x`` of shape (2, input_dim) (``x1`` in row 0, ``x2`` in row 1), ``y`` of shape (2, output_dim),
        and the two distances as ``dx_sq`` (``||x2 - x1||^2``) and ``dy_target_sq`` (``||y2 - y1||^2``).

    Raises
    ------
    ValueError
        If ``dx_sq <= 0``, ``dy_target_sq < 0``, ``x1`` or ``y1`` is not finite, a dimension is < 1, or
        a distance is too small for float64 points next to ``x1`` (``y1``) to carry it to 1e-6 (about
        ``dim * (1e6 * spacing(max(|x1|, 1)))**2``, 5e-20 for the defaults).

    References
    ----------
    van Rossem & Saxe (2024), App. B.1 ("Dataset"); Fig. 5 varies ``dx_sq`` and ``dy_target_sq``.

    Examples
    --------
    >>> d = two_point()
    >>> d.x.ravel().tolist(), round(float(d.y[1, 0] - d.y[0, 0]) ** 2, 12)
    ([-1.0, 0.0], 0.5)
    """
    dx_sq = float(v.positive("dx_sq", dx_sq))
    dy_target_sq = float(v.non_negative("dy_target_sq", dy_target_sq))
    x1 = float(v.finite_array("x1", x1, ndim=0))
    y1 = float(v.finite_array("y1", y1, ndim=0))
    input_dim, output_dim = v.integer("input_dim", input_dim), v.integer("output_dim", output_dim)
    x = np.full((2, input_dim), x1)
    x[1] += np.sqrt(dx_sq / input_dim)
    y = np.full((2, output_dim), y1)
    y[1] += np.sqrt(dy_target_sq / output_dim)
    for name, value, pts, start in (("dx_sq", dx_sq, x, x1), ("dy_target_sq", dy_target_sq, y, y1)):
        got = float(np.sum((pts[1] - pts[0]) ** 2))
        # below `smallest`, rounding the second point next to `start` can change the distance by > 1e-6
        smallest = pts.shape[1] * (1e6 * np.spacing(max(abs(start), 1.0))) ** 2
        if value > 0 and (value < smallest or not abs(got - value) <= 1e-6 * value):
            raise ValueError(f"`{name}` = {value!r} is below float64's resolution next to {start!r} (the points "
                             f"would be {got!r} apart); use `{name}` >= {smallest:.3g}")
    read_only(x, y)
    return Dataset(x, y, "two_point", {"dx_sq": dx_sq, "dy_target_sq": dy_target_sq})


def xor() -> Dataset:
    """The XOR task of Sec. 4.4: inputs (0,0), (0,1), (1,0), (1,1) unnormalised, targets 0, 1, 1, 0.

    Returns
    -------
    Dataset
        Read-only ``x`` of shape (4, 2) and ``y`` of shape (4, 1), as the released code; ``labels``
        names the inputs (:data:`XOR_LABELS`).

    Examples
    --------
    >>> x, y = xor()
    >>> y.ravel().tolist()
    [0.0, 1.0, 1.0, 0.0]
    """
    x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([[0.0], [1.0], [1.0], [0.0]])
    read_only(x, y)
    return Dataset(x, y, "xor", {"labels": XOR_LABELS})


def blobs(n_centres: int = 30, pixels: int = 5, *, variance: float = 1.0) -> Dataset:
    """The 2 x ``n_centres`` x ``n_centres`` Gaussian-blob images of the feature-collapse task.

    Pixels sit on ``linspace(-1, 1, pixels)`` in each axis and blob centres on ``linspace(-1, 1,
    n_centres)``. Pixel ``(x, y)`` of the blob at ``(mu_x, mu_y)`` is ``exp(-((x - mu_x)^2 + (y -
    mu_y)^2) / (2 variance))``, and each image is divided by its own sum -- the released code's
    construction (``variance = 1``). A one-hot context is appended: ``[1, 0]`` asks for ``mu_x``,
    ``[0, 1]`` for ``mu_y``. The defaults give the paper's 1800 points of 27 inputs.

    Parameters
    ----------
    n_centres : int, optional
        Blob positions per axis (>= 2). Default 30.
    pixels : int, optional
        Image side in pixels (>= 2). Default 5.
    variance : float, keyword-only
        Variance of the Gaussian blob in the units of the pixel grid (> 0). Default 1.

    Returns
    -------
    Dataset
        Every array read-only. Points are ordered context by context (context 0 first), and within a
        context ``mu_x`` varies slowest: point ``c * n**2 + a * n + b`` has context ``c``,
        ``mu_x = centres[a]``, ``mu_y = centres[b]``.

        - ``x`` (2 n^2, pixels^2 + 2): the flattened image (row = y coordinate, column = x
          coordinate) followed by the one-hot context;
        - ``y`` (2 n^2, 1): the target, ``mu_x`` in context 0, ``mu_y`` in context 1;
        - ``images`` (2 n^2, pixels, pixels); ``context`` (2 n^2,) of int;
        - ``mu_x``, ``mu_y`` (2 n^2,): the blob's centre;
        - ``relevant``, ``irrelevant`` (2 n^2,): the feature the context asks for (``mu_x`` in
          context 0, ``mu_y`` in context 1) and the other one;
        - ``centres`` (n,): the centre positions along each axis.

    Raises
    ------
    ValueError
        If ``n_centres`` or ``pixels`` is not an integer >= 2, or ``variance <= 0``.

    References
    ----------
    van Rossem & Saxe (2024), Sec. 4.5, Fig. 7 and App. B.3; Flesch et al. (2022).

    Examples
    --------
    >>> d = blobs()
    >>> d.x.shape, d.y.shape, round(float(d.images[0].sum()), 12)
    ((1800, 27), (1800, 1), 1.0)
    >>> d.context[[0, 1799]].tolist(), d.x[1799, -2:].tolist()
    ([0, 1], [0.0, 1.0])
    """
    n = v.integer("n_centres", n_centres)
    p = v.integer("pixels", pixels)
    if n < 2:
        raise ValueError(f"`n_centres` must be an integer >= 2, got {n_centres!r}")
    if p < 2:
        raise ValueError(f"`pixels` must be an integer >= 2, got {pixels!r}")
    variance = float(v.positive("variance", variance))
    centres = np.linspace(-1.0, 1.0, n)
    grid = np.linspace(-1.0, 1.0, p)
    mx, my = (a.ravel() for a in np.meshgrid(centres, centres, indexing="ij"))  # mu_x varies slowest
    # exp(-r^2 / (2 variance)) / sum, as a softmax (shifted by its maximum) so that a small variance does
    # not underflow every pixel to 0 and divide 0 by 0
    img = softmax(-((grid[None, None, :] - mx[:, None, None]) ** 2 + (grid[None, :, None] - my[:, None, None]) ** 2)
                  / (2.0 * variance), axis=(1, 2))  # [point, row (y), column (x)]
    m = n * n
    context = np.repeat([0, 1], m)
    onehot = np.eye(2)[context]
    images = np.concatenate([img, img])
    x = np.hstack([images.reshape(2 * m, p * p), onehot])
    mu_x, mu_y = np.tile(mx, 2), np.tile(my, 2)
    relevant = np.where(context == 0, mu_x, mu_y)
    irrelevant = np.where(context == 0, mu_y, mu_x)
    y = relevant[:, None].copy()
    meta = dict(images=images, context=context, mu_x=mu_x, mu_y=mu_y, relevant=relevant, irrelevant=irrelevant,
                centres=centres)
    read_only(x, y, *meta.values())
    return Dataset(x, y, "blobs", meta)
