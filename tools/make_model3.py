"""Write ``resources/models/lulc_chain.model3``: the ``eolulc:lulcpipeline`` chain as a graphical model.

The model chains the provider's own algorithms (cloud mask -> features -> interpolation -> train ->
classify -> smooth, when the pipeline smooths by default -> accuracy) with the settings
``lulcpipeline`` uses by default, so that for the same inputs and seed both give the same
classification (tests/qgis/test_alg_model3.py checks it pixel for pixel).
Every child setting is written out as a static value, read from the pipeline's parameter defaults and
the core defaults it relies on (``TrainSettings``, ``CloudDetector``, ``FeatureSpec``): run this again
when one of those changes. The provider loads every ``resources/models/*.model3`` as
``eolulc:<model name>``.

Usage, from the repository root (needs QGIS's Python, i.e. the project's venv)::

    QT_QPA_PLATFORM=offscreen .venv/bin/python tools/make_model3.py            # writes the file
    QT_QPA_PLATFORM=offscreen .venv/bin/python tools/make_model3.py --check    # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PLUGIN_NAME = "eolulc"
OUTPUT = REPO / "resources" / "models" / "lulc_chain.model3"
MODEL_NAME = "lulcchain"
MODEL_GROUP = "Pipeline"
MODEL_GROUP_ID = "pipeline"

#: Model inputs are named like lulcpipeline's parameters, so the same parameter set runs both.
INPUT, REFERENCE, CLASS_FIELD, NAME_FIELD = "INPUT", "REFERENCE", "CLASS_FIELD", "NAME_FIELD"
MIN_VALID_FRACTION, INTERVAL_DAYS, SEED = "MIN_VALID_FRACTION", "INTERVAL_DAYS", "SEED"

HELP = {
    "ALG_DESC": (
        "The eo-learn LULC chain of 'LULC pipeline', as a graphical model made of the provider's own steps "
        "(open it in the Model Designer to change or extend it): s2cloudless cloud mask, bands and indices per "
        "date, cloudy-scene filtering and temporal interpolation onto a regular date grid (cloudy pixels "
        "treated as missing), LightGBM training with a spatial train/test split, classification, Bayesian "
        "smoothing of the class probabilities, and an accuracy assessment of the map against the whole "
        "reference. Every step runs with the settings "
        "'LULC pipeline' uses by default, so for the same inputs and seed both give the same classification. "
        "The test report is the honest accuracy (held-out spatial blocks); the map-vs-reference report also "
        "counts the training pixels and is optimistic. 'LULC pipeline' additionally exposes the cloud-mask "
        "switch for the interpolation and writes the styled reference and agreement layers."
    ),
    "ALG_CREATOR": "EO LULC",
    "ALG_HELP_CREATOR": "EO LULC",
    INPUT: "A time stack with the 13 Sentinel-2 L1C bands (e.g. from 'Build time stack from per-date rasters'); "
           "reflectance or digital numbers.",
    REFERENCE: "The reference map: a class raster (integer class ids, 0 = no data) or polygons with a class field.",
    CLASS_FIELD: "For a polygon reference (required then): the field holding the integer class id (e.g. LULC_ID); "
                 "a text field holding whole numbers such as '3' works too.",
    NAME_FIELD: "For a polygon reference, optional: the field holding class names (e.g. LULC_NAME).",
    MIN_VALID_FRACTION: "A date is kept for the interpolation when more than this share of its pixels is clear "
                        "(0.8 as in the eo-learn example). 0 turns the cloudy-scene filter off.",
    INTERVAL_DAYS: "Spacing of the regular date grid the features are interpolated onto.",
    SEED: "Seed of the train/test split, the sampling and LightGBM.",
    "smooth:classification": "The land-cover map (class ids of the model's legend; a sidecar .qml styles it).",
    "smooth:confidence": "Probability of the chosen class after smoothing, 0-100 (optional).",
    "train:model": "The trained model (reusable with 'Classify with LULC model').",
    "train:test_report": "Accuracy on the held-out spatial test blocks, with feature importances (HTML).",
    "accuracy:accuracy_report": "The map compared with the whole reference, training pixels included (HTML).",
}


def _import_plugin() -> Path:
    """Make the plugin importable as the package ``eolulc`` (a symlink in a temporary folder;
    never the plugin folder itself on sys.path: its processing/ would shadow QGIS's)."""
    folder = Path(tempfile.mkdtemp(prefix="eolulc-model3-"))
    (folder / PLUGIN_NAME).symlink_to(REPO, target_is_directory=True)
    sys.path[:] = [p for p in sys.path if p not in ("", ".") and Path(p).resolve() != REPO]
    sys.path.insert(0, str(folder))
    return folder


def _defaults() -> dict[str, dict]:
    """Static settings of each child: what lulcpipeline runs with by default."""
    from qgis.core import QgsApplication

    from eolulc.core.cloudmask import CloudDetector
    from eolulc.core.features import PRESET_INDICES, FeatureSpec
    from eolulc.core.train import TrainSettings
    from eolulc.processing.cloudmask import VALUE_SCALE_OPTIONS
    from eolulc.processing.features import PRESETS
    from eolulc.processing.training import (
        CLASSIFIER_OPTIONS,
        DEVICE_OPTIONS,
        SAMPLING_OPTIONS,
        SPLIT_OPTIONS,
        WEIGHT_OPTIONS,
    )

    pipeline = QgsApplication.processingRegistry().algorithmById(f"{PLUGIN_NAME}:lulcpipeline")

    def default(name: str):
        return pipeline.parameterDefinition(name).defaultValue()

    def index(options, key) -> int:
        return [k for k, _ in options].index(key)

    detector = {k: p.default for k, p in inspect.signature(CloudDetector.__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}
    spec = FeatureSpec()
    if [i.name for i in spec.indices] != list(PRESET_INDICES) or list(PRESET_INDICES) != list(PRESETS):
        raise SystemExit("the features algorithm's index presets no longer match FeatureSpec's defaults")
    if spec.statistics:
        raise SystemExit("FeatureSpec's default statistics are not empty; map them onto STATISTICS")
    train = TrainSettings()
    for name, value in (("min_valid_fraction", default("MIN_VALID_FRACTION")),
                        ("interval_days", default("INTERVAL_DAYS")), ("seed", default("SEED"))):
        if value is None:
            raise SystemExit(f"lulcpipeline has no default {name}")
    return {
        "cloudmask": {
            "THRESHOLD": float(detector["threshold"]),
            "AVERAGE_OVER": int(detector["average_over"]),
            "DILATION_SIZE": int(detector["dilation_size"]),
            "PROCESSING_RESOLUTION": float(default("PROCESSING_RESOLUTION")),
            "VALUE_SCALE": index(VALUE_SCALE_OPTIONS, detector["value_scale"]),
        },
        "features": {
            "BANDS": str(default("BANDS")),
            "INDICES": [PRESETS.index(name) for name in PRESET_INDICES],
            "CUSTOM_INDICES": "",
            "STATISTICS": [],
        },
        "interpolate": {"START": "", "END": "", "DATES": "", "FILL_EDGES": False},
        "train": {
            "EROSION": str(train.erosion),
            "SAMPLES": int(default("SAMPLES")),
            "SAMPLING": index(SAMPLING_OPTIONS, train.sampling),
            "SPLIT": int(default("SPLIT")),
            "TEST_FRACTION": float(default("TEST_FRACTION")),
            "BLOCK_SIZE": int(train.block_size),
            "CLASSIFIER": index(CLASSIFIER_OPTIONS, train.classifier),
            "N_ESTIMATORS": int(train.n_estimators),
            "LEARNING_RATE": float(train.learning_rate),
            "NUM_LEAVES": int(train.num_leaves),
            "FEATURE_FRACTION": float(train.feature_fraction),
            "EARLY_STOPPING": bool(train.early_stopping),
            "CLASS_WEIGHT": index(WEIGHT_OPTIONS, train.class_weight),
            "EPOCHS": int(train.epochs),
            "BATCH_SIZE": int(train.batch_size),
            "DEEP_LEARNING_RATE": float(train.deep_learning_rate),
            "DEVICE": index(DEVICE_OPTIONS, train.device),
        },
        "classify": {},
        # None: lulcpipeline does not smooth by default, and the model then has no smoothing step
        "smooth": {name: default(name) for name in ("WINDOW_SIZE", "NEIGHBOURHOOD_FRACTION", "SMOOTHNESS",
                                                     "MIN_MAPPING_UNIT")} if default("SMOOTHING") else None,
        "accuracy": {"IGNORE_CLASSES": "0"},
        "model": {
            MIN_VALID_FRACTION: float(default("MIN_VALID_FRACTION")),
            INTERVAL_DAYS: int(default("INTERVAL_DAYS")),
            SEED: int(default("SEED")),
            "split_label": SPLIT_OPTIONS[int(default("SPLIT"))][1],
        },
    }


def build_model():
    """The chain as a QgsProcessingModelAlgorithm (QGIS and the eolulc provider must be loaded)."""
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterField,
        QgsProcessingParameterMapLayer,
        QgsProcessingParameterNumber,
        QgsProcessingParameterRasterLayer,
    )
    from qgis.PyQt.QtCore import QPointF, QSizeF

    from eolulc.core import limits
    from eolulc.processing.compat import field_types, raster_and_polygon_types
    from eolulc.processing.reference import CLASS_FIELD_LABEL

    defaults = _defaults()
    model_defaults = defaults["model"]
    model = QgsProcessingModelAlgorithm(MODEL_NAME, MODEL_GROUP, MODEL_GROUP_ID)
    model.setHelpContent(HELP)

    _, any_type = field_types()
    integer = QgsProcessingParameterNumber.Type.Integer
    double = QgsProcessingParameterNumber.Type.Double
    inputs = (
        QgsProcessingParameterRasterLayer(INPUT, "Sentinel-2 L1C time stack"),
        QgsProcessingParameterMapLayer(REFERENCE, "Reference land cover (raster or polygons)",
                                       types=raster_and_polygon_types()),
        QgsProcessingParameterField(CLASS_FIELD, CLASS_FIELD_LABEL, parentLayerParameterName=REFERENCE,
                                    type=any_type, optional=True),
        QgsProcessingParameterField(NAME_FIELD, "Class name field (polygons)", parentLayerParameterName=REFERENCE,
                                    type=any_type, optional=True),
        QgsProcessingParameterNumber(MIN_VALID_FRACTION, "Minimum clear fraction (0 = no scene filter)", type=double,
                                     defaultValue=model_defaults[MIN_VALID_FRACTION], minValue=0.0, maxValue=1.0),
        QgsProcessingParameterNumber(INTERVAL_DAYS, "Interval (days)", type=integer,
                                     defaultValue=model_defaults[INTERVAL_DAYS], minValue=1,
                                     maxValue=limits.MAX_INTERVAL_DAYS),
        QgsProcessingParameterNumber(SEED, "Random seed", type=integer, defaultValue=model_defaults[SEED],
                                     minValue=0, maxValue=limits.MAX_SEED),
    )
    for row, parameter in enumerate(inputs):
        parameter.setHelp(HELP[parameter.name()])
        component = QgsProcessingModelParameter(parameter.name())
        component.setPosition(QPointF(140, 80 + 80 * row))
        component.setSize(QSizeF(240, 40))
        model.addModelParameter(parameter, component)
    # the dialog and the designer list the inputs in this order (the L1C stack first)
    model.setParameterOrder([parameter.name() for parameter in inputs])

    def param(name):
        return [QgsProcessingModelChildParameterSource.fromModelParameter(name)]

    def child_output(child_id, name):
        return [QgsProcessingModelChildParameterSource.fromChildOutput(child_id, name)]

    reference = {REFERENCE: param(REFERENCE), CLASS_FIELD: param(CLASS_FIELD), NAME_FIELD: param(NAME_FIELD)}
    steps = (
        ("cloudmask", "1. Cloud mask (s2cloudless)", {INPUT: param(INPUT)}, {}),
        ("features", "2. Bands and indices per date", {INPUT: param(INPUT)}, {}),
        ("interpolate", "3. Scene filter and temporal interpolation",
         {INPUT: child_output("features", "OUTPUT"), "MASK": child_output("cloudmask", "OUTPUT_MASK"),
          MIN_VALID_FRACTION: param(MIN_VALID_FRACTION), INTERVAL_DAYS: param(INTERVAL_DAYS)}, {}),
        ("train", f"4. Train LightGBM ({model_defaults['split_label'].lower()} split)",
         {"FEATURES": child_output("interpolate", "OUTPUT"), **reference, SEED: param(SEED)},
         {"model": ("OUTPUT_MODEL", "Model file", True),
          "test_report": ("OUTPUT_REPORT", "Test report (held-out blocks, HTML)", True)}),
    )
    maps = {"classification": ("OUTPUT", "Land-cover map", True),
            "confidence": ("OUTPUT_CONFIDENCE", "Confidence", False)}
    classify = {"FEATURES": child_output("interpolate", "OUTPUT"), "MODEL": child_output("train", "OUTPUT_MODEL")}
    if defaults["smooth"] is None:
        steps += (("classify", "5. Classify", classify, maps),)
    else:  # the class probabilities (a temporary file) are smoothed into the map, as lulcpipeline does
        steps += (("classify", "5. Classify (class probabilities)", classify, {}),
                  ("smooth", "6. Smooth the class probabilities (Bayesian)",
                   {INPUT: child_output("classify", "OUTPUT_PROBABILITIES")}, maps))
    mapped = steps[-1][0]
    steps += (("accuracy", f"{len(steps) + 1}. Map vs reference accuracy",
               {INPUT: child_output(mapped, "OUTPUT"), **reference},
               {"accuracy_report": ("OUTPUT_HTML", "Map vs reference report (HTML)", True)}),)
    for row, (child_id, description, sources, outputs) in enumerate(steps):
        child = QgsProcessingModelChildAlgorithm(f"{PLUGIN_NAME}:{child_id}")
        if child.algorithm() is None:
            raise SystemExit(f"{PLUGIN_NAME}:{child_id} is not registered")
        child.setChildId(child_id)
        child.setDescription(description)
        child.setPosition(QPointF(520, 80 + 110 * row))
        child.setSize(QSizeF(300, 50))  # room for the step's name on one line
        for name, value in (defaults[child_id] or {}).items():
            child.addParameterSources(name, [QgsProcessingModelChildParameterSource.fromStaticValue(value)])
        for name, value in sources.items():
            child.addParameterSources(name, value)
        model_outputs = {}
        for column, (key, (output_name, label, mandatory)) in enumerate(outputs.items()):
            output = QgsProcessingModelOutput(key, label)
            output.setChildId(child_id)
            output.setChildOutputName(output_name)
            output.setMandatory(mandatory)
            output.setPosition(QPointF(860, 80 + 110 * row + 5 + 50 * column))  # stacked: no link crosses a box
            output.setSize(QSizeF(240, 40))
            model_outputs[key] = output
        child.setModelOutputs(model_outputs)
        model.addChildAlgorithm(child)
    model.updateDestinationParameters()
    # what the Model Designer checks before it runs a model: every child's parameters against its
    # algorithm (a parameter the step gained since this script was written is mandatory there)
    issues = [f"{child_id}: {issue}" for child_id in sorted(model.childAlgorithms())
              for issue in model.validateChildAlgorithm(child_id)[1]]
    if issues:
        raise SystemExit("the model would be invalid in the Model Designer:\n" + "\n".join(issues))
    return model


def canonical(text: str) -> str:
    """QGIS writes each ``<Option>``'s attributes in Qt's hash order, which changes from run to run;
    put them in one fixed order (name, type, value) so that the file only changes when the model does."""
    order = {"name": 0, "type": 1, "value": 2}

    def sort_attributes(match: re.Match) -> str:
        attributes = re.findall(r'([\w:-]+)="([^"]*)"', match.group(2))
        attributes.sort(key=lambda item: (order.get(item[0], len(order)), item[0]))
        return "<{}{}{}>".format(match.group(1), "".join(f' {k}="{v}"' for k, v in attributes), match.group(3))

    return re.sub(r'<([\w:-]+)((?:\s+[\w:-]+="[^"]*")*)\s*(/?)>', sort_attributes, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="only compare with the existing file")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    folder = _import_plugin()
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    model = None
    try:
        from eolulc.processing.provider import EoLulcProvider

        provider = EoLulcProvider()  # keep a Python reference: sip would free it
        QgsApplication.processingRegistry().addProvider(provider)
        model = build_model()
        with tempfile.TemporaryDirectory() as tmp:
            written = Path(tmp) / "model.model3"
            if not model.toFile(str(written)):
                raise SystemExit(f"could not write {written}")
            text = canonical(written.read_text(encoding="utf-8"))
        if args.check:
            current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
            if current != text:
                print(f"{args.output} is stale: run tools/make_model3.py", file=sys.stderr)
                return 1
            print(f"{args.output} is up to date")
            return 0
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output} (eolulc:{MODEL_NAME})")
        return 0
    finally:
        del model
        app.exitQgis()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
