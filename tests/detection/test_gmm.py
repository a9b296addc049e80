from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from monai_noisylabel.detection import gmm_noisy_probability


def _bimodal(seed=0, n_clean=150, n_noisy=50):
    rng = np.random.default_rng(seed)
    clean = rng.gamma(4.0, 0.05, n_clean)  # mean 0.2
    noisy = rng.normal(1.2, 0.15, n_noisy)
    return np.concatenate([clean, noisy]), np.r_[np.zeros(n_clean, bool), np.ones(n_noisy, bool)]


def test_separates_bimodal_losses(global_rng_guard):
    losses, noisy = _bimodal()
    p = gmm_noisy_probability(losses)
    assert p.shape == losses.shape and np.all((p >= 0) & (p <= 1))
    assert np.array_equal(p > 0.5, noisy)
    assert p[noisy].min() > 0.9 and p[~noisy].max() < 0.1


def test_matches_sklearn_with_divide_mix_settings():
    losses, _ = _bimodal(seed=3)
    x = ((losses - losses.min()) / (losses.max() - losses.min()))[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gmm = GaussianMixture(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=5).fit(x)
    expected = gmm.predict_proba(x)[:, np.argmax(gmm.means_.ravel())]
    np.testing.assert_allclose(gmm_noisy_probability(losses, random_state=5), expected)


def test_deterministic_and_invariant_to_affine_rescaling():
    losses, _ = _bimodal(seed=1)
    p = gmm_noisy_probability(losses, random_state=2)
    np.testing.assert_array_equal(p, gmm_noisy_probability(losses, random_state=2))
    np.testing.assert_allclose(gmm_noisy_probability(3.0 * losses + 7.0, random_state=2), p, atol=1e-6)


def test_degenerate_inputs():
    assert gmm_noisy_probability([]).shape == (0,)
    np.testing.assert_array_equal(gmm_noisy_probability([0.7]), [0.0])
    np.testing.assert_array_equal(gmm_noisy_probability([0.3, 0.3, 0.3]), [0.0, 0.0, 0.0])
    out = gmm_noisy_probability([np.nan, 0.3, np.inf])
    assert np.isnan(out[0]) and out[1] == 0.0 and out[2] == 1.0
    assert np.isnan(gmm_noisy_probability([np.nan, np.nan])).all()


def test_nan_and_inf_are_left_out_of_the_fit():
    losses, _ = _bimodal(seed=4)
    with_gaps = np.concatenate([losses, [np.nan, np.inf]])
    out = gmm_noisy_probability(with_gaps)
    np.testing.assert_allclose(out[:-2], gmm_noisy_probability(losses))
    assert np.isnan(out[-2]) and out[-1] == 1.0


def test_input_not_modified_and_torch_accepted():
    import torch

    losses, _ = _bimodal(seed=5)
    t = torch.as_tensor(losses)
    before = t.clone()
    np.testing.assert_allclose(gmm_noisy_probability(t), gmm_noisy_probability(losses))
    assert torch.equal(t, before)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"losses": [[0.1, 0.2]]}, "'losses' parameter of gmm_noisy_probability must be a 1-D array"),
        ({"losses": [0.1, -np.inf]}, "must be free of -inf"),
        (
            {"losses": [0.1], "random_state": -1},
            "'random_state' parameter of gmm_noisy_probability must be an int >= 0",
        ),
        ({"losses": [0.1], "random_state": np.random.default_rng(0)}, "'random_state' parameter"),
        ({"losses": [0.1], "max_iter": 0}, "'max_iter' parameter"),
        ({"losses": [0.1], "tol": 0.0}, "'tol' parameter"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gmm_noisy_probability(**kwargs)
