//! Test doubles shared by the integration tests: small guards with honest capabilities,
//! a scripted provider and a recording telemetry sink.
#![allow(dead_code, clippy::unwrap_used)]

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use aegis_contracts::*;
use aegis_core::guard::GuardEntry;

/// Blocks when any segment contains `word` (window = the word's length).
pub struct Ban {
    pub word: String,
    pub stages: Vec<Stage>,
    pub calls: Arc<AtomicUsize>,
}

impl Ban {
    pub fn new(word: &str) -> Self {
        Self {
            word: word.into(),
            stages: Stage::ALL.to_vec(),
            calls: Arc::default(),
        }
    }
}

#[async_trait]
impl Guardrail for Ban {
    fn capabilities(&self) -> GuardCapabilities {
        GuardCapabilities::new(self.stages.clone(), Granularity::Window(self.word.len()))
    }
    async fn check(&self, s: &GuardSubject, _: &RequestContext) -> Result<Verdict, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        for (i, seg) in s.segments().iter().enumerate() {
            if let Some(at) = seg.text.find(&self.word) {
                let span = Span {
                    segment: i,
                    start: at,
                    end: at + self.word.len(),
                };
                return Ok(
                    Verdict::block(format!("contains `{}`", self.word), "banned_word")
                        .with_finding(Finding::new("banned_word", Some(span), 1.0, "ban")),
                );
            }
        }
        Ok(Verdict::allow())
    }
}

/// Replaces every occurrence of `word` with `mask` (window = the word's length).
pub struct Redact {
    pub word: String,
    pub mask: String,
}

impl Redact {
    pub fn new(word: &str, mask: &str) -> Self {
        Self {
            word: word.into(),
            mask: mask.into(),
        }
    }
}

#[async_trait]
impl Guardrail for Redact {
    fn capabilities(&self) -> GuardCapabilities {
        GuardCapabilities::new(Stage::ALL, Granularity::Window(self.word.len())).sanitizing()
    }
    async fn check(&self, s: &GuardSubject, _: &RequestContext) -> Result<Verdict, Error> {
        let mut edits = Vec::new();
        let mut findings = Vec::new();
        for (i, seg) in s.segments().iter().enumerate() {
            for (at, _) in seg.text.match_indices(&self.word) {
                edits.push(Edit {
                    segment: i,
                    start: at,
                    end: at + self.word.len(),
                    replacement: self.mask.clone(),
                });
                findings.push(Finding::new(
                    "word",
                    Some(Span {
                        segment: i,
                        start: at,
                        end: at + self.word.len(),
                    }),
                    0.8,
                    "redact",
                ));
            }
        }
        Ok(if edits.is_empty() {
            Verdict::allow()
        } else {
            Verdict::sanitize(edits).with_findings(findings)
        })
    }
}

/// Removes zero-width spaces, judging character by character.
pub struct StripZw;

#[async_trait]
impl Guardrail for StripZw {
    fn capabilities(&self) -> GuardCapabilities {
        GuardCapabilities::new(Stage::ALL, Granularity::Char).sanitizing()
    }
    async fn check(&self, s: &GuardSubject, _: &RequestContext) -> Result<Verdict, Error> {
        let mut edits = Vec::new();
        for (i, seg) in s.segments().iter().enumerate() {
            for (at, c) in seg.text.char_indices().filter(|(_, c)| *c == '\u{200b}') {
                edits.push(Edit {
                    segment: i,
                    start: at,
                    end: at + c.len_utf8(),
                    replacement: String::new(),
                });
            }
        }
        Ok(if edits.is_empty() {
            Verdict::allow()
        } else {
            Verdict::sanitize(edits)
        })
    }
}

/// Blocks a sentence that contains `word` (sentence granularity).
pub struct SentenceBan(pub String);

#[async_trait]
impl Guardrail for SentenceBan {
    fn capabilities(&self) -> GuardCapabilities {
        GuardCapabilities::new(Stage::ALL, Granularity::Sentence)
    }
    async fn check(&self, s: &GuardSubject, _: &RequestContext) -> Result<Verdict, Error> {
        let hit = s
            .segments()
            .iter()
            .any(|seg| seg.text.contains(self.0.as_str()));
        Ok(if hit {
            Verdict::block("sentence", "sentence_ban")
        } else {
            Verdict::allow()
        })
    }
}

/// Needs the whole text: blocks output that is not valid JSON.
pub struct JsonOnly;

#[async_trait]
impl Guardrail for JsonOnly {
    fn capabilities(&self) -> GuardCapabilities {
        GuardCapabilities::new([Stage::Output], Granularity::FullText)
    }
    async fn check(&self, s: &GuardSubject, _: &RequestContext) -> Result<Verdict, Error> {
        let text: String = s.segments().iter().map(|x| x.text).collect();
        Ok(match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(_) => Verdict::allow(),
            Err(_) => Verdict::block("not JSON", "invalid_json"),
        })
    }
}

/// Requires approval when a segment contains `word`.
pub struct AskFor(pub String);

#[async_trait]
impl Guardrail for AskFor {
    fn capabilities(&self) -> GuardCapabilities {
        GuardCapabilities::new(Stage::ALL, Granularity::FullText)
    }
    async fn check(&self, s: &GuardSubject, _: &RequestContext) -> Result<Verdict, Error> {
        let hit = s
            .segments()
            .iter()
            .any(|seg| seg.text.contains(self.0.as_str()));
        Ok(if hit {
            Verdict::require_approval(
                format!("mentions {}", self.0),
                serde_json::json!({"word": self.0}),
            )
        } else {
            Verdict::allow()
        })
    }
}

/// Fails every check.
pub struct Broken;

#[async_trait]
impl Guardrail for Broken {
    fn capabilities(&self) -> GuardCapabilities {
        GuardCapabilities::new(Stage::ALL, Granularity::Char)
    }
    async fn check(&self, _: &GuardSubject, _: &RequestContext) -> Result<Verdict, Error> {
        Err(Error::provider("detector service unreachable"))
    }
}

/// Never answers in time.
pub struct Slow;

#[async_trait]
impl Guardrail for Slow {
    fn capabilities(&self) -> GuardCapabilities {
        GuardCapabilities::new(Stage::ALL, Granularity::Char)
    }
    async fn check(&self, _: &GuardSubject, _: &RequestContext) -> Result<Verdict, Error> {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(Verdict::allow())
    }
}

pub fn entry(id: &str, guard: impl Guardrail) -> GuardEntry {
    GuardEntry::new(id, Arc::new(guard), GuardPolicy::default())
}

pub fn entry_with(id: &str, guard: impl Guardrail, f: impl FnOnce(&mut GuardPolicy)) -> GuardEntry {
    let mut p = GuardPolicy::default();
    f(&mut p);
    GuardEntry::new(id, Arc::new(guard), p)
}

/// Answers with a fixed text, complete or streamed in the given chunks.
pub struct Scripted {
    pub answer: Vec<String>,
    pub calls: Arc<AtomicUsize>,
    pub last_request: Arc<Mutex<Option<ChatRequest>>>,
    pub tool_call: Option<ToolCall>,
    pub fail_mid_stream: bool,
}

impl Scripted {
    pub fn new(chunks: &[&str]) -> Self {
        Self {
            answer: chunks.iter().map(|s| s.to_string()).collect(),
            calls: Arc::default(),
            last_request: Arc::default(),
            tool_call: None,
            fail_mid_stream: false,
        }
    }
}

#[async_trait]
impl Provider for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }
    fn capabilities(&self) -> ProviderCapabilities {
        ProviderCapabilities::all()
    }
    async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        *self.last_request.lock().unwrap() = Some(req.clone());
        let meta = ResponseMeta::new("scripted", &req.model);
        if !req.stream {
            let mut c = Completion::text("cmpl-1", &req.model, self.answer.concat());
            if let Some(call) = &self.tool_call {
                c.choices[0].message.tool_calls.push(call.clone());
            }
            c.usage = Some(Usage {
                input_tokens: 3,
                output_tokens: 5,
                ..Usage::default()
            });
            return Ok(ChatResponse::complete(meta, c));
        }
        let mut items: Vec<Result<ChatChunk, Error>> = self
            .answer
            .iter()
            .map(|t| Ok(ChatChunk::text("cmpl-1", &req.model, t.clone())))
            .collect();
        if let Some(call) = &self.tool_call {
            let args = call.function.arguments.clone();
            let (a, b) = args.split_at(args.len() / 2);
            let mut first = ChatChunk::text("cmpl-1", &req.model, "");
            first.choices[0].delta.content = None;
            first.choices[0].delta.tool_calls = vec![ToolCallDelta {
                index: 0,
                id: Some(call.id.clone()),
                kind: Some("function".into()),
                function: Some(FunctionCallDelta {
                    name: Some(call.function.name.clone()),
                    arguments: Some(a.into()),
                }),
            }];
            let mut second = first.clone();
            second.choices[0].delta.tool_calls = vec![ToolCallDelta {
                index: 0,
                function: Some(FunctionCallDelta {
                    name: None,
                    arguments: Some(b.into()),
                }),
                ..ToolCallDelta::default()
            }];
            items.push(Ok(first));
            items.push(Ok(second));
        }
        if self.fail_mid_stream {
            items.push(Err(Error::provider("connection reset mid-stream")));
        } else {
            let mut last = ChatChunk::text("cmpl-1", &req.model, "");
            last.choices[0].delta.content = None;
            last.choices[0].finish_reason = Some("stop".into());
            items.push(Ok(last));
            let mut usage = ChatChunk::default();
            usage.id = "cmpl-1".into();
            usage.usage = Some(Usage {
                input_tokens: 3,
                output_tokens: 5,
                ..Usage::default()
            });
            items.push(Ok(usage));
        }
        Ok(ChatResponse::stream(
            meta,
            Box::pin(futures_util::stream::iter(items)),
        ))
    }
}

/// Records every event.
#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<RunEvent>>);

impl TelemetrySink for Recorder {
    fn on_event(&self, e: &RunEvent) {
        self.0.lock().unwrap().push(e.clone());
    }
}

impl Recorder {
    pub fn kinds(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|e| {
                serde_json::to_value(e).unwrap()["event"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }
    pub fn json(&self) -> String {
        serde_json::to_string(&*self.0.lock().unwrap()).unwrap()
    }
}

pub fn user(text: &str) -> ChatRequest {
    ChatRequest::new("test-model", vec![Message::user(text)])
}
