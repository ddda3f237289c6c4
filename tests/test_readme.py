"""The README stays true: every setting is documented, and there are exactly two set-up commands."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from splitlab.cli import app
from splitlab.config import Settings

README = (Path(__file__).parent.parent / "README.md").read_text()
runner = CliRunner()


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


REPO = Path(__file__).parent.parent


def bash_commands(prefix: str) -> list[list[str]]:
    """The README's shell commands that start with ``prefix``, split as a shell would."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.splitlines():
            if line.startswith(prefix):
                commands.append(shlex.split(line, comments=True))
    return commands


def test_points_only_at_files_in_this_repository() -> None:
    assert "../" not in README
    named = set(re.findall(r"(?<![\w/.-])(examples/[\w.-]+)", README))
    assert named >= {"examples/checkout.yaml", "examples/users.csv", "examples/purchases.csv"}
    for path in named:
        assert (REPO / path).is_file(), f"the README names {path}, which does not exist"


def test_example_contract_is_the_one_shown() -> None:
    shown = re.search(r"```yaml\n(# examples/checkout.yaml\n.*?)```", README, re.S)
    assert shown is not None
    assert (REPO / "examples" / "checkout.yaml").read_text() == shown.group(1)


def test_apply_assign_and_import_examples_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a checkout of the repository (here: its examples/ beside a fresh data directory),
    the README's `apply`, `assign` and `import` lines work exactly as printed."""
    (tmp_path / "examples").symlink_to(REPO / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPLITLAB_HOME", "./splitlab-data")
    for name in ("SPLITLAB_DATABASE_URL", "SPLITLAB_WAREHOUSE_URL", "SPLITLAB_AUTH"):
        monkeypatch.delenv(name, raising=False)

    def run(args: list[str]) -> str:
        assert args[0] == "splitlab"
        result = runner.invoke(app, args[1:])
        assert result.exit_code == 0, (args, result.output)
        return result.output

    [apply] = bash_commands("splitlab apply ")
    [assign] = bash_commands("splitlab assign ")
    [import_events] = bash_commands("splitlab import ")
    run(["splitlab", "init"])
    run(["splitlab", "users", "create", "rita", "--role", "reviewer", "--password", "long-pass1"])
    assert "experiment one-page-checkout created" in run(apply)
    run(["splitlab", "experiments", "transition", "one-page-checkout", "review"])
    run(["splitlab", "experiments", "review", "one-page-checkout", "approve", "--as", "rita"])
    run(["splitlab", "experiments", "transition", "one-page-checkout", "running"])

    out = run(assign)
    units = len((REPO / "examples" / "users.csv").read_text().splitlines()) - 1
    counts = dict(
        line.split(": ") for line in out.splitlines() if line.startswith(("control", "one-"))
    )
    assert sorted(counts) == ["control", "one-page"] and sum(map(int, counts.values())) == units
    assigned = tmp_path / assign[assign.index("--out") + 1]
    assert len(assigned.read_text().splitlines()) == units + 1

    rows = len((REPO / "examples" / "purchases.csv").read_text().splitlines()) - 1
    out = run(import_events)
    assert f"examples/purchases.csv: {rows:,} rows" in out and "rejected 0" in out
    # and without --preview, every row goes in
    written = run([arg for arg in import_events if arg != "--preview"])
    assert f"accepted {rows:,}, duplicates 0" in written
