"""Training curves from a Keras History (or its `.history` dict)."""
from __future__ import annotations

import matplotlib.pyplot as plt


def plot_history(history, metrics=None, size=(4.0, 3.0)):
    """One panel per metric, training and validation together, against epochs."""
    logs = getattr(history, "history", history)
    if not logs:
        raise ValueError("the history is empty: train for at least one epoch first")
    metrics = list(metrics or [k for k in logs if not k.startswith("val_")])
    fig, axes = plt.subplots(1, len(metrics), figsize=(size[0] * len(metrics), size[1]), squeeze=False)
    for ax, name in zip(axes[0], metrics):
        if name not in logs:
            raise KeyError(f"{name!r} is not in the history; it has {sorted(logs)}")
        epochs = range(1, len(logs[name]) + 1)
        ax.plot(epochs, logs[name], "o-", label="train", ms=3)
        if f"val_{name}" in logs:
            ax.plot(epochs, logs[f"val_{name}"], "s--", label="validation", ms=3)
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig
