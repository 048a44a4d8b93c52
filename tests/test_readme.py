"""The README's two commands stay true: CI runs the test command verbatim."""

from __future__ import annotations

import re

from click.testing import CliRunner

from matcher.cli import cli

from .conftest import REPO


def readme_commands() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", readme, re.S)
    assert block is not None, "README must open with a bash block of two commands"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_exactly_two_commands() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme.index("```bash") < 40
    assert len(readme_commands()) == 2


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert readme_commands()[1] in ci.splitlines()


def test_run_command_names_a_real_cli_command() -> None:
    run = readme_commands()[0]
    command = run.rsplit("matcher ", 1)[1].split()[0]
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0, result.output
