"""A user's GDAL_NUM_THREADS must not reach the decoding of our stacks: GDAL 3.6's multi-threaded
GeoTIFF decoding fails on hundreds of bands ("Bad value for ExtraSamples", crashes)."""

from __future__ import annotations

import numpy as np

from eolulc.core.timestack import Grid, StackInfo, StackWriter, open_stack


def test_many_band_stack_reads_cleanly_with_gdal_num_threads(tmp_path, monkeypatch, capfd):
    bands = 300
    info = StackInfo(grid=Grid(width=256, height=256, crs_wkt=None, transform=(10.0, 0.0, 0.0, 0.0, -10.0, 0.0)),
                     dates=(None,), bands=tuple(f"F{i}" for i in range(bands)), dtype="float32", nodata=float("nan"))
    data = np.random.default_rng(0).random((1, 256, 256, bands), dtype=np.float32)
    with StackWriter(str(tmp_path / "stack.tif"), info) as writer:
        writer.write(data)
    monkeypatch.setenv("GDAL_NUM_THREADS", "ALL_CPUS")
    capfd.readouterr()
    with open_stack(str(tmp_path / "stack.tif")) as reader:  # GDAL's decoding threads report to stderr
        back = reader.read()
    np.testing.assert_array_equal(back, data)
    assert "ExtraSamples" not in capfd.readouterr().err
