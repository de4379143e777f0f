"""What every figure is drawn with: matplotlib (Agg backend, imported only when a figure is drawn), saving,
labels, and a figure that says why there is nothing to draw."""
from __future__ import annotations

from labeldiag.errors import UsageError, strip_control


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str | None):
    """Write the figure when a path is given; return it, closed to pyplot (a notebook shows it once, as the
    value it is given back as)."""
    try:
        if path is not None:
            from labeldiag.render.output import save_figure

            save_figure(fig, path)  # PNG at exactly `path`, marked as ours
    except OSError as exc:
        raise UsageError(f"--plot '{path}' could not be written ({exc.strerror or exc})") from None
    finally:
        pyplot().close(fig)
    return fig


def plain_label(value) -> str:
    """A user-controlled string for a figure: no control characters, and '$' shown as itself (matplotlib
    would read '$...$' as math and fail on a bad expression)."""
    return strip_control(str(value)).replace("$", r"\$")


def message_figure(text: str, title: str, path: str | None):
    """A figure that says in words why there is nothing to draw, rather than empty axes."""
    import textwrap

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 2.4))
    ax.axis("off")
    ax.set_title(plain_label(title))
    ax.text(0.5, 0.5, "\n".join(textwrap.wrap(plain_label(text), 80)), ha="center", va="center")
    return save(fig, path)
