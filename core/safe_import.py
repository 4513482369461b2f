"""Sentinel-2 products (``.SAFE`` folders or zips, L1C or L2A) -> one time stack, and for L2A a
cloud-mask stack and an SCL stack from the scene classification.

Only the target window of each band is read (GDAL decodes only the JPEG 2000 tiles it touches;
``ImportResult.source_pixels`` counts what was asked for), straight from the zip (``/vsizip/``).
Bands on the target grid are copied; 20 m and 60 m bands are resampled onto it (bilinear, average
when the target is coarser, nearest for SCL); products in another UTM zone are reprojected.
Products of one day (neighbouring tiles, two orbits) become one date: the first product (by
sensing time, then name) with data wins each pixel.

Digital numbers stay ``uint16`` with the products' own scale and offset as GDAL scale/offset, so
every later step sees true reflectance. Products before and after processing baseline 04.00
(offset -1000 since 2022-01-25) are brought onto one offset per band, the most negative one, by
adding the difference to the older products' numbers: ``reflectance = (DN + offset) / Q`` holds
for every date. DN 0 (``NODATA``), ``SATURATED``, the pixels the product's quality masks call no data
or saturated (:mod:`core.safe_masks`) and, for L2A, SCL classes 0 and 1 become nodata.
"""

from __future__ import annotations

import json
import math
import os
import threading
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .atomic import atomic_outputs
from .blocks import default_budget_bytes, iter_blocks
from .cloudmask import MASK_NODATA, TAG_CLOUD_FRACTION, TAG_VALID_FRACTION, disk
from .limits import MAX_GRID_SIDE
from .progress import Progress, ensure_progress
from .safe import Granule, Product, read_product
from .safe_granule import GranuleReader, granule_bounds, intersection, mosaic, parse_crs
from .sentinel2 import find_bands
from .timestack import Grid, StackInfo, StackWriter, bounded_gdal_cache, format_datetime

DEFAULT_CLOUD_CLASSES = (3, 8, 9, 10)
#: SCL 0 = no data, 1 = saturated or defective: nodata in every output.
SCL_INVALID = (0, 1)
SCL_NODATA = 0
TAG_LEVEL = "EOLULC_S2_LEVEL"
TAG_PRODUCTS = "EOLULC_S2_PRODUCTS"
TAG_SCL_SETTINGS = "EOLULC_SCL_MASK_SETTINGS"
#: A ready cloud mask carried as a band (Sentinel Hub's CLM for L1C), stored shifted by one so
#: that 0 stays "no data" like every other band: 0 no data, 1 clear, 2 cloud.
CLM_BAND = "CLM"
CLM_CLEAR, CLM_CLOUD = 1, 2


@dataclass
class ImportResult:
    info: StackInfo
    products: list[list[str]]
    skipped: list[str] = field(default_factory=list)
    #: Source pixels asked of GDAL (sum of the windows read, all bands): the proof that only the
    #: extent's window is read.
    source_pixels: int = 0
    #: Source pixels the products' quality masks made nodata (no data, saturated; all bands).
    defective_pixels: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count_read(self, pixels: int, defective: int = 0) -> None:
        """Add to :attr:`source_pixels` and :attr:`defective_pixels` (bands are read in parallel
        threads)."""
        with self._lock:
            self.source_pixels += pixels
            self.defective_pixels += defective


def scan_products(paths: Sequence[str | Path], progress: Progress | None = None) -> list[Product]:
    """Read every product's metadata, sorted by sensing time then name; one level only."""
    progress = ensure_progress(progress)
    unique = list(dict.fromkeys(str(Path(p).resolve()) for p in paths if p))
    if not unique:
        raise ValueError("no products given: choose a folder of .SAFE folders or zips, or a list of products")
    products = []
    for i, path in enumerate(unique):
        progress.check()
        products.append(read_product(path))
        progress.report((i + 1) / len(unique))
    levels = {level: sum(p.level == level for p in products) for level in ("L1C", "L2A")}
    if all(levels.values()):
        raise ValueError(f"the products mix processing levels: {levels['L1C']} L1C and {levels['L2A']} L2A; "
                         "import one level at a time (put them in separate folders)")
    quantifications = {p.quantification for p in products}
    if len(quantifications) > 1:
        raise ValueError(f"the products have different quantification values {sorted(quantifications)}; "
                         "import them separately")
    products.sort(key=lambda p: (p.sensing_time, p.name))
    for product in products:
        progress.log(f"{format_datetime(product.sensing_time)}  {product.name}  ({product.level}, baseline "
                     f"{product.baseline}, tiles {', '.join(g.tile for g in product.granules)})")
    return products


def group_by_day(products: Sequence[Product]) -> list[list[Product]]:
    """Products of one calendar day (UTC) together, in sensing order."""
    days: dict = {}
    for product in products:
        days.setdefault(product.sensing_time.date(), []).append(product)
    return [days[d] for d in sorted(days)]


def target_grid(days: Sequence[Sequence[Product]], resolution: float, crs: str | None = None,
                bounds: tuple[float, float, float, float] | None = None) -> Grid:
    """The output grid: ``bounds`` in ``crs`` (a projected CRS; else the first product's), or the
    footprint all dates share (each date the union of its tiles), snapped outward to multiples of
    ``resolution`` so that it lines up with the Sentinel-2 tiles' pixels."""
    from rasterio.transform import from_origin
    from rasterio.warp import transform_bounds

    if not resolution > 0:
        raise ValueError(f"the resolution must be positive, got {resolution}")
    first = parse_crs(days[0][0].granules[0].crs)
    dst = parse_crs(crs) if crs else first
    if not dst.is_projected:
        if bounds is not None:
            bounds = tuple(transform_bounds(dst, first, *bounds, densify_pts=21))
        dst = first
    if bounds is None:
        common = None
        for day in days:
            boxes = [granule_bounds(g, dst) for p in day for g in p.granules]
            union = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
                     max(b[3] for b in boxes))
            common = union if common is None else intersection(common, union)
            if common is None:
                raise ValueError("the products' footprints have no area in common; give an extent")
        bounds = common
    xmin, ymin, xmax, ymax = (float(v) for v in bounds)
    if not (xmax > xmin and ymax > ymin):
        raise ValueError(f"the extent {bounds} is empty")
    xmin, ymin = math.floor(xmin / resolution + 1e-9) * resolution, math.floor(ymin / resolution + 1e-9) * resolution
    xmax, ymax = math.ceil(xmax / resolution - 1e-9) * resolution, math.ceil(ymax / resolution - 1e-9) * resolution
    width, height = round((xmax - xmin) / resolution), round((ymax - ymin) / resolution)
    if max(width, height) > MAX_GRID_SIDE:
        raise ValueError(f"a resolution of {resolution:g} makes the output {width} x {height} px, more than "
                         f"{MAX_GRID_SIDE} px a side; choose a larger resolution or a smaller extent")
    return Grid(width=width, height=height, crs_wkt=dst.to_wkt(),
                transform=tuple(from_origin(xmin, ymax, resolution, resolution))[:6])


def meeting_grid(product: Product, grid: Grid) -> list[Granule]:
    """The product's granules whose footprint meets ``grid`` (one for the compact layout; those
    of the extent among the many of the 2016 multi-granule layout)."""
    crs = parse_crs(grid.crs_wkt)
    return [g for g in product.granules if intersection(granule_bounds(g, crs), grid.bounds)]


def days_in_grid(products: Sequence[Product], grid: Grid) -> tuple[list[list[Product]], list[str]]:
    """The products of each day whose tiles meet ``grid`` (days without any left out), and the
    names of those that do not; ``ValueError`` when none does."""
    kept, skipped = [], []
    for day in group_by_day(products):
        inside = [p for p in day if meeting_grid(p, grid)]
        skipped += [p.name for p in day if p not in inside]
        if inside:
            kept.append(inside)
    if not kept:
        raise ValueError("no product's footprint meets the extent; choose an extent inside the products' tiles")
    return kept, skipped


def _band_names(products: Sequence[Product], bands: Sequence[str] | None) -> tuple[str, ...]:
    available = products[0].bands
    if not bands:
        return available
    indices = find_bands(available, list(bands), f"{products[0].level} products")
    return tuple(available[i] for i in sorted(set(indices)))


def import_safe(
    products: Sequence[Product],
    output: str | Path,
    grid: Grid,
    bands: Sequence[str] | None = None,
    output_mask: str | Path | None = None,
    output_scl: str | Path | None = None,
    cloud_classes: Sequence[int] = DEFAULT_CLOUD_CLASSES,
    dilation: int = 0,
    progress: Progress | None = None,
    budget_bytes: int | None = None,
) -> ImportResult:
    """Write the time stack (and for L2A the mask and SCL stacks) of ``products`` on ``grid``.
    Products whose granules all carry a :data:`CLM_BAND` (Sentinel Hub's L1C cloud mask) give the
    cloud mask from it instead of from SCL."""
    progress = ensure_progress(progress)
    level = products[0].level
    has_clm = level != "L2A" and all(CLM_BAND in g.bands for p in products for g in p.granules)
    if output_scl and level != "L2A":
        raise ValueError("the SCL output needs L2A products (L1C has no scene classification)")
    if output_mask and level != "L2A" and not has_clm:
        raise ValueError("the cloud mask and SCL outputs need L2A products (L1C has no scene classification); "
                         "use the s2cloudless cloud mask for L1C")
    if dilation < 0:
        raise ValueError(f"the mask dilation must be 0 or more pixels, got {dilation}")
    names = _band_names(products, bands)
    q = products[0].quantification
    common = {b: min(p.offsets.get(b, 0.0) for p in products) for b in names}
    kept, skipped = days_in_grid(products, grid)
    for name in skipped:
        progress.log(f"{name}: outside the extent, left out")
    info = StackInfo(grid=grid, dates=tuple(day[0].sensing_time for day in kept), bands=names, dtype="uint16",
                     nodata=0, scales=(1.0 / q,) * len(names), offsets=tuple(common[b] / q for b in names),
                     tags={TAG_LEVEL: level, TAG_PRODUCTS: json.dumps([[p.name for p in d] for d in kept])})
    result = ImportResult(info=info, products=[[p.name for p in d] for d in kept], skipped=skipped)
    settings = json.dumps({"source": "Sentinel Hub CLM", "dilation": int(dilation)} if has_clm else
                          {"source": "SCL", "cloud_classes": sorted(int(c) for c in cloud_classes),
                           "dilation": int(dilation)})
    mask_info = StackInfo(grid=grid, dates=info.dates, bands=("CLM",), dtype="uint8", nodata=MASK_NODATA,
                          tags={TAG_SCL_SETTINGS: settings})
    scl_info = StackInfo(grid=grid, dates=info.dates, bands=("SCL",), dtype="uint8", nodata=SCL_NODATA)
    mask_band = "SCL" if level == "L2A" else CLM_BAND if has_clm and output_mask else None
    counts = np.zeros((2, len(kept)), np.int64)
    budget = default_budget_bytes() if budget_bytes is None else max(1, int(budget_bytes))
    structure = disk(dilation) if dilation else None
    from rasterio.errors import NotGeoreferencedWarning

    workers = max(1, min(len(names), os.cpu_count() or 1, 4))
    # rasterio's reproject of arrays hides a spurious NotGeoreferencedWarning with catch_warnings,
    # which threads race on: hidden here around the pool, whose threads all end inside
    with warnings.catch_warnings(), bounded_gdal_cache():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        _import_days(kept, grid, names, mask_band, common, budget, dilation, structure, cloud_classes, counts,
                     workers, (output, output_mask, output_scl), (info, mask_info, scl_info), result, progress)
    return result


def _import_days(kept, grid, names, mask_band, common, budget, dilation, structure, cloud_classes, counts, workers,
                 outputs, infos, result, progress) -> None:
    """Date by date, block by block: the bands are decoded and resampled in ``workers`` threads
    while one more thread compresses and writes the previous block (one block in flight)."""
    info, mask_info, scl_info = infos
    with ThreadPoolExecutor(workers, thread_name_prefix="eolulc-safe") as pool, \
            ThreadPoolExecutor(1, thread_name_prefix="eolulc-safe-write") as writing, \
            atomic_outputs(list(outputs)) as (data_path, mask_path, scl_path):
        writers = [StackWriter(str(data_path), info)]
        pending: list[Future] = []
        try:
            mask_writer = StackWriter(str(mask_path), mask_info) if mask_path else None
            writers.append(mask_writer)
            scl_writer = StackWriter(str(scl_path), scl_info) if scl_path else None
            writers.append(scl_writer)
            for t, day in enumerate(kept):
                readers = []
                read_bands = names + ((mask_band,) if mask_band else ())
                # only the granules meeting the grid (a 2016 multi-granule product holds up to ~20)
                granules = [(p, g) for p in day for g in meeting_grid(p, grid)]
                # half the budget for the decoded source strips of every granule's bands, half for
                # blocks (the one being made and the one being written)
                cache_bytes = budget // (2 * len(granules) * len(read_bands))
                try:
                    for product, granule in granules:
                        shifts = {b: int(round(product.offsets.get(b, 0.0) - common[b])) for b in names}
                        readers.append(GranuleReader(product, granule, grid, read_bands, shifts, result.count_read,
                                                     cache_bytes))
                    step = progress.scaled(t / len(kept), (t + 1) / len(kept))
                    bytes_per_pixel = (len(names) + 4) * 2 * 2
                    for block in iter_blocks(grid.height, grid.width, bytes_per_pixel, budget // 2,
                                             halo=dilation, progress=step):
                        jobs = _make_block(block, t, readers, names, mask_band, writers, cloud_classes, structure,
                                           pool, counts)
                        _wait(pending)
                        pending.append(writing.submit(_write_jobs, jobs, block.window, t))
                finally:
                    for reader in readers:
                        reader.close()
            _wait(pending)
            pixels = grid.width * grid.height
            if mask_writer is not None:
                mask_writer.set_tags({TAG_VALID_FRACTION: json.dumps([round(float(c) / pixels, 6) for c in counts[0]]),
                                      TAG_CLOUD_FRACTION: json.dumps([round(float(c) / pixels, 6) for c in counts[1]])})
        finally:
            futures_wait(pending)  # the writer thread is done with the datasets before they close
            for writer in writers:
                if writer is not None:
                    writer.close()


def _wait(pending: list[Future]) -> None:
    """Wait for the block being written; its error, if any, is raised here."""
    while pending:
        pending.pop().result()


def _write_jobs(jobs, window, t: int) -> None:
    for writer, array in jobs:
        writer.write(array, window, dates=[t])


def _make_block(block, t: int, readers, names, mask_band: str | None, writers, cloud_classes, structure, pool,
                counts: np.ndarray) -> list:
    """One block's bands, and for L2A its masks, ready to write: ``[(writer, (1, h, w, bands))]``.
    The bands are made band by band into one band-first array, the layout the stack is written
    in, so that writing copies nothing."""
    data_writer, mask_writer, scl_writer = writers
    height, width = block.window[2:]
    planes = np.empty((len(names), height, width), np.uint16)

    def make(i: int) -> None:
        planes[i] = mosaic(readers, names[i], block.window)

    # bands in parallel: each has its own dataset in every reader, and GDAL decodes and warps
    # without the GIL
    grown = pool.submit(mosaic, readers, mask_band, block.read_window, True) if mask_band else None
    for _ in pool.map(make, range(len(names))):
        pass
    data = planes.transpose(1, 2, 0)[None]
    if grown is None:
        return [(data_writer, data)]
    grown = grown.result().astype(np.uint8)
    rows, cols = block.inner
    inner = grown[rows, cols]
    invalid = np.isin(inner, SCL_INVALID) if mask_band == "SCL" else inner == 0
    planes[:, invalid] = 0
    jobs = [(data_writer, data)]
    if scl_writer is not None:
        jobs.append((scl_writer, inner[None, ..., None]))
    if mask_writer is not None:
        cloud = (np.isin(grown, list(cloud_classes)) if mask_band == "SCL" else grown == CLM_CLOUD).astype(np.uint8)
        if structure is not None:
            import cv2

            cloud = cv2.dilate(cloud, structure)
        cloud = cloud[rows, cols]
        mask = np.where(invalid, np.uint8(MASK_NODATA), cloud)
        counts[0, t] += np.count_nonzero(mask == 0)
        counts[1, t] += np.count_nonzero(mask == 1)
        jobs.append((mask_writer, mask[None, ..., None]))
    return jobs
