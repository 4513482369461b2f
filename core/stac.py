"""Sentinel-2 scenes from STAC API catalogues: the catalogues we know, how each names its assets,
the search (extent, period, cloud cover, paging) and what an item says about its pixels.

Catalogues differ in small ways that change results: asset keys (``red`` on Earth Search, ``B04``
on Planetary Computer, ``B04_10m`` on the Copernicus Data Space), the cloud-cover filter (the
``query`` extension or CQL2 ``filter``), signed URLs (Planetary Computer's SAS tokens) and the
reflectance offset of processing baseline 04.00 (Earth Search's COGs have it removed already and
say so in ``earthsearch:boa_offset_applied``; elsewhere the -1000 offset is in the pixels). Each
:class:`Scene` carries its per-band DN offset, so the SAFE importer's rules bring every date onto
one scale and offset (``core/safe_import.py``).

Credentials arrive as plain values (:class:`Credentials`) and never appear in a message: hrefs are
shown without their query string, and errors name the setting to fix, not the secret.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import urllib.request
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

from .safe import L1C_BANDS, L2A_BANDS, NATIVE_RESOLUTION
from .sentinel2 import COMMON_NAMES, QUANTIFICATION, RADIOMETRIC_OFFSET
from .timestack import parse_datetime

#: Baseline 04.00 (from 2022-01-25) added the -1000 DN offset; the date decides when an item
#: does not give its baseline.
OFFSET_SINCE = datetime(2022, 1, 25)
PC_TOKEN_URL = "https://planetarycomputer.microsoft.com/api/sas/v1/token/{collection}"


class CatalogueError(ValueError):
    """A catalogue problem the user can fix; ``kind`` says which setting: ``credentials``,
    ``unreachable``, ``catalogue`` (the address or the service), ``no_scenes``, ``period``,
    ``extent``."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Credentials:
    """What the user's authentication configuration holds, as plain values (never logged)."""

    username: str = ""
    password: str = ""
    token: str = ""

    def __bool__(self) -> bool:
        return bool(self.username or self.password or self.token)

    def __repr__(self) -> str:  # never print the secrets
        return f"Credentials(username={'***' if self.username else ''!r}, secret={'***' if self else ''!r})"

    def headers(self) -> dict[str, str]:
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.username or self.password:
            pair = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return {"Authorization": f"Basic {pair}"}
        return {}


@dataclass(frozen=True)
class Catalogue:
    """A STAC API and how its Sentinel-2 collections look."""

    key: str
    title: str
    url: str
    collections: dict[str, str]
    #: level -> band -> asset key (tried first; generic names follow, see :func:`asset_key`)
    assets: dict[str, dict[str, str]] = field(default_factory=dict)
    #: "query" (STAC query extension), "filter" (CQL2) or "auto" (what the API says it supports)
    cloud_filter: str = "auto"
    #: URL of the SAS token endpoint that signs asset hrefs (Planetary Computer), with {collection}
    token_url: str = ""
    #: whether reading the pixels needs an account (the search never does here)
    needs_account: bool = False
    terms: str = ""


_ES_ASSETS = {b: COMMON_NAMES[b] for b in L1C_BANDS + ("SCL",)}
_PC_ASSETS = {b: b for b in L2A_BANDS + ("SCL",)}
_CDSE_L2A = {b: f"{b}_{NATIVE_RESOLUTION[b]}m" for b in L2A_BANDS + ("SCL",)}

CATALOGUES: dict[str, Catalogue] = {
    "earth_search": Catalogue(
        "earth_search", "Earth Search (Element 84, AWS)", "https://earth-search.aws.element84.com/v1",
        {"L2A": "sentinel-2-l2a", "L1C": "sentinel-2-l1c"}, {"L2A": _ES_ASSETS, "L1C": _ES_ASSETS}, "query",
        terms="no account for L2A (public COGs); L1C files are in a requester-pays bucket (an AWS account)"),
    "planetary_computer": Catalogue(
        "planetary_computer", "Microsoft Planetary Computer",
        "https://planetarycomputer.microsoft.com/api/stac/v1", {"L2A": "sentinel-2-l2a"}, {"L2A": _PC_ASSETS},
        "query", token_url=PC_TOKEN_URL,
        terms="no account; asset URLs are signed with short-lived SAS tokens (fetched automatically)"),
    "cdse": Catalogue(
        "cdse", "Copernicus Data Space Ecosystem", "https://stac.dataspace.copernicus.eu/v1",
        {"L2A": "sentinel-2-l2a", "L1C": "sentinel-2-l1c"}, {"L2A": _CDSE_L2A, "L1C": {b: b for b in L1C_BANDS}},
        "filter", needs_account=True,
        terms="search is open; the files need a free CDSE account's S3 keys (access key as user name, "
              "secret key as password in the authentication configuration)"),
}
CUSTOM = "custom"


def catalogue_for(key: str, url: str = "") -> Catalogue:
    """A preset, or a custom STAC API at ``url`` with Earth Search's collection names."""
    if key == CUSTOM or key not in CATALOGUES:
        if not url:
            raise CatalogueError("a custom catalogue needs its STAC API address (like "
                                 "https://example.org/stac/v1)", "catalogue")
        return Catalogue(CUSTOM, "custom STAC API", url.rstrip("/"), {"L2A": "sentinel-2-l2a", "L1C": "sentinel-2-l1c"})
    preset = CATALOGUES[key]
    return preset if not url else Catalogue(**{**preset.__dict__, "url": url.rstrip("/")})


def public_url(href: str) -> str:
    """``href`` without its query string and user info (SAS tokens, keys): safe to show."""
    parts = urlsplit(href)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def scrub(text: str, secrets: Sequence[str] = ()) -> str:
    """A message with URL query strings and the given secrets removed."""
    text = re.sub(r"(https?://[^\s?'\"]+)\?[^\s'\"]*", r"\1", str(text))
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


@dataclass(frozen=True)
class Scene:
    """One STAC item as the downloader needs it."""

    id: str
    datetime: datetime
    level: str
    baseline: str
    cloud_cover: float | None
    crs: str | None
    tile: str
    #: band -> href (as the catalogue gives it; signed for Planetary Computer)
    hrefs: dict[str, str]
    #: bands the item lacks
    missing: tuple[str, ...]
    #: band -> DN offset in the pixels (-1000 from baseline 04.00 unless removed already)
    offsets: dict[str, float]
    quantification: float = QUANTIFICATION


def asset_key(assets: dict[str, Any], band: str, preferred: dict[str, str] | None = None) -> str | None:
    """The item's asset key of ``band``: the catalogue's name, then ``B04``, ``B04_10m``, ``red``
    (any case); None when the item has none."""
    candidates = [(preferred or {}).get(band), band, f"{band}_{NATIVE_RESOLUTION.get(band, 10)}m",
                  *(f"{band}_{r}m" for r in (10, 20, 60)), COMMON_NAMES.get(band)]
    lower = {k.lower(): k for k in assets}
    for candidate in candidates:
        if candidate and candidate in assets:
            return candidate
        if candidate and candidate.lower() in lower:
            return lower[candidate.lower()]
    return None


def _baseline(properties: dict[str, Any]) -> str:
    for key in ("s2:processing_baseline", "processing:version", "processing_baseline"):
        value = properties.get(key)
        if value not in (None, ""):
            return str(value)
    return ""


def dn_offset(properties: dict[str, Any], when: datetime) -> float:
    """The DN offset in an item's pixels: 0 where the catalogue removed it already
    (``earthsearch:boa_offset_applied``), -1000 from baseline 04.00 (or, without a baseline, from
    2022-01-25), else 0."""
    if properties.get("earthsearch:boa_offset_applied") is True:
        return 0.0
    baseline = _baseline(properties)
    try:
        return float(RADIOMETRIC_OFFSET) if float(baseline) >= 4.0 else 0.0
    except ValueError:
        return float(RADIOMETRIC_OFFSET) if when >= OFFSET_SINCE else 0.0


def _crs_of(item: dict[str, Any]) -> str | None:
    properties = item.get("properties", {})
    if properties.get("proj:epsg"):
        return f"EPSG:{int(properties['proj:epsg'])}"
    if properties.get("proj:code"):
        return str(properties["proj:code"])
    for asset in item.get("assets", {}).values():
        if asset.get("proj:epsg"):
            return f"EPSG:{int(asset['proj:epsg'])}"
        if asset.get("proj:code"):
            return str(asset["proj:code"])
    return None


def scene_from_item(item: dict[str, Any], level: str, bands: Sequence[str], catalogue: Catalogue) -> Scene:
    """A :class:`Scene` from an item's JSON (as the API returns it)."""
    properties = item.get("properties", {})
    when = parse_datetime(properties.get("datetime") or properties.get("start_datetime") or "")
    preferred = catalogue.assets.get(level, {})
    hrefs, missing = {}, []
    assets = item.get("assets", {})
    for band in bands:
        key = asset_key(assets, band, preferred)
        if key is None or not assets[key].get("href"):
            missing.append(band)
        else:
            hrefs[band] = assets[key]["href"]
    offset = dn_offset(properties, when)
    tile = str(properties.get("s2:mgrs_tile") or properties.get("grid:code", "") or "").replace("MGRS-", "")
    cloud = properties.get("eo:cloud_cover")
    return Scene(id=str(item.get("id", "")), datetime=when, level=level, baseline=_baseline(properties),
                 cloud_cover=None if cloud is None else float(cloud), crs=_crs_of(item), tile=tile, hrefs=hrefs,
                 missing=tuple(missing), offsets={b: (0.0 if b == "SCL" else offset) for b in bands})


def _retry(attempts: int, backoff: float):
    from urllib3.util.retry import Retry

    return Retry(total=attempts, connect=attempts, read=attempts, status=attempts, backoff_factor=backoff,
                 status_forcelist=(429, 500, 502, 503, 504), allowed_methods=None, raise_on_status=False)


def _api_error(error: Exception, catalogue: Catalogue, secrets: Sequence[str]) -> CatalogueError:
    status = getattr(error, "status_code", None)
    text = scrub(str(error), secrets)
    if status in (401, 403):
        return CatalogueError(f"{catalogue.title} refused the credentials (HTTP {status}); check the user name, "
                              "password or token of the authentication configuration", "credentials")
    if status is None and re.search(r"Connection refused|Max retries|NameResolution|timed out|Failed to establish",
                                    text, re.IGNORECASE):
        return CatalogueError(f"cannot reach {catalogue.title} at {public_url(catalogue.url)} (connection refused "
                              "or no answer); check the address and the network, or try again later", "unreachable")
    short = text.strip().splitlines()[0][:300] if text.strip() else type(error).__name__
    return CatalogueError(f"{catalogue.title} at {public_url(catalogue.url)} answered with an error"
                          f"{f' (HTTP {status})' if status else ''}: {short}", "catalogue")


def check_period(start: date, end: date) -> None:
    """A period that ends before it starts is refused (every source, before any request)."""
    if end < start:
        raise CatalogueError(f"the period runs backwards: it ends ({end}) before it starts ({start})", "period")


def search(catalogue: Catalogue, level: str, bbox: Sequence[float], start: date, end: date, max_cloud: float,
           bands: Sequence[str], credentials: Credentials | None = None, attempts: int = 5, backoff: float = 0.5,
           page_size: int = 100) -> tuple[list[Scene], list[dict[str, str]]]:
    """Scenes of ``level`` meeting ``bbox`` (EPSG:4326) from ``start`` to ``end`` (whole days) with
    at most ``max_cloud`` % cloud cover, all pages; and the items left out with why."""
    from pystac_client import Client
    from pystac_client.stac_api_io import StacApiIO

    check_period(start, end)
    collection = catalogue.collections.get(level)
    if collection is None:
        raise CatalogueError(f"{catalogue.title} has no {level} collection; choose "
                             f"{' or '.join(catalogue.collections)}", "level")
    credentials = credentials or Credentials()
    secrets = [credentials.password, credentials.token]
    io = StacApiIO(headers=credentials.headers(), timeout=60, max_retries=_retry(attempts, backoff))
    quiet = logging.getLogger("pystac_client")
    level_before = quiet.level
    quiet.setLevel(max(level_before, logging.INFO))  # its debug lines print the request headers
    try:
        client = Client.open(catalogue.url, stac_io=io)
        kind = catalogue.cloud_filter
        if kind == "auto":
            kind = "filter" if client.conforms_to("FILTER") else "query" if client.conforms_to("QUERY") else ""
        arguments: dict[str, Any] = {}
        if kind == "query":
            arguments["query"] = {"eo:cloud_cover": {"lte": max_cloud}}
        elif kind == "filter":
            arguments["filter"] = {"op": "<=", "args": [{"property": "eo:cloud_cover"}, max_cloud]}
            arguments["filter_lang"] = "cql2-json"
        found = client.search(collections=[collection], bbox=list(bbox), limit=page_size,
                              datetime=f"{start.isoformat()}T00:00:00Z/{end.isoformat()}T23:59:59Z", **arguments)
        items = [item for page in found.pages_as_dicts() for item in page.get("features", [])]
    except CatalogueError:
        raise
    except Exception as error:  # noqa: BLE001 - pystac-client raises APIError, requests its own
        raise _api_error(error, catalogue, secrets) from None
    finally:
        quiet.setLevel(level_before)
        io.session.close()
    wanted = tuple(bands) + (("SCL",) if level == "L2A" and "SCL" not in bands else ())
    scenes, left_out, seen = [], [], set()
    for item in items:
        scene = scene_from_item(item, level, wanted, catalogue)
        if scene.id in seen:
            continue
        seen.add(scene.id)
        if scene.cloud_cover is not None and scene.cloud_cover > max_cloud:
            left_out.append({"id": scene.id, "reason": f"cloud cover {scene.cloud_cover:g} % over {max_cloud:g} %"})
        else:
            scenes.append(scene)
    if catalogue.token_url and scenes:
        scenes = sign(scenes, catalogue, collection, attempts)
    scenes.sort(key=lambda s: (s.datetime, s.id))
    return scenes, left_out


def sign(scenes: list[Scene], catalogue: Catalogue, collection: str, attempts: int = 5) -> list[Scene]:
    """Planetary Computer: append the collection's SAS token to every Azure Blob href."""
    url = catalogue.token_url.format(collection=collection)
    token = None
    for attempt in range(max(1, attempts)):
        try:
            with urllib.request.urlopen(url, timeout=60) as answer:
                token = json.loads(answer.read().decode())["token"]
            break
        except Exception as error:  # noqa: BLE001 - urllib raises many kinds
            if attempt + 1 >= max(1, attempts):
                raise CatalogueError(f"{catalogue.title} did not sign the file addresses: its token service "
                                     f"{public_url(url)} failed ({scrub(str(error))}); try again later",
                                     "catalogue") from None
    signed = []
    for scene in scenes:
        hrefs = {b: (h + ("&" if "?" in h else "?") + token if _signable(h, url) else h)
                 for b, h in scene.hrefs.items()}
        signed.append(Scene(**{**scene.__dict__, "hrefs": hrefs}))
    return signed


def _signable(href: str, token_url: str) -> bool:
    """Azure Blob Storage files (Planetary Computer's), or files on the token service's host."""
    host = urlsplit(href).netloc
    return host.endswith(".blob.core.windows.net") or host == urlsplit(token_url).netloc
