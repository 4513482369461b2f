"""``eolulc:download``: Sentinel-2 scenes of an extent and a period from a STAC catalogue or Sentinel Hub
-> time stack."""

from __future__ import annotations

import json
from typing import Any

from qgis.core import (
    QgsApplication,
    QgsAuthMethodConfig,
    QgsCoordinateReferenceSystem,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterAuthConfig,
    QgsProcessingParameterDateTime,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from ..core.progress import Progress
from .base import EoLulcAlgorithm

#: The issue's order (download is unreleased): the custom STAC API is last.
CATALOGUE_KEYS = ("earth_search", "planetary_computer", "cdse", "sentinelhub", "custom")
CATALOGUE_NAMES = ("Earth Search (Element 84, AWS; no account)", "Microsoft Planetary Computer (no account; L2A)",
                   "Copernicus Data Space Ecosystem (account: S3 keys)",
                   "Sentinel Hub Process API (account: OAuth client)", "Custom STAC API (give its address)")
SENTINEL_HUB = "sentinelhub"
LEVELS = ("L2A", "L1C")
#: core error kind -> the parameter the user fixes
KIND_PARAMETER = {"credentials": "AUTHCFG", "unreachable": "CATALOGUE", "catalogue": "CATALOGUE",
                  "no_scenes": "EXTENT", "period": "END", "extent": "EXTENT", "level": "LEVEL"}
CDSE_S3 = {"AWS_S3_ENDPOINT": "eodata.dataspace.copernicus.eu", "AWS_VIRTUAL_HOSTING": "FALSE", "AWS_HTTPS": "YES"}
ES_L1C_S3 = {"AWS_REQUEST_PAYER": "requester"}


class DownloadAlgorithm(EoLulcAlgorithm):
    ALGORITHM_ID = "download"
    DISPLAY_NAME = "Download Sentinel-2 time series"
    GROUP_ID = "import"
    GROUP = "Import"
    REQUIRES = ("numpy", "rasterio")
    DESCRIPTION = (
        "Searches a STAC catalogue (Earth Search, Planetary Computer, Copernicus Data Space or any STAC API) for "
        "the Sentinel-2 scenes of an extent and a period under a cloud-cover limit, and reads only the extent's "
        "window of each band over HTTP range requests (never whole products) into one EO LULC time stack; for "
        "L2A also the cloud mask from the scene classification (SCL). Scenes of one day are mosaicked; the "
        "reflectance offset of processing baseline 04.00 is handled per scene (Earth Search's harmonised files "
        "included), so the stack carries true reflectance like importsafe's. Failed reads are retried with "
        "backoff. Finished scenes are kept in a folder next to the output (<output name>.download): run the same "
        "download again after a cancel or a network failure and only the missing scenes are fetched. Sentinel Hub "
        "(the eo-learn route, an account's OAuth client) cuts and mosaics on the server: one Process API request "
        "per day, L1C with the service's cloud mask (CLM) or L2A with SCL. The STAC catalogues need the Python "
        "package pystac-client, Sentinel Hub the package sentinelhub (Plugins > EO LULC > Install Python "
        "dependencies)."
    )

    EXTENT = "EXTENT"
    START = "START"
    END = "END"
    MAX_CLOUD_COVER = "MAX_CLOUD_COVER"
    LEVEL = "LEVEL"
    CATALOGUE = "CATALOGUE"
    STAC_URL = "STAC_URL"
    SH_BASE_URL = "SH_BASE_URL"
    AUTHCFG = "AUTHCFG"
    BANDS = "BANDS"
    RESOLUTION = "RESOLUTION"
    MAX_AREA_KM2 = "MAX_AREA_KM2"
    CONNECTIONS = "CONNECTIONS"
    OUTPUT = "OUTPUT"
    OUTPUT_MASK = "OUTPUT_MASK"
    OUTPUT_REPORT = "OUTPUT_REPORT"
    DATES = "DATES"

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.add(QgsProcessingParameterExtent(self.EXTENT, self.tr("Extent")),
                 "The area to download, in any CRS. The stack is in the extent's CRS when it is projected, else in "
                 "the UTM zone of its centre.")
        date_type = QgsProcessingParameterDateTime.Type.Date
        self.add(QgsProcessingParameterDateTime(self.START, self.tr("Start date"), type=date_type),
                 "First day of the period (scenes of that day included).")
        self.add(QgsProcessingParameterDateTime(self.END, self.tr("End date"), type=date_type),
                 "Last day of the period (included).")
        self.add(QgsProcessingParameterNumber(self.MAX_CLOUD_COVER, self.tr("Maximum scene cloud cover (%)"),
                                              type=QgsProcessingParameterNumber.Type.Double, defaultValue=80.0,
                                              minValue=0.0, maxValue=100.0),
                 "Scenes whose cloud cover (eo:cloud_cover, of the whole tile) is above this are not fetched.")
        self.add(QgsProcessingParameterEnum(self.LEVEL, self.tr("Processing level"), options=list(LEVELS),
                                            defaultValue=0),
                 "L2A (surface reflectance with the scene classification, the default) or L1C (top of "
                 "atmosphere; mask its clouds with the cloudmask algorithm).")
        self.add(QgsProcessingParameterEnum(self.CATALOGUE, self.tr("Catalogue"), options=list(CATALOGUE_NAMES),
                                            defaultValue=0),
                 "Earth Search and Planetary Computer need no account for L2A; Copernicus Data Space needs its "
                 "free account's S3 keys in the authentication configuration; Sentinel Hub needs an account's OAuth "
                 "client (client id and secret). Custom: any STAC API (give its address).")
        self.add(QgsProcessingParameterString(self.STAC_URL, self.tr("STAC API address"), optional=True,
                                              defaultValue=""),
                 "For the custom catalogue (like https://example.org/stac/v1); for a preset, replaces its address "
                 "(a mirror). Not used by Sentinel Hub (see its address under the advanced parameters).")
        self.add(QgsProcessingParameterAuthConfig(self.AUTHCFG, self.tr("Authentication configuration"),
                                                  optional=True, defaultValue=""),
                 "A QGIS authentication configuration (Settings > Options > Authentication) for catalogues that "
                 "need an account: Basic (user name and password, or for S3 files the access key and secret key; "
                 "for Sentinel Hub the OAuth client id and client secret), OAuth2 (Sentinel Hub: its client id and "
                 "secret are used) or a token. Credentials are never written to the log, the report or error "
                 "messages.")
        self.add(QgsProcessingParameterString(self.BANDS, self.tr("Bands"), defaultValue="", optional=True),
                 "Comma-separated band names (e.g. 'B02,B03,B04,B08'). Empty: all bands of the level (12 for L2A, "
                 "13 for L1C).")
        self.add(QgsProcessingParameterNumber(self.RESOLUTION, self.tr("Resolution (m)"),
                                              type=QgsProcessingParameterNumber.Type.Double, defaultValue=10.0,
                                              minValue=10.0, maxValue=600.0),
                 "Pixel size of the stack; 20 m and 60 m bands are resampled onto it (bilinear), like importsafe.")
        self.add(QgsProcessingParameterNumber(self.MAX_AREA_KM2, self.tr("Largest extent (km²)"),
                                              type=QgsProcessingParameterNumber.Type.Double, defaultValue=10000.0,
                                              minValue=1.0, maxValue=1_000_000.0),
                 "A guard against downloading a country by mistake: raise it to download more.", advanced=True)
        self.add(QgsProcessingParameterString(self.SH_BASE_URL, self.tr("Sentinel Hub address"), optional=True,
                                              defaultValue=""),
                 "Empty: Sinergise's Sentinel Hub (https://services.sentinel-hub.com). Another deployment, e.g. the "
                 "Copernicus Data Space's https://sh.dataspace.copernicus.eu (its tokens come from the CDSE "
                 "identity service).", advanced=True)
        self.add(QgsProcessingParameterNumber(self.CONNECTIONS, self.tr("Connections at once"),
                                              type=QgsProcessingParameterNumber.Type.Integer, defaultValue=4,
                                              minValue=1, maxValue=16),
                 "How many band windows are read at the same time. Public catalogues throttle heavy users: a few "
                 "is fastest in the end. Sentinel Hub is asked one day at a time.", advanced=True)
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Time stack")),
                 "The time stack (dates x bands, uint16 digital numbers with scale and offset; 0 is nodata).")
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT_MASK, self.tr("Cloud mask stack (SCL or CLM)"),
                                                         optional=True, createByDefault=False),
                 "1 cloud, 0 clear, 255 nodata, one band per date; usable wherever a cloudmask output is (e.g. "
                 "lulcpipeline's CLOUD_MASK). L2A: from the scene classification (SCL 3, 8, 9, 10). L1C: only from "
                 "Sentinel Hub, its s2cloudless mask (CLM); elsewhere use the cloudmask algorithm.")
        self.add(QgsProcessingParameterFileDestination(self.OUTPUT_REPORT, self.tr("Download report"),
                                                       fileFilter="JSON files (*.json)", optional=True,
                                                       createByDefault=False),
                 "JSON: the search, the scenes found, used (fetched or reused) and skipped with why.")
        self.addOutput(QgsProcessingOutputNumber(self.DATES, self.tr("Number of dates")))

    def auth_values(self, authcfg: str) -> dict[str, str]:
        """The plain values of a QGIS authentication configuration (never logged)."""
        if not authcfg:
            return {}
        manager = QgsApplication.authManager()
        config = QgsAuthMethodConfig()
        if not manager.loadAuthenticationConfig(authcfg, config, True) or not config.isValid(True):
            raise self.parameter_error(self.AUTHCFG, self.tr(
                "the authentication configuration '{}' cannot be read (unknown id, or the master password was not "
                "given); choose one under Settings > Options > Authentication").format(authcfg))
        values = dict(config.configMap())
        if values.get("oauth2config"):  # an OAuth2 configuration: its client id and secret
            try:
                oauth = json.loads(values["oauth2config"])
            except ValueError:
                oauth = {}
            values.setdefault("username", str(oauth.get("clientId", "")))
            values.setdefault("password", str(oauth.get("clientSecret", "")))
        return values

    def credentials(self, authcfg: str):
        """A STAC catalogue's credentials from the authentication configuration."""
        from ..core.stac import Credentials

        values = self.auth_values(authcfg)
        return Credentials(username=values.get("username", ""), password=values.get("password", ""),
                           token=values.get("token", "") or values.get("accessToken", ""))

    def oauth_client(self, authcfg: str):
        """Sentinel Hub's OAuth client (id as user name, secret as password, or an OAuth2 configuration)."""
        from ..core.sentinelhub_source import OAuthClient

        values = self.auth_values(authcfg)
        client = OAuthClient(values.get("username", ""), values.get("password", ""))
        if not client:
            raise self.parameter_error(self.AUTHCFG, self.tr(
                "Sentinel Hub needs an account: create an OAuth client in its dashboard and put the client id (as "
                "user name) and the client secret (as password) in a Basic authentication configuration, then "
                "choose it here"))
        return client

    def required_modules(self, parameters: dict[str, Any], context: QgsProcessingContext) -> tuple[str, ...]:
        """The route's own package: sentinelhub for Sentinel Hub, pystac-client for the STAC catalogues."""
        key = CATALOGUE_KEYS[self.parameterAsEnum(parameters, self.CATALOGUE, context)]
        return (*self.REQUIRES, "sentinelhub" if key == SENTINEL_HUB else "pystac_client")

    def _date(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext):
        value = self.parameterAsDateTime(parameters, name, context)
        if not value.isValid():
            raise self.parameter_error(name, self.tr("give a date like 2023-01-31"))
        return value.date().toPyDate()

    def execute(self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback,
                progress: Progress) -> dict[str, Any]:
        key = CATALOGUE_KEYS[self.parameterAsEnum(parameters, self.CATALOGUE, context)]
        from ..core.stac import CatalogueError

        output = self.required_output(parameters, self.OUTPUT, context)
        output_mask = self.output_path(parameters, self.OUTPUT_MASK, context)
        report = self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context) or None
        level = LEVELS[self.parameterAsEnum(parameters, self.LEVEL, context)]
        if output_mask and level != "L2A" and key != SENTINEL_HUB:
            raise self.parameter_error(self.OUTPUT_MASK, self.tr("needs L2A (its scene classification), or L1C from "
                                                                 "Sentinel Hub (its CLM); else use the cloudmask "
                                                                 "algorithm"))
        route = self._sentinel_hub if key == SENTINEL_HUB else self._stac
        kinds = {**KIND_PARAMETER, "unreachable": self.SH_BASE_URL, "catalogue": self.SH_BASE_URL} \
            if key == SENTINEL_HUB else KIND_PARAMETER
        try:
            result = route(key, level, parameters, context, output, output_mask, report, progress)
        except CatalogueError as error:
            raise self.parameter_error(kinds.get(error.kind, self.CATALOGUE), str(error)) from None
        except ValueError as error:
            if "band" in str(error).lower():
                raise self.parameter_error(self.BANDS, str(error)) from None
            raise QgsProcessingException(str(error)) from None
        return self._outputs(result, feedback, output, output_mask, report)

    def _sentinel_hub(self, key: str, level: str, parameters: dict[str, Any], context: QgsProcessingContext,
                      output: str, output_mask: str | None, report: str | None, progress: Progress):
        from ..core.sentinelhub_source import SH_BASE_URL, download_sentinelhub

        client = self.oauth_client(self.parameterAsString(parameters, self.AUTHCFG, context))
        base_url = self.parameterAsString(parameters, self.SH_BASE_URL, context).strip()
        if base_url and not base_url.startswith(("http://", "https://")):
            raise self.parameter_error(self.SH_BASE_URL, self.tr("give an address like "
                                                                 "https://sh.dataspace.copernicus.eu"))
        common = self._common(parameters, context)
        return download_sentinelhub(client, level, *common["where"], output, output_mask=output_mask,
                                    bands=common["bands"], resolution=common["resolution"],
                                    max_cloud=common["max_cloud"], base_url=base_url or SH_BASE_URL,
                                    max_area_km2=common["max_area"], report_path=report, progress=progress)

    def _stac(self, key: str, level: str, parameters: dict[str, Any], context: QgsProcessingContext,
              output: str, output_mask: str | None, report: str | None, progress: Progress):
        from ..core.download import download
        from ..core.stac import catalogue_for

        with self.about(self.STAC_URL):
            catalogue = catalogue_for(key, self.parameterAsString(parameters, self.STAC_URL, context).strip())
        credentials = self.credentials(self.parameterAsString(parameters, self.AUTHCFG, context))
        if catalogue.needs_account and not credentials:
            raise self.parameter_error(self.AUTHCFG, self.tr(
                "{} needs an account: add its S3 keys as a Basic authentication configuration (access key as user "
                "name, secret key as password) and choose it here").format(catalogue.title))
        common = self._common(parameters, context)
        s3 = CDSE_S3 if key == "cdse" else ES_L1C_S3 if key == "earth_search" and level == "L1C" else None
        return download(catalogue, level, *common["where"], output, output_mask=output_mask, bands=common["bands"],
                        resolution=common["resolution"], max_cloud=common["max_cloud"], credentials=credentials,
                        max_area_km2=common["max_area"], report_path=report,
                        connections=self.parameterAsInt(parameters, self.CONNECTIONS, context), s3_options=s3,
                        progress=progress)

    def _common(self, parameters: dict[str, Any], context: QgsProcessingContext) -> dict[str, Any]:
        """What every route takes: extent and CRS, period, bands, resolution, cloud cover, area limit."""
        start, end = self._date(parameters, self.START, context), self._date(parameters, self.END, context)
        extent_crs = self.parameterAsExtentCrs(parameters, self.EXTENT, context)
        rect = self.parameterAsExtent(parameters, self.EXTENT, context, extent_crs)
        if rect.isNull() or rect.isEmpty():
            raise self.parameter_error(self.EXTENT, self.tr("the extent is empty"))
        if not extent_crs.isValid():
            extent_crs = QgsCoordinateReferenceSystem("EPSG:4326")
        crs = extent_crs.authid() if extent_crs.authid().upper().startswith("EPSG:") else extent_crs.toWkt()
        bands = [b.strip() for b in self.parameterAsString(parameters, self.BANDS, context).split(",") if b.strip()]
        return {"where": ((rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()), crs, start, end),
                "bands": bands, "resolution": self.parameterAsDouble(parameters, self.RESOLUTION, context),
                "max_cloud": self.parameterAsDouble(parameters, self.MAX_CLOUD_COVER, context),
                "max_area": self.parameterAsDouble(parameters, self.MAX_AREA_KM2, context)}

    def _outputs(self, result, feedback: QgsProcessingFeedback, output: str, output_mask: str | None,
                 report: str | None) -> dict[str, Any]:
        summary = result.report
        feedback.pushInfo(self.tr("{} scenes found, {} used ({} fetched, {} reused), {} skipped; {} dates").format(
            summary["found"], len(summary["used"]), len(result.fetched_scenes), len(result.cached_scenes),
            len(summary["skipped"]), len(summary["dates"])))
        outputs: dict[str, Any] = {self.OUTPUT: output, self.DATES: len(summary["dates"])}
        if output_mask:
            outputs[self.OUTPUT_MASK] = output_mask
        if report:
            outputs[self.OUTPUT_REPORT] = report
        return outputs

