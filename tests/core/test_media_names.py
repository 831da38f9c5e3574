"""``core.media.probe`` is the function whatever else is imported: no submodule shares its name."""

import subprocess
import sys

from tests.helpers import REPO


def test_probe_stays_the_function_after_every_media_module_is_imported():
    code = ("import pkgutil, importlib, core.media as m\n"
            "for info in pkgutil.iter_modules(m.__path__):\n"
            "    importlib.import_module('core.media.' + info.name)\n"
            "exported = [n for n in m.__all__ if not callable(getattr(m, n)) and n[0].islower()]\n"
            "print(exported, type(m.probe).__name__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[] function"
