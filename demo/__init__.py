"""The demo's synthetic Sentinel-2 scenes: used by ``tools/demo.py``, the tests and the benchmarks,
never by the plugin itself, so the plugin zip leaves this package out."""
