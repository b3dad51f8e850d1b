//! A small Server-Sent Events parser (the WHATWG `text/event-stream` grammar), fed with
//! arbitrary byte slices as they arrive from the network.
//!
//! Only complete lines are decoded, so events, lines and multi-byte characters may be split
//! across reads at any byte. At end of input a trailing event that lacks its blank line is
//! still dispatched: upstreams that end their body right after the last `data:` line are
//! common, and the caller decides whether the stream was complete (`[DONE]`).

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` field, when the server named the event.
    pub(crate) event: Option<String>,
    /// The `data:` lines joined by `\n`.
    pub(crate) data: String,
}

/// Why the byte stream is not a valid event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SseError {
    /// A line is not UTF-8.
    InvalidUtf8,
    /// An event or a line grew past [`MAX_EVENT_BYTES`].
    TooLarge,
}

impl std::fmt::Display for SseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidUtf8 => f.write_str("the event stream is not valid UTF-8"),
            Self::TooLarge => write!(f, "an event is larger than {MAX_EVENT_BYTES} bytes"),
        }
    }
}

/// Upper bound on one line or one event's data: a peer that never ends a line must not make
/// us buffer without limit.
pub(crate) const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Incremental parser: [`feed`](Self::feed) bytes, then drain [`next_event`](Self::next_event)
/// until it returns `None`; call [`finish`](Self::finish) at end of input and drain again.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    buf: Vec<u8>,
    pos: usize,
    /// `buf[pos..scanned]` holds no line terminator: a long line arriving in many small reads
    /// is scanned once, not once per read.
    scanned: usize,
    data: String,
    has_data: bool,
    event: Option<String>,
    first_line: bool,
    eof: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub(crate) fn new() -> Self {
        Self {
            first_line: true,
            ..Self::default()
        }
    }

    /// Appends bytes read from the network.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            // Drop what was consumed before growing, so the buffer stays one event large.
            self.buf.drain(..self.pos);
            self.scanned = self.scanned.saturating_sub(self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Marks the end of input: the last unterminated line and event are dispatched.
    pub(crate) fn finish(&mut self) {
        self.eof = true;
    }

    /// The next complete event, `None` when more input is needed (or, after
    /// [`finish`](Self::finish), when the stream is exhausted).
    pub(crate) fn next_event(&mut self) -> Option<Result<SseEvent, SseError>> {
        loop {
            let rest = &self.buf[self.pos..];
            let skip = self.scanned.saturating_sub(self.pos);
            let line_end = rest[skip..]
                .iter()
                .position(|&b| b == b'\n' || b == b'\r')
                .map(|i| i + skip);
            let (line_len, consumed) = match line_end {
                Some(i) if rest[i] == b'\r' => match rest.get(i + 1) {
                    Some(b'\n') => (i, i + 2),
                    Some(_) => (i, i + 1),
                    // A CR as the last byte may be the first half of a CRLF.
                    None if self.eof => (i, i + 1),
                    None => {
                        self.scanned = self.pos + i;
                        return None;
                    }
                },
                Some(i) => (i, i + 1),
                None if self.eof && !rest.is_empty() => (rest.len(), rest.len()),
                None if self.eof => return self.dispatch().map(Ok),
                None if rest.len() > MAX_EVENT_BYTES => return Some(Err(SseError::TooLarge)),
                None => {
                    self.scanned = self.buf.len();
                    return None;
                }
            };
            let start = self.pos;
            self.pos += consumed;
            let mut line = &self.buf[start..start + line_len];
            if std::mem::take(&mut self.first_line) {
                line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
            }
            if line.is_empty() {
                if let Some(event) = self.dispatch() {
                    return Some(Ok(event));
                }
                continue;
            }
            if line[0] == b':' {
                continue; // comment / keep-alive
            }
            let Ok(line) = std::str::from_utf8(line) else {
                return Some(Err(SseError::InvalidUtf8));
            };
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line, ""),
            };
            match field {
                "data" => {
                    if self.data.len() + value.len() > MAX_EVENT_BYTES {
                        return Some(Err(SseError::TooLarge));
                    }
                    if self.has_data {
                        self.data.push('\n');
                    }
                    self.data.push_str(value);
                    self.has_data = true;
                }
                "event" => self.event = Some(value.to_owned()),
                // `id` and `retry` drive browser reconnection, which we never do.
                _ => {}
            }
        }
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        Some(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(pieces: &[&[u8]]) -> Vec<Result<SseEvent, SseError>> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for piece in pieces {
            p.feed(piece);
            while let Some(ev) = p.next_event() {
                out.push(ev);
            }
        }
        p.finish();
        while let Some(ev) = p.next_event() {
            out.push(ev);
        }
        out
    }

    fn data(d: &str) -> Result<SseEvent, SseError> {
        Ok(SseEvent {
            event: None,
            data: d.to_owned(),
        })
    }

    const STREAM: &str = "\u{FEFF}: keep-alive\r\n\
        data: {\"a\":\"h\u{e9}llo \u{1F600}\"}\r\n\r\n\
        event: note\ndata: line one\ndata:line two\n\n\
        id: 7\nretry: 10\ndata: x\rdata:  y\r\r\
        data: [DONE]\n\n";

    fn expected() -> Vec<Result<SseEvent, SseError>> {
        vec![
            data("{\"a\":\"h\u{e9}llo \u{1F600}\"}"),
            Ok(SseEvent {
                event: Some("note".into()),
                data: "line one\nline two".into(),
            }),
            data("x\n y"),
            data("[DONE]"),
        ]
    }

    #[test]
    fn whole_stream_parses_comments_crlf_cr_multiline_and_event_names() {
        assert_eq!(parse_in_pieces(&[STREAM.as_bytes()]), expected());
    }

    #[test]
    fn every_split_point_yields_the_same_events() {
        let bytes = STREAM.as_bytes();
        for i in 0..=bytes.len() {
            assert_eq!(
                parse_in_pieces(&[&bytes[..i], &bytes[i..]]),
                expected(),
                "split at {i}"
            );
        }
        for i in 0..=bytes.len() {
            for j in i..=bytes.len() {
                let got = parse_in_pieces(&[&bytes[..i], &bytes[i..j], &bytes[j..]]);
                assert_eq!(got, expected(), "split at {i} and {j}");
            }
        }
    }

    #[test]
    fn byte_by_byte_feeding_yields_the_same_events() {
        let pieces: Vec<&[u8]> = STREAM.as_bytes().chunks(1).collect();
        assert_eq!(parse_in_pieces(&pieces), expected());
    }

    #[test]
    fn trailing_event_without_blank_line_is_dispatched_at_end_of_input() {
        assert_eq!(
            parse_in_pieces(&[b"data: a\n\ndata: [DONE]"]),
            vec![data("a"), data("[DONE]")]
        );
        assert_eq!(
            parse_in_pieces(&[b"data: a\n\ndata: [DONE]\r"]),
            vec![data("a"), data("[DONE]")]
        );
    }

    #[test]
    fn events_without_data_are_not_dispatched() {
        assert_eq!(
            parse_in_pieces(&[b"event: ping\n\n: hi\n\ndata\n\n"]),
            vec![data("")]
        );
    }

    #[test]
    fn a_long_line_in_many_reads_is_reassembled() {
        let line = format!("data: {}\n\n", "x".repeat(100_000));
        let pieces: Vec<&[u8]> = line.as_bytes().chunks(7).collect();
        assert_eq!(parse_in_pieces(&pieces), vec![data(&"x".repeat(100_000))]);
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        assert_eq!(
            parse_in_pieces(&[b"data: \xff\xfe\n\n"]),
            vec![Err(SseError::InvalidUtf8)]
        );
    }

    #[test]
    fn a_line_that_never_ends_is_refused_past_the_limit() {
        let mut p = SseParser::new();
        p.feed(&vec![b'a'; MAX_EVENT_BYTES + 1]);
        assert_eq!(p.next_event(), Some(Err(SseError::TooLarge)));
    }
}
