"""The event simulation of a preset's forest lowered a given way: what the option tests compare."""

from __future__ import annotations

from collections.abc import Callable

from collc.lowering import LoweringOptions, lower
from collc.lowering.limits import limits_for
from collc.lowering.plan import network_planes
from collc.predict.model import TopologyModel
from collc.predict.params import simple
from collc.solver import solve
from collc.topology import load


def lowered_algbw(
    preset: str, boxes: int, k: int, runtime: str, *, reverse: bool = False, buffer_bytes: int = 256 << 10
) -> Callable[[LoweringOptions], float]:
    """algbw (GB/s) at 1 GiB of the preset's ``k`` forest lowered with given options, as compile lowers
    it (network planes, arc bandwidths) and simulated at ``buffer_bytes`` (compile's 256 KiB)."""
    topology = load(preset, {"boxes": str(boxes)})
    forest = solve(topology, k=k, reverse=reverse).forest
    limits = limits_for(topology, runtime)
    model = TopologyModel(topology)
    proto = simple(buffer_bytes)

    def algbw(options: LoweringOptions) -> float:
        algo = lower(
            forest, options, limits, planes=network_planes(topology), arc_bandwidths=topology.arc_bandwidths()
        ).algorithm
        return 2**30 / model.collc(algo).time_us(options.coll, 2**30, proto) / 1000

    return algbw
