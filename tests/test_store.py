"""store: one file per task, keyed by spec and result version; atomic, checksummed, never pickled."""

import errno
import hashlib
import json
import multiprocessing
import os
import pickle
import signal
import warnings

import numpy as np
import pytest

from repalign import store as st
from repalign import tasks
from repalign.store import CorruptResultWarning, Store, StoreError, Task


@st.register("test_poly", version=1)
def _poly(spec):
    x = np.linspace(0.0, 1.0, spec["n"])
    return {"x": x, "y": x ** spec["power"] + spec["seed"], "seed": spec["seed"], "name": np.array("poly")}


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "store")


def _task(seed=0, n=5):
    return Task("test_poly", {"n": n, "power": 2, "seed": seed})


def test_compute_then_load_gives_the_same_arrays_and_provenance(store):
    first = store.compute(_task())
    again = store.compute(_task())
    assert not first.loaded and again.loaded
    assert set(first.arrays) == set(again.arrays) == {"x", "y", "seed", "name"}
    for k in first.arrays:
        assert np.array_equal(first[k], again[k]) and first[k].dtype == again[k].dtype
    prov = again.provenance
    for field in ("package_version", "git_revision", "git_dirty", "python", "numpy", "scipy", "torch", "numba",
                  "device", "cpu_count", "wall_seconds", "started", "finished", "sha256", "result_version"):
        assert field in prov, field
    assert prov["seed"] == 0 and prov["spec"] == dict(_task().spec)
    npz, _ = store.paths(_task())
    assert prov["sha256"] == hashlib.sha256(npz.read_bytes()).hexdigest()


def test_the_same_arrays_give_the_same_bytes(store, tmp_path):
    other = Store(tmp_path / "other")
    a, b = store.compute(_task()), other.compute(_task())
    assert store.paths(_task())[0].read_bytes() == other.paths(_task())[0].read_bytes()
    assert a.provenance["sha256"] == b.provenance["sha256"]


def test_keys_name_the_spec_and_tasks_compare_by_value():
    assert _task(0) == Task("test_poly", {"seed": 0, "power": 2, "n": 5}) and hash(_task(0)) == hash(_task())
    assert _task(0).key != _task(1).key
    assert pickle.loads(pickle.dumps(_task())) == _task()
    with pytest.raises(TypeError, match="JSON"):
        Task("test_poly", {"f": object()})
    with pytest.raises(ValueError, match="unknown experiment"):
        _ = Task("no_such_experiment", {}).key


def test_changed_result_version_misses_old_files(store):
    store.compute(_task())
    assert _task() in store
    old_key = _task().key
    st.register("test_poly", version=2)(_poly)
    try:
        assert _task().key != old_key
        assert store.get(_task()) is None
        assert not store.compute(_task()).loaded
    finally:
        st.register("test_poly", version=1)(_poly)
    assert store.get(_task()) is not None  # the version-1 file is still there, untouched


def test_a_per_spec_version_misses_only_the_changed_specs_files(store):
    """version_for bumps some specs (a faster path for one variant); every other spec keeps its key and
    its stored result."""
    changed, kept = _task(seed=1), _task(seed=0)
    store.compute(changed), store.compute(kept)
    keys = changed.key, kept.key
    st.register("test_poly", version=1, version_for=lambda spec: 2 if spec["seed"] == 1 else 1)(_poly)
    try:
        assert (changed.version, kept.version) == (2, 1)
        assert kept.key == keys[1] and store.get(kept) is not None
        assert changed.key != keys[0] and store.get(changed) is None
        assert store.compute(changed).provenance["result_version"] == 2
        st.register("test_poly", version=1, version_for=lambda spec: 0)(_poly)
        with pytest.raises(ValueError, match="`version_for` must return an integer >= 1, got 0"):
            _ = kept.key
    finally:
        st.register("test_poly", version=1)(_poly)


@pytest.mark.parametrize("damage", ["flip", "truncate", "bad_json"])
def test_corrupt_file_is_reported_never_loaded_and_recomputed(store, damage):
    store.compute(_task())
    npz, meta = store.paths(_task())
    if damage == "flip":
        data = bytearray(npz.read_bytes())
        data[len(data) // 2] ^= 0xFF
        npz.write_bytes(bytes(data))
    elif damage == "truncate":
        npz.write_bytes(npz.read_bytes()[:100])
    else:
        meta.write_text(meta.read_text()[:50])
    with pytest.warns(CorruptResultWarning, match=str(npz)):
        assert store.get(_task()) is None
    with pytest.warns(CorruptResultWarning):
        again = store.compute(_task())
    assert not again.loaded and np.array_equal(again["y"], _poly(dict(_task().spec))["y"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.get(_task()).loaded


def test_store_needs_no_pickle(store):
    store.compute(_task())
    npz, _ = store.paths(_task())
    with np.load(npz, allow_pickle=False) as f:
        assert set(f.files) == {"x", "y", "seed", "name"}
    with pytest.raises(TypeError, match="dtype object"):
        store.put(_task(7), {"bad": np.array([{"a": 1}], dtype=object)})


def _writer(root, kill_at_replace):
    """Store seeds 0-2, then start seed 3 and die (SIGKILL) at its ``kill_at_replace``-th rename."""
    s = Store(root)
    for seed in range(3):
        s.compute(_task(seed))
    real, calls = os.replace, []

    def dying_replace(src, dst):
        calls.append(dst)
        if len(calls) == kill_at_replace:
            os.kill(os.getpid(), signal.SIGKILL)
        real(src, dst)

    os.replace = dying_replace
    s.compute(_task(3))


@pytest.mark.parametrize("kill_at_replace", [1, 2], ids=["before_npz_rename", "before_provenance_rename"])
def test_killed_writer_keeps_finished_results_and_the_broken_one_is_recomputed(store, kill_at_replace):
    proc = multiprocessing.get_context("fork").Process(target=_writer, args=(store.root, kill_at_replace))
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    assert list(store.root.glob("test_poly/.*.tmp")), "the killed write should have left its temporary file"
    for seed in range(3):
        assert store.get(_task(seed)).loaded
    assert store.get(_task(3)) is None
    redone = store.compute(_task(3))
    assert not redone.loaded and store.get(_task(3)).loaded


def test_unwritable_or_full_store_is_a_clear_error_naming_the_path(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match=str(blocker)):
        Store(blocker / "store").compute(_task())

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    s = Store(tmp_path / "store")
    monkeypatch.setattr(st.os, "fsync", full)
    with pytest.raises(StoreError, match="No space left on device") as info:
        s.compute(_task())
    assert str(s.root) in str(info.value)
    assert not list(s.root.rglob("*.tmp")), "a failed write must not leave its temporary file"


def test_default_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(st.ENV_VAR, str(tmp_path / "elsewhere"))
    assert Store().root == tmp_path / "elsewhere"
    monkeypatch.delenv(st.ENV_VAR)
    assert Store().root.parts[-2:] == ("results", "store")


def test_two_point_task_computed_twice_is_identical(store):
    # A real training task (Table 1's shallow network, 2 seeds, 150 epochs) and its fits.
    task = tasks.two_point_task("shallow", profile="quick", trials=2, epochs=150)
    a, b = task.run(), task.run()
    assert set(a) >= {"dh_sq", "dy_sq", "w", "loss", "epochs", "rates", "errors"}
    assert a["dh_sq"].shape == (2, 151) and a["rates"].shape == (2, 3)
    for k in a:
        assert a[k].tobytes() == b[k].tobytes(), k
    stored = store.put(task, a)
    assert json.loads(store.paths(task)[1].read_text())["seed"] == [0, 1]
    assert all(np.array_equal(store.get(task)[k], stored[k]) for k in a)


def test_stored_two_point_task_rebuilds_the_run_of_run_two_point(store):
    from repalign import experiments

    task = tasks.two_point_task("shallow", profile="quick", trials=2, epochs=150)
    direct = experiments.run_two_point("shallow", profile="quick", trials=2, epochs=150, progress=False)
    store.compute(task)
    rebuilt = tasks.two_point_run(store.get(task))
    s1, s2 = direct.summary(), rebuilt.summary()
    assert {k: v for k, v in s1.items() if k != "seconds"} == {k: v for k, v in s2.items() if k != "seconds"}
    for k in ("dh_sq", "dy_sq", "w", "loss", "mean_output", "epochs"):
        assert np.array_equal(getattr(direct.recording, k), getattr(rebuilt.recording, k)), k
    assert dict(direct.recording.settings) == dict(rebuilt.recording.settings)
    assert direct.recording.seeds == rebuilt.recording.seeds and direct.recording.layer == rebuilt.recording.layer
    assert np.array_equal(direct.fits[1].z_theory, rebuilt.fits[1].z_theory)
    assert direct.fits[0].message == rebuilt.fits[0].message
    assert "1 results: 1 loaded from the store (revision" in st.describe([store.compute(task)])


def test_tasks_run_torch_with_one_thread_and_restore_it():
    import torch

    before = torch.get_num_threads()
    seen = tasks._one_torch_thread(lambda spec: torch.get_num_threads())({})
    assert seen == 1 and torch.get_num_threads() == before


def _paper_task(seed=0):
    return Task("test_poly", {"n": 4, "power": 3, "seed": seed, "profile": "paper"})


@pytest.fixture
def published(tmp_path, monkeypatch):
    """A published paper-profile store holding `_paper_task(0)`, and an empty local store."""
    monkeypatch.setenv(st.PUBLISHED_ENV_VAR, str(tmp_path / "published"))
    monkeypatch.setenv(st.ENV_VAR, str(tmp_path / "local"))
    monkeypatch.delenv(st.STORE_ONLY_ENV_VAR, raising=False)
    pub = Store(tmp_path / "published" / "paper")
    pub.compute(_paper_task(0))
    return pub


def test_cached_reads_the_published_store_when_the_local_one_lacks_the_task(published, tmp_path):
    result = st.cached(_paper_task(0))
    assert result.loaded and result.provenance["store"] == str(published.root)
    assert not (tmp_path / "local").exists()  # nothing was computed or copied
    assert "1 loaded from the published paper-profile store" in st.describe([result])
    fresh = st.cached(_paper_task(1))  # not published: computed into the local store
    assert not fresh.loaded and _paper_task(1) in Store(tmp_path / "local")
    assert st.describe([result, fresh]).endswith(", 1 computed now.")


def test_a_local_result_wins_over_the_published_one(published, tmp_path):
    local = Store(tmp_path / "local")
    local.put(_paper_task(0), {"x": np.zeros(1)})
    result = st.cached(_paper_task(0))
    assert result.provenance["store"] == str(local.root) and result["x"].tolist() == [0.0]
    assert "loaded from the store" in st.describe([result])


def test_an_explicit_store_has_no_published_fallback(published, tmp_path):
    assert not Store(tmp_path / "elsewhere").compute(_paper_task(0)).loaded


def test_store_only_raises_for_a_missing_task_and_says_how_to_compute_it(published, monkeypatch):
    monkeypatch.setenv(st.STORE_ONLY_ENV_VAR, "1")
    assert st.cached(_paper_task(0)).loaded  # present: loaded as usual
    with pytest.raises(st.MissingResultError, match=r"campaign run --profile paper"):
        st.cached(_paper_task(1))


@pytest.mark.parametrize("value", ["2", "on", "ye s"])
def test_store_only_rejects_values_it_cannot_read(monkeypatch, value):
    monkeypatch.setenv(st.STORE_ONLY_ENV_VAR, value)
    with pytest.raises(ValueError, match=st.STORE_ONLY_ENV_VAR):
        st.store_only()


def test_published_root_names_a_profile(tmp_path, monkeypatch):
    monkeypatch.setenv(st.PUBLISHED_ENV_VAR, str(tmp_path))
    assert st.published_root("paper") == tmp_path / "paper"
    assert st.published_store("paper") is None  # no such directory yet
    with pytest.raises(ValueError, match="profile"):
        st.published_root("fast")
