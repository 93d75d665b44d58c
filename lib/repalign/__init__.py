"""repalign: an executable reproduction of van Rossem & Saxe (ICML 2024), *When Representations Align*.

Modules (one concern each): :mod:`~repalign.theory` (the effective theory, eqs. 7-11 and App. A),
:mod:`~repalign.linearised` (the matrix gradient flow the theory reduces), :mod:`~repalign.profiles`
(experiment settings, ``BOOK_PROFILE``), :mod:`~repalign.claims` (recorded checks and the scorecard),
:mod:`~repalign.plots` (the book's figure style) and :mod:`~repalign.widgets` (interactive explorers).
"""

__version__ = "0.1.0"
