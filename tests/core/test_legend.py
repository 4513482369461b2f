"""The shipped legend chosen by the reference's class ids."""

from __future__ import annotations

from eolulc.core.legend import default_legend


def test_eolearn_codes_get_the_eolearn_legend():
    legend, which = default_legend([0, 1, 2, 3, 8])
    assert legend.name(2) == "forest" and "eo-learn" in which
    assert default_legend([])[0].name(10) == "snow and ice"  # no ids: the documented default


def test_worldcover_codes_get_worldcovers_legend():
    legend, which = default_legend([10, 20, 40, 80, 95])
    assert [legend.name(i) for i in (10, 40, 80, 95)] == ["tree cover", "cropland", "permanent water bodies",
                                                          "mangroves"]
    assert legend.colour(10) == "#006400" and "WorldCover" in which


def test_other_codes_get_no_shipped_names():
    for ids in ([1, 2, 11], [10, 20, 25], [100, 200]):
        legend, which = default_legend(ids)
        assert len(legend) == 0 and legend.name(ids[0]) == f"class {ids[0]}" and "LEGEND" in which
