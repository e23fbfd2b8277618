//! `GET /openapi.json`: the API described from one table of routes (the same
//! paths `api::router` registers; a test checks every route here answers
//! something other than the router's 404 fallback).

use serde_json::{json, Map, Value};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Public,
    /// A workflow token for the workflow concerned, or the admin token.
    Workflow,
    /// The admin token.
    Admin,
}

/// One documented operation.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// HTTP method (lowercase).
    pub method: &'static str,
    /// Path template (OpenAPI style).
    pub path: &'static str,
    /// One line.
    pub summary: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Query parameters.
    pub query: &'static [&'static str],
    /// Statuses it answers with, besides errors common to all.
    pub statuses: &'static [(u16, &'static str)],
    /// Response content type.
    pub produces: &'static str,
}

/// Every operation of the API (SPEC.md §12).
pub const ROUTES: &[Route] = &[
    Route {
        method: "get",
        path: "/checkpoint",
        summary: "The latest signed checkpoint (C2SP tlog-tiles)",
        access: Access::Public,
        query: &[],
        statuses: &[(200, "the checkpoint"), (404, "no checkpoint yet")],
        produces: "text/plain",
    },
    Route {
        method: "get",
        path: "/tile/{level}/{index}",
        summary: "A hash tile, full or `.p/<W>` partial (C2SP tlog-tiles)",
        access: Access::Public,
        query: &[],
        statuses: &[
            (200, "tile bytes"),
            (400, "malformed tile path"),
            (404, "not in the published tree"),
        ],
        produces: "application/octet-stream",
    },
    Route {
        method: "get",
        path: "/tile/entries/{index}",
        summary: "An entry bundle, full or `.p/<W>` partial (C2SP tlog-tiles)",
        access: Access::Public,
        query: &[],
        statuses: &[
            (200, "bundle bytes"),
            (400, "malformed tile path"),
            (404, "not in the published tree"),
        ],
        produces: "application/octet-stream",
    },
    Route {
        method: "get",
        path: "/ledger.git/{path}",
        summary: "The ledger's git repository, read-only, over git's dumb HTTP protocol",
        access: Access::Public,
        query: &[],
        statuses: &[(200, "a repository file"), (404, "no such file")],
        produces: "application/octet-stream",
    },
    Route {
        method: "get",
        path: "/api/v1/log",
        summary: "The log's origin, verifier key and sizes",
        access: Access::Public,
        query: &[],
        statuses: &[(200, "log description")],
        produces: "application/json",
    },
    Route {
        method: "get",
        path: "/api/v1/proof/inclusion",
        summary: "Inclusion proof by index or leaf hash, at a size (default: the checkpoint's)",
        access: Access::Public,
        query: &["index", "leaf_hash", "size"],
        statuses: &[
            (200, "the proof, and a tlog-proof when at the checkpoint's size"),
            (400, "bad parameters"),
            (404, "not published yet (Retry-After)"),
        ],
        produces: "application/json",
    },
    Route {
        method: "get",
        path: "/api/v1/proof/consistency",
        summary: "Consistency proof between two published sizes",
        access: Access::Public,
        query: &["old", "new"],
        statuses: &[(200, "the proof"), (400, "bad sizes")],
        produces: "application/json",
    },
    Route {
        method: "get",
        path: "/api/v1/entries/{index}",
        summary: "A published entry (tally.dev/entry/v1)",
        access: Access::Public,
        query: &[],
        statuses: &[(200, "the entry"), (404, "not published")],
        produces: "text/plain",
    },
    Route {
        method: "get",
        path: "/api/v1/envelopes/{digest}",
        summary: "A stored DSSE envelope by sha256 digest",
        access: Access::Public,
        query: &[],
        statuses: &[(200, "the envelope bytes"), (404, "unknown digest")],
        produces: "application/json",
    },
    Route {
        method: "put",
        path: "/api/v1/artifacts/{digest}",
        summary: "Upload an artifact: the body streams into the store, refused unless it has this digest and Content-Length",
        access: Access::Workflow,
        query: &["workflow", "kind", "name", "run"],
        statuses: &[
            (200, "already stored (content addressing)"),
            (201, "stored; in an OCI store, `reference` names its manifest"),
            (400, "bad digest, kind, name, or the upload broke off"),
            (411, "no Content-Length"),
            (413, "larger than max_artifact_bytes"),
            (422, "the bytes have another digest; nothing stored"),
            (503, "the artifact store is unavailable; retry after Retry-After"),
        ],
        produces: "application/json",
    },
    Route {
        method: "get",
        path: "/api/v1/artifacts/{digest}",
        summary: "Download an artifact (HEAD: whether it is stored; 503 when the store cannot say)",
        access: Access::Workflow,
        query: &[],
        statuses: &[
            (200, "the bytes"),
            (404, "unknown, or stored by other workflows only"),
            (503, "the artifact store is unavailable"),
        ],
        produces: "application/octet-stream",
    },
    Route {
        method: "get",
        path: "/api/v1/search",
        summary: "Attestations naming a digest, of a workflow, or checked against a contract commit",
        access: Access::Public,
        query: &["digest", "workflow", "contract_revision", "limit"],
        statuses: &[(200, "results with log indices"), (400, "no or bad criterion")],
        produces: "application/json",
    },
    Route {
        method: "post",
        path: "/api/v1/runs",
        summary: "Start a run: resolve the workflow's contract (head or pinned)",
        access: Access::Workflow,
        query: &[],
        statuses: &[
            (201, "the run and its contract"),
            (404, "unknown workflow"),
            (422, "runner mismatch, unknown revision"),
        ],
        produces: "application/json",
    },
    Route {
        method: "get",
        path: "/api/v1/runs",
        summary: "Runs, newest first (a workflow token sees its workflows only)",
        access: Access::Workflow,
        query: &["workflow", "status", "limit"],
        statuses: &[(200, "runs")],
        produces: "application/json",
    },
    Route {
        method: "get",
        path: "/api/v1/runs/{id}",
        summary: "One run",
        access: Access::Workflow,
        query: &[],
        statuses: &[(200, "the run"), (404, "unknown run")],
        produces: "application/json",
    },
    Route {
        method: "post",
        path: "/api/v1/runs/{id}/reset",
        summary: "End a run as failed or cancelled",
        access: Access::Workflow,
        query: &[],
        statuses: &[(200, "the run"), (409, "already finished")],
        produces: "application/json",
    },
    Route {
        method: "post",
        path: "/api/v1/runs/{id}/attestation",
        summary: "Push the run's signed attestation (a DSSE envelope)",
        access: Access::Workflow,
        query: &[],
        statuses: &[
            (200, "appended and published: index, entry, tlog-proof"),
            (202, "appended, not yet published: index"),
            (400, "malformed JSON"),
            (409, "run finished"),
            (413, "body too large"),
            (415, "not JSON"),
            (422, "signature or contract violations, listed"),
            (503, "overloaded (Retry-After)"),
        ],
        produces: "application/json",
    },
    Route {
        method: "post",
        path: "/api/v1/tokens",
        summary: "Create a workflow token (shown once)",
        access: Access::Admin,
        query: &[],
        statuses: &[(201, "the token"), (404, "unknown workflow")],
        produces: "application/json",
    },
    Route {
        method: "get",
        path: "/api/v1/tokens",
        summary: "List tokens (never their secrets)",
        access: Access::Admin,
        query: &[],
        statuses: &[(200, "tokens")],
        produces: "application/json",
    },
    Route {
        method: "delete",
        path: "/api/v1/tokens/{id}",
        summary: "Revoke a token",
        access: Access::Admin,
        query: &[],
        statuses: &[(200, "revoked"), (404, "unknown token")],
        produces: "application/json",
    },
    Route {
        method: "get",
        path: "/api/v1/workflows",
        summary: "Workflows and their registered key ids",
        access: Access::Workflow,
        query: &[],
        statuses: &[(200, "workflows")],
        produces: "application/json",
    },
    Route {
        method: "post",
        path: "/api/v1/workflows/{name}/keys",
        summary: "Register a public key that signs the workflow's attestations",
        access: Access::Admin,
        query: &[],
        statuses: &[
            (201, "registered"),
            (404, "unknown workflow"),
            (422, "not a P-256 or Ed25519 PEM key"),
        ],
        produces: "application/json",
    },
    Route {
        method: "get",
        path: "/api/v1/stats",
        summary: "Runs per day, success and failure per workflow, slowest and most failing",
        access: Access::Admin,
        query: &["days"],
        statuses: &[(200, "the summary")],
        produces: "application/json",
    },
    Route {
        method: "get",
        path: "/metrics",
        summary: "Prometheus metrics",
        access: Access::Public,
        query: &[],
        statuses: &[(200, "text format 0.0.4")],
        produces: "text/plain",
    },
    Route {
        method: "get",
        path: "/healthz",
        summary: "Liveness",
        access: Access::Public,
        query: &[],
        statuses: &[(200, "ok")],
        produces: "text/plain",
    },
    Route {
        method: "get",
        path: "/readyz",
        summary: "Readiness (503 while the publication backlog is full)",
        access: Access::Public,
        query: &[],
        statuses: &[(200, "ready"), (503, "not ready")],
        produces: "text/plain",
    },
    Route {
        method: "get",
        path: "/openapi.json",
        summary: "This document",
        access: Access::Public,
        query: &[],
        statuses: &[(200, "OpenAPI 3.1")],
        produces: "application/json",
    },
];

/// The OpenAPI 3.1 document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let mut params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        params.extend(
            r.query
                .iter()
                .map(|q| json!({"name": q, "in": "query", "required": false, "schema": {"type": "string"}})),
        );
        let mut responses = Map::new();
        for (code, what) in r.statuses {
            let mut resp = json!({"description": what});
            if *code < 300 {
                resp["content"] = json!({ r.produces: {} });
            } else {
                resp["content"] =
                    json!({"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}});
            }
            responses.insert(code.to_string(), resp);
        }
        if r.access != Access::Public {
            responses.insert("401".into(), json!({"description": "no, unknown, expired or revoked token", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}));
            responses.insert("403".into(), json!({"description": "the token may not act here", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}));
        }
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{}{}", r.method, r.path.replace(['/', '{', '}', '.'], "_")),
            "parameters": params,
            "responses": responses,
        });
        match r.access {
            Access::Public => op["security"] = json!([]),
            Access::Workflow => op["security"] = json!([{"workflowToken": []}, {"adminToken": []}]),
            Access::Admin => op["security"] = json!([{"adminToken": []}]),
        }
        let entry = paths.entry(r.path.to_owned()).or_insert_with(|| json!({}));
        entry[r.method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "tally control plane", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Runs, attestation intake checked against workflow contracts, and a C2SP tiled transparency log. SPEC.md §12 is normative."},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "workflowToken": {"type": "http", "scheme": "bearer", "description": "a workflow service token (tally token create)"},
                "adminToken": {"type": "http", "scheme": "bearer", "description": "the admin token shown at first start"},
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error", "message"], "properties": {
                    "error": {"type": "string"}, "message": {"type": "string"}, "hint": {"type": ["string", "null"]},
                    "details": {"type": "object"}}},
            },
        },
    })
}
