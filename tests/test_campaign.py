"""campaign: resumable local runs, recorded failures, verify, and a real 2-worker Dask cluster on localhost."""

import json

import numpy as np
import pytest

from repalign import campaign, tasks
from repalign.store import Store


def _tiny_tasks():
    good = [tasks.two_point_task("shallow", profile="quick", seed=s, trials=1, epochs=60) for s in (0, 1)]
    good.append(tasks.grid_cell_task("shallow", 0.5, 0.25, profile="quick", seeds=[1000, 1001], lr=0.004, epochs=100,
                                     stop_loss=1e-4))
    bad = tasks.two_point_task("shallow", profile="quick", seed=0, trials=1, epochs=60)
    bad = type(bad)(bad.experiment, {**bad.spec, "seeds": [0, 2]})  # not consecutive: the experiment raises
    return good, bad


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny campaign run once locally with 2 workers: (tasks file, store, good tasks, bad task, exit code)."""
    root = tmp_path_factory.mktemp("campaign")
    good, bad = _tiny_tasks()
    path = root / "tiny.json"
    path.write_text(json.dumps([{"experiment": t.experiment, "spec": dict(t.spec)} for t in good + [bad]]))
    store = Store(root / "local")
    code = campaign.main(["run", "--tasks", str(path), "--store", str(store.root), "--workers", "2", "-q"])
    return path, store, good, bad, code


def test_local_run_stores_every_good_task_and_records_the_failure(tiny):
    path, store, good, bad, code = tiny
    assert code == 1  # one task failed
    assert all(store.get(t) is not None for t in good)
    failed = (store.root / "failed" / f"{bad.experiment}-{bad.key}.txt").read_text()
    assert "Traceback" in failed and "consecutive" in failed
    assert campaign.pending(good + [bad], store) == [bad]


def test_plan_counts_what_is_done_and_estimates_the_rest(tiny, tmp_path, capsys):
    path, store, good, bad, _ = tiny
    partial = Store(tmp_path / "partial")
    r = store.get(good[1])
    partial.put(good[1], r.arrays, r.provenance)  # as if a run had been stopped after one task
    assert campaign.pending(good + [bad], partial) == [good[0], good[2], bad]
    code = campaign.main(["plan", "--tasks", str(path), "--store", str(partial.root), "--workers", "1"])
    assert code == 0 and "4 tasks, 1 done, 3 to run" in capsys.readouterr().out
    seconds, unknown = campaign.estimate([good[0], bad, good[2]], partial)
    # two shallow two-point tasks at the one measured time; no grid cell has been measured yet
    assert unknown == 1 and seconds == pytest.approx(2 * r.provenance["wall_seconds"])
    assert campaign.run(good[1:2], partial, workers=1, progress=False) == {"stored": 0, "failed": 0, "skipped": 1}


def test_verify_passes_on_honest_results_and_fails_on_altered_ones(tiny, tmp_path):
    _, store, good, _, _ = tiny
    copy = Store(tmp_path / "copy")
    for t in good:
        r = store.get(t)
        copy.put(t, r.arrays, r.provenance)
    report = campaign.verify(copy, sample=2, seed=1)
    assert len(report) == 2 and all(r["ok"] for r in report), report
    target = good[2]  # the grid cell: alter one stored value by 1 %, keeping the file intact
    arrays = dict(copy.get(target).arrays)
    arrays["measured"] = arrays["measured"] * 1.01
    copy.put(target, arrays)
    report = campaign.verify(copy, sample=3, seed=1)
    bad = [r for r in report if not r["ok"]]
    assert len(bad) == 1 and bad[0]["worst"] == "measured" and bad[0]["max_rel"] == pytest.approx(0.01 / 1.01, rel=1e-6)


def test_dask_run_continues_a_partial_store_with_byte_identical_results(tiny, tmp_path):
    path, local, good, bad, _ = tiny
    remote = Store(tmp_path / "dask")
    first = local.get(good[0])
    remote.put(good[0], first.arrays, first.provenance)  # a stopped earlier run: the rerun skips this one
    with campaign.local_cluster(tmp_path, n_workers=2) as address:  # real processes, no mocks
        code = campaign.main(["run", "--tasks", str(path), "--store", str(remote.root), "--scheduler", address, "-q"])
    assert code == 1  # the same task fails there, with its traceback recorded
    assert "consecutive" in (remote.root / "failed" / f"{bad.experiment}-{bad.key}.txt").read_text()
    assert remote.get(good[0]).provenance["started"] == first.provenance["started"]  # not recomputed
    for t in good[1:]:
        a, b = local.get(t), remote.get(t)
        assert b.provenance["started"] != a.provenance["started"]  # computed on the cluster
        assert set(a.arrays) == set(b.arrays)
        for k in a.arrays:
            assert a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes(), (t.label(), k)
        assert a.provenance["sha256"] == b.provenance["sha256"]
    assert np.all(remote.get(good[1])["loss"] > 0)


def test_publish_compacts_keeps_provenance_and_verifies(tiny, tmp_path, capsys):
    path, store, good, bad, _ = tiny
    published = Store(tmp_path / "published")
    counts = campaign.publish(store, good + [bad], published)
    assert counts == {"published": 3, "unchanged": 0, "missing": 1, "superseded": 0}
    assert campaign.publish(store, good, published)["unchanged"] == 3  # same originals: nothing rewritten
    for t in good:
        original, copy = store.get(t), published.get(t)
        assert copy.provenance["compacted"]["from_sha256"] == original.provenance["sha256"]
        assert copy.provenance["git_revision"] == original.provenance["git_revision"]
        for name, a in original.arrays.items():
            b = copy.arrays[name]
            assert b.dtype == (np.float32 if a.dtype == np.float64 else a.dtype)
            assert np.allclose(a, b, rtol=1e-7, atol=0) if a.dtype.kind == "f" else np.array_equal(a, b)
    report = campaign.verify(published, sample=3, seed="a commit hash")
    assert len(report) == 3 and all(r["ok"] for r in report), report
    with pytest.raises(ValueError, match="two stores"):
        campaign.publish(store, good, Store(store.root))


def test_publishing_a_new_result_version_deletes_the_superseded_file(tiny, tmp_path, monkeypatch):
    from repalign import store as st

    _, store, good, _, _ = tiny
    published = Store(tmp_path / "published")
    campaign.publish(store, good, published)
    cell = good[2]  # the grid cell
    old_npz = published.paths(cell)[0]
    exp = st.EXPERIMENTS["grid_cell"]
    bumped = st.Experiment(exp.name, exp.function, exp.version, exp.chapter,
                           version_for=lambda spec: exp.version_of(spec) + 1)
    monkeypatch.setitem(st.EXPERIMENTS, "grid_cell", bumped)
    assert cell not in store and cell not in published  # the new version misses both
    store.compute(cell)
    counts = campaign.publish(store, good, published)
    assert counts == {"published": 1, "unchanged": 2, "missing": 0, "superseded": 1}
    assert not old_npz.exists() and not old_npz.with_suffix(".json").exists()
    assert published.get(cell).provenance["result_version"] == exp.version_of(cell.spec) + 1
    assert len(published.tasks("grid_cell")) == 1


def test_verify_budget_draws_only_tasks_that_fit_and_a_text_seed_is_stable(tiny):
    _, store, good, _, _ = tiny
    times = sorted(store.get(t).provenance["wall_seconds"] for t in good)
    report = campaign.verify(store, sample=3, seed=5, budget=times[0] * 1.0001)
    assert len(report) == 1 and report[0]["seconds"] <= times[0] * 1.0001
    assert campaign.seed_from("abc123") == campaign.seed_from(" abc123 ") != campaign.seed_from("abc124")
    assert campaign.seed_from(7) == campaign.seed_from("7") == 7
    for bad_value, error in ((-1, ValueError), ("", ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(error, match="seed"):
            campaign.seed_from(bad_value)
    for kwargs, word in (({"budget": 0}, "budget"), ({"budget": float("nan")}, "budget"), ({"workers": 0}, "workers"),
                         ({"sample": 0}, "sample")):
        with pytest.raises(ValueError, match=word):
            campaign.verify(store, **kwargs)


def test_verify_in_two_processes_matches_one(tiny):
    _, store, good, _, _ = tiny
    one = campaign.verify(store, sample=3, seed=2)
    two = campaign.verify(store, sample=3, seed=2, workers=2)
    assert [r["label"] for r in one] == [r["label"] for r in two] and all(r["ok"] for r in two)


def test_a_result_version_bump_without_a_rerun_is_stale_and_fails_verify(tiny, tmp_path, monkeypatch, capsys):
    from repalign import store as st

    path, store, good, bad, _ = tiny
    copy = Store(tmp_path / "copy")
    for t in good:
        r = store.get(t)
        copy.put(t, r.arrays, r.provenance)
    assert campaign.stale(copy, good) == []
    exp = st.EXPERIMENTS["grid_cell"]
    monkeypatch.setitem(st.EXPERIMENTS, "grid_cell", st.Experiment(exp.name, exp.function, exp.version + 1, exp.chapter))
    old = campaign.stale(copy, good)
    assert [(t, v) for t, v in old] == [(good[2], exp.version)]
    code = campaign.main(["verify", "--tasks", str(path), "--profile", "quick", "--store", str(copy.root),
                          "--sample", "1"])
    out = capsys.readouterr().out
    assert code == 1 and "STALE grid_cell" in out and "campaign run --profile quick" in out


def test_status_lists_the_chapters_whose_tasks_are_all_stored(tmp_path, capsys, monkeypatch):
    depth = tasks.chapter_tasks("07_depth", "quick")
    empty = Store(tmp_path / "s")
    assert campaign.main(["status", "--profile", "quick", "--store", str(empty.root), "--complete-chapters"]) == 0
    assert capsys.readouterr().out.strip() == ""
    for t in depth:  # stand-in arrays: status looks at presence, not content
        empty.put(t, {"x": np.zeros(1)})
    monkeypatch.chdir(tmp_path)
    campaign.main(["status", "--profile", "quick", "--store", str(empty.root), "--complete-chapters"])
    listed = capsys.readouterr().out.split()
    assert len(listed) == 1 and listed[0].endswith("book/07_depth.md") and (tmp_path / listed[0]).exists()
    assert campaign.main(["status", "--profile", "quick", "--store", str(empty.root), "--all-complete"]) == 1
    out = capsys.readouterr().out
    assert "incomplete: 02_universal_dynamics" in out and "07_depth" not in out


def test_an_in_process_run_leaves_the_callers_threads_and_environment_alone(tiny, monkeypatch):
    """verify and ``--workers 1`` compute in the caller's process: they must not set NUMBA_NUM_THREADS
    (numba re-reads it at every compilation and raises when it differs from its running pool) nor keep
    one torch/numba thread after they return."""
    import os

    import numba
    import torch

    _, store, good, _, _ = tiny
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    before = dict(os.environ), torch.get_num_threads(), numba.get_num_threads()
    assert campaign.main(["verify", "--store", str(store.root), "--sample", "1", "--seed", "3"]) == 0
    assert (dict(os.environ), torch.get_num_threads(), numba.get_num_threads()) == before

    @numba.njit
    def _fresh(x):  # a compilation after the run: raised RuntimeError before the fix
        return x + 1

    assert _fresh(1) == 2


def test_compact_thins_long_trajectories_and_keeps_everything_else_whole():
    n = 6001
    arrays = {"epochs": np.arange(n), "dh_sq": np.random.default_rng(0).random((3, n)),
              "z_theory": np.zeros((3, n, 3)), "rates": np.ones((3, 3)), "hidden": np.ones((3, 40, n - 1)),
              "fit_message": np.array(["ok"] * 3)}
    assert campaign.record_stride(n) == 7 and campaign.record_stride(1000) == 1 and campaign.record_stride(1001) == 2
    out = campaign.compact(arrays)
    kept = out["epochs"]
    assert len(kept) <= campaign.PUBLISHED_RECORDS and kept[0] == 0 and kept[-1] == n - 1
    assert np.all(np.diff(kept[:-1]) == 7)
    assert out["dh_sq"].dtype == np.float32 and np.array_equal(out["dh_sq"], arrays["dh_sq"][:, kept].astype(np.float32))
    assert out["z_theory"].shape == (3, len(kept), 3)
    assert out["rates"].shape == (3, 3) and out["hidden"].shape == (3, 40, n - 1)  # not a trajectory: whole
    assert np.array_equal(out["fit_message"], arrays["fit_message"])
    with pytest.raises(ValueError, match="keep"):
        campaign.record_stride(10, keep=1)


def test_a_thinned_published_store_verifies_and_loads_as_a_recording(tiny, tmp_path, monkeypatch):
    _, store, good, _, _ = tiny
    monkeypatch.setattr(campaign, "PUBLISHED_RECORDS", 10)  # the tiny runs record 61 epochs: stride 7
    published = Store(tmp_path / "thin")
    campaign.publish(store, good[:1], published)
    copy = published.get(good[0])
    assert copy.provenance["compacted"]["record_stride"] == 7 and copy.provenance["compacted"]["records"] == 61
    assert list(copy.arrays["epochs"]) == [0, 7, 14, 21, 28, 35, 42, 49, 56, 60]
    report = campaign.verify(published, sample=1, seed=0)
    assert report[0]["ok"], report
    run = tasks.two_point_run(published.get(good[0]))
    full = tasks.two_point_run(store.get(good[0]))
    assert np.array_equal(run.recording.epochs, copy.arrays["epochs"])
    assert np.allclose(run.recording.dh_sq, full.recording.dh_sq[:, copy.arrays["epochs"]], rtol=1e-6)
