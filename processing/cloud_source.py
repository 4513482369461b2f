"""The cloud-mask source choice (``CLOUD_MASK_SOURCE``, ``CLOUD_MASK``, ``FORCE_S2CLOUDLESS``) that
'LULC pipeline' and the batch pipeline share: s2cloudless on the L1C bands, or a given mask stack
(the SCL mask of an imported L2A product, an EOPatch's CLM). Declared here once so the options,
their order (the enum's value) and their help are the same in both."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
)

CLOUD_MASK_SOURCE = "CLOUD_MASK_SOURCE"
CLOUD_MASK = "CLOUD_MASK"
FORCE_S2CLOUDLESS = "FORCE_S2CLOUDLESS"
#: CLOUD_MASK_SOURCE's options, in their order (the index is the parameter's value); the keys are
#: core.pipeline's CLOUD_MASK_SOURCES.
MASK_SOURCES = (("s2cloudless", "s2cloudless (L1C)"),
                ("given", "Given mask stack (CLOUD_MASK: SCL mask of an L2A import, EOPatch CLM)"))


def add_cloud_mask_source(algorithm, mask: QgsProcessingParameterDefinition, mask_help: str,
                          source_help: str = "") -> None:
    """Add CLOUD_MASK_SOURCE, the algorithm's own ``mask`` parameter (named CLOUD_MASK: a raster
    layer or a file) and FORCE_S2CLOUDLESS (advanced), in that order."""
    algorithm.add(
        QgsProcessingParameterEnum(CLOUD_MASK_SOURCE, algorithm.tr("Cloud-mask source"),
                                   options=[algorithm.tr(label) for _, label in MASK_SOURCES], defaultValue=0),
        "s2cloudless computes the mask from the L1C bands (its model was trained on L1C top-of-atmosphere "
        "reflectance, so an L2A stack is refused); 'given mask stack' skips that step and uses CLOUD_MASK "
        "for the scene filter and the interpolation." + (" " + source_help if source_help else ""),
    )
    algorithm.add(mask, mask_help)
    algorithm.add(
        QgsProcessingParameterBoolean(FORCE_S2CLOUDLESS, algorithm.tr("Run s2cloudless on an L2A stack anyway"),
                                      defaultValue=False),
        "s2cloudless on bottom-of-atmosphere (L2A) reflectance is outside what its model was trained on; "
        "tick to run it regardless.",
        advanced=True,
    )


def cloud_mask_source(algorithm, parameters: dict[str, Any], context: QgsProcessingContext) -> tuple[str, bool]:
    """The chosen source's key (``core.pipeline.S2CLOUDLESS`` or ``GIVEN_MASK``) and whether
    s2cloudless is forced on an L2A stack."""
    return (algorithm.option_key(parameters, CLOUD_MASK_SOURCE, context, MASK_SOURCES),
            algorithm.parameterAsBoolean(parameters, FORCE_S2CLOUDLESS, context))
