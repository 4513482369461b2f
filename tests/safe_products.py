"""Sentinel-2 products for the tests, written the way Copernicus delivers them (small, though).

Real folder layout and names (``S2B_MSIL2A_20230614T101559_N0509_R065_T33TVM_20230614T141613.SAFE``
with ``GRANULE/L2A_T33TVM_A032718_20230614T101559/IMG_DATA/R10m/T33TVM_20230614T101559_B04_10m.jp2``;
L1C: ``IMG_DATA/T33TVM_20230614T101559_B04.jp2``), ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` and
``MTD_TL.xml`` with the element names of the product specification (PSD 14, as in GDAL's SENTINEL2
driver test data), lossless JPEG 2000 bands written by GDAL at their native 10/20/60 m, zipped or
not. Tiles are ``size`` x ``size`` px at 10 m instead of 10980.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

BAND_IDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
NATIVE = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10,
          "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20, "SCL": 20}
L2A_BANDS = tuple(b for b in BAND_IDS if b != "B10")
#: Tile side of the products' JPEG 2000 files (gdalinfo on a real band: Block=1024x1024).
JP2_TILE = 1024


@dataclass
class Written:
    path: Path
    name: str
    #: band -> digital numbers at the band's native resolution, as written
    dns: dict
    ulx: float
    uly: float
    epsg: int
    offset: int


def native(values_10m: np.ndarray, resolution: int) -> np.ndarray:
    """A 10 m array at ``resolution`` (block mean), as the coarser bands are."""
    f = resolution // 10
    h, w = values_10m.shape[0] // f, values_10m.shape[1] // f
    return values_10m[: h * f, : w * f].reshape(h, f, w, f).mean(axis=(1, 3))


def dns_from_reflectance(reflectance: np.ndarray, bands=BAND_IDS, add_offset: int = 0) -> dict:
    """``(h, w, 13)`` reflectance (ESA order) -> band -> DNs at native resolution, as the processor
    encodes them: ``DN = R * 10000 - ADD_OFFSET`` (``add_offset`` -1000 from baseline 04.00)."""
    out = {}
    for band in bands:
        values = native(reflectance[..., BAND_IDS.index(band)].astype(np.float64), NATIVE[band])
        out[band] = np.clip(np.round(values * 10000) - add_offset, 1, 65534).astype(np.uint16)
    return out


def _write_jp2(path: Path, data: np.ndarray, epsg: int, ulx: float, uly: float, resolution: int) -> None:
    """``data``: ``(h, w)``, or ``(layers, h, w)`` for a quality mask."""
    from osgeo import gdal, osr

    path.parent.mkdir(parents=True, exist_ok=True)
    layers = data if data.ndim == 3 else data[None]
    gdal_type = gdal.GDT_Byte if data.dtype == np.uint8 else gdal.GDT_UInt16
    mem = gdal.GetDriverByName("MEM").Create("", layers.shape[2], layers.shape[1], layers.shape[0], gdal_type)
    mem.SetGeoTransform((ulx, resolution, 0, uly, 0, -resolution))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    mem.SetProjection(srs.ExportToWkt())
    for i, layer in enumerate(layers, start=1):
        mem.GetRasterBand(i).WriteArray(layer)
    # real products: lossless, one component, 1024 px tiles (GDAL clamps them to smaller images)
    options = ["REVERSIBLE=YES", "QUALITY=100", "YCC=NO", f"BLOCKXSIZE={JP2_TILE}", f"BLOCKYSIZE={JP2_TILE}"]
    out = gdal.GetDriverByName("JP2OpenJPEG").CreateCopy(str(path), mem, options=options)
    assert out is not None, f"GDAL could not write {path}"
    out = None
    aux = Path(str(path) + ".aux.xml")
    if aux.exists():
        aux.unlink()



#: Quality-mask defects a fixture can carry: MSK_QUALIT layer (baseline >= 04.00) and GML file and
#: maskType (older baselines). PARTIALLY_CORRECTED (cross-talk) is no defect the import removes.
DEFECTS = {"NODATA": (6, "NODATA", "QT_NODATA_PIXELS"), "SATURATED": (8, "SATURA", "QT_SATURATED_PIXELS_L1A"),
           "PARTIALLY_CORRECTED": (7, "NODATA", "QT_PARTIALLY_CORRECTED_PIXELS")}


def _gml_mask(ident: str, kind: str, epsg: int, features: list[tuple[str, tuple[float, float, float, float]]]) -> str:
    """An ``eop:Mask`` document as the processor writes MSK_NODATA / MSK_SATURA (3-D posList)."""
    if not features:
        members = "  <eop:maskMembers/>"
    else:
        parts = []
        for i, (mask_type, (x0, y0, x1, y1)) in enumerate(features):
            ring = " ".join(f"{x:.1f} {y:.1f} 12.5" for x, y in ((x0, y1), (x0, y0), (x1, y0), (x1, y1), (x0, y1)))
            parts.append(f"""    <eop:MaskFeature gml:id="{mask_type}.{i}">
      <eop:maskType codeSpace="urn:gs2:S2PDGS:maskType">{mask_type}</eop:maskType>
      <eop:extentOf>
        <gml:Polygon gml:id="{mask_type}.{i}_Polygon">
          <gml:exterior>
            <gml:LinearRing>
              <gml:posList srsDimension="3">{ring}</gml:posList>
            </gml:LinearRing>
          </gml:exterior>
        </gml:Polygon>
      </eop:extentOf>
    </eop:MaskFeature>""")
        members = "  <eop:maskMembers>\n" + "\n".join(parts) + "\n  </eop:maskMembers>"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<eop:Mask xmlns:eop="http://www.opengis.net/eop/2.0" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" \
xmlns:gml="http://www.opengis.net/gml/3.2" gml:id="{ident}">
  <gml:name>MSK_{kind} pixels mask from data-strip {ident}</gml:name>
{members}
</eop:Mask>
"""


def _write_quality_masks(qi_data: Path, bands, defects, baseline: str, epsg: int, ulx: float, uly: float,
                         size: int, name_of) -> None:
    """One quality mask per band in ``qi_data``: MSK_QUALIT_Bxx.jp2 (8 layers) from baseline 04.00,
    MSK_NODATA_Bxx.gml and MSK_SATURA_Bxx.gml before. ``defects``: (band, kind of :data:`DEFECTS`,
    (row0, row1, col0, col1) in 10 m pixels of the tile); ``name_of(kind, band)`` names the GML."""
    for band in bands:
        resolution = NATIVE[band]
        mine = [(kind, box) for b, kind, box in defects if b == band]
        if float(baseline) >= 4.0:
            f = resolution // 10
            layers = np.zeros((8, size // f, size // f), np.uint8)
            for kind, (r0, r1, c0, c1) in mine:
                layers[DEFECTS[kind][0] - 1, r0 // f:r1 // f, c0 // f:c1 // f] = 1
            _write_jp2(qi_data / f"MSK_QUALIT_{band}.jp2", layers, epsg, ulx, uly, resolution)
            continue
        qi_data.mkdir(parents=True, exist_ok=True)
        for kind in ("NODATA", "SATURA"):
            features = [(DEFECTS[k][2], (ulx + c0 * 10, uly - r1 * 10, ulx + c1 * 10, uly - r0 * 10))
                        for k, (r0, r1, c0, c1) in mine if DEFECTS[k][1] == kind]
            name = name_of(kind, band)
            (qi_data / name).write_text(_gml_mask(name[:-4], kind, epsg, features))


def _product_xml(level: str, name: str, sensing: datetime, baseline: str, offset: int, files: list[str]) -> str:
    time = sensing.strftime("%Y-%m-%dT%H:%M:%S.024Z")
    images = "\n".join(f"            <IMAGE_FILE>{f}</IMAGE_FILE>" for f in files)
    if level == "L1C":
        quant = '        <QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>'
        offsets = ("        <Radiometric_Offset_List>\n" + "\n".join(
            f'          <RADIO_ADD_OFFSET band_id="{i}">{-offset}</RADIO_ADD_OFFSET>' for i in range(13))
            + "\n        </Radiometric_Offset_List>") if offset else ""
    else:
        quant = ("        <QUANTIFICATION_VALUES_LIST>\n"
                 '          <BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>\n'
                 '          <AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>\n'
                 '          <WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE>\n'
                 "        </QUANTIFICATION_VALUES_LIST>")
        offsets = ("        <BOA_ADD_OFFSET_VALUES_LIST>\n" + "\n".join(
            f'          <BOA_ADD_OFFSET band_id="{i}">{-offset}</BOA_ADD_OFFSET>' for i in range(13))
            + "\n        </BOA_ADD_OFFSET_VALUES_LIST>") if offset else ""
    n = "1C" if level == "L1C" else "2A"
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:Level-{n}_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-{n}.xsd" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>{time}</PRODUCT_START_TIME>
      <PRODUCT_STOP_TIME>{time}</PRODUCT_STOP_TIME>
      <PRODUCT_URI>{name}</PRODUCT_URI>
      <PROCESSING_LEVEL>Level-{n}</PROCESSING_LEVEL>
      <PRODUCT_TYPE>S2MSI{n}</PRODUCT_TYPE>
      <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
      <GENERATION_TIME>{time}</GENERATION_TIME>
      <Datatake datatakeIdentifier="GS2B_{sensing:%Y%m%dT%H%M%S}_032718_N{baseline}">
        <SPACECRAFT_NAME>Sentinel-2B</SPACECRAFT_NAME>
        <DATATAKE_TYPE>INS-NOBS</DATATAKE_TYPE>
        <DATATAKE_SENSING_START>{time}</DATATAKE_SENSING_START>
        <SENSING_ORBIT_NUMBER>65</SENSING_ORBIT_NUMBER>
        <SENSING_ORBIT_DIRECTION>DESCENDING</SENSING_ORBIT_DIRECTION>
      </Datatake>
      <Query_Options completeSingleTile="true">
        <PRODUCT_FORMAT>SAFE_COMPACT</PRODUCT_FORMAT>
      </Query_Options>
      <Product_Organisation>
        <Granule_List>
          <Granule datastripIdentifier="S2B_OPER_MSI_L{n}_DS_2BPS" granuleIdentifier="S2B_OPER_MSI_L{n}_TL_2BPS" \
imageFormat="JPEG2000">
{images}
          </Granule>
        </Granule_List>
      </Product_Organisation>
    </Product_Info>
    <Product_Image_Characteristics>
      <Special_Values>
        <SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX>
      </Special_Values>
      <Special_Values>
        <SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX>
      </Special_Values>
{quant}
{offsets}
    </Product_Image_Characteristics>
  </n1:General_Info>
</n1:Level-{n}_User_Product>
"""


def _tile_xml(level: str, tile: str, sensing: datetime, baseline: str, epsg: int, ulx: float, uly: float,
              size: int) -> str:
    n = "1C" if level == "L1C" else "2A"
    sizes = "\n".join(f'      <Size resolution="{r}">\n        <NROWS>{size * 10 // r}</NROWS>\n'
                      f'        <NCOLS>{size * 10 // r}</NCOLS>\n      </Size>' for r in (10, 20, 60))
    positions = "\n".join(f'      <Geoposition resolution="{r}">\n        <ULX>{ulx:.0f}</ULX>\n'
                          f'        <ULY>{uly:.0f}</ULY>\n        <XDIM>{r}</XDIM>\n        <YDIM>-{r}</YDIM>\n'
                          '      </Geoposition>' for r in (10, 20, 60))
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:Level-{n}_Tile_ID xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-{n}_Tile_Metadata.xsd">
  <n1:General_Info>
    <TILE_ID metadataLevel="Brief">S2B_OPER_MSI_L{n}_TL_2BPS_{sensing:%Y%m%dT%H%M%S}_A032718_T{tile}_N{baseline}\
</TILE_ID>
    <SENSING_TIME metadataLevel="Standard">{sensing:%Y-%m-%dT%H:%M:%S}.271949Z</SENSING_TIME>
  </n1:General_Info>
  <n1:Geometric_Info>
    <Tile_Geocoding metadataLevel="Brief">
      <HORIZONTAL_CS_NAME>WGS84 / UTM zone {epsg % 100}N</HORIZONTAL_CS_NAME>
      <HORIZONTAL_CS_CODE>EPSG:{epsg}</HORIZONTAL_CS_CODE>
{sizes}
{positions}
    </Tile_Geocoding>
  </n1:Geometric_Info>
</n1:Level-{n}_Tile_ID>
"""


def write_product(root: Path, level: str, dns: dict, sensing: datetime, baseline: str = "05.09",
                  tile: str = "33TVM", epsg: int = 32633, ulx: float = 499980, uly: float = 5200020,
                  zipped: bool = False, scl: np.ndarray | None = None, leave_out: tuple[str, ...] = (),
                  defects: list | None = None) -> Written:
    """One product in ``root``. ``dns``: band -> DNs at native resolution; ``scl`` (L2A) at 20 m.
    Baselines 04.00 and later carry the -1000 offset (the DNs given are written as they are).
    ``defects`` (a list, maybe empty): write every band's quality masks in the baseline's format
    with those defects (:func:`_write_quality_masks`); None: no quality masks."""
    offset = 1000 if float(baseline) >= 4.0 else 0
    stamp = f"{sensing:%Y%m%dT%H%M%S}"
    n = "1C" if level == "L1C" else "2A"
    name = f"S2B_MSIL{n}_{stamp}_N{baseline.replace('.', '')}_R065_T{tile}_{stamp[:9]}141613.SAFE"
    granule = f"GRANULE/L{n}_T{tile}_A032718_{stamp}"
    size = next(a.shape[0] * NATIVE[b] // 10 for b, a in dns.items())
    safe = root / name
    files = []
    items = dict(dns)
    if level == "L2A":
        items["SCL"] = scl if scl is not None else np.full((size // 2, size // 2), 4, np.uint8)
    for band, data in items.items():
        resolution = NATIVE[band]
        if level == "L1C":
            rel = f"{granule}/IMG_DATA/T{tile}_{stamp}_{band}"
        else:
            rel = f"{granule}/IMG_DATA/R{resolution}m/T{tile}_{stamp}_{band}_{resolution}m"
        files.append(rel)
        if band not in leave_out:
            _write_jp2(safe / (rel + ".jp2"), data, epsg, ulx, uly, resolution)
    if defects is not None:
        _write_quality_masks(safe / granule / "QI_DATA", list(dns), defects, baseline, epsg, ulx, uly, size,
                             lambda kind, band: f"MSK_{kind}_{band}.gml")
    (safe / f"MTD_MSIL{n}.xml").write_text(_product_xml(level, name, sensing, baseline, offset, files))
    (safe / granule / "MTD_TL.xml").write_text(_tile_xml(level, tile, sensing, baseline, epsg, ulx, uly, size))
    path = _zip_safe(root, safe) if zipped else safe
    return Written(path=path, name=name, dns=dns, ulx=ulx, uly=uly, epsg=epsg, offset=offset)


def _zip_safe(root: Path, safe: Path) -> Path:
    """``safe`` as ``<name>.zip`` in ``root`` (the folder removed). Members stored, not deflated, as
    in the archives Copernicus delivers: JPEG 2000 is compressed already, and /vsizip/ then seeks
    straight to a tile instead of inflating from the start."""
    import shutil

    path = root / (safe.name + ".zip")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for file in sorted(safe.rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(root).as_posix())
    shutil.rmtree(safe)
    return path


def write_product_2016(root: Path, tiles: list[tuple[str, float, float, dict]], sensing: datetime,
                       baseline: str = "02.04", epsg: int = 32633, zipped: bool = False,
                       damaged: tuple[str, ...] = (), defects: list | None = None) -> Path:
    """An L1C product in the 2016 multi-granule layout: one ``S2A_OPER_PRD_MSIL1C_PDMC_...SAFE``
    holding a GRANULE folder per tile (``tiles``: (tile, ulx, uly, band -> DNs)), long ``S2A_OPER_``
    names everywhere, ``S2A_OPER_MTD_SAFL1C_...xml`` listing each granule's bare ``IMAGE_ID``s
    (PSD 13, as ESA's products of then and s2reader's test data). The band files of the tiles in
    ``damaged`` are not JPEG 2000 (reading them fails: proof that they were not read)."""
    stamp, generated = f"{sensing:%Y%m%dT%H%M%S}", f"{sensing:%Y%m%d}T073438"
    name = f"S2A_OPER_PRD_MSIL1C_PDMC_{sensing:%Y%m%d}T104813_R065_V{stamp}_{stamp[:9]}101000.SAFE"
    safe = root / name
    lists = []
    for tile, ulx, uly, dns in tiles:
        granule_id = f"S2A_OPER_MSI_L1C_TL_SGS__{generated}_A006291_T{tile}_N{baseline}"
        folder = safe / "GRANULE" / granule_id
        size = next(a.shape[0] * NATIVE[b] // 10 for b, a in dns.items())
        images = []
        for band, data in dns.items():
            image = f"S2A_OPER_MSI_L1C_TL_SGS__{generated}_A006291_T{tile}_{band}"
            images.append(image)
            if tile in damaged:
                (folder / "IMG_DATA").mkdir(parents=True, exist_ok=True)
                (folder / "IMG_DATA" / (image + ".jp2")).write_bytes(b"not a JPEG 2000 file")
            else:
                _write_jp2(folder / "IMG_DATA" / (image + ".jp2"), data, epsg, ulx, uly, NATIVE[band])
        if defects is not None:
            _write_quality_masks(folder / "QI_DATA", list(dns), defects, baseline, epsg, ulx, uly, size,
                                 lambda kind, band, t=tile: f"S2A_OPER_MSK_{kind}_SGS__{generated}_A006291_T{t}_"
                                                            f"{band}_MSIL1C.gml")
        (folder / f"S2A_OPER_MTD_L1C_TL_SGS__{generated}_A006291_T{tile}.xml").write_text(
            _tile_xml("L1C", tile, sensing, baseline, epsg, ulx, uly, size))
        ids = "\n".join(f"            <IMAGE_ID>{i}</IMAGE_ID>" for i in images)
        lists.append(f"""      <Granule_List>
        <Granules datastripIdentifier="S2A_OPER_MSI_L1C_DS_SGS__{generated}_S{stamp}_N{baseline}" \
granuleIdentifier="{granule_id}" imageFormat="JPEG2000">
{ids}
        </Granules>
      </Granule_List>""")
    time = sensing.strftime("%Y-%m-%dT%H:%M:%S.026Z")
    granule_lists = "\n".join(lists)
    (safe / f"S2A_OPER_MTD_SAFL1C_PDMC_{sensing:%Y%m%d}T104813_R065_V{stamp}_{stamp[:9]}101000.xml").write_text(
        f"""<n1:Level-1C_User_Product xmlns:n1="https://psd-13.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>{time}</PRODUCT_START_TIME>
      <PRODUCT_STOP_TIME>{time}</PRODUCT_STOP_TIME>
      <PRODUCT_URI>791_{sensing:%Y-%m-%dT%H_%M}</PRODUCT_URI>
      <PROCESSING_LEVEL>Level-1C</PROCESSING_LEVEL>
      <PRODUCT_TYPE>S2MSI1C</PRODUCT_TYPE>
      <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
      <Datatake datatakeIdentifier="GS2A_{stamp}_006291_N{baseline}">
        <SPACECRAFT_NAME>Sentinel-2A</SPACECRAFT_NAME>
        <DATATAKE_SENSING_START>{time}</DATATAKE_SENSING_START>
      </Datatake>
      <Query_Options>
        <PRODUCT_FORMAT>SAFE</PRODUCT_FORMAT>
      </Query_Options>
      <Product_Organisation>
{granule_lists}
      </Product_Organisation>
    </Product_Info>
    <Product_Image_Characteristics>
      <Special_Values>
        <SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX>
      </Special_Values>
      <Special_Values>
        <SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX>
      </Special_Values>
      <QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>
    </Product_Image_Characteristics>
  </n1:General_Info>
</n1:Level-1C_User_Product>
""")
    return _zip_safe(root, safe) if zipped else safe


def write_l2a_series(root: Path, scenes: np.ndarray, dates, ulx: float, uly: float, side: int = 96) -> Path:
    """One zipped L2A product per date of ``scenes`` (reflectance, ``(t, h, w, 13)``), cut to ``side``
    px (the 60 m bands' side must divide it), with an SCL layer: vegetation everywhere, clouds
    (high probability) over the first rows of the second date. The tests that import an L2A
    series and run the pipeline or the experiment on it share it."""
    for i, when in enumerate(dates):
        scl = np.full((side // 2, side // 2), 4, np.uint8)
        if i == 1:
            scl[:4] = 9
        write_product(root, "L2A", dns_from_reflectance(scenes[i, :side, :side], L2A_BANDS, -1000),
                      when, ulx=ulx, uly=uly, zipped=True, scl=scl)
    return root


def import_l2a_series(products: Path, out: Path, scenes: np.ndarray, stack: Path) -> tuple[Path, Path]:
    """:func:`write_l2a_series` on the grid and dates of the time stack ``stack``, imported with
    ``eolulc:importsafe`` (needs QGIS with the provider): the L2A stack and its SCL cloud mask."""
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    import processing
    from eolulc.core.timestack import read_info

    info = read_info(str(stack))
    root = write_l2a_series(products, scenes, info.dates, info.grid.transform[2], info.grid.transform[5])
    result = processing.run("eolulc:importsafe", {"INPUT_FOLDER": str(root), "OUTPUT": str(out / "l2a.tif"),
                                                   "OUTPUT_MASK": str(out / "scl_mask.tif")},
                            context=QgsProcessingContext(), feedback=QgsProcessingFeedback())
    return Path(result["OUTPUT"]), Path(result["OUTPUT_MASK"])
