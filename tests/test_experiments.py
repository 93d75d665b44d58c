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
