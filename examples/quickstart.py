"""Quickstart: train a tiny model over folds, log everything to aletheia, print a runs table.

A logistic regression in plain numpy on a synthetic two-class problem,
five-fold cross-validated. Each fold is one run of the experiment: its
hyper-parameters, per-epoch loss and accuracy, and final validation
accuracy land in Firestore (the local stack after ``aletheia local up``).
Run by ``make demo``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from typer.testing import CliRunner

from aletheia import Metastore, Run
from aletheia.cli import app
from aletheia.cloud import layout

PROJECT = "quickstart"
EXPERIMENT = "logreg-cv"
HYPER_PARAMS = {"lr": 0.5, "epochs": 40, "l2": 1e-3, "folds": 5, "seed": 0}


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian blobs in 5 dimensions."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 5)) + y[:, None] * np.array([1.5, -1.0, 0.5, 0.0, 0.8])
    return x, y


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def train_fold(
    run: Run,
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    x_va: np.ndarray,
    y_va: np.ndarray,
    hp: dict[str, Any],
) -> float:
    """Full-batch gradient descent; logs train loss/accuracy and val accuracy per epoch."""
    w = np.zeros(x_tr.shape[1])
    b = 0.0
    for epoch in range(hp["epochs"]):
        p = sigmoid(x_tr @ w + b)
        eps = 1e-12
        loss = -np.mean(y_tr * np.log(p + eps) + (1 - y_tr) * np.log(1 - p + eps))
        grad = p - y_tr
        w -= hp["lr"] * (x_tr.T @ grad / len(y_tr) + hp["l2"] * w)
        b -= hp["lr"] * grad.mean()
        val_acc = float(((sigmoid(x_va @ w + b) > 0.5) == y_va).mean())
        run.log_metrics(
            {"train/loss": loss, "train/acc": ((p > 0.5) == y_tr).mean(), "val/acc": val_acc},
            step=epoch,
        )
    return val_acc


def main() -> None:
    ms = Metastore(PROJECT)
    exper = ms.exper(EXPERIMENT, auto_inc_ids=True, git_policy="off")
    exper.desc = "5-fold logistic regression on synthetic blobs (examples/quickstart.py)"
    x, y = make_data(1000, HYPER_PARAMS["seed"])
    folds = np.array_split(np.random.default_rng(1).permutation(len(y)), HYPER_PARAMS["folds"])
    for fold, val_idx in enumerate(folds, start=1):
        train_idx = np.setdiff1d(np.arange(len(y)), val_idx)
        with exper.start_run(fold=fold) as run:
            run.set_model("logreg", framework="numpy")
            run.set_hyper_params(HYPER_PARAMS)
            acc = train_fold(run, x[train_idx], y[train_idx], x[val_idx], y[val_idx], HYPER_PARAMS)
        print(f"fold {fold}: run {run.id}, val/acc {acc:.3f}")
    table = CliRunner().invoke(
        app,
        ["runs", "list", "-p", PROJECT, "-e", EXPERIMENT, "--sort", "val/acc"],
        terminal_width=120,
    )
    print(table.output)
    where = ms.settings.firestore_emulator_host or f"cloud project {ms.settings.cloud_project}"
    print(f"Runs are in Firestore ({where}) at {layout.runs(PROJECT, EXPERIMENT)}")
    print(f"Compare two folds: aletheia runs compare 1 2 -e {EXPERIMENT} -p {PROJECT}")


if __name__ == "__main__":
    main()
