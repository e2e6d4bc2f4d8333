"""Image-quality measures against images whose answer is known by construction."""
from __future__ import annotations

import numpy as np
import pytest

from brainage_lib.preprocess import measures


def test_bias_field_range_recovers_a_known_field(rng):
    clean = rng.uniform(80, 120, (40, 40, 40))
    field = np.exp(np.linspace(-0.2, 0.2, 40))[:, None, None] * np.ones((40, 40, 40))  # e^0.4 from end to end
    mask = np.ones(clean.shape, bool)
    lo, hi = np.percentile(field, [1, 99])
    assert measures.bias_field_range(clean * field, clean, mask) == pytest.approx(hi / lo, rel=1e-9)
    assert measures.bias_field_range(clean, clean, mask) == pytest.approx(1.0)


def test_snr_is_mean_over_sd_in_the_mask(rng):
    image = np.zeros((30, 30, 30))
    mask = np.zeros(image.shape, bool)
    mask[5:25, 5:25, 5:25] = True
    image[mask] = rng.normal(100.0, 5.0, mask.sum())
    image[~mask] = rng.normal(0, 50.0, (~mask).sum())  # outside the mask: ignored
    assert measures.snr(image, mask) == pytest.approx(20.0, rel=0.05)


def test_efc_spans_focused_to_even():
    even = np.ones((20, 20, 20))
    focused = np.zeros((20, 20, 20))
    focused[10, 10, 10] = 1.0
    assert measures.efc(even) == pytest.approx(1.0)
    assert measures.efc(focused) == pytest.approx(0.0, abs=1e-12)
    half = np.zeros((20, 20, 20))
    half[:10] = 1.0
    assert 0.0 < measures.efc(half) < 1.0


def test_log_jacobian_range_reads_percentiles_inside_the_mask():
    logjac = np.linspace(-1, 1, 1000).reshape(10, 10, 10)
    mask = np.zeros(logjac.shape, bool)
    mask[:5] = True  # the values -1 .. ~0
    lo, hi = measures.log_jacobian_range(logjac, mask)
    assert (lo, hi) == pytest.approx(tuple(np.percentile(logjac[:5], [1, 99])))
    assert hi < 0.01
