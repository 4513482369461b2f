"""A stand-in for Sentinel Hub on 127.0.0.1 (no network here): the OAuth token endpoint, the
Catalog API search and the Process API.

- ``POST /auth/realms/main/protocol/openid-connect/token``: the client-credentials grant; wrong
  credentials get 401 ``invalid_client`` like the real service.
- ``POST /api/v1/catalog/1.0.0/search``: the configured days (``DAYS``) in the period with at most
  the ``eo:cloud_cover <= X`` of the CQL2 text filter, paged with ``next``.
- ``POST /api/v1/process``: a multi-band uint16 GeoTIFF of the requested bbox, CRS, width and
  height for the day of the time range, built from known values (:func:`band_values`): the
  evalscript's input bands are parsed and its returned expressions evaluated over them, so the
  answer is what the service would compute with our script.

Misbehaviour on demand: ``faults`` (a list of HTTP statuses or ``"drop"``; 429 comes with a
``Retry-After`` of 100 ms) answer the next Process API requests, one per request;
``expire_after`` makes every token handed out so far invalid after that many Process API answers
(the next request gets 401 until a new token is fetched).
Counters: ``tokens_issued``, ``process_calls`` (days asked for), ``bytes_sent``.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import numpy as np

CLIENT_ID = "eolulc-test-client"
CLIENT_SECRET = "sh-s3cret-never-shown"
#: (datetime, cloud cover %, kind): "full" covers the extent, "half" only its left half (the rest
#: is outside the orbit), "empty" has no pixel in it.
DAYS = [
    (datetime(2023, 3, 4, 10, 0, 5, tzinfo=timezone.utc), 12.0, "full"),
    (datetime(2023, 5, 13, 10, 0, 5, tzinfo=timezone.utc), 55.0, "half"),
    (datetime(2023, 6, 2, 10, 0, 5, tzinfo=timezone.utc), 95.0, "full"),
    (datetime(2023, 7, 22, 10, 0, 5, tzinfo=timezone.utc), 3.0, "full"),
    (datetime(2023, 8, 1, 10, 0, 5, tzinfo=timezone.utc), 20.0, "empty"),
]
L1C = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")


#: Clouds cover the part west of SPLIT_X and north of SPLIT_Y; a "half" day has data only west
#: of SPLIT_X (the test extent 509000-510000 E, 5195000-5196000 N is cut in four quarters).
SPLIT_X, SPLIT_Y = 509500.0, 5195500.0


def band_values(band: str, day: int, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """The known values of ``band`` on the ``day``-th configured day at pixel centres ``xs``,
    ``ys`` (metres, EPSG:32633): DN, or SCL/CLM/CLP/dataMask. They depend on the place, not on
    the request, so any split of the extent into requests gives the same pixels."""
    cloud = (xs < SPLIT_X) & (ys > SPLIT_Y)
    kind = DAYS[day][2]
    data = np.ones(xs.shape, bool) if kind == "full" else (xs < SPLIT_X) if kind == "half" else \
        np.zeros(xs.shape, bool)
    if band == "dataMask":
        return data.astype(np.int64)
    if band == "SCL":
        return np.where(cloud, 9, 4).astype(np.int64)
    if band == "CLM":
        return cloud.astype(np.int64)
    if band == "CLP":
        return np.where(cloud, 230, 10).astype(np.int64)
    index = L1C.index(band)
    return (1000 + 100 * index + 10 * day + np.floor(xs / 10) % 7 + 3 * (np.floor(ys / 10) % 5)).astype(np.int64)


def grid_values(band: str, day: int, bounds, width: int, height: int) -> np.ndarray:
    """:func:`band_values` on a ``width`` x ``height`` grid over ``bounds`` (west, south, east, north)."""
    west, south, east, north = bounds
    cols = west + (np.arange(width) + 0.5) * (east - west) / width
    rows = north - (np.arange(height) + 0.5) * (north - south) / height
    xs, ys = np.meshgrid(cols, rows)
    return band_values(band, day, xs, ys)


def _evaluate(evalscript: str, values: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The expressions of the evalscript's last ``return [...]`` over ``values`` (``s.B04``,
    ``(a == 255 ? 0 : b)``), then the evalscript's ``dataMask == 0`` rule (all 0)."""
    returned = re.findall(r"return \[([^\]]*)\];", evalscript)[-1]
    out = []
    for expression in (e.strip() for e in returned.split(",")):
        python = re.sub(r"s\.(\w+)", r'v["\1"]', expression)
        python = re.sub(r"\((.+?) \? (.+?) : (.+)\)", r"np.where(\1, \2, \3)", python)
        out.append(np.asarray(eval(python, {"np": np}, {"v": values})))  # noqa: S307 - our own evalscript
    mask = values.get("dataMask")
    return [np.where(mask == 0, 0, o) for o in out] if mask is not None else out


class ShServer:
    """The loopback Sentinel Hub; ``with ShServer() as server: server.url``."""

    def __init__(self, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.faults: list[Any] = []
        self.expire_after: int | None = None
        self.tokens_issued = 0
        self.process_calls: list[str] = []
        self.answers = 0
        self.bytes_sent = 0
        self.bodies: list[str] = []
        self._valid: set[str] = set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ShServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, value: Any) -> None:
                self._send(status, json.dumps(value).encode())

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0)).decode()
                with server._lock:
                    server.bodies.append(body)
                if self.path.endswith("/protocol/openid-connect/token"):
                    return self._token(body)
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                with server._lock:
                    valid = token in server._valid
                if not valid:
                    return self._json(401, {"error": {"status": 401, "reason": "Unauthorized",
                                                      "message": "Token is expired or invalid"}})
                if self.path == "/api/v1/catalog/1.0.0/search":
                    return self._search(json.loads(body))
                if self.path == "/api/v1/process":
                    return self._process(json.loads(body))
                self._json(404, {"error": {"status": 404, "message": f"no {self.path}"}})

            def _token(self, body: str) -> None:
                form = {k: v[0] for k, v in parse_qs(body).items()}
                if form.get("client_id") != server.client_id or form.get("client_secret") != server.client_secret:
                    return self._json(401, {"error": "invalid_client",
                                            "error_description": "Invalid client or Invalid client credentials"})
                token = "tok-" + secrets.token_hex(8)
                with server._lock:
                    server._valid.add(token)
                    server.tokens_issued += 1
                self._json(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})

            def _search(self, payload: dict) -> None:
                start, end = (datetime.fromisoformat(t.replace("Z", "+00:00")) for t in payload["datetime"].split("/"))
                limit = re.search(r"eo:cloud_cover\s*<=\s*([\d.]+)", str(payload.get("filter", "")))
                west, south, east, north = payload["bbox"]
                assert west < east and south < north
                found = [{"type": "Feature", "id": f"S2_{payload['collections'][0]}_{when:%Y%m%dT%H%M%S}_T33TVM",
                          "properties": {"datetime": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "eo:cloud_cover": cloud}}
                         for when, cloud, _ in DAYS if start <= when <= end
                         and (limit is None or cloud <= float(limit.group(1)))]
                first = int(payload.get("next") or 0)
                size = int(payload.get("limit", 100))
                page = found[first:first + size]
                context: dict[str, Any] = {"limit": size, "returned": len(page)}
                if first + size < len(found):
                    context["next"] = first + size
                self._json(200, {"type": "FeatureCollection", "features": page, "context": context})

            def _process(self, payload: dict) -> None:
                import rasterio
                from rasterio.io import MemoryFile
                from rasterio.transform import from_bounds

                with server._lock:
                    fault = server.faults.pop(0) if server.faults else None
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fault == 429:  # the real service says how long to wait, in milliseconds
                    body = json.dumps({"error": {"status": 429, "message": "rate limit"}}).encode()
                    self.send_response(429)
                    self.send_header("Retry-After", "100")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return None
                if fault is not None:
                    return self._json(int(fault), {"error": {"status": int(fault), "message": "try again"}})
                data = payload["input"]["data"][0]
                when = datetime.fromisoformat(data["dataFilter"]["timeRange"]["from"].replace("Z", "+00:00"))
                day = next(i for i, (d, _, _) in enumerate(DAYS) if d.date() == when.date())
                with server._lock:
                    server.process_calls.append(str(when.date()))
                bbox = payload["input"]["bounds"]["bbox"]
                epsg = int(payload["input"]["bounds"]["properties"]["crs"].rsplit("/", 1)[-1])
                width, height = payload["output"]["width"], payload["output"]["height"]
                script = payload["evalscript"]
                names = re.findall(r'"(\w+)"', re.search(r"bands: \[([^\]]*)\]", script).group(1))
                values = {n: grid_values(n, day, bbox, width, height) for n in names}
                bands = _evaluate(script, values)
                with MemoryFile() as memory:
                    with memory.open(driver="GTiff", width=width, height=height, count=len(bands), dtype="uint16",
                                     crs=rasterio.crs.CRS.from_epsg(epsg),
                                     transform=from_bounds(*bbox, width, height)) as out:
                        out.write(np.stack(bands).astype(np.uint16))
                    tiff = memory.read()
                with server._lock:
                    server.answers += 1
                    server.bytes_sent += len(tiff)
                    if server.expire_after is not None and server.answers >= server.expire_after:
                        server._valid.clear()
                        server.expire_after = None
                self._send(200, tiff, "image/tiff")

        return Handler
