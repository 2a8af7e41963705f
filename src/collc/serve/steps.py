"""A compile job as the service runs it: the request, its cache key, its cost estimate, and slices of
the compile's own steps.

The compile pipeline runs as steps over a picklable state (:func:`collc.compile.driver.advance`). A
*slice* runs steps until the job is done, its quantum is used up, or the scheduler asks it to stop;
the worker keeps the live state (:class:`HeldStates`) and the job's next slice runs there, or, beyond
the worker's capacity, the state goes back to the scheduler as pickled bytes and the next slice may
run in any worker process. Preemption therefore happens only between two steps of the pipeline,
never by a signal.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields

from collc import __version__
from collc.compile.driver import CompileState, advance, begin, next_step
from collc.compile.flags import CompileFlags
from collc.compile.report import report_json, report_lines
from collc.errors import CollcError, InputError
from collc.input_limits import MAX_TOPOLOGY_BYTES
from collc.msccl.program import PROTOCOLS
from collc.topology import Topology
from collc.topology.degrade import Degradation, degrade
from collc.topology.export import flat_document
from collc.topology.infer import infer_structure
from collc.topology.loader import parse_topology
from collc.topology.presets import load, preset_names

#: how a submitted topology text is named in located messages
SUBMITTED = "<submitted topology>"
#: the predicted first stage (bound, first forest, first lowering) of an 8-GPU fabric, in seconds, and
#: how it grows with the GPUs: measured on dgx-a100 with 1, 2, 4 and 8 boxes (0.02, 0.1, 0.27, 1.4 s).
FIRST_STAGE_AT_8_GPUS = 0.02
FIRST_STAGE_EXPONENT = 2.0
#: the file name in a stored report, replaced by each request's own output name when it is served (a
#: cached result answers requests that name their files differently)
OUTPUT_PLACEHOLDER = "@@collc-output@@"
#: share of the work done when each step starts (the rest of a step's share is its own): the range and
#: the simulation of the candidates take most of a small compile, the forests most of a large one.
_PROGRESS = {
    "bound": 0.0,
    "forest": 0.05,
    "lower": 0.1,
    "simulate": 0.55,
    "choose": 0.55,
    "range": 0.7,
    "verify": 0.9,
}


@dataclass(frozen=True)
class JobSpec:
    """One compile request: a topology (YAML text, or a preset and its parameters) and the flags."""

    preset: str | None
    topology_text: str | None
    settings: dict[str, str]
    flags: CompileFlags
    output: str = "schedule.xml"  # the file name the report speaks of
    degradation: Degradation = field(default_factory=Degradation)  # applied after loading

    def to_json(self) -> dict[str, object]:
        return {
            "preset": self.preset,
            "topology": self.topology_text,
            "set": self.settings,
            "options": asdict(self.flags),
            "output": self.output,
            **degradation_json(self.degradation),
        }


def degradation_json(degradation: Degradation) -> dict[str, object]:
    """The request fields of ``degradation`` (what :func:`spec_from_json` reads back)."""
    without, derate = list(degradation.without), list(degradation.derate)
    return {"without": without, "derate": derate, "gpus": degradation.gpus}


_FLAG_TYPES = {f.name: f.type for f in fields(CompileFlags)}
#: the fields of a request body
REQUEST_FIELDS = ("preset", "topology", "set", "options", "output", "without", "derate", "gpus")
_EXAMPLES = {"without": "nic:b0.nic3", "derate": "link:b0.gpu0-b0.sw0=50%"}


def _flag_value(name: str, value: object) -> object:
    """One ``options`` entry checked against the type of the flag it sets."""
    kind = str(_FLAG_TYPES[name])
    if value is None and "None" in kind:
        return None
    if kind.startswith("bool"):
        ok = isinstance(value, bool)
    elif kind.startswith("int"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        wanted = kind.replace(" | None", " or null")
        raise InputError(f"options.{name} must be {wanted}, got {json.dumps(value)[:40]}")
    if name == "proto":  # any letter case, as on the command line
        return next((p for p in PROTOCOLS if p.lower() == str(value).lower()), value)
    return value


def spec_from_json(body: object) -> JobSpec:
    """The request body of ``POST /v1/jobs`` as a :class:`JobSpec`; anything malformed is an InputError."""
    if not isinstance(body, dict):
        raise InputError("the request must be a JSON object", hint='e.g. {"preset": "dgx-a100"}')
    unknown = sorted(set(body) - set(REQUEST_FIELDS))
    if unknown:
        raise InputError(f"unknown request field {unknown[0]!r}", hint="fields: " + ", ".join(REQUEST_FIELDS))
    preset, text = body.get("preset"), body.get("topology")
    if (preset is None) == (text is None):
        raise InputError("give either 'preset' (a preset name) or 'topology' (the YAML text)")
    if not isinstance(preset or text, str):
        raise InputError("'preset' and 'topology' must be strings")
    settings = body.get("set") or {}
    if not isinstance(settings, dict) or not all(
        isinstance(k, str) and isinstance(v, str | int) for k, v in settings.items()
    ):
        raise InputError("'set' must map parameter names to values", hint='e.g. {"boxes": "2"}')
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise InputError("'options' must be a JSON object of compile flags")
    bad = sorted(set(options) - set(_FLAG_TYPES))
    if bad:
        raise InputError(f"unknown option {bad[0]!r}", hint="options: " + ", ".join(_FLAG_TYPES))
    output = body.get("output", "schedule.xml")
    if not isinstance(output, str) or not output or len(output) > 255:
        raise InputError("'output' must be a file name of 1 to 255 characters")
    flags = CompileFlags(**{name: _flag_value(name, value) for name, value in options.items()})
    settings = {k: str(v) for k, v in settings.items()}
    return JobSpec(preset, text, settings, flags, output, _degradation(body))


def _degradation(body: dict[str, object]) -> Degradation:
    """The request's ``without``/``derate`` (lists of the CLI's specs) and ``gpus`` (the CLI's
    selection, with names instead of ``@FILE``: a service reads no files of its host)."""
    lists = {}
    for name in ("without", "derate"):
        value = body.get(name) or []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise InputError(f"'{name}' must be a list of strings", hint=f'e.g. ["{_EXAMPLES[name]}"]')
        lists[name] = tuple(value)
    gpus = body.get("gpus")
    if gpus is not None and (not isinstance(gpus, str) or "@" in gpus):
        raise InputError(
            "'gpus' must be a selection string without @FILE", hint='e.g. "b0-b3" or "b0.gpu0,b0.gpu1"'
        )
    return Degradation(lists["without"], lists["derate"], gpus)  # "" selects nothing: refused when loaded


def load_topology(spec: JobSpec, max_gpus: int) -> Topology:
    """The request's topology, with the same located errors as the CLI; at most ``max_gpus`` GPUs."""
    if spec.topology_text is not None:
        if len(spec.topology_text.encode()) > MAX_TOPOLOGY_BYTES:
            raise InputError(f"the topology is larger than {MAX_TOPOLOGY_BYTES // 2**20} MiB")
        topology = infer_structure(parse_topology(spec.topology_text, SUBMITTED, spec.settings)[0])
    else:
        assert spec.preset is not None
        name = spec.preset.removesuffix(".yaml")
        if name not in preset_names():  # a service reads no files of its host for its clients
            raise InputError(
                f"{spec.preset!r} is not a preset",
                hint="presets: " + ", ".join(preset_names()) + "; or send the YAML text as 'topology'",
            )
        topology = load(name, spec.settings, on_warning=lambda warning: None)
    topology = degrade(topology, spec.degradation)  # the job's own GPUs are what it costs
    if topology.num_gpus > max_gpus:
        raise InputError(
            f"the topology has {topology.num_gpus} GPUs; this service compiles at most {max_gpus}",
            hint="ask the operator to raise --max-gpus, or compile it locally with collc compile",
        )
    return topology


def checked_start(spec: JobSpec, max_gpus: int) -> CompileState:
    """The job's first state: its topology loaded and its options checked (raises what the CLI would)."""
    topology = load_topology(spec, max_gpus)
    return begin(topology, spec.flags.options())


def cache_key(state: CompileState) -> str:
    """A canonical hash of what decides the output: the fabric in flat form, the options and collc's
    version. Two requests that spell the same fabric differently (a preset, its flat export) share it."""
    canonical = {
        "collc": __version__,
        "topology": flat_document(state.file_topology),  # its ranks: an allreduce is searched box-major
        "options": asdict(state.options),
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def first_stage_estimate(num_gpus: int) -> float:
    """Predicted seconds of the first stage (bound, first forest and lowering), from the fabric's size:
    what skip-join MLFQ places a new job by."""
    return FIRST_STAGE_AT_8_GPUS * (num_gpus / 8) ** FIRST_STAGE_EXPONENT


def progress(state: CompileState) -> float:
    """A rough share of the job done, from the step it is at (for a progress display only)."""
    stage = next_step(state)
    if stage == "done":
        return 1.0
    share = _PROGRESS[stage]
    if stage in ("forest", "lower") and state.candidates:
        if state.fastest:  # candidates tried after a first choice (the wide search): still choosing
            return _PROGRESS["choose"]
        share += 0.45 * min(len(state.fitted), 3) / 3
    return share


@dataclass(frozen=True)
class SliceOutcome:
    """What a slice hands back: the state to resume (pickled) or the result, and the seconds it ran."""

    job: str
    used: float
    steps: int
    stage: str
    progress: float
    state: bytes | None = None  # set when the job is unfinished and its state is not held
    held: bool = False  # the job is unfinished and its live state stays on the worker
    spilled: tuple[tuple[str, bytes], ...] = ()  # states the worker no longer holds, pickled
    xml: str | None = None  # set when it finished
    report: str | None = None  # the JSON report (``collc compile --json``)
    text: str | None = None  # the report ``collc compile`` prints
    error: str | None = None  # set when it failed: the CLI's message
    exit_code: int = 0


#: how many preempted jobs' live states a worker keeps (the others are handed back pickled)
HELD_STATES = 2


class HeldStates:
    """The live states of a worker's last preempted jobs.

    A job preempted on a worker stays there alive and its slice hands back no bytes: pickling a
    128-GPU state costs 0.3 s and unpickling it 0.6 s, against 0.3 s for a small job that preempts it,
    so preemptions paid that way pushed a loaded service past saturation. Only when the worker keeps
    more than ``capacity`` states are the least recently kept ones pickled (*spilled*) and handed to
    the scheduler, which may then offload them to disk. A worker that dies loses its live states:
    those jobs start over, as after a restart of the server."""

    def __init__(self, capacity: int = HELD_STATES):
        self.capacity = capacity
        self._states: OrderedDict[str, CompileState] = OrderedDict()

    def keep(self, job: str, state: CompileState) -> list[tuple[str, CompileState]]:
        """Keep ``job``'s live state; the states that no longer fit, least recently kept first (which
        may be ``job``'s own when the capacity is 0)."""
        self._states.pop(job, None)
        self._states[job] = state
        spilled = []
        while len(self._states) > self.capacity:
            spilled.append(self._states.popitem(last=False))
        return spilled

    def take(self, job: str) -> CompileState | None:
        """The live state of ``job`` (forgotten here), or None if this worker does not hold it."""
        return self._states.pop(job, None)

    def drop(self, job: str) -> None:
        """Forget ``job``'s state (its job was cancelled, or resumes from bytes elsewhere)."""
        self._states.pop(job, None)


def run_slice(
    job: str,
    spec: JobSpec,
    blob: bytes | None,
    quantum: float,
    max_gpus: int,
    should_stop: Callable[[], bool],
    on_step: Callable[[str, float], None] = lambda stage, share: None,
    held: HeldStates | None = None,
) -> SliceOutcome:
    """Run steps of ``job`` from ``blob`` until it finishes, ``quantum`` seconds have passed, or
    ``should_stop()`` says a job that outranks it waits. Always runs one step. Without ``blob`` the job
    resumes from the live state in ``held`` if that holds it, else it starts. With ``held``, an
    unfinished job's live state is kept there and handed back as ``held`` (with the states that spilled
    out of it); without, it is handed back pickled."""
    start = time.perf_counter()
    steps = 0
    stage = "begin"

    def outcome(**values: object) -> SliceOutcome:
        used = time.perf_counter() - start
        return SliceOutcome(job=job, used=used, steps=steps, stage=stage, **values)  # type: ignore[arg-type]

    try:
        live = held.take(job) if held is not None else None
        if blob is not None:
            state = pickle.loads(blob)
        else:
            state = live if live is not None else checked_start(spec, max_gpus)
        while True:
            stage = next_step(state)
            if stage == "done":
                assert state.result is not None
                return outcome(
                    progress=1.0,
                    xml=state.result.xml,
                    report=json.dumps(report_json(state.result, OUTPUT_PLACEHOLDER), indent=2),
                    text="\n".join(report_lines(state.result, OUTPUT_PLACEHOLDER)),
                )
            if steps and (time.perf_counter() - start >= quantum or should_stop()):
                return _preempted(job, state, held, outcome)
            on_step(stage, progress(state))
            advance(state)
            steps += 1
    except CollcError as error:
        return outcome(progress=0.0, error=str(error), exit_code=error.exit_code)
    except Exception as error:  # a bug or exhaustion: one line, like the CLI
        from collc.cli import failure_message

        return outcome(progress=0.0, error=failure_message(error), exit_code=2)


def _preempted(
    job: str, state: CompileState, held: HeldStates | None, outcome: Callable[..., SliceOutcome]
) -> SliceOutcome:
    """The outcome of a slice stopped unfinished: the live state kept in ``held`` where it fits, the
    states it displaced pickled, and this job's state pickled when it is not kept."""
    if held is None:
        return outcome(progress=progress(state), state=pickle.dumps(state, protocol=5))
    displaced = held.keep(job, state)
    spilled = tuple((other, pickle.dumps(live, protocol=5)) for other, live in displaced if other != job)
    if any(other == job for other, _ in displaced):
        pickled = pickle.dumps(state, protocol=5)
        return outcome(progress=progress(state), state=pickled, spilled=spilled)
    return outcome(progress=progress(state), held=True, spilled=spilled)
