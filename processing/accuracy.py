"""``eolulc:accuracy``: a class map against a reference map, as an HTML and a JSON report."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..core.progress import Progress
from .base import EoLulcAlgorithm
from .reference import (
    REFERENCE,
    add_legend_parameter,
    add_reference_parameters,
    add_score_outputs,
    describe_scores,
    legend_from_parameters,
    reference_on_grid,
    score_results,
)


class AccuracyAlgorithm(EoLulcAlgorithm):
    ALGORITHM_ID = "accuracy"
    DISPLAY_NAME = "Accuracy assessment"
    GROUP_ID = "classification"
    GROUP = "Classification"
    DESCRIPTION = (
        "Compares a class raster (e.g. a classification) pixel by pixel with a reference map (a class raster "
        "or polygons with a class field) on the class raster's grid. Reports overall accuracy, Cohen's kappa, "
        "weighted and macro F1, per-class precision, recall, F1 and support, the confusion matrix (counts and "
        "row-normalised) and the area-adjusted accuracy and area estimates with confidence intervals of "
        "Olofsson et al. (2014), with the map classes as strata. Writes an HTML report that opens offline and, "
        "optionally, the same figures as JSON."
    )

    INPUT = "INPUT"
    REFERENCE = REFERENCE
    IGNORE_CLASSES = "IGNORE_CLASSES"
    OUTPUT_HTML = "OUTPUT_HTML"
    OUTPUT_JSON = "OUTPUT_JSON"

    def initAlgorithm(self, config=None):
        self.add(
            QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Class raster (map to assess)")),
            "The map to assess, e.g. the output of Classify: integer class ids in band 1. Its nodata pixels "
            "are not compared. Its grid is the grid of the comparison.",
        )
        add_reference_parameters(self)
        add_legend_parameter(self)
        self.add(
            QgsProcessingParameterString(self.IGNORE_CLASSES, self.tr("Classes to ignore"), defaultValue="0",
                                         optional=True),
            "Comma-separated class ids left out of the comparison wherever they occur in the map or the "
            "reference (default 0 = no data).",
        )
        self.add(
            QgsProcessingParameterFileDestination(self.OUTPUT_HTML, self.tr("Accuracy report (HTML)"),
                                                  fileFilter="HTML files (*.html *.htm)"),
            "The report: summary, per-class table and chart, confusion matrix heat map and area-adjusted "
            "estimates; one file with no external resources.",
        )
        self.add(
            QgsProcessingParameterFileDestination(self.OUTPUT_JSON, self.tr("Accuracy figures (JSON)"),
                                                  fileFilter="JSON files (*.json)", optional=True,
                                                  createByDefault=False),
            "Optional: every figure of the report as JSON (null where a value is undefined).",
        )
        add_score_outputs(self)

    def execute(self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback,
                progress: Progress) -> dict[str, Any]:
        from ..core.accuracy import assess_confusion, compare_raster, pixel_area_m2, raster_grid
        from ..core.report import write_report

        source = self.raster_source(parameters, self.INPUT, context, "choose a class raster")
        bands = self.stack_info(source, self.INPUT).count
        if bands > 1:
            feedback.pushWarning(self.tr("The class raster has {} bands; band 1 is assessed.").format(bands))
        html_path = self.required_output(parameters, self.OUTPUT_HTML, context, "choose a file for the report")
        json_path = self.output_path(parameters, self.OUTPUT_JSON, context)
        ignore = self._ignored(parameters, context)
        with self.about(self.INPUT):
            grid = raster_grid(source)
        feedback.pushInfo(self.tr("Bringing the reference onto the class raster's grid ({} x {} pixels)")
                          .format(grid.width, grid.height))
        reference = reference_on_grid(self, parameters, context, grid, progress)
        legend = legend_from_parameters(self, parameters, context, reference.class_ids, progress)
        legend = legend.with_names(reference.names)
        with self.about(self.INPUT):
            counts, labels, mapped = compare_raster(source, reference.classes, ignore, progress.scaled(0.0, 0.9))
        if counts.sum() == 0:
            raise self.parameter_error(
                self.REFERENCE,
                self.tr("no pixel has both a reference class and a map class (outside the ignored classes {}): "
                        "the reference covers only nodata or ignored pixels of the map").format(sorted(ignore)),
            )
        with self.about(self.INPUT):
            report = assess_confusion(counts, labels, legend, mapped, pixel_area_m2(grid))
        notes = []
        if reference.polygons is not None:
            notes.append("Reference polygons rasterized onto the map's grid (pixel centres).")
        notes.append(f"Ignored classes: {', '.join(str(i) for i in sorted(ignore)) or 'none'}.")
        write_report(html_path, json_path, report, self.tr("Accuracy of {}").format(Path(source).stem), notes)
        progress.report(1.0)
        feedback.pushInfo(describe_scores(report, self.tr("{} pixels").format(report["n_samples"])))
        return {self.OUTPUT_HTML: html_path, self.OUTPUT_JSON: json_path, **score_results(report)}

    def _ignored(self, parameters: dict[str, Any], context: QgsProcessingContext) -> set[int]:
        text = self.parameterAsString(parameters, self.IGNORE_CLASSES, context) or ""
        items = [item for item in re.split(r"[\s,;]+", text.strip()) if item]
        try:
            return {int(item) for item in items}
        except ValueError:
            raise self.parameter_error(
                self.IGNORE_CLASSES, self.tr("'{}' is not a list of integer class ids, e.g. 0 or 0,255").format(text)
            ) from None
