"""The collector: where device reports land and governance pipelines pull them.

Runs upstream, not on the device; its dependencies (Starlette, uvicorn, SQLAlchemy, psycopg,
prometheus-client) come with the ``edgeprof[collector]`` extra. Layers, one module each:

- :mod:`.db` — tables (SQLAlchemy Core), the engine for SQLite (WAL) or PostgreSQL, migrations;
- :mod:`.tokens` — roles and hashed bearer tokens;
- :mod:`.keys` — the signing keys the collector trusts;
- :mod:`.ingest` — an uploaded body in, a checked, indexed row out (or a clear refusal);
- :mod:`.repository` — every read and write of the database, one code path for both engines;
- :mod:`.app` — the HTTP API (Starlette) with :mod:`.openapi` as its published contract.
"""
