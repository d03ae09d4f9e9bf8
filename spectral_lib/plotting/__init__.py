"""Figures shared by the notebooks and the run folders (see :mod:`spectral_lib.plotting.core`).

The package has one module per subject, so that a chapter's figure code lives beside its kind:

- :mod:`~spectral_lib.plotting.core`: sample grids, radial spectra, waveforms, spectrograms, :func:`save_figure`
  (re-exported here, so ``from spectral_lib.plotting import make_grid`` keeps working);
- further modules (``checkerboard``, ``images``, ``audio``, ``toy2d``, ...) hold the figures of one experiment or
  chapter, built on the core helpers (:mod:`~spectral_lib.plotting.images`: the image chapter's).

Every function returns a :class:`BookFigure` (a ``matplotlib`` figure built without ``pyplot``).
"""

from spectral_lib.plotting.core import (
    BookFigure,
    compare_grids,
    make_grid,
    plot_radial_spectra,
    plot_spectrogram,
    plot_waveform,
    sample_grid,
    save_figure,
)

__all__ = [
    "BookFigure",
    "make_grid",
    "sample_grid",
    "compare_grids",
    "plot_radial_spectra",
    "plot_waveform",
    "plot_spectrogram",
    "save_figure",
]
