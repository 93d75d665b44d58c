"""Chapter 6's store tasks (repalign.tasks: ``mnist``), offline, on tiny self-written MNIST files.

The files follow tests/test_mnist.py: IDX files written here, the loader's SHA-256 table patched to their
hashes, no sources (nothing is ever fetched), the cache in a temporary directory. The real MNIST is
never needed, so these tests run on a machine without it.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from test_mnist import idx_bytes

from repalign import _mnist, experiments, profiles, tasks
from repalign.store import Result, Store

N_TRAIN, N_TEST = 200, 60


@pytest.fixture
def tiny_mnist(monkeypatch, tmp_path):
    """Tiny train (200 images) and test (60) splits in a temporary cache; labels cycle through 0-9."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, size=(N_TRAIN, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(N_TRAIN) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(N_TEST, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(N_TEST) % 10).astype(np.uint8),
    }
    cache = tmp_path / "mnist"
    cache.mkdir()
    digests = {}
    for name, arr in arrays.items():
        blob = idx_bytes(arr)
        (cache / name).write_bytes(blob)
        digests[name] = hashlib.sha256(blob).hexdigest()
    monkeypatch.setattr(_mnist, "SHA256", digests)
    monkeypatch.setattr(_mnist, "SOURCES", ())
    monkeypatch.setenv("REPALIGN_DATA_DIR", str(cache))
    return arrays


def _task(seed=0, trials=2, optimizer="sgd", **kw):
    args = {"profile": "quick", "seed": seed, "trials": trials, "optimizer": optimizer, "lr": 0.02, "epochs": 4,
            "n_train": N_TRAIN, "batch_size": 64, "n_probe": 30, **kw}
    return tasks.mnist_task(**args)


def test_a_task_computed_twice_gives_identical_arrays(tiny_mnist):
    first, again = _task().run(), _task().run()
    assert set(first) == set(again)
    for k in first:
        assert first[k].dtype == again[k].dtype and first[k].tobytes() == again[k].tobytes(), k
    assert first["sq_distances"].shape == (2, 30, 30) and first["test_accuracy"].shape == (2,)
    assert np.all((first["test_accuracy"] >= 0) & (first["test_accuracy"] <= 1))
    assert first["dh_sq"].shape == (2, 5) and first["rates"].shape == (2, 2)


def test_stored_result_loads_without_pickle_and_reads_back_as_the_run(tiny_mnist, tmp_path):
    store = Store(tmp_path / "store")
    computed = store.compute(_task())
    npz, _ = store.paths(_task())
    with np.load(npz, allow_pickle=False) as f:  # every member is numbers or strings
        for name in f.files:
            _ = f[name]
    loaded = store.compute(_task())
    assert not computed.loaded and loaded.loaded
    run = tasks.mnist_run([loaded])
    assert run.recording.seeds == (0, 1) and run.recording.settings["pair"] == (1, 3)
    assert run.recording.settings["optimizer"] == "sgd" and run.recording.models is None
    assert [f.error for f in run.fits] == computed["errors"].tolist()
    assert np.array_equal(run.sq_distances, computed["sq_distances"])
    assert np.array_equal(run.probe, experiments.sorted_first(tiny_mnist["train-labels-idx1-ubyte"], 30))


def test_run_joins_tasks_in_seed_order(tiny_mnist):
    a, b = _task(seed=0, trials=2), _task(seed=2, trials=1)
    results = [Result(t, t.run(), {"wall_seconds": 1.0}, False) for t in (b, a)]
    run = tasks.mnist_run(results)
    assert run.recording.seeds == (0, 1, 2) and run.recording.dh_sq.shape == (3, 5)
    assert run.recording.settings["epochs_trained"] == (4, 4, 4) and run.seconds == 2.0
    assert run.sq_distances.shape == (3, 30, 30) and run.test_accuracy.shape == (3,) and len(run.fits) == 3
    whole = _task(seed=0, trials=3).run()  # a trial's numbers do not depend on the seeds trained with it
    for k in ("dh_sq", "loss", "errors", "sq_distances", "test_accuracy"):
        assert np.concatenate([results[1][k], results[0][k]]).tobytes() == whole[k].tobytes(), k
    other = Result(_task(seed=3, trials=1, lr=0.01), {}, {}, False)
    with pytest.raises(ValueError, match="differ only in their seeds"):
        tasks.mnist_run(results + [other])


def test_adam_task_trains_with_adam(tiny_mnist):
    out = _task(optimizer="adam", lr=1e-3, trials=1).run()
    assert '"optimizer": "adam"' in str(out["settings_json"]) and np.all(np.isfinite(out["loss"]))


def test_missing_mnist_is_the_loaders_clear_error_and_stores_nothing(monkeypatch, tmp_path):
    monkeypatch.setattr(_mnist, "SOURCES", ())  # never fetch
    monkeypatch.setenv("REPALIGN_DATA_DIR", str(tmp_path / "empty"))
    store = Store(tmp_path / "store")
    with pytest.raises(_mnist.MNISTUnavailableError, match="empty"):
        store.compute(_task())
    assert _task() not in store


def test_bad_sizes_name_the_argument(tiny_mnist):
    with pytest.raises(ValueError, match="n_train"):
        _task(n_train=N_TRAIN + 1).run()
    with pytest.raises(ValueError, match="n_probe"):
        _task(n_train=20, n_probe=30).run()
    with pytest.raises(ValueError, match="`row`"):
        _task(row="no_such_row")


@pytest.mark.parametrize("profile, n_tasks", [("quick", 2), ("paper", 20)])
def test_chapter_6_plan_splits_every_trial_into_tasks(profile, n_tasks):
    cfg = profiles.settings("mnist", profile)
    planned = tasks.plan(profile, 6)["06_mnist"]
    assert len(planned) == n_tasks and len(set(planned)) == n_tasks
    assert all(len(t.spec["seeds"]) <= tasks.MNIST_SEEDS_PER_TASK for t in planned)
    for optimizer, trials in (("sgd", cfg["trials"]), ("adam", cfg["adam_trials"])):
        seeds = sorted(s for t in planned if t.spec["optimizer"] == optimizer for s in t.spec["seeds"])
        assert seeds == list(range(cfg["seed"], cfg["seed"] + trials)), optimizer
    assert {t.spec["n_train"] for t in planned} == {cfg["n_train"]}


def test_accuracy_counts_the_largest_output(tiny_mnist):
    from repalign import data, train

    d = data.mnist("train", progress=False)
    rec = train.train(profiles.TABLE2["mnist"], d.x[:50], d.y[:50], seeds=[0, 1], epochs=1, batch_size=25,
                      keep_models=True, progress=False)
    with torch.no_grad():
        predicted = rec.models[0](torch.tensor(d.x[:50]))[0].argmax(1).numpy()
    acc = experiments.accuracy(rec.models, d.x[:50], predicted)
    assert acc[0] == 1.0 and 0.0 <= acc[1] <= 1.0
    assert experiments.accuracy(rec.models, d.x[:50], (predicted + 1) % 10)[0] == 0.0
    with pytest.raises(ValueError, match="labels"):
        experiments.accuracy(rec.models, d.x[:50], predicted[:10])


def test_a_shorter_run_repeats_the_first_records_of_a_longer_one(tiny_mnist):
    """What ``epochs_field="epochs"`` declares for the mnist experiment: records before epoch k do not
    depend on the number of epochs (the last record of the short run, a full pass, is not one of them)."""
    from repalign import store as st

    assert st.experiment("mnist").epochs_field == "epochs"
    long, short = _task(epochs=6).run(), _task(epochs=3).run()
    for k in ("dh_sq", "dy_sq", "w", "loss", "mean_output"):
        assert long[k].shape[1] == 7 and short[k].shape[1] == 4, k
        assert long[k][:, :3].tobytes() == short[k][:, :3].tobytes(), k
    assert not np.array_equal(long["dh_sq"][:, :4], long["dh_sq"][:, 3:])  # it does move


def test_verify_prefix_checks_a_long_task_on_its_first_epochs(tiny_mnist, tmp_path):
    from repalign import campaign

    store = Store(tmp_path / "store")
    task = _task(epochs=6)
    store.compute(task)
    [row] = campaign.verify_prefix(store, sample=3, epochs=2)
    assert row["ok"] and row["max_abs"] == 0.0, row
    assert row["label"].endswith("(first 2 of 6 epochs)")
    assert campaign.verify_prefix(store, epochs=6) == []  # nothing trains for more than 6 epochs

    stored = store.get(task)
    arrays = dict(stored.arrays)
    bad = arrays["dh_sq"].copy()
    bad[1, 1] *= 1.01  # one record inside the checked prefix
    store.put(task, {**arrays, "dh_sq": bad}, {k: v for k, v in stored.provenance.items() if k not in ("sha256",)})
    [row] = campaign.verify_prefix(store, epochs=2)
    assert not row["ok"] and row["worst"] == "dh_sq" and row["max_rel"] > 5e-3
    with pytest.raises(ValueError, match="`epochs` must be an integer >= 1"):
        campaign.verify_prefix(store, epochs=0)


def test_verify_command_runs_the_prefix_check(tiny_mnist, tmp_path, capsys):
    from repalign import campaign

    store = Store(tmp_path / "store")
    store.compute(_task(epochs=5))
    code = campaign.main(["verify", "--store", str(store.root), "--sample", "1", "--budget", "1e-6",
                          "--prefix-sample", "1", "--prefix-epochs", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "(first 2 of 5 epochs)" in out and "1/1 match" in out
