"""napari-inpaint in napari: the widgets, the layer glue behind them and the console, and the plugin's
contributions (napari.yaml: widgets, sample data, readers and writers).

Only this package imports napari and Qt; the rest of the library works without them.
"""
