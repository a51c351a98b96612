"""Reference figure for crates/meta/src/search/tpe.rs: Optuna's multivariate TPE
(`pip install optuna`) on the Rust test's function, 64 evaluations asked in batches of 8
(constant liar), 8 random start-up evaluations, over 20 seeds; and uniform random search.

Prints the mean over seeds of the best reward found.
Run: python tests/reference/tpe_reference.py
"""
import optuna
import random

optuna.logging.set_verbosity(optuna.logging.WARNING)
TARGET = [0.2, 0.8, 0.35, 0.6]


def reward(xs, w):
    return -sum((x - t) ** 2 for x, t in zip(xs, TARGET)) - (0.0 if w == "r" else 0.3)


def tpe_best(seed, budget=64, batch=8):
    sampler = optuna.samplers.TPESampler(
        multivariate=True, constant_liar=True, n_startup_trials=8, seed=seed
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for _ in range(budget // batch):
        trials = [study.ask() for _ in range(batch)]
        for t in trials:
            xs = [t.suggest_float(f"x{i}", 0.0, 1.0) for i in range(4)]
            w = t.suggest_categorical("w", ["p", "q", "r", "s"])
            study.tell(t, reward(xs, w))
    return study.best_value


def random_best(seed, budget):
    rng = random.Random(seed)
    return max(reward([rng.random() for _ in range(4)], rng.choice("pqrs")) for _ in range(budget))


print("optuna", optuna.__version__)
print("TPE, 64 evaluations:", sum(tpe_best(s) for s in range(20)) / 20)
print("random, 64 evaluations:", sum(random_best(s, 64) for s in range(20)) / 20)
print("random, 192 evaluations:", sum(random_best(s, 192) for s in range(20)) / 20)
