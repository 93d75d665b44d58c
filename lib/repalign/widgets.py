"""Interactive explorers (ipywidgets) built on the same plotting code as the static figures.

Each explorer has a ``*_figure`` function that draws its default view without widgets: the book
shows that figure first, since sliders need a live kernel.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from . import _validate as v
from . import data, plots, profiles, theory

__all__ = ["EXPLORER_DEFAULTS", "explorer_figure", "theory_explorer", "gain_lr", "gain_figure", "gain_explorer"]

#: Default view: tau_y/tau_h = 2, the authors' two-point distances, a small initial scale.
EXPLORER_DEFAULTS = {
    "rate_h": 1.0,
    "rate_y": 0.5,
    "dx_sq": 1.0,
    "dy_target_sq": 0.5,
    "gain": 1e-2,
    "cos_angle": 0.0,
    "t_max": 40.0,
}

# Reference initial state multiplied by the gain as in App. A.5 (eq. 41): ||dh||^2 ~ G, ||dy||^2 ~ G^2.
_REF_DH_SQ, _REF_DY_SQ = 1.0, 0.3


def explorer_figure(*, fig=None, **params):
    """Draw the 3-D state, the loss and the predicted final distance for ``params``.

    Keyword arguments override :data:`EXPLORER_DEFAULTS`; ``gain`` scales a reference initial state
    (``||dh(0)||^2 = gain``, ``||dy(0)||^2 = 0.3 gain^2``) and ``cos_angle`` sets the angle between the
    initial output difference and the target difference.
    """
    unknown = set(params) - set(EXPLORER_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown parameter(s) {sorted(unknown)}; allowed: {sorted(EXPLORER_DEFAULTS)}")
    p = {**EXPLORER_DEFAULTS, **params}
    z0 = theory.initial_state(p["gain"] * _REF_DH_SQ, p["gain"] ** 2 * _REF_DY_SQ, p["cos_angle"],
                              dy_target_sq=p["dy_target_sq"])
    t = np.linspace(0.0, p["t_max"], 600)
    z = theory.solve(z0, t, rate_h=p["rate_h"], rate_y=p["rate_y"], dx_sq=p["dx_sq"], dy_target_sq=p["dy_target_sq"])
    final = theory.final_distance(z0[0], z0[1], rate_h=p["rate_h"], rate_y=p["rate_y"], dx_sq=p["dx_sq"],
                                  dy_target_sq=p["dy_target_sq"])
    if fig is None:
        fig = plt.figure(figsize=(10.5, 2.8))
    fig.clear()
    axes = fig.subplots(1, 4)
    plots.three_panel(t, z, axes=axes[:3])
    axes[0].axhline(float(final.distance), color=plots.COLORS["dh_sq"], lw=1, ls=":")
    plots.trajectory(t, theory.loss(t, z, rate_ybar=1.0, dy_target_sq=p["dy_target_sq"], offset_sq=0.0), "loss",
                     ax=axes[3])
    axes[3].set(xlabel=plots.LABELS["time"], ylabel=plots.LABELS["loss"])
    fig.suptitle(
        f"‖dh(∞)‖² = {float(final.distance):.3g}   "
        f"(A_high = {float(final.a_high):.3g}, A_low = {float(final.a_low):.3g})",
        fontsize=9,
    )
    return fig


def theory_explorer():
    """Sliders for the rates, distances, initial scale and output angle; redraws :func:`explorer_figure`.

    Needs a live Jupyter kernel with ipywidgets.
    """
    import ipywidgets as w
    from IPython.display import display

    d = EXPLORER_DEFAULTS
    log = dict(base=10, continuous_update=False, readout_format=".3g")
    controls = {
        "rate_h": w.FloatLogSlider(value=d["rate_h"], min=-2, max=1, description="1/τ_h", **log),
        "rate_y": w.FloatLogSlider(value=d["rate_y"], min=-2, max=1, description="1/τ_y", **log),
        "dx_sq": w.FloatSlider(value=d["dx_sq"], min=0.1, max=4.0, step=0.05, description="‖Δx‖²",
                               continuous_update=False),
        "dy_target_sq": w.FloatSlider(value=d["dy_target_sq"], min=0.0, max=4.0, step=0.05, description="‖Δy‖²",
                                      continuous_update=False),
        "gain": w.FloatLogSlider(value=d["gain"], min=-5, max=2, description="scale G", **log),
        "cos_angle": w.FloatSlider(value=d["cos_angle"], min=-1.0, max=1.0, step=0.05, description="cos∠(dy, Δy)",
                                   continuous_update=False),
        "t_max": w.FloatLogSlider(value=d["t_max"], min=0, max=4, description="t max", **log),
    }
    out = w.Output()

    def redraw(_=None):
        with out:
            out.clear_output(wait=True)
            fig = explorer_figure(**{k: c.value for k, c in controls.items()})
            display(fig)
            plt.close(fig)

    for c in controls.values():
        c.observe(redraw, names="value")
    redraw()
    return w.VBox([w.HBox(list(controls.values())[:4]), w.HBox(list(controls.values())[4:]), out])


def gain_lr(gain: float, profile: str | None = None) -> float:
    """Learning rate for the default network at initial gain ``gain``: Table 1's Fig. 3 rows and the
    default row, interpolated log-linearly in the gain (held constant outside 0.9-1.4), times the
    profile's width factor. Larger initial weights need smaller steps to train stably."""
    gain = float(v.positive("gain", gain))
    rows = [profiles.TABLE1[n] for n in ("low_initial_weights", "default", *profiles.GAIN_ROWS[1:])]
    g = np.array([r.gain for r in rows])
    lr = np.array([r.lr for r in rows])
    factor = profiles.architecture("default", profile).lr / profiles.TABLE1["default"].lr
    return float(np.exp(np.interp(gain, g, np.log(lr)))) * factor


def gain_figure(gain: float = 1.0, *, tau_y_over_tau_h: float | None = None, seed: int = 0, epochs: int | None = None,
                profile: str | None = None, fig=None):
    """Train the default network (as the profile runs it) at initial ``gain`` and draw the loss and
    ``||dh||^2`` against epochs: the plateau at ||Δy||²/8 and, with ``tau_y_over_tau_h`` (``tau_y/tau_h``), the
    final distance eq. (10) predicts from the run's own initial values. About a second in the quick profile.

    A run that diverges (:class:`repalign.train.TrainingDiverged`) is drawn up to its last finite record,
    with the epoch and loss of the divergence and the fix written on both panels and in the title
    (no prediction is drawn then); the figure's ``diverged`` attribute holds the exception, else None.
    """
    from dataclasses import replace

    from .train import TrainingDiverged, train

    arch = replace(profiles.architecture("default", profile), gain=float(v.positive("gain", gain)),
                   lr=gain_lr(gain, profile))
    if tau_y_over_tau_h is not None:
        rate_y = 1.0 / float(v.positive("tau_y_over_tau_h", tau_y_over_tau_h))
    d = data.two_point()
    try:
        rec, diverged = train(arch, d.x, d.y, seeds=(seed,), epochs=epochs, progress=False), None
    except TrainingDiverged as err:
        rec, diverged = err.recording, err
    if fig is None:
        fig = plt.figure(figsize=(9.0, 2.9))
    fig.clear()
    ax_loss, ax_dh = fig.subplots(1, 2)
    t = rec.epochs
    plots.loss_curve(t, rec.loss[0], plateau=d.dy_target_sq / 8, ax=ax_loss)
    ax_loss.set(xlabel=plots.LABELS["time"], ylabel=plots.LABELS["loss"])
    ax_loss.legend()
    plots.trajectory(t, rec.dh_sq[0], "dh_sq", kind="network", ax=ax_dh)
    title = f"gain {arch.gain:.3g}, η = {arch.lr:.3g}"
    if diverged is not None:
        note = (f"training diverged at epoch {diverged.epoch} (loss {diverged.loss:.3g}):\n"
                f"lower the gain or the learning rate")
        title += f" (diverged at epoch {diverged.epoch})"
        for ax in (ax_loss, ax_dh):
            ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center", va="center", fontsize=9,
                    color=plots.COLORS["accent"], bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
    elif tau_y_over_tau_h is not None:
        pred = theory.final_distance(rec.dh_sq[0, 0], rec.dy_sq[0, 0], rate_h=1.0, rate_y=rate_y, dx_sq=d.dx_sq,
                                     dy_target_sq=d.dy_target_sq)
        ax_dh.axhline(float(pred.distance), color=plots.COLORS["reference"], lw=1.0, ls="--", label="eq. (10)")
        ax_dh.axhline(float(pred.a_low), color=plots.COLORS["accent"], lw=1.0, ls=":", label="A_low (rich limit)")
        ax_dh.legend()
    ax_dh.set(xlabel=plots.LABELS["time"], ylabel=plots.LABELS["dh_sq"], ylim=(0, None))
    for ax in (ax_loss, ax_dh):
        ax.set_xscale("symlog", linthresh=10.0)
        ax.set_xlim(0, max(float(t[-1]), 1.0))  # a run that diverged at once has the single record 0
    fig.suptitle(title, fontsize=9)
    fig.diverged = diverged
    return fig


def gain_explorer(*, tau_y_over_tau_h: float | None = None, profile: str | None = None):
    """A gain slider that retrains the default network and redraws :func:`gain_figure` (live kernel)."""
    import ipywidgets as w
    from IPython.display import display

    slider = w.FloatSlider(value=1.0, min=0.5, max=1.6, step=0.05, description="gain", continuous_update=False)
    out = w.Output()

    def redraw(_=None):
        with out:
            out.clear_output(wait=True)
            fig = gain_figure(slider.value, tau_y_over_tau_h=tau_y_over_tau_h, profile=profile)
            display(fig)
            plt.close(fig)

    slider.observe(redraw, names="value")
    redraw()
    return w.VBox([slider, out])
