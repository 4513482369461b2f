"""The science of EO LULC, free of QGIS: numpy, rasterio, s2cloudless, LightGBM.

Array layout everywhere: ``(time, height, width, bands)`` like eo-learn's temporal features;
windows are ``(row, col, height, width)``. Bad input raises ``ValueError`` with a message for
the user; cancel raises :class:`~.progress.Cancelled`.
"""
