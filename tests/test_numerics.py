"""repalign.numerics: subnormal flushing as a local, restored setting, and results that do not depend on it."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from repalign import data, fastpath, models, numerics, profiles
from repalign.train import train

pytestmark = pytest.mark.skipif(not numerics.flush_denormal_supported(),
                                reason="this CPU cannot flush subnormals (torch.set_flush_denormal says so)")


@pytest.fixture(autouse=True)
def _two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(2, before)))  # a team of workers for the setting to reach
    yield
    torch.set_num_threads(before)


def test_flush_denormal_sets_every_thread_and_restores():
    assert not numerics.denormals_flushed()
    with numerics.flush_denormal() as ok:
        assert ok and numerics.denormals_flushed()
        with numerics.flush_denormal(False) as ok_off:  # nested: off inside on, on again after
            assert ok_off and not numerics.denormals_flushed()
        assert numerics.denormals_flushed()
    assert not numerics.denormals_flushed()


def test_flushing_reaches_torchs_threads_after_numba_loaded_another_openmp(tmp_path):
    """numba's OpenMP threading layer loads the system libgomp beside torch's own; the flags must still be
    set on torch's team (a fresh interpreter, so that nothing has picked the runtime yet)."""
    import subprocess
    import sys

    code = (
        "import torch; torch.set_num_threads(2)\n"
        "from repalign import data, numerics, profiles\n"
        "from repalign.train import train\n"
        "d = data.two_point()\n"
        "train(profiles.TABLE1['default'], d.x, d.y, trials=1, epochs=2, progress=False, engine='kernel')\n"
        "with numerics.flush_denormal() as ok:\n"
        "    inside = numerics.denormals_flushed()\n"
        "print(ok, inside, numerics.denormals_flushed())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.split() == ["True", "True", "False"], out.stdout + out.stderr


def test_flush_denormal_restores_after_an_exception():
    with pytest.raises(KeyError), numerics.flush_denormal():
        raise KeyError("inside")
    assert not numerics.denormals_flushed()


def test_flush_denormal_rejects_a_non_bool():
    with pytest.raises(TypeError, match="`enabled` must be True or False, got 1"), numerics.flush_denormal(1):
        pass


#: Small initial weights (gain 0.1, 20 layers): the first layers' gradients are ~1e-20, so float32 Adam's
#: second moments are subnormal (checked below).
SMALL = replace(profiles.TABLE1["default"], width=32, hidden_layers=20, gain=0.1)


def test_small_weight_adam_has_subnormal_second_moments():
    """The premise of the next test: without flushing, this run's Adam moments do hold subnormals."""
    d = data.two_point()
    net = fastpath._Fused(models.build_batched(SMALL, seeds=(0,)), "adam", 1e-3)
    x, y = torch.tensor(d.x, dtype=torch.float32).expand(1, 2, 1), torch.tensor(d.y, dtype=torch.float32)
    with torch.no_grad():
        for _ in range(20):
            net.step(x, y)
    v = torch.cat([m.flatten() for m in net.update.v])
    assert int(((v != 0) & (v.abs() < torch.finfo(torch.float32).tiny)).sum()) > 100


@pytest.mark.parametrize("engine", ["fused"])  # the reference path agrees with it (test_fastpath)
def test_adam_records_do_not_depend_on_flushing(engine):
    """Flushing changes only values below 1.2e-38; in Adam's denominator ``sqrt(v) + eps`` (eps 1e-8) that
    is a relative change of at most 1e-11 per step, far below float32 rounding. Stated tolerance: every
    recorded curve agrees to 1e-6 of its largest magnitude over 150 steps."""
    d = data.two_point()
    kw = dict(seeds=(0, 1), epochs=150, optimizer="adam", lr=1e-3, engine=engine, progress=False)
    with numerics.flush_denormal(False):
        kept = train(SMALL, d.x, d.y, **kw)
    with numerics.flush_denormal(True) as ok:
        assert ok
        flushed = train(SMALL, d.x, d.y, **kw)
    assert not numerics.denormals_flushed()
    assert (kept.loss[:, -1] < 0.5 * kept.loss[:, 0]).all()  # it trained
    for f in ("dh_sq", "dy_sq", "w", "loss", "mean_output"):
        a, b = getattr(kept, f), getattr(flushed, f)
        assert np.max(np.abs(a - b)) <= 1e-6 * np.max(np.abs(b)), f
