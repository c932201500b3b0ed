"""The report stage: report v1 as bytes, its checks, its signatures and the local store.

``codec`` encodes and decodes the msgpack wire form (typed binary arrays, canonical order);
``schema`` is the executable form of docs/report-format.md; ``signing`` adds and verifies
HMAC-SHA256 and Ed25519 signatures over the canonical encoding; ``store`` writes reports
atomically into the local spool that the uplink sends from.
"""
