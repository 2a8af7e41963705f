"""The documents that ``--json`` prints: one per run, whatever its outcome, with one key set.

A CI job or a cluster scheduler parses stdout, so a command given ``--json`` prints exactly one JSON
object however it ends: its result (exit 0), a result that is a failure (exit 1), or an error (exit 1
or 2). Each command declares its keys once; :func:`json_document` builds every document of the command
from them, so a key is never missing from one outcome and present in another (null where it does not
apply). :data:`OUTCOME_KEYS` say how the run ended, in the fields ``collc serve`` answers with
(``error``, ``exit_code``) plus the hint and the location the stderr line shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from collc.errors import CollcError, InvariantError, Location


class DuplicateKey(ValueError):
    """A JSON object names a key twice (:func:`unique_members`); ``args[0]`` is the key."""


def unique_members(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object's members, as ``json.loads``'s ``object_pairs_hook``: a key given twice raises
    :class:`DuplicateKey`. JSON leaves duplicates to the reader, and keeping the last (as Python does)
    would silently drop a value the writer gave; the MSCCL++ executor's JSON library refuses them."""
    members: dict[str, object] = {}
    for key, value in pairs:
        if key in members:
            raise DuplicateKey(key)
        members[key] = value
    return members


#: the keys every ``--json`` document ends with: why the run failed (null on success) and its exit code
OUTCOME_KEYS = ("error", "hint", "location", "exit_code")


def location_json(location: Location | None) -> dict[str, object] | None:
    """``{"file", "line", "column"}`` of a located error (each null where unknown), or None."""
    if location is None:
        return None
    return {"file": location.file, "line": location.line, "column": location.column}


def outcome_json(error: CollcError | None, exit_code: int) -> dict[str, object]:
    """The :data:`OUTCOME_KEYS` of a run that exits with ``exit_code``, failed with ``error`` or None."""
    if error is None:
        return {"error": None, "hint": None, "location": None, "exit_code": exit_code}
    return {
        "error": error.message,
        "hint": error.hint,
        "location": location_json(error.location),
        "exit_code": exit_code,
    }


def json_document(
    keys: Sequence[str],
    values: Mapping[str, object],
    error: CollcError | None = None,
    exit_code: int = 0,
) -> dict[str, object]:
    """A command's document: every one of its declared ``keys`` (null where ``values`` has none),
    then the outcome keys (``error``'s, or none with ``exit_code``). A value under an undeclared key
    is a bug in collc: it would make the documents of two outcomes differ."""
    undeclared = [key for key in values if key not in keys or key in OUTCOME_KEYS]
    if undeclared:
        raise InvariantError(f"--json keys {undeclared} are not declared by the command")
    return {**dict.fromkeys(keys), **values, **outcome_json(error, exit_code)}
