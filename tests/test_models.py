"""models and data: shapes, the Table 1 variants, Xavier initialisation, hidden read-out and errors."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from repalign import data, models, profiles

DEFAULT = profiles.TABLE1["default"]
SMALL = {
    "mlp": replace(DEFAULT, width=12, hidden_layers=5),
    "skip": replace(profiles.TABLE1["skip_connections"], width=12, hidden_layers=5),
    "dropout": replace(profiles.TABLE1["dropout"], width=12, hidden_layers=4),
    "conv": replace(profiles.TABLE1["convolution"], width=40, hidden_layers=2),  # 40 - 3 * 10 = 10 left
}


# ---------------------------------------------------------------- data

def test_two_point_defaults_are_the_released_code_dataset():
    d = data.two_point()
    assert d.x.shape == (2, 1) and d.y.shape == (2, 1)
    np.testing.assert_allclose(d.x[:, 0], [profiles.TWO_POINT["x1"], profiles.TWO_POINT["x2"]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(d.y[:, 0], [profiles.TWO_POINT["y1"], profiles.TWO_POINT["y2"]], rtol=0, atol=1e-15)
    assert (d.dx_sq, d.dy_target_sq) == (1.0, 0.5)
    with pytest.raises(ValueError):
        d.x[0, 0] = 3.0  # read-only


@pytest.mark.parametrize("dims", [(1, 1), (3, 2)])
def test_two_point_distances_in_any_dimension(dims):
    d = data.two_point(0.75, 0.0, input_dim=dims[0], output_dim=dims[1])
    assert d.x.shape == (2, dims[0]) and d.y.shape == (2, dims[1])
    assert np.sum((d.x[1] - d.x[0]) ** 2) == pytest.approx(0.75, rel=1e-14)
    assert np.sum((d.y[1] - d.y[0]) ** 2) == 0.0


@pytest.mark.parametrize("kwargs, match", [
    ({"dx_sq": 0.0}, "`dx_sq` must be > 0"),
    ({"dy_target_sq": -0.1}, "`dy_target_sq` is a squared distance"),
    ({"input_dim": 0}, "`input_dim` must be an integer >= 1"),
    ({"x1": float("nan")}, "`x1` must be finite"),
])
def test_two_point_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.two_point(**kwargs)


# ---------------------------------------------------------------- shapes

@pytest.mark.parametrize("activation", list(models.ACTIVATIONS))
@pytest.mark.parametrize("variant", models.VARIANTS)
def test_output_and_hidden_shapes(variant, activation):
    arch = replace(SMALL[variant], activation=activation)
    net = models.build(arch, input_dim=3, output_dim=2, seed=0).eval()
    x = torch.randn(7, 3)
    out, h = net(x)
    assert out.shape == (7, 2) and h is None
    assert net.n_hidden == models.n_hidden(arch)
    hs = net(x, hidden="all")[1]
    assert len(hs) == net.n_hidden == len(net.layer_names)
    for k in range(1, net.n_hidden + 1):
        out_k, h_k = net(x, hidden=k)
        torch.testing.assert_close(out_k, out)
        torch.testing.assert_close(h_k, hs[k - 1])
        assert h_k.shape[0] == 7 and h_k.ndim == 2
    if variant != "conv":
        assert all(h.shape == (7, arch.width) for h in hs)


def test_conv_matches_the_released_code_at_table1_size():
    arch = profiles.TABLE1["convolution"]
    net = models.build(arch, seed=0)
    assert (net.lift.in_features, net.lift.out_features) == (1, 500)
    assert len(net.convs) == 11
    assert [(c.in_channels, c.out_channels) for c in net.convs] == [(1, 20)] + [(20, 20)] * 9 + [(20, 1)]
    assert all(c.kernel_size == (11,) and c.padding == (0,) and c.stride == (1,) for c in net.convs)
    assert all(c.bias is not None for c in net.convs)
    assert (net.readout.in_features, net.readout.out_features) == (390, 1)
    k = models.default_hidden_layer(arch)
    assert net.layer_names[k - 1] == "conv5"
    assert net(torch.zeros(2, 1), hidden=k)[1].shape == (2, 20 * (500 - 5 * 10))


def test_conv_width_too_small_is_an_error():
    with pytest.raises(ValueError, match="`width` must be > \\(hidden_layers \\+ 1\\)"):
        models.build(replace(profiles.TABLE1["convolution"], width=100), seed=0)


def test_skip_connections_by_hand():
    torch.manual_seed(0)
    net = models.build(replace(SMALL["skip"], activation="tanh"), seed=1, dtype=torch.float64)
    x = torch.randn(4, 1, dtype=torch.float64)
    hs = []
    a = x
    for i, lin in enumerate(net.linears[:-1]):
        a = torch.tanh(a @ lin.weight.T + lin.bias)
        if i >= 2:
            a = a + hs[i - 2]
        hs.append(a)
    out, got = net(x, hidden="all")
    for mine, theirs in zip(hs, got):
        torch.testing.assert_close(theirs, mine, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(out, a @ net.linears[-1].weight.T + net.linears[-1].bias, rtol=1e-14, atol=1e-14)
    plain = models.build(replace(SMALL["skip"], activation="tanh", variant="mlp"), seed=1, dtype=torch.float64)
    torch.testing.assert_close(plain(x, hidden=2)[1], got[1])  # same weights; skips start at layer 3
    assert not torch.allclose(plain(x, hidden=3)[1], got[2])


def test_dropout_before_every_linear_and_off_in_eval():
    arch = replace(SMALL["dropout"], width=50)
    net = models.build(arch, seed=0)
    assert net.dropout == 0.1
    calls = []
    net._drop.register_forward_hook(lambda *args: calls.append(1))
    x = torch.ones(64, 1)
    net.eval()
    h = net(x, hidden=1)[1]
    assert torch.equal(h, h[:1].expand_as(h))  # eval mode: no masks
    assert len(calls) == arch.hidden_layers + 1  # before every linear layer, the read-out included
    net.train()
    torch.manual_seed(0)
    h = net(x, hidden=1)[1]
    # the raw input is dropped too: with zero biases a dropped input gives an all-zero first layer,
    # a kept one the inverted-dropout-scaled response act(W / 0.9)
    dropped = torch.all(h == 0, dim=1)
    kept = torch.nn.functional.leaky_relu(net.linears[0].weight[:, 0] / 0.9)
    assert 0 < dropped.sum() < 64
    torch.testing.assert_close(h[~dropped], kept.expand(int((~dropped).sum()), -1))


# ---------------------------------------------------------------- initialisation

@pytest.mark.parametrize("gain", [0.35, 1.4])
def test_xavier_normal_std_and_zero_biases(gain):
    net = models.MLP(width=800, hidden_layers=2, gain=gain, seed=3, dtype=torch.float64)
    w = net.linears[1].weight  # 800 x 800
    expected = gain * np.sqrt(2.0 / (800 + 800))
    assert w.std().item() == pytest.approx(expected, rel=0.01)
    assert abs(w.mean().item()) < 5 * expected / 800
    assert net.linears[0].weight.std().item() == pytest.approx(gain * np.sqrt(2.0 / 801), rel=0.1)
    assert all(torch.count_nonzero(lin.bias) == 0 for lin in net.linears)


def test_xavier_normal_conv_fans_include_the_kernel():
    net = models.build(profiles.TABLE1["convolution"], seed=0, dtype=torch.float64)
    w = torch.cat([c.weight.flatten() for c in net.convs[1:-1]])  # 20 x 20 x 11 each
    assert w.std().item() == pytest.approx(0.95 * np.sqrt(2.0 / (220 + 220)), rel=0.01)
    assert all(torch.count_nonzero(c.bias) == 0 for c in net.convs)


def test_init_depends_on_seed_only():
    a = models.build(SMALL["mlp"], seed=5)
    b = models.build(SMALL["mlp"], seed=5, dtype=torch.float64)
    c = models.build(SMALL["mlp"], seed=6)
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb.float())
    assert not torch.equal(a.linears[1].weight, c.linears[1].weight)


# ---------------------------------------------------------------- batched model

def _assert_trials_match(batched, arch, seeds, x, out, hs):
    """Trial ``k`` of ``batched`` computes what ``models.build(arch, seed=seeds[k])`` computes on ``x``
    (``out, hs`` the batched forward pass) and gives back exactly its weights."""
    for k, s in enumerate(seeds):
        single = models.build(arch, seed=s, dtype=torch.float64)
        o, h = single(x, hidden="all")
        torch.testing.assert_close(out[k], o, rtol=1e-13, atol=1e-14)
        for a, b in zip(hs, h):
            torch.testing.assert_close(a[k], b, rtol=1e-13, atol=1e-14)
        for p, q in zip(batched.trial(k).parameters(), single.parameters()):
            assert torch.equal(p, q)


@pytest.mark.parametrize("variant", ["mlp", "skip"])
def test_batched_mlp_equals_its_trials(variant):
    arch = SMALL[variant]
    seeds = [0, 7, 9]
    batched = models.build_batched(arch, seeds=seeds, dtype=torch.float64)
    x = torch.randn(5, 1, dtype=torch.float64)
    out, hs = batched(x, hidden="all")
    assert out.shape == (3, 5, 1) and len(hs) == arch.hidden_layers and hs[0].shape == (3, 5, arch.width)
    _assert_trials_match(batched, arch, seeds, x, out, hs)


def test_batched_conv_equals_its_trials():
    arch = SMALL["conv"]
    seeds = [0, 7, 9]
    batched = models.build_batched(arch, seeds=seeds, dtype=torch.float64)
    assert isinstance(batched, models.BatchedConvNet) and isinstance(batched, models.BatchedNetwork)
    x = torch.randn(5, 1, dtype=torch.float64)
    out, hs = batched(x, hidden="all")
    assert out.shape == (3, 5, 1) and len(hs) == models.n_hidden(arch)
    _assert_trials_match(batched, arch, seeds, x, out, hs)


def test_batched_dropout_evaluates_in_eval_mode_only():
    arch = SMALL["dropout"]
    batched = models.build_batched(arch, seeds=[0, 1], dtype=torch.float64).eval()
    x = torch.randn(4, 1, dtype=torch.float64)
    single = models.build(arch, seed=1, dtype=torch.float64).eval()
    torch.testing.assert_close(batched(x)[0][1], single(x)[0], rtol=1e-13, atol=1e-14)
    assert batched.trial(1).dropout == single.dropout
    with pytest.raises(RuntimeError, match="draws no dropout masks"):
        batched.train()(x)


# ---------------------------------------------------------------- read-out layer

def test_default_hidden_layer_paper_and_code():
    t = profiles.TABLE1
    for name in ("default", "narrow", "linear", "relu", "elu", "tanh", "swish", "skip_connections",
                 "low_initial_weights", "very_high_initial_weights"):
        assert models.default_hidden_layer(t[name]) == 11
        assert models.default_hidden_layer(t[name], convention="code") == 11
    assert models.default_hidden_layer(t["shallow"]) == 2
    assert models.default_hidden_layer(t["convolution"], convention="code") == 6  # output of conv5
    assert models.default_hidden_layer(t["dropout"]) == 6
    assert models.default_hidden_layer(t["dropout"], convention="code") == 3
    with pytest.raises(ValueError, match="`convention` must be one of paper, code"):
        models.default_hidden_layer(t["default"], convention="halfway")


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("variant", models.VARIANTS)
@pytest.mark.parametrize("hidden", [0, -1, 99, "middle", 2.0])
def test_hidden_layer_out_of_range(variant, hidden):
    net = models.build(SMALL[variant], seed=0)
    with pytest.raises(ValueError, match="`hidden` must be None, 'all' or an integer in \\[1, "):
        net(torch.zeros(2, 1), hidden=hidden)


_BAD_X = [
    (torch.zeros(2, 3), ValueError, r"`x` must have 2 column\(s\), the model's input_dim; got shape \(2, 3\)"),
    (torch.zeros(2), ValueError, r"`x` must have shape \(batch, 2\)"),
    (torch.zeros(1, 2, 2, 2), ValueError, r"`x` must have shape \(batch, 2\)"),
    (torch.zeros(2, 2, dtype=torch.float64), ValueError, r"`x` must have the model's dtype torch.float32, got "
                                                        r"torch.float64"),
    (torch.zeros(2, 2, dtype=torch.int64), ValueError, r"`x` must have the model's dtype"),
    (np.zeros((2, 2), dtype=np.float32), TypeError, r"`x` must be a torch.Tensor of shape \(batch, 2\)"),
]


@pytest.mark.parametrize("variant", models.VARIANTS)
@pytest.mark.parametrize(("x", "error", "match"), _BAD_X)
def test_bad_input_names_x(variant, x, error, match):
    """Wrong width, ndim or dtype: an error naming `x` and the expected shape, not a raw torch error."""
    net = models.build(SMALL[variant], input_dim=2, seed=0)
    with pytest.raises(error, match=match):
        net(x)


def test_batched_bad_input_names_x():
    net = models.build_batched(SMALL["mlp"], seeds=[0, 1, 2], input_dim=2)
    net(torch.zeros(3, 4, 2))
    net(torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"`x` must have shape \(batch, 2\) or \(3, batch, 2\) \(the model "
                                         r"has 3 trials\), got shape \(2, 4, 2\)"):
        net(torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match=r"`x` must have 2 column"):
        net(torch.zeros(3, 4, 5))
    with pytest.raises(ValueError, match=r"`x` must have shape"):
        net(torch.zeros(4))
    with pytest.raises(ValueError, match=r"model's dtype"):
        net(torch.zeros(4, 2, dtype=torch.float64))


def test_unknown_activation():
    with pytest.raises(ValueError, match="`activation` must be one of linear, relu, leaky_relu"):
        models.build(replace(DEFAULT, activation="swish"), seed=0)
    with pytest.raises(ValueError, match="`activation` must be one of"):
        models.MLP(width=3, hidden_layers=2, activation="sigmoid", seed=0)


@pytest.mark.parametrize("field, value, match", [
    ("width", 0, "`width` must be an integer >= 1"),
    ("width", -5, "`width` must be an integer >= 1"),
    ("hidden_layers", 0, "`hidden_layers` must be an integer >= 1"),
    ("gain", 0.0, "`gain` .* must be finite and > 0"),
    ("gain", -1.0, "`gain` .* must be finite and > 0"),
    ("variant", "resnet", "`arch.variant` must be one of mlp, skip, conv, dropout"),
])
def test_bad_architecture(field, value, match):
    for base in (SMALL["mlp"], SMALL["conv"]):
        if field == "variant" and base is SMALL["conv"]:
            continue
        with pytest.raises(ValueError, match=match):
            models.build(replace(base, **{field: value}), seed=0)


def test_bad_seed_and_arch():
    with pytest.raises(ValueError, match="`seed` must be an integer >= 0"):
        models.build(DEFAULT, seed=-1)
    with pytest.raises(ValueError, match="`arch` must be a profiles.Architecture"):
        models.build("default", seed=0)


def test_every_variant_builds_a_network_of_the_protocol():
    for name, variant in models.VARIANTS.items():
        arch = replace(profiles.TABLE1["default"], variant=name, width=40, hidden_layers=2)
        net = models.build(arch, seed=0)
        assert isinstance(net, models.Network) and len(net.layer_names) == net.n_hidden == models.n_hidden(arch)
        assert 1 <= models.default_hidden_layer(arch) <= net.n_hidden
        if variant.batch is not None:
            assert isinstance(models.build_batched(arch, seeds=(0, 1)), models.BatchedNetwork)


def test_one_activation_registry_feeds_models_fastpath_and_kernel():
    from repalign import _kernel, activations, fastpath

    assert models.ACTIVATIONS is activations.ACTIVATIONS
    for name, act in activations.ACTIVATIONS.items():
        assert fastpath.DERIVATIVES[name] is act.derivative and _kernel.ACTIVATION_CODES[name] == act.code
    assert len({a.code for a in activations.ACTIVATIONS.values()}) == len(activations.ACTIVATIONS)
