"""Realistic synthetic Sentinel-2 L1C time stacks with a known reference map (demo data, benchmarks).

A :class:`SyntheticScene` is a landscape near Ljubljana (UTM 33N, 10 m pixels) observed on
``n_dates`` dates of one year, written as

- ``l1c.tif``: the 13-band L1C time stack (uint16 digital numbers with scale 1e-4, or float32
  top-of-atmosphere reflectance),
- ``reference.tif``: the land-cover reference (uint8, eo-learn legend ids: 1 cultivated land,
  2 forest, 3 grassland, 4 shrubland, 5 water, 8 artificial surface, 9 bareland; 0 = none),
- ``planted_clouds.tif``: the clouds that were planted, one band per date (0 clear,
  1 cloud: opaque or cirrus, 2 cloud shadow),
- ``reference.gpkg`` (optional): the reference as polygons (fields ``LULC_ID``, ``LULC_NAME``).

The landscape: strip fields (cultivated land with winter cereals, maize and spring crops,
meadows that are mown, some bare fields and abandoned shrubland) in long column bands; forest
blobs with a shrubland fringe, mixed conifer/deciduous; a meandering river and a lake; towns.
Each class has top-of-atmosphere spectra built from surface end-members (green vegetation,
canopies, dry vegetation, soils, water, urban, snow) through a simple atmosphere (path
radiance, transmittance, water-vapour band B09, cirrus band B10 blind to the ground), and a
phenology over the year: crops green up and are harvested, deciduous forest loses its leaves
but stays bright in NIR all summer, meadows are mown, snow covers the ground on some winter
dates. Variation per field and date, per pixel (texture, vigour) and per value (noise).

Clouds are smooth blobs of realistic size (hundreds of metres to kilometres) on a subset of
dates with cover from a few percent to almost all; their spectra follow the mean and the
principal components of real opaque clouds (pixels of ``REFERENCE_SCENES.npy`` that s2cloudless
gives a probability above 0.9, when that file is found; built-in values derived the same way
otherwise). Cirrus is streaky, raises the 1375 nm band B10 and hazes all others. Shadows are
the clouds shifted away from the sun (azimuth 155 degrees, elevation from the date).

Everything is a function of global pixel coordinates and the seed (smooth fields are
interpolated from random lattices drawn once for the whole scene; per-pixel noise comes from a
counter-based hash), so any window is generated on its own and equals the same window of the
whole: stacks of any size are written window by window within the memory budget.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_outputs
from ..core.blocks import iter_blocks
from ..core.progress import Progress, ensure_progress
from ..core.sentinel2 import L1C_BANDS, QUANTIFICATION
from ..core.timestack import Grid, StackInfo, StackWriter, Window
from .cover import (  # noqa: F401  (the classes are part of this module's interface)
    ARTIFICIAL,
    BARELAND,
    CLASS_NAMES,
    CLASSES,
    CULTIVATED,
    ENDMEMBERS,
    FOREST,
    GRASSLAND,
    MEMBERS,
    REALISTIC_CLASSES,
    SHRUBLAND,
    VARIANTS,
    WATER,
    WETLAND,
    cover_fractions,
    realistic_cover_fractions,
)
from .noise import ValueNoise, centred, hash32

#: Values of the planted cloud mask.
CLEAR, CLOUD, SHADOW = 0, 1, 2
MASK_NODATA = 255

#: Where ``REFERENCE_SCENES.npy`` is looked for by default: a checkout's ``tests/data`` (the plugin
#: zip leaves tests out, so an installed plugin uses the built-in spectra).
DEFAULT_REFERENCE_SCENES = Path(__file__).resolve().parents[1] / "tests" / "data" / "REFERENCE_SCENES.npy"
#: Sun azimuth (degrees from north) at the ~10:00 UTC overpass over Slovenia.
SUN_AZIMUTH = 155.0
LATITUDE = 46.0

N_BANDS = len(L1C_BANDS)

#: Variants per class of the realistic scene: (almost) every field has its own dates.
REALISTIC_VARIANTS = 192
#: Realistic scene: share of fields (and blobs) labelled with a wrong class in the reference, and
#: of fields whose cover changed after the reference was made.
WRONG_LABEL_SHARE, OUTDATED_SHARE = 0.06, 0.05
#: The wrong label a reference gives each class (the usual mix-ups of photo-interpretation).
_WRONG_LABEL = np.arange(256, dtype=np.uint8)
_WRONG_LABEL[[CULTIVATED, GRASSLAND, SHRUBLAND, FOREST, WETLAND, WATER, ARTIFICIAL, BARELAND]] = (
    GRASSLAND, CULTIVATED, FOREST, SHRUBLAND, GRASSLAND, WETLAND, BARELAND, CULTIVATED)
#: What a field became since the reference: meadows ploughed, fields sown to grass, shrubs
#: cleared, bare land built on.
_CHANGED_TO = np.arange(256, dtype=np.uint8)
_CHANGED_TO[[GRASSLAND, CULTIVATED, SHRUBLAND, BARELAND]] = (CULTIVATED, GRASSLAND, GRASSLAND, ARTIFICIAL)

# ---------------------------------------------------------------- spectra (13 bands, L1C order)
# Atmosphere: TOA = path + transmittance * surface. B09 is the water-vapour band, B10 (1375 nm)
# is absorbed by water vapour: the ground is almost invisible there.
_PATH = np.array([0.085, 0.055, 0.03, 0.018, 0.014, 0.011, 0.009, 0.008, 0.007, 0.004, 0.0008, 0.002, 0.001])
_TRANS = np.array([0.75, 0.8, 0.85, 0.9, 0.9, 0.9, 0.92, 0.92, 0.92, 0.35, 0.003, 0.93, 0.9])
# Cirrus: ice cloud above the water vapour, nearly white, seen in B10; weaker in the SWIR.
_CIRRUS = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0.9, 0.7, 0.5], np.float32)
# Shadow: share of the surface signal lost at full shadow (blue keeps more diffuse light).
_SHADOW_LOSS = np.array([0.45, 0.5, 0.6, 0.65, 0.68, 0.7, 0.72, 0.72, 0.72, 0.72, 0.0, 0.75, 0.75], np.float32)
# Absolute noise (reflectance) per band.
_NOISE = np.array([0.003, 0.002, 0.002, 0.002, 0.002, 0.002, 0.002, 0.002, 0.002, 0.002, 0.0002, 0.002, 0.002],
                  np.float32)
# Built-in opaque-cloud spectra: mean and three principal components (scaled by their standard
# deviation, signed to sum positive) of the 11508 pixels of REFERENCE_SCENES.npy scenes 0 and 1 with an s2cloudless
# probability above 0.9 (what :func:`cloud_spectra` computes when the file is there).
FALLBACK_CLOUD_MEAN = (0.2984, 0.2828, 0.2605, 0.2588, 0.2745, 0.3542, 0.3972, 0.3812, 0.4182, 0.1375, 0.0029,
                       0.3064, 0.2478)
FALLBACK_CLOUD_COMPONENTS = (
    (0.046, 0.053, 0.0515, 0.0573, 0.0535, 0.0453, 0.0439, 0.0395, 0.043, 0.0043, -0.0011, 0.0453, 0.0398),
    (0.0015, -0.0124, -0.0083, -0.0037, 0.001, 0.0046, 0.0068, -0.0061, 0.0083, 0.0074, 0.0004, 0.0045, 0.008),
    (-0.0127, 0.0001, 0.0006, -0.0009, -0.0007, 0.0022, 0.0018, 0.0094, 0.0011, 0.0067, 0.0008, 0.0007, -0.0006),
)


# Point spread (Gaussian sigma in 10 m pixels) of each band by its native resolution: 60 m
# (B01, B09, B10), 10 m (B02, B03, B04, B08), 20 m (the rest); truncated at PSF_HALO pixels.
_PSF_SIGMA = np.array([1.3, 0.45, 0.45, 0.45, 0.9, 0.9, 0.9, 0.45, 0.9, 1.3, 1.3, 0.9, 0.9])
PSF_HALO = 2
_PSF_WEIGHTS = np.exp(-0.5 * (np.arange(-PSF_HALO, PSF_HALO + 1)[None, :] / _PSF_SIGMA[:, None]) ** 2)
_PSF_WEIGHTS = (_PSF_WEIGHTS / _PSF_WEIGHTS.sum(axis=1, keepdims=True)).astype(np.float32)


def point_spread(grown: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Blur ``grown`` ``(13, h + 2 halo, w + 2 halo)`` band by band with the sensor's point spread
    into ``out`` ``(13, h, w)``: pixels along a boundary mix the cover on both sides."""
    h, w = out.shape[1:]
    taps = 2 * PSF_HALO + 1
    weights = _PSF_WEIGHTS[:, :, None, None]
    rows = weights[:, 0] * grown[:, 0:h, :]
    for k in range(1, taps):
        rows += weights[:, k] * grown[:, k:k + h, :]
    np.multiply(weights[:, 0], rows[:, :, 0:w], out=out)
    for k in range(1, taps):
        out += weights[:, k] * rows[:, :, k:k + w]
    return out


def toa(surface: np.ndarray) -> np.ndarray:
    """Top-of-atmosphere reflectance of surface reflectance (last axis: the 13 bands)."""
    return _PATH + _TRANS * surface


def cloud_spectra(reference_scenes: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """Mean ``(13,)`` and principal components ``(3, 13)`` (scaled by their standard deviation) of
    real opaque-cloud spectra: pixels of scenes 0 and 1 of ``REFERENCE_SCENES.npy`` where
    s2cloudless says more than 0.9. Without the file (or s2cloudless), the built-in values."""
    mean, components, source = _cloud_spectra(str(reference_scenes) if reference_scenes else "")
    return mean.copy(), components.copy(), source


@lru_cache(maxsize=4)
def _cloud_spectra(reference_scenes: str) -> tuple[np.ndarray, np.ndarray, str]:
    path = Path(reference_scenes) if reference_scenes else None
    if path is not None and path.is_file():
        try:
            from ..core.cloudmask import CloudDetector
            from ..core.sentinel2 import S2CLOUDLESS_BANDS

            scenes = np.load(path)
            detector = CloudDetector(processing_resolution=None)
            columns = [L1C_BANDS.index(b) for b in S2CLOUDLESS_BANDS]
            pixels = []
            for scene in scenes[:2]:
                rows = scene.reshape(-1, N_BANDS).astype(np.float32)
                probability = detector.probabilities(np.ascontiguousarray(rows[:, columns]))
                pixels.append(rows[probability > 0.9])
            cloudy = np.concatenate(pixels).astype(np.float64)
            if len(cloudy) >= 100:
                values, vectors = np.linalg.eigh(np.cov(cloudy.T))
                order = np.argsort(values)[::-1][:3]
                components = (vectors[:, order] * np.sqrt(np.maximum(values[order], 0))).T
                # a fixed sign, so the result does not depend on the eigen-solver's choice
                components *= np.where(components.sum(axis=1, keepdims=True) < 0, -1.0, 1.0)
                return cloudy.mean(axis=0), components, f"{len(cloudy)} real cloudy pixels of {path.name}"
        except (ValueError, OSError, ImportError):
            pass
    return np.array(FALLBACK_CLOUD_MEAN), np.array(FALLBACK_CLOUD_COMPONENTS), "built-in cloud spectra"


def solar_elevation(doy: np.ndarray | float, latitude: float = LATITUDE) -> np.ndarray:
    """Approximate sun elevation (degrees) at the ~10:00 UTC overpass (about an hour before
    local noon)."""
    declination = 23.44 * np.sin(2 * np.pi * (np.asarray(doy, float) - 81) / 365.0)
    return 90.0 - latitude + declination - 8.0


# ---------------------------------------------------------------- the scene
@dataclass(frozen=True)
class SyntheticOutputs:
    """Paths written by :meth:`SyntheticScene.write` and what was planted."""

    l1c: Path
    reference: Path
    cloud_mask: Path
    polygons: Path | None
    dates: tuple[datetime, ...]
    cloud_fraction: tuple[float, ...]  # planted cloud (1) share of each date
    cloud_source: str


@dataclass(frozen=True)
class SyntheticScene:
    """Settings of a synthetic scene; the same settings always give the same pixels.

    ``origin`` is the upper-left corner in ``crs`` (default EPSG:32633, central Slovenia),
    ``resolution`` the pixel size in metres. ``digital_numbers`` writes uint16 L1C digital numbers
    (reflectance x 10000, scale 1e-4 in the metadata) instead of float32 reflectance. ``clouds``
    turns clouds, cirrus and shadows off (snow stays). ``reference_scenes``: the real scenes
    the cloud spectra are learnt from (``None``: built-in spectra).

    ``realistic`` makes the scene as hard as real mapping (the demo's scene): overlapping
    phenologies (:func:`realistic_cover_fractions`), wetlands on the shores, fields down to 3 px
    wide, a brightness per field, mixed pixels along every boundary (each band blurred by the
    point spread of its native 10, 20 or 60 m resolution) and a reference with mistakes: a few
    percent of its polygons wrongly labelled (a plausible wrong class) and some outdated (the
    land changed after the reference was made: meadows ploughed, fields sown to grass, shrubs
    cleared, forest clear-cut). :meth:`truth` is the land cover as imaged, :meth:`reference` the
    labels written to ``reference.tif``.
    """

    height: int = 500
    width: int = 500
    n_dates: int = 68
    year: int = 2019
    seed: int = 0
    digital_numbers: bool = True
    clouds: bool = True
    resolution: float = 10.0
    origin: tuple[float, float] = (455000.0, 5105000.0)
    crs: str = "EPSG:32633"
    reference_scenes: str | Path | None = field(default=DEFAULT_REFERENCE_SCENES)
    realistic: bool = False

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise ValueError(f"the scene needs at least one pixel, got {self.width} x {self.height}")
        if not 1 <= self.n_dates <= 146:
            raise ValueError(f"n_dates must be from 1 to 146 (two orbits over a year), got {self.n_dates}")
        if self.resolution <= 0:
            raise ValueError(f"the resolution must be positive, got {self.resolution}")

    # -- structure ---------------------------------------------------------------------------
    def _rng(self, *tag: int) -> np.random.Generator:
        return np.random.default_rng([int(self.seed) & 0xFFFFFFFF, *tag])

    @cached_property
    def grid(self) -> Grid:
        from rasterio.crs import CRS

        x, y = self.origin
        r = float(self.resolution)
        return Grid(self.width, self.height, CRS.from_user_input(self.crs).to_wkt(), (r, 0.0, x, 0.0, -r, y))

    @cached_property
    def dates(self) -> tuple[datetime, ...]:
        """Sentinel-2A/B revisits every 5 days (plus a neighbouring orbit 2 days later when more
        than 73 dates are asked for), a subset of ``n_dates`` of them, at about 10:00 UTC."""
        rng = self._rng(1)
        start = datetime(self.year, 1, 1)
        days_in_year = (datetime(self.year + 1, 1, 1) - start).days
        phase = int(rng.integers(0, 5))
        candidates = [d for d in range(phase, days_in_year, 5)]
        if self.n_dates > len(candidates):
            candidates += [d + 2 for d in candidates if d + 2 < days_in_year]
        chosen = np.sort(rng.choice(len(candidates), self.n_dates, replace=False))
        days = sorted(candidates[i] for i in chosen)
        seconds = rng.integers(0, 720, self.n_dates)
        return tuple(start + timedelta(days=d, hours=10, seconds=int(s)) for d, s in zip(days, seconds))

    @cached_property
    def day_of_year(self) -> np.ndarray:
        return np.array([d.timetuple().tm_yday for d in self.dates], float)

    def stack_info(self) -> StackInfo:
        settings = (f"seed={self.seed} size={self.width}x{self.height} dates={self.n_dates} year={self.year} "
                    f"clouds={self.clouds}" + (" realistic=True" if self.realistic else ""))
        tags = {"EOLULC_SYNTHETIC": settings}
        if self.digital_numbers:
            return StackInfo(self.grid, self.dates, L1C_BANDS, "uint16", nodata=0,
                             scales=(1.0 / QUANTIFICATION,) * N_BANDS, tags=tags)
        return StackInfo(self.grid, self.dates, L1C_BANDS, "float32", nodata=float("nan"), tags=tags)

    @cached_property
    def _shadow_offsets(self) -> np.ndarray:
        """``(dates, 2)`` integer pixel offsets (rows, cols) from a shadow to the cloud casting it."""
        rng = self._rng(2)
        height_m = rng.uniform(400, 1200, self.n_dates)
        elevation = np.radians(np.clip(solar_elevation(self.day_of_year), 15, 80))
        distance = np.minimum(height_m / np.tan(elevation) / self.resolution, 150)
        azimuth = math.radians(SUN_AZIMUTH)
        # the cloud is towards the sun: south (down, +rows) and east (+cols) for azimuth 155
        return np.stack([np.round(-math.cos(azimuth) * distance), np.round(math.sin(azimuth) * distance)],
                        axis=1).astype(np.int64)

    @cached_property
    def _weather(self) -> dict[str, np.ndarray]:
        """Per date: cloud cover target, cirrus cover and strength, snow cover."""
        rng = self._rng(3)
        n = self.n_dates
        doy = self.day_of_year
        u = rng.random(n)
        cover = np.where(u < 0.35, 0.0, np.where(u < 0.65, rng.uniform(0.03, 0.3, n),
                         np.where(u < 0.87, rng.uniform(0.3, 0.7, n), rng.uniform(0.7, 0.97, n))))
        winter = (doy <= 59) | (doy >= 335)
        snow = np.where(winter & (rng.random(n) < 0.5), rng.uniform(0.4, 1.0, n), 0.0)
        cirrus = np.where((rng.random(n) < 0.2) & (snow == 0), rng.uniform(0.1, 0.5, n), 0.0)
        cirrus_peak = rng.uniform(0.08, 0.15, n)
        cirrus_rows = rng.random(n) < 0.5
        if not self.clouds:
            cover = np.zeros(n)
            cirrus = np.zeros(n)
        return {"cover": cover, "snow": snow, "cirrus": cirrus, "cirrus_peak": cirrus_peak,
                "cirrus_rows": cirrus_rows}

    @cached_property
    def _fields(self) -> dict:
        """Everything drawn once for the whole scene: lattices of the smooth fields, parcels,
        river, lake, thresholds, spectra tables."""
        h, w = self.height, self.width
        rng = self._rng(4)
        out: dict = {}
        land = [(256, 256, 1.0), (128, 128, 0.5), (64, 64, 0.3), (32, 32, 0.15), (12, 12, 0.06)]
        out["forest"] = ValueNoise(rng, h, w, land)
        out["urban"] = ValueNoise(rng, h, w, [(192, 192, 1.0), (96, 96, 0.5), (40, 40, 0.25), (16, 16, 0.1)])
        out["variant"] = ValueNoise(rng, h, w, [(48, 48, 1.0), (16, 16, 0.3)])
        out["texture"] = ValueNoise(rng, h, w, [(8, 8, 1.0), (3, 3, 0.5)])
        out["lake"] = ValueNoise(rng, h, w, [(40, 40, 1.0), (16, 16, 0.4)])
        # shrub fringe, forest (a wider fringe on the realistic scene)
        out["forest_levels"] = out["forest"].quantile(h, w, [0.55 if self.realistic else 0.60, 0.66])
        out["urban_level"] = float(out["urban"].quantile(h, w, 0.92))
        # strip fields: column bands 40..120 px wide, each cut into strips 8..40 px high (realistic:
        # 24..96 px bands, 3..30 px strips: fields near the resolution)
        widths, heights = ((24, 97), (3, 31)) if self.realistic else ((40, 121), (8, 41))
        band_edges = np.concatenate([[0], np.cumsum(rng.integers(*widths, size=w // widths[0] + 2))])
        out["band_edges"] = band_edges
        n_strips = h // heights[0] + 2
        out["strip_edges"] = np.concatenate(
            [np.zeros((len(band_edges), 1), np.int64),
             np.cumsum(rng.integers(*heights, size=(len(band_edges), n_strips)), axis=1)], axis=1)
        # river: meandering centre column per row, 3..6 px half width
        rows = np.arange(h, dtype=np.float64)
        centre = rng.uniform(0.15, 0.85) * w
        for wavelength, amplitude in ((rng.uniform(300, 700), rng.uniform(30, 80)),
                                      (rng.uniform(80, 200), rng.uniform(5, 20))):
            centre = centre + amplitude * np.sin(2 * np.pi * rows / wavelength + rng.uniform(0, 2 * np.pi))
        out["river_centre"] = centre.astype(np.float32)
        out["river_half_width"] = np.float32(rng.uniform(3, 6))
        # lake: an ellipse with a noisy shore
        out["lake_centre"] = (rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w)
        out["lake_radius"] = (rng.uniform(25, 60), rng.uniform(25, 60))
        if self.realistic:
            # wetlands along the shores; clear-cuts in the forest (top 4 % of their field)
            out["wetland"] = ValueNoise(rng, h, w, [(30, 30, 1.0), (10, 10, 0.4)])
            out["cuts"] = ValueNoise(rng, h, w, [(14, 14, 1.0), (5, 5, 0.3)])
            out["cuts_level"] = float(out["cuts"].quantile(h, w, 0.96))
        # spectra: TOA of each (class, variant, date), and the direction of a greener pixel
        doy = self.day_of_year
        members = np.stack([ENDMEMBERS[k] for k in MEMBERS])
        classes, n_variants = (REALISTIC_CLASSES, REALISTIC_VARIANTS) if self.realistic else (CLASSES, VARIANTS)
        table = np.zeros((len(classes) * n_variants, self.n_dates, N_BANDS))
        vigour = np.zeros_like(table)
        greener = _TRANS * (ENDMEMBERS["green"] - ENDMEMBERS["dry"])
        green_index, broadleaf_index = MEMBERS.index("green"), MEMBERS.index("broadleaf")
        for ci, cls in enumerate(classes):
            for v in range(n_variants):
                if self.realistic:
                    fractions = realistic_cover_fractions(cls, v, n_variants, doy, self._rng(8, cls, v))
                else:
                    fractions = cover_fractions(cls, v, doy, self._rng(5, cls, v))
                dates_rng = self._rng(6, cls, v)
                moisture = 1 - 0.08 * dates_rng.random(self.n_dates)  # wet soil after rain is darker
                surface = fractions @ members
                surface *= moisture[:, None]
                table[ci * n_variants + v] = toa(surface)
                active = fractions[:, green_index] + (fractions[:, broadleaf_index] if cls == FOREST else 0)
                vigour[ci * n_variants + v] = 0.12 * np.minimum(active, 1 - active)[:, None] * 2 * greener
        # (date, band, class-variant), for band-first look-ups
        out["table_bands"] = np.ascontiguousarray(table.transpose(1, 2, 0)).astype(np.float32)
        out["vigour_bands"] = np.ascontiguousarray(vigour.transpose(1, 2, 0)).astype(np.float32)
        return out

    @cached_property
    def _clouds(self) -> dict:
        """Per-date cloud, cirrus and snow lattices and their thresholds."""
        h, w = self.height, self.width
        weather = self._weather
        pad = int(np.abs(self._shadow_offsets).max()) + 1 if self.n_dates else 1
        out = {"cloud": {}, "cirrus": {}, "snow": {}, "pca": {}}
        for t in range(self.n_dates):
            rng = self._rng(7, t)
            if weather["cover"][t] > 0:
                scale = rng.uniform(0.6, 1.6)  # small cumulus .. large fields
                noise = ValueNoise(rng, h, w, [(160 * scale, 160 * scale, 1.0), (80 * scale, 80 * scale, 0.55),
                                                (36 * scale, 36 * scale, 0.3), (14, 14, 0.12), (6, 6, 0.05)], pad)
                level = float(noise.quantile(h, w, 1 - weather["cover"][t]))
                out["cloud"][t] = (noise, level)
                # weights of the three principal components of real cloud spectra
                out["pca"][t] = tuple(ValueNoise(rng, h, w, [(cell, cell, 0.8), (cell / 3, cell / 3, 0.4)])
                                      for cell in (60, 40, 40))
            if weather["cirrus"][t] > 0:
                long, short = rng.uniform(150, 300), rng.uniform(15, 35)
                cells = (short, long) if weather["cirrus_rows"][t] else (long, short)
                noise = ValueNoise(rng, h, w, [(cells[0], cells[1], 1.0), (cells[0] / 2, cells[1] / 2, 0.4),
                                                (6, 6, 0.08)])
                out["cirrus"][t] = (noise, float(noise.quantile(h, w, 1 - weather["cirrus"][t])))
            if weather["snow"][t] > 0:
                noise = ValueNoise(rng, h, w, [(120, 120, 1.0), (40, 40, 0.4), (10, 10, 0.15)])
                out["snow"][t] = (noise, float(noise.quantile(h, w, 1 - weather["snow"][t])))
        out["mean"], out["components"], out["source"] = cloud_spectra(self.reference_scenes)
        return out

    # -- pixels --------------------------------------------------------------------------------
    def _landscape(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, ...]:
        """Of the pixels at global ``rows`` x ``cols``: the true class ids, the reference's, the
        (class, variant) table index, a per-pixel uint32 hash and a per-field brightness gain
        (``None`` on the classic scene, where reference and truth are the same array)."""
        h, w = len(rows), len(cols)
        f = self._fields
        # parcels: column band j, strip i
        band = np.searchsorted(f["band_edges"], cols, side="right") - 1
        parcel = np.empty((h, w), np.int64)
        for j in np.unique(band):
            strips = np.searchsorted(f["strip_edges"][j], rows, side="right") - 1
            parcel[:, band == j] = (j * 100003 + strips)[:, None]
        parcel_hash = hash32((parcel.astype(np.uint32) * np.uint32(2654435761)) ^ np.uint32(self.seed * 7919 + 17))
        pick = (parcel_hash >> np.uint32(8)).astype(np.float32) / np.float32(2 ** 24)
        classes = np.full((h, w), CULTIVATED, np.uint8)
        for share, cls in zip((0.5, 0.84, 0.94) if self.realistic else (0.52, 0.82, 0.89),
                              (GRASSLAND, SHRUBLAND, BARELAND)):
            classes[pick >= share] = cls
        forest = f["forest"](rows, cols)
        shrub_level, forest_level = f["forest_levels"]
        classes[forest > shrub_level] = SHRUBLAND
        classes[forest > forest_level] = FOREST
        urban = f["urban"](rows, cols) > f["urban_level"]
        classes[urban & (pick < 0.85)] = ARTIFICIAL
        classes[urban & (pick >= 0.85)] = GRASSLAND  # parks
        # water: river and lake
        distance = np.abs(cols[None, :].astype(np.float32) - f["river_centre"][rows][:, None])
        water = distance <= f["river_half_width"]
        (cy, cx), (ry, rx) = f["lake_centre"], f["lake_radius"]
        dy = (rows.astype(np.float32) - np.float32(cy)) / np.float32(ry)
        dx = (cols.astype(np.float32) - np.float32(cx)) / np.float32(rx)
        shore = dy[:, None] ** 2 + dx[None, :] ** 2
        water |= shore < 1 + 0.35 * f["lake"](rows, cols)
        if self.realistic:  # marshes around the lake and in patches along the river
            wet = f["wetland"](rows, cols)
            marsh = (shore < 1.6 + 0.6 * wet) | ((distance <= f["river_half_width"] + 3 + 8 * wet) & (wet > 0.2))
            classes[marsh & ~urban] = WETLAND
        classes[water] = WATER
        # variants: per parcel on fields, per smooth blob elsewhere
        n_variants = REALISTIC_VARIANTS if self.realistic else VARIANTS
        blob = np.floor((f["variant"](rows, cols) + 10) * 3).astype(np.int64).astype(np.uint32)
        blob_hash = hash32(blob ^ np.uint32(self.seed * 31 + 5))
        blobs = np.isin(classes, (FOREST, WATER, ARTIFICIAL, WETLAND))
        index = (rows[:, None] * self.width + cols[None, :]).astype(np.uint32)
        pixel_hash = hash32(index ^ np.uint32((self.seed * 0x9E3779B1) & 0xFFFFFFFF))
        reference, gain = classes, None
        if self.realistic:
            # a reference's polygons: fields, and blobs cut by the field grid
            classes, reference, gain = self._realistic_changes(rows, cols, classes, np.where(
                blobs, hash32(blob_hash ^ parcel_hash), parcel_hash))
            blobs = np.isin(classes, (FOREST, WATER, ARTIFICIAL, WETLAND))
        variant = np.where(blobs, (blob_hash % np.uint32(n_variants)).astype(np.int64),
                           (parcel_hash % np.uint32(n_variants)).astype(np.int64))
        slot = np.zeros(256, np.int64)
        table_classes = REALISTIC_CLASSES if self.realistic else CLASSES
        slot[list(table_classes)] = np.arange(len(table_classes))
        cv = slot[classes] * n_variants + variant
        return classes, reference, cv, pixel_hash, gain

    def _realistic_changes(self, rows: np.ndarray, cols: np.ndarray, planned: np.ndarray,
                           unit_hash: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The true cover, the reference and a brightness gain per field or blob ("unit"): 6 % of
        the units are labelled with a plausible wrong class, 5 % of the fields changed after the
        reference was made (outdated), and clear-cuts opened in the forest (mostly regrowing shrubs)."""
        draw = hash32(unit_hash ^ np.uint32(0x5BD1E995))
        u = (draw >> np.uint32(8)).astype(np.float32) / np.float32(2 ** 24)
        truth, reference = planned.copy(), planned.copy()
        wrong = u < WRONG_LABEL_SHARE
        reference[wrong] = _WRONG_LABEL[planned[wrong]]
        outdated = (u >= WRONG_LABEL_SHARE) & (u < WRONG_LABEL_SHARE + OUTDATED_SHARE)
        truth[outdated] = _CHANGED_TO[planned[outdated]]
        cuts = (planned == FOREST) & (self._fields["cuts"](rows, cols) > self._fields["cuts_level"])
        truth[cuts] = np.where(u[cuts] < 0.8, SHRUBLAND, BARELAND)  # regrowth or fresh cut
        gain = 1 + np.float32(0.07) * centred(hash32(draw ^ np.uint32(0x27D4EB2F)))
        return truth, reference, gain

    def reference(self, window: Window | None = None) -> np.ndarray:
        """The reference class raster (uint8) of a window (the whole scene if ``None``): what
        ``reference.tif`` holds."""
        return self._landscape(*self._axes(window))[1]

    def truth(self, window: Window | None = None) -> np.ndarray:
        """The land cover as imaged (uint8): the reference without its mistakes (equal to it on
        the classic scene)."""
        return self._landscape(*self._axes(window))[0]

    def _axes(self, window: Window | None, halo: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Global rows and columns of a window grown by ``halo`` (edge pixels repeated outside)."""
        row, col, h, w = window or (0, 0, self.height, self.width)
        rows = np.arange(row - halo, row + h + halo, dtype=np.int64)
        cols = np.arange(col - halo, col + w + halo, dtype=np.int64)
        if halo:
            rows, cols = np.clip(rows, 0, self.height - 1), np.clip(cols, 0, self.width - 1)
        return rows, cols

    def block(self, window: Window | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(l1c, planted, reference)`` of a window: the L1C block ``(time, h, w, 13)`` in the
        stack's data type, the planted cloud mask ``(time, h, w)`` (0 clear, 1 cloud or cirrus,
        2 shadow) and the reference ``(h, w)``."""
        window = window or (0, 0, self.height, self.width)
        row, col, h, w = window
        rows, cols = self._axes(window)
        # the realistic scene's surface is blurred by the sensor's point spread: made with a halo
        halo = PSF_HALO if self.realistic else 0
        grown_rows, grown_cols = self._axes(window, halo)
        truth, reference, cv, grown_hash, gain = self._landscape(grown_rows, grown_cols)
        inner = (slice(halo, halo + h), slice(halo, halo + w))
        classes, reference, pixel_hash = truth[inner], reference[inner], grown_hash[inner]
        f = self._fields
        clouds = self._clouds
        # static per-pixel texture: brightness and vegetation vigour
        texture = f["texture"](grown_rows, grown_cols)
        brightness = 1 + 0.025 * texture + 0.02 * centred(hash32(grown_hash ^ np.uint32(0xB5297A4D)))
        vigour = 0.6 * texture + 0.8 * centred(hash32(grown_hash ^ np.uint32(0x68E31DA4)))
        if gain is not None:  # realistic: fields differ, and so do the pixels within them (weeds, soil patches)
            brightness *= gain
            brightness += np.float32(0.02) * centred(hash32(grown_hash ^ np.uint32(0x1B873593)))
            vigour *= np.float32(2.0)
        snow_weight = np.select([classes == WATER, classes == FOREST, classes == ARTIFICIAL, classes == WETLAND],
                                [0.0, 0.35, 0.7, 0.5], 1.0).astype(np.float32)
        # band-first working layout (bands, h, w): per-pixel factors broadcast over long rows
        column = (slice(None), None, None)
        snow_toa = toa(ENDMEMBERS["snow"]).astype(np.float32)[column]
        path = _PATH.astype(np.float32)[column]
        shadow_loss = _SHADOW_LOSS[column]
        cirrus_shape = _CIRRUS[column]
        noise_sigma = _NOISE[column]
        mean = clouds["mean"].astype(np.float32)[column]
        components = clouds["components"].astype(np.float32)[(slice(None),) + column]
        band_keys = (np.arange(N_BANDS, dtype=np.uint32) * np.uint32(0x9E3779B9))[column]
        table = f["table_bands"]
        vigour_table = f["vigour_bands"]
        dtype = np.uint16 if self.digital_numbers else np.float32
        out = np.empty((self.n_dates, N_BANDS, h, w), dtype)
        planted = np.zeros((self.n_dates, h, w), np.uint8)
        x = np.empty((N_BANDS, h, w), np.float32)
        work = np.empty((N_BANDS, h, w), np.float32)
        surface, surface_work = (x, work) if not halo else (np.empty((N_BANDS,) + cv.shape, np.float32),
                                                            np.empty((N_BANDS,) + cv.shape, np.float32))
        for t in range(self.n_dates):
            np.take(table[t], cv, axis=1, out=surface)
            np.take(vigour_table[t], cv, axis=1, out=surface_work)
            surface_work *= vigour
            surface += surface_work
            surface *= brightness
            if halo:
                point_spread(surface, x)
            if t in clouds["snow"]:
                noise, level = clouds["snow"][t]
                cover = np.clip((noise(rows, cols) - level) / np.float32(0.25), 0, 1) * snow_weight
                np.subtract(snow_toa, x, out=work)
                work *= cover
                x += work
            if t in clouds["cloud"]:
                noise, level = clouds["cloud"][t]
                dr, dc = self._shadow_offsets[t]
                shade = np.clip((noise(rows + dr, cols + dc) - level) / np.float32(0.06), 0, 1)
                np.subtract(x, path, out=work)
                work *= shadow_loss
                work *= shade
                x -= work
                planted[t][shade >= 0.5] = SHADOW
                alpha = np.clip((noise(rows, cols) - level) / np.float32(0.06), 0, 1)
                if alpha.any():
                    work[...] = mean
                    for component, pca in zip(components, clouds["pca"][t]):
                        work += component * np.clip(pca(rows, cols), -1.8, 1.8)
                    work -= x
                    work *= alpha
                    x += work
                planted[t][alpha >= 0.5] = CLOUD
            if t in clouds["cirrus"]:
                noise, level = clouds["cirrus"][t]
                strength = np.clip((noise(rows, cols) - level) / np.float32(0.05), 0, 1)
                thickness = strength * np.float32(self._weather["cirrus_peak"][t])
                x *= 1 - thickness
                x += thickness * cirrus_shape
                planted[t][strength >= 0.5] = CLOUD
            # noise: relative and absolute, per value
            keys = pixel_hash + (band_keys + np.uint32((t * 0x85EBCA6B) & 0xFFFFFFFF))
            np.multiply(x, np.float32(0.01), out=work)
            work += noise_sigma
            work *= centred(hash32(keys))
            x += work
            if self.digital_numbers:
                x *= np.float32(QUANTIFICATION)
                np.rint(x, out=x)
                np.maximum(x, np.float32(1), out=x)
                np.minimum(x, np.float32(65535), out=x)
            else:
                np.maximum(x, np.float32(0.0001), out=x)
            out[t] = x
        out = out.transpose(0, 2, 3, 1)
        return out, planted, reference

    # -- files -------------------------------------------------------------------------------
    def write(self, folder: str | Path, polygons: bool = False, budget_bytes: int | None = None,
              progress: Progress | None = None) -> SyntheticOutputs:
        """Write ``l1c.tif``, ``reference.tif``, ``planted_clouds.tif`` (and ``reference.gpkg``)
        into ``folder``, window by window within ``budget_bytes``; all files or none."""
        progress = ensure_progress(progress)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        info = self.stack_info()
        mask_info = StackInfo(self.grid, self.dates, ("CLM",), "uint8", nodata=MASK_NODATA,
                              tags={"EOLULC_PLANTED": "0 clear, 1 cloud (opaque or cirrus), 2 cloud shadow"})
        reference_info = StackInfo(self.grid, (None,), ("LULC",), "uint8", nodata=0)
        item = np.dtype(info.dtype).itemsize
        # the block, the writer's copy of it, the planted mask and working arrays
        bytes_per_pixel = self.n_dates * (2 * N_BANDS * item + 2) + N_BANDS * 4 * 4 + 128
        counts = np.zeros(self.n_dates, np.int64)
        paths = [folder / "l1c.tif", folder / "reference.tif", folder / "planted_clouds.tif"]
        gpkg = folder / "reference.gpkg" if polygons else None
        progress.log(f"Synthetic scene: {self.width} x {self.height} px, {self.n_dates} dates of {self.year}, "
                     f"{self._clouds['source']}.")
        import rasterio

        # GDAL compresses in worker threads while the next block is generated; its cache is bounded too
        with atomic_outputs(paths) as (l1c_path, reference_path, mask_path), \
                rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS", GDAL_CACHEMAX=256):
            with StackWriter(str(l1c_path), info) as l1c, StackWriter(str(reference_path), reference_info) as ref, \
                    StackWriter(str(mask_path), mask_info) as mask:
                for block in iter_blocks(self.height, self.width, bytes_per_pixel, budget_bytes,
                                         progress=progress.scaled(0, 0.95) if polygons else progress):
                    data, planted, classes = self.block(block.window)
                    l1c.write(data, block.window)
                    mask.write(planted[..., None], block.window)
                    ref.write(classes[None, :, :, None], block.window)
                    counts += np.count_nonzero(planted == CLOUD, axis=(1, 2))
        if gpkg is not None:
            write_polygons(paths[1], gpkg)
            progress.report(1.0)
        fraction = tuple(float(c) / (self.width * self.height) for c in counts)
        return SyntheticOutputs(paths[0], paths[1], paths[2], gpkg, self.dates, fraction, self._clouds["source"])


def write_polygons(reference_raster: str | Path, gpkg: str | Path) -> Path:
    """The reference raster as polygons in a GeoPackage (fields ``LULC_ID``, ``LULC_NAME``)."""
    import rasterio
    from osgeo import ogr, osr
    from rasterio.features import shapes

    gpkg = Path(gpkg)
    with rasterio.open(reference_raster) as ds:
        classes = ds.read(1)
        transform, crs = ds.transform, ds.crs
    with atomic_outputs([gpkg]) as (temporary,):
        driver = ogr.GetDriverByName("GPKG")
        source = driver.CreateDataSource(str(temporary))
        srs = osr.SpatialReference()
        srs.ImportFromWkt(crs.to_wkt())
        layer = source.CreateLayer("LULC", srs, ogr.wkbPolygon)
        layer.CreateField(ogr.FieldDefn("LULC_ID", ogr.OFTInteger))
        layer.CreateField(ogr.FieldDefn("LULC_NAME", ogr.OFTString))
        layer.StartTransaction()
        for geometry, value in shapes(classes, mask=classes > 0, transform=transform, connectivity=4):
            feature = ogr.Feature(layer.GetLayerDefn())
            feature.SetField("LULC_ID", int(value))
            feature.SetField("LULC_NAME", CLASS_NAMES.get(int(value), str(int(value))))
            feature.SetGeometry(ogr.CreateGeometryFromJson(json.dumps(geometry)))
            layer.CreateFeature(feature)
        layer.CommitTransaction()
        source = None  # close
    return gpkg


def make_scene_stack(folder: str | Path, size: tuple[int, int] = (500, 500), n_dates: int = 68, year: int = 2019,
                     seed: int = 0, digital_numbers: bool = True, polygons: bool = False,
                     progress: Progress | None = None, **settings) -> SyntheticOutputs:
    """Shortcut: ``SyntheticScene(height, width, n_dates, year, seed, ...).write(folder)``."""
    scene = SyntheticScene(height=size[0], width=size[1], n_dates=n_dates, year=year, seed=seed,
                           digital_numbers=digital_numbers, **settings)
    return scene.write(folder, polygons=polygons, progress=progress)
