"""The shared TOPO argument and --set option."""

from __future__ import annotations

import click
from click.testing import CliRunner

from collc.cli import _ReportingGroup
from collc.cli.common import topology_argument
from collc.topology import Topology


def make_cli() -> click.Group:
    @click.group(cls=_ReportingGroup)
    def cli() -> None:
        """Test group."""

    @cli.command()
    @topology_argument
    @click.option("--extra", default="x")
    def probe(topology: Topology, extra: str) -> None:
        click.echo(f"{topology.name} {topology.num_gpus} {extra}")

    return cli


def test_loads_preset_with_settings() -> None:
    result = CliRunner().invoke(make_cli(), ["probe", "dgx-a100", "--set", "boxes=2", "--extra", "y"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "dgx-a100 16 y"


def test_bad_setting_syntax_lists_parameters() -> None:
    result = CliRunner().invoke(make_cli(), ["probe", "dgx-a100", "--set", "boxes"])
    assert result.exit_code == 2
    assert "--set 'boxes' is not KEY=VALUE" in result.output
    assert "boxes (default 1" in result.output


def test_unknown_parameter_lists_parameters() -> None:
    result = CliRunner().invoke(make_cli(), ["probe", "mi250", "--set", "nodes=2"])
    assert result.exit_code == 2
    assert "unknown parameter 'nodes'" in result.output
    assert "boxes (default 1" in result.output


def test_parameter_value_is_checked() -> None:
    result = CliRunner().invoke(make_cli(), ["probe", "mi250", "--set", "boxes=0"])
    assert result.exit_code == 2
    assert "parameter 'boxes' must be >= 1" in result.output
