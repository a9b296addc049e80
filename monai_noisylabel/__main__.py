"""``python -m monai_noisylabel``: see :mod:`monai_noisylabel.cli`."""

from __future__ import annotations

import sys

from monai_noisylabel.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m monai_noisylabel"))
