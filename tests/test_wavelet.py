"""Wavelet decomposition and subband loss against PyWavelets (the independent reference) and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pywt
import torch

from spectral_lib.spectral import WaveletLoss, wavelet_decompose, wavelet_loss, wavelet_max_level

pytestmark = pytest.mark.filterwarnings("ignore:Level value of .* is too high")

WAVELETS = ["haar", "db2", "bior1.3"]


def _pywt_bands(x: np.ndarray, wavelet: str, levels: int, mode: str) -> list[np.ndarray]:
    """PyWavelets' coefficients flattened in our band order: approximation, then (H, V, D) per level coarse->fine."""
    if x.ndim == 3:
        return pywt.wavedec(x, wavelet, mode=mode, level=levels, axis=-1)
    coeffs = pywt.wavedec2(x, wavelet, mode=mode, level=levels, axes=(-2, -1))
    return [coeffs[0]] + [band for details in coeffs[1:] for band in details]


@pytest.mark.parametrize("wavelet", WAVELETS)
@pytest.mark.parametrize("levels", [1, 2, 3])
@pytest.mark.parametrize("shape", [(2, 3, 40), (2, 2, 33), (2, 2, 24, 32), (1, 2, 27, 25)])
def test_decompose_matches_pywavelets(wavelet, levels, shape, generator):
    x = torch.randn(shape, generator=generator, dtype=torch.float64)
    bands = wavelet_decompose(x, wavelet, levels, mode="reflect")
    reference = _pywt_bands(x.numpy(), wavelet, levels, "reflect")
    assert len(bands) == len(reference) == (1 + levels if len(shape) == 3 else 1 + 3 * levels)
    for band, ref in zip(bands, reference):
        assert band.coeffs.shape == ref.shape
        np.testing.assert_allclose(band.coeffs.numpy(), ref, atol=1e-12)


@pytest.mark.parametrize("mode", ["reflect", "zero", "constant", "periodic", "symmetric"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_mode_and_dtype_matches_pywavelets(mode, dtype, generator):
    for shape in ((2, 1, 21), (2, 1, 18, 20)):
        x = torch.randn(shape, generator=generator, dtype=dtype)
        bands = wavelet_decompose(x, "bior1.3", 2, mode=mode)
        assert all(b.coeffs.dtype == dtype for b in bands)
        for band, ref in zip(bands, _pywt_bands(x.double().numpy(), "bior1.3", 2, mode)):
            np.testing.assert_allclose(band.coeffs.double().numpy(), ref, atol=1e-5 if dtype == torch.float32 else 1e-12)


def test_band_order_names_and_orientations(generator):
    x = torch.randn(1, 1, 16, 16, generator=generator, dtype=torch.float64)
    bands = wavelet_decompose(x, "haar", 2, mode="reflect")
    assert [b.name for b in bands] == ["a2", "h2", "v2", "d2", "h1", "v1", "d1"]
    # a horizontal edge (rows change) lives in the horizontal detail band, as in PyWavelets
    edge = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    edge[..., 5:, :] = 1.0
    level1 = {b.orientation: b.coeffs.abs().sum().item() for b in wavelet_decompose(edge, "haar", 1) if b.level == 1}
    assert level1["horizontal"] > 0 and level1["vertical"] == 0 and level1["diagonal"] == 0
    assert [b.name for b in wavelet_decompose(torch.zeros(1, 1, 16), "haar", 2)] == ["a2", "d2", "d1"]


def test_loss_matches_pywavelets_reference_with_weights(generator):
    pred = torch.randn(2, 3, 32, 32, generator=generator, dtype=torch.float64)
    target = torch.randn(2, 3, 32, 32, generator=generator, dtype=torch.float64)
    level_weights, band_weights = [0.5, 2.0, 1.5], {"vertical": 3.0, "diagonal": 0.0}
    got = wavelet_loss(
        pred, target, wavelet="bior1.3", levels=3, mode="symmetric", approx_weight=0.25, detail_weight=2.0,
        level_weights=level_weights, band_weights=band_weights, reduction="none",
    )
    p = pywt.wavedec2(pred.numpy(), "bior1.3", mode="symmetric", level=3, axes=(-2, -1))
    t = pywt.wavedec2(target.numpy(), "bior1.3", mode="symmetric", level=3, axes=(-2, -1))
    ref = 0.25 * np.abs(p[0] - t[0]).reshape(2, -1).mean(1)
    orientation_weight = {"horizontal": 1.0, "vertical": 3.0, "diagonal": 0.0}
    for i, (dp, dt) in enumerate(zip(p[1:], t[1:])):
        level = 3 - i  # PyWavelets lists the coarsest level first; level_weights are finest first
        for orientation, bp, bt in zip(("horizontal", "vertical", "diagonal"), dp, dt):
            gamma = 2.0 * level_weights[level - 1] * orientation_weight[orientation]
            ref = ref + gamma * np.abs(bp - bt).reshape(2, -1).mean(1)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10)
    # 1-D, L2
    a = torch.randn(2, 2, 64, generator=generator, dtype=torch.float64)
    b = torch.randn(2, 2, 64, generator=generator, dtype=torch.float64)
    ref1 = sum(((x - y) ** 2).reshape(2, -1).mean(1) for x, y in zip(
        pywt.wavedec(a.numpy(), "db2", mode="reflect", level=2), pywt.wavedec(b.numpy(), "db2", mode="reflect", level=2)
    ))
    got1 = wavelet_loss(a, b, wavelet="db2", levels=2, distance="l2", reduction="none")
    np.testing.assert_allclose(got1.numpy(), ref1, rtol=1e-10)


def test_closed_forms():
    # Haar is orthonormal: each 2-D level scales a constant by 2 (1-D: sqrt 2) and its details are 0
    c1, c2 = torch.full((1, 1, 16, 16), 0.75), torch.full((1, 1, 16, 16), 0.25)
    assert wavelet_loss(c1, c2, levels=3).item() == pytest.approx(0.5 * 2**3, rel=1e-6)
    a1, a2 = torch.full((1, 1, 64), 1.0), torch.zeros(1, 1, 64)
    assert wavelet_loss(a1, a2, levels=2).item() == pytest.approx(math.sqrt(2) ** 2, rel=1e-6)
    x = torch.randn(3, 2, 32, 32, generator=torch.Generator().manual_seed(0))
    for wavelet in WAVELETS:
        assert wavelet_loss(x, x, wavelet=wavelet, levels=2).item() == 0.0


def test_max_level_rule():
    assert wavelet_max_level(32, "haar") == 5 == pywt.dwt_max_level(32, 2)
    assert wavelet_max_level(32, "bior1.3") == 3
    assert wavelet_max_level(64, "bior1.3") == 4
    assert wavelet_max_level(5, "bior1.3") == 0


def _hard_inputs(shape):
    impulse = torch.zeros(shape)
    impulse[..., 3] = 1.0
    return [torch.zeros(shape), torch.full(shape, -0.5), impulse, torch.full(shape, 1e4)]


@pytest.mark.parametrize("shape", [(2, 1, 16, 16), (2, 2, 32)])
@pytest.mark.parametrize("wavelet", ["haar", "bior1.3"])
def test_gradients_finite_on_hard_inputs(shape, wavelet):
    other = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    for hard in _hard_inputs(shape):
        for pred, target in ((hard, other), (other, hard), (hard, hard.clone())):
            pred = pred.clone().requires_grad_(True)
            value = wavelet_loss(pred, target, wavelet=wavelet, levels=2)
            (grad,) = torch.autograd.grad(value, pred)
            assert torch.isfinite(value) and torch.isfinite(grad).all()


@pytest.mark.parametrize("wavelet", ["haar", "bior1.3"])
def test_gradcheck_float64(wavelet, generator):
    for shape in ((1, 1, 12, 12), (2, 1, 16)):
        pred = torch.randn(shape, generator=generator, dtype=torch.float64, requires_grad=True)
        target = torch.randn(shape, generator=generator, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(
            lambda p, t: wavelet_loss(p, t, wavelet=wavelet, levels=2, mode="reflect"),
            (pred, target),
            atol=1e-6,
            fast_mode=True,
        )


def test_autocast_bfloat16_and_half_inputs(generator):
    pred = torch.randn(2, 3, 16, 16, generator=generator)
    target = torch.randn(2, 3, 16, 16, generator=generator)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = wavelet_loss(pred.bfloat16(), target, wavelet="bior1.3", levels=2)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, wavelet_loss(pred.bfloat16().float(), target, wavelet="bior1.3", levels=2))
    assert wavelet_loss(pred.half(), target.half()).dtype == torch.float32
    assert wavelet_decompose(pred.half(), "haar", 1)[0].coeffs.dtype == torch.float32


def test_reductions_and_module(generator):
    pred = torch.randn(4, 1, 16, 16, generator=generator)
    target = torch.randn(4, 1, 16, 16, generator=generator)
    per_sample = wavelet_loss(pred, target, reduction="none")
    assert per_sample.shape == (4,)
    torch.testing.assert_close(wavelet_loss(pred, target), per_sample.mean())
    torch.testing.assert_close(wavelet_loss(pred, target, reduction="sum"), per_sample.sum())
    module = WaveletLoss(wavelet="bior1.3", levels=2)
    torch.testing.assert_close(module(pred, target), wavelet_loss(pred, target, wavelet="bior1.3", levels=2))


@pytest.mark.parametrize(
    ("kwargs", "shape", "match"),
    [
        ({"levels": 4}, (1, 1, 32, 32), r"levels=4 is too deep for signal size 32x32 .*at most 3"),
        ({"levels": 6, "wavelet": "haar"}, (1, 1, 40), r"levels=6 .* size 40 .*at most 5"),
        ({"levels": 0}, (1, 1, 32, 32), "levels must be an integer"),
        ({"levels": 2.0}, (1, 1, 32, 32), "levels must be an integer"),
        ({"wavelet": "haarr"}, (1, 1, 32, 32), "unknown wavelet 'haarr'"),
        ({"mode": "mirror"}, (1, 1, 32, 32), "mode"),
        ({"level_weights": [1.0, 2.0]}, (1, 1, 32, 32), "level_weights must have one weight per level"),
        ({"band_weights": {"horizontal": 2.0}}, (1, 1, 32), "band_weights applies to 2-D"),
        ({"band_weights": {"north": 2.0}}, (1, 1, 32, 32), "orientation"),
        ({"approx_weight": -1.0}, (1, 1, 32, 32), "approx_weight"),
        ({"distance": "huber"}, (1, 1, 32, 32), "distance"),
    ],
)
def test_errors_name_the_argument(kwargs, shape, match):
    kwargs = {"wavelet": "bior1.3", **kwargs}
    with pytest.raises(ValueError, match=match):
        wavelet_loss(torch.zeros(shape), torch.zeros(shape), **kwargs)


def test_input_errors():
    with pytest.raises(ValueError, match="same shape"):
        wavelet_loss(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 8))
    with pytest.raises(ValueError, match="floating dtype"):
        wavelet_decompose(torch.zeros(1, 1, 16, dtype=torch.int32))
    with pytest.raises(ValueError, match="NaN or infinite"):
        wavelet_loss(torch.full((1, 1, 16), float("inf")), torch.zeros(1, 1, 16))
    with pytest.raises(ValueError, match="x must be 3-D"):
        wavelet_decompose(torch.zeros(16))


@pytest.mark.parametrize("shape", [(1, 2, 300), (1, 1, 20, 270)])
def test_long_signals_take_the_ptwt_path_and_match_pywavelets(shape, generator):
    # every side <= DENSE_MAX_SIZE runs as matrix products; a longer side goes through ptwt's convolutions
    from spectral_lib.spectral.wavelet import DENSE_MAX_SIZE

    assert max(shape[2:]) > DENSE_MAX_SIZE
    x = torch.randn(shape, generator=generator, dtype=torch.float64)
    for band, ref in zip(wavelet_decompose(x, "bior1.3", 2), _pywt_bands(x.numpy(), "bior1.3", 2, "reflect")):
        np.testing.assert_allclose(band.coeffs.numpy(), ref, atol=1e-12)


@pytest.mark.parametrize("shape", [(2, 2, 37), (2, 1, 19, 24)])
def test_dense_and_ptwt_paths_agree_values_and_gradients(shape, generator, monkeypatch):
    import spectral_lib.spectral.wavelet as wavelet_module

    pred = torch.randn(shape, generator=generator, dtype=torch.float64, requires_grad=True)
    target = torch.randn(shape, generator=generator, dtype=torch.float64)
    results = []
    for dense_max in (wavelet_module.DENSE_MAX_SIZE, 0):  # 0: every signal goes through ptwt
        monkeypatch.setattr(wavelet_module, "DENSE_MAX_SIZE", dense_max)
        value = wavelet_loss(pred, target, wavelet="bior1.3", levels=2, mode="symmetric", reduction="none")
        results.append((value, *torch.autograd.grad(value.sum(), pred)))
    for dense, convolved in zip(*results):
        torch.testing.assert_close(dense, convolved, rtol=1e-12, atol=1e-12)


def test_matrices_first_built_in_inference_mode_still_serve_autograd(generator):
    shape = (1, 1, 23, 29)  # a size no other test uses, so that the cached matrices are built right here
    pred = torch.randn(shape, generator=generator, requires_grad=True)
    target = torch.randn(shape, generator=generator)
    with torch.inference_mode():
        wavelet_loss(pred, target, wavelet="db2", levels=2)
    (grad,) = torch.autograd.grad(wavelet_loss(pred, target, wavelet="db2", levels=2), pred)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_each_family_has_its_own_dense_limit_under_the_ceiling(monkeypatch):
    import spectral_lib.spectral.wavelet as wavelet_module
    from spectral_lib.spectral.wavelet import dense_max_size

    assert dense_max_size("haar") == wavelet_module.DENSE_MAX_SIZES["haar"] < wavelet_module.DENSE_MAX_SIZE
    assert dense_max_size("bior1.3") == dense_max_size(pywt.Wavelet("db2")) == wavelet_module.DENSE_MAX_SIZE
    monkeypatch.setitem(wavelet_module.DENSE_MAX_SIZES, "bior", 10_000)
    assert dense_max_size("bior1.3") == wavelet_module.DENSE_MAX_SIZE, "a family's limit never passes the ceiling"
    monkeypatch.setattr(wavelet_module, "DENSE_MAX_SIZE", 0)
    assert dense_max_size("haar") == dense_max_size("bior1.3") == 0, "0 sends every signal through ptwt"


@pytest.mark.parametrize("wavelet", ["haar", "bior1.3"])
def test_between_the_family_limits_each_wavelet_takes_its_path_and_matches_pywavelets(wavelet, generator,
                                                                                    monkeypatch):
    """At a side above Haar's limit and below bior1.3's, Haar goes through ptwt and bior1.3 through the matrices;
    both give PyWavelets' coefficients."""
    import spectral_lib.spectral.wavelet as wavelet_module

    size = (wavelet_module.DENSE_MAX_SIZES["haar"] + wavelet_module.DENSE_MAX_SIZE) // 2
    dense_calls = []
    real = wavelet_module._decompose_dense
    monkeypatch.setattr(wavelet_module, "_decompose_dense", lambda *a: dense_calls.append(a) or real(*a))
    x = torch.randn(1, 1, size, size, generator=generator, dtype=torch.float64)
    bands = wavelet_decompose(x, wavelet, 2)
    assert bool(dense_calls) is (wavelet == "bior1.3")
    for band, ref in zip(bands, _pywt_bands(x.numpy(), wavelet, 2, "reflect"), strict=True):
        np.testing.assert_allclose(band.coeffs.numpy(), ref, atol=1e-12)
