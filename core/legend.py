"""Class legends: ids, names and colours of land-cover classes.

A legend travels with a model file and styles every class raster. Sources: the eo-learn
Slovenia and ESA WorldCover legends shipped in ``resources/legends`` (chosen by the reference's
class ids, :func:`default_legend`), a CSV of ``id,name,colour``, a QGIS colour-map
export (``value,R,G,B,alpha,label``), or class names found in reference polygons.
"""

from __future__ import annotations

import colorsys
import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

RESOURCES = Path(__file__).resolve().parent.parent / "resources" / "legends"
DEFAULT_LEGEND = RESOURCES / "eolearn_slovenia.csv"
#: ESA WorldCover's codes (10 tree cover ... 100 moss and lichen), a common reference on disk.
WORLDCOVER_LEGEND = RESOURCES / "esa_worldcover.csv"


@dataclass(frozen=True)
class LegendClass:
    id: int
    name: str
    colour: str  # "#rrggbb"


class Legend:
    """An ordered mapping of class id -> :class:`LegendClass`."""

    def __init__(self, classes: Iterable[LegendClass]) -> None:
        self.classes: dict[int, LegendClass] = {}
        for item in classes:
            self.classes[int(item.id)] = item

    def __contains__(self, class_id: int) -> bool:
        return int(class_id) in self.classes

    def __iter__(self):
        return iter(sorted(self.classes.values(), key=lambda c: c.id))

    def __len__(self) -> int:
        return len(self.classes)

    def name(self, class_id: int) -> str:
        item = self.classes.get(int(class_id))
        return item.name if item else f"class {int(class_id)}"

    def colour(self, class_id: int) -> str:
        item = self.classes.get(int(class_id))
        return item.colour if item else fallback_colour(int(class_id))

    def restricted(self, ids: Iterable[int]) -> Legend:
        """The legend of exactly ``ids``: known ones as they are, unknown ones with a generated
        name and colour."""
        return Legend(LegendClass(int(i), self.name(i), self.colour(i)) for i in sorted({int(i) for i in ids}))

    def with_names(self, names: Mapping[int, str]) -> Legend:
        """Names from the reference (e.g. a polygon name field) override the legend's."""
        merged = dict(self.classes)
        for class_id, name in names.items():
            merged[int(class_id)] = LegendClass(int(class_id), str(name), self.colour(class_id))
        return Legend(merged.values())

    def to_json(self) -> list[dict]:
        return [{"id": c.id, "name": c.name, "colour": c.colour} for c in self]

    @classmethod
    def from_json(cls, items: Iterable[Mapping]) -> Legend:
        return cls(LegendClass(int(i["id"]), str(i["name"]), normalise_colour(str(i["colour"]))) for i in items)


def default_legend(class_ids: Iterable[int]) -> tuple[Legend, str]:
    """The shipped legend whose coding the reference's ``class_ids`` use, and a sentence saying
    which: eo-learn's Slovenia legend for ids 1-10, ESA WorldCover's for its codes (10, 20, ...,
    95, 100). Ids that neither codes alone get "class N" and generated colours rather than
    another coding's names (WorldCover's 10 is tree cover, eo-learn's snow and ice)."""
    ids = {int(i) for i in class_ids} - {0}
    eolearn, worldcover = read_legend(DEFAULT_LEGEND), read_legend(WORLDCOVER_LEGEND)
    if ids and ids <= set(worldcover.classes) and max(ids) > 10:
        return worldcover, "ESA WorldCover's legend (the reference's class ids are WorldCover codes)"
    if ids == {10}:
        return eolearn, ("the eo-learn Slovenia legend, whose 10 is snow and ice (a single class 10 may also be "
                         "ESA WorldCover's tree cover: give a LEGEND file then)")
    if ids <= set(eolearn.classes):
        return eolearn, "the eo-learn Slovenia legend (the reference's class ids are its codes 1-10)"
    return Legend([]), ("no shipped legend: the reference's class ids are neither eo-learn's (1-10) nor ESA "
                        "WorldCover's codes, so the classes are named 'class N'; give a LEGEND file to name them")


def fallback_colour(class_id: int) -> str:
    """A stable, distinct colour for a class the legend does not know (golden-angle hues)."""
    hue = (class_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.65, 0.9)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def normalise_colour(text: str) -> str:
    value = text.strip()
    if re.fullmatch(r"#?[0-9a-fA-F]{6}", value):
        return "#" + value.lstrip("#").lower()
    parts = [p for p in re.split(r"[\s,;]+", value) if p]
    if len(parts) in (3, 4) and all(p.isdigit() and int(p) <= 255 for p in parts):
        return "#" + "".join(f"{int(p):02x}" for p in parts[:3])
    raise ValueError(f"'{text}' is not a colour (#rrggbb or R,G,B)")


def read_legend(path: str | Path | None = None) -> Legend:
    """A legend file: ``id,name,colour`` CSV (header optional) or a QGIS colour-map export."""
    path = Path(path) if path else DEFAULT_LEGEND
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise ValueError(f"cannot read the legend file '{path}': {error}") from error
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    classes = []
    for number, row in enumerate(csv.reader(lines), start=1):
        row = [cell.strip() for cell in row]
        if not row or row[0].upper().startswith("INTERPOLATION"):
            continue
        if number == 1 and not _is_number(row[0]):
            continue  # header
        try:
            if len(row) >= 6 and all(_is_number(c) for c in row[1:5]):  # QGIS export: value,R,G,B,A,label
                classes.append(LegendClass(int(float(row[0])), ",".join(row[5:]) or f"class {row[0]}",
                                           normalise_colour(",".join(row[1:4]))))
            elif len(row) >= 3:
                classes.append(LegendClass(int(float(row[0])), row[1], normalise_colour(row[2])))
            else:
                raise ValueError("expected id,name,colour")
        except ValueError as error:
            raise ValueError(f"legend '{path.name}' line {number}: {error}") from error
    if not classes:
        raise ValueError(f"the legend file '{path}' lists no classes (expected lines of id,name,colour)")
    return Legend(classes)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
