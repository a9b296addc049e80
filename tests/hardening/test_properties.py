"""Property-based tests over every public transform, loss, detection and refurbishment function.

Random 2D/3D shapes (batch 1..4, odd and size-1 dimensions), dtypes (uint8..int64, float16/32/64, bool), numpy /
torch / MetaTensor inputs, label values (empty, one class, all classes, unknown classes) and NaN/inf in images,
probabilities and scores. Each call either returns a well-formed result (shape, dtype, container, value range,
input unchanged) or raises the package's own ``ValueError``; see ``_proplib.call``. Profiles and the case count:
``_proplib`` (``MONAI_NOISYLABEL_HYPOTHESIS=long`` for a long local run).
"""

from __future__ import annotations

import string

import numpy as np
import pytest
import torch
from _proplib import CONTAINERS, DTYPES, FLOAT_DTYPES, as_dtype, as_numpy, call, label_values, spatial_shapes, wrap
from _proplib import with_nonfinite as nonfinite
from hypothesis import given
from hypothesis import strategies as st
from monai.data import MetaTensor

import monai_noisylabel as nl
from monai_noisylabel import detection as det
from monai_noisylabel import refurbish as ref

seeds = st.integers(0, 2**16)


def _rng(data) -> np.random.Generator:
    return np.random.default_rng(data.draw(seeds))


def _same_container(out, given_) -> None:
    assert type(out) is type(given_), (type(out), type(given_))
    if isinstance(given_, MetaTensor):
        assert torch.allclose(out.affine, given_.affine)


# ------------------------------------------------------------------------------------------------ transforms

NOISE = {
    "RandLabelNoise": lambda n: nl.RandLabelNoise(prob=1.0, radius=(1, 2), max_shift=1, num_classes=n),
    "RandLabelBias": lambda n: nl.RandLabelBias(prob=1.0, label_class=1, radius=1, num_classes=n),
    "RandLabelOmission": lambda n: nl.RandLabelOmission(prob=1.0, classes=1, num_classes=n),
}


@pytest.mark.parametrize("name", list(NOISE))
@given(data=st.data())
def test_label_noise_transforms(name, data):
    """Labels of any dtype/container/content: the same container, shape and dtype back, values within the input's."""
    rng, shape, n = _rng(data), data.draw(spatial_shapes), data.draw(st.integers(1, 4))
    dtype, container = data.draw(st.sampled_from(DTYPES)), data.draw(st.sampled_from(CONTAINERS))
    values = as_dtype(label_values(data.draw, (1, *shape), n, rng), dtype)
    label = wrap(values, container)
    transform, err = call(f"{name}()", NOISE[name], data.draw(st.sampled_from([None, n])))
    if err is not None:
        return
    transform.set_random_state(seed=data.draw(seeds))
    out, err = call(name, transform, label)
    if err is None:
        _same_container(out, label)
        assert tuple(out.shape) == tuple(label.shape) and out.dtype == label.dtype
        assert set(np.unique(as_numpy(out)).tolist()) <= set(np.unique(values).tolist()) | {0}


@pytest.mark.parametrize("name", list(NOISE))
@given(data=st.data())
def test_label_noise_dictionary_transforms(name, data):
    """The dictionary versions: the same draw as the array version, other keys untouched."""
    rng, shape, n = _rng(data), data.draw(spatial_shapes), data.draw(st.integers(2, 4))
    label = wrap(label_values(data.draw, (1, *shape), n, rng), data.draw(st.sampled_from(CONTAINERS)))
    image = wrap(rng.random((1, *shape)).astype(np.float32), "numpy")
    array, seed = NOISE[name](n), data.draw(seeds)
    array.set_random_state(seed=seed)
    dictionary = _dict_twin(name, n)
    dictionary.set_random_state(seed=seed)
    out, err = call(f"{name}d", dictionary, {"label": label, "image": image, "id": "case0"})
    if err is None:
        expected = array(label)
        np.testing.assert_array_equal(as_numpy(out["label"]), as_numpy(expected))
        assert out["image"] is image


def _dict_twin(name: str, n: int):
    kwargs = {
        "RandLabelNoise": {"prob": 1.0, "radius": (1, 2), "max_shift": 1},
        "RandLabelBias": {"prob": 1.0, "label_class": 1, "radius": 1},
        "RandLabelOmission": {"prob": 1.0, "classes": 1},
    }[name]
    return getattr(nl, f"{name}d")("label", num_classes=n, **kwargs)


@given(data=st.data())
def test_threshold_binarize(data):
    rng, shape = _rng(data), data.draw(spatial_shapes)
    channels, container = data.draw(st.integers(1, 3)), data.draw(st.sampled_from(CONTAINERS))
    dtype = data.draw(st.sampled_from(FLOAT_DTYPES))
    soft = wrap(nonfinite(data.draw, rng.random((channels, *shape)).astype(dtype), rng), container)
    t = nl.ThresholdBinarize(threshold=data.draw(st.floats(0.05, 0.95)), background_channel=data.draw(st.booleans()))
    out, err = call("ThresholdBinarize", t, soft)
    if err is None:
        _same_container(out, soft)
        values = as_numpy(out)
        assert out.shape[1:] == soft.shape[1:] and np.array_equal(values, np.round(values)) and values.min() >= 0


@given(data=st.data())
def test_confidence_to_soft_label(data):
    rng, shape = _rng(data), data.draw(spatial_shapes)
    scale = data.draw(st.sampled_from(["0-1", "0-10", "0-100"]))
    top = {"0-1": 1.0, "0-10": 10.0, "0-100": 100.0}[scale] * data.draw(st.sampled_from([1.0, 1.5]))
    container = data.draw(st.sampled_from(CONTAINERS))
    conf = wrap(nonfinite(data.draw, (rng.random((data.draw(st.integers(1, 3)), *shape)) * top), rng), container)
    t = nl.ConfidenceToSoftLabel(scale=scale, overlap=data.draw(st.sampled_from(["independent", "normalize"])))
    out, err = call("ConfidenceToSoftLabel", t, conf)
    if err is None:
        _same_container(out, conf)
        values = as_numpy(out)
        assert out.shape[1:] == conf.shape[1:] and np.all((values >= 0) & (values <= 1))


@given(data=st.data())
def test_multi_rater_soft_label(data):
    rng, shape = _rng(data), data.draw(spatial_shapes)
    raters = data.draw(st.integers(1, 4))
    dtype, container = data.draw(st.sampled_from(DTYPES)), data.draw(st.sampled_from(CONTAINERS))
    stack = wrap(as_dtype(label_values(data.draw, (raters, *shape), 2, rng), dtype), container)
    t = nl.MultiRaterSoftLabel(method=data.draw(st.sampled_from(["mean", "staple"])), max_iter=5)
    out, err = call("MultiRaterSoftLabel", t, stack)
    if err is None:
        _same_container(out, stack)
        values = as_numpy(out)
        assert out.shape[1:] == stack.shape[1:] and np.all((values >= 0) & (values <= 1))


@given(data=st.data())
def test_anatomical_prior(data):
    rng, shape = _rng(data), data.draw(spatial_shapes)
    container = data.draw(st.sampled_from(CONTAINERS))
    soft = wrap(rng.random((1, *shape)).astype(np.float32), container)
    region = wrap(as_dtype(label_values(data.draw, (1, *shape), 2, rng), data.draw(st.sampled_from(DTYPES))), container)
    image = wrap(nonfinite(data.draw, rng.normal(size=(1, *shape)), rng).astype(np.float32), container)
    out, err = call("AnatomicalPrior", nl.AnatomicalPrior(), soft, region, image)
    if err is None:
        _same_container(out, soft)
        values = as_numpy(out)
        assert out.shape == soft.shape and np.all((values >= 0) & (values <= 1))


# ------------------------------------------------------------------------------------------------ losses

LOSSES = {
    "NCE": lambda: nl.NormalizedCrossEntropyLoss(softmax=True, to_onehot_y=True, reduction="none"),
    "NFL": lambda: nl.NormalizedFocalLoss(softmax=True, to_onehot_y=True, reduction="none"),
    "RCE": lambda: nl.ReverseCrossEntropyLoss(softmax=True, to_onehot_y=True, reduction="none"),
    "MAE": lambda: nl.MeanAbsoluteErrorLoss(softmax=True, to_onehot_y=True, reduction="none"),
    "NAP": lambda: nl.NormalizedActivePassiveLoss(softmax=True, to_onehot_y=True, reduction="none"),
    "SampleDiceCE": lambda: nl.SampleDiceCELoss(reduction="none"),
}


@pytest.mark.parametrize("name", list(LOSSES))
@given(data=st.data())
def test_losses(name, data):
    """Logits (B, C, *spatial) with NaN/inf, labels with unknown classes: one finite loss per sample or an error."""
    rng, shape = _rng(data), data.draw(spatial_shapes)
    batch, classes = data.draw(st.integers(1, 4)), data.draw(st.integers(2, 4))
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64]))
    raw = nonfinite(data.draw, rng.normal(size=(batch, classes, *shape)), rng)
    logits = torch.as_tensor(raw, dtype=dtype)
    labels = wrap(label_values(data.draw, (batch, 1, *shape), classes, rng), data.draw(st.sampled_from(CONTAINERS)))
    labels = torch.as_tensor(labels) if isinstance(labels, np.ndarray) else labels
    out, err = call(name, LOSSES[name](), logits, labels)
    if err is None:
        assert out.shape[0] == batch
        if np.isfinite(raw).all():
            assert torch.isfinite(out).all()


@given(data=st.data())
def test_threshold_bce_loss(data):
    rng, shape = _rng(data), data.draw(spatial_shapes)
    batch, channels = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    logits = torch.as_tensor(nonfinite(data.draw, rng.normal(size=(batch, channels, *shape)), rng), dtype=torch.float32)
    conf = torch.as_tensor(nonfinite(data.draw, rng.random((batch, channels, *shape)), rng), dtype=torch.float32)
    out, err = call("ThresholdBinarizedBCELoss", nl.ThresholdBinarizedBCELoss(reduction="none"), logits, conf)
    if err is None:
        assert out.shape[0] == batch
        if torch.isfinite(logits).all() and torch.isfinite(conf).all():
            assert torch.isfinite(out).all()


# ------------------------------------------------------------------------------------------------ detection


def _scores(data, rng, n: int | None = None) -> np.ndarray:
    n = data.draw(st.integers(0, 12)) if n is None else n
    dtype = data.draw(st.sampled_from([*FLOAT_DTYPES, np.int64]))
    values = rng.normal(size=n) * data.draw(st.sampled_from([1.0, 0.0, 1e6]))
    if dtype == np.int64:
        return values.astype(np.int64)
    with np.errstate(over="ignore"):  # 1e6 in float16 is inf: one more non-finite case
        return nonfinite(data.draw, values, rng).astype(dtype)


def _finite_in(out: np.ndarray, given_: np.ndarray, low: float = -np.inf, high: float = np.inf) -> None:
    """Every score of a finite input is finite and in [low, high]."""
    ok = np.isfinite(given_.astype(np.float64))
    assert np.all(np.isfinite(out[ok])) and np.all((out[ok] >= low) & (out[ok] <= high))


@given(data=st.data())
def test_gmm_noisy_probability(data):
    rng = _rng(data)
    losses = np.abs(_scores(data, rng))
    out, err = call("gmm_noisy_probability", det.gmm_noisy_probability, losses)
    if err is None:
        assert out.shape == losses.shape
        _finite_in(out, losses, 0, 1)
        x = losses.astype(np.float64)
        assert np.all(np.isnan(out[np.isnan(x)])) and np.all(out[x == np.inf] == 1.0)  # documented


@given(data=st.data())
def test_sample_loss_scores(data):
    rng = _rng(data)
    epochs, n = data.draw(st.integers(1, 5)), data.draw(st.integers(0, 8))
    losses = np.stack([_scores(data, rng, n) for _ in range(epochs)]) if n else np.zeros((epochs, 0))
    out, err = call("sample_loss_scores", det.sample_loss_scores, losses)
    if err is None:
        assert out.shape == (n,)


@pytest.mark.parametrize("method", ["zscore", "rank", "minmax"])
@given(data=st.data())
def test_normalize_scores(method, data):
    rng = _rng(data)
    scores = _scores(data, rng)
    out, err = call(f"normalize_scores[{method}]", det.normalize_scores, scores, method=method)
    if err is None:
        assert out.shape == scores.shape
        _finite_in(out, scores)


@given(data=st.data())
def test_combine_scores(data):
    rng = _rng(data)
    n = data.draw(st.integers(0, 10))
    columns = {
        k: _scores(data, rng, n) for k in data.draw(st.sets(st.sampled_from(["vog", "loss", "offset"]), min_size=1))
    }
    out, err = call("combine_scores", det.combine_scores, columns)
    if err is None:
        assert out.shape == (n,)
        if all(np.isfinite(c.astype(np.float64)).all() for c in columns.values()):
            assert np.all(np.isfinite(out))


@given(data=st.data())
def test_reference_scores(data):
    """conformal_pvalues, reference_flags, reference_excess against a clean reference of any size."""
    rng = _rng(data)
    scores, reference = _scores(data, rng), _scores(data, rng)
    p, err = call("conformal_pvalues", det.conformal_pvalues, scores, reference)
    if err is None:
        assert p.shape == scores.shape
        _finite_in(p, scores, 0, 1)
    flags, err = call("reference_flags", det.reference_flags, scores, reference)
    if err is None:
        assert flags.shape == scores.shape and flags.dtype == np.bool_
        assert not flags[np.isnan(scores.astype(np.float64))].any()  # a NaN score is never flagged
    excess, err = call("reference_excess", det.reference_excess, scores, reference)
    if err is None:
        assert np.isfinite(excess) or np.isnan(excess)


@given(data=st.data())
def test_combine_with_reference(data):
    rng = _rng(data)
    n, m = data.draw(st.integers(0, 10)), data.draw(st.integers(0, 10))
    names = sorted(data.draw(st.sets(st.sampled_from(["loss", "offset"]), min_size=1)))
    scores = {k: _scores(data, rng, n) for k in names}
    reference = {k: _scores(data, rng, m) for k in names}
    out, err = call("combine_with_reference", det.combine_with_reference, scores, reference)
    if err is None:
        combined, ref_combined, weights = out
        assert combined.shape == (n,) and ref_combined.shape == (m,) and set(weights) <= set(names)
        finite = combined[np.isfinite(combined)]
        assert np.all((finite >= 0) & (finite <= 1))


@given(data=st.data())
def test_per_sample_loss(data):
    rng = _rng(data)
    probs, labels, batch, _, _ = _probs_and_labels(data, rng)
    logits = torch.as_tensor(np.log(np.clip(as_numpy(probs).astype(np.float32), 1e-6, None)))
    labels = labels if isinstance(labels, torch.Tensor) else torch.as_tensor(labels)
    out, err = call("per_sample_loss", det.per_sample_loss, nl.SampleDiceCELoss(reduction="none"), logits, labels)
    if err is None:
        assert tuple(out.shape) == (batch,)


@given(data=st.data())
def test_detection_metrics(data):
    rng = _rng(data)
    scores = _scores(data, rng)
    truth = rng.random(scores.shape[0]) < data.draw(st.sampled_from([0.0, 0.5, 1.0]))
    out, err = call("detection_metrics", det.detection_metrics, scores, truth)
    if err is None:
        assert {"auroc", "average_precision"} <= set(out)


@given(data=st.data())
def test_separation_weight(data):
    rng = _rng(data)
    values = _scores(data, rng)
    out, err = call("separation_weight", det.separation_weight, values)
    if err is None:
        assert 0 <= out <= 5.0**2  # D**2 with D capped at 5


def _probs_and_labels(data, rng):
    shape, batch, classes = data.draw(spatial_shapes), data.draw(st.integers(1, 4)), data.draw(st.integers(2, 4))
    probs = rng.dirichlet(np.ones(classes), size=(batch, *shape))
    probs = np.moveaxis(probs, -1, 1).astype(data.draw(st.sampled_from(FLOAT_DTYPES)))
    probs = nonfinite(data.draw, probs, rng)
    labels = as_dtype(label_values(data.draw, (batch, 1, *shape), classes, rng), data.draw(st.sampled_from(DTYPES)))
    container = data.draw(st.sampled_from(CONTAINERS))
    return wrap(probs, container), wrap(labels, container), batch, classes, shape


@given(data=st.data())
def test_pixel_and_image_label_quality(data):
    rng = _rng(data)
    probs, labels, batch, _, shape = _probs_and_labels(data, rng)
    quality, err = call("pixel_label_quality", det.pixel_label_quality, probs, labels)
    if err is None:
        assert quality.shape == (batch, *shape)
        finite = quality[np.isfinite(quality)]
        assert np.all((finite >= 0) & (finite <= 1))
        image, err = call("image_label_quality", det.image_label_quality, quality)
        if err is None:
            assert image.shape == (batch,)


@given(data=st.data())
def test_volume_offsets_and_offset_scores(data):
    rng = _rng(data)
    probs, labels, batch, classes, _ = _probs_and_labels(data, rng)
    preds = wrap(np.argmax(np.nan_to_num(as_numpy(probs)), axis=1)[:, None], data.draw(st.sampled_from(CONTAINERS)))
    offsets, err = call("volume_offsets", det.volume_offsets, preds, labels, num_classes=classes)
    if err is None:
        assert offsets.shape == (batch, classes - 1) and np.all(np.isfinite(offsets))
        scores, err = call("offset_scores", det.offset_scores, offsets)
        if err is None:
            assert scores.shape == (batch,)
        ref_scores, err = call("reference_offset_scores", det.reference_offset_scores, offsets)
        if err is None:
            assert ref_scores.shape == (batch,)


@given(data=st.data())
def test_vog_scores(data):
    rng = _rng(data)
    checkpoints, n, shape = data.draw(st.integers(1, 4)), data.draw(st.integers(0, 4)), data.draw(spatial_shapes)
    grads = nonfinite(data.draw, rng.normal(size=(checkpoints, n, *shape)), rng)
    grads = grads.astype(data.draw(st.sampled_from(FLOAT_DTYPES)))
    out, err = call("vog_scores", det.vog_scores, wrap(grads, data.draw(st.sampled_from(CONTAINERS))))
    if err is None:
        assert out.shape == (n,)


# ------------------------------------------------------------------------------------------------ refurbishment


@given(data=st.data())
def test_build_pseudo_labels(data):
    rng = _rng(data)
    probs, labels, batch, classes, shape = _probs_and_labels(data, rng)
    given_ = data.draw(st.sampled_from([None, labels]))
    delta = data.draw(st.sampled_from([0.0, 0.5]))
    out, err = call("build_pseudo_labels", ref.build_pseudo_labels, probs, given_, delta=delta)
    if err is None:
        values = as_numpy(out.labels)
        assert values.shape == (batch, 1, *shape)
        top = max(classes, as_numpy(labels).max() + 1)
        assert (((values >= 0) & (values < top)) | (values == 255)).all()  # a class, or ignore_index (no given)
        frac = out.fraction_changed  # NaN: not measured (no given label, or a non-finite model output)
        assert frac.shape == (batch,) and np.all((frac[np.isfinite(frac)] >= 0) & (frac[np.isfinite(frac)] <= 1))
        finite = np.isfinite(as_numpy(probs).astype(np.float64)).reshape(batch, -1).all(1)
        assert not out.refurbished[~finite].any()  # a non-finite model output is never a pseudo-label
        frac, err = call("fraction_changed", ref.fraction_changed, out.labels, labels)
        if err is None:
            assert 0 <= frac <= 1


@given(data=st.data())
def test_sharpen_and_lcm_soft_target(data):
    rng = _rng(data)
    probs, labels, batch, classes, shape = _probs_and_labels(data, rng)
    out, err = call("sharpen", ref.sharpen, probs, data.draw(st.sampled_from([0.1, 0.5, 1.0])))
    if err is None:
        _same_container(out, probs)
        values = as_numpy(out).astype(np.float64)
        ok = np.isfinite(values).all(axis=1)
        np.testing.assert_allclose(values.sum(axis=1)[ok], 1.0, atol=1e-2)
    clean = nonfinite(data.draw, rng.random(batch), rng)
    out, err = call("lcm_soft_target", ref.lcm_soft_target, labels, probs, clean)
    if err is None:
        values = as_numpy(out)
        assert values.shape == (batch, classes, *shape)
        finite = values[np.isfinite(values)]
        assert np.all((finite >= 0) & (finite <= 1 + 1e-3))


@given(data=st.data())
def test_lcm_pseudo_labels(data):
    rng = _rng(data)
    probs, labels, batch, _, shape = _probs_and_labels(data, rng)
    clean = nonfinite(data.draw, rng.random(batch), rng).tolist()
    out, err = call("lcm_pseudo_labels", ref.lcm_pseudo_labels, probs, labels, clean)
    if err is None:
        assert out.labels.shape[0] == batch and tuple(out.labels.shape[2:]) == shape
        finite = np.isfinite(as_numpy(probs).astype(np.float64)).reshape(batch, -1).all(1)
        assert not np.asarray(out.refurbished)[~finite].any()


@given(data=st.data())
def test_scalar_schedules(data):
    value = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 50))
    current, length = data.draw(value), data.draw(value)
    out, err = call("sigmoid_rampup", ref.sigmoid_rampup, current, length)
    if err is None:
        assert 0 <= out <= 1
    out, err = call("ema_decay", ref.ema_decay, data.draw(st.integers(-2, 100)), data.draw(value))
    if err is None:
        assert 0 <= out <= 1
    out, err = call(
        "lcm_mix_weight", ref.lcm_mix_weight, data.draw(value), data.draw(value), start=0.0, rampup_epochs=5.0
    )
    if err is None:
        assert 0 <= out <= 1


@given(sample_id=st.one_of(st.text(), st.text(alphabet=string.punctuation + "/\\.\x00 "), st.integers()))
def test_safe_sample_id(sample_id):
    out, err = call("safe_sample_id", ref.safe_sample_id, sample_id)
    if err is None:
        assert out and len(out) <= 100 and "/" not in out and "\\" not in out and "\x00" not in out
        assert out not in {".", ".."}
