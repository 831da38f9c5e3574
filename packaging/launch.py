"""PyInstaller entry point of the frozen ``peakops`` executable (the console script's twin).

The job child is this same executable started as ``peakops _job-child`` (see
core/jobs/supervisor.py), so nothing here may branch on argv.
"""

import sys

from cli.main import main

if __name__ == "__main__":
    sys.exit(main())
