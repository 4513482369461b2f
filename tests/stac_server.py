"""A STAC API and file server on 127.0.0.1 for the download tests (no network here).

``/`` is a landing page advertising STAC API item search with the query and filter extensions,
``/search`` (POST, as pystac-client sends it) filters the items by collection, bbox, datetime and
``eo:cloud_cover`` (``query`` ``lte`` or CQL2 ``<=``) and pages them with ``next`` links,
``/token/<collection>`` hands out a SAS-like token (Planetary Computer's signing), and
``/files/...`` serves the files of a folder with ``Range`` support. It counts requests and bytes
per file, can demand HTTP basic credentials or a token, and can misbehave on purpose: a list of
faults per file (``503``, ``429``, ``drop`` = close without an answer, ``cut`` = half the body)
consumed one per request.

Items are shaped like Earth Search v1 ``sentinel-2-l2a`` items (:func:`earth_search_item`).
"""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

COMMON = {"B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1", "B06": "rededge2",
          "B07": "rededge3", "B08": "nir", "B8A": "nir08", "B09": "nir09", "B10": "cirrus", "B11": "swir16",
          "B12": "swir22", "SCL": "scl"}
NATIVE = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10,
          "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20, "SCL": 20}
CONFORMANCE = ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search",
               "https://api.stacspec.org/v1.0.0/item-search#query", "https://api.stacspec.org/v1.0.0/item-search#filter",
               "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json", "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
               "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter"]


def write_cog(path: Path, data: np.ndarray, epsg: int, ulx: float, uly: float, resolution: float,
              blocksize: int = 256) -> Path:
    """A cloud-optimized GeoTIFF (internal tiles, overviews, DEFLATE) like Earth Search's."""
    from osgeo import gdal, osr

    path.parent.mkdir(parents=True, exist_ok=True)
    memory = gdal.GetDriverByName("MEM").Create("", data.shape[1], data.shape[0], 1,
                                                gdal.GDT_Byte if data.dtype == np.uint8 else gdal.GDT_UInt16)
    memory.SetGeoTransform((ulx, resolution, 0, uly, 0, -resolution))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    memory.SetProjection(srs.ExportToWkt())
    memory.GetRasterBand(1).WriteArray(data)
    memory.GetRasterBand(1).SetNoDataValue(0)
    gdal.GetDriverByName("COG").CreateCopy(str(path), memory, options=[
        f"BLOCKSIZE={blocksize}", "COMPRESS=DEFLATE", "OVERVIEWS=AUTO", "RESAMPLING=NEAREST"])
    return path


def earth_search_item(item_id: str, when: datetime, epsg: int, ulx: float, uly: float, side_m: float,
                      bbox_wgs84: list[float], hrefs: dict[str, str], baseline: str = "05.09",
                      offset_applied: bool = True, cloud: float = 10.0, level: str = "L2A") -> dict[str, Any]:
    """An item shaped like Earth Search v1's (properties, links, assets with eo:bands,
    proj:shape/transform and raster:bands), pointing at ``hrefs`` (band -> URL)."""
    west, south, east, north = bbox_wgs84
    zone, band_letter, square = str(epsg)[-2:], "T", "VM"
    assets = {}
    for band, href in hrefs.items():
        res = NATIVE[band]
        side = int(round(side_m / res))
        asset: dict[str, Any] = {
            "href": href, "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "title": f"{COMMON[band]} ({band}) - {res}m", "proj:shape": [side, side],
            "proj:transform": [res, 0, ulx, 0, -res, uly],
            "raster:bands": [{"nodata": 0, "data_type": "uint8" if band == "SCL" else "uint16",
                              "spatial_resolution": res,
                              **({} if band == "SCL" else {"bits_per_sample": 15, "scale": 0.0001, "offset": -0.1})}],
            "roles": ["data"] if band == "SCL" else ["data", "reflectance"]}
        if band != "SCL":
            asset["eo:bands"] = [{"name": COMMON[band], "common_name": COMMON[band], "description": band}]
            asset["gsd"] = res
        assets[COMMON[band]] = asset
    product = "S2MSI2A" if level == "L2A" else "S2MSI1C"
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": item_id,
        "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json",
                            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
                            "https://stac-extensions.github.io/raster/v1.1.0/schema.json"],
        "properties": {
            "created": "2023-06-28T15:42:10.537Z", "platform": "sentinel-2a", "constellation": "sentinel-2",
            "instruments": ["msi"], "eo:cloud_cover": cloud, "proj:epsg": epsg, "mgrs:utm_zone": int(zone),
            "mgrs:latitude_band": band_letter, "mgrs:grid_square": square,
            "grid:code": f"MGRS-{zone}{band_letter}{square}",
            "s2:product_type": product, "s2:processing_baseline": baseline,
            "s2:product_uri": f"S2A_MSIL{level[1:]}_{when:%Y%m%dT%H%M%S}_N{baseline.replace('.', '')}_R065_T{zone}"
                              f"{band_letter}{square}_{when:%Y%m%dT%H%M%S}.SAFE",
            "datetime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "s2:sequence": "0",
            "earthsearch:boa_offset_applied": offset_applied,
            "processing:software": {"sentinel2-to-stac": "0.1.0"}, "updated": "2023-06-28T15:42:10.537Z"},
        "geometry": {"type": "Polygon", "coordinates": [[[west, north], [east, north], [east, south], [west, south],
                                                         [west, north]]]},
        "links": [{"rel": "self", "href": f"/collections/sentinel-2-{level.lower()}/items/{item_id}",
                   "type": "application/geo+json"},
                  {"rel": "license", "href": "https://sentinel.esa.int/documents/247904/690755/Sentinel_Data_Legal_Notice"}],
        "assets": assets, "bbox": [west, south, east, north], "collection": f"sentinel-2-{level.lower()}",
    }


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc).replace(tzinfo=None)


class StacServer:
    """Start with ``with StacServer(folder) as server:``; ``server.url`` is the API root."""

    def __init__(self, root: Path, items: list[dict] | None = None, credentials: tuple[str, str] | None = None,
                 page_size: int | None = None, token: str | None = None) -> None:
        self.root = Path(root)
        self.items = list(items or [])
        self.credentials = credentials
        self.page_size = page_size
        self.token = token
        self.requests: dict[str, int] = {}
        self.bytes: dict[str, int] = {}
        self.faults: dict[str, list] = {}
        self.searches: list[dict] = []
        self.headers_seen: list[str] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def file_url(self, relative: str) -> str:
        return f"{self.url}/files/{relative}"

    def served(self, prefix: str = "") -> int:
        with self.lock:
            return sum(v for k, v in self.bytes.items() if k.startswith(prefix))

    def requested(self, prefix: str = "") -> int:
        with self.lock:
            return sum(v for k, v in self.requests.items() if k.startswith(prefix))

    def reset_counts(self) -> None:
        with self.lock:
            self.requests.clear()
            self.bytes.clear()

    def __enter__(self) -> StacServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _authorized(self) -> bool:
                with server.lock:
                    server.headers_seen.append(str(self.headers))
                if server.credentials is None:
                    return True
                pair = base64.b64encode(":".join(server.credentials).encode()).decode()
                if self.headers.get("Authorization") == f"Basic {pair}":
                    return True
                self._json({"code": "Unauthorized", "description": "bad credentials"}, 401)
                return False

            def _json(self, value: Any, status: int = 200) -> None:
                body = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path.startswith("/token/"):
                    self._json({"token": f"sig={server.token}", "msft:expiry": "2099-01-01T00:00:00Z"})
                    return
                if not self._authorized():
                    return
                if parts.path in ("", "/"):
                    self._json(server.landing())
                elif parts.path.startswith("/files/"):
                    self._file(parts.path[len("/files/"):], parse_qs(parts.query))
                else:
                    self._json({"code": "NotFound"}, 404)

            def do_POST(self) -> None:
                if not self._authorized():
                    return
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0") or 0)) or b"{}")
                if urlsplit(self.path).path == "/search":
                    self._json(server.search(body))
                else:
                    self._json({"code": "NotFound"}, 404)

            def _file(self, relative: str, query: dict) -> None:
                path = server.root / relative
                with server.lock:
                    server.requests[relative] = server.requests.get(relative, 0) + 1
                    faults = server.faults.get(relative) or server.faults.get("*")
                    fault = faults.pop(0) if faults else None
                if server.token is not None and query.get("sig") != [server.token]:
                    self._json({"code": "AuthenticationFailed"}, 403)
                    return
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if isinstance(fault, int):
                    self._json({"code": "busy"}, fault)
                    return
                if not path.is_file():
                    self._json({"code": "NoSuchKey"}, 404)
                    return
                data = path.read_bytes()
                match = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range", ""))
                if match:
                    first = int(match.group(1))
                    last = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
                    chunk = data[first:last + 1]
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
                else:
                    chunk = data
                    self.send_response(200)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Type", "image/tiff")
                self.send_header("Content-Length", str(len(chunk)))
                self.end_headers()
                if self.command == "HEAD":
                    return
                if fault == "cut":
                    chunk = chunk[: len(chunk) // 2]
                    self.close_connection = True
                self.wfile.write(chunk)
                with server.lock:
                    server.bytes[relative] = server.bytes.get(relative, 0) + len(chunk)
                if fault == "cut":
                    self.connection.shutdown(socket.SHUT_RDWR)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def landing(self) -> dict:
        return {"type": "Catalog", "id": "loopback", "stac_version": "1.0.0", "description": "test STAC API",
                "conformsTo": CONFORMANCE,
                "links": [{"rel": "self", "href": self.url, "type": "application/json"},
                          {"rel": "root", "href": self.url, "type": "application/json"},
                          {"rel": "search", "href": f"{self.url}/search", "type": "application/geo+json",
                           "method": "POST"},
                          {"rel": "search", "href": f"{self.url}/search", "type": "application/geo+json",
                           "method": "GET"}]}

    def search(self, body: dict) -> dict:
        with self.lock:
            self.searches.append(body)
        hits = [item for item in self.items if self._matches(item, body)]
        start = int(str(body.get("token", "0")).split(":")[-1] or 0)
        size = int(self.page_size or body.get("limit") or 10)
        page = hits[start:start + size]
        links = [{"rel": "root", "href": self.url, "type": "application/json"}]
        if start + size < len(hits):
            links.append({"rel": "next", "href": f"{self.url}/search", "method": "POST", "merge": False,
                          "body": {**{k: v for k, v in body.items() if k != "token"}, "token": f"next:{start + size}"}})
        return {"type": "FeatureCollection", "features": page, "links": links,
                "numberMatched": len(hits), "numberReturned": len(page)}

    @staticmethod
    def _matches(item: dict, body: dict) -> bool:
        if body.get("collections") and item.get("collection") not in body["collections"]:
            return False
        if body.get("bbox"):
            w, s, e, n = body["bbox"]
            iw, is_, ie, in_ = item["bbox"]
            if iw > e or ie < w or is_ > n or in_ < s:
                return False
        if body.get("datetime"):
            first, _, last = body["datetime"].partition("/")
            when = _when(item["properties"]["datetime"])
            if (first not in ("", "..") and when < _when(first)) or (last not in ("", "..") and when > _when(last)):
                return False
        cloud = item["properties"].get("eo:cloud_cover", 0)
        limit = (body.get("query") or {}).get("eo:cloud_cover", {}).get("lte")
        if limit is not None and cloud > limit:
            return False
        cql = body.get("filter")
        if cql and cql.get("op") == "<=" and cloud > cql["args"][1]:
            return False
        return True


# ---------------------------------------------------------------- a served series of scenes
#: Two neighbouring tiles in EPSG:32633 (tiles overlap like MGRS tiles), 1024 px at 10 m.
TILE_SIDE_PX = 1024
TILES = {"33TVM": (500000.0, 5200000.0), "33TWM": (509000.0, 5200000.0)}
#: A 1 x 1 km extent across the first tile's east edge (x = 510240).
EXTENT_UTM = (509600.0, 5195000.0, 510600.0, 5196000.0)
#: (id, date, tile, baseline, earthsearch:boa_offset_applied, cloud cover, bands left out)
SERIES = (
    ("S2A_33TVM_20210601_0_L2A", datetime(2021, 6, 1, 10, 10, 31), "33TVM", "03.00", False, 12.0, ()),
    ("S2B_33TVM_20230310_0_L2A", datetime(2023, 3, 10, 10, 10, 29), "33TVM", "05.09", True, 5.0, ()),
    ("S2B_33TWM_20230310_0_L2A", datetime(2023, 3, 10, 10, 10, 33), "33TWM", "05.09", True, 7.0, ()),
    ("S2A_33TVM_20230504_0_L2A", datetime(2023, 5, 4, 10, 10, 31), "33TVM", "05.09", False, 30.0, ()),
    ("S2A_33TVM_20230701_0_L2A", datetime(2023, 7, 1, 10, 10, 31), "33TVM", "05.09", True, 95.0, ()),
    ("S2A_33TVM_20230801_0_L2A", datetime(2023, 8, 1, 10, 10, 31), "33TVM", "05.09", True, 3.0, ("B08",)),
)
BAND_INDEX = {"B01": 0, "B02": 1, "B03": 2, "B04": 3, "B05": 4, "B06": 5, "B07": 6, "B08": 7, "B8A": 8,
              "B09": 9, "B10": 10, "B11": 11, "B12": 12}


def tile_reflectance(scenes: np.ndarray, index: int, side: int = TILE_SIDE_PX) -> np.ndarray:
    """A real L1C scene (``(h, w, 13)`` of REFERENCE_SCENES.npy) repeated over a tile, mirrored at
    each repeat so that there are no seams."""
    scene = scenes[index % len(scenes)]
    block = np.concatenate([scene, scene[::-1]], axis=0)
    block = np.concatenate([block, block[:, ::-1]], axis=1)
    reps = (side // block.shape[0] + 1, side // block.shape[1] + 1, 1)
    return np.tile(block, reps)[:side, :side]


def scene_dns(reflectance: np.ndarray, band: str, add: int) -> np.ndarray:
    """Digital numbers of a band at its native resolution: block mean of the 10 m reflectance,
    ``round(R * 10000) + add`` (add 1000 where the -1000 offset is in the pixels)."""
    f = NATIVE[band] // 10
    values = reflectance[..., BAND_INDEX[band]].astype(np.float64)
    h, w = values.shape[0] // f, values.shape[1] // f
    values = values[: h * f, : w * f].reshape(h, f, w, f).mean(axis=(1, 3))
    return np.clip(np.round(values * 10000) + add, 1, 65534).astype(np.uint16)


def scene_scl(side_20m: int, cloudy_rows: slice | None = None) -> np.ndarray:
    scl = np.full((side_20m, side_20m), 4, np.uint8)
    if cloudy_rows is not None:
        scl[cloudy_rows] = 9
    return scl


def write_series(root: Path, scenes: np.ndarray, bands=("B02", "B04", "B08", "B11"), series=SERIES) -> dict:
    """The COGs of every scene of ``series`` under ``root/<id>/<band>.tif``; returns id -> the DNs
    written (band -> array) and its settings."""
    written = {}
    for i, (item_id, when, tile, baseline, applied, cloud, leave_out) in enumerate(series):
        ulx, uly = TILES[tile]
        reflectance = tile_reflectance(scenes, i)
        add = 1000 if float(baseline) >= 4.0 and not applied else 0
        dns = {}
        for band in bands:
            dns[band] = scene_dns(reflectance, band, add)
            if band not in leave_out:
                write_cog(root / item_id / f"{band}.tif", dns[band], 32633, ulx, uly, NATIVE[band])
        # clouds over rows 200-219 (20 m) = 4000-4400 m below the top: rows 4400..4800 m -> 5195600-5196000
        dns["SCL"] = scene_scl(TILE_SIDE_PX // 2, slice(200, 220) if i == 1 else None)
        write_cog(root / item_id / "SCL.tif", dns["SCL"], 32633, ulx, uly, 20)
        written[item_id] = {"dns": dns, "when": when, "tile": tile, "baseline": baseline, "applied": applied,
                            "cloud": cloud, "leave_out": leave_out, "add": add}
    return written


def series_items(server: StacServer, written: dict) -> list[dict]:
    """Earth Search shaped items for :func:`write_series`'s files, served by ``server``."""
    from rasterio.warp import transform_bounds

    items = []
    for item_id, spec in written.items():
        ulx, uly = TILES[spec["tile"]]
        side = TILE_SIDE_PX * 10
        bbox = list(transform_bounds("EPSG:32633", "EPSG:4326", ulx, uly - side, ulx + side, uly))
        hrefs = {b: server.file_url(f"{item_id}/{b}.tif") for b in spec["dns"] if b not in spec["leave_out"]}
        items.append(earth_search_item(item_id, spec["when"], 32633, ulx, uly, side, bbox, hrefs, spec["baseline"],
                                       spec["applied"], spec["cloud"]))
    return items
