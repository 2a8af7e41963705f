"""A job's own GPUs: ``--gpus SELECTION`` -> the GPU names of one allocation, in rank order.

A cluster scheduler gives a job some of the fabric's GPUs; the schedule is compiled for exactly those.
A selection is a comma-separated list of items, each one of:

* a rank of the fabric (``5``) or a range of ranks (``0-7``, both ends included);
* a GPU name as ``collc topo show`` prints it (``b0.gpu3``), or a name pattern with ``*``
  (``b1.gpu*``);
* a box (``b2``) or a range of boxes (``b0-b3``): every GPU of those boxes, in the fabric's rank order
  (boxes are numbered from 0 in the order the fabric defines them);
* ``@FILE``: the items of a file, one per line (blank lines and ``#`` comments are skipped), e.g. the
  host list a scheduler writes.

The selected GPUs keep the order in which the selection names them: the first one is rank 0 of the
job's communicator. A GPU named twice is an error (the rank order would be ambiguous). Ranks and
boxes refer to the fabric as loaded, before any ``--without``.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from collc.errors import InputError, Location, clipped
from collc.fileio import read_text
from collc.topology.model import Topology
from collc.topology.selectors import select

_RANKS = re.compile(r"^(\d+)(?:-(\d+))?$")
_BOXES = re.compile(r"^b(\d+)(?:-b?(\d+))?$")
_HINT = "items are ranks (5, 0-7), GPU names (b0.gpu3, b1.gpu*), boxes (b2, b0-b3) or @FILE"
#: a selection file's size limit: a host list of every GPU collc supports fits in well under 1 MiB
MAX_SELECTION_BYTES = 2**20


@dataclass(frozen=True)
class _Item:
    """One selection item as written, and where it was written (a file line, or None for the option)."""

    text: str
    location: Location | None


def select_gpus(topology: Topology, selection: str) -> tuple[str, ...]:
    """The GPU names ``selection`` names, in selection order (see the module docstring)."""
    chosen: dict[str, str] = {}  # GPU name -> the item that chose it
    for item in _items(selection):
        for name in _resolve(topology, item):
            if name in chosen:
                raise InputError(
                    f"--gpus selects {name} twice (by {chosen[name]!r} and {item.text!r})",
                    location=item.location,
                    hint="name every GPU once: the selection's order is the job's rank order",
                )
            chosen[name] = item.text
    if len(chosen) < 2:
        raise InputError(
            f"--gpus selects {len(chosen)} GPU(s); a collective needs at least 2",
            hint=_HINT,
        )
    return tuple(chosen)


def _items(selection: str) -> list[_Item]:
    """The items of the option, with ``@FILE`` items replaced by the file's lines."""
    items: list[_Item] = []
    for text in (part.strip() for part in selection.split(",")):
        if text.startswith("@"):
            items.extend(_file_items(text[1:]))
        elif text:
            items.append(_Item(text, None))
    if not items:
        raise InputError(f"--gpus {clipped(selection)} selects nothing", hint=_HINT)
    return items


def _file_items(path: str) -> list[_Item]:
    """One item per non-blank line of ``path`` (``#`` starts a comment), each located at its line."""
    text = read_text(
        path,
        MAX_SELECTION_BYTES,
        what="the --gpus file",
        too_large="list one GPU per line",
        fix="give @FILE with one GPU name per line, as UTF-8 text",
    )
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].strip()
        if content:
            items.append(_Item(content, Location(path, number, line.index(content) + 1)))
    return items


def _resolve(topology: Topology, item: _Item) -> list[str]:
    """The GPUs one item names, in order; an item that names none is an error."""
    gpus = topology.ranks
    text = item.text
    if text in set(gpus):
        return [text]
    ranks = _RANKS.match(text)
    if ranks:
        first, last = int(ranks[1]), int(ranks[2] or ranks[1])
        _check_range(first, last, len(gpus), ("rank", "ranks"), item)
        return list(gpus[first : last + 1])
    boxes = _BOXES.match(text)
    if boxes:
        first, last = int(boxes[1]), int(boxes[2] or boxes[1])
        return _box_gpus(topology, first, last, item)
    if "*" in text:
        found = [name for name, _binding in select(text, {}, gpus, set(gpus))]
        if found:
            return found
    raise _unknown(topology, item)


def _check_range(first: int, last: int, count: int, what: tuple[str, str], item: _Item) -> None:
    """``first..last`` must run forwards and lie in ``0..count-1``; ``what``: (singular, plural)."""
    if first > last:
        raise InputError(
            f"--gpus {item.text!r}: the range runs backwards",
            location=item.location,
            hint=f"write {last}-{first}",
        )
    if last >= count:
        raise InputError(
            f"--gpus {item.text!r}: {what[0]} {last} does not exist; the fabric has {what[1]} 0-{count - 1}",
            location=item.location,
            hint=_HINT,
        )


def _box_gpus(topology: Topology, first: int, last: int, item: _Item) -> list[str]:
    """The GPUs of boxes ``first..last`` in the fabric's rank order."""
    boxes = sorted({node.box for node in topology.nodes if node.box is not None})
    if not boxes:
        raise InputError(
            f"--gpus {item.text!r}: this fabric has no boxes",
            location=item.location,
            hint="select by rank or GPU name instead",
        )
    _check_range(first, last, boxes[-1] + 1, ("box", "boxes"), item)
    box_of = {name: topology.node(name).box for name in topology.ranks}
    return [name for name in topology.ranks if (box := box_of[name]) is not None and first <= box <= last]


def _unknown(topology: Topology, item: _Item) -> InputError:
    names = [node.name for node in topology.nodes]
    close = difflib.get_close_matches(item.text, names, n=3, cutoff=0.6)
    kinds = {node.name: node.kind for node in topology.nodes}
    if item.text in kinds:
        message = f"--gpus {item.text!r} is a {kinds[item.text]}, not a GPU"
    else:
        message = f"--gpus {clipped(item.text)} names no GPU of {topology.name}"
    hint = (f"did you mean {', '.join(close)}? " if close else "") + _HINT
    return InputError(message, location=item.location, hint=hint)


def inline_files(selection: str) -> str:
    """``selection`` with every ``@FILE`` item replaced by the file's lines: the same selection, for a
    service that reads no files of its own host (``collc submit --gpus @FILE``)."""
    return ",".join(item.text for item in _items(selection))
