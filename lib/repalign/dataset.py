"""The one dataset type of the package: :class:`Dataset`, inputs ``x``, targets ``y`` and named extras.

Every loader of :mod:`repalign.data` returns a :class:`Dataset`. ``x, y = ds`` unpacks it, and the
extras a dataset carries (the two-point distances, the blob task's contexts and centres, the MNIST
images and labels, ...) are read as attributes (``ds.dx_sq``, ``ds.labels``) from :attr:`Dataset.meta`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = ["Dataset"]


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Inputs, targets and metadata of one dataset (arrays read-only).

    Attributes
    ----------
    x : numpy.ndarray, shape (n_points, input_dim)
        The inputs the networks are trained on.
    y : numpy.ndarray, shape (n_points, output_dim)
        The targets.
    name : str
        Which dataset (``"two_point"``, ``"xor"``, ``"blobs"``, ``"mnist"``).
    meta : Mapping
        Further fields of this dataset, each also readable as an attribute (``ds.meta["labels"]`` is
        ``ds.labels``); see the loader's docstring for what it puts here.

    Examples
    --------
    >>> ds = Dataset(np.zeros((2, 1)), np.ones((2, 1)), "demo", {"note": "two points"})
    >>> x, y = ds
    >>> len(ds), x.shape, ds.note
    (2, (2, 1), 'two points')
    """

    x: np.ndarray
    y: np.ndarray
    name: str
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.x.ndim != 2 or self.y.ndim != 2 or self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"`x` and `y` must be 2-D with one row per point, got shapes {self.x.shape} "
                             f"and {self.y.shape}")
        clash = set(self.meta) & {"x", "y", "name", "meta"}
        if clash:
            raise ValueError(f"`meta` must not redefine the fields {sorted(clash)}")
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    def __getattr__(self, key: str):
        if key.startswith("__") or key == "meta":  # copy/pickle probe before ``meta`` exists
            raise AttributeError(key)
        try:
            return self.meta[key]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} {self.name!r} has no field {key!r} "
                                 f"(fields: x, y, name, {', '.join(self.meta)})") from None

    def __iter__(self) -> Iterator[np.ndarray]:
        """``x, y = ds``."""
        return iter((self.x, self.y))

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __repr__(self) -> str:
        scalars = ", ".join(f"{k}={v!r}" for k, v in self.meta.items() if isinstance(v, (str, int, float)))
        return (f"Dataset({self.name!r}, n={len(self)}, x={tuple(self.x.shape)}, y={tuple(self.y.shape)}"
                + (f", {scalars}" if scalars else "") + ")")


def read_only(*arrays: np.ndarray) -> None:
    """Mark ``arrays`` read-only in place."""
    for a in arrays:
        a.flags.writeable = False
