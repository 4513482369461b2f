"""Benchmark ``eolulc:download``'s core: bytes fetched for an extent over a year of scenes against
the bytes of the whole files.

One full-size Sentinel-2 tile (10980 px at 10 m, 5490 at 20 m, 1830 at 60 m; EPSG:32633) is
written as cloud-optimized GeoTIFFs shaped like Earth Search's (``--block`` px internal tiles,
DEFLATE, overviews; real L1C reflectance from tests/data mirrored over the tile), and served by
the tests' loopback STAC API (tests/stac_server.py) as ``--scenes`` scenes spread over a year (the
same files behind every scene's URLs, so that writing them takes a minute, not an hour). Then
``download()`` fetches a ``--km`` x ``--km`` extent inside the tile through the real pystac-client
and GDAL /vsicurl/ code, and the server counts the bytes it sent and the requests. The whole
files are what a product-based download moves (the COG files of the same bands; a zipped L2A SAFE
product is about 800 MB more).

    .venv/bin/python bench/download.py [--scenes 73] [--km 10] [--bands B02,B03,B04,B08,B11,B12]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, datetime, timedelta

import numpy as np
from _common import REPO, TEST_DATA, import_package, temp_dir

import_package()
sys.path.insert(0, str(REPO / "tests"))


def main() -> None:
    from stac_server import NATIVE, StacServer, earth_search_item, scene_dns, tile_reflectance, write_cog

    from eolulc.core.download import download
    from eolulc.core.stac import catalogue_for

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=73, help="scenes over the year (73 = every 5 days)")
    parser.add_argument("--km", type=float, default=10.0, help="extent side in km")
    parser.add_argument("--bands", default="B02,B03,B04,B08,B11,B12")
    parser.add_argument("--block", type=int, default=1024, help="COG internal tile side (Earth Search: 1024)")
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    bands = [b.strip() for b in args.bands.split(",") if b.strip()]
    root = temp_dir("eolulc_bench_download_")
    ulx, uly, side = 499980.0, 5200020.0, 10980
    scenes = np.load(TEST_DATA / "REFERENCE_SCENES.npy")
    started = time.perf_counter()
    reflectance = tile_reflectance(scenes, 0, side)
    shared = root / "shared"
    for band in bands:
        write_cog(shared / f"{band}.tif", scene_dns(reflectance, band, 0), 32633, ulx, uly, NATIVE[band], args.block)
    scl = np.full((side // 2, side // 2), 4, np.uint8)
    write_cog(shared / "SCL.tif", scl, 32633, ulx, uly, 20, args.block)
    del reflectance
    print(f"wrote one tile's COGs in {time.perf_counter() - started:.0f} s")
    files = {p.name: p.stat().st_size for p in shared.iterdir()}
    whole_scene = sum(files.values())
    first = datetime(2023, 1, 2, 10, 10, 31)
    with StacServer(root) as server:
        items = []
        for i in range(args.scenes):
            when = first + timedelta(days=365 * i / args.scenes)
            item_id = f"S2A_33TVM_{when:%Y%m%d}_0_L2A"
            folder = root / item_id
            folder.mkdir()
            for name in files:
                (folder / name).symlink_to(shared / name)
            hrefs = {name[:-4]: server.file_url(f"{item_id}/{name}") for name in files}
            items.append(earth_search_item(item_id, when, 32633, ulx, uly, side * 10.0, [14.99, 46.0, 16.43, 46.99],
                                           hrefs, cloud=10.0))
        server.items = items
        half = args.km * 500
        cx, cy = ulx + 6000 + half, uly - 3000 - half  # not aligned with the internal tiles
        started = time.perf_counter()
        result = download(catalogue_for("custom", server.url), "L2A", (cx - half, cy - half, cx + half, cy + half),
                          "EPSG:32633", date(2023, 1, 1), date(2023, 12, 31), root / "out" / "stack.tif",
                          output_mask=root / "out" / "mask.tif", bands=bands, connections=args.connections)
        seconds = time.perf_counter() - started
        fetched, requests = server.served(), server.requested()
    whole = whole_scene * args.scenes
    print(f"{args.scenes} scenes, {args.km:g} x {args.km:g} km, bands {','.join(bands)} + SCL, "
          f"{len(result.report['dates'])} dates written")
    sizes = ", ".join(f"{k} {v / 1e6:.1f}" for k, v in sorted(files.items()))
    print(f"whole files of one scene: {whole_scene / 1e6:.1f} MB ({sizes})")
    print(f"whole files, all scenes: {whole / 1e9:.2f} GB")
    print(f"fetched: {fetched / 1e6:.1f} MB in {requests} requests = {100 * fetched / whole:.1f} % of the whole files, "
          f"{fetched / args.scenes / 1e6:.2f} MB a scene; {seconds:.0f} s over loopback")


if __name__ == "__main__":
    main()
