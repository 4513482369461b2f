"""All-or-nothing outputs: a failed run leaves nothing, and the temporaries of a killed run are
removed by the next run into the folder, never those of a live writer nor files not ours."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from eolulc.core.atomic import UNKNOWN_WRITER_AGE_S, atomic_outputs, remove_stale_temporaries, temporary_sibling
from eolulc.core.interpolate import interpolate_stack
from eolulc.core.timestack import Grid, StackInfo, StackWriter, open_stack

# A writer in its own process: creates its temporary (and GDAL's .aux.xml beside it) through
# atomic_outputs, says where, then waits for a line on stdin before it finishes.
WRITER = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from eolulc.core.atomic import atomic_outputs
with atomic_outputs([sys.argv[2]]) as (temp,):
    temp.write_bytes(b"x" * 100000)
    Path(f"{temp}.aux.xml").write_text("<PAMDataset/>")
    print(temp, flush=True)
    sys.stdin.readline()
"""


def _parts(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".part-" in p.name)


def _start_writer(plugins_dir: Path, output: Path) -> tuple[subprocess.Popen, Path]:
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(plugins_dir), str(output)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    temp = Path(process.stdout.readline().strip())
    assert temp.is_file() and temp.parent == output.parent
    return process, temp


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_killed_writers_temporaries_go_at_the_next_run(plugins_dir: Path, tmp_path: Path):
    process, temp = _start_writer(plugins_dir, tmp_path / "map.tif")
    process.kill()
    process.wait()
    assert _parts(tmp_path) == sorted([temp.name, f"{temp.name}.aux.xml"])
    with atomic_outputs([tmp_path / "other.tif"]) as (other,):
        other.write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.tif"]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="zombies are told apart through /proc")
def test_killed_writer_not_yet_reaped_is_no_writer(plugins_dir: Path, tmp_path: Path):
    process, temp = _start_writer(plugins_dir, tmp_path / "map.tif")
    process.kill()
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)  # dead, not reaped: a zombie
    try:
        assert sorted(p.name for p in remove_stale_temporaries(tmp_path)) == sorted([temp.name, f"{temp.name}.aux.xml"])
    finally:
        process.wait()
    assert list(tmp_path.iterdir()) == []


def test_live_writers_temporaries_are_left_alone(plugins_dir: Path, tmp_path: Path):
    process, temp = _start_writer(plugins_dir, tmp_path / "map.tif")
    try:
        _age(temp, 2 * UNKNOWN_WRITER_AGE_S)  # however long it has not been written to
        with atomic_outputs([tmp_path / "other.tif"]) as (other,):
            other.write_text("new")
            assert remove_stale_temporaries(tmp_path) == []  # our own live temporary too
        assert temp.is_file() and Path(f"{temp}.aux.xml").is_file()
    finally:
        process.communicate("\n")
    assert process.returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.tif", "map.tif.aux.xml", "other.tif"]
    assert (tmp_path / "map.tif").stat().st_size == 100000


def test_files_not_ours_are_never_removed(tmp_path: Path):
    names = [".foo.part-xyz.tif", "map.part-12345678.tif", ".map.part-1234ABCD.tif", ".map.part-1234abcd.tif.bak",
             ".map.part-1234abc.tif", "map.tif", ".map.part-1-2-3.tif", "notes.txt"]
    for name in names:
        (tmp_path / name).write_text("user")
        _age(tmp_path / name, 10 * UNKNOWN_WRITER_AGE_S)
    folder_like_ours = tmp_path / ".map.part-1234abcd.tif"
    folder_like_ours.mkdir()
    _age(folder_like_ours, 10 * UNKNOWN_WRITER_AGE_S)
    with atomic_outputs([tmp_path / "out.tif"]) as (temp,):
        temp.write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*names, folder_like_ours.name, "out.tif"])


def test_temporaries_of_unknown_writers_go_only_when_old(tmp_path: Path):
    """Written by an earlier version (no writer in the name) or on another machine (another host
    tag): removed once untouched for a day, kept while fresh."""
    old = [".map.part-1234abcd.tif", ".map.part-1234abcd.tif.aux.xml", ".samples.part-99999-00000000-0123abcd.npz"]
    fresh = [".map.part-5678abcd.tif", ".samples.part-99999-00000000-4567abcd.npz", ".marker.part-ffffffff"]
    for name in old + fresh:
        (tmp_path / name).write_text("x")
    for name in old:
        _age(tmp_path / name, UNKNOWN_WRITER_AGE_S + 60)
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted(old)
    assert _parts(tmp_path) == sorted(fresh)


def test_temporaries_name_the_writer_and_keep_the_suffix(tmp_path: Path):
    temp = temporary_sibling(tmp_path / "stack.v2.tif")
    assert temp.parent == tmp_path and temp.name.startswith(".stack.v2.part-") and temp.suffix == ".tif"
    assert f"-{os.getpid()}-" in temp.name
    assert temp != temporary_sibling(tmp_path / "stack.v2.tif")


def test_a_failed_run_leaves_nothing(tmp_path: Path):
    kept = tmp_path / "kept.tif"
    kept.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_outputs([kept, tmp_path / "b.tif"]) as temps:
            for temp in temps:
                temp.write_text("new")
                Path(f"{temp}.aux.xml").write_text("<PAMDataset/>")
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.tif"] and kept.read_text() == "old"
    # one output not written: the other one is not left behind either
    with pytest.raises(RuntimeError, match="was not written"):
        with atomic_outputs([kept, tmp_path / "b.tif"]) as temps:
            temps[0].write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.tif"] and kept.read_text() == "old"
    # a rename that fails half-way (a folder where the second output goes)
    (tmp_path / "d.tif").mkdir()
    with pytest.raises(OSError):
        with atomic_outputs([tmp_path / "a.tif", tmp_path / "d.tif", tmp_path / "e.tif"]) as temps:
            for temp in temps:
                temp.write_text("new")
    assert _parts(tmp_path) == []


# A real run through the core, slowed down by its progress callback so that it can be killed
# half-way: interpolation of a generated stack, written block by block.
INTERPOLATE = """
import sys, time
sys.path.insert(0, sys.argv[1])
from eolulc.core.interpolate import interpolate_stack
from eolulc.core.progress import Progress

def report(fraction):
    print(fraction, flush=True)
    time.sleep(0.05)

interpolate_stack(sys.argv[2], sys.argv[3], interval_days=10, min_valid_fraction=0.0, budget_bytes=2_000_000,
                  progress=Progress(on_progress=report))
"""


def _generated_stack(path: Path) -> Path:
    rng = np.random.default_rng(3)
    dates = tuple(datetime(2020, 1, 5) + timedelta(days=int(d)) for d in sorted(rng.choice(360, 24, replace=False)))
    data = rng.random((len(dates), 384, 384, 2), np.float32)
    data[rng.random(data.shape) < 0.3] = np.nan
    info = StackInfo(grid=Grid(width=384, height=384, crs_wkt=None, transform=(10.0, 0.0, 0.0, 0.0, -10.0, 3840.0)),
                     dates=dates, bands=("b0", "b1"), dtype="float32", nodata=float("nan"))
    with StackWriter(str(path), info) as writer:
        writer.write(data)
    return path


def test_run_killed_half_way_leaves_a_temporary_that_the_next_run_removes(plugins_dir: Path, tmp_path: Path):
    source = _generated_stack(tmp_path / "input.tif")
    folder = tmp_path / "out"
    folder.mkdir()
    process = subprocess.Popen([sys.executable, "-c", INTERPOLATE, str(plugins_dir), str(source),
                                str(folder / "interpolated.tif")], stdout=subprocess.PIPE, text=True)
    try:
        fractions = [float(process.stdout.readline()) for _ in range(4)]  # a few blocks written
        assert 0 < fractions[-1] < 1
        parts = _parts(folder)
        assert len(parts) == 1 and (folder / parts[0]).stat().st_size > 0
    finally:
        process.kill()
        process.wait()
    assert _parts(folder) == parts and not (folder / "interpolated.tif").exists()
    interpolate_stack(source, folder / "interpolated.tif", interval_days=10, min_valid_fraction=0.0)
    assert sorted(p.name for p in folder.iterdir()) == ["interpolated.tif"]
    expected = tmp_path / "expected.tif"
    interpolate_stack(source, expected, interval_days=10, min_valid_fraction=0.0, budget_bytes=2_000_000)
    with open_stack(str(folder / "interpolated.tif")) as ours, open_stack(str(expected)) as theirs:
        assert ours.info.dates == theirs.info.dates and len(ours.info.dates) > 20
        np.testing.assert_array_equal(ours.read(), theirs.read())
