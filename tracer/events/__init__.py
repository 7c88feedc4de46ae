"""The event contract: what every other package of the tracer speaks, importing none
of them (only tracer.util).

One module per event family, each holding that family's wire struct (mirroring
bpf/include/events.h), decoder, model class, JSON record, table line and JSON-lines
parse: drop, flow, nat, route, neigh, icmp, tcp, sock, and lost (user space's own).

- wire.py        the shared header and address tuple, enum ev_kind, the field tables
- common.py      Endpoint, Process, PodRef, Forwarding and the vocabularies, with
                 their records, table text and parse
- decoding.py    DecodeContext, Fields: what a family's decoder is given
- family.py      the Family descriptor each family module ends with
- registry.py    every family, the Event union, look-ups by name, type and kind
- icmp_names.py  ICMP and ICMPv6 type/code names
- finding.py     findings and coverage (the diagnosis' JSON contract); objref.py
- model.py, schema.py, records.py, jsonl.py
                 the models, wire structs, records and JSON-lines reader gathered
                 from the family modules (records.py and jsonl.py dispatch)
"""
