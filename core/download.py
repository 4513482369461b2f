"""Download a Sentinel-2 time series from a STAC catalogue into the standard time stack.

Only the extent's window of each band travels: every band of every scene is opened through
GDAL's ``/vsicurl/`` (``/vsis3/`` for ``s3://`` hrefs), which reads the cloud-optimized file's
header and then only the internal tiles under the window, with HTTP range requests. Windows are
kept at their native resolution and CRS in a work folder next to the output
(``<output stem>.download/<run key>/<scene id>/``), one small GeoTIFF per band, and a scene is
finished once its ``scene.json`` is written. Running the same download again (after a cancel,
a crash or a dropped network) fetches only the scenes not finished yet.

The finished windows are then imported exactly like SAFE products (``core/safe_import.py``):
each scene becomes a :class:`~.safe.Product` whose bands are its window files, so mosaicking of
one day's scenes, resampling, the per-band offsets of baseline 04.00 brought onto one scale and
offset, nodata and the SCL cloud-mask stack follow the same rules, and the stack is written all
or nothing (``core/atomic.py``).

Robustness: ``GDAL_HTTP_MAX_RETRY`` / ``GDAL_HTTP_RETRY_DELAY`` retry 429 and 5xx answers inside
GDAL; around each window read, our own retries with exponential backoff catch what GDAL gives up
on (dropped connections, a storm of 503s), after clearing GDAL's cache of that file so a failed
answer is not served again. A few reads run at once (``connections``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Iterator, Sequence

from .atomic import atomic_outputs, temporary_sibling
from .progress import Cancelled, Progress, ensure_progress
from .safe import L1C_BANDS, L2A_BANDS, Granule, Product
from .safe_import import DEFAULT_CLOUD_CLASSES, ImportResult, import_safe, target_grid
from .sentinel2 import find_bands
from .stac import Catalogue, CatalogueError, Credentials, Scene, check_period, public_url, scrub, search
from .timestack import Grid, format_datetime

DEFAULT_MAX_AREA_KM2 = 10_000.0
#: 16-bit saturation (the products' SATURATED special value): nodata, like importsafe.
SATURATED = 65535


class AssetMissing(Exception):
    """A band's file is not there (HTTP 404): the scene is skipped and reported."""


class FetchFailed(Exception):
    """A band could not be read after every retry: the scene is skipped this time."""


class _Outside(Exception):
    """The scene's tile does not reach the extent."""


@dataclass
class DownloadResult:
    report: dict[str, Any]
    imported: ImportResult | None = None
    fetched_scenes: list[str] = field(default_factory=list)
    cached_scenes: list[str] = field(default_factory=list)


def level_bands(level: str) -> tuple[str, ...]:
    if level not in ("L1C", "L2A"):
        raise ValueError(f"the level must be L1C or L2A, got '{level}'")
    return L1C_BANDS if level == "L1C" else L2A_BANDS


def utm_crs(lon: float, lat: float) -> str:
    """The UTM zone of a point (``EPSG:326xx`` north, ``EPSG:327xx`` south)."""
    zone = min(60, max(1, int(math.floor((lon + 180) / 6)) + 1))
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def plan_grid(extent: Sequence[float], extent_crs: str, resolution: float,
              max_area_km2: float = DEFAULT_MAX_AREA_KM2) -> tuple[Grid, tuple[float, float, float, float]]:
    """The output grid (the extent's CRS when projected, else the UTM zone of its centre; snapped
    like importsafe) and the extent as an EPSG:4326 bbox; ``ValueError`` over ``max_area_km2``."""
    from rasterio.crs import CRS
    from rasterio.warp import transform_bounds

    crs = CRS.from_user_input(extent_crs)
    bbox = tuple(transform_bounds(crs, "EPSG:4326", *extent, densify_pts=21))
    target = crs if crs.is_projected else CRS.from_user_input(utm_crs((bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2))
    bounds = tuple(extent) if crs.is_projected else tuple(transform_bounds(crs, target, *extent, densify_pts=21))
    if not (bounds[2] > bounds[0] and bounds[3] > bounds[1]):
        raise CatalogueError(f"the extent {tuple(extent)} is empty", "extent")
    factor = crs.linear_units_factor[1] if crs.is_projected else 1.0
    area = (bounds[2] - bounds[0]) * (bounds[3] - bounds[1]) * factor * factor / 1e6
    if area > max_area_km2:
        raise CatalogueError(f"the extent covers {area:,.0f} km², more than the limit of {max_area_km2:,.0f} km²; "
                             "choose a smaller extent or raise the limit (MAX_AREA_KM2)", "extent")
    stub = Product(path="", name="", level="L2A", baseline="", sensing_time=None, quantification=1.0, offsets={},
                   nodata=0, saturated=None, granules=(Granule("", target.to_wkt(), (0, 0, 0, 0), {}, {}),))
    return target_grid([[stub]], resolution, target.to_wkt(), bounds), bbox


def gdal_path(href: str) -> str:
    """``https://`` -> ``/vsicurl/``, ``s3://`` -> ``/vsis3/``; local paths as they are."""
    if href.startswith(("http://", "https://")):
        return "/vsicurl/" + href
    if href.startswith("s3://"):
        return "/vsis3/" + href[5:]
    return href


def http_options(href: str, credentials: Credentials, gdal_retries: int = 3, retry_delay: float = 0.5,
                 s3_options: dict[str, str] | None = None) -> dict[str, str]:
    """GDAL configuration for one read: GDAL's own retries, no directory listing, and the
    credentials (HTTP basic or a bearer token for https, keys for s3)."""
    options = {"GDAL_HTTP_MAX_RETRY": str(gdal_retries), "GDAL_HTTP_RETRY_DELAY": f"{retry_delay:g}",
               "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
               "GDAL_HTTP_TIMEOUT": "120", "GDAL_HTTP_CONNECTTIMEOUT": "30",
               "GDAL_INGESTED_BYTES_AT_OPEN": "32768"}
    if href.startswith("s3://"):
        options.update(s3_options or {})
        if credentials.username and credentials.password:
            options.update(AWS_ACCESS_KEY_ID=credentials.username, AWS_SECRET_ACCESS_KEY=credentials.password)
        else:
            options["AWS_NO_SIGN_REQUEST"] = "YES"
    elif credentials.token:
        options["GDAL_HTTP_HEADERS"] = f"Authorization: Bearer {credentials.token}"
    elif credentials.username or credentials.password:
        options.update(GDAL_HTTP_AUTH="BASIC", GDAL_HTTP_USERPWD=f"{credentials.username}:{credentials.password}")
    return options


@contextlib.contextmanager
def _thread_config(options: dict[str, str]) -> Iterator[None]:
    """GDAL options for this thread only (other reads run in other threads with their own)."""
    from osgeo import gdal

    for key, value in options.items():
        gdal.SetThreadLocalConfigOption(key, value)
    try:
        yield
    finally:
        for key in options:
            gdal.SetThreadLocalConfigOption(key, None)


def _sleep(seconds: float, progress: Progress) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        progress.check()
        time.sleep(min(0.1, max(0.0, end - time.monotonic())))


def fetch_window(href: str, destination: Path, grid: Grid, options: dict[str, str], attempts: int = 5,
                 backoff: float = 0.5, progress: Progress | None = None, secrets: Sequence[str] = ()) -> dict:
    """Read the source pixels under ``grid`` (2 px margin, native resolution and CRS) of one
    band into ``destination``; retried with exponential backoff. Returns what was written."""
    import rasterio
    from osgeo import gdal
    from rasterio.errors import RasterioIOError
    from rasterio.warp import transform_bounds
    from rasterio.windows import Window, from_bounds

    progress = ensure_progress(progress)
    path = gdal_path(href)
    shown = public_url(href)
    for attempt in range(max(1, attempts)):
        progress.check()
        try:
            with _thread_config(options), rasterio.open(path) as source:
                box = transform_bounds(grid.crs_wkt, source.crs, *grid.bounds, densify_pts=21)
                window = from_bounds(*box, transform=source.transform)
                c0, r0 = max(0, math.floor(window.col_off) - 2), max(0, math.floor(window.row_off) - 2)
                c1 = min(source.width, math.ceil(window.col_off + window.width) + 2)
                r1 = min(source.height, math.ceil(window.row_off + window.height) + 2)
                if c1 <= c0 or r1 <= r0:
                    raise _Outside()
                read = Window(c0, r0, c1 - c0, r1 - r0)
                data = source.read(1, window=read)
                transform, crs = source.window_transform(read), source.crs
            temp = temporary_sibling(destination)
            try:
                with rasterio.open(temp, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                                   dtype=data.dtype, crs=crs, transform=transform, nodata=0, compress="deflate",
                                   tiled=data.shape[0] >= 256 and data.shape[1] >= 256) as out:
                    out.write(data, 1)
                os.replace(temp, destination)
            finally:
                Path(temp).unlink(missing_ok=True)
            left, top = transform.c, transform.f
            return {"crs": crs.to_wkt(), "bounds": (left, top + transform.e * data.shape[0],
                                                    left + transform.a * data.shape[1], top),
                    "resolution": abs(transform.a), "pixels": int(data.size)}
        except (RasterioIOError, OSError) as error:
            text = scrub(str(error), secrets)
            gdal.VSICurlPartialClearCache(path)  # a failed answer must not be served from the cache
            if re.search(r"\b(401|403)\b|Access Denied|Forbidden|Unauthorized|InvalidAccessKeyId|SignatureDoesNotMatch",
                         text, re.IGNORECASE):
                status = re.search(r"\b(401|403)\b", text)
                raise CatalogueError(f"the catalogue's file server refused the credentials "
                                     f"(HTTP {status.group(1) if status else '403'}) for {shown}; check the "
                                     "authentication configuration", "credentials") from None
            if re.search(r"\b404\b|does not exist|No such file|not recognized as", text, re.IGNORECASE):
                raise AssetMissing(f"{shown} is not there ({text.strip().splitlines()[0][:200]})") from None
            if attempt + 1 >= max(1, attempts):
                raise FetchFailed(f"{shown}: {text.strip().splitlines()[0][:200] if text.strip() else 'read failed'}"
                                  f" after {attempts} tries") from None
            _sleep(backoff * 2 ** attempt, progress)
    raise FetchFailed(shown)  # not reached


def run_key(source_url: str, level: str, grid: Grid, bands: Sequence[str]) -> str:
    """What a finished window depends on: a changed grid or band list starts a new work folder."""
    text = json.dumps([source_url, level, grid.width, grid.height, grid.crs_wkt, list(grid.transform), list(bands)])
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def work_folder(output: str | Path) -> Path:
    out = Path(output)
    return out.with_name(f"{out.stem}.download")


def safe_name(text: str) -> str:
    """A folder name for a scene id."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:120] or "scene"


def band_names(level: str, bands: Sequence[str] | None) -> tuple[str, ...]:
    """The level's bands the user asked for, in the level's order (all when none)."""
    available = level_bands(level)
    if not bands:
        return available
    return tuple(available[i] for i in sorted(set(find_bands(available, list(bands), f"{level} scenes"))))


def scene_product(scene_dir: Path, record: dict[str, Any]) -> Product:
    """A finished scene (its ``scene.json`` record and window files) as a product to import."""
    from .timestack import parse_datetime

    bands = record["bands"]
    bounds = [b["bounds"] for b in bands.values()]
    union = (min(b[0] for b in bounds), min(b[1] for b in bounds), max(b[2] for b in bounds), max(b[3] for b in bounds))
    granule = Granule(tile=record.get("tile", ""), crs=next(iter(bands.values()))["crs"], bounds=union,
                      bands={b: str(scene_dir / f"{b}.tif") for b in bands},
                      resolutions={b: int(round(v["resolution"])) for b, v in bands.items()})
    return Product(path=str(scene_dir), name=record["id"], level=record["level"], baseline=record["baseline"],
                   sensing_time=parse_datetime(record["datetime"]), quantification=float(record["quantification"]),
                   offsets={b: float(v) for b, v in record["offsets"].items()}, nodata=0, saturated=SATURATED,
                   granules=(granule,))


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON all or nothing (a scene counts as finished once its record is there)."""
    temp = temporary_sibling(path)
    try:
        temp.write_text(json.dumps(value, indent=1, default=str))
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


@dataclass
class _Job:
    """One scene being fetched: its bands' futures and what they wrote."""

    scene: Scene
    folder: Path
    futures: dict[str, Future] = field(default_factory=dict)
    written: dict[str, dict] = field(default_factory=dict)


def _fetch_scenes(jobs: list[_Job], grid: Grid, credentials: Credentials, s3_options: dict[str, str],
                  connections: int, attempts: int, backoff: float, gdal_retry_delay: float, progress: Progress,
                  skipped: list[dict[str, str]]) -> list[_Job]:
    """Fetch every job's bands, ``connections`` at a time; the finished jobs (``scene.json`` written)."""
    secrets = [credentials.password, credentials.token]
    finished: list[_Job] = []
    total = sum(len(job.scene.hrefs) for job in jobs) or 1
    done_bands = 0
    lock = threading.Lock()
    pool = ThreadPoolExecutor(max(1, connections), thread_name_prefix="eolulc-download")
    try:
        for job in jobs:
            job.folder.mkdir(parents=True, exist_ok=True)
            for band, href in job.scene.hrefs.items():
                options = http_options(href, credentials, retry_delay=gdal_retry_delay, s3_options=s3_options)
                job.futures[band] = pool.submit(fetch_window, href, job.folder / f"{band}.tif", grid, options,
                                                attempts, backoff, progress, secrets)
        pending = {f for job in jobs for f in job.futures.values()}
        open_jobs = list(jobs)
        while pending:
            progress.check()
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            with lock:
                done_bands += len(done)
            progress.report(done_bands / total)
            for job in list(open_jobs):
                if not all(f.done() for f in job.futures.values()):
                    continue
                open_jobs.remove(job)
                errors = {b: f.exception() for b, f in job.futures.items() if f.exception() is not None}
                for error in errors.values():
                    if isinstance(error, (CatalogueError, Cancelled)):
                        raise error
                if errors:
                    band, error = next(iter(errors.items()))
                    why = ("outside the extent" if isinstance(error, _Outside) else
                           f"asset {band} missing: {error}" if isinstance(error, AssetMissing) else
                           f"band {band} failed: {scrub(str(error), secrets)}")
                    skipped.append({"id": job.scene.id, "reason": why})
                    progress.log(f"{job.scene.id}: skipped, {why}")
                    continue
                job.written = {b: f.result() for b, f in job.futures.items()}
                record = {"id": job.scene.id, "datetime": format_datetime(job.scene.datetime),
                          "level": job.scene.level, "baseline": job.scene.baseline, "tile": job.scene.tile,
                          "cloud_cover": job.scene.cloud_cover, "quantification": job.scene.quantification,
                          "offsets": job.scene.offsets, "bands": job.written}
                write_json(job.folder / "scene.json", record)
                size = sum((job.folder / f"{b}.tif").stat().st_size for b in job.written)
                pixels = sum(v["pixels"] for v in job.written.values())
                progress.log(f"{job.scene.id}: {len(job.written)} bands, {pixels:,} px fetched ({size / 1024:,.0f} KiB "
                             "kept)")
                finished.append(job)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return sorted(finished, key=lambda job: (job.scene.datetime, job.scene.id))


def download(catalogue: Catalogue, level: str, extent: Sequence[float], extent_crs: str, start: date, end: date,
             output: str | Path, output_mask: str | Path | None = None, bands: Sequence[str] | None = None,
             resolution: float = 10.0, max_cloud: float = 80.0, credentials: Credentials | None = None,
             max_area_km2: float = DEFAULT_MAX_AREA_KM2, report_path: str | Path | None = None,
             connections: int = 4, attempts: int = 5, backoff: float = 0.5, gdal_retry_delay: float = 0.5,
             cloud_classes: Sequence[int] = DEFAULT_CLOUD_CLASSES, s3_options: dict[str, str] | None = None,
             progress: Progress | None = None) -> DownloadResult:
    """Search, fetch the windows (resuming finished scenes) and write the time stack (and for
    L2A the SCL cloud mask); the report says what was found, used and skipped, and why."""
    progress = ensure_progress(progress)
    credentials = credentials or Credentials()
    if output_mask and level != "L2A":
        raise ValueError("the cloud mask output needs L2A (its scene classification); for L1C use the s2cloudless "
                         "cloud mask (cloudmask algorithm)")
    check_period(start, end)
    names = band_names(level, bands)
    grid, bbox = plan_grid(extent, extent_crs, resolution, max_area_km2)
    progress.log(f"{catalogue.title}: searching {level} scenes from {start} to {end}, cloud cover at most "
                 f"{max_cloud:g} %, extent {', '.join(f'{v:.5f}' for v in bbox)} (EPSG:4326)")
    scenes, skipped = search(catalogue, level, bbox, start, end, max_cloud, names, credentials, attempts, backoff)
    found = len(scenes) + len(skipped)
    usable = []
    for scene in scenes:
        if scene.missing:
            why = f"asset(s) {', '.join(scene.missing)} missing from the item"
            skipped.append({"id": scene.id, "reason": why})
            progress.log(f"{scene.id}: skipped, {why}")
        else:
            usable.append(scene)
    if not usable:
        raise CatalogueError(f"{catalogue.title} has no usable {level} scene of this extent from {start} to {end} with "
                             f"at most {max_cloud:g} % cloud cover ({found} found); widen the period, raise the "
                             "cloud cover limit or check the extent", "no_scenes")
    folder = work_folder(output) / run_key(catalogue.url, level, grid, names)
    cached, to_fetch = [], []
    for scene in usable:
        scene_dir = folder / safe_name(scene.id)
        (cached if (scene_dir / "scene.json").exists() else to_fetch).append(_Job(scene, scene_dir))
    progress.log(f"{len(usable)} scenes to use: {len(cached)} already in {folder}, {len(to_fetch)} to fetch "
                 f"({grid.width} x {grid.height} px at {resolution:g} m)")
    fetched = _fetch_scenes(to_fetch, grid, credentials, s3_options or {}, connections, attempts, backoff,
                            gdal_retry_delay, progress.scaled(0.0, 0.8), skipped)
    head = {"catalogue": catalogue.title, "url": public_url(catalogue.url), "level": level,
            "collection": catalogue.collections.get(level), "period": [str(start), str(end)],
            "max_cloud_cover": max_cloud, "extent_wgs84": [round(v, 6) for v in bbox]}
    return finish(folder, [j.folder for j in cached], [j.folder for j in fetched], output, grid, names, found,
                  skipped, head, resolution, output_mask=output_mask, cloud_classes=cloud_classes,
                  report_path=report_path, progress=progress.scaled(0.8, 1.0))


def finish(folder: Path, cached: Sequence[Path], fetched: Sequence[Path], output: str | Path, grid: Grid,
           names: Sequence[str], found: int, skipped: list[dict[str, str]], head: dict[str, Any], resolution: float,
           output_mask: str | Path | None = None, cloud_classes: Sequence[int] = DEFAULT_CLOUD_CLASSES,
           report_path: str | Path | None = None, progress: Progress | None = None) -> DownloadResult:
    """The common end of every source: the finished scene folders (reused and fetched) -> the time
    stack and the cloud mask, all or nothing (``import_safe``), and the report (``head`` first)."""
    progress = ensure_progress(progress)
    products, reused = [], set()
    for scene_dir in list(cached) + list(fetched):
        product = scene_product(scene_dir, json.loads((scene_dir / "scene.json").read_text()))
        products.append(product)
        if scene_dir in cached:
            reused.add(product.name)
    if not products:
        raise CatalogueError(f"no scene could be read ({len(skipped)} skipped: "
                             f"{'; '.join(s['reason'] for s in skipped[:3])}); try again later", "catalogue")
    products.sort(key=lambda p: (p.sensing_time, p.name))
    imported = import_safe(products, output, grid, bands=names, output_mask=output_mask, cloud_classes=cloud_classes,
                           progress=progress)
    used = [{"id": p.name, "datetime": format_datetime(p.sensing_time), "baseline": p.baseline,
             "cached": p.name in reused} for day in imported.products for p in products if p.name in day]
    fetched_ids = [p.name for p in products if p.name not in reused]
    report = {**head, "grid": {"width": grid.width, "height": grid.height, "resolution": resolution,
                               "crs": _crs_name(grid.crs_wkt)},
              "bands": list(names), "found": found, "used": used, "skipped": skipped,
              "dates": [format_datetime(d) for d in imported.info.dates], "work_folder": str(folder),
              "fetched": fetched_ids, "reused": [p.name for p in products if p.name in reused]}
    if report_path:
        with atomic_outputs([report_path]) as (temp,):
            Path(temp).write_text(json.dumps(report, indent=1))
    return DownloadResult(report, imported, fetched_ids, report["reused"])


def _crs_name(wkt: str | None) -> str:
    from rasterio.crs import CRS

    crs = CRS.from_wkt(wkt) if wkt else None
    return crs.to_string() if crs is not None else ""
