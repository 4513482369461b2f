"""Processing algorithms of EO LULC: thin wrappers that turn parameters into core calls."""
