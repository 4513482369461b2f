"""QGIS glue: the plugin class, provider registration, dependency installer, styling."""
