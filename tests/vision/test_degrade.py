import cv2
import numpy as np
import pytest

from forensic_face.vision.degrade import LEVELS, degrade, level, sample_training


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return 10 * np.log10(255**2 / mse)


@pytest.fixture(scope="module")
def grey250(face_rgb):
    return cv2.resize(cv2.cvtColor(face_rgb, cv2.COLOR_RGB2GRAY), (250, 250), interpolation=cv2.INTER_AREA)


def test_same_seed_same_bytes_other_seed_differs(grey250):
    a = degrade(grey250, "severe", seed=7)
    assert np.array_equal(a, degrade(grey250, "severe", seed=7))
    assert not np.array_equal(a, degrade(grey250, "severe", seed=8))


@pytest.mark.parametrize("name,size,sigma,noise,quality", [("mild", 64, 0.8, 6, 40), ("severe", 40, 1.2, 12, 20)])
def test_evaluation_levels_follow_design(grey250, name, size, sigma, noise, quality):
    """DESIGN.md: area downscale to size, 3x3 blur, Gaussian noise seeded, JPEG, bicubic back."""
    seed = 3
    x = cv2.resize(grey250, (size, size), interpolation=cv2.INTER_AREA)
    x = cv2.GaussianBlur(x, (3, 3), sigma, borderType=cv2.BORDER_REFLECT_101)
    x = np.clip(np.rint(x + np.random.default_rng(seed).normal(0, noise, x.shape)), 0, 255).astype(np.uint8)
    x = cv2.imdecode(cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_GRAYSCALE)
    want = cv2.resize(x, (250, 250), interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(degrade(grey250, name, seed=seed), want)


def test_severity_is_ordered(grey250):
    mild = np.mean([_psnr(grey250, degrade(grey250, "mild", seed=s)) for s in range(5)])
    severe = np.mean([_psnr(grey250, degrade(grey250, "severe", seed=s)) for s in range(5)])
    assert mild > severe + 1.0
    assert np.array_equal(degrade(grey250, "clean"), grey250)


@pytest.mark.parametrize("name", [n for n in LEVELS if n != "clean"])
def test_every_single_factor_changes_the_image_and_keeps_shape(face_rgb, name):
    out = degrade(face_rgb, name, seed=1)
    assert out.shape == face_rgb.shape and out.dtype == np.uint8
    assert _psnr(face_rgb, out) < 40


def test_geometry_factors_do_what_they_say(grey250):
    assert np.array_equal(degrade(grey250, "flip"), grey250[:, ::-1])
    rot = degrade(grey250, "rot30")
    m = cv2.getRotationMatrix2D((125, 125), 30, 1.0)
    want = cv2.warpAffine(grey250, m, (250, 250), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    assert np.array_equal(rot, want)
    dark = degrade(grey250, "dark")
    assert dark.mean() < 0.6 * grey250.mean()


def test_unknown_level_lists_choices():
    with pytest.raises(ValueError, match="severe"):
        level("awful")


def test_training_sampler_is_seeded_and_valid(grey250):
    draws = [sample_training(np.random.default_rng(s)) for s in range(200)]
    assert draws[5] == sample_training(np.random.default_rng(5))
    assert len({d for d in draws}) > 150
    assert any(d.rotate_deg for d in draws) and any(d.occlusion for d in draws) and any(d.flip for d in draws)
    for i, d in enumerate(draws[:40]):
        out = degrade(grey250, d, seed=i)
        assert out.shape == grey250.shape and out.dtype == np.uint8
