"""Download a Sentinel-2 time series through Sentinel Hub (the eo-learn route) into the standard time stack.

Where the STAC route reads windows of the catalogue's files, Sentinel Hub cuts, resamples and
mosaics on the server: one Process API request per day returns the extent's pixels on exactly the
stack's grid (bbox, width, height, CRS), the day's scenes mosaicked least cloudy first, the
values harmonised onto the pre-04.00 scale (no -1000 offset), with the day's cloud mask: the
scene classification (SCL) for L2A, the service's s2cloudless mask (CLM) for L1C. The days come
from the Catalog API (a STAC search with the cloud-cover filter), as eo-learn's
``SentinelHubInputTask`` found its timestamps.

Everything after the fetch is shared with the STAC route (``core/download.py``): each day's answer
is split into one window file per band in ``<output stem>.download/<run key>/<day>/`` and counts
as finished once its ``scene.json`` is there, so a run cancelled or broken off resumes where it
stopped, and :func:`~.download.finish` writes the stack and mask all or nothing and the report.

The ``sentinelhub`` package does the OAuth client-credentials flow (``SentinelHubSession``), the
requests (``SentinelHubRequest``, ``SentinelHubCatalog``) and their retries with backoff on 5xx
answers and dropped connections and its waits on 429 (``SentinelHubDownloadClient``); a token the
service no longer accepts (HTTP 401 before its announced expiry) is replaced and the request
repeated once. The client id and secret arrive as plain values and never appear in a message.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import warnings
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import urlsplit

from .download import (
    DEFAULT_MAX_AREA_KM2,
    DownloadResult,
    band_names,
    finish,
    plan_grid,
    run_key,
    safe_name,
    work_folder,
    write_json,
)
from .progress import Progress, ensure_progress
from .safe_import import CLM_BAND, CLM_CLEAR
from .stac import CatalogueError, check_period, public_url, scrub
from .timestack import Grid, format_datetime, parse_datetime

SH_BASE_URL = "https://services.sentinel-hub.com"
#: The Copernicus Data Space Ecosystem's Sentinel Hub: its tokens come from the CDSE identity service.
CDSE_SH_URL = "https://sh.dataspace.copernicus.eu"
CDSE_TOKEN_URL = "https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token"
TOKEN_PATH = "/auth/realms/main/protocol/openid-connect/token"
COLLECTIONS = {"L1C": "sentinel-2-l1c", "L2A": "sentinel-2-l2a"}
#: Digital numbers of harmonised values: reflectance x 10000, no offset.
QUANTIFICATION = 10000.0
TITLE = "Sentinel Hub"
#: How many "429 too many requests" answers one request waits out (the service says how long)
#: before its day is skipped for this run.
RATE_LIMIT_RETRIES = 20
#: The Process API's largest answer, in pixels a side.
MAX_REQUEST_PX = 2500


@dataclass(frozen=True)
class OAuthClient:
    """A Sentinel Hub OAuth client (id and secret), as plain values; never printed."""

    client_id: str
    client_secret: str

    def __bool__(self) -> bool:
        return bool(self.client_id and self.client_secret)

    def __repr__(self) -> str:
        return "OAuthClient(client_id='***', client_secret='***')"


def token_url_for(base_url: str) -> str:
    """The OAuth token endpoint that goes with a deployment: CDSE's identity service for its
    Sentinel Hub, ``<base>/auth/realms/main/...`` otherwise (Sinergise's and the tests')."""
    if urlsplit(base_url).netloc == urlsplit(CDSE_SH_URL).netloc:
        return CDSE_TOKEN_URL
    return base_url.rstrip("/") + TOKEN_PATH


def evalscript(level: str, bands: Sequence[str], with_mask: bool) -> str:
    """The bands as uint16 DN, then SCL (L2A) or CLM shifted by one (L1C, 0 = no data); all 0
    where the day has no data."""
    mask = ("SCL",) if level == "L2A" else (CLM_BAND,) if with_mask else ()
    inputs = ", ".join(f'"{b}"' for b in (*bands, *mask, "dataMask"))
    values = [f"s.{b}" for b in bands]
    if mask == ("SCL",):
        values.append("s.SCL")
    elif mask:
        values.append(f"(s.CLM == 255 ? 0 : s.CLM + {CLM_CLEAR})")
    count = len(values)
    return f"""//VERSION=3
function setup() {{
  return {{
    input: [{{bands: [{inputs}], units: "DN"}}],
    output: {{id: "default", bands: {count}, sampleType: "UINT16"}}
  }};
}}
function evaluatePixel(s) {{
  if (s.dataMask == 0) {{ return [{", ".join("0" for _ in values)}]; }}
  return [{", ".join(values)}];
}}
"""


#: Loggers whose debug lines carry the token request's body (the client secret) or tokens.
SECRET_LOGGERS = ("requests_oauthlib", "oauthlib", "sentinelhub")


@contextlib.contextmanager
def _quiet_loggers() -> Iterator[None]:
    """Their debug lines print the token request (client secret) and answers: never below INFO."""
    import logging

    loggers = [logging.getLogger(name) for name in SECRET_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.INFO))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextlib.contextmanager
def _loopback_oauth(token_url: str) -> Iterator[None]:
    """oauthlib refuses plain-HTTP token endpoints; allowed here only for one on this machine."""
    host = urlsplit(token_url).hostname or ""
    if urlsplit(token_url).scheme != "http" or host not in ("127.0.0.1", "localhost", "::1"):
        yield
        return
    before = os.environ.get("OAUTHLIB_INSECURE_TRANSPORT")
    os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("OAUTHLIB_INSECURE_TRANSPORT", None)
        else:
            os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = before


def _status(error: BaseException) -> int | None:
    """The HTTP status behind a sentinelhub or requests exception, if any."""
    response = getattr(getattr(error, "request_exception", None), "response", None)
    if response is None:
        response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def _short(error: BaseException, secrets: Sequence[str]) -> str:
    text = scrub(str(error), secrets).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    server = [line for line in lines if line.startswith("Server response")]
    return (server or lines or [type(error).__name__])[-1][:300]


class _Service:
    """One account on one deployment: the session, the client and the collection definitions."""

    def __init__(self, client: OAuthClient, base_url: str, token_url: str, attempts: int, backoff: float) -> None:
        from sentinelhub import SHConfig

        self.base_url, self.token_url = base_url.rstrip("/"), token_url
        self.secrets = [client.client_secret]
        self.config = SHConfig(sh_client_id=client.client_id, sh_client_secret=client.client_secret,
                               sh_base_url=self.base_url, sh_token_url=token_url,
                               max_download_attempts=max(1, attempts), download_sleep_time=backoff,
                               download_timeout_seconds=120.0, max_retries=RATE_LIMIT_RETRIES)
        self.session = self._new_session()
        from sentinelhub import SentinelHubDownloadClient

        self.client = SentinelHubDownloadClient(config=self.config, session=self.session, default_retry_time=5)

    def _new_session(self):
        from oauthlib.oauth2 import OAuth2Error
        from sentinelhub import SentinelHubSession

        try:
            session = SentinelHubSession(config=self.config)
        except OAuth2Error as error:
            raise CatalogueError(f"{TITLE}'s token service refused the OAuth client ({error.error}); check the client "
                                 "id (user name) and secret (password) of the authentication configuration",
                                 "credentials") from None
        except Exception as error:  # noqa: BLE001 - sentinelhub wraps requests' errors in its own
            status = _status(error)
            if status in (400, 401, 403):
                raise CatalogueError(f"{TITLE}'s token service refused the OAuth client (HTTP {status}); check the "
                                     "client id (user name) and secret (password) of the authentication "
                                     "configuration", "credentials") from None
            raise CatalogueError(f"cannot get a token from {TITLE}'s token service at {public_url(self.token_url)} "
                                 f"({_short(error, self.secrets)}); check the Sentinel Hub address and the network, "
                                 "or try again later", "unreachable") from None
        self.secrets.append(str(session.token.get("access_token", "")))
        return session

    def renew(self) -> None:
        """A new token (the service refused the one it gave)."""
        self.session = self._new_session()
        self.client.session = self.session

    def collection(self, level: str):
        """The level's data collection, bound to this deployment."""
        import hashlib

        from sentinelhub import DataCollection

        stock = DataCollection.SENTINEL2_L1C if level == "L1C" else DataCollection.SENTINEL2_L2A
        if stock.service_url and stock.service_url.rstrip("/") == self.base_url:
            return stock
        name = f"EOLULC_{level}_{hashlib.sha1(self.base_url.encode()).hexdigest()[:10]}"
        return stock.define_from(name, service_url=self.base_url)

    def call(self, action, what: str):
        """``action()`` with one new token after an HTTP 401; errors the user can fix as CatalogueError."""
        for renewed in (False, True):
            try:
                return action()
            except CatalogueError:
                raise
            except Exception as error:  # noqa: BLE001 - sentinelhub raises DownloadFailedException and others
                status = _status(error)
                if status == 401 and not renewed:
                    self.renew()
                    continue
                if status in (401, 403):
                    raise CatalogueError(f"{TITLE} refused {what} (HTTP {status}); check that the OAuth client of the "
                                         "authentication configuration has access to it", "credentials") from None
                if status is not None and 400 <= status < 500 and status != 429:
                    raise CatalogueError(f"{TITLE} at {public_url(self.base_url)} rejected {what} (HTTP {status}): "
                                         f"{_short(error, self.secrets)}", "catalogue") from None
                raise _Unavailable(f"{what}: {_short(error, self.secrets)}") from None
        raise AssertionError("not reached")


class _Unavailable(Exception):
    """The service failed after every retry (5xx, dropped connections)."""


@dataclass(frozen=True)
class Day:
    """The scenes of one UTC day: one Process API request."""

    id: str
    day: date
    datetime: datetime
    items: tuple[str, ...]
    cloud_cover: float | None


def search_days(service: _Service, level: str, bbox: Sequence[float], start: date, end: date,
                max_cloud: float) -> list[Day]:
    """The days with scenes of ``level`` meeting ``bbox`` (EPSG:4326), at most ``max_cloud`` %
    cloud cover, from the Catalog API (all pages)."""
    from sentinelhub import CRS, BBox, SentinelHubCatalog

    catalog = SentinelHubCatalog(config=service.config)
    catalog.client = service.client
    period = (datetime.combine(start, time(0, 0, 0)), datetime.combine(end, time(23, 59, 59)))

    def items() -> list[dict[str, Any]]:
        found = catalog.search(COLLECTIONS[level], bbox=BBox(tuple(bbox), crs=CRS.WGS84), time=period,
                               filter=f"eo:cloud_cover <= {max_cloud:g}",
                               fields={"include": ["id", "properties.datetime", "properties.eo:cloud_cover"],
                                       "exclude": []})
        return list(found)

    try:
        features = service.call(items, "the catalogue search")
    except _Unavailable as error:
        raise CatalogueError(f"{TITLE}'s catalogue at {public_url(service.base_url)} did not answer ({error}); try "
                             "again later", "catalogue") from None
    days: dict[date, list[tuple[datetime, str, float | None]]] = {}
    for feature in features:
        when = parse_datetime(feature.get("properties", {}).get("datetime", ""))
        cloud = feature.get("properties", {}).get("eo:cloud_cover")
        days.setdefault(when.date(), []).append((when, str(feature.get("id", "")), None if cloud is None else
                                                 float(cloud)))
    result = []
    for day, scenes in sorted(days.items()):
        scenes.sort()
        clouds = [c for _, _, c in scenes if c is not None]
        result.append(Day(f"sentinelhub_{level}_{day:%Y%m%d}", day, scenes[0][0], tuple(s for _, s, _ in scenes),
                          min(clouds) if clouds else None))
    return result


def _epsg(grid: Grid) -> int:
    from rasterio.crs import CRS

    epsg = CRS.from_wkt(grid.crs_wkt).to_epsg()
    if epsg is None:
        raise CatalogueError("Sentinel Hub needs the extent in a CRS with an EPSG code (or in WGS 84, which "
                             "becomes the UTM zone)", "extent")
    return int(epsg)


def request_tiles(grid: Grid, max_px: int = MAX_REQUEST_PX) -> list[tuple[int, int, int, int]]:
    """``(row, col, height, width)`` pieces of the grid, none wider or taller than ``max_px``
    (the Process API answers at most 2500 x 2500 px)."""
    rows = math.ceil(grid.height / max_px)
    cols = math.ceil(grid.width / max_px)
    heights = [grid.height // rows + (1 if i < grid.height % rows else 0) for i in range(rows)]
    widths = [grid.width // cols + (1 if i < grid.width % cols else 0) for i in range(cols)]
    tiles = []
    for r, height in enumerate(heights):
        for c, width in enumerate(widths):
            tiles.append((sum(heights[:r]), sum(widths[:c]), height, width))
    return tiles


def fetch_day(service: _Service, collection, level: str, day: Day, grid: Grid, names: Sequence[str],
              with_mask: bool, max_cloud: float, folder: Path, max_px: int = MAX_REQUEST_PX,
              progress: Progress | None = None) -> dict[str, Any] | None:
    """One day's Process API requests (one per piece of the grid) -> one window file per band and
    ``scene.json`` in ``folder``; None (and a record saying so) when the day has no pixel in the
    extent."""
    import rasterio
    from rasterio.io import MemoryFile
    from rasterio.windows import Window
    from sentinelhub import CRS, BBox, MimeType, MosaickingOrder, SentinelHubRequest

    progress = ensure_progress(progress)
    mask = ("SCL",) if level == "L2A" else (CLM_BAND,) if with_mask else ()
    outputs = (*names, *mask)
    start = datetime.combine(day.day, time(0, 0, 0), tzinfo=timezone.utc)
    end = datetime.combine(day.day, time(23, 59, 59), tzinfo=timezone.utc)
    script = evalscript(level, names, with_mask)
    crs = CRS(_epsg(grid))
    resolution = abs(grid.transform[0])
    left, top = grid.transform[2], grid.transform[5]
    folder.mkdir(parents=True, exist_ok=True)
    received, has_data = 0, False
    files = {}
    try:
        for band in outputs:
            dtype = "uint8" if band in ("SCL", CLM_BAND) else "uint16"
            tiled = grid.width >= 256 and grid.height >= 256
            files[band] = rasterio.open(folder / f"{band}.tif", "w", driver="GTiff", width=grid.width,
                                        height=grid.height, count=1, dtype=dtype, crs=grid.crs_wkt,
                                        transform=rasterio.Affine(*grid.transform[:6]), nodata=0, compress="deflate",
                                        tiled=tiled)
        for row, col, height, width in request_tiles(grid, max_px):
            progress.check()
            box = (left + col * resolution, top - (row + height) * resolution, left + (col + width) * resolution,
                   top - row * resolution)
            request = SentinelHubRequest(
                evalscript=script,
                input_data=[SentinelHubRequest.input_data(collection, time_interval=(start, end),
                                                          mosaicking_order=MosaickingOrder.LEAST_CC,
                                                          maxcc=max_cloud / 100,
                                                          other_args={"processing": {"harmonizeValues": True}})],
                responses=[SentinelHubRequest.output_response("default", MimeType.TIFF)],
                bbox=BBox(box, crs=crs), size=(width, height), config=service.config)
            download = request.download_list[0]
            answer = service.call(lambda one=download: service.client.download([one], max_threads=1,
                                                                               decode_data=False)[0],
                                  f"the request of {day.day}")
            received += len(answer.content)
            with warnings.catch_warnings(), MemoryFile(answer.content) as memory, memory.open() as source:
                warnings.simplefilter("ignore")
                data = source.read()
            if data.shape != (len(outputs), height, width):
                raise _Unavailable(f"the answer for {day.day} has shape {data.shape}, not "
                                   f"{(len(outputs), height, width)}")
            has_data = has_data or bool(data[:len(names)].any())
            for band, values in zip(outputs, data):
                files[band].write(values.astype(files[band].dtypes[0]), 1, window=Window(col, row, width, height))
    finally:
        for handle in files.values():
            handle.close()
    record: dict[str, Any] = {"id": day.id, "datetime": format_datetime(day.datetime), "level": level,
                              "baseline": "", "tile": "", "cloud_cover": day.cloud_cover,
                              "quantification": QUANTIFICATION, "offsets": {b: 0.0 for b in names},
                              "items": list(day.items), "bytes": received, "bands": {}}
    if not has_data:
        record["empty"] = True
        for band in outputs:
            (folder / f"{band}.tif").unlink(missing_ok=True)
        write_json(folder / "scene.json", record)
        return None
    bounds = (left, top - resolution * grid.height, left + resolution * grid.width, top)
    for band in outputs:
        record["bands"][band] = {"crs": grid.crs_wkt, "bounds": bounds, "resolution": resolution,
                                 "pixels": grid.width * grid.height}
    write_json(folder / "scene.json", record)
    return record


def download_sentinelhub(client: OAuthClient, level: str, extent: Sequence[float], extent_crs: str, start: date,
                         end: date, output: str | Path, output_mask: str | Path | None = None,
                         bands: Sequence[str] | None = None, resolution: float = 10.0, max_cloud: float = 80.0,
                         base_url: str = SH_BASE_URL, token_url: str | None = None,
                         max_area_km2: float = DEFAULT_MAX_AREA_KM2, report_path: str | Path | None = None,
                         attempts: int = 4, backoff: float = 0.5, max_request_px: int = MAX_REQUEST_PX,
                         progress: Progress | None = None) -> DownloadResult:
    """Search the days, fetch each day not finished yet through the Process API, and write the
    time stack (and the cloud mask: SCL for L2A, CLM for L1C); the report says what was found,
    used and skipped, and why. A failed request is tried ``attempts`` times in all, waiting
    ``backoff`` seconds, then three times longer each time (sentinelhub's rule: 0.5, 1.5, 4.5 s)."""
    progress = ensure_progress(progress)
    if level not in COLLECTIONS:
        raise ValueError(f"the level must be L1C or L2A, got '{level}'")
    check_period(start, end)
    if not client:
        raise CatalogueError("Sentinel Hub needs an account: put its OAuth client id (as user name) and secret (as "
                             "password) in a Basic authentication configuration and choose it", "credentials")
    names = band_names(level, bands)
    grid, bbox = plan_grid(extent, extent_crs, resolution, max_area_km2)
    _epsg(grid)
    base_url = (base_url or SH_BASE_URL).rstrip("/")
    token_url = token_url or token_url_for(base_url)
    with _loopback_oauth(token_url), _quiet_loggers():
        service = _Service(client, base_url, token_url, attempts, backoff)
        progress.log(f"{TITLE} ({public_url(base_url)}): searching {level} days from {start} to {end}, cloud cover at "
                     f"most {max_cloud:g} %, extent {', '.join(f'{v:.5f}' for v in bbox)} (EPSG:4326)")
        days = search_days(service, level, bbox, start, end, max_cloud)
        if not days:
            raise CatalogueError(f"{TITLE} has no {level} scene of this extent from {start} to {end} with at most "
                                 f"{max_cloud:g} % cloud cover; widen the period, raise the cloud cover limit or "
                                 "check the extent", "no_scenes")
        folder = work_folder(output) / run_key(base_url + "#sentinelhub", level, grid,
                                               (*names, *((CLM_BAND,) if output_mask and level == "L1C" else ())))
        cached = [d for d in days if (folder / safe_name(d.id) / "scene.json").exists()]
        to_fetch = [d for d in days if d not in cached]
        progress.log(f"{len(days)} days ({sum(len(d.items) for d in days)} scenes): {len(cached)} already in "
                     f"{folder}, {len(to_fetch)} to fetch ({grid.width} x {grid.height} px at {resolution:g} m)")
        collection = service.collection(level)
        skipped: list[dict[str, str]] = []
        fetched: list[Path] = []
        fetching = progress.scaled(0.0, 0.8)
        received = 0
        for index, day in enumerate(to_fetch):
            fetching.check()
            scene_dir = folder / safe_name(day.id)
            try:
                record = fetch_day(service, collection, level, day, grid, names, bool(output_mask), max_cloud,
                                   scene_dir, max_request_px, fetching)
            except _Unavailable as error:
                why = f"{error}; run again to fetch it"
                skipped.append({"id": day.id, "reason": why})
                progress.log(f"{day.id}: skipped, {why}")
                continue
            if record is None:
                progress.log(f"{day.id}: no data in the extent, left out")
            else:
                received += record["bytes"]
                fetched.append(scene_dir)
                progress.log(f"{day.id}: {len(record['bands'])} bands, {record['bytes'] / 1024:,.0f} KiB received "
                             f"({received / 1024:,.0f} KiB in all)")
            fetching.report((index + 1) / len(to_fetch))
    reused = []
    for day in days:  # a day without pixels in the extent is finished too, but has nothing to import
        scene_file = folder / safe_name(day.id) / "scene.json"
        if scene_file.exists() and json.loads(scene_file.read_text()).get("empty"):
            skipped.append({"id": day.id, "reason": "no data in the extent on that day"})
        elif day in cached:
            reused.append(scene_file.parent)
    head = {"catalogue": TITLE, "url": public_url(base_url), "level": level, "collection": COLLECTIONS[level],
            "period": [str(start), str(end)], "max_cloud_cover": max_cloud,
            "extent_wgs84": [round(v, 6) for v in bbox], "bytes_received": received,
            "days": {d.id: list(d.items) for d in days}}
    found = sum(len(d.items) for d in days)
    return finish(folder, reused, fetched, output, grid, names, found, skipped, head, resolution,
                  output_mask=output_mask, report_path=report_path, progress=progress.scaled(0.8, 1.0))
