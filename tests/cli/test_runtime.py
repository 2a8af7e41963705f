"""`collc runtime` against small shared libraries the tests build with the C compiler.

Each library exports an ``ncclGetVersion`` that reports a chosen version code (or fails), with or
without the MSCCL entry points, under the file name of the family it stands for. The reports are
checked against the rules of :mod:`collc.runtimes.libinfo`: which NCCL, RCCL and MSCCL++ shim builds
load MSCCL XML or MSCCL++ plans, and with which environment variables.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

from collc.cli import main
from collc.runtimes import libinfo
from collc.runtimes.libinfo import (
    LibraryReading,
    Verdict,
    Version,
    assess,
    decode_mscclpp_version,
    decode_nccl_version,
    found_libraries,
    search_places,
)

COMPILER = shutil.which("gcc") or shutil.which("cc")
needs_compiler = pytest.mark.skipif(COMPILER is None, reason="no C compiler (gcc or cc) on PATH")

_SOURCE = """
#include <stdlib.h>
int ncclGetVersion(int *version) { *version = VERSION_CODE; return STATUS; }
#ifdef WITH_MSCCL
int mscclLoadAlgo(void) { return 0; }
int mscclRunAlgo(void) { return 0; }
#ifndef WITHOUT_UNLOAD
int mscclUnloadAlgo(void) { return 0; }
#endif
#endif
#ifdef CRASH_ON_LOAD
__attribute__((constructor)) static void crash(void) { abort(); }
#endif
#ifdef EXIT_ON_LOAD
__attribute__((constructor)) static void leave(void) { exit(0); }
#endif
#ifdef CHATTY
#include <stdio.h>
__attribute__((constructor)) static void hello(void) { puts("{\\"hello\\": 1}"); fflush(stdout); }
__attribute__((destructor)) static void bye(void) { puts("bye"); }
#endif
"""


def build_library(directory: Path, name: str, code: int = 0, *flags: str, source: str = _SOURCE) -> Path:
    """Compile ``source`` into the shared library ``directory/name`` with ``-D`` ``flags``."""
    source_file = directory / f"{name}.c"
    source_file.write_text(source)
    target = directory / name
    defines = [f"-DVERSION_CODE={code}", "-DSTATUS=0", *(f"-D{flag}" for flag in flags)]
    if any(flag.startswith("STATUS=") for flag in flags):
        defines.remove("-DSTATUS=0")
    subprocess.run([COMPILER, "-shared", "-fPIC", "-o", str(target), str(source_file), *defines], check=True)
    return target


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["runtime", *args])


def report_of(path: Path) -> dict:
    result = run(str(path), "--json")
    assert result.exit_code == 0, result.output
    (library,) = json.loads(result.output)["libraries"]
    return library


def verdicts(library: dict) -> dict[str, str]:
    return {output["output"]: output["verdict"] for output in library["outputs"]}


def env_names(library: dict, output: str) -> list[str]:
    (support,) = [o for o in library["outputs"] if o["output"] == output]
    return [env["name"] for env in support["env"]]


# --- the real libraries' version codes, decoded -----------------------------------------------


@given(st.integers(2, 9), st.integers(9, 99), st.integers(0, 99))
def test_nccl_codes_from_2_9_on_decode_as_major_minor_patch(major: int, minor: int, patch: int) -> None:
    assert decode_nccl_version(major * 10000 + minor * 100 + patch) == Version(major, minor, patch)


@given(st.integers(0, 8), st.integers(0, 99))
def test_nccl_codes_before_2_9_use_the_old_scheme(minor: int, patch: int) -> None:
    assert decode_nccl_version(2000 + minor * 100 + patch) == Version(2, minor, patch)


def test_known_release_codes() -> None:
    assert str(decode_nccl_version(22304)) == "2.23.4"
    assert str(decode_nccl_version(2804)) == "2.8.4"
    assert str(decode_mscclpp_version(1000)) == "0.10.0"
    assert str(decode_mscclpp_version(1002)) == "0.10.2"


# --- the rules, on readings (no library needed) -------------------------------------------------


def reading(path: str, code: int, msccl: bool) -> LibraryReading:
    symbols = {"ncclGetVersion", *(libinfo.MSCCL_ENTRY_POINTS if msccl else ())}
    return LibraryReading(path, code, frozenset(symbols))


@pytest.mark.parametrize(
    ("code", "verdict"),
    [(21504, Verdict.NO), (21505, Verdict.LOADS), (22703, Verdict.LOADS), (22803, Verdict.NO)],
)
def test_rccl_loads_msccl_xml_from_2_15_5_until_the_stubs_of_2_28_3(code: int, verdict: Verdict) -> None:
    report = assess(reading("/opt/rocm/lib/librccl.so.1", code, msccl=True))
    assert report.outputs[0].output == "MSCCL XML"
    assert report.outputs[0].verdict is verdict


def test_search_places_cover_the_usual_directories_and_ldconfig() -> None:
    listing = (
        "1234 libs found in cache `/etc/ld.so.cache'\n"
        "\tlibnccl.so.2 (libc6,x86-64) => /lib/x86_64-linux-gnu/libnccl.so.2\n"
        "\tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1\n"
        "\tlibrccl.so.1 (libc6,x86-64) => /opt/rocm-7.1/lib/librccl.so.1\n"
    )
    places = search_places({"LD_LIBRARY_PATH": "/a::/b", "CUDA_HOME": "/cuda"}, ["/site"], listing)
    assert places.directories[:2] == ("/a", "/b")
    for directory in ("/opt/rocm/lib", "/cuda/lib64", "/site/nvidia/nccl/lib", "/site/torch/lib"):
        assert directory in places.directories
    assert places.ldconfig_paths == ("/lib/x86_64-linux-gnu/libnccl.so.2", "/opt/rocm-7.1/lib/librccl.so.1")


# --- built libraries through the command line ---------------------------------------------------


@pytest.fixture(scope="module")
def libs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if COMPILER is None:
        pytest.skip("no C compiler (gcc or cc) on PATH")
    directory = tmp_path_factory.mktemp("runtime-libs")
    build_library(directory, "libnccl.so.2", 22304, "WITH_MSCCL")
    (directory / "stock").mkdir()
    build_library(directory / "stock", "libnccl.so.2", 22809)
    (directory / "new-msccl").mkdir()
    build_library(directory / "new-msccl", "libnccl.so.2", 22809, "WITH_MSCCL")
    build_library(directory, "libnccl-partial.so", 22304, "WITH_MSCCL", "WITHOUT_UNLOAD")
    build_library(directory, "libnccl-old.so", 2804)
    build_library(directory, "librccl.so.1", 22703, "WITH_MSCCL")
    build_library(directory, "librccl-stubbed.so", 22803, "WITH_MSCCL")
    build_library(directory, "librccl-nomscc.so", 22703)
    build_library(directory, "libmscclpp_nccl.so", 1000)
    build_library(directory, "libmscclpp_nccl-next.so", 1100)
    build_library(directory, "libfailing-nccl.so", 22304, "STATUS=5")
    build_library(directory, "libnegative-nccl.so", -1)
    build_library(directory, "libcrash-nccl.so", 22304, "CRASH_ON_LOAD")
    build_library(directory, "libexit-nccl.so", 22304, "EXIT_ON_LOAD")
    build_library(directory, "libchatty-nccl.so", 22304, "CHATTY")
    build_library(directory, "libother.so", source="int somethingElse(void) { return 0; }\n")
    (directory / "libnccl-text.so").write_text("not a library\n")
    return directory


@needs_compiler
def test_executor_on_nccl_2_23_4_loads_msccl_xml(libs: Path) -> None:
    library = report_of(libs / "libnccl.so.2")
    assert (library["flavor"], library["version"], library["version_code"]) == ("NCCL", "2.23.4", 22304)
    assert library["msccl_entry_points"] == list(libinfo.MSCCL_ENTRY_POINTS)
    assert verdicts(library) == {"MSCCL XML": "loads", "MSCCL++ plan": "loads through libmscclpp_nccl.so"}
    assert env_names(library, "MSCCL XML") == ["NCCL_MSCCL_ENABLE", "MSCCL_ALGO_DIR"]


@needs_compiler
def test_stock_nccl_loads_no_msccl_xml_and_serves_as_the_shims_fallback(libs: Path) -> None:
    path = libs / "stock" / "libnccl.so.2"
    library = report_of(path)
    assert library["version"] == "2.28.9" and library["msccl_entry_points"] == []
    assert verdicts(library)["MSCCL XML"] == "does not load"
    (plan,) = [o for o in library["outputs"] if o["output"] == "MSCCL++ plan"]
    fallback = {env["name"]: env["value"] for env in plan["env"]}
    assert fallback["MSCCLPP_NCCL_LIB_PATH"] == str(path)
    assert "MSCCLPP_CACHE_DIR" in fallback


@needs_compiler
def test_msccl_entry_points_on_another_nccl_base_are_untested(libs: Path) -> None:
    assert verdicts(report_of(libs / "new-msccl" / "libnccl.so.2"))["MSCCL XML"] == "untested"


@needs_compiler
def test_part_of_the_entry_points_is_not_enough(libs: Path) -> None:
    library = report_of(libs / "libnccl-partial.so")
    assert library["msccl_entry_points"] == ["mscclLoadAlgo", "mscclRunAlgo"]
    assert verdicts(library)["MSCCL XML"] == "does not load"


@needs_compiler
def test_a_library_that_prints_is_still_read(libs: Path) -> None:
    assert report_of(libs / "libchatty-nccl.so")["version"] == "2.23.4"


@needs_compiler
def test_pre_2_9_version_code(libs: Path) -> None:
    assert report_of(libs / "libnccl-old.so")["version"] == "2.8.4"


@needs_compiler
def test_rccl_2_27_loads_msccl_xml_with_force_enable(libs: Path) -> None:
    library = report_of(libs / "librccl.so.1")
    assert (library["flavor"], library["version"]) == ("RCCL", "2.27.3")
    assert verdicts(library)["MSCCL XML"] == "loads"
    assert env_names(library, "MSCCL XML") == ["MSCCL_ALGO_DIR", "RCCL_MSCCL_FORCE_ENABLE"]


@needs_compiler
def test_rccl_stubs_and_rccl_without_msccl_load_no_xml(libs: Path) -> None:
    stubbed = report_of(libs / "librccl-stubbed.so")
    assert stubbed["msccl_entry_points"] == list(libinfo.MSCCL_ENTRY_POINTS)
    assert verdicts(stubbed)["MSCCL XML"] == "does not load"
    assert "2.28.3" in stubbed["outputs"][0]["reason"]
    assert verdicts(report_of(libs / "librccl-nomscc.so"))["MSCCL XML"] == "does not load"


@needs_compiler
def test_mscclpp_shim_loads_plans_of_its_series_only(libs: Path) -> None:
    shim = report_of(libs / "libmscclpp_nccl.so")
    assert (shim["flavor"], shim["version"]) == ("MSCCL++ NCCL shim", "0.10.0")
    assert verdicts(shim) == {"MSCCL XML": "does not load", "MSCCL++ plan": "loads"}
    assert env_names(shim, "MSCCL++ plan") == ["MSCCLPP_CACHE_DIR", "MSCCLPP_NCCL_LIB_PATH"]
    assert verdicts(report_of(libs / "libmscclpp_nccl-next.so"))["MSCCL++ plan"] == "untested"


@needs_compiler
def test_text_report(libs: Path) -> None:
    result = run(str(libs / "libnccl.so.2"))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"{libs / 'libnccl.so.2'}: NCCL 2.23.4 (version code 22304)"
    assert lines[1] == "  MSCCL entry points: mscclLoadAlgo, mscclRunAlgo, mscclUnloadAlgo"
    assert lines[2].startswith("  MSCCL XML: loads: msccl-executor-nccl")
    assert "    MSCCL_ALGO_DIR=<directory of collc's .xml files>" in result.output


@needs_compiler
@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("libother.so", "not an NCCL-compatible library: it exports no ncclGetVersion"),
        ("libfailing-nccl.so", "ncclGetVersion failed with result 5"),
        ("libnegative-nccl.so", "negative version code (-1)"),
        ("libcrash-nccl.so", "loading the library crashed its process (signal"),
        ("libnccl-text.so", "cannot be loaded:"),
        ("libexit-nccl.so", "ended its process before it could be read"),
        ("missing.so", "no such file"),
        (".", "not a file"),
    ],
)
def test_unusable_libraries_are_located_input_errors(libs: Path, name: str, message: str) -> None:
    result = run(str(libs / name))
    assert result.exit_code == 2
    assert result.output.startswith(f"{libs / name}: error: ")
    assert message in result.output
    assert "Traceback" not in result.output


@needs_compiler
def test_search_reports_each_library_once_and_skips_unreadable_ones(
    libs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(libs / "libnccl.so.2", tmp_path / "libnccl.so.2.23.4")
    os.symlink("libnccl.so.2.23.4", tmp_path / "libnccl.so.2")
    shutil.copy(libs / "libcrash-nccl.so", tmp_path / "librccl.so.1")
    shutil.copy(libs / "libother.so", tmp_path / "libunrelated.so")
    places = libinfo.SearchPlaces((str(tmp_path),), (str(tmp_path / "libnccl.so.2"),))
    assert found_libraries(places) == [str(tmp_path / "libnccl.so.2"), str(tmp_path / "librccl.so.1")]
    monkeypatch.setattr("collc.cli.runtime.default_search_places", lambda: places)
    result = run("--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert [library["path"] for library in payload["libraries"]] == [str(tmp_path / "libnccl.so.2")]
    assert [entry["path"] for entry in payload["skipped"]] == [str(tmp_path / "librccl.so.1")]
    text = run()
    assert text.output.splitlines()[-1].startswith(f"{tmp_path / 'librccl.so.1'}: skipped: loading")


def test_search_that_finds_nothing_is_an_input_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = libinfo.SearchPlaces((str(tmp_path),), ())
    monkeypatch.setattr("collc.cli.runtime.default_search_places", lambda: empty)
    result = run()
    assert result.exit_code == 2
    assert result.output.startswith("error: no libnccl, librccl or libmscclpp_nccl found")
    assert "hint: give the library's path" in result.output
