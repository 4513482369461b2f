"""The whole LULC chain in one call: cloud mask -> features -> interpolation -> training ->
classification -> accuracy, with the switches of Sinergise's experiments.

Each step is the same core function the separate algorithms call, so the pipeline's products
equal those of running the steps one by one with the same settings. Two shortcuts change where
the work happens, not the results: the training pixels are interpolated alone before the model
is fitted, and the interpolated blocks are classified as they are made, so the interpolated
stack is written only when asked for and never read back.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .accuracy import assess, pixel_area_m2, warning_notes
from .atomic import atomic_outputs
from .blocks import WriteBehind, iter_blocks
from .classify import MapWriter
from .cloudmask import DEFAULT_PROCESSING_RESOLUTION, CloudDetector
from .features import FeatureSpec, compute_features
from .featureset import ChosenPixels, FeatureColumns, block_rows
from .interpolate import (
    check_inputs,
    interpolate_pixels,
    interpolated_stack_info,
    plan_interpolation,
    write_interpolation,
)
from .legend import Legend, LegendClass
from .progress import Progress, ensure_progress
from .reference import NO_CLASS, Reference
from .report import importance_html, interpolation_html, settings_html, write_report
from .safe_import import TAG_LEVEL
from .smoothing import SmoothSettings, smooth_stack
from .style import write_sidecar_qml
from .timestack import StackInfo, StackWriter, Window, open_stack, read_info
from .train import TrainSettings, fit_model, importance_table, plan_samples

#: Agreement raster values.
AGREE, DISAGREE = 1, 2
AGREEMENT_LEGEND = Legend([LegendClass(AGREE, "map agrees with reference", "#1a9641"),
                           LegendClass(DISAGREE, "map differs from reference", "#d7191c")])
#: Where the cloud mask comes from: s2cloudless on the L1C bands, or a mask stack the caller gives
#: (the SCL mask of an imported L2A product, an EOPatch's CLM).
S2CLOUDLESS, GIVEN_MASK = "s2cloudless", "given"
CLOUD_MASK_SOURCES = (S2CLOUDLESS, GIVEN_MASK)
STEPS = (("cloud mask", 0.3), ("features", 0.05), ("training pixels", 0.1), ("training", 0.15),
         ("interpolation and classification", 0.35), ("accuracy", 0.05))


@dataclass
class PipelineSettings:
    """The experiments' switches and the steps' main settings."""

    scene_filter: bool = True
    min_valid_fraction: float = 0.8
    cloud_mask_in_interpolation: bool = True
    interval_days: int = 16
    start: str | None = None
    end: str | None = None
    processing_resolution: float | None = DEFAULT_PROCESSING_RESOLUTION
    cloud_mask_source: str = S2CLOUDLESS
    #: run s2cloudless on an L2A stack anyway (its model was trained on L1C reflectance)
    force_s2cloudless: bool = False
    features: FeatureSpec = field(default_factory=FeatureSpec)
    train: TrainSettings = field(default_factory=TrainSettings)
    #: Bayesian smoothing of the class probabilities before the map is made (core.smoothing): on,
    #: as it won on every honest spatial split of the real TestEOPatch (bench/train_quality.py)
    smoothing: bool = True
    smooth: SmoothSettings = field(default_factory=SmoothSettings)


@dataclass
class PipelineOutputs:
    """Where each product goes; every path but ``features`` and ``interpolated`` is required
    (callers pass temporary files for the products the user does not keep). Without ``features``
    no per-date feature stack is written: they are computed for the kept dates during the
    interpolation; without ``interpolated`` the interpolated blocks are classified as they are
    made and never written."""

    cloud_mask: str
    features: str | None
    interpolated: str | None
    model: str
    classification: str
    confidence: str
    reference: str
    agreement: str
    report: str
    report_json: str | None = None
    #: the class probabilities (smoothed when the settings smooth), one band per class
    probabilities: str | None = None
    probabilities_float: bool = False


@dataclass
class PipelineResult:
    report: dict
    notes: list[str]


def run_pipeline(
    l1c_stack: str,
    reference: Reference,
    legend: Legend,
    outputs: PipelineOutputs,
    settings: PipelineSettings | None = None,
    progress: Progress | None = None,
    budget_bytes: int | None = None,
    cloud_mask: str | None = None,
) -> PipelineResult:
    """``cloud_mask``: the mask stack used instead of s2cloudless's when the settings'
    ``cloud_mask_source`` is ``"given"`` (on the stack's grid and dates; 0 clear, anything else
    cloudy or nodata); ``outputs.cloud_mask`` is then not written."""
    settings = settings or PipelineSettings()
    progress = ensure_progress(progress)
    parts = _step_progress(progress)
    info = read_info(l1c_stack)
    if reference.classes.shape != (info.grid.height, info.grid.width):
        raise ValueError("the reference is not on the L1C stack's grid")
    check_cloud_mask_source(info, settings, cloud_mask)

    # the training and test pixels depend on the reference only: planned while the cloud mask is
    # made (the training rows are interpolated alone, the test pixels are judged on the map)
    settings.train.validate()
    rng = np.random.default_rng(settings.train.seed)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="eolulc-plan") as pool:
        planned = pool.submit(plan_samples, reference, settings.train, rng)
        if cloud_mask:
            progress.log(f"Step 1/6: cloud mask: the given mask stack {cloud_mask} (s2cloudless not run)")
            cloud_mask_path, fractions = cloud_mask, None  # the scene filter counts the mask's clear pixels
            parts[0].report(1.0)
        else:
            progress.log("Step 1/6: cloud mask (s2cloudless)")
            clouds = CloudDetector(processing_resolution=settings.processing_resolution,
                                   budget_bytes=budget_bytes).run(l1c_stack, None, outputs.cloud_mask, parts[0])
            # the cloud-mask step counted the clear pixels of each date as it wrote the mask
            cloud_mask_path, fractions = outputs.cloud_mask, clouds.valid_fraction

        if outputs.features:
            progress.log("Step 2/6: features (bands and indices per date)")
            compute_features(l1c_stack, outputs.features, settings.features, parts[1], budget_bytes)
            source, computed = outputs.features, None
        else:
            progress.log("Step 2/6: features: computed for the kept dates while interpolating (not kept)")
            source, computed = l1c_stack, settings.features
            parts[1].report(1.0)
        plan = planned.result()

    mask = cloud_mask_path if settings.cloud_mask_in_interpolation else None
    progress.log("Step 3/6: scene filter and the training pixels' interpolated features"
                 f" (scene filter {'on' if settings.scene_filter else 'off'},"
                 f" cloud mask {'used' if mask else 'not used'})")
    interpolation = plan_interpolation(
        source, start=settings.start, end=settings.end, interval_days=settings.interval_days, mask_path=mask,
        min_valid_fraction=settings.min_valid_fraction if settings.scene_filter else 0.0,
        fractions=fractions if mask else None,
        budget_bytes=budget_bytes, progress=parts[2].scaled(0.0, 0.3), features=computed)
    training_rows = interpolate_pixels(source, interpolation, plan.train, mask_path=mask, budget_bytes=budget_bytes,
                                       progress=parts[2].scaled(0.3, 1.0), features=computed)
    notes = [f"Interpolation: {len(interpolation.kept)} of {len(interpolation.input_dates)} dates kept, "
             f"{len(interpolation.dates)} dates on the {settings.interval_days}-day grid."]
    progress.log(notes[0])

    progress.log("Step 4/6: training")
    columns = FeatureColumns([interpolated_stack_info(source, interpolation, computed)])
    progress.log(f"{plan.train.size} training and {plan.test.size} test pixels; {columns.n_features} features.")
    model, importances = fit_model(training_rows, plan, columns, reference, legend, settings.train, rng, parts[3])
    del training_rows
    model.metadata["pipeline"] = describe_settings(settings)
    model.save(outputs.model)
    notes.extend(plan.notes)

    progress.log("Step 5/6: interpolation and classification, block by block"
                 + ("" if outputs.interpolated else " (the interpolated features are not kept)"))
    # a kept interpolated stack is put in place only with the map (the last block's prediction
    # finishes after the interpolation has closed its own output)
    smoothing = tempfile.TemporaryDirectory(dir=Path(outputs.classification).parent, prefix=".eolulc-smooth-") \
        if settings.smoothing else None
    if smoothing is not None:  # the classifier's map and probabilities are smoothed into the outputs
        settings.smooth.validate()
        raw = Path(smoothing.name)
        map_paths = (str(raw / "map.tif"), None, str(raw / "probabilities.tif"))
    else:
        map_paths = (outputs.classification, outputs.confidence, outputs.probabilities)
    with atomic_outputs([outputs.interpolated]) as (interpolated,), \
            MapWriter(model, info.grid, map_paths[0], map_paths[1], settings.train.threads,
                      output_probabilities=map_paths[2], probabilities_float=outputs.probabilities_float) as mapper, \
            WriteBehind() as behind:

        def classify_block(window: Window, values: np.ndarray, stack: StackInfo) -> None:
            # predicted in the background while the next block is interpolated
            behind.submit(lambda: mapper.write(window, block_rows(values, stack)))

        # a block waiting for the prediction (its rows, their NaN flags and valid subset) and the
        # prediction's own memory
        write_interpolation(source, interpolation, interpolated, mask_path=mask, budget_bytes=budget_bytes,
                            progress=parts[4], features=computed, on_block=classify_block,
                            on_block_bytes=columns.n_features * 10 + mapper.bytes_per_pixel())
    classified = mapper.result
    if smoothing is not None:
        with smoothing:
            smoothed = smooth_stack(map_paths[2], outputs.classification, outputs.probabilities, outputs.confidence,
                                    settings.smooth, budget_bytes=budget_bytes)
        classified.class_pixels, total = smoothed.class_pixels, sum(smoothed.class_pixels.values()) or 1
        notes.append(f"Spatial smoothing (Bayesian, as sits: window {settings.smooth.window_size}, neighbourhood "
                     f"fraction {settings.smooth.neighbourhood_fraction}, smoothness {settings.smooth.smoothness}"
                     + (f", minimum mapping unit {settings.smooth.min_mapping_unit} px" if
                        settings.smooth.min_mapping_unit > 1 else "")
                     + f") changed the class of {smoothed.changed_pixels} pixels "
                       f"({100 * smoothed.changed_pixels / total:.1f} %); the accuracy is the smoothed map's.")
        progress.log(notes[-1])

    progress.log("Step 6/6: reference, agreement and accuracy report")
    model_legend = model.legend
    mapped_test = _write_reference_and_agreement(reference, outputs, info, model_legend, classified.nodata,
                                                 budget_bytes, parts[5], plan.test)
    judged = mapped_test != classified.nodata
    if not judged.all():
        notes.append(f"{int((~judged).sum())} test pixels have no features (nodata on the map) and are not judged.")
    truth = plan.classes.ravel()[plan.test]
    report = assess(truth[judged].astype(int), mapped_test[judged].astype(int), model_legend,
                    map_pixel_counts=classified.class_pixels, pixel_area_m2=pixel_area_m2(info.grid))
    notes.extend(warning_notes(report, model.class_ids))
    report.update(split=settings.train.split, pipeline=describe_settings(settings),
                  interpolation=interpolation.as_dict(),
                  feature_importance=importance_table(importances))
    write_report(outputs.report, outputs.report_json, report,
                 "EO LULC pipeline: accuracy on the held-out test part", notes=notes,
                 extra_sections=report_sections(settings, report["interpolation"], importances))
    parts[5].report(1.0)
    return PipelineResult(report=report, notes=notes)


def check_cloud_mask_source(info: StackInfo, settings: PipelineSettings, cloud_mask: str | None) -> None:
    """Refuse a mask source that cannot work before anything is computed: a given mask missing or
    off the stack's grid and dates, or s2cloudless on an L2A stack (its model was trained on L1C
    top-of-atmosphere reflectance; bottom-of-atmosphere values give other clouds) unless forced."""
    source = settings.cloud_mask_source
    if source not in CLOUD_MASK_SOURCES:
        raise ValueError(f"unknown cloud-mask source {source!r}; choose one of {', '.join(CLOUD_MASK_SOURCES)}")
    if source == GIVEN_MASK:
        if not cloud_mask:
            raise ValueError("CLOUD_MASK_SOURCE is 'given mask stack' but no CLOUD_MASK stack is given: choose the "
                             "SCL mask of 'Import Sentinel-2 products (SAFE)' or an EOPatch's CLM stack")
        mask_info = read_info(cloud_mask)
        try:
            check_inputs(info, mask_info)
        except ValueError as error:
            raise ValueError(f"the CLOUD_MASK stack does not fit the input: {error}") from None
        if mask_info.n_bands != 1:
            raise ValueError(f"the CLOUD_MASK stack has {mask_info.n_bands} bands per date; a cloud mask has one")
        return
    if cloud_mask:
        raise ValueError("a CLOUD_MASK stack is given but CLOUD_MASK_SOURCE is s2cloudless: set CLOUD_MASK_SOURCE "
                         "to 'given mask stack' to use it, or leave CLOUD_MASK empty")
    if not settings.force_s2cloudless:
        refuse_s2cloudless_on_l2a(info, "set CLOUD_MASK_SOURCE to 'given mask stack' with the SCL mask (OUTPUT_MASK "
                                        "of 'Import Sentinel-2 products (SAFE)') as CLOUD_MASK, or FORCE_S2CLOUDLESS "
                                        "to run s2cloudless anyway")


def refuse_s2cloudless_on_l2a(info: StackInfo, fix: str) -> None:
    """Refuse s2cloudless on a stack tagged L2A: its model was trained on L1C top-of-atmosphere
    reflectance, and bottom-of-atmosphere values give other clouds. ``fix`` says what to do instead
    (the parameters differ between algorithms)."""
    if info.tags.get(TAG_LEVEL) == "L2A":
        raise ValueError("the input is an L2A stack (bottom-of-atmosphere reflectance) and s2cloudless was trained "
                         f"on L1C top-of-atmosphere reflectance: {fix}")


def _step_progress(progress: Progress) -> list[Progress]:
    steps, start = [], 0.0
    for _, weight in STEPS:
        steps.append(progress.scaled(start, start + weight))
        start += weight
    return steps


def report_sections(settings: PipelineSettings, interpolation: dict,
                    importances: list[tuple[str, float]]) -> list[tuple[str, str]]:
    """What the report shows besides the accuracy: how the map was made (the settings, the
    training's included), the interpolation grid with the kept dates, and the features the model
    relied on."""
    train = {f"training {name}": value for name, value in asdict(settings.train).items() if name != "threads"}
    return [("Settings", settings_html({**describe_settings(settings), **train})),
            ("Interpolation grid and kept dates", interpolation_html(interpolation, settings.interval_days)),
            ("Feature importance", importance_html(importances))]


def describe_settings(settings: PipelineSettings) -> dict:
    """The settings as JSON, for model metadata, reports and resume markers (core.batch)."""
    return {
        "scene_filter": settings.scene_filter,
        "min_valid_fraction": settings.min_valid_fraction,
        "cloud_mask_in_interpolation": settings.cloud_mask_in_interpolation,
        "interval_days": settings.interval_days,
        "start": settings.start,
        "end": settings.end,
        "processing_resolution": settings.processing_resolution,
        "cloud_mask_source": settings.cloud_mask_source,
        "bands": list(settings.features.bands),
        "indices": [i.name for i in settings.features.indices],
        "smoothing": settings.smooth.describe() if settings.smoothing else False,
    }


def _write_reference_and_agreement(reference: Reference, outputs: PipelineOutputs, info: StackInfo, legend: Legend,
                                   class_nodata: int, budget_bytes: int | None, progress: Progress,
                                   test_pixels: np.ndarray) -> np.ndarray:
    """The reference on the map's grid (styled with the model's legend) and where they agree;
    returns the map's classes at ``test_pixels`` (flat indices)."""
    grid = info.grid
    ref_info = StackInfo(grid=grid, dates=(None,), bands=("reference",), dtype="uint16", nodata=NO_CLASS)
    agreement_info = StackInfo(grid=grid, dates=(None,), bands=("agreement",), dtype="uint8", nodata=0)
    test = ChosenPixels(test_pixels, grid.width)
    mapped_test = np.full(test_pixels.size, class_nodata, np.int64)
    with atomic_outputs([outputs.reference, outputs.agreement]) as (ref_path, agreement_path):
        with StackWriter(str(ref_path), ref_info) as ref_writer, \
                StackWriter(str(agreement_path), agreement_info) as agreement_writer, \
                open_stack(outputs.classification) as classes:
            for block in iter_blocks(grid.height, grid.width, 16, budget_bytes, progress=progress):
                rows = slice(block.row, block.row + block.height)
                cols = slice(block.col, block.col + block.width)
                truth = reference.classes[rows, cols]
                mapped = classes.read(block.window)[0, ..., 0]
                inside, local = test.pixels_in(block.window)
                mapped_test[inside] = mapped.ravel()[local]
                agreement = np.where(truth == NO_CLASS, 0, np.where(truth == mapped, AGREE, DISAGREE))
                agreement[mapped == class_nodata] = 0
                ref_writer.write(truth[None, ..., None], block.window)
                agreement_writer.write(agreement.astype(np.uint8)[None, ..., None], block.window)
    write_sidecar_qml(outputs.reference, legend.restricted(reference.class_ids), nodata=NO_CLASS)
    write_sidecar_qml(outputs.agreement, AGREEMENT_LEGEND, nodata=0)
    return mapped_test


def default_outputs(folder: str | Path, keep_features: bool = False,
                    keep_interpolated: bool = False) -> PipelineOutputs:
    """All products in one folder, with the names the demo and scripts use; the per-date and the
    interpolated feature stacks only with ``keep_features`` and ``keep_interpolated``."""
    folder = Path(folder)
    return PipelineOutputs(
        cloud_mask=str(folder / "cloud_mask.tif"), features=str(folder / "features.tif") if keep_features else None,
        interpolated=str(folder / "features_interpolated.tif") if keep_interpolated else None,
        model=str(folder / "model.json"),
        classification=str(folder / "classification.tif"), confidence=str(folder / "confidence.tif"),
        reference=str(folder / "reference.tif"), agreement=str(folder / "agreement.tif"),
        report=str(folder / "report.html"), report_json=str(folder / "report.json"),
    )
