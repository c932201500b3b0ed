"""The report stage: report v1 as bytes, its checks, its signatures and the local store.

``model`` is report v1 as typed msgspec Structs (types, ranges and rules in one place);
``builder`` assembles a report map in the model's order; ``codec`` encodes and decodes the
msgpack wire form (typed binary arrays, canonical order); ``schema`` validates a decoded report
through the model and prints the field table of docs/report-format.md; ``signing`` adds and
verifies HMAC-SHA256 and Ed25519 signatures over the canonical encoding; ``store`` writes
reports atomically into the local spool that the uplink sends from.
"""
