"""Paper input transforms, the memory-mapped cache and the datasets."""
from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import write_nifti
from scipy import ndimage

from brainage_lib.data import cache as cache_mod
from brainage_lib.data.cache import cache_path, cached_array
from brainage_lib.data.cohort import load_cohort
from brainage_lib.data.datasets import SliceDataset, SliceSequenceDataset, VolumeDataset
from brainage_lib.data.transforms import get_transform, load_volume
from brainage_lib.papers.diff.transforms import DIFFSlice
from brainage_lib.papers.lstm.transforms import LSTMSlices
from brainage_lib.papers.tgb.transforms import TGBVolume
from brainage_lib.errors import BrainAgeError


def ramp(shape):
    x = np.arange(shape[0], dtype=np.float32)[:, None, None]
    return np.broadcast_to(x, shape).astype(np.float32).copy()


def test_tgb_volume_shape_range_and_linear_resampling():
    vol = ramp((40, 30, 50)) * 3 + 7
    out = TGBVolume()(vol)
    assert out.shape == (96, 96, 96) and out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == pytest.approx(1.0)
    # a linear ramp along x stays a ramp after linear resampling + min-max (independent: scipy zoom order 1)
    ref = ndimage.zoom(vol, (96 / 40, 96 / 30, 96 / 50), order=1, grid_mode=True, mode="nearest")
    ref = (ref - ref.min()) / (ref.max() - ref.min())
    np.testing.assert_allclose(out[:, 48, 48], ref[:, 48, 48], atol=0.02)
    assert np.allclose(out[:, 0, 0], out[:, 95, 95])


def test_diff_slice_takes_the_mid_axial_slice():
    vol = np.zeros((40, 40, 31), np.float32)
    vol[10:30, 12:28, 15] = 5.0  # only the middle slice (index 15 of 31) has a square
    out = DIFFSlice()(vol)
    assert out.shape == (128, 128) and out.min() == 0.0 and out.max() == pytest.approx(1.0)
    assert out[64, 64] == pytest.approx(1.0) and out[5, 5] == 0.0
    vol2 = vol.copy()
    vol2[:, :, 15] = 0
    vol2[:, :, 16] = 1
    assert DIFFSlice()(vol2).max() == 0.0  # a neighbouring slice is not used


def test_lstm_slices_are_zscored_axial_stacks():
    gen = np.random.default_rng(0)
    vol = gen.random((60, 70, 50)).astype(np.float32) * 100 + 20
    out = LSTMSlices()(vol)
    assert out.shape == (112, 50, 50)
    assert abs(float(out.mean())) < 1e-4 and float(out.std()) == pytest.approx(1.0, abs=1e-4)
    # slice order follows z: a volume brightening along z gives slice means increasing
    out2 = LSTMSlices()(np.broadcast_to(np.arange(50, dtype=np.float32), (60, 70, 50)).copy())
    assert np.all(np.diff(out2.mean(axis=(1, 2))) > 0)


def test_get_transform_errors():
    assert get_transform("lstm", slice_size=32).out_shape == (112, 32, 32)
    with pytest.raises(BrainAgeError, match="Unknown transform 'vgg'"):
        get_transform("vgg")
    with pytest.raises(BrainAgeError, match="Unknown parameter"):
        get_transform("tgb", width=3)


def test_load_volume_names_the_bad_file(tmp_path):
    arr = np.ones((10, 10, 10), np.float32)
    arr[1, 1, 1] = np.nan
    p = write_nifti(tmp_path / "x_T1w.nii.gz", arr)
    with pytest.raises(BrainAgeError, match="x_T1w.nii.gz: contains NaN"):
        load_volume(p)
    q = tmp_path / "y_T1w.nii.gz"
    q.write_bytes(b"garbage")
    with pytest.raises(BrainAgeError, match="y_T1w.nii.gz: cannot read"):
        load_volume(q)


def test_cache_matches_direct_transform_and_is_reused(tiny_abide, tmp_path, monkeypatch):
    cohort = load_cohort(tiny_abide)
    tr = TGBVolume(size=32)
    arr = cached_array(cohort, tr, root=tmp_path, progress=False)
    assert isinstance(arr, np.memmap) and arr.shape == (12, 32, 32, 32) and arr.dtype == np.float16
    for i in (0, 7):
        np.testing.assert_allclose(arr[i], tr(load_volume(cohort.paths[i])), atol=1e-3)
    calls = []
    monkeypatch.setattr(cache_mod, "load_volume", lambda p: calls.append(p))
    again = cached_array(cohort, tr, root=tmp_path, progress=False)
    assert calls == [] and again.shape == arr.shape
    assert cache_path(cohort, tr, tmp_path) != cache_path(cohort, TGBVolume(size=16), tmp_path)


def test_cache_key_changes_when_an_image_changes(tmp_path, cohort_writer):
    rows = [{"participant_id": f"sub-{i}", "age": 10 + i, "sex": "M", "site": "A"} for i in range(3)]
    root = cohort_writer(tmp_path / "c", rows)
    before = load_cohort(root).fingerprint()
    p = root / "sub-1" / "anat" / "sub-1_T1w.nii.gz"
    write_nifti(p, np.zeros((20, 20, 20), np.float32))
    os.utime(p, ns=(1, 1))
    assert load_cohort(root).fingerprint() != before


def test_interrupted_cache_build_leaves_nothing(tiny_abide, tmp_path, monkeypatch):
    cohort = load_cohort(tiny_abide)
    real = cache_mod.load_volume
    seen = []

    def failing(p):
        seen.append(p)
        if len(seen) == 5:
            raise BrainAgeError(f"{p}: boom")
        return real(p)

    monkeypatch.setattr(cache_mod, "load_volume", failing)
    with pytest.raises(BrainAgeError, match="boom"):
        cached_array(cohort, DIFFSlice(size=32), root=tmp_path, progress=False, workers=1)
    assert not any(f.suffix == ".npy" for f in tmp_path.rglob("*"))


def test_datasets_shapes(tiny_abide, tmp_path):
    cohort = load_cohort(tiny_abide)
    vol = cached_array(cohort, TGBVolume(size=16), root=tmp_path, progress=False)
    sl = cached_array(cohort, DIFFSlice(size=32), root=tmp_path, progress=False)
    seq = cached_array(cohort, LSTMSlices(atlas_shape=(32, 40, 28), slice_size=20), root=tmp_path, progress=False)
    x, y = VolumeDataset(vol, cohort.ages)[3]
    assert tuple(x.shape) == (1, 16, 16, 16) and float(y) == pytest.approx(cohort.ages[3])
    assert tuple(SliceDataset(sl, cohort.ages)[0][0].shape) == (1, 32, 32)
    ds = SliceSequenceDataset(seq, cohort.ages, indices=[2, 5])
    assert len(ds) == 2 and tuple(ds[1][0].shape) == (28, 20, 20) and float(ds[1][1]) == pytest.approx(cohort.ages[5])
