"""Safe file output: a reader never sees a half-written file, and nothing is replaced by surprise.

Every file collc writes (schedules, forests, exports, reports, bundles) goes through
:func:`atomic_write`: the data is written to a temporary file in the destination directory, flushed to
disk, then renamed over the destination (``os.replace`` is atomic on POSIX within one filesystem).

* **Mode.** A replaced file keeps its permission bits (a 0600 file stays private); a new file gets the
  mode an ordinary ``open`` would give it (0666 less the umask).
* **Temporary files** are named ``.<target>.<pid>.<random>.collc-tmp``. A command removes its own on any
  error; a killed command cannot, so every later write into the same directory removes the leftovers of
  processes that are no longer running, and :func:`is_temporary` lets directory checks ignore them.
* **Targets.** :func:`check_output_path` refuses an empty path, a missing directory, a symbolic link
  and anything that is not a regular file (a named pipe, a device, ``/proc``), so ``-o`` never writes
  through a link or into a special file. Every command that writes calls it before doing any work,
  and :func:`check_not_an_input` before it reads: no command replaces a file it reads.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

from collc.errors import InputError, location_in

TEMP_SUFFIX = ".collc-tmp"
_TEMP_NAME = re.compile(r"^\..+\.(?P<pid>\d+)\.[0-9a-f]{8}" + re.escape(TEMP_SUFFIX) + "$")
_DEFAULT_MODE = 0o666  # what open() asks for; the kernel applies the umask


def is_temporary(name: str) -> bool:
    """Whether ``name`` is one of :func:`atomic_write`'s temporary files (of any process)."""
    return _TEMP_NAME.match(name) is not None


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's live process, or not a pid at all
        return True
    return True


def remove_stale_temporaries(directory: Path) -> None:
    """Delete temporary files in ``directory`` left by processes that are no longer running."""
    try:
        names = [entry.name for entry in os.scandir(directory) if entry.is_file(follow_symlinks=False)]
    except OSError:
        return
    for name in names:
        match = _TEMP_NAME.match(name)
        if match and not _running(int(match["pid"])):
            (directory / name).unlink(missing_ok=True)


def read_bounded(path: str | os.PathLike[str], limit: int, *, what: str = "the input", hint: str) -> bytes:
    """The bytes of the input file ``path``, refused with a located InputError when there are more than
    ``limit``: a regular file by its size before reading, a pipe (``<(...)``) by reading at most
    ``limit + 1`` bytes. A device is refused outright: ``/dev/zero`` never ends. ``OSError`` (a missing
    file, a directory) is left to the caller, which knows what the file was for."""
    with open(path, "rb") as stream:
        info = os.fstat(stream.fileno())
        if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
            raise InputError(
                f"{what} is a device, not a file or a pipe",
                location=location_in(path),
                hint="give the path of a file",
            )
        too_large = stat.S_ISREG(info.st_mode) and info.st_size > limit
        data = b"" if too_large else stream.read(limit + 1)
    if too_large or len(data) > limit:
        raise InputError(
            f"{what} is larger than {limit // 2**20} MiB, the most collc reads",
            location=location_in(path),
            hint=hint,
        )
    return data


def read_text(
    path: str | os.PathLike[str],
    limit: int,
    *,
    what: str,
    too_large: str,
    fix: str,
    shown_as: str | None = None,
    bom: bool = False,
) -> str:
    """The UTF-8 text of the input file ``path`` (:func:`read_bounded` to ``limit`` bytes), or one
    located InputError: the file cannot be read (``fix`` as the hint), is larger than ``limit``
    (``too_large``), or holds a byte that is not UTF-8 (at its line and byte column, ``fix``).
    ``what`` names the file in the message, ``shown_as`` in the location (default: the path);
    ``bom`` drops a byte-order mark, which some editors write."""
    where = shown_as if shown_as is not None else path
    try:
        data = read_bounded(path, limit, what=what, hint=too_large)
    except OSError as error:
        raise InputError(
            f"cannot read {what}: {error.strerror or error}", location=location_in(where), hint=fix
        ) from None
    try:
        return data.decode("utf-8-sig" if bom else "utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - data.rfind(b"\n", 0, error.start)
        raise InputError(
            f"{what} is not UTF-8 text (byte {error.start})",
            location=location_in(where, line, column),
            hint=fix,
        ) from None


def check_output_path(path: str | os.PathLike[str], option: str = "-o") -> Path:
    """``path`` as a :class:`Path` if collc may (over)write a regular file there; else a located InputError.

    Refused: an empty path, a path whose directory does not exist, a symbolic link, and an existing
    entry that is not a regular file (directory, named pipe, socket, device, most of ``/proc``).
    """
    text = os.fspath(path)
    if not text.strip():
        raise InputError(f"{option} needs a file name", hint=f"e.g. {option} out.xml")
    if text == "-":  # the Unix convention for standard output, which the report already holds
        raise InputError(
            f"{option} - would write a file named '-': collc writes files, and its report goes to stdout",
            hint=f"give a file name ({option} out.xml), or {option} ./- for a file of that name",
        )
    if text.endswith(("/", os.sep)) or (os.altsep and text.endswith(os.altsep)):
        # Path() drops the slash: "out.xml/" would write (or replace) the file out.xml
        raise InputError(
            f"{option} {text} ends in a slash, which names a directory; collc writes a file",
            hint=f"give the file's name: {option} {text.rstrip('/' + os.sep)} or {option} {text}out.xml",
        )
    target = Path(text)
    if not target.parent.is_dir():
        raise _no_directory(option, text, target.parent)
    try:
        info = target.lstat()
    except FileNotFoundError:
        return target
    except OSError as error:
        raise InputError(f"cannot write {text}: {error.strerror}") from None
    if stat.S_ISLNK(info.st_mode):
        raise InputError(
            f"{option} {text} is a symbolic link; collc does not write through links",
            hint="give the real path of the file, or remove the link first",
        )
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise InputError(f"{option} {text} is {kind}", hint="give the path of a regular file to write")
    return target


def check_not_an_input(
    outputs: Iterable[str | os.PathLike[str] | None], inputs: Iterable[str | os.PathLike[str] | None]
) -> None:
    """Refuse to write a file the same command reads (the same file, by device and inode, whatever the
    path says): ``collc compile fabric.yaml -o fabric.yaml`` replaced the topology with a schedule.
    Paths that do not exist yet, and names that are no files (a preset), are not inputs."""
    sources = [source for source in inputs if source is not None]
    for output in outputs:
        if output is None:
            continue
        for source in sources:
            try:
                same = os.path.samefile(output, source)
            except OSError:
                continue
            if same:
                raise InputError(
                    f"{os.fspath(output)} is also this command's input {os.fspath(source)}: writing it "
                    "would replace what it reads",
                    hint="write to another file",
                )


def check_output_directory(path: str | os.PathLike[str], option: str = "-o") -> Path:
    """``path`` as a :class:`Path` if collc may create it as a directory or write into it.

    Refused: an empty path, a missing parent directory, a symbolic link and anything existing that is
    not a directory.
    """
    text = os.fspath(path)
    if not text.strip():
        raise InputError(f"{option} needs a directory name", hint=f"e.g. {option} report")
    target = Path(text)
    if not target.parent.is_dir():
        raise _no_directory(option, text, target.parent)
    if target.is_symlink():
        raise InputError(
            f"{option} {text} is a symbolic link; collc does not write through links",
            hint="give the real path of the directory",
        )
    if target.exists() and not target.is_dir():
        raise InputError(f"{option} {text} exists and is not a directory", hint="choose another path")
    return target


def not_a_directory(path: Path) -> Path | None:
    """The nearest of ``path`` and its parents that exists, where that is not a directory: a file that
    stands where a path needs a directory (``-o notes.txt/x.xml``). None where it is a directory."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return None if candidate.is_dir() else candidate
    return None


def _no_directory(option: str, text: str, directory: Path) -> InputError:
    """Why ``directory`` cannot hold the output ``text``: a file stands in its way, or it is missing."""
    blocking = not_a_directory(directory)
    if blocking is not None:
        return InputError(
            f"{option} {text}: {blocking} is not a directory", hint="choose a path inside a directory"
        )
    return InputError(
        f"{option} {text}: directory {directory} does not exist", hint="create it or choose another path"
    )


def refuse_overwrite(paths: Iterable[Path], force: bool, flag: str = "--force") -> None:
    """Refuse to replace existing files unless ``force`` (e.g. the notes written next to a bundle)."""
    existing = [str(path) for path in paths if path.exists() or path.is_symlink()]
    if existing and not force:
        raise InputError(
            f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}",
            hint=f"pass {flag} to replace {'it' if len(existing) == 1 else 'them'}, or choose another name",
        )


def atomic_write(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write ``data`` (text is UTF-8 encoded) to ``path`` atomically (see the module docstring)."""
    target = check_output_path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    directory = target.parent
    remove_stale_temporaries(directory)
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = None
    temporary = directory / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
    try:
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _DEFAULT_MODE)
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            if mode is not None:
                os.fchmod(stream.fileno(), mode)
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise InputError(
            f"cannot write {target}: {error.strerror or error}",
            hint="check the path, its permissions and the free space",
        ) from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
