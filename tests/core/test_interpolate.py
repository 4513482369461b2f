"""Temporal interpolation: equality with eo-learn's LinearInterpolationTask (fixtures made by
tools/make_eolearn_fixtures.py), corner cases, errors, and block-size independence."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from eolulc.core.eopatch import import_eopatch
from eolulc.core.interpolate import date_grid, interpolate_stack, parse_date_list
from eolulc.core.interpolation_plan import interpolate_series
from eolulc.core.progress import Cancelled, Progress
from eolulc.core.timestack import Grid, StackInfo, StackWriter, open_stack, parse_datetime

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
REAL_CASES = ["nofilter_2016_16d", "filter08_2016_16d", "nofilter_2015_2017_30d", "filter08_list"]
SYNTHETIC_CASES = [
    "synthetic_grid16_nofilter", "synthetic_grid16_filter06", "synthetic_grid7_nofilter", "synthetic_grid7_filter06",
]


def _fixture(name: str) -> dict:
    with np.load(FIXTURES / f"interpolate_{name}.npz") as z:
        return {k: z[k] for k in z.files}


def _grid_kwargs(settings: dict) -> dict:
    resample = settings["resample_range"]
    threshold = settings["threshold"]
    kwargs: dict = {"min_valid_fraction": 0.0 if threshold is None else threshold}
    if len(resample) == 3 and isinstance(resample[2], int):
        kwargs.update(start=resample[0], end=resample[1], interval_days=resample[2])
    else:
        kwargs["grid"] = parse_date_list(resample)
    return kwargs


def _write_stack(path: Path, dates, data: np.ndarray, nodata=float("nan"), bands=None) -> Path:
    t, h, w, b = data.shape
    info = StackInfo(
        grid=Grid(width=w, height=h, crs_wkt=None, transform=(10.0, 0.0, 0.0, 0.0, -10.0, h * 10.0)),
        dates=tuple(parse_datetime(d) if isinstance(d, str) else d for d in dates),
        bands=tuple(bands or [f"b{i}" for i in range(b)]), dtype=data.dtype.name, nodata=nodata,
    )
    with StackWriter(str(path), info) as writer:
        writer.write(data)
    return path


def _read(path: Path) -> tuple[np.ndarray, StackInfo]:
    with open_stack(str(path)) as stack:
        return stack.read(), stack.info


def _assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=0, equal_nan=True)


@pytest.fixture(scope="module")
def ndvi_stacks(eopatch_dir: Path, tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("ndvi")
    ndvi, clm = folder / "ndvi.tif", folder / "clm.tif"
    import_eopatch(eopatch_dir, ["NDVI"], ndvi, "CLM", clm)
    return ndvi, clm


@pytest.mark.parametrize("case", REAL_CASES)
def test_equals_eolearn_on_test_eopatch(ndvi_stacks, tmp_path: Path, case: str):
    ndvi, clm = ndvi_stacks
    fixture = _fixture(case)
    settings = json.loads(str(fixture["settings"]))
    out, report_path = tmp_path / "out.tif", tmp_path / "report.json"
    report = interpolate_stack(ndvi, out, mask_path=clm, output_report=report_path, **_grid_kwargs(settings))
    actual, info = _read(out)
    assert [d.isoformat() for d in info.dates] == list(fixture["dates"])
    assert [d.isoformat() for d in (report.input_dates[i] for i in report.kept)] == list(fixture["kept_dates"])
    _assert_same(actual, fixture["expected"])
    summary = json.loads(report_path.read_text())
    assert len(summary["kept_dates"]) + len(summary["dropped_dates"]) == 68
    if settings["threshold"] is None:
        assert summary["dropped_dates"] == []


@pytest.mark.parametrize("case", SYNTHETIC_CASES)
def test_equals_eolearn_on_corner_cases(tmp_path: Path, case: str):
    """Duplicates within one hour, half-hour rounding, always-cloudy, single-observation and
    same-hour-only pixels, nodata in one band."""
    fixture = _fixture(case)
    dates = list(fixture["input_dates"])
    data = _write_stack(tmp_path / "x.tif", dates, fixture["input_data"])
    mask = _write_stack(tmp_path / "m.tif", dates, (1 - fixture["input_valid"]).astype(np.uint8), nodata=255)
    settings = json.loads(str(fixture["settings"]))
    interpolate_stack(data, tmp_path / "out.tif", mask_path=mask, **_grid_kwargs(settings))
    actual, info = _read(tmp_path / "out.tif")
    assert [d.isoformat() for d in info.dates] == list(fixture["dates"])
    _assert_same(actual, fixture["expected"])
    assert np.isnan(actual[:, 0, 0]).all()  # always cloudy
    assert np.isfinite(actual[:, 5, 4]).any()


def test_block_size_does_not_change_anything(ndvi_stacks, tmp_path: Path):
    ndvi, clm = ndvi_stacks
    kwargs = dict(mask_path=clm, start="2015-09-01", end="2017-06-01", interval_days=30, min_valid_fraction=0.8)
    interpolate_stack(ndvi, tmp_path / "big.tif", output_count=tmp_path / "big_n.tif", **kwargs)
    interpolate_stack(ndvi, tmp_path / "small.tif", output_count=tmp_path / "small_n.tif", budget_bytes=40_000,
                      **kwargs)
    big, small = _read(tmp_path / "big.tif")[0], _read(tmp_path / "small.tif")[0]
    np.testing.assert_array_equal(big, small)
    np.testing.assert_array_equal(_read(tmp_path / "big_n.tif")[0], _read(tmp_path / "small_n.tif")[0])


def test_valid_count_and_fill_edges(tmp_path: Path):
    dates = ["2020-01-01T10:00:00", "2020-01-11T10:00:00", "2020-01-21T10:00:00", "2020-01-31T10:00:00"]
    data = np.array([0.0, 1.0, 2.0, 3.0], np.float32).reshape(4, 1, 1, 1) * np.ones((1, 1, 3, 1), np.float32)
    data[:, 0, 1] = np.nan
    data[[0, 3], 0, 2] = np.nan  # valid only on the two middle dates
    src = _write_stack(tmp_path / "x.tif", dates, data)
    grid = parse_date_list("2020-01-01T10:00 2020-01-06T10:00 2020-01-16T10:00 2020-01-31T10:00")
    interpolate_stack(src, tmp_path / "a.tif", grid=grid, min_valid_fraction=0, output_count=tmp_path / "n.tif")
    out = _read(tmp_path / "a.tif")[0][:, 0, :, 0]
    np.testing.assert_allclose(out[:, 0], [0.0, 0.5, 1.5, 3.0])
    assert np.isnan(out[:, 1]).all()
    assert np.isnan(out[[0, 1, 3], 2]).all() and out[2, 2] == pytest.approx(1.5)
    count, count_info = _read(tmp_path / "n.tif")
    assert count_info.dtype == "uint16" and count[0, 0, :, 0].tolist() == [4, 0, 2]
    interpolate_stack(src, tmp_path / "b.tif", grid=grid, min_valid_fraction=0, fill_edges=True)
    filled = _read(tmp_path / "b.tif")[0][:, 0, :, 0]
    np.testing.assert_allclose(filled[:, 2], [1.0, 1.0, 1.5, 2.0])
    assert np.isnan(filled[:, 1]).all()


def test_single_valid_observation_only_on_its_own_time():
    times = np.array([0, 240, 480], np.int64)
    values = np.array([[5.0], [7.0], [9.0]])
    valid = np.array([[False], [True], [False]])
    result, count = interpolate_series(values, valid, times, np.array([0, 240, 300]))
    assert np.isnan(result[0, 0]) and result[1, 0] == 7.0 and np.isnan(result[2, 0]) and count[0] == 1
    filled, _ = interpolate_series(values, valid, times, np.array([0, 240, 300]), fill_edges=True)
    assert filled[:, 0].tolist() == [7.0, 7.0, 7.0]


def test_unsorted_input_dates_give_the_sorted_result(tmp_path: Path):
    rng = np.random.default_rng(1)
    dates = [datetime(2021, 1, 1, 10) + timedelta(days=7 * i) for i in range(12)]
    data = rng.uniform(size=(12, 4, 3, 2)).astype(np.float32)
    data[rng.uniform(size=data.shape) < 0.3] = np.nan
    order = rng.permutation(12)
    sorted_path = _write_stack(tmp_path / "s.tif", dates, data)
    shuffled_path = _write_stack(tmp_path / "u.tif", [dates[i] for i in order], data[order])
    kwargs = dict(start="2021-01-01", end="2021-03-20", interval_days=5, min_valid_fraction=0)
    interpolate_stack(sorted_path, tmp_path / "a.tif", **kwargs)
    interpolate_stack(shuffled_path, tmp_path / "b.tif", **kwargs)
    np.testing.assert_array_equal(_read(tmp_path / "a.tif")[0], _read(tmp_path / "b.tif")[0])


def test_duplicate_dates_are_averaged(tmp_path: Path):
    dates = ["2020-01-01T10:00:00", "2020-01-11T10:05:00", "2020-01-11T10:20:00", "2020-01-21T10:00:00"]
    data = np.array([0.0, 2.0, 4.0, 6.0], np.float32).reshape(4, 1, 1, 1)
    src = _write_stack(tmp_path / "x.tif", dates, data)
    interpolate_stack(src, tmp_path / "o.tif", grid=parse_date_list(["2020-01-11T10:00:00"]), min_valid_fraction=0)
    assert _read(tmp_path / "o.tif")[0].ravel().tolist() == [3.0]


def test_scene_filter_drops_cloudy_dates_and_reports_them(tmp_path: Path):
    dates = ["2020-01-01", "2020-01-11", "2020-01-21"]
    data = np.ones((3, 2, 5, 1), np.float32)
    cloud = np.zeros((3, 2, 5, 1), np.uint8)
    cloud[1, :, :2] = 1  # 40 % cloudy: valid fraction 0.6
    src = _write_stack(tmp_path / "x.tif", dates, data)
    mask = _write_stack(tmp_path / "m.tif", dates, cloud, nodata=255)
    report = interpolate_stack(src, tmp_path / "o.tif", mask_path=mask, start="2020-01-01", end="2020-01-22",
                               interval_days=10, min_valid_fraction=0.6, output_report=tmp_path / "r.json")
    assert report.as_dict()["dropped_dates"] == ["2020-01-11T00:00:00"]
    assert json.loads((tmp_path / "r.json").read_text())["valid_fractions"]["2020-01-11T00:00:00"] == 0.6
    with open_stack(str(tmp_path / "o.tif")) as stack:
        assert "2020-01-11T00:00:00" in stack.info.tags["EOLULC_INTERPOLATION"]
    with pytest.raises(ValueError, match="no date has a valid fraction above 1 "):
        interpolate_stack(src, tmp_path / "p.tif", mask_path=mask, start="2020-01-01", end="2020-01-22",
                          min_valid_fraction=1.0)


def test_grid_like_eolearn():
    grid = date_grid("2016-01-01", "2016-12-31", 16)
    assert len(grid) == 23 and grid[-1] == datetime(2016, 12, 18)
    assert date_grid("2020-01-01", "2020-01-17", 16) == [datetime(2020, 1, 1)]  # end excluded
    with pytest.raises(ValueError, match="after the start"):
        date_grid("2020-02-01", "2020-01-01", 16)
    with pytest.raises(ValueError, match="whole number of days"):
        date_grid("2020-01-01", "2020-02-01", 0)


def test_errors_grid_outside_and_mask_on_other_dates(tmp_path: Path):
    dates = ["2020-01-01", "2020-01-11", "2020-01-21"]
    src = _write_stack(tmp_path / "x.tif", dates, np.ones((3, 2, 2, 1), np.float32))
    with pytest.raises(ValueError, match="outside the input's"):
        interpolate_stack(src, tmp_path / "o.tif", start="2021-01-01", end="2021-06-01", min_valid_fraction=0)
    other_dates = ["2020-01-01", "2020-01-12", "2020-01-21"]
    other = _write_stack(tmp_path / "m.tif", other_dates, np.zeros((3, 2, 2, 1), np.uint8), nodata=255)
    with pytest.raises(ValueError, match="mask-only dates 2020-01-12"):
        interpolate_stack(src, tmp_path / "o.tif", mask_path=other, start="2020-01-01", end="2020-01-21")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tif", "x.tif"]


def test_cancel_leaves_no_output(ndvi_stacks, tmp_path: Path):
    ndvi, clm = ndvi_stacks
    calls = []
    progress = Progress(on_progress=calls.append, is_canceled=lambda: len(calls) > 3)
    with pytest.raises(Cancelled):
        interpolate_stack(ndvi, tmp_path / "o.tif", mask_path=clm, start="2016-01-01", end="2016-12-31",
                          output_count=tmp_path / "n.tif", output_report=tmp_path / "r.json",
                          budget_bytes=20_000, progress=progress)
    assert list(tmp_path.iterdir()) == []


def test_block_kernel_equals_np_interp_per_pixel_and_band():
    """Bands with their own gaps (NaN in one band only), unsorted times and same-hour duplicates,
    pixels never valid or valid once: the shared-plan kernel equals one np.interp per series."""
    from eolulc.core.interpolation_plan import CHUNK_SERIES, interpolate_block

    rng = np.random.default_rng(3)
    times = np.array([50, 0, 20, 20, 90, 70, 120, 30], dtype=np.int64)
    new_times = np.array([-10, 0, 5, 20, 33, 60, 95, 120, 130], dtype=np.int64)
    n_bands, n_pixels = 3, CHUNK_SERIES + 37  # two chunks
    values = rng.normal(size=(len(times), n_bands, n_pixels)).astype(np.float32)
    clear = rng.random((len(times), 1, n_pixels)) > 0.4
    clear[:, 0, 0] = False  # never valid
    clear[:, 0, 1] = False
    clear[2, 0, 1] = True  # valid once, on a duplicated hour
    values[rng.random(values.shape) < 0.05] = np.nan  # gaps of single bands
    for fill in (False, True):
        out = np.empty((len(new_times), n_bands, n_pixels), np.float32)
        counts = np.empty((n_bands, n_pixels), np.uint16)
        interpolate_block(values, float("nan"), clear, times, new_times, fill, out, counts)
        for b in range(n_bands):
            for p in range(n_pixels):
                ok = clear[:, 0, p] & ~np.isnan(values[:, b, p])
                hours = np.unique(times[ok])
                assert counts[b, p] == len(hours)
                if not len(hours):
                    assert np.isnan(out[:, b, p]).all()
                    continue
                means = np.array([values[ok & (times == h), b, p].astype(np.float64).mean() for h in hours])
                expected = np.interp(new_times, hours, means).astype(np.float32)
                if not fill:
                    expected[(new_times < hours[0]) | (new_times > hours[-1])] = np.nan
                np.testing.assert_array_equal(out[:, b, p], expected)


def test_read_ahead_and_write_behind_keep_order_and_raise():
    from eolulc.core.blocks import WriteBehind, iter_blocks, read_ahead

    blocks = list(iter_blocks(300, 300, 4, budget_bytes=4 * 100 * 100, align=16))
    written = []
    with WriteBehind() as behind:
        for block, data in read_ahead(iter(blocks), lambda b: b.index * 10):
            assert data == block.index * 10
            behind.submit(written.append, block.index)
    assert written == [b.index for b in blocks]

    def fail(_):
        raise OSError("disk full")

    behind = WriteBehind()
    behind.submit(fail, None)
    with pytest.raises(OSError, match="disk full"):
        behind.submit(written.append, 99)  # the earlier write's error comes out at the next one
    behind.close()


def test_read_ahead_with_several_readers_keeps_order_and_never_shares_a_reader():
    import threading
    import time

    from eolulc.core.blocks import read_ahead

    busy = [threading.Lock(), threading.Lock(), threading.Lock()]
    overlaps = []

    def reader(index: int):
        def read(block: int) -> tuple[int, int]:
            if not busy[index].acquire(blocking=False):  # its handles are in use by another read
                overlaps.append(block)
                return block, index
            time.sleep(0.002 * (block % 3))  # reads finish out of order
            busy[index].release()
            return block, index
        return read

    results = list(read_ahead(iter(range(40)), [reader(i) for i in range(3)]))
    assert [block for block, _ in results] == list(range(40))
    assert [value for _, value in results] == [(b, b % 3) for b in range(40)]
    assert overlaps == []


@pytest.mark.parametrize("digital_numbers", [False, True])
def test_features_computed_while_interpolating_equal_the_two_steps(
        scene_stack, scene_stack_dn, tmp_path: Path, digital_numbers: bool):
    """``features=`` interpolates the features of a band stack without writing them first: the
    same stack as compute_features then interpolate_stack, with the cloud mask or from nodata."""
    from eolulc.core.cloudmask import CloudDetector
    from eolulc.core.features import FeatureSpec, compute_features

    stack = scene_stack_dn if digital_numbers else scene_stack
    mask = tmp_path / "clm.tif"
    CloudDetector(processing_resolution=None).run(str(stack), None, mask)
    spec = FeatureSpec()
    compute_features(stack, tmp_path / "features.tif", spec)
    for name, mask_path, fraction in (("masked", mask, 0.3), ("nodata", None, 0.5)):
        two_steps = interpolate_stack(tmp_path / "features.tif", tmp_path / f"{name}_a.tif", mask_path=mask_path,
                                      interval_days=3, min_valid_fraction=fraction)
        fused = interpolate_stack(stack, tmp_path / f"{name}_b.tif", mask_path=mask_path, interval_days=3,
                                  min_valid_fraction=fraction, features=spec, budget_bytes=200_000)
        assert fused.as_dict() == two_steps.as_dict()
        with open_stack(str(tmp_path / f"{name}_a.tif")) as a, open_stack(str(tmp_path / f"{name}_b.tif")) as b:
            assert a.info.bands == b.info.bands and a.info.dates == b.info.dates
            np.testing.assert_array_equal(a.read(), b.read())
            assert np.isfinite(a.read()).any()


@pytest.mark.parametrize("fused", [False, True])
def test_interpolated_pixels_equal_the_rows_read_back(ndvi_stacks, scene_stack_dn, tmp_path: Path, fused: bool):
    """The pipeline interpolates its training pixels alone (``interpolate_pixels``): their rows
    must equal those of the written stack, over many blocks, with the mask and the scene filter,
    in the caller's (unsorted) order; the whole stack is then made without a second count of the
    valid fractions."""
    from eolulc.core.features import FeatureSpec
    from eolulc.core.featureset import FeatureSet
    from eolulc.core.interpolate import interpolate_pixels, plan_interpolation, write_interpolation
    from eolulc.core.progress import Progress
    from eolulc.core.train import gather_rows

    source = scene_stack_dn if fused else ndvi_stacks[0]
    mask = None if fused else ndvi_stacks[1]
    features = FeatureSpec() if fused else None
    with open_stack(str(source)) as reader:
        grid = reader.info.grid
    pixels = np.random.default_rng(3).choice(grid.height * grid.width, 500, replace=False)
    plan = plan_interpolation(source, interval_days=16, mask_path=mask, min_valid_fraction=0.3, features=features)
    assert plan.dropped or mask is None  # the cloud mask makes the scene filter drop dates
    rows = interpolate_pixels(source, plan, pixels, mask_path=mask, budget_bytes=60_000, features=features)
    again = plan_interpolation(source, interval_days=16, mask_path=mask, min_valid_fraction=0.3, features=features,
                               fractions=plan.fractions)
    assert again.as_dict() == plan.as_dict()
    write_interpolation(source, again, tmp_path / "out.tif", mask_path=mask, features=features)
    with FeatureSet([str(tmp_path / "out.tif")]) as stack:
        expected = gather_rows(stack, pixels, Progress())
    assert rows.shape == expected.shape
    np.testing.assert_array_equal(rows, expected)
    assert np.isfinite(expected).any()


def test_blocks_without_an_output_file(ndvi_stacks, tmp_path: Path):
    """``write_interpolation`` with only a block consumer writes nothing and hands over the same
    values as the written stack."""
    from eolulc.core.interpolate import plan_interpolation, write_interpolation

    plan = plan_interpolation(ndvi_stacks[0], interval_days=16, mask_path=ndvi_stacks[1], min_valid_fraction=0.3)
    written = tmp_path / "out.tif"
    write_interpolation(ndvi_stacks[0], plan, written, mask_path=ndvi_stacks[1])
    with open_stack(str(written)) as reader:
        expected = reader.read()
    seen = np.full(expected.shape, -1.0, np.float32)

    def take(window, values, info):
        row, col, height, width = window
        seen[:, row:row + height, col:col + width] = values

    write_interpolation(ndvi_stacks[0], plan, None, mask_path=ndvi_stacks[1], on_block=take, budget_bytes=60_000)
    np.testing.assert_array_equal(seen, expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif"]
    with pytest.raises(ValueError, match="output file or a block consumer"):
        write_interpolation(ndvi_stacks[0], plan, None)


@pytest.mark.usefixtures("numba_kernels")
@pytest.mark.parametrize("mask_bands", [1, 3])
@pytest.mark.parametrize("fill", [False, True])
def test_compiled_interpolation_equals_numpy_plan_and_np_interp(monkeypatch, mask_bands, fill):
    """The compiled kernel (sorted, distinct acquisition times) equals the numpy plan bit for bit
    and np.interp per series: a nodata value and NaN gaps of single bands (bands whose validity
    differs in a chunk), shared and per-band masks, pixels never valid or valid once, new dates
    before, on and after the observations, several chunks and a partial one."""
    from eolulc.core import interpolation_plan

    rng = np.random.default_rng(5)
    times = np.array([0, 20, 30, 50, 70, 90, 120], dtype=np.int64)
    new_times = np.array([-10, 0, 5, 20, 33, 60, 60, 95, 120, 130], dtype=np.int64)
    n_bands, n_pixels = 3, 3 * 256 + 41
    values = rng.normal(size=(len(times), n_bands, n_pixels)).astype(np.float32)
    values[rng.random(values.shape) < 0.05] = np.nan
    values[rng.random(values.shape) < 0.05] = -9999.0  # nodata
    clear = rng.random((len(times), mask_bands, n_pixels)) > 0.4
    clear[:, :, 0] = False  # never valid
    clear[:, :, 1] = False
    clear[3, :, 1] = True  # valid once (where its value is)
    clear[:, :, 300:600] = True  # whole chunks where the bands' validity is the same
    values[:, :, 300:600] = np.abs(values[:, :, 300:600])
    values[1, :, 610:620] = -0.0  # on an observation the plan gives +0.0
    values[2, :, 620:625] = np.inf  # and NaN for inf

    def run() -> tuple[np.ndarray, np.ndarray]:
        out = np.empty((len(new_times), n_bands, n_pixels), np.float32)
        counts = np.empty((n_bands, n_pixels), np.uint16)
        interpolation_plan.interpolate_block(values, -9999.0, clear, times, new_times, fill, out, counts)
        return out, counts

    compiled = run()
    with monkeypatch.context() as patch, np.errstate(invalid="ignore"):  # inf - inf
        patch.setattr(interpolation_plan, "kernels", lambda: None)
        expected = run()
    nan = np.isnan(expected[0])
    np.testing.assert_array_equal(np.isnan(compiled[0]), nan)
    np.testing.assert_array_equal(compiled[0][~nan].view(np.uint32), expected[0][~nan].view(np.uint32))  # -0.0
    np.testing.assert_array_equal(compiled[1], expected[1])
    for b in range(n_bands):
        for p in list(range(0, n_pixels, 7)) + [1]:
            ok = clear[:, b if mask_bands > 1 else 0, p] & ~np.isnan(values[:, b, p]) & (values[:, b, p] != -9999.0)
            assert compiled[1][b, p] == ok.sum()
            if not ok.any():
                assert np.isnan(compiled[0][:, b, p]).all()
                continue
            if np.isinf(values[ok, b, p]).any():
                continue
            series = np.interp(new_times, times[ok], values[ok, b, p].astype(np.float64)).astype(np.float32)
            if not fill:
                series[(new_times < times[ok][0]) | (new_times > times[ok][-1])] = np.nan
            np.testing.assert_array_equal(compiled[0][:, b, p], series)


def test_clear_mask_is_zero_and_not_nodata():
    from eolulc.core.interpolation_plan import clear_mask

    block = np.array([[0, 1, 255], [0, 2, 0]], np.uint8)
    expected = block == 0
    for nodata in (None, 255, 255.0, float("nan"), -1):  # -1 is 255 as uint8
        np.testing.assert_array_equal(clear_mask(block, nodata), expected)
    assert not clear_mask(block, 0).any()  # 0 as nodata: no pixel is clear
    floats = np.array([0.0, np.nan, 1.0, 0.0], np.float32)
    np.testing.assert_array_equal(clear_mask(floats, float("nan")), [True, False, False, True])
