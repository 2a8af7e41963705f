"""Stage 3: the solver -- optimal bound, switch removal, tree packing, physical paths.

``solve(topology)`` runs the whole pipeline and returns a :class:`Solution` (bound, forest, stats);
see :mod:`collc.solver.pipeline` and docs/solver.md.
"""

from collc.solver.forest import Forest, Tree, TreeEdge, forest_from_json, forest_to_json
from collc.solver.invariants import check_forest
from collc.solver.pipeline import Solution, SolveStats, solve

__all__ = [
    "Forest",
    "Solution",
    "SolveStats",
    "Tree",
    "TreeEdge",
    "check_forest",
    "forest_from_json",
    "forest_to_json",
    "solve",
]
