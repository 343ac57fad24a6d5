"""gradlab's HTML report: one self-contained page from the sweep's tables.

``build_report(tables_dir, out_html, title, figures_dir=None)`` is the entry point (called by
``gradlab report`` and the Snakemake workflow).
"""

from .build import FIGURE_NAMES, build_report

__all__ = ["build_report", "FIGURE_NAMES"]
