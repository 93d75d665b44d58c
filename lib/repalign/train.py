"""Gradient-descent training that records the two-point quantities every epoch (paper Sec. 2-3, App. B.1).

For a tracked pair of data points ``(i, j)`` (default ``(0, 1)``, i.e. ``x1, x2``) and a hidden layer ``H``:

=============  ============================================  ==================
field          definition                                    paper
=============  ============================================  ==================
``dh_sq``      ``||h(x_j) - h(x_i)||^2``                     ||dh||^2
``dy_sq``      ``||f(x_j) - f(x_i)||^2``                     ||dy||^2
``w``          ``dy_sq - (f(x_j) - f(x_i)) . (y_j - y_i)``   w
``loss``       ``1/2 mean_n ||f(x_n) - y_n||^2``             eq. (1)
``mean_output``  ``(f(x_i) + f(x_j)) / 2``                   y-bar
=============  ============================================  ==================

Record ``e`` is taken *before* epoch ``e``'s update (after ``e`` epochs), in eval mode, as the released
code did; one more record after the last epoch makes ``n_records = epochs + 1``, and record 0 is the
initial network, so theory time equals the epoch count. With minibatches, ``loss[e]`` (for ``e < epochs``)
is the epoch's training loss as usually reported: the mean over all points of each point's loss in the
minibatch step that used it, taken just before that step's update; the last record's loss is a full
pass. (A full pass every epoch would cost a third of an epoch's training on MNIST.)

Plain ``"mlp"`` and ``"skip"`` rows train all trials together as one :class:`~repalign.models.BatchedMLP`
(``torch.baddbmm`` over a leading trial axis; the summed loss gives each trial its own gradient); trial
``k`` then equals a run of seed ``seeds[k]`` alone, up to floating-point rounding. With plain SGD (or
Adam, for ``"mlp"``/``"skip"``) those trials train on the hand-written fast path of :mod:`repalign.fastpath`
(``engine="auto"``: SGD on full batches on a compiled kernel on the CPU and fused torch operations on a
GPU; minibatches and Adam on fused torch operations; :func:`repalign.fastpath.select_engine` decides);
``engine="reference"`` selects the autograd loop of :mod:`repalign.reference`, against which the fast path
is tested. ``"conv"`` and ``"dropout"`` rows with plain SGD also train on the fused fast path, as a
:class:`~repalign.models.BatchedConvNet`, or (dropout, CPU only) a BatchedMLP whose trials each get the
masks a run of their seed alone draws -- on the CPU one trial per model, which was measured fastest
(:func:`repalign.fastpath.trials_together`), on a GPU all trials in one. On the reference
(``engine="reference"``, Adam, a GPU for dropout) they train one trial after another. In full-batch
training without dropout the recorded quantities come from the training forward pass itself; dropout
records need a separate eval-mode pass.

Training starts from ``models.build(arch, seed=seeds[k])`` or, with ``init=``, from given weights (a
network or a state dict per trial), e.g. to continue a run or to start from another implementation's
initial weights. :class:`Recording` lives in :mod:`repalign.recording` and stays importable from here.
"""
from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from types import MappingProxyType

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import _validate as v
from . import fastpath, reference
from ._threads import torch_threads, train_threads
from .fastpath import ENGINES
from .models import (
    VARIANTS,
    _check_arch,
    build,
    build_batched,
    check_convention,
    default_hidden_layer,
    n_hidden,
)
from .networks import _hidden_spec
from .profiles import Architecture
from .recording import Recorder, Recording
from .reference import OPTIMIZERS

__all__ = ["Recording", "TrainingDiverged", "train", "OPTIMIZERS", "ENGINES"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64, torch.float32: torch.float32,
           torch.float64: torch.float64}



MAX_TRIALS = 10_000
"""Most trials one :func:`train` call accepts (each is a full network)."""


class TrainingDiverged(FloatingPointError):
    """Training produced a non-finite loss (inf or NaN), on any engine.

    Attributes
    ----------
    epoch : int
        The first record whose loss is not finite (record ``e`` is taken after ``e`` epochs).
    trial : int
        The first trial (0-based) with a non-finite loss at ``epoch``.
    loss : float
        That loss (``inf`` or ``nan``).
    recording : Recording
        The records ``0 .. epoch`` of the trials trained so far (the last record shows the divergence).
    """

    def __init__(self, message: str, *, epoch: int, trial: int, loss: float, recording: Recording):
        super().__init__(message)
        self.epoch, self.trial, self.loss, self.recording = epoch, trial, loss, recording


class _NonFinite(Exception):
    """Internal: a check epoch found a non-finite loss; ``epoch`` is the last record written."""

    def __init__(self, epoch: int, n_trials: int | None = None):
        super().__init__(epoch)
        self.epoch, self.n_trials = epoch, n_trials


def _check_int(name, value, low, high=None):
    try:
        out = operator.index(value)
    except TypeError:
        raise ValueError(f"`{name}` must be an integer, got {value!r}") from None
    if out < low or (high is not None and out > high):
        rng = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"`{name}` must be an integer {rng}, got {value!r}")
    return out


def _cuda_index(dev: torch.device) -> list[int]:
    """The CUDA device whose RNG state ``fork_rng`` must save (none on the CPU)."""
    if dev.type != "cuda":
        return []
    return [dev.index if dev.index is not None else torch.cuda.current_device()]


def _device(device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"`device` must be 'cpu' or 'cuda', got {device!r}") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"`device` must be 'cpu' or 'cuda', got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("`device` is 'cuda' but torch.cuda.is_available() is False; use device='cpu'")
    return dev


def train(
    arch: Architecture,
    x,
    y,
    *,
    layer: int | str | None = None,
    convention: str = "paper",
    trials: int | None = None,
    seed: int = 0,
    seeds=None,
    lr: float | None = None,
    epochs: int | None = None,
    optimizer: str = "sgd",
    batch_size: int | None = None,
    pair: tuple[int, int] = (0, 1),
    dtype="float32",
    device="cpu",
    batched: bool = True,
    engine: str = "auto",
    keep_models: bool = False,
    progress: bool = True,
    stop_loss: float | None = None,
    init=None,
    threads: int | None = None,
) -> Recording:
    """Train ``trials`` independent networks of ``arch`` on ``(x, y)`` and record every epoch.

    Parameters
    ----------
    arch : profiles.Architecture
        The network (a Table 1 row, possibly changed with :func:`dataclasses.replace`); its ``lr`` and
        ``epochs`` are the defaults of the arguments of the same names.
    x : array_like, shape (n_points, input_dim)
    y : array_like, shape (n_points, output_dim)
        E.g. ``data.x, data.y`` of :func:`repalign.data.two_point`.
    layer : int, "all" or None, keyword-only
        Hidden layer recorded (1-based); ``"all"`` records every hidden layer; ``None`` uses
        :func:`~repalign.models.default_hidden_layer` with ``convention``.
    convention : {"paper", "code"}, keyword-only
        Read-out convention when ``layer`` is None (differs only for the dropout row).
    trials : int, optional, keyword-only
        Number of independent trials (1 .. :data:`MAX_TRIALS`); default ``len(init)`` with ``init``, else 1.
        Ignored when
        ``seeds`` is given.
    seed : int, keyword-only
        Trial ``k`` uses seed ``seed + k`` unless ``seeds`` is given.
    seeds : sequence of int, optional, keyword-only
        One non-negative seed per trial.
    lr : float, optional, keyword-only
        Learning rate eta (> 0); default ``arch.lr``.
    epochs : int, optional, keyword-only
        Number of epochs (>= 1); default ``arch.epochs``.
    optimizer : {"sgd", "adam"}, keyword-only
        Plain SGD (no momentum, no weight decay) or Adam with torch's defaults.
    batch_size : int, optional, keyword-only
        Minibatch size in ``[1, n_points]``; ``None`` is full batch. Minibatches are drawn from a fresh
        permutation each epoch, seeded per trial; the last one may be smaller.
    pair : (int, int), keyword-only
        Indices of the tracked pair (distinct, in ``[0, n_points)``).
    dtype : "float32" or "float64" (or the torch dtypes), keyword-only
    device : "cpu" or "cuda", keyword-only
    batched : bool, keyword-only
        Train the trials as one batched computation (default); ``False`` loops over trials on the
        reference. Conv and dropout trials are batched on the fast path only (else they loop).
    engine : {"auto", "fast", "kernel", "fused", "reference"}, keyword-only
        ``"auto"`` (default) trains with the hand-written SGD (or Adam, for ``"mlp"``/``"skip"``) of
        :mod:`repalign.fastpath` where it applies (batched trials; dropout on the CPU) -- for
        ``"mlp"``/``"skip"`` full-batch SGD the compiled kernel on the CPU and the fused torch operations on
        a GPU, for minibatches, Adam and ``"conv"``/``"dropout"`` the fused torch operations -- and with
        the autograd loop otherwise. ``"reference"`` always uses the autograd loop. ``"fast"`` demands the
        fast path (either back end) and raises if the configuration is not covered; ``"kernel"``
        (full-batch SGD only) and ``"fused"`` demand that back end.
        ``Recording.settings["engine"]`` says which of ``"kernel"``, ``"fused"``, ``"reference"`` ran.
    keep_models : bool, keyword-only
        Return the trained networks in ``Recording.models``.
    threads : int, optional, keyword-only
        CPU threads for this call (at most the available cores). Default: chosen by
        :func:`repalign._threads.train_threads` -- one torch thread for small problems on the fused and
        reference paths (spinning threads made them 16-25x slower next to a busy process), else
        torch's setting; the kernel uses one thread per trial up to that. Torch's and numba's thread
        settings are restored when the call returns.
    progress : bool, keyword-only
        Show a tqdm progress bar.
    stop_loss : float, optional, keyword-only
        Stop early once the loss of every trial trained together is below ``stop_loss`` (checked every
        :data:`repalign.fastpath.KERNEL_CHUNK` epochs, after that epoch's update). A trial that stopped
        earlier than others (trials trained in turn: ``batched=False``, conv and dropout on the CPU or
        on the reference) keeps its last record for the remaining epochs. ``Recording.epochs`` ends at the
        last epoch any trial trained, and ``settings["epochs_trained"]`` gives each trial's count.
        ``None`` (default) trains all epochs.
    init : sequence of torch.nn.Module or of state dicts, optional, keyword-only
        Initial weights, one entry per trial (``len(init)`` must equal the number of trials): a network
        of the architecture's shape (e.g. :func:`repalign.models.build`, or ``Recording.models`` of an
        earlier run) or its ``state_dict()``. The weights are copied (cast to ``dtype``); the seeds still
        set the minibatch order and dropout masks. ``None`` (default) initialises from the seeds.

    Returns
    -------
    Recording
        ``epochs + 1`` records per trial (see the module docstring).

    Raises
    ------
    ValueError
        Non-positive ``lr``, ``epochs < 1``, unknown ``optimizer`` or ``engine``, ``batch_size`` outside
        ``[1, n_points]``, bad ``pair``, ``layer``, ``seeds``, ``dtype`` or ``device``, ``x``/``y``
        of the wrong shape, or an ``init`` of the wrong length or with weights of the wrong shape.
    TrainingDiverged
        A recorded loss is not finite (checked every :data:`repalign.fastpath.KERNEL_CHUNK` epochs and at
        the end, on every engine); the exception carries the epoch, the loss and the partial
        :class:`Recording` (``.recording``).

    References
    ----------
    Loss: eq. (1); recorded quantities: Sec. 2.2 and eq. (7); settings: App. B.1 and Table 1.

    Examples
    --------
    >>> from dataclasses import replace
    >>> from repalign.data import two_point
    >>> from repalign.profiles import TABLE1
    >>> arch = replace(TABLE1["default"], width=16, hidden_layers=4)
    >>> d = two_point()
    >>> rec = train(arch, d.x, d.y, trials=3, epochs=10, progress=False)
    >>> rec.z.shape, rec.layer
    ((3, 11, 3), 3)
    >>> again = train(arch, d.x, d.y, seeds=rec.seeds, epochs=10, progress=False,
    ...               init=[build(arch, seed=s) for s in rec.seeds])
    >>> bool((again.dy_sq == rec.dy_sq).all())
    True
    """
    progress, keep_models = v.flag("progress", progress), v.flag("keep_models", keep_models)
    batched = v.flag("batched", batched)
    s = _setup(arch, x, y, layer=layer, convention=convention, trials=trials, seed=seed, seeds=seeds, lr=lr,
               epochs=epochs, optimizer=optimizer, batch_size=batch_size, pair=pair, dtype=dtype, device=device,
               batched=batched, stop_loss=stop_loss, init=init)
    engine = fastpath.select_engine(engine, variant=s.arch.variant, optimizer=s.optimizer, batched=s.batched,
                                    full_batch=s.full_batch, device=s.device, activation=s.arch.activation)
    if engine == "reference" and not VARIANTS[s.arch.variant].batchable:
        s = replace(s, batched=False)  # the reference trains conv and dropout trials one at a time
    recorder = Recorder(len(s.seeds), s.epochs + 1, len(s.layers) if s.spec == "all" else 0, s.Y.shape[1], s.Y,
                        s.pair, s.dtype, s.device)
    run = _train_batched if s.batched else _train_looped
    runs = -(-len(s.seeds) // _group_size(s, engine)) if s.batched else len(s.seeds)  # models trained in turn
    rows = (s.batch_size or s.X.shape[0]) * (len(s.seeds) if s.batched else 1)
    threads = None if threads is None else _check_int("threads", threads, 1)
    bar = tqdm(total=s.epochs * runs, disable=not progress, mininterval=0.5,
               desc=f"{s.arch.name} ({len(s.seeds)} trial{'s' * (len(s.seeds) > 1)})")
    with torch_threads(train_threads(engine, rows, threads, s.device)), bar:
        try:
            trained, models = run(s, engine, recorder, bar, keep_models)
        except _NonFinite as stop:
            _diverged(s, x, y, recorder, stop.epoch + 1, stop.n_trials or len(s.seeds), engine)
    _diverged(s, x, y, recorder, max(trained) + 1, len(s.seeds), engine)
    return _package(s, x, y, recorder, trained, models, engine)


def _first_nonfinite(recorder: Recorder, rows, n_records: int):
    """``(epoch, trial)`` of the first non-finite loss among records ``0 .. n_records-1``, or None."""
    bad = ~torch.isfinite(recorder.loss[rows, :n_records])
    if not bool(bad.any()):
        return None
    epoch = int(bad.any(0).nonzero()[0, 0])
    return epoch, int(bad[:, epoch].nonzero()[0, 0])


def _diverged(s: _Setup, x, y, recorder: Recorder, n_records: int, n_trials: int, engine: str) -> None:
    """Raise :class:`TrainingDiverged` if a loss of the first ``n_trials`` trials' first ``n_records``
    records is not finite, with the records up to the first such epoch."""
    found = _first_nonfinite(recorder, slice(0, n_trials), n_records)
    if found is None:
        return
    epoch, trial = found
    value = float(recorder.loss[trial, epoch])
    recorder.truncate(epoch + 1, trials=n_trials)
    part = _package(replace(s, seeds=s.seeds[:n_trials]), x, y, recorder, [epoch] * n_trials, None, engine)
    raise TrainingDiverged(
        f"training diverged at epoch {epoch} (trial {trial}, seed {s.seeds[trial]}, loss {value}, engine "
        f"{engine!r}, {str(s.dtype).removeprefix('torch.')}); lower lr (got {s.lr:g}) or the initial gain "
        f"or input scale; the records up to that epoch are on the exception's `.recording`",
        epoch=epoch, trial=trial, loss=value, recording=part)


@dataclass(frozen=True)
class _Setup:
    """The validated arguments of one :func:`train` call (data already as tensors)."""

    arch: Architecture
    X: torch.Tensor
    Y: torch.Tensor
    lr: float
    epochs: int
    optimizer: str
    batch_size: int | None
    full_batch: bool
    pair: tuple[int, int]
    seeds: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device
    spec: int | str
    layers: int | tuple[int, ...]
    convention: str
    batched: bool
    stop_loss: float | None
    init: tuple | None


def _setup(arch, x, y, *, layer, convention, trials, seed, seeds, lr, epochs, optimizer, batch_size, pair, dtype,
           device, batched, stop_loss, init) -> _Setup:
    """Validate every argument of :func:`train` (errors name the argument)."""
    arch = _check_arch(arch)
    x, y = _check_data(x, y)
    n_points = x.shape[0]
    lr = float(v.positive("lr", arch.lr if lr is None else lr))
    epochs = _check_int("epochs", arch.epochs if epochs is None else epochs, 1)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"`optimizer` must be one of {', '.join(OPTIMIZERS)}; got {optimizer!r}")
    if batch_size is not None:
        batch_size = _check_int("batch_size", batch_size, 1, n_points)
    init = _check_init_count(init)
    seeds = _check_seeds(trials, seed, seeds, init)
    if not isinstance(dtype, (str, torch.dtype)) or dtype not in _DTYPES:
        raise ValueError(f"`dtype` must be 'float32' or 'float64', got {dtype!r}")
    tdtype, dev = _DTYPES[dtype], _device(device)
    n_layers_total = n_hidden(arch)
    convention = check_convention(convention)  # checked even when `layer` makes it moot: it is recorded
    if layer is None:
        layer = default_hidden_layer(arch, convention=convention)
    spec = _hidden_spec(layer, n_layers_total, name="layer")
    return _Setup(
        arch=arch, X=torch.tensor(x, dtype=tdtype, device=dev), Y=torch.tensor(y, dtype=tdtype, device=dev),
        lr=lr, epochs=epochs, optimizer=optimizer, batch_size=batch_size,
        full_batch=batch_size is None or batch_size == n_points, pair=_check_pair(pair, n_points), seeds=seeds,
        dtype=tdtype, device=dev, spec=spec, layers=tuple(range(1, n_layers_total + 1)) if spec == "all" else spec,
        convention=convention, batched=batched and VARIANTS[arch.variant].batch is not None,
        stop_loss=_check_stop_loss(stop_loss), init=init)


def _check_data(x, y):
    x = v.finite_array("x", x, ndim=2)
    y = v.finite_array("y", y, ndim=2)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"`x` and `y` must have the same number of points (rows), got {x.shape[0]} and {y.shape[0]}")
    if x.shape[0] < 2:
        raise ValueError(f"`x` must hold at least 2 points to track a pair, got {x.shape[0]}")
    return x, y


def _check_pair(pair, n_points) -> tuple[int, int]:
    try:
        pair_t = tuple(pair)
    except TypeError:
        pair_t = ()
    if len(pair_t) != 2:
        raise ValueError(f"`pair` must be two point indices (i, j), got {pair!r}")
    i, j = (_check_int("pair", p, 0, n_points - 1) for p in pair_t)
    if i == j:
        raise ValueError(f"`pair` must name two different points, got {pair!r}")
    return i, j


def _check_seeds(trials, seed, seeds, init) -> tuple[int, ...]:
    if seeds is None:
        trials = (1 if init is None else len(init)) if trials is None else trials
        trials = _check_int("trials", trials, 1, MAX_TRIALS)
        seeds = [v.seed("seed", seed) + k for k in range(trials)]
    if len(seeds) > MAX_TRIALS:
        raise ValueError(f"`seeds` may hold at most {MAX_TRIALS} seeds (one per trial), got {len(seeds)}")
    seeds = tuple(_check_int("seeds", s, 0) for s in seeds)
    if not seeds:
        raise ValueError("`seeds` must contain at least one seed")
    if init is not None and len(init) != len(seeds):
        raise ValueError(f"`init` must hold one network or state dict per trial ({len(seeds)}), got {len(init)}")
    return seeds


def _check_stop_loss(stop_loss) -> float | None:
    if stop_loss is None:
        return None
    try:
        stop_loss = float(stop_loss)
    except (TypeError, ValueError):
        raise ValueError(f"`stop_loss` must be a positive number or None, got {stop_loss!r}") from None
    if not stop_loss > 0 or not np.isfinite(stop_loss):
        raise ValueError(f"`stop_loss` must be a positive number or None, got {stop_loss!r}")
    return stop_loss


def _check_init_count(init) -> tuple | None:
    """``init`` as a tuple of state dicts (shapes are checked against each trial's network later)."""
    if init is None:
        return None
    if isinstance(init, (nn.Module, Mapping)) or not isinstance(init, Sequence):
        raise ValueError("`init` must be a sequence with one network or state dict per trial (e.g. a list), "
                         f"got {type(init).__name__}")
    out = []
    for k, item in enumerate(init):
        if isinstance(item, nn.Module):
            item = item.state_dict()
        if not isinstance(item, Mapping):
            raise ValueError(f"`init[{k}]` must be a torch.nn.Module or a state dict, got {type(item).__name__}")
        out.append(item)
    return tuple(out)


def _network(s: _Setup, k: int, device) -> nn.Module:
    """Trial ``k``'s initial network: built from its seed, then given ``init[k]``'s weights if any."""
    net = build(s.arch, input_dim=s.X.shape[1], output_dim=s.Y.shape[1], seed=s.seeds[k], dtype=s.dtype,
                device=device)
    if s.init is not None:
        want = {name: tuple(t.shape) for name, t in net.state_dict().items()}
        got = {name: tuple(getattr(t, "shape", ())) for name, t in s.init[k].items()}
        if got != want:
            raise ValueError(f"`init[{k}]` does not fit {s.arch.name!r} ({s.arch.variant}): expected the "
                             f"parameters {want}, got {got}")
        with torch.no_grad():
            net.load_state_dict(s.init[k])
    return net


def _stopper(s: _Setup, recorder: Recorder, rows):
    """``stop(e)`` for the training loops, acting at check epochs (every ``KERNEL_CHUNK``): raises
    :class:`_NonFinite` if a loss of ``rows`` so far is not finite, else says whether every trial of
    ``rows`` is below ``stop_loss``."""
    def stop(e):
        if (e + 1) % fastpath.KERNEL_CHUNK:
            return False
        loss = recorder.loss[rows, e]
        if not bool(torch.isfinite(loss).all()):  # NaN persists, inf turns to NaN: one epoch suffices
            raise _NonFinite(e)
        return s.stop_loss is not None and bool((loss < s.stop_loss).all())
    return stop


def _train_batched(s: _Setup, engine: str, recorder: Recorder, bar, keep_models: bool):
    """The trials as batched models (``VARIANTS[variant].batch``), on ``engine``: all at once, or in
    groups of :func:`repalign.fastpath.trials_together` one after another (each group stops on its own
    with ``stop_loss``); returns (epochs trained per trial, models)."""
    T = len(s.seeds)
    size = _group_size(s, engine)
    trained, models = [], []
    for a in range(0, T, size):
        b = min(a + size, T)
        if s.init is None:
            model = build_batched(s.arch, seeds=s.seeds[a:b], input_dim=s.X.shape[1], output_dim=s.Y.shape[1],
                                  dtype=s.dtype, device=s.device)
        else:
            model = VARIANTS[s.arch.variant].batch([_network(s, k, "cpu") for k in range(a, b)]).to(s.device)
        rows = slice(a, b)
        kw = dict(X=s.X, Y=s.Y, spec=s.spec, lr=s.lr, epochs=s.epochs, recorder=recorder, rows=rows, bar=bar,
                  stop=_stopper(s, recorder, rows), seeds=s.seeds[a:b])
        try:
            if engine == "reference":
                ran = reference.run(model, optimizer=s.optimizer, batch_size=s.batch_size, full_batch=s.full_batch,
                                    **kw)
            elif s.full_batch:
                ran = fastpath.run_sgd_full_batch(model, backend=engine, optimizer=s.optimizer, **kw)
            else:
                ran = fastpath.run_sgd_minibatch(model, batch_size=s.batch_size, optimizer=s.optimizer, **kw)
        except _NonFinite as stop:
            raise _NonFinite(stop.epoch, b) from None
        if _first_nonfinite(recorder, rows, ran + 1) is not None:
            raise _NonFinite(ran, b)
        recorder.hold(rows, ran)
        trained += [ran] * (b - a)
        if keep_models:
            models += [model.trial(k) for k in range(b - a)]
    return trained, tuple(models) if keep_models else None


def _group_size(s: _Setup, engine: str) -> int:
    """Trials per batched model: all on the reference, else :func:`repalign.fastpath.trials_together`."""
    if engine == "reference":
        return len(s.seeds)
    return fastpath.trials_together(s.arch.variant, s.device, len(s.seeds))


def _train_looped(s: _Setup, engine: str, recorder: Recorder, bar, keep_models: bool):
    """One trial after another on the reference loop (``batched=False``; conv and dropout on the reference)."""
    trained, models = [], []
    for k, seed in enumerate(s.seeds):
        model = _network(s, k, s.device)
        with torch.random.fork_rng(devices=_cuda_index(s.device)):
            torch.manual_seed(seed)  # dropout masks
            rows = slice(k, k + 1)
            try:
                ran = reference.run(model, X=s.X, Y=s.Y, spec=s.spec, lr=s.lr, epochs=s.epochs,
                                    optimizer=s.optimizer, batch_size=s.batch_size, full_batch=s.full_batch,
                                    recorder=recorder, seeds=(seed,), rows=rows, bar=bar,
                                    stop=_stopper(s, recorder, rows))
            except _NonFinite as stop:
                raise _NonFinite(stop.epoch, k + 1) from None
            if _first_nonfinite(recorder, rows, ran + 1) is not None:
                raise _NonFinite(ran, k + 1)
            trained.append(ran)
            recorder.hold(rows, ran)
        if keep_models:
            models.append(model.eval())
    return trained, tuple(models) if keep_models else None


def _package(s: _Setup, x, y, recorder: Recorder, trained, models, engine: str) -> Recording:
    """The :class:`Recording` of a finished run."""
    recorder.truncate(max(trained) + 1)
    dh, dy, w, loss, mean = recorder.arrays()
    epochs_arr = np.arange(max(trained) + 1)
    epochs_arr.flags.writeable = False
    i, j = s.pair
    settings = MappingProxyType({
        **asdict(s.arch), "lr": s.lr, "epochs": s.epochs, "optimizer": s.optimizer, "batch_size": s.batch_size,
        "stop_loss": s.stop_loss, "epochs_trained": tuple(trained),
        "pair": (i, j), "layer": s.layers, "convention": s.convention,
        "dtype": str(s.dtype).removeprefix("torch."), "device": str(s.device), "batched": s.batched,
        "engine": engine, "init": "seeds" if s.init is None else "given", "n_points": x.shape[0],
        "dx_sq": float(np.sum((x[j] - x[i]) ** 2)), "dy_target_sq": float(np.sum((y[j] - y[i]) ** 2)),
        "target_mean": tuple(float(c) for c in 0.5 * (np.asarray(y[i], float) + np.asarray(y[j], float))),
    })
    return Recording(epochs=epochs_arr, dh_sq=dh, dy_sq=dy, w=w, loss=loss, mean_output=mean, layer=s.layers,
                     seeds=s.seeds, settings=settings, models=models)
