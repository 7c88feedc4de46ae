"""Diagnosis: decoded events → named root causes (docs/findings.md).

- names.py      what the rules need from Kubernetes metadata (a Protocol) and a minimal
                adapter over kubectl-style object lists (replaced by the metadata index)
- nodefacts.py  the node's routes, addresses and sysctls, parsed from snapshots
- rules.py      one function per cause, over a connection (tracer/pipeline/connections.py)
                or the node's loose events
- engine.py     the stage: events in, findings out as soon as complete; coverage
- finding.py    the finding and coverage records (the JSON contract)
- offline.py    a recording or `trace -o jsonl` output through the same stage
"""
