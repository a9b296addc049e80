"""monai_noisylabel: segmentation with wrong or uncertain labels, inside MONAI.

Flat re-exports of the public names of :mod:`.transforms`, :mod:`.losses`, :mod:`.detection`,
:mod:`.refurbish`, :mod:`.handlers` and :mod:`.data` (ignite is imported lazily by the handlers,
through ``monai.utils.optional_import``).
"""

from __future__ import annotations

__version__ = "0.1.0"

from monai_noisylabel import data, detection, handlers, losses, refurbish, transforms
from monai_noisylabel.data import *  # noqa: F403
from monai_noisylabel.detection import *  # noqa: F403
from monai_noisylabel.handlers import *  # noqa: F403
from monai_noisylabel.losses import *  # noqa: F403
from monai_noisylabel.refurbish import *  # noqa: F403
from monai_noisylabel.transforms import *  # noqa: F403

__all__ = [
    "__version__",
    *data.__all__,
    *detection.__all__,
    *handlers.__all__,
    *losses.__all__,
    *refurbish.__all__,
    *transforms.__all__,
]
