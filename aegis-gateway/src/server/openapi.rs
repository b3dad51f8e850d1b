//! `/openapi.json`, generated from the request and response types — the contracts' and the
//! handlers' own body types, through their schemars schemas, so a field added to a handler's
//! body is in the document — and the route table. `openapi.json` at the crate root is the
//! checked-in copy; a test fails when they differ, and another when a route of the router
//! is missing from the document. Every operation answers errors in the one `Error` shape
//! (`default` response); `healthz`, `readyz` and `openapi.json` need no credentials.

use aegis::{Approval, ChatRequest, Interrupt, RunStatus};
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
    add::<super::runs::CreateRun>(&mut generator, &mut out);
    add::<super::runs::RejectBody>(&mut generator, &mut out);
    add::<super::runs::EditBody>(&mut generator, &mut out);
    add::<super::openai::EmbeddingBody>(&mut generator, &mut out);
    add::<super::budgets::Line>(&mut generator, &mut out);
    add::<super::budgets::SetLimit>(&mut generator, &mut out);
    add::<super::retention::Purge>(&mut generator, &mut out);
    add::<super::rag::IngestBody>(&mut generator, &mut out);
    add::<super::rag::DeleteBody>(&mut generator, &mut out);
    add::<aegis::Provenance>(&mut generator, &mut out);
    add::<super::keys::CreateKey>(&mut generator, &mut out);
    add::<super::mcp::ApproveBody>(&mut generator, &mut out);
    add::<aegis_store::runs::RunRecord>(&mut generator, &mut out);
    add::<aegis_store::ApiKeyInfo>(&mut generator, &mut out);
    add::<Interrupt>(&mut generator, &mut out);
    add::<Approval>(&mut generator, &mut out);
    add::<RunStatus>(&mut generator, &mut out);
    // What the `http` guard type sends to a plugin service, and what it must answer.
    add::<aegis::adapters::GuardCall<'static>>(&mut generator, &mut out);
    add::<aegis::Verdict>(&mut generator, &mut out);
    for (name, schema) in generator.take_definitions(true) {
        out.insert(name, schema);
    }
    // References of the top-level entries point at themselves; keep the definitions only.
    out.retain(|_, v| v.get("$ref").is_none());
    // A limit change is either `usd` and/or `tokens`, or `clear` alone.
    // A plugin's verdict may leave `score` out (the highest finding's), and its `guard` is
    // ignored (the chain names the guard).
    if let Some(required) = out
        .get_mut("Verdict")
        .and_then(|v| v.get_mut("required"))
        .and_then(Value::as_array_mut)
    {
        required.retain(|r| r != "score" && r != "guard");
    }
    if let Some(set) = out.get_mut("SetLimit") {
        set["oneOf"] = json!([
            {"anyOf": [{"required": ["usd"]}, {"required": ["tokens"]}],
             "properties": {"clear": {"enum": [false]}}},
            {"required": ["clear"], "properties": {"clear": {"enum": [true]}},
             "not": {"anyOf": [{"required": ["usd"]}, {"required": ["tokens"]}]}}
        ]);
    }
    // What the OpenAI-compatible endpoints answer: OpenAI's wire shapes.
    let usage = json!({"type": "object", "required": ["prompt_tokens", "completion_tokens", "total_tokens"], "properties": {
        "prompt_tokens": {"type": "integer"}, "completion_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"},
        "prompt_tokens_details": {"type": "object"}, "completion_tokens_details": {"type": "object"}}});
    let tool_calls = json!({"type": "array", "items": {"type": "object"}});
    out.insert(
        "ChatCompletion".into(),
        json!({"type": "object", "required": ["id", "object", "created", "model", "choices"], "properties": {
            "id": {"type": "string"}, "object": {"enum": ["chat.completion"]}, "created": {"type": "integer"},
            "model": {"type": "string"},
            "choices": {"type": "array", "items": {"type": "object", "required": ["index", "message"], "properties": {
                "index": {"type": "integer"},
                "message": {"type": "object", "required": ["role"], "properties": {
                    "role": {"type": "string"}, "content": {"type": "string", "nullable": true}, "tool_calls": tool_calls.clone()}},
                "finish_reason": {"type": "string", "nullable": true}}}},
            "usage": usage.clone()}}),
    );
    out.insert(
        "ChatCompletionChunk".into(),
        json!({"type": "object", "required": ["id", "object", "created", "model", "choices"], "properties": {
            "id": {"type": "string"}, "object": {"enum": ["chat.completion.chunk"]}, "created": {"type": "integer"},
            "model": {"type": "string"},
            "choices": {"type": "array", "items": {"type": "object", "required": ["index"], "properties": {
                "index": {"type": "integer"},
                "delta": {"type": "object", "properties": {"role": {"type": "string"}, "content": {"type": "string", "nullable": true}, "tool_calls": tool_calls}},
                "finish_reason": {"type": "string", "nullable": true}}}},
            "usage": {"allOf": [usage], "nullable": true}}}),
    );
    out.insert(
        "ChatCompletionEvent".into(),
        json!({"type": "object", "required": ["data"], "description": "One server-sent event of a streamed answer",
               "properties": {"event": {"type": "string"},
                              "data": {"type": "string", "description": "A ChatCompletionChunk as JSON; the last event's data is [DONE]"}}}),
    );
    out.insert(
        "RunList".into(),
        json!({"type": "object", "required": ["object", "data"], "properties": {
            "object": {"enum": ["list"]},
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/RunRecord"}},
            "next_cursor": {"type": "string", "nullable": true, "description": "Pass as `cursor` for the next page"}}}),
    );
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
                "interrupt": {"allOf": [{"$ref": "#/components/schemas/Interrupt"}], "nullable": true},
                "output": {"allOf": [{"$ref": "#/components/schemas/ChatCompletion"}], "nullable": true, "description": "A completed run's answer"},
                "retrieval": {"type": "array", "items": {"$ref": "#/components/schemas/Provenance"}, "description": "What became of every document retrieval offered the run; only `allowed` and `sanitized` ones entered the prompt"},
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

/// A required JSON body of schema `name`.
fn body(name: &str) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}}})
}

/// A JSON response of schema `name`.
fn returns(description: &str, name: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}}})
}

/// The query parameters of the handler type `T` (its schema's properties; required ones
/// marked).
fn query_params<T: JsonSchema>() -> Value {
    let schema = SchemaGenerator::new(SchemaSettings::openapi3())
        .into_root_schema_for::<T>()
        .to_value();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let params: Vec<Value> = schema["properties"]
        .as_object()
        .map(|props| {
            props
                .iter()
                .map(|(name, s)| {
                    let mut s = s.clone();
                    let description = s
                        .as_object_mut()
                        .and_then(|o| o.remove("description"))
                        .unwrap_or(Value::Null);
                    json!({"name": name, "in": "query", "required": required.contains(&name.as_str()),
                           "schema": s, "description": description})
                })
                .collect()
        })
        .unwrap_or_default();
    Value::Array(params)
}

/// Every operation answers errors as `Error` (`default`), and the public ones need no
/// credentials.
fn finish(mut doc: Value) -> Value {
    const PUBLIC: [&str; 3] = ["/healthz", "/readyz", "/openapi.json"];
    let error = json!({"description": "An error with a stable code", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for op in item.values_mut() {
                if let Some(responses) = op["responses"].as_object_mut() {
                    responses.entry("default").or_insert_with(|| error.clone());
                }
                if PUBLIC.contains(&path.as_str()) {
                    op["security"] = json!([]);
                }
            }
        }
    }
    doc
}

/// The OpenAPI 3.0 document of the gateway.
pub fn document() -> Value {
    finish(paths_and_components())
}

fn paths_and_components() -> Value {
    let id_param =
        json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let paused = json!({"202": {"description": "The run paused for a human decision", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Run"}}}}});
    let mut chat = op(
        "Create a chat completion (SSE chunks when `stream: true`)",
        Some("ChatRequest"),
        "ChatCompletion",
        json!({}),
    );
    chat["responses"]["202"] = paused["202"].clone();
    chat["responses"]["200"]["content"]["text/event-stream"] =
        json!({"schema": {"$ref": "#/components/schemas/ChatCompletionEvent"}});
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
    let mut reject = decision("Reject the pending interrupt; the run ends");
    reject["requestBody"] = body("RejectBody");
    reject["requestBody"]["required"] = false.into();
    let mut edit = decision("Resume with an edited value matching the interrupt's edit schema");
    edit["requestBody"] = body("EditBody");
    let mut embeddings = op(
        "Create embeddings (float, or base64 little-endian f32)",
        None,
        "Run",
        json!({}),
    );
    embeddings["responses"]["200"] = json!({"description": "An OpenAI embeddings list"});
    embeddings["requestBody"] = body("EmbeddingBody");
    // The same operations on a named pipeline (`[[pipelines]]`).
    let on_pipeline = |o: &Value, what: &str| {
        let mut o = o.clone();
        o["summary"] = format!("{what} on a named pipeline").into();
        o["parameters"] = json!([{"name": "pipeline", "in": "path", "required": true, "schema": {"type": "string"}}]);
        o
    };
    let pipeline_chat = on_pipeline(&chat, "Create a chat completion");
    let pipeline_embeddings = on_pipeline(&embeddings, "Create embeddings");
    let mut doc = json!({
        "openapi": "3.0.3",
        // Calls Aegis makes to services users write (OpenAPI 3.0 has no `webhooks`).
        "x-aegis-plugin-protocols": {
            aegis::adapters::GUARD_PROTOCOL: {
                "description": "A guard plugin: the `http` guardrail type POSTs one GuardCall per judged subject (every segment of it in one call) to its configured URL, with header `aegis-protocol: aegis.guard.v1` and, when configured, `Authorization: Bearer <api_token>`, and expects a Verdict (`score` may be left out). Edits are byte offsets into the segment's UTF-8 text. A timeout, a non-2xx status or an answer that is not a verdict for that subject is the guard's failure: the request is blocked (`guard_unavailable`) unless the guard's `fail_mode` is `open`.",
                "method": "post",
                "request": {"$ref": "#/components/schemas/GuardCall"},
                "response": {"$ref": "#/components/schemas/Verdict"}
            },
            aegis::adapters::PROVIDER_PROTOCOL: {
                "description": "A provider plugin: the `http` provider type POSTs each model call to its configured URL as an OpenAI chat-completions body (`model`, `messages`, `tools`, ...; `stream` always false; never the caller's credentials or Aegis's options), with header `aegis-protocol: aegis.provider.v1` and, when configured, `Authorization: Bearer <api_token>`, and expects an OpenAI `chat.completion` object with at least one choice. A streamed request is answered to its caller as one chunk. A timeout (`timeout_ms`, default 120000), a non-2xx status or an answer that is not a completion is a provider error (502), which routers fall back from like any provider's.",
                "method": "post",
                "request": {"$ref": "#/components/schemas/ChatRequest"},
                "response": {"$ref": "#/components/schemas/ChatCompletion"}
            }
        },
        "info": {"title": "Aegis gateway", "version": env!("CARGO_PKG_VERSION"),
                 "description": "OpenAI-compatible endpoints governed by the Aegis pipeline, and native runs with human approval."},
        "paths": {
            "/v1/chat/completions": {"post": chat},
            "/v1/embeddings": {"post": embeddings},
            "/v1/pipelines/{pipeline}/chat/completions": {"post": pipeline_chat},
            "/v1/pipelines/{pipeline}/embeddings": {"post": pipeline_embeddings},
            "/v1/models": {"get": {"summary": "List the models callers can name", "responses": {"200": {"description": "OpenAI model list"}}}},
            "/v1/runs": {
                "post": {
                    "summary": "Start a governed run on a named graph",
                    "requestBody": body("CreateRun"),
                    "responses": {"200": returns("Completed", "Run"), "202": paused["202"].clone()}
                },
                "get": {
                    "summary": "The runs the caller may see, newest first (needs a database)",
                    "parameters": query_params::<super::runs::ListQuery>(),
                    "responses": {"200": returns("A page of runs", "RunList")}
                }
            },
            "/v1/runs/{id}": {"get": op("Show a run", None, "Run", json!({"parameters": id_param.clone()}))},
            "/v1/runs/{id}/approve": {"post": decision("Approve the pending interrupt and resume")},
            "/v1/runs/{id}/reject": {"post": reject},
            "/v1/runs/{id}/edit": {"post": edit},
            "/v1/runs/{id}/resume": {"post": decision("Resume with a decision: {\"decision\": \"approve\" | \"reject\" | \"edit\", ...}")},
            "/v1/runs/{id}/events": {"get": {"summary": "Server-sent events of the run", "parameters": id_param.clone(),
                                              "responses": {"200": {"description": "text/event-stream of run events"}}}},
            "/v1/admin/budgets": {"get": {"summary": "A budget line: limit, spent, reserved, remaining (admin role)",
                "parameters": query_params::<super::budgets::Line>(),
                "responses": {"200": {"description": "The line"}, "404": {"description": "No such line", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
            "/v1/admin/budgets/reset": {"post": {"summary": "Zero a budget line's spend (admin role)",
                "requestBody": body("Line"),
                "responses": {"200": {"description": "Reset"}, "404": {"description": "No such line", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
            "/v1/admin/budgets/limit": {"post": {"summary": "Set a budget line's limit over the configured one (0 freezes it), or clear it back to the configured limit; audited with who changed it (admin role)",
                "requestBody": body("SetLimit"),
                "responses": {"200": {"description": "The line after the change"}, "400": {"description": "No limit given, or an absurd one", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                              "404": {"description": "Clear of a line that does not exist", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
            "/v1/admin/runs/purge": {"post": {"summary": "Delete the runs that ended longer ago than an age, with their checkpoints, interrupts and decisions (admin role)",
                "requestBody": body("Purge"),
                "responses": {"200": {"description": "How many runs were purged"}, "400": {"description": "Not an age", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
            "/v1/rag/{store}/documents": {"post": {"summary": "Ingest texts into a `[[retrievers]]` store: each is cut into chunks (`{source}#{n}`), every chunk is judged by the guard chain as a retrieved document before it is indexed (sanitized chunks are stored sanitized; a blocked chunk refuses the whole request, nothing stored), and each source replaces its earlier chunks atomically (admin role)",
                "parameters": [{"name": "store", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": body("IngestBody"),
                "responses": {"200": {"description": "Per source: chunks stored, and how many a guard sanitized"},
                              "404": {"description": "No such store (`store_not_found`)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                              "default": {"description": "An error with a stable code", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
            "/v1/rag/{store}/documents/delete": {"post": {"summary": "Delete chunks from a store by id, or every chunk of a source (admin role)",
                "parameters": [{"name": "store", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": body("DeleteBody"),
                "responses": {"200": {"description": "How many chunks were deleted"},
                              "default": {"description": "An error with a stable code", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
            "/v1/admin/audit/verify": {"get": {"summary": "Walk the audit chain: valid, the first broken link, every problem (admin role)",
                "responses": {"200": {"description": "The report"}}}},
            "/v1/admin/audit/head": {"get": {"summary": "The audit chain's head to anchor elsewhere, HMAC-signed when the chain is keyed (admin role)",
                "responses": {"200": {"description": "The head"}}}},
            "/v1/admin/keys": {
                "post": {"summary": "Create a virtual key; the key is in the answer, once (admin role)",
                         "requestBody": body("CreateKey"),
                         "responses": {"201": {"description": "{\"key\": \"aegis_sk_…\", \"info\": ApiKeyInfo, \"message\": …}"}}},
                "get": {"summary": "Every virtual key's metadata, never the key (admin role)",
                        "responses": {"200": {"description": "{\"object\": \"list\", \"data\": [ApiKeyInfo]}"}}}
            },
            "/v1/admin/keys/{id}/revoke": {"post": {"summary": "Revoke a key, at once on this replica and within the key cache bound on the others (admin role)",
                "parameters": id_param.clone(),
                "responses": {"200": {"description": "{\"info\": ApiKeyInfo}"}}}},
            "/v1/admin/keys/{id}/rotate": {"post": {"summary": "A new key for the same principal and name; the old one is revoked (admin role)",
                "parameters": id_param.clone(),
                "responses": {"201": {"description": "{\"key\": \"aegis_sk_…\", \"info\": ApiKeyInfo, \"message\": …}"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics, when a `prometheus` telemetry entry is configured (admin role when keys are configured)",
                "responses": {"200": {"description": "Prometheus text exposition", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.0"}}}},
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
    });
    // The MCP admin endpoints (a separate literal: one `json!` of every path exceeds the
    // macro recursion limit).
    let mcp = json!({
            "/v1/admin/mcp/servers": {"get": {"summary": "Every `[[mcp_servers]]` entry listed again: `served`, `quarantined` (with why, and the diff from its pinned catalog) or `down`, with its pin record (admin role)",
                "responses": {"200": {"description": "{\"servers\": [{\"server\", \"state\", \"reason\", \"tools\", \"pin\", \"diff\"}]}"},
                              "default": {"description": "An error with a stable code", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
            "/v1/admin/mcp/servers/{id}/approve": {"post": {"summary": "Pin the tool catalog an MCP server serves now, if its hash is the one given (a catalog that changed since is refused, `catalog_changed`); audited (admin role)",
                "parameters": id_param.clone(),
                "requestBody": body("ApproveBody"),
                "responses": {"200": {"description": "{\"pin\": PinRecord}"},
                              "default": {"description": "An error with a stable code", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
            "/v1/admin/mcp/approvals": {"get": {"summary": "Tool calls a guard held for a human decision, with the caller, server, tool, arguments and reason (admin role)",
                "responses": {"200": {"description": "{\"approvals\": [ToolApproval]}"},
                              "default": {"description": "An error with a stable code", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
            "/v1/admin/mcp/approvals/{id}/approve": {"post": {"summary": "Approve a held tool call (never the caller's own); the caller then sends the same call (with `_meta: {\"aegis/approval\": id}` or without), or resumes the held chat, and it executes once; audited (admin role)",
                "parameters": id_param.clone(),
                "responses": {"200": {"description": "{\"approval\": ToolApproval}"},
                              "default": {"description": "An error with a stable code", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
            "/v1/admin/mcp/approvals/{id}/reject": {"post": {"summary": "Reject a held tool call: it never executes; audited (admin role)",
                "parameters": id_param.clone(),
                "responses": {"200": {"description": "{\"approval\": ToolApproval}"},
                              "default": {"description": "An error with a stable code", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
            "/v1/mcp/approvals/{id}/resume": {"post": {"summary": "Go on with a chat (`aegis.mcp_tools`) held on a tool call once a reviewer decided, without asking the model again: an approved call executes once, a rejected one is reported to the model as refused; once per held chat, by its own caller",
                "parameters": id_param.clone(),
                "responses": {"200": {"description": "A chat completion", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletion"}}}},
                              "202": {"description": "Still held: a call waits for a reviewer (`approval_required`, `details.approval_id`)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                              "default": {"description": "An error with a stable code", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}}
    });
    if let (Some(paths), Value::Object(more)) = (doc["paths"].as_object_mut(), mcp) {
        paths.extend(more);
    }
    doc
}
