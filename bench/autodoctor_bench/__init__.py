"""autodoctor_bench: the benchmark harness behind bench/run (entry point: bench/harness.py).

- ``config``: run profiles, delivery modes, the issue's goals;
- ``stats``: medians, spreads and number formatting shared by measure and render;
- ``runner``: the ``Harness`` (connections, the data set, pgbench and the Python load
  generator, the pool of pending requests) and the loop over the sections; ``dataset``:
  the volumes loaded before the sections, and the environment the report names;
- ``cluster``: the pgbouncer and the streaming standby of the benchmark cluster, through
  scripts/cluster.sh (the same helper as scripts/db.sh and bench/run);
- one module per section, each with ``measure(h)`` and its ``render`` functions:
  ``dashboards``, ``accept_throughput`` (section ``matrix``), ``driver`` (``python``),
  ``contention``, ``notify_latency`` (``notify``), ``orphan_dispatch`` (``dispatch``),
  ``peer``, ``pooler`` and ``standby`` (together section ``scale``), ``profiles``
  (``profile``); ``sections`` lists them in run order;
- ``report``: BENCHMARKS.md from bench/BENCHMARKS.md.in; ``analysis``: the analysis from
  bench/ANALYSIS.md.in, which quotes measured figures by name;
- ``cli``: the command line (``--report-only``, ``--merge``).
"""
