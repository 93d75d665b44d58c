"""fastpath: both back ends of the hand-written SGD path (the compiled CPU kernel and the fused torch
operations) against the autograd reference (float64, tight tolerance), the activation derivatives against
autograd, and the fallback for configurations the fast path does not cover."""

from dataclasses import replace
from types import MappingProxyType

import numpy as np
import pytest
import torch

from repalign import data, fastpath, models, profiles
from repalign.train import train

D = data.two_point()
XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([[0.0], [1.0], [1.0], [0.0]])
FIELDS = ("dh_sq", "dy_sq", "w", "loss", "mean_output")


def assert_same(a, b, rtol=1e-9, atol=1e-12):
    for f in FIELDS:
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=rtol, atol=atol, err_msg=f)


@pytest.mark.parametrize("activation", sorted(models.ACTIVATIONS))
def test_derivatives_equal_autograd(activation):
    z = torch.linspace(-3, 3, 601, dtype=torch.float64).requires_grad_()
    a = models.ACTIVATIONS[activation](z)
    (expected,) = torch.autograd.grad(a.sum(), z)
    d = fastpath.DERIVATIVES[activation](z.detach(), a.detach())
    got = torch.ones_like(z) if d is None else d
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("activation", sorted(models.ACTIVATIONS))
def test_chain_rule_step_equals_autograd(activation):
    """``Activation.chain(g, z, a)`` (torch's backward op where given) is autograd's ``g * f'(z)``."""
    z = torch.linspace(-3, 3, 601, dtype=torch.float64).requires_grad_()
    g = torch.cos(torch.arange(601, dtype=torch.float64))
    act = models.ACTIVATIONS[activation]
    a = act(z)
    (expected,) = torch.autograd.grad(a, z, g)
    np.testing.assert_allclose(act.chain(g, z.detach(), a.detach()).numpy(), expected.numpy(), rtol=1e-14,
                               atol=1e-15)


CASES = [  # (name, width, hidden layers, activation, gain, lr, seeds, layer)
    ("default", 12, 6, "leaky_relu", 1.0, 0.05, (0, 1, 2), None),
    ("default", 7, 3, "tanh", 1.2, 0.1, (3,), "all"),
    ("default", 20, 5, "relu", 1.1, 0.05, (4, 5), 2),
    ("default", 9, 8, "elu", 0.9, 0.05, (6, 7), None),
    ("default", 16, 4, "silu", 1.7, 0.05, (8, 9, 10), "all"),
    ("linear", 10, 2, "linear", 0.85, 0.05, (11,), 1),
    ("skip_connections", 12, 7, "leaky_relu", 0.5, 0.05, (12, 13), "all"),
    ("skip_connections", 8, 5, "tanh", 0.6, 0.05, (14,), 4),
]


@pytest.mark.parametrize("backend", fastpath.BACKENDS)
@pytest.mark.parametrize("name, width, depth, activation, gain, lr, seeds, layer", CASES)
def test_fast_path_equals_reference(name, width, depth, activation, gain, lr, seeds, layer, backend):
    arch = replace(profiles.TABLE1[name], width=width, hidden_layers=depth, activation=activation, gain=gain, lr=lr)
    kw = dict(seeds=seeds, epochs=300, layer=layer, dtype="float64", progress=False, keep_models=True)
    fast = train(arch, D.x, D.y, engine=backend, **kw)
    ref = train(arch, D.x, D.y, engine="reference", **kw)
    assert fast.settings["engine"] == backend and ref.settings["engine"] == "reference"
    assert ref.loss[:, -1].max() < 0.5 * ref.loss[:, 0].min()  # the runs learned something to compare
    assert_same(fast, ref)
    for mf, mr in zip(fast.models, ref.models):  # and the final weights agree
        for pf, pr in zip(mf.parameters(), mr.parameters()):
            np.testing.assert_allclose(pf.detach().numpy(), pr.detach().numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("backend", fastpath.BACKENDS)
@pytest.mark.parametrize("n_points", [3, 4])
def test_fast_path_on_more_points_and_outputs(backend, n_points):
    """XOR (4 points, 2 inputs; 3 of them to exercise an odd count) and a 3-dimensional output: the
    mean over points and the output sum (the kernel's general, not its two-point, code)."""
    arch = replace(profiles.TABLE1["default"], width=10, hidden_layers=4, lr=0.1)
    y3 = np.hstack([XOR_Y, 1 - XOR_Y, 0.5 * XOR_Y])[:n_points]
    kw = dict(seeds=(0, 1), epochs=200, pair=(1, 2), dtype="float64", progress=False)
    x = XOR_X[:n_points]
    assert_same(train(arch, x, y3, engine=backend, **kw), train(arch, x, y3, engine="reference", **kw))


@pytest.mark.parametrize("backend", fastpath.BACKENDS)
def test_float32_fast_path_is_close_to_reference(backend):
    """In float32 the paths round differently; over 200 epochs every recorded curve stays within
    1e-3 of its own largest magnitude (w crosses zero, so a pointwise relative test would not apply)."""
    arch = replace(profiles.TABLE1["default"], width=32, hidden_layers=6, lr=0.05)
    kw = dict(seeds=(0,), epochs=200, progress=False)
    fast, ref = (train(arch, D.x, D.y, engine=e, **kw) for e in (backend, "reference"))
    for f in FIELDS:
        a, b = getattr(fast, f), getattr(ref, f)
        assert np.max(np.abs(a - b)) <= 1e-3 * np.max(np.abs(b)), f


MINIBATCH_CASES = [  # (variant row, activation, batch size, layer, stop_loss)
    ("default", "tanh", 5, "all", None),
    ("default", "leaky_relu", 4, None, None),  # 12 points: equal minibatches
    ("skip_connections", "leaky_relu", 7, 3, None),  # a smaller last minibatch
    ("default", "relu", 1, 2, 0.05),
]


@pytest.mark.parametrize("name, activation, batch_size, layer, stop_loss", MINIBATCH_CASES)
def test_minibatch_fast_path_equals_reference(name, activation, batch_size, layer, stop_loss):
    """Minibatch SGD on the fused operations: same minibatch order, same records (pair quantities
    before each epoch, the epoch's mean minibatch loss, a full final pass), same final weights."""
    arch = replace(profiles.TABLE1[name], width=9, hidden_layers=5, activation=activation, lr=0.05)
    x = np.vstack([XOR_X, XOR_X + 0.3, XOR_X - 0.2])
    y = np.vstack([XOR_Y, XOR_Y, 1 - XOR_Y])
    kw = dict(seeds=(3, 4, 5), epochs=120, batch_size=batch_size, layer=layer, pair=(2, 9), dtype="float64",
              progress=False, keep_models=True, stop_loss=stop_loss)
    fast, ref = (train(arch, x, y, engine=e, **kw) for e in ("fast", "reference"))
    assert fast.settings["engine"] == "fused" and ref.settings["engine"] == "reference"
    assert ref.loss[:, -1].max() < 0.7 * ref.loss[:, 0].min()
    assert fast.n_records == ref.n_records
    assert_same(fast, ref)
    for mf, mr in zip(fast.models, ref.models):
        for pf, pr in zip(mf.parameters(), mr.parameters()):
            np.testing.assert_allclose(pf.detach().numpy(), pr.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_minibatch_loss_is_the_epoch_mean_and_the_last_record_a_full_pass():
    arch = replace(profiles.TABLE1["default"], width=8, hidden_layers=3, lr=0.05)
    rec = train(arch, XOR_X, XOR_Y, seeds=(0,), epochs=1, batch_size=2, dtype="float64", progress=False,
                keep_models=True)
    net = models.build(arch, input_dim=2, seed=0, dtype=torch.float64)
    perm = np.random.default_rng(0).permutation(4)
    opt = torch.optim.SGD(net.parameters(), lr=arch.lr)
    losses = []
    for b in (perm[:2], perm[2:]):
        out, _ = net(torch.tensor(XOR_X[b]))
        loss = 0.5 * (out - torch.tensor(XOR_Y[b])).square().sum(-1).mean()
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    np.testing.assert_allclose(rec.loss[0, 0], np.mean(losses), rtol=1e-12)
    out, _ = net(torch.tensor(XOR_X))
    np.testing.assert_allclose(rec.loss[0, 1], 0.5 * (out - torch.tensor(XOR_Y)).square().sum(-1).mean().item(),
                               rtol=1e-12)


def test_kernel_refuses_minibatches():
    with pytest.raises(ValueError, match="`engine='kernel'` trains full batches only"):
        train(profiles.TABLE1["shallow"], XOR_X, XOR_Y, epochs=1, batch_size=2, engine="kernel", progress=False)


ADAM_CASES = [  # (row, width, depth, activation, gain, lr, seeds, batch size, layer): full and minibatch
    ("default", 12, 6, "leaky_relu", 1.0, 1e-3, (0, 1, 2), None, None),
    ("default", 7, 3, "tanh", 0.3, 3e-3, (3,), None, "all"),
    ("skip_connections", 10, 5, "leaky_relu", 0.5, 1e-3, (4, 5), None, "all"),
    ("default", 9, 4, "relu", 1.1, 5e-3, (6, 7, 8), 5, 2),
    ("skip_connections", 8, 6, "tanh", 0.6, 1e-3, (9, 10), 4, "all"),
    ("default", 16, 3, "silu", 1.7, 1e-3, (11,), 7, None),  # a smaller last minibatch
]


@pytest.mark.parametrize("name, width, depth, activation, gain, lr, seeds, batch_size, layer", ADAM_CASES)
def test_adam_fast_path_equals_reference(name, width, depth, activation, gain, lr, seeds, batch_size, layer):
    """Fused Adam (one torch._fused_adam_ per step) against torch.optim.Adam on autograd: same records
    and final weights in float64 over 300 steps (full batch) or 40 epochs of 12 points (minibatches)."""
    arch = replace(profiles.TABLE1[name], width=width, hidden_layers=depth, activation=activation, gain=gain)
    x = np.vstack([XOR_X, XOR_X + 0.3, XOR_X - 0.2])
    y = np.vstack([XOR_Y, XOR_Y, 1 - XOR_Y])
    kw = dict(seeds=seeds, optimizer="adam", lr=lr, epochs=300 if batch_size is None else 40, layer=layer,
              batch_size=batch_size, pair=(2, 9), dtype="float64", progress=False, keep_models=True)
    fast, ref = (train(arch, x, y, engine=e, **kw) for e in ("auto", "reference"))
    assert fast.settings["engine"] == "fused" and ref.settings["engine"] == "reference"
    assert (ref.loss[:, -1] < 0.7 * ref.loss[:, 0]).all()  # every run learned something to compare
    assert_same(fast, ref)
    for mf, mr in zip(fast.models, ref.models):
        for pf, pr in zip(mf.parameters(), mr.parameters()):
            np.testing.assert_allclose(pf.detach().numpy(), pr.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_float32_adam_is_close_to_reference():
    """In float32 over 200 Adam steps every recorded curve stays within 1e-3 of its largest magnitude."""
    arch = replace(profiles.TABLE1["default"], width=32, hidden_layers=6)
    kw = dict(seeds=(0, 1), epochs=200, optimizer="adam", lr=1e-3, progress=False)
    fast, ref = (train(arch, D.x, D.y, engine=e, **kw) for e in ("fused", "reference"))
    for f in FIELDS:
        a, b = getattr(fast, f), getattr(ref, f)
        assert np.max(np.abs(a - b)) <= 1e-3 * np.max(np.abs(b)), f


def test_kernel_refuses_adam():
    arch = replace(profiles.TABLE1["default"], width=6, hidden_layers=3)
    with pytest.raises(ValueError, match="`engine='kernel'` trains plain SGD only, got optimizer='adam'"):
        train(arch, D.x, D.y, epochs=1, optimizer="adam", lr=1e-3, engine="kernel", progress=False)


@pytest.mark.parametrize("kwargs, why", [
    (dict(optimizer="adam", lr=1e-3, batched=False), "adam, not batched"),
    (dict(batched=False), "not batched"),
])
def test_uncovered_configurations_fall_back(kwargs, why):
    arch = replace(profiles.TABLE1["default"], width=6, hidden_layers=3)
    rec = train(arch, D.x, D.y, seeds=(0,), epochs=3, progress=False, **kwargs)
    assert rec.settings["engine"] == "reference", why
    for engine in ("fast", *fastpath.BACKENDS):
        with pytest.raises(ValueError, match=f"engine='{engine}'` covers only"):
            train(arch, D.x, D.y, seeds=(0,), epochs=3, progress=False, engine=engine, **kwargs)


VARIANT_CASES = [  # (Table 1 row, width, hidden layers, activation, gain, lr, seeds, layer)
    ("convolution", 40, 2, "leaky_relu", 0.95, 0.05, (0, 1, 2), "all"),
    ("convolution", 35, 1, "tanh", 1.1, 0.05, (3, 4), None),
    ("convolution", 55, 3, "relu", 1.0, 0.02, (5,), 2),
    ("dropout", 12, 4, "leaky_relu", 1.0, 0.05, (0, 1, 2), "all"),
    ("dropout", 9, 2, "tanh", 1.2, 0.1, (3, 4), None),
    ("dropout", 16, 3, "elu", 0.9, 0.05, (5,), 1),
]


@pytest.mark.parametrize("name, width, depth, activation, gain, lr, seeds, layer", VARIANT_CASES)
def test_conv_and_dropout_fast_paths_equal_single_trials_of_the_reference(name, width, depth, activation, gain, lr,
                                                                           seeds, layer):
    """All trials together on the fused path against the reference, which trains each trial alone
    (its own ConvNet, or its own MLP with torch's dropout after ``torch.manual_seed(seed)``): same
    initial weights, same masks, same records and final weights over 300 full-batch steps."""
    arch = replace(profiles.TABLE1[name], width=width, hidden_layers=depth, activation=activation, gain=gain, lr=lr)
    kw = dict(seeds=seeds, epochs=300, layer=layer, dtype="float64", progress=False, keep_models=True)
    fast = train(arch, D.x, D.y, **kw)
    ref = train(arch, D.x, D.y, engine="reference", **kw)
    assert fast.settings["engine"] == "fused" and fast.settings["batched"]
    assert ref.settings["engine"] == "reference" and not ref.settings["batched"]
    assert ref.loss[:, -1].max() < 0.5 * ref.loss[:, 0].min()  # the runs learned something to compare
    assert_same(fast, ref)
    for mf, mr in zip(fast.models, ref.models):
        assert type(mf) is type(mr)
        for pf, pr in zip(mf.parameters(), mr.parameters()):
            np.testing.assert_allclose(pf.detach().numpy(), pr.detach().numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name, width, depth", [("convolution", 40, 2), ("dropout", 10, 3)])
def test_conv_and_dropout_minibatches_equal_the_reference(name, width, depth):
    arch = replace(profiles.TABLE1[name], width=width, hidden_layers=depth, lr=0.05)
    x = np.vstack([XOR_X, XOR_X + 0.3, XOR_X - 0.2])
    y = np.vstack([XOR_Y, XOR_Y, 1 - XOR_Y])
    kw = dict(seeds=(3, 4), epochs=60, batch_size=5, layer="all", pair=(2, 9), dtype="float64", progress=False)
    fast, ref = (train(arch, x, y, engine=e, **kw) for e in ("fast", "reference"))
    assert fast.settings["engine"] == "fused" and ref.settings["engine"] == "reference"
    assert ref.loss[:, -1].max() < 0.9 * ref.loss[:, 0].min()
    assert_same(fast, ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dropout_masks_are_torchs_cpu_dropout_after_manual_seed(dtype):
    """DropoutMasks draws, per trial, what nn.Dropout draws from the default generator after
    ``torch.manual_seed(seed)``, call after call."""
    shapes = [(2, 1), (2, 7), (5, 7), (2, 7)]
    masks = fastpath.DropoutMasks((11, 12), 0.1, dtype)
    got = [masks(shapes) for _ in range(3)]
    drop = torch.nn.Dropout(0.1)
    for t, seed in enumerate((11, 12)):
        torch.manual_seed(seed)
        for step in got:
            for shape, m in zip(shapes, step):
                assert torch.equal(m[t], drop(torch.ones(shape, dtype=dtype)))
    assert not torch.equal(got[0][1][0], got[0][1][1])  # the trials' masks differ


def test_conv_and_dropout_fall_back_or_raise_where_not_covered():
    conv = replace(profiles.TABLE1["convolution"], width=40, hidden_layers=2)
    assert train(conv, D.x, D.y, seeds=(0,), epochs=2, progress=False).settings["engine"] == "fused"
    adam = train(conv, D.x, D.y, seeds=(0, 1), epochs=2, optimizer="adam", lr=1e-3, progress=False)
    assert adam.settings["engine"] == "reference" and not adam.settings["batched"]
    with pytest.raises(ValueError, match="no branch for variant='conv'"):
        train(conv, D.x, D.y, seeds=(0,), epochs=2, engine="kernel", progress=False)
    # dropout masks are drawn as torch draws them on the CPU: on a GPU the reference runs
    kw = dict(variant="dropout", optimizer="sgd", batched=True, full_batch=True, device=torch.device("cuda"))
    assert fastpath.select_engine("auto", **kw) == "reference"
    assert fastpath.select_engine("auto", **{**kw, "device": torch.device("cpu")}) == "fused"
    for engine in ("fast", "fused"):
        with pytest.raises(ValueError, match=f"`engine='{engine}'` trains variant='dropout' on cpu only"):
            fastpath.select_engine(engine, **kw)
    with pytest.raises(RuntimeError, match="BatchedMLP draws no dropout masks"):
        models.build_batched(replace(profiles.TABLE1["dropout"], width=8, hidden_layers=2), seeds=(0,)).train()(
            torch.zeros(2, 1))


def test_bad_engine():
    with pytest.raises(ValueError, match="`engine` must be one of auto, fast, kernel, fused, reference"):
        train(profiles.TABLE1["shallow"], D.x, D.y, epochs=1, engine="turbo", progress=False)


def test_auto_uses_the_kernel_on_the_cpu():
    arch = replace(profiles.TABLE1["default"], width=6, hidden_layers=3)
    assert train(arch, D.x, D.y, seeds=(0,), epochs=2, progress=False).settings["engine"] == "kernel"


def test_bad_backend():
    arch = replace(profiles.TABLE1["default"], width=6, hidden_layers=3)
    model = models.build_batched(arch, seeds=(0,), dtype=torch.float64)
    with pytest.raises(ValueError, match="`backend` must be one of kernel, fused"):
        fastpath.run_sgd_full_batch(model, X=None, Y=None, spec=1, lr=0.1, epochs=1, recorder=None, rows=None,
                                    bar=None, backend="numba")


@pytest.mark.parametrize("activation", sorted(models.ACTIVATIONS))
def test_kernel_activations_equal_torch(activation):
    """The kernel's scalar activations and derivatives against torch and autograd."""
    from repalign import _kernel

    z = torch.linspace(-3, 3, 601, dtype=torch.float64).requires_grad_()
    a = models.ACTIVATIONS[activation](z)
    (expected,) = torch.autograd.grad(a.sum(), z)
    code = _kernel.ACTIVATION_CODES[activation]
    zs, av = z.detach().numpy(), a.detach().numpy()
    got_a = np.array([_kernel._act(code, v) for v in zs])
    got_d = np.array([_kernel._dact(code, v, w) for v, w in zip(zs, av)])
    np.testing.assert_allclose(got_a, av, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(got_d, expected.numpy(), rtol=1e-14, atol=1e-15)


def test_an_activation_without_kernel_code_trains_on_the_fused_path(monkeypatch):
    from repalign import activations

    softplus = activations.Activation("softplus", torch.nn.functional.softplus,
                                      lambda z, a: torch.sigmoid(z), code=None)
    monkeypatch.setattr(activations, "ACTIVATIONS", MappingProxyType({**activations.ACTIVATIONS,
                                                                      "softplus": softplus}))
    for module in ("models", "networks", "fastpath"):
        monkeypatch.setattr(f"repalign.{module}.ACTIVATIONS", activations.ACTIVATIONS)
    arch = replace(profiles.TABLE1["default"], activation="softplus", width=8, hidden_layers=3)
    kw = dict(seeds=(0, 1), epochs=20, dtype="float64", progress=False)
    fast = train(arch, XOR_X, XOR_Y, **kw)
    ref = train(arch, XOR_X, XOR_Y, engine="reference", **kw)
    assert fast.settings["engine"] == "fused"
    np.testing.assert_allclose(fast.z, ref.z, rtol=1e-10, atol=1e-14)
    with pytest.raises(ValueError, match="no branch for activation='softplus'"):
        train(arch, XOR_X, XOR_Y, engine="kernel", **kw)


def test_conv_and_dropout_stop_per_trial_on_the_cpu_as_the_reference_does():
    """On the CPU the fast path trains these trials one per model (fastpath.trials_together), so each
    stops on its own at ``stop_loss``, exactly as the reference's trials, one after another."""
    assert fastpath.trials_together("conv", torch.device("cpu"), 5) == 1
    assert fastpath.trials_together("conv", torch.device("cuda"), 5) == 5
    assert fastpath.trials_together("mlp", torch.device("cpu"), 5) == 5
    arch = replace(profiles.TABLE1["dropout"], width=10, hidden_layers=3, lr=0.1)
    kw = dict(seeds=(0, 1, 2), epochs=400, stop_loss=0.02, dtype="float64", progress=False)
    fast, ref = (train(arch, D.x, D.y, engine=e, **kw) for e in ("auto", "reference"))
    assert fast.settings["epochs_trained"] == ref.settings["epochs_trained"]
    assert len(set(ref.settings["epochs_trained"])) > 1  # the trials did stop at different epochs
    assert_same(fast, ref)


def test_conv_fast_path_raises_training_diverged():
    from repalign.train import TrainingDiverged

    arch = replace(profiles.TABLE1["convolution"], width=35, hidden_layers=1)
    with pytest.raises(TrainingDiverged, match=r"diverged at epoch \d+ .*engine 'fused'") as info:
        train(arch, D.x, D.y, trials=2, epochs=200, lr=500.0, progress=False)
    assert info.value.recording.trials >= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the conv fast path on a GPU is not tested")
def test_conv_fast_path_on_cuda_equals_the_cpu_reference():
    """On a GPU all conv trials train as one BatchedConvNet (fastpath.trials_together)."""
    arch = replace(profiles.TABLE1["convolution"], width=40, hidden_layers=2, lr=0.05)
    kw = dict(seeds=(0, 1, 2), epochs=300, layer="all", dtype="float64", progress=False)
    gpu = train(arch, D.x, D.y, device="cuda", **kw)
    assert gpu.settings["engine"] == "fused" and gpu.settings["batched"]
    assert_same(gpu, train(arch, D.x, D.y, engine="reference", **kw))


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="no CUDA device: the minibatch SGD/Adam fast path (MNIST, blobs) on a GPU is not tested")
@pytest.mark.parametrize("optimizer, lr", [("sgd", 0.05), ("adam", 1e-3)])
def test_minibatch_fast_path_on_cuda_equals_the_cpu_reference(optimizer, lr):
    """The MNIST/blob families' path on a GPU: minibatch order from the trials' seeds (drawn on the CPU,
    as there), float64, the same records and final weights as the CPU autograd loop."""
    arch = replace(profiles.TABLE1["default"], width=9, hidden_layers=4, lr=lr)
    x = np.vstack([XOR_X, XOR_X + 0.3, XOR_X - 0.2])
    y = np.vstack([XOR_Y, XOR_Y, 1 - XOR_Y])
    kw = dict(seeds=(3, 4), epochs=40, batch_size=5, layer="all", pair=(2, 9), dtype="float64", optimizer=optimizer,
              progress=False, keep_models=True)
    gpu = train(arch, x, y, device="cuda", engine="fast", **kw)
    ref = train(arch, x, y, engine="reference", **kw)
    assert gpu.settings["engine"] == "fused"
    assert_same(gpu, ref)
    for mg, mr in zip(gpu.models, ref.models):
        for pg, pr in zip(mg.parameters(), mr.parameters()):
            np.testing.assert_allclose(pg.detach().cpu().numpy(), pr.detach().numpy(), rtol=1e-9, atol=1e-12)
