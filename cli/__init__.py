"""The ``peakops`` command line: a thin shell above ``batch`` and ``desktop``."""
