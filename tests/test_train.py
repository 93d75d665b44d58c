"""train: the recorded quantities against a direct computation, batched trials against single runs,
record 0, convergence, determinism, Adam and minibatches, and argument errors."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from repalign import data, models, profiles
from repalign.train import Recording, train

D = data.two_point()
TINY = replace(profiles.TABLE1["default"], width=16, hidden_layers=6, lr=0.05, gain=0.8)
XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([[0.0], [1.0], [1.0], [0.0]])
FIELDS = ("dh_sq", "dy_sq", "w", "loss", "mean_output")


def quantities(net, x, y, layer, pair=(0, 1)):
    """The recorded quantities straight from a network's hidden vectors and outputs (numpy, float64)."""
    net.eval()
    with torch.no_grad():
        out, h = net(torch.tensor(x, dtype=torch.float64), hidden=layer)
    out, h = out.numpy(), h.numpy()
    i, j = pair
    dout = out[j] - out[i]
    return {"dh_sq": np.sum((h[j] - h[i]) ** 2), "dy_sq": np.sum(dout**2),
            "w": np.sum(dout**2) - dout @ (y[j] - y[i]), "loss": 0.5 * np.mean(np.sum((out - y) ** 2, axis=1)),
            "mean_output": 0.5 * (out[i] + out[j])}


def assert_same(a: Recording, b: Recording, rtol=1e-10, atol=1e-13):
    for f in FIELDS:
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=rtol, atol=atol, err_msg=f)


@pytest.mark.parametrize("variant", ["mlp", "skip", "dropout", "conv"])
def test_records_equal_a_direct_computation(variant):
    """An independent plain-torch SGD loop on a copy of the same network, evaluated at a few epochs."""
    arch = replace(TINY, variant=variant, width=40 if variant == "conv" else 16,
                   hidden_layers=2 if variant == "conv" else 6, lr=0.01 if variant == "conv" else TINY.lr)
    epochs, checks = 30, (0, 1, 7, 30)
    rec = train(arch, D.x, D.y, seed=4, epochs=epochs, dtype="float64", progress=False)
    layer = rec.layer
    net = models.build(arch, seed=4, dtype=torch.float64)
    X, Y = torch.tensor(D.x), torch.tensor(D.y)
    torch.manual_seed(4)  # the dropout masks of the run
    for e in range(epochs + 1):
        if e in checks:
            ref = quantities(net, D.x, D.y, layer)
            for f in FIELDS:
                np.testing.assert_allclose(getattr(rec, f)[0, e], ref[f], rtol=1e-11, atol=1e-14, err_msg=f"{f} @ {e}")
        if e == epochs:
            break
        net.train()
        out, _ = net(X)
        loss = 0.5 * ((out - Y) ** 2).sum(1).mean()
        grads = torch.autograd.grad(loss, list(net.parameters()))
        with torch.no_grad():
            for p, g in zip(net.parameters(), grads):
                p -= arch.lr * g


def test_all_layers_agree_with_single_layers_and_the_kept_models():
    rec = train(TINY, D.x, D.y, seed=2, epochs=20, layer="all", dtype="float64", keep_models=True, progress=False)
    assert rec.layer == tuple(range(1, 7)) and rec.dh_sq.shape == (1, 21, 6) and rec.z.shape == (1, 21, 6, 3)
    for k in (1, 4, 6):
        one = train(TINY, D.x, D.y, seed=2, epochs=20, layer=k, dtype="float64", progress=False)
        np.testing.assert_array_equal(one.dh_sq, rec.dh_sq[..., k - 1])
        ref = quantities(rec.models[0], D.x, D.y, k)  # the trained network, evaluated separately
        assert rec.dh_sq[0, -1, k - 1] == pytest.approx(ref["dh_sq"], rel=1e-12)
        assert rec.w[0, -1] == pytest.approx(ref["w"], rel=1e-12)


@pytest.mark.parametrize("variant", ["mlp", "skip"])
def test_batched_trials_equal_single_runs(variant):
    arch = replace(TINY, variant=variant, gain=0.5 if variant == "skip" else TINY.gain)
    seeds = [3, 11, 12]
    together = train(arch, D.x, D.y, seeds=seeds, epochs=300, dtype="float64", layer="all", progress=False)
    assert together.settings["batched"]
    looped = train(arch, D.x, D.y, seeds=seeds, epochs=300, dtype="float64", layer="all", batched=False,
                   progress=False)
    assert not looped.settings["batched"]
    assert_same(together, looped)
    for k, s in enumerate(seeds):
        alone = train(arch, D.x, D.y, seeds=[s], epochs=300, dtype="float64", layer="all", progress=False)
        for f in FIELDS:
            np.testing.assert_allclose(getattr(together, f)[k], getattr(alone, f)[0], rtol=1e-10, atol=1e-13)
    assert together.loss[:, -1].max() < 0.1 * together.loss[:, 0].min()  # the runs did learn


def test_minibatch_batched_equals_looped_and_shuffles_per_trial():
    arch = replace(TINY, width=12, hidden_layers=3, lr=0.1)
    kw = dict(seeds=[0, 1], epochs=40, batch_size=3, pair=(1, 3), dtype="float64", progress=False)
    a = train(arch, XOR_X, XOR_Y, **kw)
    b = train(arch, XOR_X, XOR_Y, batched=False, **kw)
    assert_same(a, b)
    assert a.dh_sq.shape == (2, 41) and a.mean_output.shape == (2, 41, 1)
    full = train(arch, XOR_X, XOR_Y, **{**kw, "batch_size": None})
    assert not np.allclose(full.loss[:, 5:], a.loss[:, 5:])


def test_record_zero_is_before_any_update():
    rec = train(TINY, D.x, D.y, seed=8, epochs=5, dtype="float64", progress=False)
    assert rec.epochs.tolist() == [0, 1, 2, 3, 4, 5] and rec.n_records == 6
    ref = quantities(models.build(TINY, seed=8, dtype=torch.float64), D.x, D.y, rec.layer)
    for f in FIELDS:
        np.testing.assert_allclose(getattr(rec, f)[0, 0], ref[f], rtol=1e-13, atol=1e-15)
    assert rec.loss[0, 1] != rec.loss[0, 0]


def test_loss_decreases_for_the_default_architecture_shrunk():
    arch = replace(profiles.TABLE1["default"], width=64, hidden_layers=6)
    rec = train(arch, D.x, D.y, trials=2, seed=0, lr=0.05, epochs=300, progress=False)
    assert rec.settings["dtype"] == "float32" and rec.layer == 4
    assert np.all(rec.loss[:, -1] < 0.05 * rec.loss[:, 0])
    assert np.all(rec.loss[:, -1] < 1e-3)
    # the predicted outputs approach the targets: ||dy||^2 -> ||y2-y1||^2 and w -> 0
    np.testing.assert_allclose(rec.dy_sq[:, -1], D.dy_target_sq, rtol=0.1)
    np.testing.assert_allclose(rec.w[:, -1], 0.0, atol=0.05)


def test_same_seed_same_recording_and_different_seeds_differ():
    kw = dict(epochs=25, progress=False)
    a, b = train(TINY, D.x, D.y, seed=1, **kw), train(TINY, D.x, D.y, seed=1, **kw)
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    c = train(TINY, D.x, D.y, seed=2, **kw)
    assert not np.allclose(a.dh_sq, c.dh_sq)
    trials = train(TINY, D.x, D.y, trials=3, seed=1, **kw)
    assert trials.seeds == (1, 2, 3)
    assert not np.allclose(trials.dh_sq[0], trials.dh_sq[1])
    drop = replace(TINY, variant="dropout", hidden_layers=4)
    d1, d2 = (train(drop, D.x, D.y, seed=5, **kw) for _ in range(2))
    np.testing.assert_array_equal(d1.loss, d2.loss)


def test_adam_and_minibatch_shapes_and_settings():
    adam = train(TINY, D.x, D.y, trials=2, epochs=15, optimizer="adam", lr=1e-3, progress=False)
    assert adam.z.shape == (2, 16, 3) and adam.loss.shape == (2, 16)
    assert adam.settings["optimizer"] == "adam" and adam.settings["lr"] == 1e-3
    sgd = train(TINY, D.x, D.y, trials=2, epochs=15, lr=1e-3, progress=False)
    assert not np.allclose(adam.loss[:, -1], sgd.loss[:, -1])
    mb = train(replace(TINY, hidden_layers=4), XOR_X, XOR_Y, trials=3, epochs=10, batch_size=1, optimizer="adam",
               lr=1e-3, layer="all", progress=False)
    assert mb.dh_sq.shape == (3, 11, 4) and mb.dy_sq.shape == (3, 11) and mb.mean_output.shape == (3, 11, 1)
    assert mb.settings["batch_size"] == 1 and mb.settings["n_points"] == 4
    assert np.all(np.isfinite(mb.z))


@pytest.mark.parametrize("variant", ["conv", "dropout"])
def test_conv_and_dropout_run_batched_on_auto_and_looped_on_the_reference(variant):
    arch = replace(TINY, variant=variant, width=40 if variant == "conv" else 16,
                   hidden_layers=2 if variant == "conv" else 4, lr=0.005)
    for engine, batched in (("auto", True), ("reference", False)):
        rec = train(arch, D.x, D.y, trials=2, epochs=8, keep_models=True, engine=engine, progress=False)
        assert rec.settings["batched"] == batched and rec.settings["engine"] == ("fused" if batched else "reference")
        assert rec.z.shape == (2, 9, 3) and len(rec.models) == 2
        assert rec.layer == models.default_hidden_layer(arch)
        assert all(type(m) is type(models.build(arch, seed=0)) for m in rec.models)
    code = train(arch, D.x, D.y, epochs=2, convention="code", progress=False)
    assert code.layer == models.default_hidden_layer(arch, convention="code")


def test_recording_is_read_only():
    rec = train(TINY, D.x, D.y, epochs=2, progress=False)
    with pytest.raises(ValueError):
        rec.loss[0, 0] = 1.0
    with pytest.raises(AttributeError):
        rec.loss = None
    assert repr(rec).startswith("Recording('default', trials=1, epochs=2, layer=4,")


@pytest.mark.parametrize("kwargs, match", [
    ({"lr": 0.0}, "`lr` must be > 0"),
    ({"lr": -0.1}, "`lr` must be > 0"),
    ({"epochs": 0}, "`epochs` must be an integer >= 1"),
    ({"epochs": 2.5}, "`epochs` must be an integer"),
    ({"optimizer": "momentum"}, "`optimizer` must be one of sgd, adam"),
    ({"batch_size": 0}, "`batch_size` must be an integer in \\[1, 2\\]"),
    ({"batch_size": 3}, "`batch_size` must be an integer in \\[1, 2\\]"),
    ({"pair": (0, 0)}, "`pair` must name two different points"),
    ({"pair": (0, 2)}, "`pair` must be an integer in \\[0, 1\\]"),
    ({"pair": (0, 1, 1)}, "`pair` must be two point indices"),
    ({"pair": 1}, "`pair` must be two point indices"),
    ({"layer": 7}, "`layer` must be None, 'all' or an integer in \\[1, 6\\]"),
    ({"trials": 0}, "`trials` must be an integer in \\[1, 10000\\]"),
    ({"seeds": [1, -2]}, "`seeds` must be an integer >= 0"),
    ({"dtype": "float16"}, "`dtype` must be 'float32' or 'float64'"),
    ({"device": "tpu"}, "`device` must be 'cpu' or 'cuda'"),
    ({"convention": "middle"}, "`convention` must be one of paper, code"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        train(TINY, D.x, D.y, **{"epochs": 3, "progress": False, **kwargs})


def test_bad_data_and_architecture():
    with pytest.raises(ValueError, match="`x` must be 2-dimensional"):
        train(TINY, D.x.ravel(), D.y, epochs=1, progress=False)
    with pytest.raises(ValueError, match="same number of points"):
        train(TINY, D.x, XOR_Y, epochs=1, progress=False)
    with pytest.raises(ValueError, match="`width` must be an integer >= 1"):
        train(replace(TINY, width=0), D.x, D.y, epochs=1, progress=False)
    with pytest.raises(ValueError, match="`lr` must be > 0"):
        train(replace(TINY, lr=-1.0), D.x, D.y, epochs=1, progress=False)


def test_cuda_matches_cpu_or_is_refused_clearly():
    """With a GPU the CUDA run equals the CPU run; without one, asking for it is a clear error."""
    kw = dict(seeds=[0, 1], epochs=50, dtype="float64", progress=False)
    if torch.cuda.is_available():
        assert_same(train(TINY, D.x, D.y, device="cuda", **kw), train(TINY, D.x, D.y, **kw), rtol=1e-8, atol=1e-12)
    else:
        with pytest.raises(ValueError, match="`device` is 'cuda' but torch.cuda.is_available"):
            train(TINY, D.x, D.y, device="cuda", **kw)


@pytest.mark.slow
def test_table1_default_full_size_batched_equals_looped():
    arch = profiles.TABLE1["default"]
    kw = dict(seeds=[0, 1], epochs=20, progress=False)
    a, b = train(arch, D.x, D.y, **kw), train(arch, D.x, D.y, batched=False, **kw)
    assert a.layer == 11 and a.z.shape == (2, 21, 3)
    assert_same(a, b, rtol=1e-4, atol=1e-6)  # float32


@pytest.mark.parametrize("engine", ["kernel", "fused", "reference"])
def test_stop_loss_ends_training_at_the_first_check_below_it(engine):
    arch = replace(profiles.TABLE1["shallow"], width=20, lr=0.05)
    full = train(arch, D.x, D.y, seeds=(0, 1), epochs=1500, dtype="float64", progress=False, engine=engine)
    stop = float(np.median(full.loss[:, 700]))  # reached by both trials somewhere after epoch 700
    rec = train(arch, D.x, D.y, seeds=(0, 1), epochs=1500, dtype="float64", progress=False, engine=engine,
                stop_loss=stop)
    n = rec.n_records - 1
    below = (full.loss < stop).all(0)
    expected = next(e + 1 for e in range(49, 1500, 50) if below[e])  # first check with every trial below
    assert n == expected < 1500
    assert rec.settings["epochs_trained"] == (n, n)
    np.testing.assert_allclose(rec.dh_sq, full.dh_sq[:, :n + 1], rtol=1e-12)  # same run, just shorter
    np.testing.assert_allclose(rec.loss, full.loss[:, :n + 1], rtol=1e-12)


def test_stop_loss_per_trial_when_trials_train_one_at_a_time():
    arch = replace(profiles.TABLE1["shallow"], width=20, lr=0.05)
    kw = dict(seeds=(0, 1, 2), epochs=1500, dtype="float64", progress=False, batched=False)
    full = train(arch, D.x, D.y, **kw)
    stop = float(np.median(full.loss[:, 700]))
    rec = train(arch, D.x, D.y, stop_loss=stop, **kw)
    ran = rec.settings["epochs_trained"]
    assert len(set(ran)) > 1 and rec.n_records == max(ran) + 1  # the trials stopped at different epochs
    for k, n in enumerate(ran):
        assert (rec.loss[k, n:] == rec.loss[k, n]).all()  # a stopped trial holds its last record
        np.testing.assert_allclose(rec.loss[k, :n + 1], full.loss[k, :n + 1], rtol=1e-12)


@pytest.mark.parametrize("bad", [0, -1e-3, float("nan"), "low"])
def test_bad_stop_loss(bad):
    with pytest.raises(ValueError, match="`stop_loss` must be a positive number"):
        train(profiles.TABLE1["shallow"], D.x, D.y, epochs=1, stop_loss=bad, progress=False)


INIT_CASES = [  # (variant, engine, batch_size, batched)
    ("mlp", "kernel", None, True), ("mlp", "fused", None, True), ("mlp", "reference", None, True),
    ("skip", "kernel", None, True), ("mlp", "fused", 2, True), ("mlp", "reference", 2, True),
    ("mlp", "reference", None, False), ("conv", "reference", None, True), ("dropout", "reference", 2, True),
    ("conv", "fused", None, True), ("dropout", "fused", None, True), ("dropout", "fused", 2, True),
]


@pytest.mark.parametrize("variant, engine, batch_size, batched", INIT_CASES)
def test_given_initial_weights_reproduce_the_seeded_run(variant, engine, batch_size, batched):
    arch = replace(TINY, variant=variant, hidden_layers=2 if variant == "conv" else 4,
                   width=40 if variant == "conv" else TINY.width, lr=0.01 if variant == "conv" else TINY.lr)
    seeds = (5, 6)
    kw = dict(seeds=seeds, epochs=30, batch_size=batch_size, batched=batched, engine=engine, progress=False)
    seeded = train(arch, XOR_X, XOR_Y, **kw)
    nets = [models.build(arch, input_dim=2, seed=s) for s in seeds]
    for init in (nets, [n.state_dict() for n in nets]):
        given = train(arch, XOR_X, XOR_Y, init=init, **kw)
        assert given.settings["engine"] == seeded.settings["engine"] == engine
        assert given.settings["init"] == "given" and seeded.settings["init"] == "seeds"
        for name in ("dh_sq", "dy_sq", "w", "loss", "mean_output"):
            np.testing.assert_array_equal(getattr(given, name), getattr(seeded, name), err_msg=name)


def test_init_continues_a_run_from_its_kept_models():
    whole = train(TINY, D.x, D.y, seeds=(1, 2), epochs=40, dtype="float64", keep_models=True, progress=False)
    half = train(TINY, D.x, D.y, seeds=(1, 2), epochs=20, dtype="float64", keep_models=True, progress=False)
    rest = train(TINY, D.x, D.y, seeds=(1, 2), epochs=20, dtype="float64", init=half.models, progress=False)
    np.testing.assert_allclose(rest.dy_sq, whole.dy_sq[:, 20:], rtol=1e-12, atol=1e-15)
    assert rest.trials == 2 and train(TINY, D.x, D.y, epochs=1, init=half.models, progress=False).trials == 2


@pytest.mark.parametrize("init, match", [
    (models.build(TINY, seed=0), "`init` must be a sequence"),
    ([models.build(TINY, seed=0)], r"`init` must hold one network or state dict per trial \(2\), got 1"),
    ([models.build(TINY, seed=0), 3], r"`init\[1\]` must be a torch.nn.Module or a state dict"),
    ([models.build(TINY, seed=0), models.build(replace(TINY, width=8), seed=0)], r"`init\[1\]` does not fit"),
])
def test_bad_init_is_named(init, match):
    with pytest.raises(ValueError, match=match):
        train(TINY, D.x, D.y, seeds=(0, 1), epochs=1, init=init, progress=False)


# --- divergence (issue 21): one error type on every engine, with the epoch, the loss and the partial record


@pytest.mark.parametrize("kw", [dict(engine="kernel"), dict(engine="fused"), dict(engine="reference"),
                                dict(engine="fused", batch_size=1), dict(batched=False)])
def test_divergence_raises_training_diverged_on_every_engine(kw):
    from dataclasses import replace as _replace

    from repalign.data import two_point as _two_point
    from repalign.profiles import TABLE1 as _TABLE1
    from repalign.train import TrainingDiverged

    arch = _replace(_TABLE1["default"], width=16, hidden_layers=3)
    d = _two_point()
    with pytest.raises(TrainingDiverged, match=r"diverged at epoch \d+ .*lower lr") as info:
        train(arch, d.x, d.y, trials=2, epochs=120, lr=50.0, progress=False, **kw)
    err = info.value
    assert isinstance(err, FloatingPointError)
    rec = err.recording
    # the partial record ends at the reported epoch, whose loss is the reported non-finite value
    assert rec.n_records == err.epoch + 1 and rec.settings["epochs_trained"][0] == err.epoch
    assert not np.isfinite(err.loss) and not np.isfinite(rec.loss[err.trial, -1])
    assert np.isfinite(rec.loss[:, :-1]).all()
    if "batch_size" in kw:  # minibatch records hold the epoch's minibatch losses, not the initial loss
        return
    # independent check of the recorded loss: the initial network's loss computed from the model itself
    from repalign.models import build as _build
    net = _build(arch, input_dim=d.x.shape[1], output_dim=d.y.shape[1], seed=rec.seeds[0])
    with torch.no_grad():
        out = net(torch.as_tensor(d.x, dtype=torch.float32))[0]
    want = 0.5 * ((out.double().numpy() - d.y) ** 2).sum(-1).mean()
    assert rec.loss[0, 0] == pytest.approx(want, rel=1e-5)


def test_finite_run_with_stop_checks_is_unchanged_by_divergence_check():
    from dataclasses import replace as _replace

    from repalign.data import two_point as _two_point
    from repalign.profiles import TABLE1 as _TABLE1

    arch = _replace(_TABLE1["default"], width=16, hidden_layers=3)
    d = _two_point()
    a = train(arch, d.x, d.y, trials=2, epochs=120, engine="kernel", progress=False)
    b = train(arch, d.x, d.y, trials=2, epochs=120, engine="fused", progress=False)
    assert a.n_records == b.n_records == 121
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-4, atol=1e-7)
