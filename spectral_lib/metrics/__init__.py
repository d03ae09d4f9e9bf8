"""Metrics: power spectra and spectral distances (:mod:`.spectrum`), Fréchet distances with a pluggable feature
extractor (:mod:`.fid`), and the audio metrics of the paper's Table 2 (:mod:`.audio`).

Names are imported lazily (on first use): a missing optional piece fails only when it is used, and importing the
package stays cheap. No exported name equals a submodule's name (``spectral_lib.metrics.fid`` is the module; FID
itself is ``fid_score``), so ``import spectral_lib.metrics.fid as m`` always gives the module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spectral_lib._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    # spectrum.py
    "power_spectrum_1d": "spectrum",
    "radial_power_spectrum": "spectrum",
    "spectral_distance": "spectrum",
    "high_frequency_energy": "spectrum",
    "high_frequency_energy_ratio": "spectrum",
    # fid.py
    "FeatureExtractor": "fid",
    "FrechetResult": "fid",
    "feature_statistics": "fid",
    "frechet_distance": "fid",
    "frechet_distance_from_features": "fid",
    "compute_features": "fid",
    "RandomConvFeatures": "fid",
    "frechet_distance_local": "fid",
    "InceptionFeatures": "fid",
    "inception_features": "fid",
    "fid_score": "fid",
    "load_reference_statistics": "fid",
    # audio.py
    "mrstft_distance": "audio",
    "pesq_wb": "audio",
    "NDBResult": "audio",
    "ndb": "audio",
    "logmel_frames": "audio",
    "fad": "audio",
    "vggish_embeddings": "audio",
    "utmos": "audio",
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names above are loaded on first use
    from .audio import *  # noqa: F403
    from .fid import *  # noqa: F403
    from .spectrum import *  # noqa: F403
