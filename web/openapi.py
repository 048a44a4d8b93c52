"""The OpenAPI 3 document for ``/api/v1``, kept beside the views it describes.

Schemathesis checks the running app against it (tests/test_api_schema.py), so
the document and the server cannot drift apart unnoticed.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from matcher.text import MAX_TEXT_CHARS

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["status", "code", "message"],
            "properties": {
                "status": {"type": "integer"},
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string"},
            },
        }
    },
}

REASON = {
    "type": "object",
    "required": ["facet", "score", "quote"],
    "properties": {
        "facet": {"type": "string"},
        "score": {"type": "number"},
        "quote": {"type": "string"},
    },
}

MATCH = {
    "type": "object",
    "required": ["celebrity_id", "name", "name_zh", "score", "margin", "share", "rank", "reasons"],
    "properties": {
        "celebrity_id": {"type": "string"},
        "name": {"type": "string"},
        "name_zh": {"type": "string"},
        "score": {"type": "number", "description": "Cosine-like closeness, higher is closer."},
        "margin": {"type": "number", "description": "Lead over the next celebrity."},
        "share": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "Share of the fit across the whole roster (softmax of scores).",
        },
        "rank": {"type": "integer", "minimum": 1},
        "reasons": {"type": "array", "items": REASON},
    },
}


def _error_responses(*statuses: int) -> dict[str, Any]:
    return {
        str(status): {
            "description": "Client error" if status < 500 else "Server error",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for status in statuses
    }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def openapi_document(app: Flask) -> dict[str, Any]:
    text = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT_CHARS}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "the matcher",
            "version": "1.0.0",
            "description": "Pair shoppers with the campaign celebrity who fits them best.",
        },
        "servers": [{"url": "/api/v1"}],
        "paths": {
            "/match": {
                "post": {
                    "summary": "Pair one shopper text",
                    "requestBody": {
                        "required": True,
                        **_json(
                            {
                                "type": "object",
                                "required": ["text"],
                                "additionalProperties": False,
                                "properties": {
                                    "text": {**text, "description": "What the shopper likes."},
                                    "top_k": {"type": "integer", "minimum": 1, "default": 3},
                                    "lang": {"type": "string", "enum": ["en", "zh"]},
                                    "consent": {"type": "boolean"},
                                    "shopper_ref": {"type": "string", "minLength": 1, "maxLength": 128},
                                },
                            }
                        ),
                    },
                    "responses": {
                        "200": {
                            "description": "The best celebrities, best first",
                            **_json(
                                {
                                    "type": "object",
                                    "required": ["matches", "model"],
                                    "properties": {
                                        "matches": {"type": "array", "items": MATCH},
                                        "shopper_ref": {"type": "string", "nullable": True},
                                        "lang": {"type": "string", "nullable": True},
                                        "consent": {"type": "boolean"},
                                        "model": {"type": "string"},
                                    },
                                }
                            ),
                        },
                        **_error_responses(400, 413, 415),
                    },
                }
            },
            "/match/batch": {
                "post": {
                    "summary": "Pair up to 100 shopper texts",
                    "requestBody": {
                        "required": True,
                        **_json(
                            {
                                "type": "object",
                                "required": ["items"],
                                "properties": {
                                    "items": {
                                        "type": "array",
                                        "minItems": 1,
                                        "maxItems": 100,
                                        "items": {
                                            "type": "object",
                                            "required": ["text"],
                                            "properties": {
                                                "text": text,
                                                "shopper_ref": {"type": "string"},
                                            },
                                        },
                                    },
                                    "top_k": {"type": "integer", "minimum": 1, "default": 3},
                                },
                            }
                        ),
                    },
                    "responses": {
                        "200": {
                            "description": "One result per item, in order; bad items carry an error",
                            **_json(
                                {
                                    "type": "object",
                                    "required": ["results", "model"],
                                    "properties": {
                                        "results": {"type": "array"},
                                        "model": {"type": "string"},
                                    },
                                }
                            ),
                        },
                        **_error_responses(400, 413, 415),
                    },
                }
            },
            "/celebrities": {
                "get": {
                    "summary": "The active roster",
                    "responses": {
                        "200": {
                            "description": "Celebrities in roster order",
                            **_json(
                                {
                                    "type": "object",
                                    "required": ["celebrities"],
                                    "properties": {
                                        "celebrities": {"type": "array"},
                                        "max_text_chars": {"type": "integer"},
                                    },
                                }
                            ),
                        }
                    },
                }
            },
        },
        "components": {"schemas": {"Error": ERROR}},
    }
