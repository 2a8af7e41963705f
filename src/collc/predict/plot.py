"""Pictures: the algbw-vs-size plot of a sweep (matplotlib's object API, PNG or SVG by file suffix).

No pyplot: figures are plain :class:`Figure` objects rendered by the Agg/SVG canvases, so nothing
depends on a display or on global pyplot state.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from collc.errors import InputError
from collc.fileio import atomic_write
from collc.predict.sweep import Sweep
from collc.sizes import format_figure, format_size

STYLES = {
    "collc": {"color": "#1f77b4", "marker": "o", "linewidth": 2.2},
    "ring": {"color": "#ff7f0e", "marker": "s", "linewidth": 1.6},
    "tree": {"color": "#2ca02c", "marker": "^", "linewidth": 1.6},
}
FORMATS = (".png", ".svg")


def check_picture_path(path: str | Path) -> str:
    """The picture format of ``path`` (its suffix), or an InputError if it is neither PNG nor SVG."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"cannot write a picture to {str(path)!r}", hint="name the file *.png or *.svg")
    return suffix


def save_figure(figure: Figure, path: str | Path) -> None:
    """Render ``figure`` to PNG or SVG (by suffix) and write it atomically."""
    suffix = check_picture_path(path)
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "collc"}):  # fixed SVG ids: same input, same bytes
        figure.savefig(buffer, format=suffix[1:], dpi=130, bbox_inches="tight", metadata=_metadata(suffix))
    atomic_write(path, buffer.getvalue())


def _metadata(suffix: str) -> dict[str, str | None]:
    """Drop the creation date so the same input gives byte-identical files."""
    return {"Date": None} if suffix == ".svg" else {"Software": "collc"}


def sweep_figure(result: Sweep, title: str) -> Figure:
    """algbw against message size (log axis) for collc and the baselines, the bound as a dashed line."""
    figure = Figure(figsize=(8, 4.8))
    axes = figure.add_subplot()
    sizes = [row.nbytes for row in result.rows]
    axes.plot(sizes, [row.collc.algbw for row in result.rows], label="collc", **STYLES["collc"])
    for name in result.rows[0].baselines:
        values = [row.baselines[name].algbw for row in result.rows]
        axes.plot(sizes, values, label=f"NCCL {name}", **STYLES.get(name, {}))
    axes.axhline(
        float(result.bound_algbw),
        color="#d62728",
        linestyle="--",
        linewidth=1.4,
        label=f"bound ({format_figure(result.bound_algbw)} GB/s)",
    )
    if result.crossover_bytes and sizes[0] <= result.crossover_bytes <= sizes[-1]:
        axes.axvline(result.crossover_bytes, color="grey", linestyle=":", linewidth=1.2)
        axes.annotate(
            f"collc wins from {format_size(result.crossover_bytes)}",
            (result.crossover_bytes, float(result.bound_algbw) * 0.05),
            xytext=(4, 0),
            textcoords="offset points",
            rotation=90,
            fontsize=8,
            color="grey",
            ha="left",
            va="bottom",
        )
    axes.set_xscale("log", base=2)
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: format_size(int(value))))
    axes.set_xlabel(f"message size (nccl-tests size, {result.collective})")
    axes.set_ylabel("algbw (GB/s)")
    axes.set_ylim(0, float(result.bound_algbw) * 1.12)
    axes.set_title(title, fontsize=11)
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(loc="upper left", fontsize=9)
    figure.autofmt_xdate(rotation=45)
    return figure


def plot_sweep(result: Sweep, path: str | Path, title: str) -> None:
    """Write the sweep plot to ``path`` (PNG or SVG)."""
    save_figure(sweep_figure(result, title), path)
