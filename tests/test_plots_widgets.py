"""plots and widgets: the shared figure style and the explorer's static view."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from repalign import plots, theory, widgets


def test_every_quantity_keeps_its_colour_and_kind_sets_the_line_style():
    fig, ax = plt.subplots()
    plots.trajectory([0, 1], [1, 2], "dh_sq", kind="network", ax=ax)
    plots.trajectory([0, 1], [1, 2], "dh_sq", kind="theory", ax=ax)
    solid, dashed = ax.get_lines()
    assert solid.get_color() == dashed.get_color() == plots.COLORS["dh_sq"]
    assert solid.get_linestyle() == "-" and dashed.get_linestyle() == "--"
    plt.close(fig)


@pytest.mark.parametrize("kwargs, match", [(dict(quantity="energy"), "`quantity`"), (dict(kind="fit"), "`kind`")])
def test_trajectory_rejects_unknown_names(kwargs, match):
    args = dict(quantity="w", kind="theory") | kwargs
    with pytest.raises(ValueError, match=match):
        plots.trajectory([0, 1], [0, 1], args.pop("quantity"), **args)


def test_stamp_writes_profile_and_seed():
    fig, _ = plt.subplots()
    plots.stamp(fig, "quick", 7)
    assert any(t.get_text() == "profile: quick · seed: 7" for t in fig.texts)
    plt.close(fig)


def test_explorer_figure_draws_the_theory_and_marks_the_final_distance():
    fig = widgets.explorer_figure(gain=1e-3)
    axes = fig.axes
    assert len(axes) == 4
    d = widgets.EXPLORER_DEFAULTS
    z0 = theory.initial_state(1e-3, 0.3e-6, d["cos_angle"], dy_target_sq=d["dy_target_sq"])
    expected = float(theory.final_distance(z0[0], z0[1], rate_h=d["rate_h"], rate_y=d["rate_y"], dx_sq=d["dx_sq"],
                                           dy_target_sq=d["dy_target_sq"]).distance)
    marker = [line for line in axes[0].get_lines() if line.get_linestyle() == ":"][0]
    assert np.allclose(marker.get_ydata(), expected)
    plt.close(fig)


def test_explorer_rejects_unknown_parameters():
    with pytest.raises(TypeError, match="unknown parameter"):
        widgets.explorer_figure(learning_rate=0.1)


def test_theory_explorer_builds_its_controls():
    ui = widgets.theory_explorer()
    sliders = [c for row in ui.children[:2] for c in row.children]
    assert {s.description for s in sliders} >= {"1/τ_h", "1/τ_y", "scale G"}
    plt.close("all")


def test_overlay_draws_network_solid_and_theory_dashed_per_quantity():
    fig, axes = plt.subplots(1, 2)
    t = np.arange(100.0)
    z = np.column_stack([t, 2 * t, -t])
    plots.overlay(t, z, 0.9 * z, ax=axes[0], title="x")
    lines = axes[0].get_lines()[:6]
    for q, (net, th) in zip(("dh_sq", "dy_sq", "w"), zip(lines[::2], lines[1::2])):
        assert net.get_color() == th.get_color() == plots.COLORS[q]
        assert net.get_linestyle() == "-" and th.get_linestyle() == "--"
    assert axes[0].get_xscale() == "symlog"
    plots.quantity_legend(axes[1], quantities=("loss",), extra=[("ref", {"ls": ":"})])
    texts = [t.get_text() for t in axes[1].get_legend().get_texts()]
    assert texts[0] == plots.LABELS["loss"] and texts[-1] == "ref"
    plt.close(fig)


def test_identity_scatter_shares_one_range_from_zero():
    fig, ax = plt.subplots()
    plots.identity_scatter([0.1, 0.2], [0.15, 0.4], ax=ax)
    assert ax.get_xlim() == ax.get_ylim() and ax.get_xlim()[0] == 0 and ax.get_xlim()[1] >= 0.4
    plt.close(fig)


def test_gain_lr_interpolates_table1_and_applies_the_profile_factor():
    from repalign import profiles
    for name in ("low_initial_weights", "default", "very_high_initial_weights"):
        row = profiles.TABLE1[name]
        assert widgets.gain_lr(row.gain, "paper") == pytest.approx(row.lr)
        assert widgets.gain_lr(row.gain, "quick") == pytest.approx(5 * row.lr)
    assert profiles.TABLE1["default"].lr > widgets.gain_lr(1.05, "paper") > profiles.TABLE1["intermediate_initial_weights"].lr
    with pytest.raises(ValueError, match="`gain`"):
        widgets.gain_lr(0.0)


def test_gain_figure_trains_and_marks_the_prediction():
    fig = widgets.gain_figure(1.0, tau_y_over_tau_h=0.02, epochs=300, profile="quick")
    ax_loss, ax_dh = fig.axes
    assert len(ax_dh.get_lines()) == 3  # the network, eq. (10), A_low
    plt.close(fig)
    with pytest.raises(ValueError, match="`tau_y_over_tau_h`"):
        widgets.gain_figure(1.0, tau_y_over_tau_h=-1.0, epochs=10, profile="quick")


@pytest.mark.parametrize("gain", [3.0, 100.0])  # diverges after one step / at the very first record
def test_gain_figure_of_a_diverging_run_says_so(gain):
    fig = widgets.gain_figure(gain, tau_y_over_tau_h=0.02, epochs=50, profile="quick")
    assert fig.diverged is not None
    note = f"training diverged at epoch {fig.diverged.epoch} (loss {fig.diverged.loss:.3g})"
    for ax in fig.axes:
        assert any(note in t.get_text() and "lower the gain or the learning rate" in t.get_text() for t in ax.texts)
    assert f"diverged at epoch {fig.diverged.epoch}" in fig._suptitle.get_text()
    assert len(fig.axes[1].get_lines()) == 1  # the network's curve only: no prediction from non-finite values
    plt.close(fig)
    assert widgets.gain_figure(1.0, epochs=20, profile="quick").diverged is None


def test_distance_matrix_annotates_every_cell():
    fig, ax = plt.subplots()
    m = np.array([[0.0, 1.0], [1.0, 0.0]])
    plots.distance_matrix(m, sd=np.full((2, 2), 0.1), labels=["a", "b"], ax=ax, vmax=2.0)
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 4 and texts[1] == "1\n±0.1" and texts[0] == "0"
    assert ax.images[0].get_clim() == (0.0, 2.0)
    plt.close(fig)


@pytest.mark.parametrize("dims", [2, 3])
def test_embedding_grid_draws_one_panel_per_embedding_and_colouring(dims):
    rng = np.random.default_rng(0)
    embs = [rng.normal(size=(20, dims)) for _ in range(2)]
    colourings = [("a", np.arange(20), "viridis"), ("b", np.arange(20) % 2, "coolwarm"), ("c", -np.arange(20), "plasma")]
    axes = plots.embedding_grid(embs, colourings, row_labels=["first", "second"])
    assert len(axes) == 2 and all(len(row) == 3 for row in axes)
    assert [ax.get_title() for ax in axes[0]] == ["a", "b", "c"]
    assert (axes[0][0].name == "3d") == (dims == 3)
    plt.close("all")
