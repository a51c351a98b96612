"""Reference figures for crates/meta/src/search/cma_es.rs: pycma (Hansen's CMA-ES,
`pip install cma`) on the same functions, start, step size and population as the Rust test,
with the active update off (the Rust strategy uses positive weights only).

Prints the median number of evaluations to reach f < 1e-8 over 21 seeds per function.
Run: python tests/reference/cma_reference.py
"""
import cma
import numpy as np


def sphere(x):
    return float(np.sum(np.asarray(x) ** 2))


def ellipsoid(x):
    x = np.asarray(x)
    n = len(x)
    return float(np.sum(1e6 ** (np.arange(n) / (n - 1)) * x ** 2))


def rosenbrock(x):
    x = np.asarray(x)
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))


def evaluations(f, seed):
    es = cma.CMAEvolutionStrategy(
        [0.5] * 10,
        0.5,
        {
            "popsize": 10,
            "CMA_active": False,
            "seed": seed + 1,
            "ftarget": 1e-8,
            "tolfun": 0,
            "tolfunhist": 0,
            "tolx": 0,
            "tolstagnation": 10**9,
            "maxfevals": 200_000,
            "verbose": -9,
        },
    )
    while not es.stop():
        xs = es.ask()
        es.tell(xs, [f(x) for x in xs])
    return es.countevals if es.best.f < 1e-8 else None


print("pycma", cma.__version__)
for name, f in [("sphere", sphere), ("ellipsoid", ellipsoid), ("rosenbrock", rosenbrock)]:
    counts = sorted(evaluations(f, s) for s in range(21))
    print(f"{name}: median {counts[10]} evaluations (min {counts[0]}, max {counts[-1]})")
