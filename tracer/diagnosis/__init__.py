"""Diagnosis: decoded events → named root causes (docs/findings.md).

- names.py      what the rules need from Kubernetes metadata (a Protocol), answered by
                the metadata index the events are named from
- nodefacts.py  the node's routes, addresses and sysctls, parsed from snapshots
- rules.py      one function per cause, over a connection (tracer/pipeline/connections.py)
                or the node's loose events
- engine.py     the engine: events in, findings out as soon as complete; coverage
- stage.py      the engine as a pipeline stage (tracer/modes/build.py places it)
- finding.py    the finding and coverage records (the JSON contract)
- offline.py    a recording or `trace -o jsonl` output through the same stages as live
"""
