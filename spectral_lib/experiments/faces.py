"""Former name of :mod:`spectral_lib.experiments.images` (the faces chapter became the images chapter).

Kept so that older notebooks and notes keep working: ``faces.run_variant``, ``faces.Variant`` ... are the images
package's; ``faces_settings`` is :func:`~spectral_lib.experiments.images.settings`, ``faces_metrics`` is
:func:`~spectral_lib.experiments.images.image_metrics`. New code imports :mod:`spectral_lib.experiments.images`.
"""

from spectral_lib.experiments.images import *  # noqa: F403
from spectral_lib.experiments.images import __all__ as _images_all
from spectral_lib.experiments.images import image_metrics as faces_metrics
from spectral_lib.experiments.images import settings as faces_settings
from spectral_lib.experiments.images.profiles import ImageSettings as FacesSettings

EXPERIMENT = "ffhq"

__all__ = [*_images_all, "faces_metrics", "faces_settings", "FacesSettings", "EXPERIMENT"]
