"""The training parameters, declared once for every algorithm that trains a model.

'Train LULC classifier' exposes all of them; 'LULC pipeline' and the batch pipeline a few (the
others keep :class:`~..core.train.TrainSettings`' defaults). Declaring them here keeps their ids,
labels, help, bounds (:mod:`..core.limits`) and defaults (``TrainSettings``, the recipe's) the
same wherever they appear, and :func:`train_settings` reads back exactly the ones declared.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..core import limits

if TYPE_CHECKING:
    from ..core.train import TrainSettings

SPLIT_OPTIONS = (("blocks", "Spatial blocks"), ("polygons", "By polygon"),
                 ("random", "Random pixels (overstates accuracy)"))
SAMPLING_OPTIONS = (("proportional", "Proportional to class frequency (stratified)"),
                    ("balanced", "Balanced (equal per class)"))
CLASSIFIER_OPTIONS = (("gbdt", "LightGBM gradient boosting"), ("rf", "LightGBM random forest"),
                      ("tempcnn", "TempCNN, temporal convolutions (deep; needs PyTorch)"),
                      ("ltae", "L-TAE, lightweight temporal attention (deep; needs PyTorch)"))
DEVICE_OPTIONS = (("auto", "GPU when PyTorch sees one, else CPU"), ("cpu", "CPU"), ("cuda", "GPU (CUDA)"))
WEIGHT_OPTIONS = (("none", "None"), ("balanced", "Balanced (inverse class frequency)"))

EROSION = "EROSION"
SAMPLES = "SAMPLES"
SAMPLING = "SAMPLING"
CLASS_SAMPLES = "CLASS_SAMPLES"
SPLIT = "SPLIT"
TEST_FRACTION = "TEST_FRACTION"
BLOCK_SIZE = "BLOCK_SIZE"
CLASSIFIER = "CLASSIFIER"
N_ESTIMATORS = "N_ESTIMATORS"
LEARNING_RATE = "LEARNING_RATE"
NUM_LEAVES = "NUM_LEAVES"
FEATURE_FRACTION = "FEATURE_FRACTION"
EARLY_STOPPING = "EARLY_STOPPING"
CLASS_WEIGHT = "CLASS_WEIGHT"
SEED = "SEED"
EPOCHS = "EPOCHS"
BATCH_SIZE = "BATCH_SIZE"
DEEP_LEARNING_RATE = "DEEP_LEARNING_RATE"
DEVICE = "DEVICE"
#: The deep classifiers' own settings.
DEEP = (EPOCHS, BATCH_SIZE, DEEP_LEARNING_RATE, DEVICE)

#: Every training parameter, in the order 'Train LULC classifier' shows them.
ALL = (EROSION, SAMPLES, SAMPLING, CLASS_SAMPLES, SPLIT, TEST_FRACTION, BLOCK_SIZE, CLASSIFIER, N_ESTIMATORS,
       LEARNING_RATE, NUM_LEAVES, FEATURE_FRACTION, EARLY_STOPPING, CLASS_WEIGHT, SEED, *DEEP)

#: parameter id -> (TrainSettings field, options of an enum or None)
FIELDS = {
    EROSION: ("erosion", None), SAMPLES: ("samples", None), SAMPLING: ("sampling", SAMPLING_OPTIONS),
    CLASS_SAMPLES: ("class_samples", None),
    SPLIT: ("split", SPLIT_OPTIONS), TEST_FRACTION: ("test_fraction", None), BLOCK_SIZE: ("block_size", None),
    CLASSIFIER: ("classifier", CLASSIFIER_OPTIONS), N_ESTIMATORS: ("n_estimators", None),
    LEARNING_RATE: ("learning_rate", None), NUM_LEAVES: ("num_leaves", None),
    FEATURE_FRACTION: ("feature_fraction", None), EARLY_STOPPING: ("early_stopping", None),
    CLASS_WEIGHT: ("class_weight", WEIGHT_OPTIONS), SEED: ("seed", None),
    EPOCHS: ("epochs", None), BATCH_SIZE: ("batch_size", None), DEEP_LEARNING_RATE: ("deep_learning_rate", None),
    DEVICE: ("device", DEVICE_OPTIONS),
}


def _definitions(tr: Callable[[str], str]) -> dict[str, tuple[QgsProcessingParameterDefinition, str]]:
    """Each parameter with its help, defaults from :class:`TrainSettings`."""
    from ..core.deep import PATIENCE
    from ..core.train import TrainSettings

    defaults = TrainSettings()
    integer = QgsProcessingParameterNumber.Type.Integer
    double = QgsProcessingParameterNumber.Type.Double

    def number(name: str, label: str, kind, low: float, high: float) -> QgsProcessingParameterNumber:
        return QgsProcessingParameterNumber(name, tr(label), type=kind, defaultValue=getattr(defaults, FIELDS[name][0]),
                                            minValue=low, maxValue=high)

    def enum(name: str, label: str, options) -> QgsProcessingParameterEnum:
        default = [key for key, _ in options].index(getattr(defaults, FIELDS[name][0]))
        return QgsProcessingParameterEnum(name, tr(label), options=[tr(text) for _, text in options],
                                          defaultValue=default)

    return {
        EROSION: (
            QgsProcessingParameterString(EROSION, tr("Erosion radius (pixels)"), defaultValue=defaults.erosion),
            "Each reference class is shrunk by this radius before sampling, so mixed pixels at class borders are "
            "not trusted (eo-learn erodes by 1). Per class: '1, 8:0, 3:2' erodes by 1, class 8 not at all and "
            "class 3 by 2.",
        ),
        SAMPLES: (
            number(SAMPLES, "Training pixels", integer, 10, limits.MAX_SAMPLES),
            "How many training pixels to sample from the training part (all of them when there are fewer).",
        ),
        SAMPLING: (
            enum(SAMPLING, "Sampling", SAMPLING_OPTIONS),
            "Proportional is stratified: each class gets exactly its share of the training pixels (rounded, the "
            "total exact), as eo-learn's FractionSamplingTask; balanced takes the same number per class (helps "
            "rare classes, at some cost in overall accuracy).",
        ),
        CLASS_SAMPLES: (
            QgsProcessingParameterString(CLASS_SAMPLES, tr("Training pixels per class"),
                                         defaultValue=defaults.class_samples, optional=True),
            "Optional counts for some classes, e.g. '1:500, 2:2000': those classes get that many pixels (all they "
            "have when fewer), '3:0' leaves class 3 out; the classes not listed share the rest of the training "
            "pixels by the sampling rule. The counts must be classes of the reference and add up to at most the "
            "training pixels.",
        ),
        SPLIT: (
            enum(SPLIT, "Train/test split", SPLIT_OPTIONS),
            "Spatial blocks (default) hold out whole square blocks; by polygon holds out whole reference polygons; "
            "random pixels puts neighbours on both sides and overstates accuracy (the report says so). Training "
            "pixels touching test pixels are left out.",
        ),
        TEST_FRACTION: (
            number(TEST_FRACTION, "Test fraction", double, 0.01, 0.9),
            "Share of the labelled pixels held out for the accuracy report.",
        ),
        BLOCK_SIZE: (
            number(BLOCK_SIZE, "Split block size (pixels, 0 = automatic)", integer, 0, limits.MAX_BLOCK_SIZE),
            "Side of the spatial split's blocks; automatic makes 40 or more blocks of 8 to 64 pixels.",
        ),
        CLASSIFIER: (
            enum(CLASSIFIER, "Classifier", CLASSIFIER_OPTIONS),
            "LightGBM gradient boosting (default), LightGBM's random forest mode, or a temporal deep network "
            "on the same per-date features: TempCNN (Pelletier et al. 2019) or L-TAE (Garnot and Landrieu 2020). "
            "The deep ones need PyTorch (Plugins > EO LULC > Install Python dependencies..., optional extra "
            "'deep classifiers'), normalise each band with the training pixels' statistics (kept in the model) "
            "and stop early on the same validation part; the feature stacks must share one date grid.",
        ),
        N_ESTIMATORS: (
            number(N_ESTIMATORS, "Maximum boosting rounds", integer, 1, limits.MAX_TREES),
            "Upper bound of trees per class. With early stopping the model keeps only the rounds that still "
            "improved a validation part of the training pixels, and at least 100.",
        ),
        LEARNING_RATE: (
            number(LEARNING_RATE, "Learning rate", double, 0.0001, 1.0),
            "LightGBM's learning rate (0.1 as LightGBM's default).",
        ),
        NUM_LEAVES: (
            number(NUM_LEAVES, "Leaves per tree", integer, 2, limits.MAX_LEAVES),
            "LightGBM's num_leaves. 15 (LightGBM's default is 31): the same accuracy on the real "
            "TestEOPatch (bench/train_quality.py), smaller trees that fit and predict faster.",
        ),
        FEATURE_FRACTION: (
            number(FEATURE_FRACTION, "Share of features per tree", double, 0.01, 1.0),
            "LightGBM's feature_fraction for boosting: each tree may split on this share of the features, "
            "drawn anew per tree. Dates and bands are redundant, so 0.5 keeps the accuracy (TestEOPatch) and "
            "fits about a third faster; 1 uses every feature. Random forests always use 0.7.",
        ),
        EARLY_STOPPING: (
            QgsProcessingParameterBoolean(EARLY_STOPPING, tr("Early stopping"), defaultValue=defaults.early_stopping),
            "Stop adding trees when 10 % of the training pixels, held out for validation, stop improving for 25 "
            "rounds, but keep at least 100 rounds (stopping earlier lost accuracy on spatial splits of real data, "
            "bench/train_quality.py): a leaner, faster model of the same accuracy. Off: exactly the maximum rounds.",
        ),
        CLASS_WEIGHT: (
            enum(CLASS_WEIGHT, "Class weighting", WEIGHT_OPTIONS),
            "Balanced weights training pixels by inverse class frequency.",
        ),
        SEED: (
            number(SEED, "Random seed", integer, 0, limits.MAX_SEED),
            "Seed of the split, the sampling and LightGBM: the same inputs and seed give the same model.",
        ),
        EPOCHS: (
            number(EPOCHS, "Deep classifiers: maximum epochs", integer, 1, limits.MAX_EPOCHS),
            "Passes over the training pixels (TempCNN, L-TAE). With early stopping the network of the epoch "
            f"with the lowest validation loss is kept; the fit stops after {PATIENCE} epochs without a better one.",
        ),
        BATCH_SIZE: (
            number(BATCH_SIZE, "Deep classifiers: batch size", integer, 2, limits.MAX_BATCH_SIZE),
            "Training pixels per gradient step.",
        ),
        DEEP_LEARNING_RATE: (
            number(DEEP_LEARNING_RATE, "Deep classifiers: learning rate", double, 0.000001, 1.0),
            "Adam's learning rate for TempCNN and L-TAE.",
        ),
        DEVICE: (
            enum(DEVICE, "Deep classifiers: device", DEVICE_OPTIONS),
            "Where TempCNN and L-TAE train and predict: a GPU when PyTorch sees one (default), or the CPU "
            "(threads bounded as for LightGBM; the same seed gives the same model only on the CPU).",
        ),
    }


def add_training_parameters(algorithm, which: Sequence[str], advanced: Sequence[str] = ()) -> None:
    """Declare the training parameters ``which`` (ids of this module, in that order) on
    ``algorithm``; those in ``advanced`` go to the Advanced group."""
    definitions = _definitions(algorithm.tr)
    for name in which:
        definition, help_text = definitions[name]
        algorithm.add(definition, help_text, advanced=name in advanced)


def train_settings(algorithm, parameters: dict[str, Any], context: QgsProcessingContext,
                   which: Sequence[str]) -> TrainSettings:
    """The :class:`TrainSettings` of the declared parameters ``which`` (the others keep their
    defaults); errors name the parameter to fix."""
    from ..core.train import TrainSettings, parse_erosion

    values: dict[str, Any] = {}
    for name in which:
        field, options = FIELDS[name]
        if options is not None:
            values[field] = algorithm.option_key(parameters, name, context, options)
        elif name == EROSION:
            values[field] = algorithm.parameterAsString(parameters, name, context)
            with algorithm.about(EROSION):
                parse_erosion(values[field])
        elif name == CLASS_SAMPLES:
            values[field] = algorithm.parameterAsString(parameters, name, context).strip()
        elif name == EARLY_STOPPING:
            values[field] = algorithm.parameterAsBoolean(parameters, name, context)
        elif isinstance(getattr(TrainSettings, field), float):
            values[field] = algorithm.parameterAsDouble(parameters, name, context)
        else:
            values[field] = algorithm.parameterAsInt(parameters, name, context)
    settings = TrainSettings(**values)
    if CLASS_SAMPLES in which:
        from ..core.sampling import check_class_samples

        with algorithm.about(CLASS_SAMPLES):
            check_class_samples(settings.class_counts(), settings.samples)
    if SPLIT in which:
        with algorithm.about(SPLIT):
            settings.validate()
    return settings
