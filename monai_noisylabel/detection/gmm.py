"""Two-component Gaussian mixture split of per-sample losses into clean and noisy (DivideMix).

Li, Socher and Hoi, "DivideMix: Learning with Noisy Labels as Semi-supervised Learning", ICLR 2020,
https://arxiv.org/abs/2002.07394; used for segmentation by the deep self-cleansing paper, https://arxiv.org/abs/2409.05024. The fit is
scikit-learn's ``GaussianMixture`` with DivideMix's settings on min-max normalized losses.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from monai_noisylabel.utils import as_float_array, check_int, check_number, param_error

if TYPE_CHECKING:
    from monai.config import NdarrayOrTensor

__all__ = ["gmm_noisy_probability"]


def gmm_noisy_probability(
    losses: NdarrayOrTensor | Sequence[float],
    *,
    random_state: int = 0,
    max_iter: int = 10,
    tol: float = 1e-2,
    reg_covar: float = 5e-4,
) -> np.ndarray:
    """P(noisy) per sample: the posterior of the higher-mean component of a 2-Gaussian fit to the losses.

    Losses are min-max normalized to [0, 1], then ``GaussianMixture(n_components=2, max_iter=10,
    tol=1e-2, reg_covar=5e-4)`` is fitted (DivideMix's settings; its few EM steps may stop before
    convergence, so scikit-learn's ``ConvergenceWarning`` is silenced here). A sample is usually called
    clean when ``P(clean) = 1 - P(noisy) > 0.5``.

    Degenerate inputs (documented outputs, no exception):

    - NaN loss (not measured): NaN, and the sample is left out of the fit;
    - ``+inf`` loss (a non-finite loss was measured): 1.0, left out of the fit;
    - fewer than 2 distinct finite losses (one sample, or all equal): 0.0 for every finite loss, as
      there is no second group to call noisy.

    Args:
        losses: ``(N,)`` per-sample losses, e.g. :func:`~monai_noisylabel.detection.sample_loss_scores`.
        random_state: seed of the mixture's initialization (explicit: the global RNG is never used).
        max_iter: EM iterations (DivideMix: 10).
        tol: convergence threshold (DivideMix: 1e-2).
        reg_covar: variance floor added to the covariance (DivideMix: 5e-4).

    Returns:
        ``(N,)`` float64 probabilities in [0, 1] (NaN where the loss was NaN).

    Raises:
        ValueError: a bad shape, ``-inf`` losses, or bad settings.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> losses = np.concatenate([rng.normal(0.2, 0.05, 80), rng.normal(1.0, 0.1, 20)])
        >>> p = gmm_noisy_probability(losses)
        >>> int((p > 0.5).sum()), bool((p[80:] > 0.5).all())
        (20, True)
    """
    owner = "gmm_noisy_probability"
    values = as_float_array(owner, "losses", losses, ndim=1)
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)) or random_state < 0:
        raise param_error(owner, "random_state", "an int >= 0", random_state)
    max_iter = check_int(owner, "max_iter", max_iter, 1)
    tol = check_number(owner, "tol", tol, 0.0, open_min=True)
    reg_covar = check_number(owner, "reg_covar", reg_covar, 0.0)
    if (values == -np.inf).any():
        raise param_error(owner, "losses", "free of -inf (NaN = not measured, +inf = non-finite loss)", "-inf")
    out = np.full(values.shape, np.nan)
    out[values == np.inf] = 1.0
    finite = np.isfinite(values)
    x = values[finite]
    if x.size == 0:
        return out
    lo, hi = float(x.min()), float(x.max())
    if not hi > lo:
        out[finite] = 0.0
        return out
    x = ((x - lo) / (hi - lo)).reshape(-1, 1)
    gmm = GaussianMixture(
        n_components=2, max_iter=max_iter, tol=tol, reg_covar=reg_covar, random_state=int(random_state)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(x)
    noisy = int(np.argmax(gmm.means_.ravel()))
    out[finite] = gmm.predict_proba(x)[:, noisy]
    return out
