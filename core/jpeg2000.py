"""Windows of JPEG 2000 files decoded by OpenJPEG itself, only as much as the window needs.

GDAL 3.6's JPEG 2000 driver decodes whole tiles (1024 px in Sentinel-2 products) and every
component of a file, so a 1000 px window of a tile can cost up to four tiles, and reading three of
a quality mask's eight layers costs all eight. OpenJPEG (2.4 and later) decodes only the
code-blocks that meet a *decode area* and only the components asked for; here it is called
through ``ctypes`` on the file's bytes as GDAL's virtual file systems give them (``/vsizip/``
members included), and the pixels are the same as GDAL's (tests compare them).

:func:`decode_window` returns None whenever it cannot do that (no OpenJPEG 2.4+ found, a file it
will not decode, components of unequal size): the caller then reads with GDAL, whose messages
name a damaged file. ``EOLULC_JPEG2000=gdal`` always returns None (benchmarks, a fallback).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import threading
from typing import Sequence

import numpy as np

#: OpenJPEG's codec formats (``OPJ_CODEC_FORMAT``)
_CODEC_J2K, _CODEC_JP2 = 0, 2
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_STREAM_CHUNK = 1 << 20
_READ_FAILED = ctypes.c_size_t(-1).value


class _Component(ctypes.Structure):
    """``opj_image_comp_t``."""
    _fields_ = [(name, ctypes.c_uint32) for name in
                ("dx", "dy", "w", "h", "x0", "y0", "prec", "bpp", "sgnd", "resno_decoded", "factor")] + [
        ("data", ctypes.POINTER(ctypes.c_int32)), ("alpha", ctypes.c_uint16)]


class _Image(ctypes.Structure):
    """``opj_image_t``."""
    _fields_ = [(name, ctypes.c_uint32) for name in ("x0", "y0", "x1", "y1", "numcomps")] + [
        ("color_space", ctypes.c_int), ("comps", ctypes.POINTER(_Component)),
        ("icc_profile_buf", ctypes.c_void_p), ("icc_profile_len", ctypes.c_uint32)]


_READ = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
_SKIP = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)
_SEEK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int64, ctypes.c_void_p)
_MESSAGE = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_void_p)
_QUIET = _MESSAGE(lambda message, user: None)

_SIGNATURES = {
    "opj_version": (ctypes.c_char_p, []),
    "opj_stream_create": (ctypes.c_void_p, [ctypes.c_size_t, ctypes.c_int]),
    "opj_stream_set_read_function": (None, [ctypes.c_void_p, _READ]),
    "opj_stream_set_skip_function": (None, [ctypes.c_void_p, _SKIP]),
    "opj_stream_set_seek_function": (None, [ctypes.c_void_p, _SEEK]),
    "opj_stream_set_user_data_length": (None, [ctypes.c_void_p, ctypes.c_uint64]),
    "opj_stream_destroy": (None, [ctypes.c_void_p]),
    "opj_create_decompress": (ctypes.c_void_p, [ctypes.c_int]),
    "opj_destroy_codec": (None, [ctypes.c_void_p]),
    "opj_set_error_handler": (ctypes.c_int, [ctypes.c_void_p, _MESSAGE, ctypes.c_void_p]),
    "opj_set_warning_handler": (ctypes.c_int, [ctypes.c_void_p, _MESSAGE, ctypes.c_void_p]),
    "opj_set_info_handler": (ctypes.c_int, [ctypes.c_void_p, _MESSAGE, ctypes.c_void_p]),
    "opj_set_default_decoder_parameters": (None, [ctypes.c_void_p]),
    "opj_setup_decoder": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p]),
    "opj_codec_set_threads": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int]),
    "opj_read_header": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.POINTER(_Image))]),
    "opj_set_decoded_components": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_uint32,
                                                  ctypes.POINTER(ctypes.c_uint32), ctypes.c_int]),
    "opj_set_decode_area": (ctypes.c_int, [ctypes.c_void_p, ctypes.POINTER(_Image)] + [ctypes.c_int32] * 4),
    "opj_decode": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(_Image)]),
    "opj_end_decompress": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p]),
    "opj_image_destroy": (None, [ctypes.POINTER(_Image)]),
}
#: ``opj_dparameters_t`` is ~8.3 KB in OpenJPEG 2.x; the buffer leaves room for any later fields
_PARAMETERS_BYTES = 1 << 15


@functools.lru_cache(maxsize=1)
def openjpeg() -> ctypes.CDLL | None:
    """OpenJPEG 2.4+ (component selection) as loaded by ``ctypes``, or None."""
    names = [ctypes.util.find_library(n) for n in ("openjp2", "libopenjp2", "openjp2-7")]
    names += ["libopenjp2.so.7", "libopenjp2.7.dylib", "openjp2.dll"]
    for name in filter(None, names):
        try:
            library = ctypes.CDLL(name)
        except OSError:
            continue
        try:
            for function, (restype, argtypes) in _SIGNATURES.items():
                getattr(library, function).restype = restype
                getattr(library, function).argtypes = argtypes
            major, minor = (int(p) for p in library.opj_version().decode().split(".")[:2])
        except (AttributeError, ValueError):
            continue
        if (major, minor) >= (2, 4):
            return library
    return None


def available() -> bool:
    """Whether :func:`decode_window` decodes (else callers read with GDAL)."""
    return os.environ.get("EOLULC_JPEG2000", "").lower() != "gdal" and openjpeg() is not None


class _VsiStream:
    """A file through GDAL's virtual file systems as OpenJPEG's stream callbacks."""

    def __init__(self, path: str) -> None:
        from osgeo import gdal

        self._gdal = gdal
        self.handle = gdal.VSIFOpenL(path, "rb")
        if self.handle is None:
            raise OSError(path)
        gdal.VSIFSeekL(self.handle, 0, 2)
        self.size = gdal.VSIFTellL(self.handle)
        gdal.VSIFSeekL(self.handle, 0, 0)
        self.position = 0
        # kept referenced while OpenJPEG holds them
        self.callbacks = (_READ(self._read), _SKIP(self._skip), _SEEK(self._seek))

    def bytes_at(self, offset: int, count: int) -> bytes:
        """``count`` bytes from ``offset`` (fewer at the end); the handle goes back to where
        OpenJPEG's stream left it (a header check runs between OpenJPEG's reads)."""
        self._gdal.VSIFSeekL(self.handle, offset, 0)
        data = bytes(self._gdal.VSIFReadL(1, count, self.handle) or b"")
        self._gdal.VSIFSeekL(self.handle, self.position, 0)
        return data

    # OpenJPEG loops on a read of 0 bytes or a skip of 0: a Python error in a callback must still
    # answer "failed" (ctypes would return an undefined value)
    def _read(self, buffer, size, user) -> int:
        try:
            chunk = self._gdal.VSIFReadL(1, min(size, self.size - self.position), self.handle) \
                if self.position < self.size else b""
            if not chunk:
                return _READ_FAILED
            # GDAL's bindings give a bytearray: copied once, straight into OpenJPEG's buffer
            source = (ctypes.c_char * len(chunk)).from_buffer(chunk) if isinstance(chunk, bytearray) else chunk
            ctypes.memmove(buffer, source, len(chunk))
            self.position += len(chunk)
            return len(chunk)
        except Exception:  # noqa: BLE001 - reported to OpenJPEG as the end of the stream
            return _READ_FAILED

    def _skip(self, count, user) -> int:
        try:
            target = self.position + count
            if not 0 <= target <= self.size:
                return -1
            self._gdal.VSIFSeekL(self.handle, target, 0)
            self.position = target
            return count
        except Exception:  # noqa: BLE001 - reported to OpenJPEG as a failed skip
            return -1

    def _seek(self, offset, user) -> int:
        try:
            if not 0 <= offset <= self.size:
                return 0
            self._gdal.VSIFSeekL(self.handle, offset, 0)
            self.position = offset
            return 1
        except Exception:  # noqa: BLE001 - reported to OpenJPEG as a failed seek
            return 0

    def close(self) -> None:
        if self.handle is not None:
            self._gdal.VSIFCloseL(self.handle)
            self.handle = None


def _codestream_start(source: _VsiStream) -> int | None:
    """Offset of the JPEG 2000 codestream: 0 for a raw codestream, the ``jp2c`` box's contents in
    a JP2 file; None for anything else."""
    head = source.bytes_at(0, len(_JP2_SIGNATURE))
    if head[:4] == b"\xff\x4f\xff\x51":
        return 0
    if head != _JP2_SIGNATURE:
        return None
    offset = len(_JP2_SIGNATURE)
    while offset + 8 <= source.size:
        box = source.bytes_at(offset, 16)
        if len(box) < 8:
            return None
        length, kind = int.from_bytes(box[:4], "big"), box[4:8]
        header = 8
        if length == 1:
            if len(box) < 16:
                return None
            length, header = int.from_bytes(box[8:16], "big"), 16
        if kind == b"jp2c":
            return offset + header
        if length < header:  # 0 (to the end of the file) or damaged: no codestream after it
            return None
        offset += length
    return None


def _uses_colour_transform(source: _VsiStream, start: int) -> bool | None:
    """Whether the main header's COD marker turns on the multi-component transform (RCT/ICT of
    the first three components), which OpenJPEG leaves out when components are selected; None
    when no COD is found before the first tile."""
    header = source.bytes_at(start, 1 << 16)
    position = 2  # after SOC
    while position + 4 <= len(header):
        marker = int.from_bytes(header[position:position + 2], "big")
        length = int.from_bytes(header[position + 2:position + 4], "big")
        if marker == 0xFF52:  # COD: Lcod, Scod, progression order, layers (2 bytes), MCT
            return position + 9 <= len(header) and header[position + 8] != 0
        if marker == 0xFF90 or length < 2:  # SOT: the main header ended without a COD
            return None
        position += 2 + length
    return None


_LOCAL = threading.local()


def decode_window(path: str, row: int, col: int, height: int, width: int,
                components: Sequence[int] | None = None) -> np.ndarray | None:
    """Rows ``row:row + height`` and columns ``col:col + width`` of ``path`` (any GDAL path) as
    ``(components, height, width)`` int32, ``components`` 0-based (None: all), or None when
    OpenJPEG cannot give them (the caller reads with GDAL)."""
    if not available() or height <= 0 or width <= 0:
        return None
    lib = openjpeg()
    try:
        source = _VsiStream(path)
    except OSError:
        return None
    stream = codec = None
    image = ctypes.POINTER(_Image)()
    try:
        start = _codestream_start(source)
        if start is None:
            return None
        codec_format = _CODEC_J2K if start == 0 else _CODEC_JP2
        stream = lib.opj_stream_create(_STREAM_CHUNK, 1)
        read, skip, seek = source.callbacks
        lib.opj_stream_set_read_function(stream, read)
        lib.opj_stream_set_skip_function(stream, skip)
        lib.opj_stream_set_seek_function(stream, seek)
        lib.opj_stream_set_user_data_length(stream, source.size)
        codec = lib.opj_create_decompress(codec_format)
        for handler in (lib.opj_set_error_handler, lib.opj_set_warning_handler, lib.opj_set_info_handler):
            handler(codec, _QUIET, None)
        parameters = getattr(_LOCAL, "parameters", None)
        if parameters is None:
            parameters = _LOCAL.parameters = ctypes.create_string_buffer(_PARAMETERS_BYTES)
        lib.opj_set_default_decoder_parameters(parameters)
        if not lib.opj_setup_decoder(codec, parameters):
            return None
        lib.opj_codec_set_threads(codec, 0)  # one thread whatever OPJ_NUM_THREADS says: bands run in parallel
        if not lib.opj_read_header(stream, codec, ctypes.byref(image)):
            return None
        header = image.contents
        count = header.numcomps
        first = header.comps[0] if count else None
        if first is None or any((header.comps[i].dx, header.comps[i].dy, header.comps[i].w, header.comps[i].h)
                                != (1, 1, first.w, first.h) for i in range(count)):
            return None  # subsampled components: not what Sentinel-2 writes; GDAL handles them
        if row < 0 or col < 0 or row + height > first.h or col + width > first.w:
            return None
        wanted = list(range(count)) if components is None else [int(c) for c in components]
        if not wanted or any(not 0 <= c < count for c in wanted):
            return None
        if count > 1:
            # selecting (all of them too) keeps their order and skips a JP2 palette or channel
            # definition, as GDAL reads them; but it also skips the colour transform, so files
            # that use one are left to GDAL (Sentinel-2 writes none)
            if count >= 3 and _uses_colour_transform(source, start) is not False:
                return None
            indices = (ctypes.c_uint32 * len(wanted))(*wanted)
            if not lib.opj_set_decoded_components(codec, len(wanted), indices, 0):
                return None
        x0, y0 = header.x0 + col, header.y0 + row
        if not lib.opj_set_decode_area(codec, image, x0, y0, x0 + width, y0 + height):
            return None
        if not lib.opj_decode(codec, stream, image) or not lib.opj_end_decompress(codec, stream):
            return None
        decoded = image.contents
        if decoded.numcomps != len(wanted):
            return None
        out = np.empty((len(wanted), height, width), np.int32)
        for i in range(len(wanted)):
            component = decoded.comps[i]
            if (component.w, component.h) != (width, height) or not component.data:
                return None
            out[i] = np.ctypeslib.as_array(component.data, (height, width))
        return out
    finally:
        if image:
            lib.opj_image_destroy(image)
        if codec:
            lib.opj_destroy_codec(codec)
        if stream:
            lib.opj_stream_destroy(stream)
        source.close()
