"""The training plot of ``fastrnn train``: loss and accuracy against the update, side by side.

matplotlib is an optional dependency (``pip install 'fastrnn[plot]'``); it is imported only here,
when a plot is drawn.
"""


def available():
    """True if matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def training_plot(path, loss, accuracy, title=""):
    """Write a PNG with the loss per target (log scale) and the accuracy (%) against the update.

    ``loss`` has one value per update; ``accuracy`` is a list of (update, fraction) pairs.
    Raises ImportError when matplotlib is missing.
    """
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    ax_loss.plot(range(1, len(loss) + 1), loss, color="tab:blue", linewidth=1)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("update")
    ax_loss.set_ylabel("loss per scored target")
    ax_loss.set_title("loss")
    ax_loss.grid(True, which="both", alpha=0.3)
    if accuracy:
        steps, values = zip(*accuracy)
        ax_acc.plot(steps, [100 * a for a in values], marker="o", markersize=3, color="tab:green")
    ax_acc.set_ylim(0, 100)
    ax_acc.set_xlabel("update")
    ax_acc.set_ylabel("accuracy on fresh data (%)")
    ax_acc.set_title("accuracy")
    ax_acc.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
