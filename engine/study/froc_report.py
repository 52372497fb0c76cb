"""FROC, AFROC and wAFROC figures of an FROC reader study (matplotlib, no GUI).

Empirical operating characteristics as defined in Chakraborty (2017) ch. 13 / RJafroc
``PlotEmpiricalOperatingCharacteristics``: one panel per curve type, one colour per
treatment, one thin line per reader, the reader-averaged FOM in the legend.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from engine.stats.froc import FrocData, afroc_points, froc_foms, froc_points, wafroc_points

__all__ = ["froc_figure"]

_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]


def froc_figure(data: FrocData, title: str = "") -> Figure:
    """Three panels: FROC (NLF vs LLF), AFROC (FPF vs LLF), wAFROC (FPF vs weighted LLF).

    Args:
        data: The study.
        title: Optional figure title (e.g. "SYNTHETIC data").

    Returns:
        A matplotlib Figure.
    """
    fig = Figure(figsize=(12.6, 4.5), layout="constrained")
    axes = [fig.add_subplot(1, 3, q + 1) for q in range(3)]
    afroc = froc_foms(data, "afroc")
    wafroc = froc_foms(data, "wafroc")
    for i, tr in enumerate(data.treatments):
        col = _COLOURS[i % len(_COLOURS)]
        for j in range(len(data.readers)):
            lab = j == 0
            f = froc_points(data, i, j)
            axes[0].plot(f.x, f.y, "-", lw=1.0, color=col, alpha=0.8, label=tr if lab else None)
            a = afroc_points(data, i, j)
            axes[1].plot(a.x, a.y, "-", lw=1.0, color=col, alpha=0.8,
                         label=f"{tr} (AFROC {afroc[i].mean():.3f})" if lab else None)
            w = wafroc_points(data, i, j)
            axes[2].plot(w.x, w.y, "-", lw=1.0, color=col, alpha=0.8,
                         label=f"{tr} (wAFROC {wafroc[i].mean():.3f})" if lab else None)
    max_nlf = max(float(np.max(froc_points(data, i, j).x)) for i in range(len(data.treatments))
                  for j in range(len(data.readers)))
    axes[0].set_xlim(0, max(max_nlf * 1.05, 0.1))
    axes[0].set_xlabel("NLF (non-lesion localisations per case)")
    axes[0].set_ylabel("LLF (fraction of lesions localised)")
    axes[0].set_title("FROC", fontsize=10)
    axes[1].set_xlabel("FPF (normal cases with an NL mark)")
    axes[1].set_ylabel("LLF")
    axes[1].set_title("AFROC", fontsize=10)
    axes[2].set_xlabel("FPF")
    axes[2].set_ylabel("wLLF (lesion-weighted LLF)")
    axes[2].set_title("wAFROC", fontsize=10)
    for ax in axes:
        ax.set_ylim(-0.01, 1.01)
        ax.grid(alpha=0.25)
        ax.legend(loc="lower right", fontsize=7)
    for ax in axes[1:]:
        ax.set_xlim(-0.01, 1.01)
        ax.plot([0, 1], [0, 1], ":", color="grey", lw=0.8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
