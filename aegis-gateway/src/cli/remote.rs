//! Talking to a running gateway: one request with a progress spinner, and `aegis chat`.

use std::{
    io::{IsTerminal, Write},
    time::Duration,
};

use aegis::{Error, ErrorKind};
use serde_json::{Value, json};

use super::{Remote, paint};

/// `println!` that ignores a closed stdout.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub(super) async fn request(
    remote: &Remote,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, Error> {
    let client = reqwest::Client::new();
    let mut req = client.request(
        method,
        format!("{}{path}", remote.url.trim_end_matches('/')),
    );
    if let Some(key) = &remote.key {
        req = req.bearer_auth(key);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    // Progress on a terminal while the gateway works (a governed call can take a while).
    let spinner = std::io::stderr().is_terminal().then(|| {
        tokio::spawn(async {
            let frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
            tokio::time::sleep(Duration::from_millis(300)).await;
            for f in frames.iter().cycle() {
                eprint!("\r{f} waiting for the gateway…");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });
    let sent = req.send().await;
    if let Some(s) = spinner {
        s.abort();
        eprint!("\r\x1b[2K");
    }
    let resp =
        sent.map_err(|e| Error::provider(format!("cannot connect to {}: {e}", remote.url)))?;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(v);
    }
    let message = v["error"]["message"]
        .as_str()
        .unwrap_or("request failed")
        .to_owned();
    let kind = match status.as_u16() {
        401 => ErrorKind::Unauthenticated,
        403 => ErrorKind::Forbidden,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        400 if v["error"]["code"] == "policy_blocked" => ErrorKind::PolicyBlocked,
        400 | 413 | 422 => ErrorKind::InvalidRequest,
        _ => ErrorKind::Provider,
    };
    Err(Error::new(kind, format!("{message} (HTTP {status})")))
}

pub(super) async fn chat(
    remote: &Remote,
    model: &str,
    prompt: Vec<String>,
    json_out: bool,
) -> Result<u8, Error> {
    let one = |text: String| {
        let model = model.to_owned();
        async move {
            let body = json!({"model": model, "messages": [{"role": "user", "content": text}]});
            let v = request(
                remote,
                reqwest::Method::POST,
                "/v1/chat/completions",
                Some(body),
            )
            .await?;
            if json_out {
                say!("{v}");
            } else if v["object"] == "aegis.run" {
                say!(
                    "{}",
                    paint(v["message"].as_str().unwrap_or("paused for approval"), "33")
                );
            } else {
                say!(
                    "{}",
                    v["choices"][0]["message"]["content"]
                        .as_str()
                        .unwrap_or_default()
                );
            }
            Ok::<(), Error>(())
        }
    };
    if !prompt.is_empty() {
        one(prompt.join(" ")).await?;
        return Ok(0);
    }
    let stdin = std::io::stdin();
    loop {
        eprint!("{} ", paint(">", "36"));
        let mut line = String::new();
        if stdin
            .read_line(&mut line)
            .map_err(|e| Error::internal(e.to_string()))?
            == 0
        {
            return Ok(0);
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Err(e) = one(line.to_owned()).await {
            eprintln!("{} {}", paint("error:", "31"), e.message());
        }
    }
}
