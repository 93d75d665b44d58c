"""Threads: train() picks its thread counts per call and leaves torch's and numba's global settings
(thread counts, flush-denormal) as it found them, on every engine."""

from __future__ import annotations

from dataclasses import replace

import numba
import pytest
import torch

from repalign import _threads, data, profiles
from repalign.train import train

ARCH = replace(profiles.TABLE1["default"], width=8, hidden_layers=3)


def _flushing() -> bool:
    """Whether subnormal float32 numbers are flushed to zero (torch has no getter for the setting)."""
    return float(torch.tensor([1e-39], dtype=torch.float32).mul(1.0)[0]) == 0.0


def _settings():
    return torch.get_num_threads(), numba.get_num_threads(), _flushing()


@pytest.mark.parametrize("engine", ["kernel", "fused", "reference"])
@pytest.mark.parametrize("threads", [None, 1, 2])
@pytest.mark.parametrize("trials", [1, 3])
def test_train_leaves_global_thread_settings_unchanged(engine, threads, trials):
    d = data.two_point()
    before = _settings()
    rec = train(ARCH, d.x, d.y, trials=trials, epochs=3, engine=engine, threads=threads, progress=False)
    assert rec.settings["engine"] == engine
    assert _settings() == before


def test_a_failing_call_restores_the_settings_too():
    d = data.two_point()
    before = _settings()
    with pytest.raises(Exception):  # noqa: B017  (diverges: TrainingDiverged; the point is the finally)
        train(replace(ARCH, gain=1e6), d.x, d.y, epochs=3, engine="fused", threads=1, progress=False)
    assert _settings() == before


def test_small_torch_problems_get_one_thread_and_requests_are_capped_to_the_cores(monkeypatch):
    monkeypatch.setattr(_threads, "cores", lambda: 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    assert _threads.train_threads("fused", 2, None, "cpu") == 1  # the two-point problem
    assert _threads.train_threads("reference", _threads.SMALL_ROWS, None, "cpu") == 1
    assert _threads.train_threads("fused", _threads.SMALL_ROWS + 1, None, "cpu") == 2  # torch's, capped to cores
    assert _threads.train_threads("kernel", 2, None, "cpu") == 2  # the kernel's threads do not spin-wait
    assert _threads.train_threads("fused", 2, 16, "cpu") == 2  # a request, capped to the cores
    assert _threads.train_threads("fused", 2, 1, "cpu") == 1


def test_the_fused_path_runs_with_the_chosen_count(monkeypatch):
    from repalign import fastpath

    seen = []
    original = fastpath._Fused.__init__

    def spy(self, model, *args):
        seen.append(torch.get_num_threads())
        original(self, model, *args)

    monkeypatch.setattr(fastpath._Fused, "__init__", spy)
    d = data.two_point()
    before = torch.get_num_threads()
    train(ARCH, d.x, d.y, epochs=2, engine="fused", progress=False)
    train(ARCH, d.x, d.y, epochs=2, engine="fused", threads=2, progress=False)
    assert seen == [1, min(2, _threads.cores())]
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
def test_bad_threads(bad):
    d = data.two_point()
    with pytest.raises(ValueError, match="`threads` must be an integer"):
        train(ARCH, d.x, d.y, epochs=1, threads=bad, progress=False)
