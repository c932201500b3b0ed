"""The collector's published contract, OpenAPI 3.0, written by hand.

By hand because the interesting bodies are msgpack (a report is bytes whose schema is
docs/report-format.md), which no framework describes well; CI runs schemathesis against the
running server with this document, so it cannot drift from what the server does.
"""

from __future__ import annotations

from typing import Any

from edgeprof import __version__
from edgeprof.collector.repository import CURSOR_PATTERN, SHA256_PATTERN, UUID_PATTERN
from edgeprof.collector.tokens import DEVICE_ID_PATTERN, NAME_PATTERN

_TEXT = {"type": "string", "maxLength": 256, "pattern": "^[^\\x00]*$"}
_NS = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
_TAG = {"type": "string", "pattern": "^[^:\\x00]{1,128}:[^\\x00]{0,1024}$"}

_ERROR = {"$ref": "#/components/schemas/Error"}
_JSON_ERROR = {"application/json": {"schema": _ERROR}}


def _err(description: str) -> dict[str, Any]:
    return {"description": description, "content": _JSON_ERROR}


_AUTH_ERRORS = {
    "401": _err("missing, unknown or revoked token"),
    "403": _err("the token's role may not do this"),
    "503": _err("the database is unavailable"),
}

_NUM = {"type": "number", "nullable": True}

_LISTING = {
    "type": "object",
    "required": ["id", "created_ns", "model", "board_id", "device_id", "sha256", "gate_status"],
    "properties": {
        "id": {"type": "string"},
        "created_ns": {"type": "integer"},
        "received_ns": {"type": "integer"},
        "schema_version": {"type": "array", "items": {"type": "integer"}},
        "model": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "sha256": {"type": "string"}},
        },
        "board_id": {"type": "string"},
        "device_id": {"type": "string"},
        "runner": {"type": "string"},
        "count": {"type": "integer"},
        "latency_p50_s": _NUM,
        "latency_p95_s": _NUM,
        "latency_p99_s": _NUM,
        "rss_peak_bytes": _NUM,
        "energy_per_inference_j": _NUM,
        "power_mean_w": _NUM,
        "size_bytes": {"type": "integer"},
        "sha256": {"type": "string"},
        "signed_by": {"type": "array", "items": {"type": "string"}},
        "gate_status": {"type": "string", "enum": ["none", "pass", "fail", "incomplete"]},
        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}

_TOKEN = {
    "type": "object",
    "required": ["id", "name", "role", "created_ns"],
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "role": {"type": "string", "enum": ["device", "pipeline", "admin"]},
        "created_ns": {"type": "integer"},
        "revoked_ns": {"type": "integer", "nullable": True},
        "devices": {"type": "array", "items": {"type": "string"}},
        "token": {"type": "string"},
    },
}


_HEX64 = {"type": "string", "pattern": SHA256_PATTERN}
_DECISION_INPUT = {
    "type": "object",
    "required": ["report_id", "sha256", "role"],
    "additionalProperties": False,
    "properties": {
        "report_id": {"type": "string", "pattern": UUID_PATTERN},
        "sha256": _HEX64,
        "role": {"type": "string", "enum": ["candidate", "baseline", "window"]},
    },
}
_SIGNED = {
    "type": "object",
    "description": "what the gate key signs: 'edgeprof gate decision v1\\n' + canonical JSON",
    "required": [
        "v", "decision", "severity", "inputs", "policy_sha256", "audit", "time_ns",
        "gate_key_id", "record_sha256",
    ],
    "additionalProperties": False,
    "properties": {
        "v": {"type": "integer", "enum": [1]},
        "decision": {"type": "string", "enum": ["pass", "fail", "incomplete"]},
        "severity": {
            "type": "string", "nullable": True, "enum": ["critical", "high", "medium", "low", None],
        },
        "inputs": {"type": "array", "minItems": 1, "maxItems": 1100, "items": _DECISION_INPUT},
        "policy_sha256": _HEX64,
        "audit": {
            "type": "object",
            "nullable": True,
            "required": ["log_id", "seq", "sha256"],
            "additionalProperties": False,
            "properties": {"log_id": _HEX64, "seq": _NS, "sha256": _HEX64},
        },
        "time_ns": _NS,
        "gate_key_id": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
        "record_sha256": _HEX64,
    },
}  # fmt: skip
_DECISION_BODY = {
    "type": "object",
    "required": ["signed", "signature"],
    "additionalProperties": False,
    "properties": {
        "signed": _SIGNED,
        "signature": {"type": "string", "pattern": "^[0-9a-f]{128}$"},
        "record": {"type": "object", "description": "the audit-log body; its sha256 is signed"},
    },
}
_DECISION_ID = {
    "type": "object",
    "required": ["id", "duplicate"],
    "properties": {"id": {"type": "string"}, "duplicate": {"type": "boolean"}},
}
_ANCHORS = {
    "type": "object",
    "required": ["gate_key", "anchors"],
    "properties": {
        "gate_key": {"type": "string"},
        "anchors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["decision_id", "log_id", "seq", "sha256"],
                "properties": {
                    "decision_id": {"type": "string"},
                    "log_id": {"type": "string"},
                    "seq": {"type": "integer"},
                    "sha256": {"type": "string"},
                    "decided_ns": {"type": "integer"},
                },
            },
        },
    },
}


def _json_answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _path(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.0.3 document served at ``/openapi.json``."""
    secured: list[dict[str, list[str]]] = [{"bearer": []}]
    report_id = _path("report_id", {"type": "string", "pattern": UUID_PATTERN})
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "edgeprof collector",
            "version": __version__,
            "description": "Device reports in (signed msgpack, docs/report-format.md); "
            "reports, summaries and gate decisions out.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}},
                },
                "Listing": _LISTING,
                "Token": _TOKEN,
            },
        },
        "security": secured,
        "paths": {
            "/v1/reports": {
                "post": {
                    "operationId": "uploadReport",
                    "summary": "Upload one report (device tokens)",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/msgpack": {
                                "schema": {"type": "string", "format": "binary"}
                            }
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "stored",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["id"],
                                        "properties": {
                                            "id": {"type": "string"},
                                            "duplicate": {"type": "boolean"},
                                        },
                                    }
                                }
                            },
                        },
                        "200": {
                            "description": "already stored (same bytes): nothing changed",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["id"],
                                        "properties": {
                                            "id": {"type": "string"},
                                            "duplicate": {"type": "boolean"},
                                        },
                                    }
                                }
                            },
                        },
                        "400": _err(
                            "not a msgpack edgeprof report (malformed, truncated, nested or "
                            "sized past the bounds, a map key repeated)"
                        ),
                        "409": _err("a different report with this id is stored"),
                        "413": _err("body over the size limit"),
                        "415": _err("not application/msgpack"),
                        "422": _err(
                            "unknown schema version, failed validation (ranges, a non-canonical "
                            "id), a summary that contradicts its arrays, created_ns outside the "
                            "collector's window, unsigned, no Ed25519 signature, signature "
                            "mismatch"
                        ),
                        **_AUTH_ERRORS,
                        "403": _err(
                            "a device token may not upload this: not bound to the device the "
                            "report names, no enrolled key of that device signed it, or a board "
                            "the device may not report"
                        ),
                    },
                },
                "get": {
                    "summary": "List reports by filter, oldest first, with cursor pagination",
                    "parameters": [
                        _query("model", "model name", _TEXT),
                        _query(
                            "model_sha256",
                            "model file sha256",
                            {"type": "string", "pattern": SHA256_PATTERN},
                        ),
                        _query("board", "board id", _TEXT),
                        _query("device", "device id", _TEXT),
                        _query("runner", "runner (tflite, tflm, mcu)", _TEXT),
                        _query(
                            "created_after",
                            "Unix ns, inclusive (the server also takes ISO 8601 with a zone)",
                            _NS,
                        ),
                        _query("created_before", "Unix ns, exclusive (or ISO 8601)", _NS),
                        {
                            **_query("tag", "KEY:VALUE, repeatable up to 32 (all must match)"),
                            "schema": {"type": "array", "items": _TAG, "maxItems": 32},
                            "style": "form",
                            "explode": True,
                        },
                        _query(
                            "gate_status",
                            "latest gate decision",
                            {"type": "string", "enum": ["none", "pass", "fail", "incomplete"]},
                        ),
                        _query(
                            "limit",
                            "page size",
                            {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                        ),
                        _query(
                            "cursor",
                            "next_cursor of the previous page: <created_ns>_<report id>",
                            {"type": "string", "pattern": CURSOR_PATTERN},
                        ),
                        _query(
                            "order",
                            "asc: oldest first (default); desc: newest first",
                            {"type": "string", "enum": ["asc", "desc"]},
                        ),
                        _query(
                            "format",
                            "json (default) or msgpack",
                            {"type": "string", "enum": ["json", "msgpack"]},
                        ),
                    ],
                    "responses": {
                        "200": {
                            "description": "one page",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["reports", "next_cursor"],
                                        "properties": {
                                            "reports": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/Listing"},
                                            },
                                            "next_cursor": {"type": "string", "nullable": True},
                                        },
                                    }
                                },
                                "application/msgpack": {"schema": {"type": "object"}},
                            },
                        },
                        "400": _err("a bad filter, limit or cursor"),
                        **_AUTH_ERRORS,
                    },
                },
            },
            "/v1/reports/{report_id}": {
                "get": {
                    "summary": "The whole report, byte-identical to the upload",
                    "parameters": [report_id],
                    "responses": {
                        "200": {
                            "description": "the report",
                            "content": {
                                "application/msgpack": {
                                    "schema": {"type": "string", "format": "binary"}
                                }
                            },
                        },
                        "400": _err("the id is not a lower-case UUID"),
                        "404": _err("no such report"),
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/v1/reports/{report_id}/decisions": {
                "get": {
                    "summary": "Gate decisions that name this report",
                    "parameters": [report_id],
                    "responses": {
                        "200": {
                            "description": "decisions, oldest first",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["report_id", "decisions"],
                                        "properties": {
                                            "report_id": {"type": "string"},
                                            "decisions": {
                                                "type": "array",
                                                "items": {"type": "object"},
                                            },
                                        },
                                    }
                                }
                            },
                        },
                        "400": _err("the id is not a lower-case UUID"),
                        "404": _err("no such report"),
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/v1/decisions": {
                "post": {
                    "summary": "Record a gate decision signed by an enrolled gate key "
                    "(pipeline tokens); every report it names must be stored with that sha256",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _DECISION_BODY}},
                    },
                    "responses": {
                        "201": _json_answer("recorded", _DECISION_ID),
                        "200": _json_answer(
                            "this signed decision was already recorded", _DECISION_ID
                        ),
                        "400": _err("not JSON, not an object, or nested too deep"),
                        "403": _err(
                            "the token's role may not post, or the gate key is not enrolled"
                        ),
                        "413": _err("body over the size limit"),
                        "422": _err(
                            "a field of the wrong type or range, a report not stored here or "
                            "with another sha256, a signature or record hash that does not verify"
                        ),
                        **{k: v for k, v in _AUTH_ERRORS.items() if k != "403"},
                    },
                },
                "get": {
                    "summary": "The audit-log anchors (log id, seq, hash) of one gate key's "
                    "decisions, for `edgeprof gate verify-log --collector`",
                    "parameters": [
                        {
                            "name": "gate_key",
                            "in": "query",
                            "required": True,
                            "description": "the gate key id (16 hex digits)",
                            "schema": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
                        }
                    ],
                    "responses": {
                        "200": _json_answer("the anchors, by log and seq", _ANCHORS),
                        "400": _err("gate_key missing or malformed, or an unknown parameter"),
                        **_AUTH_ERRORS,
                    },
                },
            },
            "/v1/models/{name}/summary": {
                "get": {
                    "summary": "Per board: latest, best and trend of p95, peak memory, energy",
                    "parameters": [_path("name", _TEXT)],
                    "responses": {
                        "200": {
                            "description": "the summary",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["model", "boards"],
                                        "properties": {
                                            "model": {"type": "string"},
                                            "boards": {"type": "object"},
                                        },
                                    }
                                }
                            },
                        },
                        "400": _err("bad model name"),
                        "404": _err("no reports of this model"),
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/v1/tokens": {
                "get": {
                    "summary": "List tokens (admin)",
                    "responses": {
                        "200": {
                            "description": "every token, without secrets",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["tokens"],
                                        "properties": {
                                            "tokens": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/Token"},
                                            }
                                        },
                                    }
                                }
                            },
                        },
                        **_AUTH_ERRORS,
                    },
                },
                "post": {
                    "summary": "Create a token (admin); the secret is shown once",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {
                                            "type": "object",
                                            "required": ["role", "name", "devices"],
                                            "properties": {
                                                "role": {"type": "string", "enum": ["device"]},
                                                "name": {"type": "string", "pattern": NAME_PATTERN},
                                                "devices": {
                                                    "type": "array",
                                                    "minItems": 1,
                                                    "items": {
                                                        "type": "string",
                                                        "pattern": DEVICE_ID_PATTERN,
                                                    },
                                                    "description": "the device ids whose reports "
                                                    "it may upload",
                                                },
                                            },
                                        },
                                        {
                                            "type": "object",
                                            "required": ["role", "name"],
                                            "properties": {
                                                "role": {
                                                    "type": "string",
                                                    "enum": ["pipeline", "admin"],
                                                },
                                                "name": {"type": "string", "pattern": NAME_PATTERN},
                                                "devices": {"type": "array", "maxItems": 0},
                                            },
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "created",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Token"}
                                }
                            },
                        },
                        "400": _err("bad role, name or devices"),
                        "413": _err("body over the size limit"),
                        **_AUTH_ERRORS,
                    },
                },
            },
            "/v1/tokens/{token_id}": {
                "delete": {
                    "summary": "Revoke a token (admin)",
                    "parameters": [_path("token_id", {"type": "string", "pattern": UUID_PATTERN})],
                    "responses": {
                        "200": {
                            "description": "revoked",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Token"}
                                }
                            },
                        },
                        "404": _err("no such token"),
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness and database reachability",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "503": _err("the database is unavailable"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (pipeline or admin token, unless the "
                    "collector runs with --public-metrics)",
                    "responses": {
                        "200": {
                            "description": "text exposition format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **_AUTH_ERRORS,
                    },
                }
            },
        },
    }
