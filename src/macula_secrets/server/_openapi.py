"""The OpenAPI 3 description the server sends at ``/v1/sys/internal/specs/openapi``."""

from __future__ import annotations

import functools
from typing import Any

_SECRET_PATH = {"name": "path", "in": "path", "required": True,
                "description": "macula/<app>/<key>", "schema": {"type": "string"}}
_NAMESPACE = {"name": "X-Vault-Namespace", "in": "header", "required": False,
              "description": "the tenant (default: default)", "schema": {"type": "string"}}
_ERR = {"description": "error", "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/Errors"}}}}
_ERRORS = {"400": {**_ERR, "description": "bad input: malformed JSON, bad path, traversal"},
           "403": {**_ERR, "description": "permission denied (no, wrong or expired token)"},
           "404": {**_ERR, "description": "not found (empty errors list)"},
           "405": {**_ERR, "description": "method not allowed"},
           "413": {**_ERR, "description": "request body or value over the size limit"},
           "503": {**_ERR, "description": "the audit log cannot be written (fail closed)"}}
_NO_CONTENT = {"204": {"description": "done"}}


def _ok(schema: str) -> dict[str, Any]:
    return {"200": {"description": "Vault response envelope", "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_VERSIONS = _body({"type": "object", "properties": {
    "versions": {"type": "array", "items": {"type": "integer"}}}})


@functools.cache
def openapi(version: str) -> dict[str, Any]:
    """The description (built once per server version)."""
    params = [_SECRET_PATH, _NAMESPACE]
    return {
        "openapi": "3.0.3",
        "info": {"title": "macula-secrets server (Vault KV v2 compatible)",
                 "version": version or "0",
                 "description": "Secrets at secret/data/macula/<app>/<key>, the value in "
                                "the field 'value'. Token in X-Vault-Token or "
                                "Authorization: Bearer. Every request is audited."},
        "components": {
            "securitySchemes": {
                "token": {"type": "apiKey", "in": "header", "name": "X-Vault-Token"},
                "bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Errors": {"type": "object", "properties": {
                    "errors": {"type": "array", "items": {"type": "string"}}}},
                "VersionMetadata": {"type": "object", "properties": {
                    "created_time": {"type": "string", "format": "date-time"},
                    "deletion_time": {"type": "string"},
                    "destroyed": {"type": "boolean"}, "version": {"type": "integer"},
                    "custom_metadata": {"nullable": True}}},
                "Envelope": {"type": "object", "properties": {
                    "request_id": {"type": "string"}, "lease_id": {"type": "string"},
                    "renewable": {"type": "boolean"}, "lease_duration": {"type": "integer"},
                    "data": {"type": "object", "nullable": True},
                    "wrap_info": {"nullable": True}, "warnings": {"nullable": True},
                    "auth": {"nullable": True}}},
                "Secret": {"allOf": [{"$ref": "#/components/schemas/Envelope"}, {
                    "type": "object", "properties": {"data": {"type": "object", "properties": {
                        "data": {"type": "object", "properties": {
                            "value": {"type": "string"}}},
                        "metadata": {"$ref": "#/components/schemas/VersionMetadata"}}}}}]},
                "Keys": {"allOf": [{"$ref": "#/components/schemas/Envelope"}, {
                    "type": "object", "properties": {"data": {"type": "object", "properties": {
                        "keys": {"type": "array", "items": {"type": "string"}}}}}}]},
            }},
        "security": [{"token": []}, {"bearer": []}],
        "paths": {
            "/v1/secret/data/{path}": {
                "parameters": params,
                "get": {"summary": "read the latest version, or ?version=N",
                        "parameters": [{"name": "version", "in": "query",
                                        "schema": {"type": "integer"}}],
                        "responses": {**_ok("Secret"), **_ERRORS}},
                "post": {"summary": "write a new version (options.cas: check-and-set)",
                         "requestBody": _body({"type": "object", "required": ["data"],
                                               "properties": {
                             "data": {"type": "object", "required": ["value"],
                                      "properties": {"value": {"type": "string"}},
                                      "additionalProperties": False},
                             "options": {"type": "object", "properties": {
                                 "cas": {"type": "integer"}}}}}),
                         "responses": {**_ok("Envelope"), **_ERRORS}},
                "put": {"summary": "same as POST", "responses": {**_ok("Envelope"),
                                                                 **_ERRORS}},
                "patch": {"summary": "JSON merge patch of the data (the key must exist)",
                          "responses": {**_ok("Envelope"), **_ERRORS}},
                "delete": {"summary": "soft-delete the latest version",
                           "responses": {**_NO_CONTENT, **_ERRORS}}},
            "/v1/secret/metadata/{path}": {
                "parameters": params,
                "get": {"summary": "versions and their state; with ?list=true as LIST",
                        "responses": {**_ok("Envelope"), **_ERRORS}},
                "delete": {"summary": "erase every version and the key",
                           "responses": {**_NO_CONTENT, **_ERRORS}}},
            "/v1/secret/metadata/macula/": {
                "get": {"summary": "LIST (or GET ?list=true): the apps the token may list",
                        "parameters": [_NAMESPACE],
                        "responses": {**_ok("Keys"), **_ERRORS}}},
            "/v1/secret/metadata/macula/{app}/": {
                "get": {"summary": "LIST (or GET ?list=true): the app's live keys",
                        "parameters": [{"name": "app", "in": "path", "required": True,
                                        "schema": {"type": "string"}}, _NAMESPACE],
                        "responses": {**_ok("Keys"), **_ERRORS}}},
            **{f"/v1/secret/{op}/{{path}}": {
                "parameters": params,
                "post": {"summary": summary, "requestBody": _VERSIONS,
                         "responses": {**_NO_CONTENT, **_ERRORS}}}
               for op, summary in (("delete", "soft-delete versions (none: the latest)"),
                                   ("undelete", "restore soft-deleted versions"),
                                   ("destroy", "erase versions for good"))},
            "/v1/sys/health": {"get": {"summary": "health (no token needed)",
                                       "security": [], "responses": {
                                           "200": {"description": "serving"}, **_ERRORS}}},
            "/v1/sys/metrics": {"get": {
                "summary": "request counters, latency histograms and gauges (any valid token)",
                "parameters": [{"name": "format", "in": "query",
                                "schema": {"type": "string", "enum": ["prometheus"]}}],
                "responses": {"200": {"description": "JSON, or Prometheus text 0.0.4"},
                              **_ERRORS}}},
            "/v1/auth/token/lookup-self": {"get": {"summary": "the calling token",
                                                   "responses": {**_ok("Envelope"),
                                                                 **_ERRORS}}},
            "/v1/sys/macula/watch": {"get": {
                "summary": "server-sent events: 'change' with {tenant, app, key, version} "
                           "for each change the token may read",
                "parameters": [{"name": "app", "in": "query", "required": True,
                                "schema": {"type": "string"}},
                               {"name": "key", "in": "query", "schema": {"type": "string"}},
                               _NAMESPACE],
                "responses": {"200": {"description": "text/event-stream"}, **_ERRORS}}},
            "/v1/sys/internal/specs/openapi": {"get": {
                "summary": "this description", "security": [],
                "responses": {"200": {"description": "OpenAPI 3"}}}},
        },
    }
