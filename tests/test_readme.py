"""The README's commands work when typed: each ``peakops`` line parses with the real
parser, and the screenshot script runs what the README lists, writes where it is told
and leaves no temporary home behind."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import sys

import pytest

from cli.main import build_parser
from tests.helpers import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
SCRIPT = REPO / "docs" / "screenshots" / "make_screenshots.sh"


def sh_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README, re.DOTALL)


def peakops_lines() -> list[list[str]]:
    """The arguments of every ``peakops`` command line in the README's sh blocks."""
    found = []
    for block in sh_blocks():
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value prefix
                words.pop(0)
            if words[:2] == ["xvfb-run", "-a"]:
                words = words[2:]
            if words and words[0] == "peakops":
                found.append(words[1:])
    return found


def test_every_peakops_line_in_the_readme_parses():
    lines = peakops_lines()
    assert len(lines) > 40
    parser = build_parser()
    commands = set()
    for args in lines:
        if ">" in args:  # a redirection is the shell's
            args = args[:args.index(">")]
        try:
            parsed = parser.parse_args(args)
        except SystemExit as exc:
            pytest.fail(f"peakops {' '.join(args)}: usage error ({exc})")
        commands.add(parsed.command)
    listed = {name for name in parser._subparsers._group_actions[0].choices
              if not name.startswith("_")}
    assert listed <= commands, f"not in the README: {listed - commands}"


def test_readme_covers_stopping_uninstalling_offpeak_console_and_self_test():
    for text in ("Stopping the worker", "SIGTERM", "systemctl --user stop peakops",
                 "./install.sh --uninstall", "peakops --self-test", "peakops console",
                 "objects/frames/<upload id>/", "peakops.db"):
        assert text in README, text


def test_readme_says_how_to_open_the_html_report_and_what_docs_installs():
    assert 'xdg-open "$(peakops report)"' in README
    assert "needs a web browser" in README
    script = (REPO / "scripts" / "ensure-system-deps.sh").read_text()
    docs_only = re.search(r'if \[ "\$\{1:-\}" = "--docs" \]; then\n\s+PACKAGES="\$PACKAGES ([^"]+)"',
                          script)
    assert docs_only, "ensure-system-deps.sh no longer has a --docs package list"
    for package in docs_only[1].split():
        assert package == "chromium", package  # the README names only Chromium
    assert "`scripts/ensure-system-deps.sh --docs` additionally installs\n**Chromium**" \
        in README


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob("*.png"))}


def test_screenshot_script_runs_the_readme_commands_into_a_folder(tmp_path):
    listed = [words for words in peakops_lines() if "--screenshot" in words]
    script = SCRIPT.read_text()
    for words in listed:  # the same command, the PNG under the output folder
        name = words[words.index("--screenshot") + 1]
        rest = " ".join(words).replace(f"--screenshot {name}", f'--screenshot "$OUT/{name}"')
        assert rest in script, rest
    tracked = _digest(SCRIPT.parent)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    out = tmp_path / "shots"
    env = {**os.environ, "TMPDIR": str(scratch), "PY": sys.executable,
           "QT_QPA_PLATFORM": "offscreen"}
    env = {k: v for k, v in env.items() if not k.startswith(("PEAKOPS_", "MAX_", "CELERY_"))}
    proc = subprocess.run(["sh", str(SCRIPT), str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    made = {p.name for p in out.glob("*.png")}
    assert {w[w.index("--screenshot") + 1] for w in listed} - {"main-window-xvfb.png"} <= made
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert list(scratch.iterdir()) == []  # the demo home is gone
    assert _digest(SCRIPT.parent) == tracked  # tracked PNGs untouched without --update
    assert proc.stdout.strip().endswith(f"screenshots in {out}")
