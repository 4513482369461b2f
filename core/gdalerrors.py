"""One place where reading a user's raster fails: GDAL's own error lines are silenced (they would
reach the user as libtiff jargon such as ``TIFFFillTile:Read error``) and the failure becomes one
line that names the file, what was being read and GDAL's message."""

from __future__ import annotations

import contextlib
import os
import re
from typing import Callable, Iterator


class DamagedFileError(ValueError):
    """A user's file that exists but cannot be read (truncated, damaged, not a raster)."""


def is_gdal_error(error: BaseException) -> bool:
    """Errors raised by rasterio/GDAL for a file (``RasterioIOError``, ``CPLE_*``)."""
    from rasterio.errors import RasterioError

    return isinstance(error, RasterioError) or type(error).__module__.startswith("rasterio")


@contextlib.contextmanager
def quiet_gdal() -> Iterator[None]:
    """GDAL's error handler silenced on this thread (the error is still raised to rasterio)."""
    try:
        from osgeo import gdal
    except ImportError:  # rasterio without the GDAL bindings: nothing to silence through them
        yield
        return
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        yield
    finally:
        gdal.PopErrorHandler()


def describe_file(path: str | os.PathLike) -> str:
    """Why a path may not open: missing, empty, or present but unreadable."""
    path = os.fspath(path)
    if not os.path.exists(path):
        return f"'{path}' does not exist"
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        return f"'{path}' is an empty file (0 bytes): an interrupted download or copy? Copy it again"
    return f"'{path}' is not a raster GDAL can read (damaged, incomplete or another kind of file)"


def _gdal_message(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


@contextlib.contextmanager
def reading(path: str | os.PathLike, what: str = "", layer_name: Callable[[int], str] | None = None) -> Iterator[None]:
    """Around a read of ``path``: a GDAL failure becomes a :class:`DamagedFileError` of one line.

    ``what`` says what was read (e.g. the window); ``layer_name`` turns the 1-based band number in
    GDAL's message into words (a date and a band of a time stack).
    """
    with quiet_gdal():
        try:
            yield
        except Exception as error:  # noqa: BLE001 - only GDAL's errors are translated, others go on
            if not is_gdal_error(error):
                raise
            message = _gdal_message(error)
            where = what
            band = re.search(r"band (\d+)", message)
            if band and layer_name is not None:
                where = f"{layer_name(int(band.group(1)))}" + (f", {what}" if what else "")
            raise DamagedFileError(
                f"'{os.fspath(path)}' is damaged or incomplete (a truncated download or copy?): reading "
                f"{where or 'it'} failed. GDAL: {message}"
            ) from None


def open_raster(path: str | os.PathLike):
    """``rasterio.open`` for reading a user's file; a file that does not open is named with why.

    GeoTIFFs open with one decoding thread whatever ``GDAL_NUM_THREADS`` says: GDAL 3.6's
    multi-threaded GeoTIFF decoding fails on stacks of hundreds of bands ("Bad value for
    ExtraSamples" by the thousand, and crashes), and the steps decode blocks on their own threads."""
    import rasterio

    options = {"NUM_THREADS": "1"} if str(path).lower().endswith((".tif", ".tiff")) else {}
    with quiet_gdal():
        try:
            return rasterio.open(path, **options)
        except Exception as error:  # noqa: BLE001 - only GDAL's errors are translated, others go on
            if not is_gdal_error(error):
                raise
            raise DamagedFileError(f"{describe_file(path)}. GDAL: {_gdal_message(error)}") from None


def unreadable(path: str | os.PathLike) -> str | None:
    """Why GDAL cannot open ``path`` (raster or vector), or None when it can."""
    from osgeo import gdal

    path = os.fspath(path)
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return describe_file(path)
    with quiet_gdal():
        dataset = gdal.OpenEx(path)
    if dataset is None:
        return f"{describe_file(path)}. GDAL: {gdal.GetLastErrorMsg() or 'unknown format'}"
    return None


def is_raster_file(path: str | os.PathLike) -> bool:
    """An existing file that GDAL opens as a raster (not a vector, not a layer name)."""
    from osgeo import gdal

    if not os.path.isfile(path):
        return False
    with quiet_gdal():
        return gdal.OpenEx(os.fspath(path), gdal.OF_RASTER) is not None
