"""Shipped presets and the :func:`load` entry point (file path or preset name).

Presets are the YAML files of the repository's ``topologies/`` directory. An installed wheel carries
them as package data ``collc/_presets``; a source checkout reads them in place.
"""

from __future__ import annotations

import difflib
import importlib.resources
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import yaml

from collc.errors import InputError
from collc.fileio import not_a_directory
from collc.topology.infer import infer_structure
from collc.topology.loader import (
    Parameter,
    TopologyWarning,
    describe_parameters,
    read_parameters,
    read_topology_file,
    read_topology_text,
)
from collc.topology.model import Topology
from collc.topology.yamlsrc import LocatedMap, read_yaml

PRESET_SUFFIX = ".yaml"


def presets_dir() -> Path:
    """The directory holding the preset files (package data when installed, else the checkout's)."""
    packaged = importlib.resources.files("collc") / "_presets"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[3] / "topologies"


def preset_names() -> list[str]:
    return sorted(path.stem for path in presets_dir().glob(f"*{PRESET_SUFFIX}"))


def list_presets() -> list[tuple[str, str]]:
    """(name, one-line description) of every shipped preset, sorted by name."""
    found = []
    for name in preset_names():
        document = yaml.safe_load((presets_dir() / f"{name}{PRESET_SUFFIX}").read_text(encoding="utf-8"))
        description = document.get("description", "") if isinstance(document, dict) else ""
        found.append((name, " ".join(str(description).split())))
    return found


def resolve_source(source: str | os.PathLike[str]) -> tuple[Path, str]:
    """(file to read, how to show it in messages) for a file path or a preset name."""
    if not str(source).strip():  # Path("") is the current directory
        raise InputError(
            "the topology is an empty name",
            hint="give a topology file or a preset name (see `collc topo list`)",
        )
    path = Path(source)
    if path.is_file():
        return path, str(source)
    text = str(source)
    name = text[: -len(PRESET_SUFFIX)] if text.endswith(PRESET_SUFFIX) else text
    if os.sep not in text and name in preset_names():
        return presets_dir() / f"{name}{PRESET_SUFFIX}", f"{name}{PRESET_SUFFIX}"
    if path.is_dir():
        raise InputError(
            f"{text!r} is a directory, not a topology file",
            hint="give the topology file in it, or a preset name (see `collc topo list`)",
        )
    blocking = not_a_directory(path.parent)
    if blocking is not None:
        raise InputError(f"{text!r}: {blocking} is not a directory", hint="give the path of a topology file")
    close = difflib.get_close_matches(name, preset_names(), n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise InputError(
        f"{text!r} is neither a topology file nor a preset",
        hint=hint + "presets: " + ", ".join(preset_names()) + " (see `collc topo list`)",
    )


def _warn(warning: TopologyWarning) -> None:
    warnings.warn(str(warning), UserWarning, stacklevel=3)


def load(
    source: str | os.PathLike[str],
    params: Mapping[str, str] | None = None,
    *,
    on_warning: Callable[[TopologyWarning], None] = _warn,
) -> Topology:
    """Read a topology from a file path or a preset name (``dgx-a100`` or ``dgx-a100.yaml``).

    ``params`` sets declared parameters (``{"boxes": "2"}``, as from ``--set boxes=2``). Bad input
    raises a located :class:`collc.errors.InputError`; warnings go to ``on_warning`` (by default
    Python's :mod:`warnings`). A file that names no ``box`` or ``role`` gets them inferred from its
    graph (:mod:`collc.topology.infer`), so every command sees the same structure.
    """
    path, shown_as = resolve_source(source)
    return infer_structure(read_topology_file(path, params, shown_as, on_warning))


def declared_parameters(source: str | os.PathLike[str]) -> dict[str, Parameter]:
    """The parameters ``source`` declares (name -> declaration), in file order."""
    path, shown_as = resolve_source(source)
    document = read_yaml(read_topology_text(path, shown_as), shown_as)
    return read_parameters(document) if isinstance(document, LocatedMap) else {}


def parameters_of(source: str | os.PathLike[str]) -> str:
    """A hint listing the parameters of ``source`` (for messages about ``--set``)."""
    return describe_parameters(declared_parameters(source))
