"""collc: collective schedules from ForestColl's throughput-optimal bound, compiled to verified MSCCL XML.

The package is laid out as the pipeline it implements, one stage per module or subpackage:

    topology/   YAML -> Topology (nodes, links, ranks, metadata), presets, validation
    capacity    Topology -> integer capacity graph (exact scaling, mapping back to GB/s)
    solver/     optimal bound (U, k) and bottleneck cut, switch removal, tree packing, physical paths
    lowering/   forest -> per-GPU MSCCL program (threadblocks, channels, steps)
    msccl/      the program IR, and the MSCCL XML reader and writer (per runtime dialect)
    verify/     lint and chunk-level simulation of any MSCCL program
    predict/    cost model, NCCL-style baselines, plots and reports
    cli/        the thin click command-line interface on top
"""

__version__ = "0.1.0"
