"""The README stays true: every setting is documented, and there are exactly two set-up commands."""

from __future__ import annotations

import re
from pathlib import Path

from splitlab.config import Settings

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_setting_is_in_the_settings_table() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} has no help text"
        assert f"`SPLITLAB_{name.upper()}`" in README, f"SPLITLAB_{name.upper()} missing"


def test_two_setup_commands() -> None:
    setup = README.split("## Set up", 1)[1].split("##", 1)[0]
    block = re.search(r"```bash\n(.*?)```", setup, re.S)
    assert block is not None
    commands = [line for line in block.group(1).splitlines() if line.strip()]
    assert [c.split("#")[0].strip() for c in commands] == ["make demo", "make test"]
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    assert "make test" in ci
