"""Speed and accuracy of `theory.solve` against a direct integration of eq. (7), measured in one run.

    python benchmarks/solver.py [--cases 200]

Both integrate the same random, realisable initial states to a long time (10^5 time constants) at
the same tolerances and are judged against the fixed point of eq. (10). The direct integration
divides by ||dh||^2 and loses accuracy, or fails, where the two representations cross; the signed
coordinates used by `theory.solve` do not. Prints times per trajectory and their ratio.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.integrate import solve_ivp

from repalign import theory
from repalign.theory import dynamics


def cases(n: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        r_h, r_y = np.exp(rng.uniform(np.log(0.3), np.log(3.0), size=2))
        x_sq, y_sq = rng.uniform(0.25, 2.25), rng.uniform(0.05, 1.0)
        gain = 10 ** rng.uniform(-3, 3)
        a0 = x_sq * gain * rng.uniform(0.5, 1.5)
        d0 = a0 * gain * rng.uniform(0.5, 1.5)
        yield (r_h, r_y, x_sq, y_sq), theory.initial_state(a0, d0, rng.uniform(-1.0, 1.0), dy_target_sq=y_sq)


def direct(z0, params, t_end):
    sol = solve_ivp(dynamics._rhs, (0.0, t_end), z0, args=params, method="LSODA", rtol=1e-10, atol=1e-14,
                    jac=dynamics._jacobian)
    return sol.y[:, -1] if sol.success and np.all(np.isfinite(sol.y)) else np.full(3, np.nan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    results = {"theory.solve (signed coordinates)": [], "direct LSODA on eq. (7)": []}
    timings = dict.fromkeys(results, 0.0)
    for params, z0 in cases(args.cases, args.seed):
        t_end = 1e5 / min(params[:2])
        kw = dict(zip(("rate_h", "rate_y", "dx_sq", "dy_target_sq"), params))
        target = float(theory.final_distance(z0[0], z0[1], **kw).distance)
        for name, run in (("theory.solve (signed coordinates)", lambda: theory.solve(z0, [0.0, t_end], **kw)[-1]),
                          ("direct LSODA on eq. (7)", lambda: direct(z0, params, t_end))):
            start = time.perf_counter()
            end = run()
            timings[name] += time.perf_counter() - start
            results[name].append(abs(end[0] / target - 1))
    base = timings["theory.solve (signed coordinates)"]
    print(f"{args.cases} random cases, tolerances rtol=1e-10, atol=1e-14")
    for name, errs in results.items():
        errs = np.array(errs)
        print(f"{name:36s} {1e3 * timings[name] / args.cases:7.2f} ms/trajectory (x{timings[name] / base:.2f})  "
              f"max rel. error of final distance {np.nanmax(errs):.1e}  failures (NaN) {int(np.isnan(errs).sum())}")


if __name__ == "__main__":
    main()
