"""``eolulc:interpolate``: an irregular, cloudy time stack -> a regular, gap-free one."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..core import limits
from ..core.progress import Progress
from .base import EoLulcAlgorithm


class InterpolateAlgorithm(EoLulcAlgorithm):
    ALGORITHM_ID = "interpolate"
    DISPLAY_NAME = "Interpolate time series (regular dates, cloud gaps filled)"
    GROUP_ID = "timeseries"
    GROUP = "Time series"
    DESCRIPTION = (
        "Turns an irregular, cloudy time stack into a regular, gap-free one: cloudy scenes are dropped, "
        "then every pixel and band is interpolated linearly in time over its valid observations onto "
        "new dates (START + k x INTERVAL_DAYS while before END, or an explicit list). The result equals "
        "eo-learn's LinearInterpolationTask (after the LULC example's cloudy-scene filter), computed "
        "block by block. Acquisitions within the same hour are averaged first. Dates before a pixel's "
        "first or after its last valid observation are nodata unless 'fill' is on."
    )

    INPUT = "INPUT"
    MASK = "MASK"
    MIN_VALID_FRACTION = "MIN_VALID_FRACTION"
    START = "START"
    END = "END"
    INTERVAL_DAYS = "INTERVAL_DAYS"
    DATES = "DATES"
    FILL_EDGES = "FILL_EDGES"
    OUTPUT = "OUTPUT"
    OUTPUT_COUNT = "OUTPUT_COUNT"
    OUTPUT_REPORT = "OUTPUT_REPORT"

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        from ..core.interpolate import DEFAULT_INTERVAL_DAYS, DEFAULT_MIN_VALID_FRACTION

        self.add(
            QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Time stack")),
            "Any EO LULC time stack (bands, indices, ...). Its nodata values are invalid observations.",
        )
        self.add(
            QgsProcessingParameterRasterLayer(self.MASK, self.tr("Cloud mask stack"), optional=True),
            "Optional mask stack on the same dates as the input (one band per date, or one per input band): "
            "0 = clear; anything else (1 = cloud) and nodata = invalid. Without it only the input's nodata "
            "is invalid.",
        )
        self.add(
            QgsProcessingParameterNumber(
                self.MIN_VALID_FRACTION, self.tr("Minimum valid fraction of a date"),
                type=QgsProcessingParameterNumber.Type.Double, defaultValue=DEFAULT_MIN_VALID_FRACTION,
                minValue=0.0, maxValue=1.0,
            ),
            "Dates whose share of valid pixels (from the mask if given, else from the input) is not above "
            "this are dropped before interpolating, as in the eo-learn LULC example (0.8). 0 keeps all dates.",
        )
        self.add(
            QgsProcessingParameterString(self.START, self.tr("Start date"), defaultValue="", optional=True),
            "First new date (ISO, e.g. 2016-01-01). Empty: the day of the input's first date.",
        )
        self.add(
            QgsProcessingParameterString(self.END, self.tr("End date (excluded)"), defaultValue="", optional=True),
            "New dates run while strictly before this date (ISO). Empty: the day after the input's last date.",
        )
        self.add(
            QgsProcessingParameterNumber(
                self.INTERVAL_DAYS, self.tr("Interval (days)"),
                type=QgsProcessingParameterNumber.Type.Integer, defaultValue=DEFAULT_INTERVAL_DAYS, minValue=1,
                maxValue=limits.MAX_INTERVAL_DAYS,
            ),
            "Days between new dates.",
        )
        self.add(
            QgsProcessingParameterString(
                self.DATES, self.tr("Explicit new dates"), defaultValue="", optional=True, multiLine=True
            ),
            "Instead of start/end/interval: the new dates as a list of ISO dates or date-times separated by "
            "commas, spaces or new lines.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterBoolean(
                self.FILL_EDGES, self.tr("Fill before the first and after the last valid observation"),
                defaultValue=False,
            ),
            "Off (as eo-learn): such dates are nodata. On: they take the nearest valid value.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Interpolated stack")),
            "Time stack on the new dates with the input's bands, float, NaN as nodata.",
        )
        self.add(
            QgsProcessingParameterRasterDestination(
                self.OUTPUT_COUNT, self.tr("Valid observations per pixel"), optional=True, createByDefault=False
            ),
            "Number of valid observation times (after the filter, same-hour acquisitions counted once) "
            "per pixel, one band per input band.",
        )
        self.add(
            QgsProcessingParameterFileDestination(
                self.OUTPUT_REPORT, self.tr("Report of kept and dropped dates"), fileFilter="JSON (*.json)",
                optional=True, createByDefault=False,
            ),
            "JSON: each date's valid fraction, the dates kept and dropped by the filter, and the new dates. "
            "The dropped dates are also stored in the output's EOLULC_INTERPOLATION metadata.",
        )

    def execute(self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback,
                progress: Progress) -> dict[str, Any]:
        from ..core.interpolate import check_inputs, date_grid, default_range, interpolate_stack, parse_date_list
        from ..core.timestack import parse_datetime, read_info

        source = self.raster_source(parameters, self.INPUT, context, "choose a time stack")
        mask = self.raster_source(parameters, self.MASK, context)
        with self.about(self.INPUT):
            info = read_info(source)
            check_inputs(info, None)
        if mask:
            with self.about(self.MASK):
                check_inputs(info, read_info(mask))

        explicit = self.parameterAsString(parameters, self.DATES, context).strip()
        if explicit:
            with self.about(self.DATES):
                grid = parse_date_list(explicit)
        else:
            start_text = self.parameterAsString(parameters, self.START, context).strip()
            end_text = self.parameterAsString(parameters, self.END, context).strip()
            first_day, day_after = default_range(info)
            with self.about(self.START):
                start = parse_datetime(start_text) if start_text else first_day
            with self.about(self.END):
                end = parse_datetime(end_text) if end_text else day_after
            with self.about(self.START):
                grid = date_grid(start, end, self.parameterAsInt(parameters, self.INTERVAL_DAYS, context))

        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        output_count = self.output_path(parameters, self.OUTPUT_COUNT, context)
        output_report = self.output_path(parameters, self.OUTPUT_REPORT, context)
        # its errors (grid outside the kept dates, every date too cloudy) say what to change
        report = interpolate_stack(
            source,
            output,
            grid=grid,
            mask_path=mask,
            min_valid_fraction=self.parameterAsDouble(parameters, self.MIN_VALID_FRACTION, context),
            fill_edges=self.parameterAsBoolean(parameters, self.FILL_EDGES, context),
            output_count=output_count,
            output_report=output_report,
            progress=progress,
        )
        dropped = report.as_dict()["dropped_dates"]
        if dropped:
            feedback.pushInfo(self.tr("Dropped dates: {}").format(", ".join(dropped)))
        results: dict[str, Any] = {self.OUTPUT: output}
        if output_count:
            results[self.OUTPUT_COUNT] = output_count
        if output_report:
            results[self.OUTPUT_REPORT] = output_report
        return results
