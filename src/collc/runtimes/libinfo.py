"""Read an installed NCCL, RCCL or MSCCL++ shim library and say which of collc's outputs it loads.

collc writes two kinds of schedule file, and each is loaded by a narrow set of runtime builds:

* **MSCCL XML** is loaded through the MSCCL entry points ``mscclLoadAlgo``, ``mscclRunAlgo`` and
  ``mscclUnloadAlgo``. On NVIDIA GPUs the one maintained build that has them is msccl-executor-nccl,
  a fork of NCCL 2.23.4; stock NCCL has none. RCCL loaded the XML from 2.15.5 through 2.27.x; from
  2.28.3 on the entry points are still exported but do nothing, so only the version tells.
* **MSCCL++ execution plans** (JSON) are loaded by MSCCL++ v0.10.x, in an NCCL program through its NCCL
  shim ``libmscclpp_nccl.so``, which hands the collectives it has no plan for to a real NCCL or RCCL.

The library's own facts come from loading it in a child process (a library that crashes when loaded
then cannot take collc down with it): ``ncclGetVersion`` gives the version code, and a symbol lookup
tells which MSCCL entry points it exports. :func:`assess` turns those facts into the report; it is
pure, so each rule above is tested without building a library.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from collc.errors import InputError, location_in

#: the MSCCL entry points an MSCCL-capable NCCL or RCCL exports
MSCCL_ENTRY_POINTS = ("mscclLoadAlgo", "mscclRunAlgo", "mscclUnloadAlgo")
#: every symbol the child process looks up
PROBED_SYMBOLS = ("ncclGetVersion", *MSCCL_ENTRY_POINTS)
#: seconds a child process may take to load a library and call ncclGetVersion
PROBE_TIMEOUT_S = 60

#: file-name prefixes of the libraries `collc runtime` looks for when no path is given
LIBRARY_PREFIXES = ("libnccl.so", "librccl.so", "libmscclpp_nccl.so")


@dataclass(frozen=True, order=True)
class Version:
    """A runtime release, compared field by field."""

    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


#: NCCL release msccl-executor-nccl is a fork of; collc's MSCCL XML follows that executor's rules
EXECUTOR_BASE = Version(2, 23, 4)
#: first RCCL release whose MSCCL loader collc's XML is written for
RCCL_FIRST_MSCCL = Version(2, 15, 5)
#: first RCCL release in which the MSCCL entry points are no-op stubs
RCCL_STUBBED_MSCCL = Version(2, 28, 3)
#: the MSCCL++ release series whose execution-plan parser collc's plans follow
MSCCLPP_SERIES = (0, 10)


def loaded_by(runtime: str) -> str:
    """The releases that load a file compiled for ``runtime`` (the compile report's ``loads on`` line)."""
    if runtime == "mscclpp":
        return f"MSCCL++ v{MSCCLPP_SERIES[0]}.{MSCCLPP_SERIES[1]}.x (its execution-plan executor)"
    if runtime == "rccl":
        last = f"{RCCL_STUBBED_MSCCL.major}.{RCCL_STUBBED_MSCCL.minor - 1}.x"
        return f"RCCL {RCCL_FIRST_MSCCL} to {last} (RCCL {RCCL_STUBBED_MSCCL} removed MSCCL)"
    return f"msccl-executor-nccl (NCCL {EXECUTOR_BASE} with MSCCL; stock NCCL has no MSCCL loader)"


class Flavor(Enum):
    """Which library family a file is, told by its file name (they all export ``ncclGetVersion``)."""

    NCCL = "NCCL"
    RCCL = "RCCL"
    MSCCLPP_SHIM = "MSCCL++ NCCL shim"


class Verdict(Enum):
    """Whether an installation runs one of collc's outputs."""

    LOADS = "loads"
    THROUGH_SHIM = "loads through libmscclpp_nccl.so"
    UNTESTED = "untested"
    NO = "does not load"


@dataclass(frozen=True)
class EnvSetting:
    """An environment variable the runtime needs to run collc's file, and why."""

    name: str
    value: str
    why: str


@dataclass(frozen=True)
class OutputSupport:
    """Whether one of collc's outputs runs on this installation, why, and with which settings."""

    output: str
    verdict: Verdict
    reason: str
    env: tuple[EnvSetting, ...] = ()


@dataclass(frozen=True)
class LibraryReading:
    """What the child process read from a library: its version code and the probed symbols it has."""

    path: str
    version_code: int
    symbols: frozenset[str]


@dataclass(frozen=True)
class RuntimeReport:
    """One library's identity and what it does with each of collc's outputs."""

    path: str
    flavor: Flavor
    version: Version
    version_code: int
    msccl_entry_points: tuple[str, ...]
    outputs: tuple[OutputSupport, ...]

    def to_json(self) -> dict[str, object]:
        """The report as plain JSON data, field names as in the text report."""
        return {
            "path": self.path,
            "flavor": self.flavor.value,
            "version": str(self.version),
            "version_code": self.version_code,
            "msccl_entry_points": list(self.msccl_entry_points),
            "outputs": [
                {
                    "output": support.output,
                    "verdict": support.verdict.value,
                    "reason": support.reason,
                    "env": [{"name": e.name, "value": e.value, "why": e.why} for e in support.env],
                }
                for support in self.outputs
            ],
        }


def decode_nccl_version(code: int) -> Version:
    """NCCL's and RCCL's version code: ``major*10000 + minor*100 + patch`` from 2.9 on.

    Releases before 2.9 used ``major*1000 + minor*100 + patch``; their codes are below 10000 and every
    later code is at least 20900, so the size of the code tells the two schemes apart.
    """
    if code < 0:
        raise ValueError(f"a version code is not negative, got {code}")
    if code >= 10000:
        return Version(code // 10000, code % 10000 // 100, code % 100)
    return Version(code // 1000, code % 1000 // 100, code % 100)


def decode_mscclpp_version(code: int) -> Version:
    """MSCCL++'s version code (its shim's ``ncclGetVersion``): ``major*10000 + minor*100 + patch``."""
    if code < 0:
        raise ValueError(f"a version code is not negative, got {code}")
    return Version(code // 10000, code % 10000 // 100, code % 100)


def flavor_of(path: str) -> Flavor:
    """The library family, from the file name: every one of them exports ``ncclGetVersion``."""
    name = Path(path).name.lower()
    if "mscclpp" in name:
        return Flavor.MSCCLPP_SHIM
    if "rccl" in name:
        return Flavor.RCCL
    return Flavor.NCCL


_ALGO_DIR = EnvSetting(
    "MSCCL_ALGO_DIR", "<directory of collc's .xml files>", "where the MSCCL loader reads XML files"
)


def _msccl_xml(flavor: Flavor, version: Version, entry_points: tuple[str, ...]) -> OutputSupport:
    """Whether this library loads MSCCL XML (the rules in the module docstring)."""
    output = "MSCCL XML"
    missing = [name for name in MSCCL_ENTRY_POINTS if name not in entry_points]
    if flavor is Flavor.MSCCLPP_SHIM:
        return OutputSupport(output, Verdict.NO, "the MSCCL++ shim runs execution plans, not MSCCL XML")
    if flavor is Flavor.RCCL:
        if version >= RCCL_STUBBED_MSCCL:
            return OutputSupport(
                output,
                Verdict.NO,
                f"RCCL {version}: MSCCL was removed in RCCL {RCCL_STUBBED_MSCCL} (its entry points are "
                f"no-op stubs); the last RCCL that loads MSCCL XML is 2.27.x",
            )
        if version < RCCL_FIRST_MSCCL:
            return OutputSupport(
                output,
                Verdict.NO,
                f"RCCL {version} is older than {RCCL_FIRST_MSCCL}, the first RCCL whose MSCCL loader "
                f"collc's XML is written for",
            )
        if missing:
            return OutputSupport(output, Verdict.NO, f"built without MSCCL: no {', '.join(missing)}")
        return OutputSupport(
            output,
            Verdict.LOADS,
            f"RCCL {version} loads MSCCL XML (one process per GPU unless RCCL_MSCCL_ENABLE_SINGLE_PROCESS=1)",
            (
                _ALGO_DIR,
                EnvSetting(
                    "RCCL_MSCCL_FORCE_ENABLE",
                    "1",
                    "on GPUs other than MI300X: RCCL turns MSCCL on by default only on MI300X",
                ),
            ),
        )
    if len(missing) == len(MSCCL_ENTRY_POINTS):
        return OutputSupport(
            output,
            Verdict.NO,
            f"stock NCCL has no MSCCL loader; MSCCL XML runs on msccl-executor-nccl "
            f"(NCCL {EXECUTOR_BASE} base)",
        )
    if missing:
        return OutputSupport(
            output, Verdict.NO, f"only part of the MSCCL entry points: no {', '.join(missing)}"
        )
    env = (EnvSetting("NCCL_MSCCL_ENABLE", "1", "turns the MSCCL loader on (its default)"), _ALGO_DIR)
    if version != EXECUTOR_BASE:
        return OutputSupport(
            output,
            Verdict.UNTESTED,
            f"an NCCL {version} with the MSCCL entry points; collc's XML follows msccl-executor-nccl "
            f"on NCCL {EXECUTOR_BASE}",
            env,
        )
    return OutputSupport(
        output, Verdict.LOADS, f"msccl-executor-nccl (NCCL {EXECUTOR_BASE} with the MSCCL entry points)", env
    )


def _mscclpp_plan(flavor: Flavor, version: Version, path: str) -> OutputSupport:
    """Whether this library loads MSCCL++ execution plans, directly or as the shim's fallback."""
    output = "MSCCL++ plan"
    series = f"v{MSCCLPP_SERIES[0]}.{MSCCLPP_SERIES[1]}.x"
    cache = EnvSetting(
        "MSCCLPP_CACHE_DIR",
        "<directory of collc's plans>",
        "where MSCCL++ reads execution plans (releases before 2026 read MSCCLPP_EXECUTION_PLAN_DIR)",
    )
    if flavor is Flavor.MSCCLPP_SHIM:
        fallback = EnvSetting(
            "MSCCLPP_NCCL_LIB_PATH",
            "<path of the real libnccl/librccl>",
            "runs the collectives that have no plan",
        )
        if (version.major, version.minor) != MSCCLPP_SERIES:
            return OutputSupport(
                output,
                Verdict.UNTESTED,
                f"MSCCL++ {version}: collc's plans follow the {series} parser, and field names change "
                f"between releases",
                (cache, fallback),
            )
        return OutputSupport(output, Verdict.LOADS, f"MSCCL++ {version} NCCL shim", (cache, fallback))
    return OutputSupport(
        output,
        Verdict.THROUGH_SHIM,
        f"{flavor.value} runs no plans itself; preload MSCCL++ {series}'s libmscclpp.so and "
        f"libmscclpp_nccl.so (LD_PRELOAD) and this library serves the collectives without a plan",
        (
            cache,
            EnvSetting("MSCCLPP_NCCL_LIB_PATH", path, "the shim's fallback for collectives without a plan"),
        ),
    )


def assess(reading: LibraryReading) -> RuntimeReport:
    """The report for one library: its family, version and what it does with each collc output."""
    flavor = flavor_of(reading.path)
    decode = decode_mscclpp_version if flavor is Flavor.MSCCLPP_SHIM else decode_nccl_version
    version = decode(reading.version_code)
    entry_points = tuple(name for name in MSCCL_ENTRY_POINTS if name in reading.symbols)
    return RuntimeReport(
        path=reading.path,
        flavor=flavor,
        version=version,
        version_code=reading.version_code,
        msccl_entry_points=entry_points,
        outputs=(_msccl_xml(flavor, version, entry_points), _mscclpp_plan(flavor, version, reading.path)),
    )


#: how the child's answer line starts (a library may print its own lines to standard output)
_ANSWER = "collc-probe:"

# The child process: load the library, look the symbols up, call ncclGetVersion; print one JSON line.
_CHILD = """
import ctypes, json, sys
path, names = sys.argv[1], json.loads(sys.argv[2])
try:
    lib = ctypes.CDLL(path)
except OSError as error:
    print("collc-probe:" + json.dumps({"load_error": str(error)}), flush=True)
    raise SystemExit(0)
found = [name for name in names if hasattr(lib, name)]
out = {"symbols": found}
if "ncclGetVersion" in found:
    code = ctypes.c_int(-1)
    out["status"] = lib.ncclGetVersion(ctypes.byref(code))
    out["code"] = code.value
print("collc-probe:" + json.dumps(out), flush=True)
"""


def read_library(path: str | Path) -> LibraryReading:
    """Load ``path`` in a child process and read its version code and MSCCL entry points.

    Raises :class:`InputError`, located at ``path``, when the file is missing, cannot be loaded, crashes
    the loader, exports no ``ncclGetVersion`` or its ``ncclGetVersion`` fails.
    """
    shown = str(path)
    where = location_in(shown)
    if not Path(path).is_file():
        what = "not a file" if Path(path).exists() else "no such file"
        raise InputError(what, location=where, hint="give the path of a libnccl or librccl")
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, os.path.abspath(path), json.dumps(PROBED_SYMBOLS)],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InputError(
            f"loading the library took longer than {PROBE_TIMEOUT_S} s", location=where
        ) from None
    if done.returncode != 0:
        how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit code {done.returncode}"
        raise InputError(f"loading the library crashed its process ({how})", location=where)
    answers = [line for line in done.stdout.splitlines() if line.startswith(_ANSWER)]
    if not answers:
        raise InputError("loading the library ended its process before it could be read", location=where)
    answer = json.loads(answers[0].removeprefix(_ANSWER))
    if "load_error" in answer:
        raise InputError(
            f"cannot be loaded: {' '.join(answer['load_error'].split())[:300]}",
            location=where,
            hint="a library that needs other libraries loads only where those are on the loader's path "
            "(LD_LIBRARY_PATH); a librccl needs ROCm's libraries",
        )
    if "ncclGetVersion" not in answer["symbols"]:
        raise InputError(
            "not an NCCL-compatible library: it exports no ncclGetVersion",
            location=where,
            hint="give the path of a libnccl, librccl or libmscclpp_nccl",
        )
    if answer["status"] != 0:
        raise InputError(f"ncclGetVersion failed with result {answer['status']}", location=where)
    if answer["code"] < 0:
        raise InputError(f"ncclGetVersion gave a negative version code ({answer['code']})", location=where)
    return LibraryReading(shown, answer["code"], frozenset(answer["symbols"]))


@dataclass(frozen=True)
class SearchPlaces:
    """Where to look for runtime libraries when no path is given, in the order they are searched."""

    directories: tuple[str, ...]
    ldconfig_paths: tuple[str, ...]


def _is_runtime_library(name: str) -> bool:
    return any(name.startswith(prefix) for prefix in LIBRARY_PREFIXES)


def search_places(
    environ: Mapping[str, str], site_dirs: Sequence[str], ldconfig_listing: str
) -> SearchPlaces:
    """The usual places: LD_LIBRARY_PATH, the system's library directories, ROCm, CUDA, and the
    ``nvidia/nccl/lib`` and ``torch/lib`` folders of Python's site directories (where pip puts NCCL);
    plus the runtime libraries that ``ldconfig -p`` lists."""
    directories = [d for d in environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    directories += ["/usr/lib", "/usr/lib64", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu"]
    directories += ["/usr/local/lib", "/opt/rocm/lib"]
    cuda_homes = [environ[name] for name in ("CUDA_HOME", "CUDA_PATH") if environ.get(name)]
    directories += [f"{home}/lib64" for home in [*cuda_homes, "/usr/local/cuda"]]
    for site_dir in site_dirs:
        directories += [f"{site_dir}/nvidia/nccl/lib", f"{site_dir}/torch/lib"]
    listed = [
        line.rsplit("=>", 1)[1].strip()
        for line in ldconfig_listing.splitlines()
        if "=>" in line and _is_runtime_library(line.split()[0])
    ]
    return SearchPlaces(tuple(dict.fromkeys(directories)), tuple(dict.fromkeys(listed)))


def found_libraries(places: SearchPlaces) -> list[str]:
    """The runtime libraries in ``places``, one path per file (the first name met), in search order."""
    paths: list[str] = []
    for directory in places.directories:
        if os.path.isdir(directory):
            paths += sorted(
                str(Path(directory, name)) for name in os.listdir(directory) if _is_runtime_library(name)
            )
    paths += places.ldconfig_paths
    seen: set[str] = set()
    unique: list[str] = []
    for path in paths:
        real = os.path.realpath(path)
        if os.path.isfile(real) and real not in seen:
            seen.add(real)
            unique.append(path)
    return unique


def default_search_places() -> SearchPlaces:
    """:func:`search_places` for this machine: its environment, site directories and ``ldconfig -p``."""
    try:
        listing = subprocess.run(
            ["ldconfig", "-p"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        listing = ""
    sites: Iterable[str] = [*site.getsitepackages(), site.getusersitepackages(), *sys.path]
    return search_places(os.environ, list(dict.fromkeys(s for s in sites if s)), listing)
