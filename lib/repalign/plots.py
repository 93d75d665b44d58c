"""The book's figure style: one colour per quantity everywhere, network solid, theory dashed.

Chapters never set fonts or sizes; they call these functions, which take ``ax=`` and return it.
The palette is Okabe-Ito (colour-blind safe).
"""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

__all__ = ["COLORS", "LABELS", "use_style", "trajectory", "loss_curve", "three_panel", "overlay", "quantity_legend",
           "identity_scatter", "distance_matrix", "stamp", "embedding_grid"]

#: One colour per quantity across the book.
COLORS = {
    "dh_sq": "#0072B2",  # blue
    "dy_sq": "#D55E00",  # vermillion
    "w": "#009E73",  # bluish green
    "loss": "#CC79A7",  # reddish purple
    "reference": "#555555",  # grey: limits, fixed points, identity lines
    "accent": "#E69F00",  # orange: a second reference
}

#: Axis labels: lowercase, quantity then symbol.
LABELS = {
    "dh_sq": "representational distance ‖dh‖²",
    "dy_sq": "output difference ‖dy‖²",
    "w": "output alignment w",
    "loss": "training loss L",
    "time": "time t (epochs)",
}

# The book shows a figure at the width of its text column (about 750 px; the image links to its full
# size) and draws the widest, 10.5 in, at 110 dpi: fonts of 10-11 pt stay about 10 px high on screen.
_STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "font.size": 11,
    "axes.titlesize": 11,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.8,
    "figure.constrained_layout.use": True,
}

# How each kind of curve is drawn: the "network" (or any simulated model) solid, the theory dashed.
_KIND = {"network": {"ls": "-", "alpha": 0.9}, "theory": {"ls": "--", "alpha": 1.0}}


def use_style() -> None:
    """Apply the book's matplotlib style (idempotent; called on import)."""
    mpl.rcParams.update(_STYLE)


use_style()


def trajectory(t, values, quantity: str, *, kind: str = "theory", ax=None, label: str | None = None, **kwargs):
    """Plot one quantity against time in its book colour; ``kind`` is ``"network"`` or ``"theory"``."""
    if quantity not in COLORS:
        raise ValueError(f"`quantity` must be one of {', '.join(COLORS)}; got {quantity!r}")
    if kind not in _KIND:
        raise ValueError(f"`kind` must be one of {', '.join(_KIND)}; got {kind!r}")
    ax = plt.gca() if ax is None else ax
    style = {"color": COLORS[quantity], **_KIND[kind], **kwargs}
    ax.plot(np.asarray(t), np.asarray(values), label=label, **style)
    return ax


def loss_curve(t, loss_network=None, loss_theory=None, *, plateau: float | None = None, ax=None,
               ylim: tuple[float, float] = (1e-6, 1.0), xscale: str = "linear"):
    """The training loss of a network (solid) and eq. (9) (dashed), log loss axis.

    Parameters
    ----------
    t : array_like, shape (n,)
        Times (epochs x learning rate).
    loss_network, loss_theory : array_like, shape (n,), optional
        The recorded loss of one trial and the theory's loss (:func:`repalign.theory.loss`); either
        may be omitted.
    plateau : float, optional
        Draw the plateau value (``dy_target_sq / 8`` for small weights) as a dotted line.
    ax : Axes, optional
    ylim : (float, float), default (1e-6, 1)
    xscale : {"linear", "log", "symlog"}, default "linear"
        ``"symlog"`` uses a linear stretch up to t = 10 and shows the whole run from t = 0.

    Returns
    -------
    Axes
    """
    if xscale not in ("linear", "log", "symlog"):
        raise ValueError(f"`xscale` must be 'linear', 'log' or 'symlog'; got {xscale!r}")
    ax = plt.gca() if ax is None else ax
    t = np.asarray(t)
    if loss_network is not None:
        trajectory(t, loss_network, "loss", kind="network", ax=ax, lw=3.0, alpha=0.45)
    if loss_theory is not None:
        trajectory(t, loss_theory, "loss", kind="theory", ax=ax, lw=1.4)
    if plateau is not None:
        ax.axhline(plateau, color=COLORS["reference"], ls=":", lw=1, label="plateau ‖Δy‖²/8")
    ax.set(yscale="log", ylim=ylim)
    if xscale == "symlog":
        ax.set_xscale("symlog", linthresh=10.0)
        ax.set_xlim(0, float(t[-1]))
    else:
        ax.set_xscale(xscale)
    return ax


def three_panel(t, z_theory, *, z_network=None, t_network=None, axes=None, network_label: str = "network",
                theory_label: str = "theory (eq. 7)"):
    """The three state variables ``dh_sq, dy_sq, w`` in three panels, model solid and theory dashed.

    Parameters
    ----------
    t : array_like, shape (n,)
    z_theory : array_like, shape (n, 3)
    z_network : array_like, shape (m, 3), optional
        A simulated model or trained network, drawn solid under the theory.
    t_network : array_like, shape (m,), optional
        Its times (default ``t``).
    axes : sequence of 3 Axes, optional
    """
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(9.5, 2.8))
    z_theory = np.asarray(z_theory)
    for i, (q, ax) in enumerate(zip(("dh_sq", "dy_sq", "w"), axes)):
        if z_network is not None:
            tn = t if t_network is None else t_network
            trajectory(tn, np.asarray(z_network)[:, i], q, kind="network", ax=ax, label=network_label,
                       lw=3.2, alpha=0.45)
        trajectory(t, z_theory[:, i], q, kind="theory", ax=ax, label=theory_label)
        ax.set_xlabel(LABELS["time"])
        ax.set_ylabel(LABELS[q])
    if z_network is not None:
        axes[0].legend()
    return axes


def overlay(t, z_network, z_theory, *, ax=None, title: str | None = None, log_time: bool = True):
    """``dh_sq, dy_sq, w`` of a network (solid) and the theory (dashed) on one axis, as in Fig. 2.

    ``log_time`` uses a symmetric-log time axis (linear below 10 epochs), which shows the plateau and
    the fast transition of the rich regime on one scale.
    """
    ax = plt.gca() if ax is None else ax
    z_network, z_theory = np.asarray(z_network), np.asarray(z_theory)
    for i, q in enumerate(("dh_sq", "dy_sq", "w")):
        trajectory(t, z_network[:, i], q, kind="network", ax=ax, lw=3.0, alpha=0.45)
        trajectory(t, z_theory[:, i], q, kind="theory", ax=ax, lw=1.4)
    if log_time:
        ax.set_xscale("symlog", linthresh=10.0)
        ax.set_xlim(0, float(np.max(t)))
    ax.axhline(0.0, color=COLORS["reference"], lw=0.5)
    if title:
        ax.set_title(title)
    return ax


def quantity_legend(ax, *, quantities=("dh_sq", "dy_sq", "w"), extra=(), loc="center") -> None:
    """A legend naming the quantities' colours and the two line styles, on a spare panel of a grid.

    ``extra`` adds ``(label, line kwargs)`` entries, e.g. a reference line.
    """
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=COLORS[q], lw=2.5, label=LABELS[q]) for q in quantities]
    handles += [Line2D([], [], color="k", lw=3.0, alpha=0.45, label="network (solid)"),
                Line2D([], [], color="k", lw=1.4, ls="--", label="theory, fitted rates (dashed)")]
    handles += [Line2D([], [], label=label, **kw) for label, kw in extra]
    ax.legend(handles=handles, loc=loc)
    ax.set_axis_off()


def identity_scatter(predicted, measured, *, ax=None, color=None, title: str | None = None, **kwargs):
    """Measured against predicted values with the identity line (Fig. 5): a dot per run.

    Both axes share one range starting at 0, so distance from the diagonal reads as error.
    """
    ax = plt.gca() if ax is None else ax
    predicted, measured = np.asarray(predicted, float), np.asarray(measured, float)
    top = 1.08 * float(max(predicted.max(initial=0.0), measured.max(initial=0.0), 1e-12))
    ax.plot([0, top], [0, top], color=COLORS["reference"], lw=0.8, ls="--", zorder=0)
    if "c" not in kwargs:  # a colour per point (``c=``, ``cmap=``) or one colour for all
        kwargs["color"] = color or COLORS["dh_sq"]
    ax.scatter(predicted, measured, s=kwargs.pop("s", 14), alpha=kwargs.pop("alpha", 0.75), lw=0, **kwargs)
    ax.set(xlim=(0, top), ylim=(0, top), aspect="equal")
    if title:
        ax.set_title(title)
    return ax


def distance_matrix(mean, *, sd=None, labels=None, ax=None, title: str | None = None, vmax: float | None = None,
                    fmt: str = ".3g"):
    """A pairwise distance matrix as a heatmap, each cell annotated with its value (and ``± sd``).

    ``vmax`` sets the top of the colour scale (default: the matrix's maximum), so two matrices
    drawn with the same ``vmax`` compare by colour.
    """
    ax = plt.gca() if ax is None else ax
    mean = np.asarray(mean, float)
    top = float(mean.max()) if vmax is None else float(vmax)
    ax.imshow(mean, cmap="Blues", vmin=0.0, vmax=top if top > 0 else 1.0)
    n = mean.shape[0]
    for i in range(n):
        for j in range(n):
            text = format(mean[i, j], fmt) + ("" if sd is None or i == j else f"\n±{format(sd[i, j], '.2g')}")
            ax.text(j, i, text, ha="center", va="center", fontsize="small",
                    color="white" if top > 0 and mean[i, j] > 0.6 * top else "black")
    labels = labels or [str(k) for k in range(n)]
    ax.set(xticks=range(n), yticks=range(n))
    ax.set_xticklabels(labels)
    ax.set_yticklabels(labels)
    ax.spines[:].set_visible(False)
    if title:
        ax.set_title(title)
    return ax


def stamp(fig, profile: str, seed: int | None = None) -> None:
    """Write the profile (and seed) in the figure's lower right corner, since captions are fixed text."""
    text = f"profile: {profile}" + ("" if seed is None else f" · seed: {seed}")
    engine = fig.get_layout_engine()
    if engine is not None and "rect" in engine.get():
        engine.set(rect=(0.0, 0.04, 1.0, 0.96))  # keep a strip below the axes for the stamp
    fig.text(0.995, 0.005, text, ha="right", va="bottom", fontsize=7, color=COLORS["reference"])


def embedding_grid(embeddings, colourings, *, row_labels=None, fig=None, size: float = 5.0,
                   view: tuple[float, float] = (20.0, -60.0)):
    """A grid of scatter plots: one row per embedding, one column per colouring, so each row shows one
    representation coloured by several variables (Figs. 8, 12, 15). Embeddings with three or more
    columns are drawn in 3-D (their first three coordinates, seen from ``view`` = (elevation,
    azimuth) in degrees), others in 2-D.

    Parameters
    ----------
    embeddings : sequence of array_like, each (n, >= 2)
    colourings : sequence of (title, values, cmap)
        ``values`` has one entry per point; ``cmap`` a matplotlib colormap name.
    row_labels : sequence of str, optional
    fig : Figure, optional
    size : float
        Marker size.

    Returns
    -------
    list of lists of Axes
    """
    embeddings = [np.asarray(e, float) for e in embeddings]
    n_rows, n_cols = len(embeddings), len(colourings)
    three = all(e.shape[1] >= 3 for e in embeddings)
    if fig is None:
        fig = plt.figure(figsize=(2.9 * n_cols, 2.7 * n_rows), layout="constrained")
    axes = [[fig.add_subplot(n_rows, n_cols, r * n_cols + c + 1, **({"projection": "3d"} if three else {}))
             for c in range(n_cols)] for r in range(n_rows)]
    for r, emb in enumerate(embeddings):
        for c, (title, values, cmap) in enumerate(colourings):
            ax = axes[r][c]
            coords = (emb[:, 0], emb[:, 1], emb[:, 2]) if three else (emb[:, 0], emb[:, 1])
            ax.scatter(*coords, c=values, cmap=cmap, s=size, lw=0, **({"depthshade": False} if three else {}))
            ax.set_xticks([])
            ax.set_yticks([])
            if three:
                ax.set_zticks([])
                ax.view_init(*view)
                ax.set_aspect("equal")  # one scale on all axes, so a collapsed direction looks collapsed
            else:
                ax.set_aspect("equal", adjustable="datalim")
            if r == 0:
                ax.set_title(title)
            if c == 0 and row_labels is not None:
                if three:
                    ax.text2D(-0.06, 0.5, row_labels[r], transform=ax.transAxes, rotation=90, va="center",
                              ha="center")
                else:
                    ax.set_ylabel(row_labels[r])
    return axes
