"""Land-cover classes of the synthetic scenes: surface end-members and each class's cover over
the year (which end-members, in what shares, date by date).

Two sets of phenologies: :func:`cover_fractions` (the classic scene: classes that a classifier
separates almost perfectly) and :func:`realistic_cover_fractions` (the demo's scene: classes
that overlap as they do on real fields, so the map confuses grassland with cultivated land,
shrubland with forest, wetlands with water and grassland).
"""

from __future__ import annotations

import numpy as np

CULTIVATED, FOREST, GRASSLAND, SHRUBLAND, WATER, WETLAND, ARTIFICIAL, BARELAND = 1, 2, 3, 4, 5, 6, 8, 9
#: The classes of the classic scene (eo-learn legend ids).
CLASSES = (CULTIVATED, FOREST, GRASSLAND, SHRUBLAND, WATER, ARTIFICIAL, BARELAND)
#: The classes of the realistic scene: the classic ones and wetlands.
REALISTIC_CLASSES = CLASSES + (WETLAND,)
CLASS_NAMES = {
    CULTIVATED: "cultivated land", FOREST: "forest", GRASSLAND: "grassland", SHRUBLAND: "shrubland",
    WATER: "water", WETLAND: "wetlands", ARTIFICIAL: "artificial surface", BARELAND: "bareland",
}
VARIANTS = 16  # spectral/phenological variants per class of the classic scene

# Surface reflectance end-members.
ENDMEMBER_SPECTRA = {
    "green": [0.02, 0.03, 0.07, 0.03, 0.10, 0.30, 0.40, 0.42, 0.44, 0.44, 0.0, 0.20, 0.09],
    "broadleaf": [0.015, 0.025, 0.045, 0.022, 0.07, 0.22, 0.29, 0.30, 0.32, 0.32, 0.0, 0.13, 0.05],
    "conifer": [0.012, 0.02, 0.035, 0.018, 0.05, 0.14, 0.18, 0.19, 0.20, 0.20, 0.0, 0.09, 0.035],
    "dry": [0.05, 0.06, 0.09, 0.12, 0.15, 0.19, 0.22, 0.24, 0.26, 0.27, 0.0, 0.34, 0.25],
    "soil": [0.06, 0.07, 0.10, 0.14, 0.16, 0.18, 0.20, 0.21, 0.22, 0.23, 0.0, 0.30, 0.26],
    "bright_soil": [0.12, 0.14, 0.18, 0.24, 0.26, 0.28, 0.30, 0.31, 0.32, 0.33, 0.0, 0.42, 0.38],
    "water": [0.05, 0.05, 0.05, 0.03, 0.02, 0.012, 0.01, 0.008, 0.007, 0.005, 0.0, 0.003, 0.002],
    "urban": [0.10, 0.11, 0.13, 0.15, 0.16, 0.17, 0.18, 0.19, 0.20, 0.20, 0.0, 0.24, 0.21],
    "bright_urban": [0.2, 0.22, 0.25, 0.27, 0.28, 0.29, 0.3, 0.31, 0.31, 0.31, 0.0, 0.33, 0.3],
    "snow": [0.90, 0.92, 0.91, 0.88, 0.86, 0.84, 0.82, 0.78, 0.76, 0.6, 0.0, 0.10, 0.06],
}
ENDMEMBERS = {k: np.array(v) for k, v in ENDMEMBER_SPECTRA.items()}
#: The end-members' names, in the order of the columns of the cover fractions.
MEMBERS = tuple(ENDMEMBERS)


def logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


def cover_fractions(cls: int, variant: int, doy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Surface end-member fractions ``(dates, members)`` of one class variant (float64, rows sum to 1);
    members are the ``MEMBERS``."""
    names = MEMBERS
    f = {name: np.zeros(doy.shape) for name in names}
    lg = logistic
    if cls == CULTIVATED:
        crop = variant % 3  # 0 winter cereal, 1 maize, 2 spring crop / vegetables
        soil_bright = rng.uniform(0.0, 0.5)
        if crop == 0:
            sos, eos, harvest = rng.normal(85, 8), rng.normal(165, 7), rng.normal(192, 6)
            sowing = rng.normal(290, 8)
            green = 0.22 + 0.68 * lg((doy - sos) / 8) - 0.9 * lg((doy - eos) / 6)
            green = np.clip(green, 0, 1)
            green = np.where(doy > harvest, 0.25 * lg((doy - sowing - 20) / 10), green)
            dry = np.where((doy >= eos - 10) & (doy <= harvest), np.clip(0.9 - green, 0, 1), 0.0)
            dry = np.where((doy > harvest) & (doy < harvest + 30), 0.5, dry)  # stubble
        elif crop == 1:
            sos, eos, harvest = rng.normal(160, 8), rng.normal(245, 8), rng.normal(272, 7)
            green = np.clip(0.92 * (lg((doy - sos) / 9) - lg((doy - eos) / 7)), 0, 1)
            dry = np.where((doy >= sos + 40) & (doy <= harvest), np.clip(0.85 - green, 0, 1), 0.0)
            green = np.where(doy > harvest, 0.0, green)
            dry = np.where((doy > harvest) & (doy < harvest + 40), 0.4, dry)
        else:
            sos, eos, harvest = rng.normal(115, 8), rng.normal(200, 8), rng.normal(215, 6)
            green = np.clip(0.88 * (lg((doy - sos) / 7) - lg((doy - eos) / 6)), 0, 1)
            dry = np.where((doy >= eos - 5) & (doy <= harvest), np.clip(0.8 - green, 0, 1), 0.0)
            green = np.where(doy > harvest, 0.0, green)
        f["green"] = green
        f["dry"] = dry
        rest = np.clip(1 - green - dry, 0, 1)
        f["bright_soil"] = rest * soil_bright
        f["soil"] = rest * (1 - soil_bright)
    elif cls == FOREST:
        conifer = variant / (VARIANTS - 1) * 0.9 + 0.05
        leaves = lg((doy - rng.normal(112, 4)) / 6) - lg((doy - rng.normal(295, 5)) / 7)
        f["conifer"] = np.full(doy.shape, conifer * 0.95)
        deciduous = 1 - conifer
        f["broadleaf"] = deciduous * (0.3 + 0.65 * leaves)
        f["dry"] = deciduous * 0.5 * (1 - leaves) + conifer * 0.05
        f["soil"] = deciduous * (0.2 - 0.15 * leaves)
    elif cls == GRASSLAND:
        green = 0.35 + 0.55 * (lg((doy - rng.normal(85, 6)) / 10) - lg((doy - rng.normal(300, 8)) / 12))
        for cut in np.cumsum(rng.uniform(40, 60, size=rng.integers(1, 4))) + rng.normal(125, 8):
            after = np.clip(doy - cut, 0, None)
            green = green - np.where(doy >= cut, 0.4 * np.exp(-after / 14.0), 0.0)
        drought = 0.15 * np.exp(-(((doy - 220) / 25.0) ** 2)) * rng.uniform(0.5, 1.5)
        green = np.clip(green - drought, 0.05, 0.95)
        f["green"] = green
        f["dry"] = 0.93 - green
        f["soil"] = np.full(doy.shape, 0.07)
    elif cls == SHRUBLAND:
        green = 0.3 + 0.28 * (lg((doy - rng.normal(105, 6)) / 9) - lg((doy - rng.normal(285, 8)) / 9))
        f["green"] = green * 0.6
        f["broadleaf"] = green * 0.4
        f["dry"] = 0.75 - green
        f["soil"] = np.full(doy.shape, 0.25)
    elif cls == WATER:
        turbidity = rng.uniform(0.0, 0.06)
        algae = 0.04 * np.exp(-(((doy - 210) / 30.0) ** 2)) * rng.uniform(0, 1)
        f["soil"] = np.full(doy.shape, turbidity)
        f["green"] = algae
        f["water"] = 1 - turbidity - algae
    elif cls == ARTIFICIAL:
        trees = rng.uniform(0.05, 0.25)
        leaves = lg((doy - 110) / 6) - lg((doy - 295) / 7)
        bright = rng.uniform(0.1, 0.6)
        f["broadleaf"] = trees * (0.3 + 0.7 * leaves)
        f["dry"] = trees * 0.7 * (1 - leaves)
        built = 1 - trees
        f["bright_urban"] = np.full(doy.shape, built * bright)
        f["urban"] = np.full(doy.shape, built * (1 - bright))
    elif cls == BARELAND:
        bright = rng.uniform(0.3, 0.9)
        f["bright_soil"] = np.full(doy.shape, bright)
        f["soil"] = np.full(doy.shape, 0.95 - bright)
        f["dry"] = np.full(doy.shape, 0.05)
    fractions = np.stack([np.clip(f[name], 0, None) for name in names], axis=1)
    return fractions / fractions.sum(axis=1, keepdims=True)


def _cuts(green: np.ndarray, doy: np.ndarray, first: float, n: int, gap: tuple[float, float], depth: float,
          rng: np.random.Generator) -> np.ndarray:
    """Green cover after ``n`` mowings from day ``first``, each removing ``depth`` and growing back."""
    for cut in first + np.concatenate([[0.0], np.cumsum(rng.uniform(*gap, size=n - 1))]):
        green = green - np.where(doy >= cut, depth * np.exp(-np.clip(doy - cut, 0, None) / 16.0), 0.0)
    return green


def realistic_cover_fractions(cls: int, variant: int, n_variants: int, doy: np.ndarray,
                              rng: np.random.Generator) -> np.ndarray:
    """Like :func:`cover_fractions`, with the overlaps of real land cover: meadows mown early and
    often look like harvested crops and clover leys (cultivated) like meadows; pastures dry out;
    winter cereals get a green catch crop; shrubland runs from sparse (grass and soil) to dense
    (almost a broadleaf canopy); forest has gaps with a grassy floor; wetlands are flooded in
    winter and reed-green in summer; water can be shallow, turbid or overgrown; villages are green
    and quarries weedy. Sowing, mowing and harvest dates spread wider than in the classic scene."""
    names = MEMBERS
    f = {name: np.zeros(doy.shape) for name in names}
    lg = logistic
    season = lg((doy - rng.normal(100, 10)) / 10) - lg((doy - rng.normal(290, 10)) / 12)  # grass growing season
    drought = np.exp(-(((doy - rng.normal(215, 12)) / 25.0) ** 2)) * rng.uniform(0.0, 0.3)
    if cls == CULTIVATED:
        # 0 winter cereal, 1 maize, 2 spring crop, 3 and 5 clover-grass ley, 4 oilseed rape
        crop = variant % 6
        soil_bright = rng.uniform(0.0, 0.5)
        dry = np.zeros(doy.shape)
        if crop == 0:
            sos, eos, harvest = rng.normal(85, 12), rng.normal(165, 10), rng.normal(192, 9)
            green = np.clip(0.22 + 0.68 * lg((doy - sos) / 8) - 0.9 * lg((doy - eos) / 6), 0, 1)
            dry = np.where((doy >= eos - 10) & (doy <= harvest), np.clip(0.9 - green, 0, 1), 0.0)
            catch = rng.uniform(0.0, 0.6)  # a green catch crop after harvest, or stubble
            winter_sown = 0.25 * lg((doy - rng.normal(300, 8) - 20) / 10) * (catch < 0.2)
            after = catch * lg((doy - harvest - 30) / 10) + winter_sown
            green = np.where(doy > harvest, after, green)
            dry = np.where((doy > harvest) & (doy < harvest + 30), 0.5, dry)
        elif crop == 1:
            sos, eos, harvest = rng.normal(160, 12), rng.normal(245, 12), rng.normal(272, 10)
            green = np.clip(0.92 * (lg((doy - sos) / 9) - lg((doy - eos) / 7)), 0, 1)
            dry = np.where((doy >= sos + 40) & (doy <= harvest), np.clip(0.85 - green, 0, 1), 0.0)
            green = np.where(doy > harvest, 0.0, green)
            dry = np.where((doy > harvest) & (doy < harvest + 40), 0.4, dry)
        elif crop == 2:
            sos, eos, harvest = rng.normal(115, 12), rng.normal(200, 12), rng.normal(215, 9)
            green = np.clip(0.88 * (lg((doy - sos) / 7) - lg((doy - eos) / 6)), 0, 1)
            dry = np.where((doy >= eos - 5) & (doy <= harvest), np.clip(0.8 - green, 0, 1), 0.0)
            green = np.where(doy > harvest, 0.0, green)
        elif crop in (3, 5):  # a ley: a meadow on arable land, mown like an intensive meadow
            green = 0.3 + 0.6 * season
            green = _cuts(green, doy, rng.normal(130, 12), int(rng.integers(3, 5)), (35, 50),
                          rng.uniform(0.4, 0.6), rng) - drought
            green = np.clip(green, 0.05, 0.95)
            dry = 0.94 - green
            soil_bright = 0.0  # a closed sward: as little soil shows as on a meadow
        else:  # oilseed rape
            sos, harvest = rng.normal(75, 10), rng.normal(180, 8)
            green = np.clip(0.4 + 0.5 * lg((doy - sos) / 8) - 0.85 * lg((doy - rng.normal(160, 8)) / 6), 0, 1)
            green = np.where(doy > harvest, 0.4 * lg((doy - rng.normal(250, 10)) / 10), green)
            dry = np.where((doy >= 150) & (doy <= harvest), np.clip(0.85 - green, 0, 1), 0.0)
        f["green"] = np.clip(green, 0, 1)
        f["dry"] = np.clip(dry, 0, 1)
        rest = np.clip(1 - f["green"] - f["dry"], 0, 1)
        f["bright_soil"] = rest * soil_bright
        f["soil"] = rest * (1 - soil_bright)
    elif cls == GRASSLAND:
        kind = variant % 4  # 0 intensive meadow, 1 extensive meadow, 2 pasture, 3 ordinary meadow
        green = 0.3 + 0.6 * season
        if kind == 0:
            green = _cuts(green, doy, rng.normal(120, 12), int(rng.integers(3, 5)), (35, 50),
                          rng.uniform(0.45, 0.6), rng)
        elif kind == 1:
            green = _cuts(green, doy, rng.normal(180, 15), int(rng.integers(1, 3)), (50, 70), 0.35, rng)
        elif kind == 2:
            green = 0.25 + 0.5 * season - 0.12 * lg((doy - 130) / 10) - 1.5 * drought
        else:
            green = _cuts(green, doy, rng.normal(135, 10), int(rng.integers(2, 4)), (40, 60), 0.4, rng)
        green = np.clip(green - drought, 0.05, 0.95)
        soil = 0.12 if kind == 2 else 0.06
        f["green"] = green
        f["dry"] = np.clip(1 - soil - green, 0, 1)
        f["soil"] = np.full(doy.shape, soil)
    elif cls in (SHRUBLAND, FOREST):
        leaves = lg((doy - rng.normal(110, 6)) / 6) - lg((doy - rng.normal(292, 7)) / 7)
        if cls == SHRUBLAND:  # sparse .. dense
            cover = 0.15 + 0.8 * variant / max(n_variants - 1, 1)
            f["broadleaf"] = cover * (0.25 + 0.7 * leaves)
            f["dry"] = cover * 0.6 * (1 - leaves)
            f["soil"] = cover * 0.1
        else:  # mixed conifer / deciduous, with gaps
            conifer = rng.uniform(0.05, 0.95)
            cover = rng.uniform(0.4, 1.0)
            deciduous = 1 - conifer
            f["conifer"] = np.full(doy.shape, cover * conifer * 0.95)
            f["broadleaf"] = cover * deciduous * (0.3 + 0.65 * leaves)
            f["dry"] = cover * (deciduous * 0.5 * (1 - leaves) + conifer * 0.05)
            f["soil"] = cover * deciduous * (0.2 - 0.15 * leaves)
        floor = 1 - cover  # grass and soil between the crowns
        f["green"] = floor * np.clip(0.3 + 0.5 * season - drought, 0.05, 0.9)
        f["dry"] = f["dry"] + floor * np.clip(0.6 - 0.5 * season + drought, 0.05, 0.9)
        f["soil"] = f["soil"] + floor * 0.1
    elif cls == WETLAND:
        level = rng.uniform(0.3, 0.95)  # marsh .. open water with reeds
        summer = lg((doy - rng.normal(150, 12)) / 12) - lg((doy - rng.normal(285, 12)) / 12)
        water = level * (1 - rng.uniform(0.1, 0.8) * summer)
        reeds = lg((doy - rng.normal(125, 8)) / 10) - lg((doy - rng.normal(280, 8)) / 10)
        f["water"] = water
        f["green"] = (1 - water) * (0.15 + 0.7 * reeds)
        f["dry"] = (1 - water) * (0.8 - 0.7 * reeds)
        f["soil"] = (1 - water) * 0.05
    elif cls == WATER:
        turbidity = rng.uniform(0.0, 0.12)
        overgrown = rng.uniform(0.1, 0.4) if variant % 3 == 0 else 0.0  # shallow, water plants in summer
        algae = (0.06 * rng.uniform(0, 1) + overgrown) * np.exp(-(((doy - 210) / 35.0) ** 2))
        f["soil"] = np.full(doy.shape, turbidity)
        f["green"] = algae
        f["water"] = 1 - turbidity - algae
    elif cls == ARTIFICIAL:
        trees, lawn = rng.uniform(0.05, 0.4), rng.uniform(0.0, 0.2)
        leaves = lg((doy - 110) / 6) - lg((doy - 295) / 7)
        bright = rng.uniform(0.1, 0.6)
        f["broadleaf"] = trees * (0.3 + 0.7 * leaves)
        f["dry"] = trees * 0.7 * (1 - leaves) + lawn * (1 - season)
        f["green"] = lawn * season
        built = 1 - trees - lawn
        f["bright_urban"] = np.full(doy.shape, built * bright)
        f["urban"] = np.full(doy.shape, built * (1 - bright))
    elif cls == BARELAND:
        bright, weeds = rng.uniform(0.3, 0.9), rng.uniform(0.0, 0.3)
        f["green"] = weeds * season
        f["dry"] = 0.05 + weeds * (1 - season)
        f["bright_soil"] = np.full(doy.shape, bright * (0.95 - weeds))
        f["soil"] = np.full(doy.shape, (1 - bright) * (0.95 - weeds))
    fractions = np.stack([np.broadcast_to(np.clip(f[name], 0, None), doy.shape) for name in names], axis=1)
    return fractions / fractions.sum(axis=1, keepdims=True)
