"""The largest inputs collc accepts, checked before the work they would cause.

Every reader stops at these limits with a located :class:`collc.errors.InputError` that names the limit,
so no input file or option can make a command run for minutes or exhaust memory. The values sit far
above any fabric collc targets (the largest shipped preset setting, 128 rail-optimised DGX H100 boxes,
has 1,024 GPUs and about 2,000 links) and well below what the solver can finish in seconds.
"""

from __future__ import annotations

from fractions import Fraction

#: bytes of a schedule file (MSCCL XML or an MSCCL++ plan) read at most; from a pipe, no more than this
#: is read. The runtimes' parsers keep at most 4,096 elements per rank (the algo, every gpu, the rank's
#: threadblocks and steps), so a file they load for N ranks has at most N × 4,095 threadblocks and
#: steps. collc's allgather reaches 1,365 GPUs (docs/lowering.md §6): at 1,088 its rail file is 271 MiB
#: (2.4 million steps) and verifies in 76 s and 2.3 GB, at 1,360 it is 284 MiB, so the files compile
#: writes can be read back. Plans are held to MAX_PLAN_BYTES once read.
MAX_SCHEDULE_BYTES = 512 * 2**20
#: bytes of a topology file (a flat file of the most links collc accepts takes about 2 MB).
MAX_TOPOLOGY_BYTES = 4 * 2**20
#: GPUs in one topology (ranks of one collective).
MAX_GPUS = 4096
#: nodes of any kind (GPUs, switches, NICs) in one topology.
MAX_NODES = 16384
#: links in one topology, parallel links counted one by one (a 256-GPU full mesh has 32,640; the
#: shipped presets at 4,096 GPUs have up to 22,536). Solving grows with links: this keeps a bound in seconds.
MAX_LINKS = 32768
#: (src, dst) candidate pairs that the link rules of one topology may consider in total (a few seconds of
#: work, twice a 256-GPU full mesh; the shipped presets at 4,096 GPUs consider under 10,000).
MAX_RULE_PAIRS = 2**17
#: YAML values after aliases are expanded (an alias repeats the whole value it names).
MAX_YAML_VALUES = 1_000_000
#: nesting depth of YAML collections and of XML elements.
MAX_NESTING = 64
#: characters of one topology expression (e.g. ``boxes * 50``).
MAX_EXPRESSION_LENGTH = 1000
#: expression nodes one topology may evaluate in total (a few seconds; the shipped presets at 4,096 GPUs
#: need under 200,000).
MAX_EXPRESSION_STEPS = 2_000_000
#: bits of a numerator or denominator inside an expression (about 300 decimal digits).
MAX_EXPRESSION_BITS = 1024
#: the exponent of a decimal number in text (``1.5e-3``): reading ``1e-99999999`` exactly computes ten
#: to that power, minutes in one uninterruptible call; every value collc reads lies within 1e±18.
MAX_DECIMAL_EXPONENT = 1000
#: one link's bandwidth in GB/s: from 1 kB/s to 1 PB/s.
MIN_BANDWIDTH_GBPS = Fraction(1, 10**6)
MAX_BANDWIDTH_GBPS = Fraction(10**6)
#: one link's latency in microseconds (one second).
MAX_LATENCY_US = Fraction(10**6)
#: the largest link capacity in multiples of the bandwidths' common unit: a max-flow adds up to
#: MAX_LINKS of them, which must stay inside int64 (further scaling is checked where it happens)
MAX_CAPACITY_UNITS = 2**47
#: trees per root (``--k`` and ``--max-k``); the largest optimum of the shipped presets is 83.
MAX_K = 1024
#: a byte count written into an MSCCL file (``minBytes``/``maxBytes``): the runtime reads an int64.
MAX_BYTES = 2**63 - 1
#: chunks per loop and per GPU buffer declared in an MSCCL XML file.
MAX_XML_CHUNKS = 2**20
#: bytes of an MSCCL++ execution plan (JSON); collc's own 32-GPU plans take a few MB.
MAX_PLAN_BYTES = 64 * 2**20
#: operations in one MSCCL++ plan, all ranks together (the executor runs at most 64 per threadblock).
MAX_PLAN_OPS = 2**20
#: threadblocks of one GPU in an MSCCL++ plan: the executor launches them as one kernel whose blocks
#: wait on each other's semaphores, so all must be resident at once (an MI300X, the largest GPU here,
#: runs 304 CUs; collc's plans use at most 128). 13,000 took the verifier past 90 s and 15 GB.
MAX_PLAN_THREADBLOCKS = 1024
