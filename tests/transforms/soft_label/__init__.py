"""Tests of monai_noisylabel.transforms.soft_label (a package, so test module names stay unique)."""
