"""When work runs: weekly off-peak windows, the off-peak plan and its control, estimates.

``windows`` is the window math (a named time zone, across midnight and DST, always given
``now``); ``offpeak`` plans what the backlog can run before a window closes; ``control``
is the one pause/resume/run-now used by the CLI and the console; ``estimate`` predicts a
job's duration from what earlier jobs took.
"""
