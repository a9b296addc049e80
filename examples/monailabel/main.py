"""The monai_noisylabel MONAI Label app: every bundle folder under ``model/`` (served and trained), the
``label_quality`` scoring method and the ``suspect_label_first`` strategy.

MONAI Label loads the ``MONAILabelApp`` subclass from this file; ``scripts/monailabel_app.sh`` copies it and the
bundles into the app folder and starts the server. Everything lives in
:class:`monai_noisylabel.monailabel.NoisyLabelApp`; subclass it here to add your own tasks.
"""

from __future__ import annotations

from monai_noisylabel.monailabel import NoisyLabelApp


class MyApp(NoisyLabelApp):
    """Bundles from ``--conf bundles DIR`` (default ``<app>/model``); see ``README.md`` next to this file."""
