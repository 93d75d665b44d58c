"""repalign: an executable reproduction of van Rossem & Saxe (ICML 2024), *When Representations Align*.

Modules, one concern each (data flows ``profiles`` -> ``data``, ``models`` -> ``train`` -> ``fit`` /
``geometry`` -> ``experiments`` -> ``plots``, ``claims``; ``theory`` depends on nothing else):

- :mod:`~repalign.theory` -- the effective theory: eq. (7), its solution, fixed points and App. A.
- :mod:`~repalign.linear_networks` -- exact deep linear network dynamics (the background chapter).
- :mod:`~repalign.linearised` -- gradient flow of the linearised encoder and decoder (eqs. 6, 17).
- :mod:`~repalign.fit` -- effective learning rates fitted to recorded trajectories (eq. 49).
- :mod:`~repalign.falsification` -- deliberately wrong versions of eq. (7), fitted for comparison.
- :mod:`~repalign.geometry` -- distance matrices, theory distances, exponential weighting, MDS.
- :mod:`~repalign.profiles` -- experiment settings (Tables 1-2 and the quick runs), ``BOOK_PROFILE``.
- :mod:`~repalign.dataset` -- :class:`~repalign.dataset.Dataset`, the one dataset type.
- :mod:`~repalign.data` -- the datasets: two points, XOR, Gaussian blobs, MNIST.
- :mod:`~repalign.activations` -- the activation registry (function, derivative, kernel code).
- :mod:`~repalign.models` -- the variant registry, the model interface and ``build``.
- :mod:`~repalign.networks` -- the network classes (MLP, ConvNet, BatchedMLP).
- :mod:`~repalign.train` -- ``train``: training that records the two-point quantities every epoch.
- :mod:`~repalign.recording` -- ``Recording``, the result of ``train``, and its recorder.
- :mod:`~repalign.reference` -- the autograd training loop, eq. (1) and the minibatch order.
- :mod:`~repalign.fastpath` -- the hand-written SGD and Adam paths and the engine choice.
- :mod:`~repalign.numerics` -- floating-point settings as local context managers (subnormal flushing).
- :mod:`~repalign.experiments` -- whole experiments in one call (train, fit, summarise).
- :mod:`~repalign.plots` -- the figure types of the book, one style.
- :mod:`~repalign.claims` -- recorded checks and the reproduction scorecard.
- :mod:`~repalign.tables` -- Markdown tables (one escaping rule for the book and the package).
- :mod:`~repalign.chapter` -- every chapter's opening and closing cell (settings, checks, timer).
- :mod:`~repalign.store` -- the result store: one ``.npz`` + JSON provenance per task, atomic, no pickle.
- :mod:`~repalign.tasks` -- the experiments as registered, seeded tasks with result versions.
- :mod:`~repalign.campaign` -- ``python -m repalign.campaign plan|run|status|verify`` (local or Dask).
- :mod:`~repalign.widgets` -- optional ipywidgets explorers.
- Private: ``_fit_search`` and ``_records`` (the rate search and record helpers of ``fit``),
  ``_kernel`` (the compiled CPU kernel of the fast path), ``_mnist`` and ``_mnist_sources``
  (the MNIST loader and where it fetches from), ``_validate`` (shared argument checks),
  ``_threads`` (per-call thread counts, restored afterwards).
"""

__version__ = "0.1.0"
