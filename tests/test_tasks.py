"""tasks: chapters 3, 4, 5 and 7 as store tasks. Each new experiment computed twice is identical, loads
without pickle, and rebuilds exactly what the chapter's direct call returned; bad specs are ValueErrors."""

import zipfile
from dataclasses import replace

import numpy as np
import pytest

from repalign import data, experiments, numerics, profiles, tasks
from repalign.store import Store, Task


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "store")


def _identical_twice(task):
    a, b = task.run(), task.run()
    assert set(a) == set(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes(), k
    return a


def _loads_without_pickle(store, task):
    stored = store.compute(task)
    npz, _ = store.paths(task)
    with np.load(npz, allow_pickle=False) as f:  # no object arrays: it would raise
        assert set(f.files) == set(stored.arrays)
    loaded = store.get(task)
    assert loaded.loaded and all(np.array_equal(loaded[k], stored[k]) for k in stored.arrays)
    return loaded


def test_chapter_task_counts_follow_the_profiles():
    for profile in ("quick", "paper"):
        rl, xor, blobs = (profiles.settings(s, profile) for s in ("rich_lazy", "xor", "blobs"))
        cells = len(rl["grid_dx_sq"]) * len(rl["grid_dy_sq"])
        # the code's reading of the grid (values squared) shares the cells whose values square to
        # grid values (1.0 with 0.0, 0.25 or 1.0 here), which are listed once
        shared = sum(a * a in rl["grid_dx_sq"] and b * b in rl["grid_dy_sq"]
                     for a in rl["grid_dx_sq"] for b in rl["grid_dy_sq"])
        counts = {3: len(rl["gain_rows"]) + len(rl["fig5_architectures"]) * (1 + cells)
                  + len(rl["code_reading_architectures"]) * (cells - shared),
                  4: 1 + 5 + 1 + len(xor["adam_lr"]), 5: len(blobs["rows"]) + 1 + len(blobs["adam_rows"]), 7: 1}
        for chapter, n in counts.items():
            listed = tasks.chapter_tasks(chapter, profile)
            assert len(listed) == n == len(set(listed)), (profile, chapter)
    assert [len(tasks.chapter_tasks(c, "quick")) for c in (3, 4, 5, 7)] == [156, 10, 6, 1]
    # chapter 4's rate run is chapter 2's default-network task in the quick profile: plan lists it once
    assert tasks.chapter_tasks(4, "quick")[0] in tasks.chapter_tasks(2, "quick")
    assert len(tasks.plan("quick", 4)["04_xor"]) == 10 and len(tasks.plan("quick")["04_xor"]) == 9


def test_pairwise_task_is_deterministic_and_rebuilds_run_pairwise(store):
    arch = replace(profiles.TABLE2["xor_2_layers"], width=8, epochs=40)
    task = tasks.pairwise_task(arch, profile="quick", seed=3, trials=2)
    arrays = _identical_twice(task)
    assert arrays["measured"].shape == arrays["initial"].shape == (2, 4, 4) and arrays["seeds"].tolist() == [3, 4]
    rebuilt = tasks.pairwise_run(_loads_without_pickle(store, task), 0.5)
    x, y = data.xor()
    # the direct call under the task's torch settings (one thread, subnormals flushed)
    direct = tasks._flushed_one_torch_thread(lambda _: experiments.run_pairwise(
        arch.name, arch, x, y, tau_y_over_tau_h=0.5, seeds=(3, 4)))({})
    for k in ("initial", "measured", "predicted", "final_loss", "same_target"):
        assert np.array_equal(getattr(direct, k), getattr(rebuilt, k)), k
    assert direct.settings == rebuilt.settings and rebuilt.name == arch.name
    assert np.array_equal(direct.merge_ratio(), rebuilt.merge_ratio())
    with pytest.raises(ValueError, match="tau_y_over_tau_h"):
        tasks.pairwise_run(store.get(task), 0.0)


def test_blobs_task_is_deterministic_and_rebuilds_run_blobs(store):
    arch = replace(profiles.TABLE2["blobs_low"], width=6, epochs=2)
    task = tasks.blobs_task(arch, profile="quick", trials=1, batch_size=600, optimizer="adam", lr=1e-3)
    arrays = _identical_twice(task)
    assert arrays["hidden"].shape == (1, 1800, 6) and arrays["loss"].shape[0] == 1
    rebuilt = tasks.blob_run(_loads_without_pickle(store, task))
    direct = tasks._flushed_one_torch_thread(lambda _: experiments.run_blobs(
        arch.name, arch, data.blobs(), seeds=[0], batch_size=600, layer=3, optimizer="adam", lr=1e-3))({})
    for k in ("hidden", "loss", "shares", "gap", "pc1"):
        assert np.array_equal(getattr(direct, k), getattr(rebuilt, k)), k
    assert direct.settings == rebuilt.settings
    assert {k: v for k, v in direct.row().items() if k != "seconds"} == \
        {k: v for k, v in rebuilt.row().items() if k != "seconds"}


def test_distance_grid_from_stored_cells_equals_distance_grid(store):
    arch = profiles.architecture("shallow", "quick")
    cells = [tasks.grid_cell_task("shallow", a, b, profile="quick", seeds=[7, 8], lr=0.02, epochs=300, stop_loss=1e-3)
             for a in (0.5, 1.5) for b in (0.0, 1.0)]
    grid = tasks.distance_grid([store.compute(t) for t in cells], 0.7, drop_loss=1e-2)
    direct = tasks._one_torch_thread(lambda _: experiments.distance_grid(
        arch, 0.7, dx_sq=(0.5, 1.5), dy_target_sq=(0.0, 1.0), seeds=(7, 8), lr=0.02, epochs=300, stop_loss=1e-3,
        drop_loss=1e-2, progress=False))({})
    for k in ("dx_sq", "dy_target_sq", "seed", "measured", "predicted", "final_loss", "epochs", "kept"):
        a, b = getattr(direct, k), getattr(grid, k)
        assert a.dtype == b.dtype and np.array_equal(a, b), k
    assert grid.name == "shallow" and grid.correlation() == direct.correlation()
    with pytest.raises(ValueError, match="non-empty"):
        tasks.distance_grid([], 0.7)
    with pytest.raises(ValueError, match="one architecture"):
        other = tasks.grid_cell_task("narrow", 0.5, 0.0, profile="quick", seeds=[7], lr=0.02, epochs=20, stop_loss=1e-3)
        tasks.distance_grid([store.compute(cells[0]), store.compute(other)], 0.7)


def test_depth_result_rebuilds_fit_layers(store):
    task = tasks.depth_task("default", profile="quick", width=8, lr=0.05, epochs=200, trials=1)
    result = store.compute(task)
    layers = tasks.layer_fits(store.get(task))
    assert layers.error.shape == (1, 20) and layers.layers.tolist() == list(range(1, 21))
    for k in ("error", "rate_h", "rate_y", "dh_sq0"):
        assert np.array_equal(getattr(layers, k), result[k]), k
    assert tasks.depth_architecture(task.spec) == replace(profiles.TABLE1["default"], width=8, lr=0.05, epochs=200)


def test_bad_specs_are_clear_value_errors():
    good = tasks.pairwise_task(profiles.TABLE2["xor_high"], profile="quick")
    missing = {k: v for k, v in good.spec["arch"].items() if k != "gain"}
    with pytest.raises(ValueError, match=r"spec\['arch'\].*gain"):
        Task("pairwise", {**good.spec, "arch": missing}).run()
    with pytest.raises(ValueError, match=r"spec\['data'\]"):
        Task("pairwise", {**good.spec, "data": "blobs"}).run()
    with pytest.raises(ValueError, match="consecutive"):
        Task("blobs", {**tasks.chapter_tasks(5, "quick")[0].spec, "seeds": [0, 2]}).run()
    with pytest.raises(ValueError, match="`row`"):
        tasks.xor_architecture("blobs_low", "quick")
    with pytest.raises(ValueError, match="`name`"):
        tasks.depth_task("deep", profile="quick", width=8, lr=0.1, epochs=10)
    with pytest.raises(TypeError, match="`arch`"):
        tasks.blobs_task("blobs_low", profile="quick")
    with pytest.raises(ValueError, match="`chapter`"):
        tasks.chapter_tasks(8, "quick")
    with pytest.raises(ValueError, match="depth task"):
        tasks.layer_fits(type("R", (), {"task": good})())


def test_flushed_tasks_restore_the_callers_setting():
    import torch

    threads = torch.get_num_threads()
    assert not numerics.denormals_flushed()
    assert tasks._flushed_one_torch_thread(lambda _: numerics.denormals_flushed())({}) is True
    assert not numerics.denormals_flushed()
    numerics.set_flush_denormal(True)  # on every torch thread, as chapter.start(flush_denormal=True) does
    try:
        assert tasks._one_torch_thread(lambda _: numerics.denormals_flushed())({}) is False
        assert numerics.denormals_flushed()
        assert torch.get_num_threads() == threads
    finally:
        numerics.set_flush_denormal(False)


def test_a_truncated_blob_file_is_not_loaded(store):
    arch = replace(profiles.TABLE2["blobs_high"], width=4, epochs=1)
    task = tasks.blobs_task(arch, profile="quick", batch_size=1800)
    store.compute(task)
    npz, _ = store.paths(task)
    npz.write_bytes(npz.read_bytes()[:100])
    with pytest.warns(UserWarning, match="corrupt"):
        assert store.get(task) is None
    with pytest.raises(zipfile.BadZipFile):
        np.load(npz, allow_pickle=False)["hidden"]


def test_only_the_fused_mlp_two_point_specs_moved_to_the_new_result_version():
    """two_point 4 / grid_cell 3 for the specs on the fused MLP passes (dropout; Adam), whose input
    gradient changed form; the kernel's and the conv net's specs keep 3 / 2 and their published results."""
    planned = tasks.plan("paper", None)
    for chapter in ("02_universal_dynamics", "03_rich_lazy"):
        for t in planned[chapter]:
            variant = profiles.architecture(t.spec["name"], "paper").variant
            fused = variant == "dropout" or (t.spec.get("optimizer") == "adam" and variant in ("mlp", "skip"))
            base = {"two_point": 3, "grid_cell": 2}[t.experiment]
            assert t.version == base + fused, t.label()
    assert {t.version for t in planned["07_depth"]} == {1}
    gpu = tasks.Task("depth", {**dict(planned["07_depth"][0].spec), "device": "cuda"})
    assert gpu.version == 2
