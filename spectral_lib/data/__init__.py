"""Data: the checkerboard toy, FFHQ-style image folders, LJSpeech-style audio folders, stand-ins written in the same
on-disk formats, and downloads for the real data sets.

Names are imported lazily (on first use), so that ``import spectral_lib.data.checkerboard`` does not pay for SciPy's
signal module, PIL or librosa. The functions ``checkerboard.checkerboard`` and ``download.download`` are not
re-exported here: a package attribute with a submodule's name would shadow the submodule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spectral_lib._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    # checkerboard.py
    "sample_checkerboards": "checkerboard",
    "CheckerboardDataset": "checkerboard",
    "CheckerboardSource": "checkerboard",
    "IdealCheckerboardFit": "checkerboard",
    "nearest_ideal_checkerboard": "checkerboard",
    "checkerboard_metrics": "checkerboard",
    # images.py
    "IMAGE_EXTENSIONS": "images",
    "CorruptImageError": "images",
    "default_cache_dir": "images",
    "list_image_files": "images",
    "decode_image": "images",
    "build_image_cache": "images",
    "ImageFolderDataset": "images",
    # audio.py
    "MelConfig": "audio",
    "DIFFWAVE_MEL": "audio",
    "EVAL_PREFIXES": "audio",
    "AudioFileError": "audio",
    "MetadataEntry": "audio",
    "mel_filterbank": "audio",
    "log_mel_spectrogram": "audio",
    "read_metadata": "audio",
    "load_wav": "audio",
    "LJSpeechDataset": "audio",
    # standin.py
    "dead_leaves": "standin",
    "write_image_standin": "standin",
    "synthesize_speech": "standin",
    "write_ljspeech_standin": "standin",
    "VOWEL_FORMANTS": "standin",
    # download.py
    "UnsafeArchiveError": "download",
    "ChecksumError": "download",
    "sha256sum": "download",
    "extract_archive": "download",
    "DatasetSource": "download",
    "DATASETS": "download",
    "download_dataset": "download",
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names above are loaded on first use
    from .audio import *  # noqa: F403
    from .checkerboard import *  # noqa: F403
    from .download import *  # noqa: F403
    from .images import *  # noqa: F403
    from .standin import *  # noqa: F403
