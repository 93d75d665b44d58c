"""Speed of `fit.fit_rates` on synthetic trajectories of 6000 records, against one `theory.solve` call.

    python benchmarks/fit.py [--trajectories 20] [--records 6000] [--seed 0] [--threads 1]

Each trajectory is eq. (7) solved with `theory.solve` at random rates (rate_h between 3e-4 and 3e-2,
ratio rate_y/rate_h between 0.1 and 10) from a small-weight (plateau) or large-weight start, recorded
every epoch, with the two-point distances of the authors' code (dx_sq = 1, dy_target_sq = 0.5). Only
trajectories that get at least half-way to their fixed point within the recording are kept (elsewhere
the rates are not identifiable). Prints the mean wall-clock and CPU seconds per fit, the mean time of
one `theory.solve` call on the same records measured in the same run, their ratio, and the worst
relative error of the recovered rates. BLAS runs on one thread unless --threads says otherwise: the
number that matters is seconds per fit on one core (more threads help the least-squares polish a
little, at twice the CPU time).
"""

from __future__ import annotations

import argparse
import os
import time


def _threads() -> int:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--threads", type=int, default=1)
    return pre.parse_known_args()[0].threads


if __name__ == "__main__":  # thread limits must be set before numpy loads BLAS
    for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_name] = str(_threads())

import numpy as np  # noqa: E402

from repalign import fit, theory  # noqa: E402

DX_SQ, DY_TARGET_SQ = 1.0, 0.5


def trajectories(n: int, records: int, seed: int):
    """Yield ``(t, z, rate_h, rate_y)`` for ``n`` identifiable synthetic trajectories."""
    rng = np.random.default_rng(seed)
    t = np.arange(float(records))
    made = 0
    while made < n:
        rate_h = 10 ** rng.uniform(np.log10(3e-4), np.log10(3e-2))
        rate_y = rate_h * 10 ** rng.uniform(-1.0, 1.0)
        if made % 2 == 0:  # small weights: plateau, then escape
            dh_sq0 = 10 ** rng.uniform(-8.0, -3.0)
            dy_sq0 = dh_sq0 * 10 ** rng.uniform(-3.0, 0.0)
        else:  # large weights: immediate decay
            dh_sq0 = 10 ** rng.uniform(-0.5, 0.5)
            dy_sq0 = dh_sq0 * 10 ** rng.uniform(-0.5, 0.5)
        z0 = theory.initial_state(dh_sq0, dy_sq0, rng.uniform(-1.0, 1.0), dy_target_sq=DY_TARGET_SQ)
        z = theory.solve(z0, t, rate_h=rate_h, rate_y=rate_y, dx_sq=DX_SQ, dy_target_sq=DY_TARGET_SQ)
        final = float(theory.final_distance(dh_sq0, dy_sq0, rate_h=rate_h, rate_y=rate_y, dx_sq=DX_SQ,
                                            dy_target_sq=DY_TARGET_SQ).distance)
        if abs(z[-1, 0] - dh_sq0) >= 0.5 * abs(final - dh_sq0):
            made += 1
            yield t, z, rate_h, rate_y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trajectories", type=int, default=20)
    parser.add_argument("--records", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1: one core)")
    args = parser.parse_args()
    cases = list(trajectories(args.trajectories, args.records, args.seed))

    solve_wall = fit_wall = fit_cpu = 0.0
    worst, succeeded = 0.0, 0
    for t, z, rate_h, rate_y in cases:
        start = time.perf_counter()
        theory.solve(z[0], t, rate_h=rate_h, rate_y=rate_y, dx_sq=DX_SQ, dy_target_sq=DY_TARGET_SQ)
        solve_wall += time.perf_counter() - start
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fit.fit_rates(t, z, DX_SQ, DY_TARGET_SQ)
        fit_wall += time.perf_counter() - start
        fit_cpu += time.process_time() - start_cpu
        worst = max(worst, abs(result.rate_h / rate_h - 1), abs(result.rate_y / rate_y - 1))
        succeeded += result.success

    n = len(cases)
    print(f"{n} synthetic trajectories of {args.records} records (seed {args.seed}, {args.threads} BLAS thread(s))")
    print(f"fit_rates     {fit_wall / n:.3f} s per fit (wall), {fit_cpu / n:.3f} s (CPU)")
    print(f"theory.solve  {solve_wall / n:.4f} s per call on the same records")
    print(f"ratio         one fit = {fit_wall / solve_wall:.1f} x one theory.solve")
    print(f"worst relative error of a recovered rate: {worst:.1e}; success reported by {succeeded}/{n} fits")


if __name__ == "__main__":
    main()
