"""The dark reading-room theme shared by the workstation and the reading session."""

from __future__ import annotations

STYLE = """
QMainWindow, QWidget { background:#202124; color:#e8eaed; }
QGroupBox { border:1px solid #444; margin-top:14px; padding-top:6px; font-weight:bold; }
QGroupBox::title { subcontrol-origin: margin; left:8px; padding:0 4px; }
QLabel#viewTitle { font-weight:bold; }
QLabel#wlReadout { color:#8ab4f8; font-family:monospace; }
QLabel#viewFooter { color:#9aa0a6; font-family:monospace; font-size:11px; }
QLabel#caseHeader { font-size:14px; padding:3px; }
QTableWidget, QListWidget, QLineEdit, QPlainTextEdit, QComboBox { background:#2b2c2f; border:1px solid #444; }
QPushButton { background:#3c4043; border:1px solid #555; padding:3px 8px; }
QPushButton:disabled { color:#777; }
QHeaderView::section { background:#2b2c2f; color:#e8eaed; border:0; padding:2px; }
QLabel#sessionHeader { font-size:14px; padding:3px; }
QLabel#targetLabel { color:#ffd400; font-weight:bold; }
QLabel#aiPanel { padding:4px; }
QSlider::groove:horizontal { background:#444; height:6px; }
QSlider::handle:horizontal { background:#8ab4f8; width:12px; margin:-5px 0; }
QDockWidget::title { background:#2b2c2f; padding:3px; }
"""
