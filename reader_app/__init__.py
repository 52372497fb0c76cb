"""breast-reader: the reading workstation (PySide6 + pyqtgraph) on top of the headless engine."""
