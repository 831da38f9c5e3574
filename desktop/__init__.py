"""PeakOps operator console (PySide6): a view on ``core`` that never blocks the UI thread."""
