"""experiments: one-call two-point runs, the plateau measure and the summary table; profiles.architecture."""

from dataclasses import replace

import numpy as np
import pytest

from repalign import data, experiments, fit, profiles, train


def test_architecture_paper_is_table1_and_quick_is_documented_reduction():
    for name, row in profiles.TABLE1.items():
        assert profiles.architecture(name, "paper") == row
    q, p = profiles.architecture("default", "quick"), profiles.TABLE1["default"]
    assert (q.width, q.epochs) == (100, 3000) and q.lr == pytest.approx(5 * p.lr)
    assert (q.gain, q.hidden_layers, q.activation) == (p.gain, p.hidden_layers, p.activation)
    assert profiles.architecture("shallow", "quick") == profiles.TABLE1["shallow"]
    with pytest.raises(ValueError, match="`name` must be one of"):
        profiles.architecture("resnet", "quick")
    with pytest.raises(ValueError, match="`profile` must be one of"):
        profiles.architecture("default", "fast")


def test_every_fig2_architecture_has_quick_settings():
    cfg = profiles.settings("universal", "quick")
    assert set(cfg["architectures"]) == set(profiles.FIG2_ARCHITECTURES) <= set(profiles.TABLE1)
    assert set(cfg["falsify"]) <= set(cfg["architectures"])


def test_run_two_point_trains_fits_and_summarises():
    run = experiments.run_two_point("shallow", profile="quick", trials=2, epochs=2500, progress=False)
    s = run.summary()
    assert s["trials"] == 2 and s["epochs"] == 2500 and s["optimizer"] == "sgd"
    assert run.rates.shape == (2, 3) and np.all(run.rates > 0)
    assert s["error_median"] < 0.1  # a 2-layer net, rich regime: the theory describes it
    # the fits are those of fit.fit_rates on the recorded trajectory
    d = data.two_point()
    direct = fit.fit_rates(run.recording.epochs, run.recording.z[1], d.dx_sq, d.dy_target_sq)
    assert run.fits[1].rate_h == pytest.approx(direct.rate_h) and run.fits[1].error == pytest.approx(direct.error)
    table = experiments.summary_markdown([run])
    assert table.count("\n") == 2 and "| shallow |" in table
    value, epoch = experiments.plateau_loss(run.recording)
    assert 0 < epoch < 2500 and value == pytest.approx(d.dy_target_sq / 8, rel=0.1)


def test_plateau_loss_is_read_where_the_mean_output_has_settled():
    arch = replace(profiles.TABLE1["default"], width=16, hidden_layers=4, lr=0.05)
    d = data.two_point()
    rec = train.train(arch, d.x, d.y, epochs=400, progress=False)
    value, i = experiments.plateau_loss(rec, settle=1e-3)
    term = 0.5 * np.sum((rec.mean_output[0] - 0.5 * (d.y[0] + d.y[1])) ** 2, axis=-1)
    assert term[i] < 1e-3 * d.dy_target_sq / 8 and np.all(term[:i] >= 1e-3 * d.dy_target_sq / 8)
    assert value == rec.loss[0, i]


def test_fit_recording_layers():
    arch = replace(profiles.TABLE1["shallow"], width=24)
    d = data.two_point()
    rec = train.train(arch, d.x, d.y, layer="all", epochs=1500, progress=False)
    assert len(fit.fit_recording(rec, layer_index=1)) == 1
    with pytest.raises(ValueError, match="`layer_index` is needed"):
        fit.fit_recording(rec)
    with pytest.raises(ValueError, match="`layer_index` must be in"):
        fit.fit_recording(rec, layer_index=2)
    single = train.train(arch, d.x, d.y, epochs=50, progress=False)
    with pytest.raises(ValueError, match="only to recordings of several layers"):
        fit.fit_recording(single, layer_index=0)
    assert single.settings["dx_sq"] == d.dx_sq and single.settings["dy_target_sq"] == pytest.approx(d.dy_target_sq)


def _fake_recording(loss, dy_target_sq=0.5):
    from types import SimpleNamespace
    return SimpleNamespace(loss=np.asarray(loss, float), settings={"dy_target_sq": dy_target_sq})


def test_plateau_epochs_counts_records_near_dy_sq_over_8():
    p = 0.5 / 8
    rec = _fake_recording([[0.5, p * 1.2, p, p * 0.9, p * 0.7, 1e-3], [0.5, 0.3, 1e-2, 1e-4, 1e-6, 0.0]])
    np.testing.assert_array_equal(experiments.plateau_epochs(rec, band=0.25), [3, 0])
    np.testing.assert_array_equal(experiments.plateau_epochs(rec, band=0.5), [4, 0])
    with pytest.raises(ValueError, match="`band`"):
        experiments.plateau_epochs(rec, band=0)
    with pytest.raises(ValueError, match="no plateau"):
        experiments.plateau_epochs(_fake_recording([[0.1]], dy_target_sq=0.0))


def test_rich_lazy_settings_name_known_rows_and_architectures():
    for profile in profiles.PROFILES:
        cfg = profiles.settings("rich_lazy", profile)
        assert set(cfg["gain_rows"]) == set(profiles.GAIN_ROWS) <= set(profiles.TABLE1)
        assert set(cfg["fig5_architectures"]) <= set(profiles.FIG2_ARCHITECTURES)
        tp = profiles.TWO_POINT  # the base distances, where the rates are fitted, are a cell of the grid
        assert tp["dx_sq"] in cfg["grid_dx_sq"] and tp["dy_target_sq"] in cfg["grid_dy_sq"]
    gains = [profiles.TABLE1[n].gain for n in profiles.GAIN_ROWS]
    assert gains == sorted(gains)


def test_rate_ratio_averages_rates_over_converged_trials():
    run = experiments.run_two_point("shallow", profile="quick", trials=2, epochs=2500, progress=False)
    r = run.rates
    assert run.tau_y_over_tau_h() == pytest.approx(r[:, 0].mean() / r[:, 1].mean())
    assert run.tau_y_over_tau_h(max_loss=1.0) == pytest.approx(run.tau_y_over_tau_h())
    with pytest.raises(ValueError, match="no trial"):
        run.tau_y_over_tau_h(max_loss=0.0)


def test_distance_grid_reads_the_distance_at_the_stop_and_predicts_with_eq10():
    arch = replace(profiles.TABLE1["shallow"], width=30, lr=0.05)
    g = experiments.distance_grid(arch, 0.5, dx_sq=(0.5, 1.5), dy_target_sq=(0.0, 1.0), seeds=(3, 4),
                                  epochs=4000, stop_loss=1e-4, drop_loss=1e-3, progress=False)
    assert g.measured.shape == (8,) and list(g.seed) == [3, 4] * 4
    assert list(g.dx_sq) == [0.5] * 4 + [1.5] * 4 and list(g.dy_target_sq) == [0.0, 0.0, 1.0, 1.0] * 2
    np.testing.assert_array_equal(g.kept, g.final_loss < 1e-3)
    # one cell by hand: same training, the first record below the stopping loss, eq. (10)
    d = data.two_point(1.5, 1.0)
    rec = train.train(arch, d.x, d.y, seeds=(3, 4), epochs=4000, stop_loss=1e-4, progress=False)
    i = int(np.nonzero(rec.loss[1] < 1e-4)[0][0])
    assert g.measured[7] == pytest.approx(rec.dh_sq[1, i])
    from repalign import theory
    expected = theory.final_distance(rec.dh_sq[1, 0], rec.dy_sq[1, 0], rate_h=1.0, rate_y=2.0, dx_sq=1.5, dy_target_sq=1.0).distance
    assert g.predicted[7] == pytest.approx(float(expected))
    assert np.isfinite(g.correlation()) and g.median_relative_error() >= 0
    with pytest.raises(ValueError, match="`tau_y_over_tau_h`"):
        experiments.distance_grid(arch, -1.0, progress=False)


def test_fit_layers_fits_every_recorded_layer_like_fit_recording():
    arch = replace(profiles.TABLE1["default"], width=16, hidden_layers=4, lr=0.05)
    d = data.two_point()
    rec = train.train(arch, d.x, d.y, seeds=(0, 1), epochs=1500, layer="all", progress=False)
    lf = experiments.fit_layers(rec)
    assert lf.error.shape == lf.rate_h.shape == lf.dh_sq0.shape == (2, 4) and list(lf.layers) == [1, 2, 3, 4]
    direct = fit.fit_recording(rec, layer_index=2)
    assert lf.rate_y[1, 2] == pytest.approx(direct[1].rate_y) and lf.error[0, 2] == pytest.approx(direct[0].error)
    np.testing.assert_array_equal(lf.dh_sq0, rec.dh_sq[:, 0, :])
    with pytest.raises(ValueError, match="layer='all'"):
        experiments.fit_layers(train.train(arch, d.x, d.y, epochs=5, progress=False))


def test_depth_factor_recovers_a_geometric_decay():
    n = np.arange(1, 11)
    dh0 = np.vstack([0.8 * 0.45**n, 1.2 * 0.45**n])
    z = np.zeros_like(dh0)
    lf = experiments.LayerFits(n, z, z, z, z.astype(bool), dh0)
    assert lf.depth_factor() == pytest.approx(0.45, rel=1e-9)


def test_xor_data_and_pairwise_run_against_eq10():
    x, y = data.xor()
    assert x.shape == (4, 2) and y.ravel().tolist() == [0, 1, 1, 0] and not x.flags.writeable
    arch = replace(profiles.TABLE2["xor_2_layers"], width=20, epochs=300)
    r = experiments.run_pairwise("tiny", arch, x, y, tau_y_over_tau_h=0.5, seeds=(0, 1))
    assert r.measured.shape == r.predicted.shape == r.initial.shape == (2, 4, 4)
    np.testing.assert_array_equal(r.same_target, experiments.pairwise_distances(y) == 0)
    assert r.same_target[0, 3] and r.same_target[1, 2] and not r.same_target[0, 1]
    # eq. (10) for one pair by hand, from the initial network of the same seed
    import torch

    from repalign import models, theory
    net = models.build(arch, input_dim=2, output_dim=1, seed=1).double()
    with torch.no_grad():
        out, h = net(torch.tensor(x), hidden=1)
    dh0 = float(((h[0] - h[3]) ** 2).sum())
    dy0 = float(((out[0] - out[3]) ** 2).sum())
    assert r.initial[1, 0, 3] == pytest.approx(dh0)
    assert r.predicted[1, 0, 3] == pytest.approx(float(theory.final_distance(dh0, dy0, rate_h=1.0, rate_y=2.0, dx_sq=2.0, dy_target_sq=0.0).distance))
    assert np.all(np.diagonal(r.predicted, axis1=1, axis2=2) == 0)
    m = r.measured[:, np.triu_indices(4, 1)[0], np.triu_indices(4, 1)[1]]
    same = r.same_target[np.triu_indices(4, 1)]
    np.testing.assert_allclose(r.merge_ratio(), m[:, same].mean(1) / m[:, ~same].mean(1))
    assert r.relative_error().shape == (2,)
    with pytest.raises(ValueError, match="`tau_y_over_tau_h`"):
        experiments.run_pairwise("bad", arch, x, y, tau_y_over_tau_h=0.0, seeds=(0,))


def test_plateau_loss_uses_the_recordings_own_targets():
    """Other targets (y1 shifted by 3): the settled mean output is their mean, and the plateau is read there."""
    arch = replace(profiles.TABLE1["default"], width=16, hidden_layers=4, lr=0.05)
    d = data.two_point(y1=profiles.TWO_POINT["y1"] + 3.0)
    rec = train.train(arch, d.x, d.y, epochs=400, progress=False)
    value, i = experiments.plateau_loss(rec, settle=1e-3)
    target = 0.5 * (d.y[0] + d.y[1])  # independent: the targets passed to train
    term = 0.5 * np.sum((rec.mean_output[0] - target) ** 2, axis=-1)
    assert term[i] < 1e-3 * d.dy_target_sq / 8 and np.all(term[:i] >= 1e-3 * d.dy_target_sq / 8)
    assert value == rec.loss[0, i] and i < rec.n_records - 1  # the default targets' mean is never reached


def test_representations_name_the_callers_arguments():
    d = data.two_point()
    rec = train.train(replace(profiles.TABLE1["default"], width=8, hidden_layers=3), d.x, d.y, epochs=2,
                      keep_models=True, progress=False)
    for bad in (0, 99, 2.5):
        with pytest.raises(ValueError, match="`layer` must be None, 'all' or an integer in \\[1, 3\\]"):
            experiments.representations(rec.models, d.x, bad)
    with pytest.raises(ValueError, match="`x` must hold at least one input row"):
        experiments.representations(rec.models, np.empty((0, 1)), 2)
    with pytest.raises(ValueError, match="`chunk`"):
        experiments.representations(rec.models, d.x, 2, chunk=0)
