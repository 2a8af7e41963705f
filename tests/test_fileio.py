"""Safe output: the old file or the new one, never a partial or temporary file; modes kept; no writing
through links or into special files."""

import os
import stat
import subprocess
import sys
import textwrap

import pytest

from collc.errors import InputError
from collc.fileio import (
    TEMP_SUFFIX,
    atomic_write,
    check_output_directory,
    check_output_path,
    is_temporary,
    not_a_directory,
    read_text,
    refuse_overwrite,
)


def test_writes_text_and_bytes_and_replaces(tmp_path):
    target = tmp_path / "out.xml"
    atomic_write(target, "first")
    atomic_write(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in tmp_path.iterdir()] == ["out.xml"]


def test_failure_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "out.xml"
    atomic_write(target, "old")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", broken_replace)
    with pytest.raises(InputError, match=r"cannot write .*out\.xml: No space left on device"):
        atomic_write(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.xml"]


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o755])
def test_a_replaced_file_keeps_its_mode(tmp_path, mode):
    target = tmp_path / "out.xml"
    target.write_text("old")
    target.chmod(mode)
    atomic_write(target, "new")
    assert stat.S_IMODE(target.stat().st_mode) == mode
    assert target.read_text() == "new"


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_a_new_file_follows_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "new.xml", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.xml").stat().st_mode) == 0o666 & ~umask


def test_a_symlink_is_refused_and_left_alone(tmp_path):
    real = tmp_path / "real.xml"
    real.write_text("keep")
    link = tmp_path / "link.xml"
    link.symlink_to(real)
    with pytest.raises(InputError, match="symbolic link"):
        atomic_write(link, "new")
    assert link.is_symlink() and real.read_text() == "keep"


def test_a_named_pipe_is_refused(tmp_path):
    pipe = tmp_path / "pipe.xml"
    os.mkfifo(pipe)
    with pytest.raises(InputError, match="not a regular file"):
        atomic_write(pipe, "new")
    assert stat.S_ISFIFO(pipe.lstat().st_mode)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("", "needs a file name"),
        ("  ", "needs a file name"),
        ("no/such/dir/x.xml", "does not exist"),
        ("-", "would write a file named '-'"),  # stdout by convention; the report is there already
    ],
)
def test_bad_output_paths_are_refused(tmp_path, monkeypatch, path, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=message):
        check_output_path(path)


def test_a_directory_is_not_an_output_file(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        check_output_path(tmp_path)


def test_an_unwritable_place_is_one_message():
    with pytest.raises(InputError, match=r"cannot write /proc/collc-test\.xml"):
        atomic_write("/proc/collc-test.xml", "x")


def test_output_directories(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path)
    assert check_output_directory(tmp_path / "new") == tmp_path / "new"
    for path, message in [
        (tmp_path / "file", "not a directory"),
        (tmp_path / "link", "symbolic link"),
        (tmp_path / "missing" / "new", "does not exist"),
        ("", "needs a directory name"),
    ]:
        with pytest.raises(InputError, match=message):
            check_output_directory(path)


def test_existing_files_need_force(tmp_path):
    notes = tmp_path / "b.deploy.md"
    refuse_overwrite([notes], force=False)
    notes.write_text("mine")
    with pytest.raises(InputError, match=r"already exists.*\n.*--force"):
        refuse_overwrite([notes], force=False)
    refuse_overwrite([notes], force=True)


def test_a_killed_writer_leaves_a_temporary_that_the_next_write_removes(tmp_path):
    """SIGKILL in the middle of a write: the leftover is recognisable and gone after the next write."""
    target = tmp_path / "out.xml"
    script = textwrap.dedent(
        f"""
        import os, signal
        os.replace = lambda src, dst: os.kill(os.getpid(), signal.SIGKILL)
        from collc.fileio import atomic_write
        atomic_write({str(target)!r}, "x" * 100000)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], check=False)
    assert result.returncode == -9
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and is_temporary(leftovers[0]) and leftovers[0].endswith(TEMP_SUFFIX)
    atomic_write(tmp_path / "other.xml", "y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.xml"]


def test_a_live_writers_temporary_is_kept(tmp_path):
    """Only dead processes' leftovers are removed: a concurrent writer's file is not touched."""
    live = tmp_path / f".out.xml.{os.getppid()}.0123abcd{TEMP_SUFFIX}"
    live.write_text("in progress")
    atomic_write(tmp_path / "other.xml", "y")
    assert live.exists()


@pytest.mark.parametrize(
    ("name", "temporary"),
    [
        (f".out.xml.123.0123abcd{TEMP_SUFFIX}", True),
        (f"out.xml.123.0123abcd{TEMP_SUFFIX}", False),
        (".out.xml.123.tmp", False),
        ("00-allreduce-simple-primary.xml", False),
    ],
)
def test_temporary_names(name, temporary):
    assert is_temporary(name) is temporary


def test_a_file_where_a_directory_must_be_is_named(tmp_path):
    """``-o notes.txt/x.xml`` said "directory notes.txt does not exist" of an existing file."""
    (tmp_path / "notes.txt").write_text("x")
    assert not_a_directory(tmp_path / "notes.txt" / "deeper") == tmp_path / "notes.txt"
    assert not_a_directory(tmp_path / "missing" / "deeper") is None
    for path in (tmp_path / "notes.txt" / "x.xml", tmp_path / "notes.txt" / "deeper" / "x.xml"):
        with pytest.raises(InputError, match=f"{tmp_path / 'notes.txt'} is not a directory"):
            check_output_path(path)
        with pytest.raises(InputError, match=f"{tmp_path / 'notes.txt'} is not a directory"):
            check_output_directory(path)


def test_read_text_locates_a_byte_that_is_not_utf8_and_drops_a_bom_where_asked(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(b"\xef\xbb\xbfname: x\nab\xffc\n")
    with pytest.raises(InputError) as caught:
        read_text(path, 1024, what="the file", too_large="smaller", fix="re-save it")
    error = caught.value
    assert (error.location.line, error.location.column) == (2, 3)
    assert error.message == "the file is not UTF-8 text (byte 13)" and error.hint == "re-save it"
    path.write_bytes(b"\xef\xbb\xbfname: x\n")
    assert read_text(path, 1024, what="f", too_large="", fix="", bom=True) == "name: x\n"
    assert read_text(path, 1024, what="f", too_large="", fix="") == "\ufeffname: x\n"
    with pytest.raises(InputError, match="the dump is larger than 0 MiB"):
        read_text(path, 4, what="the dump", too_large="", fix="")
