"""E-Waste Sorter station app: `desktop.core` is the Qt-free inference engine and headless
command; `desktop.gui` is the PySide6 window. Nothing here imports TensorFlow."""
