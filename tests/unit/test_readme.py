"""The README documents every setting and the quick start that CI runs."""

from __future__ import annotations

from pathlib import Path

from executor.config import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table() -> None:
    table = README.split("## Configuration", 1)[1]
    missing = [s.name for s in SETTINGS if f"| `{s.name}` |" not in table]
    assert missing == []


def test_ci_runs_the_readme_s_test_command() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("##", 1)[0]
    test_command = next(
        line for line in quick_start.splitlines() if line.startswith("python3") and "pytest" in line
    )
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command in ci
