//! `/openapi.json`, generated from the request and response types (their schemars schemas)
//! and the route table. `openapi.json` at the crate root is the checked-in copy; a test fails
//! when they differ, so the published spec cannot drift from the code.

use aegis::{Approval, ChatChunk, ChatRequest, Completion, Interrupt, RunStatus};
use schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Value, json};

fn schemas() -> Value {
    let mut generator = SchemaGenerator::new(SchemaSettings::openapi3().with(|s| {
        s.definitions_path = "/components/schemas/".into();
    }));
    let mut out = serde_json::Map::new();
    fn add<T: JsonSchema>(g: &mut SchemaGenerator, out: &mut serde_json::Map<String, Value>) {
        let schema = g.subschema_for::<T>();
        out.insert(T::schema_name().into_owned(), schema.to_value());
    }
    add::<ChatRequest>(&mut generator, &mut out);
    add::<Completion>(&mut generator, &mut out);
    add::<ChatChunk>(&mut generator, &mut out);
    add::<Interrupt>(&mut generator, &mut out);
    add::<Approval>(&mut generator, &mut out);
    add::<RunStatus>(&mut generator, &mut out);
    for (name, schema) in generator.take_definitions(true) {
        out.insert(name, schema);
    }
    // References of the top-level entries point at themselves; keep the definitions only.
    out.retain(|_, v| v.get("$ref").is_none());
    out.insert(
        "Error".into(),
        json!({
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "object", "required": ["message", "type", "code"], "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "code": {"type": "string", "description": "Stable: policy_blocked, budget_exceeded, residency_violation, unauthenticated, rate_limited, ..."},
                "run_id": {"type": "string"},
                "details": {"type": "object", "description": "Machine-readable details, e.g. for budget_exceeded: account, period, remaining_tokens, remaining_usd (also sent as x-aegis-budget-* headers)"}
            }}}
        }),
    );
    out.insert(
        "Run".into(),
        json!({
            "type": "object",
            "required": ["id", "object", "status"],
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "aegis.run"},
                "status": {"$ref": "#/components/schemas/RunStatus"},
                "interrupt": {"$ref": "#/components/schemas/Interrupt"},
                "output": {"$ref": "#/components/schemas/Completion"},
                "pending": {"type": ["object", "null"], "description": "A paused run's held subject, for its reviewers only: stage, reason, findings, subject (the prompt's messages, or the held answer's content and tool_calls) and the edit schema", "properties": {
                    "stage": {"type": "string"}, "reason": {"type": "string"}, "findings": {"type": "array"},
                    "subject": {"type": "object"}, "edit_schema": {"type": "object"}
                }},
                "links": {"type": "object", "additionalProperties": {"type": "string"}}
            }
        }),
    );
    Value::Object(out)
}

fn op(summary: &str, request: Option<&str>, ok: &str, extra: Value) -> Value {
    let mut o = json!({
        "summary": summary,
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{ok}")}}}},
            "default": {"description": "An error with a stable code", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        }
    });
    if let Some(r) = request {
        o["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{r}")}}}});
    }
    if let (Some(o), Some(extra)) = (o.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            o.insert(k.clone(), v.clone());
        }
    }
    o
}

/// The OpenAPI 3.0 document of the gateway.
pub fn document() -> Value {
    let id_param =
        json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let paused = json!({"202": {"description": "The run paused for a human decision", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Run"}}}}});
    let mut chat = op(
        "Create a chat completion (SSE chunks when `stream: true`)",
        Some("ChatRequest"),
        "Completion",
        json!({}),
    );
    chat["responses"]["202"] = paused["202"].clone();
    chat["responses"]["200"]["content"]["text/event-stream"] =
        json!({"schema": {"$ref": "#/components/schemas/ChatChunk"}});
    let decision = |summary: &str| {
        let mut o = op(
            summary,
            None,
            "Run",
            json!({"parameters": id_param.clone()}),
        );
        o["responses"]["202"] = paused["202"].clone();
        o
    };
    let mut embeddings = op(
        "Create embeddings (float, or base64 little-endian f32)",
        None,
        "Run",
        json!({}),
    );
    embeddings["responses"]["200"] = json!({"description": "An OpenAI embeddings list"});
    embeddings["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {
        "type": "object", "required": ["model", "input"],
        "properties": {"model": {"type": "string"}, "input": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                       "encoding_format": {"enum": ["float", "base64"]}, "dimensions": {"type": "integer"}}
    }}}});
    // The same operations on a named pipeline (`[[pipelines]]`).
    let on_pipeline = |o: &Value, what: &str| {
        let mut o = o.clone();
        o["summary"] = format!("{what} on a named pipeline").into();
        o["parameters"] = json!([{"name": "pipeline", "in": "path", "required": true, "schema": {"type": "string"}}]);
        o
    };
    let pipeline_chat = on_pipeline(&chat, "Create a chat completion");
    let pipeline_embeddings = on_pipeline(&embeddings, "Create embeddings");
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Aegis gateway", "version": env!("CARGO_PKG_VERSION"),
                 "description": "OpenAI-compatible endpoints governed by the Aegis pipeline, and native runs with human approval."},
        "paths": {
            "/v1/chat/completions": {"post": chat},
            "/v1/embeddings": {"post": embeddings},
            "/v1/pipelines/{pipeline}/chat/completions": {"post": pipeline_chat},
            "/v1/pipelines/{pipeline}/embeddings": {"post": pipeline_embeddings},
            "/v1/models": {"get": {"summary": "List the models callers can name", "responses": {"200": {"description": "OpenAI model list"}}}},
            "/v1/runs": {"post": {
                "summary": "Start a governed run on a named graph",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["input"], "properties": {"graph": {"type": "string"}, "input": {"$ref": "#/components/schemas/ChatRequest"}}}}}},
                "responses": {"200": {"description": "Completed", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Run"}}}}, "202": paused["202"].clone(),
                              "default": {"description": "An error with a stable code", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}
            }},
            "/v1/runs/{id}": {"get": op("Show a run", None, "Run", json!({"parameters": id_param.clone()}))},
            "/v1/runs/{id}/approve": {"post": decision("Approve the pending interrupt and resume")},
            "/v1/runs/{id}/reject": {"post": decision("Reject the pending interrupt; the run ends")},
            "/v1/runs/{id}/edit": {"post": decision("Resume with an edited value matching the interrupt's edit schema")},
            "/v1/runs/{id}/resume": {"post": decision("Resume with a decision: {\"decision\": \"approve\" | \"reject\" | \"edit\", ...}")},
            "/v1/runs/{id}/events": {"get": {"summary": "Server-sent events of the run", "parameters": id_param,
                                              "responses": {"200": {"description": "text/event-stream of run events"}}}},
            "/v1/admin/budgets": {"get": {"summary": "A budget line: limit, spent, reserved, remaining (admin role)",
                "parameters": [{"name": "account", "in": "query", "required": true, "schema": {"type": "string"}, "description": "key:<principal>, team:<team> or org:<org>"},
                               {"name": "period", "in": "query", "required": true, "schema": {"type": "string"}, "description": "day:YYYY-MM-DD, month:YYYY-MM or total"}],
                "responses": {"200": {"description": "The line"}, "404": {"description": "No such line", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
            "/v1/admin/budgets/reset": {"post": {"summary": "Zero a budget line's spend (admin role)",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["account", "period"], "properties": {"account": {"type": "string"}, "period": {"type": "string"}}}}}},
                "responses": {"200": {"description": "Reset"}, "404": {"description": "No such line", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
            "/v1/admin/budgets/limit": {"post": {"summary": "Set a budget line's limit over the configured one (0 freezes it), or clear it back to the configured limit; audited with who changed it (admin role)",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["account", "period"], "properties": {
                    "account": {"type": "string"}, "period": {"type": "string"},
                    "usd": {"type": "number", "minimum": 0}, "tokens": {"type": "integer", "minimum": 0},
                    "clear": {"type": "boolean", "description": "Return the line to its configured limit"}}}}}},
                "responses": {"200": {"description": "The line after the change"}, "400": {"description": "No limit given, or an absurd one", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                              "404": {"description": "Clear of a line that does not exist", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
            "/v1/admin/runs/purge": {"post": {"summary": "Delete the runs that ended longer ago than an age, with their checkpoints, interrupts and decisions (admin role)",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["older_than"], "properties": {"older_than": {"type": "string", "description": "30d, 12h, 90m or 45s"}}}}}},
                "responses": {"200": {"description": "How many runs were purged"}, "400": {"description": "Not an age", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
            "/v1/admin/audit/verify": {"get": {"summary": "Walk the audit chain: valid, the first broken link, every problem (admin role)",
                "responses": {"200": {"description": "The report"}}}},
            "/v1/admin/audit/head": {"get": {"summary": "The audit chain's head to anchor elsewhere, HMAC-signed when the chain is keyed (admin role)",
                "responses": {"200": {"description": "The head"}}}},
            "/admin/reload": {"post": {"summary": "Rebuild the pipeline from the config file and swap it in (admin role)",
                                       "responses": {"200": {"description": "Reloaded"}, "403": {"description": "Not an admin"}}}},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "Readiness: not shutting down, and the database (when there is one) answers within 2 s and is migrated",
                "responses": {"200": {"description": "{\"status\": \"ready\", \"store\": \"ok\" | \"none\"}"},
                              "503": {"description": "{\"status\": \"not_ready\", \"reason\": \"shutting_down\" | \"store_unreachable\" | \"store_not_migrated\", \"detail\": ...}"}}}}
        },
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}, "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}}
        },
        "security": [{"bearer": []}, {"apiKey": []}]
    })
}
