//! The AWS event-stream binary framing (`application/vnd.amazon.eventstream`) that
//! ConverseStream answers in: each message is a 12-byte prelude (total length, headers
//! length, prelude CRC32), typed headers, a payload and a CRC32 of the whole message.
//!
//! [`encode_message`] is the inverse, for mock servers and tests.
//!
//! ```
//! use aegis_providers::bedrock::eventstream::{decode_all, encode_message};
//! let bytes = encode_message(&[(":event-type", "messageStop")], br#"{"stopReason":"end_turn"}"#);
//! let messages = decode_all(&bytes).unwrap();
//! assert_eq!(messages[0].header(":event-type"), Some("messageStop"));
//! assert_eq!(messages[0].payload, br#"{"stopReason":"end_turn"}"#);
//! ```

use crate::stream::Framer;

/// Largest message accepted; a peer announcing more is refused rather than buffered.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// One decoded message. Header values of non-string types are kept as their text form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMessage {
    /// `(name, value)` in wire order.
    pub headers: Vec<(String, String)>,
    /// The payload bytes (JSON for Bedrock).
    pub payload: Vec<u8>,
}

impl EventMessage {
    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Encodes one message with string-typed headers.
pub fn encode_message(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(name.len() as u8);
        h.extend_from_slice(name.as_bytes());
        h.push(7); // string
        h.extend_from_slice(&(value.len() as u16).to_be_bytes());
        h.extend_from_slice(value.as_bytes());
    }
    let total = 12 + h.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Decodes a complete buffer of messages.
pub fn decode_all(bytes: &[u8]) -> Result<Vec<EventMessage>, String> {
    let mut p = EventStreamParser::default();
    p.feed(bytes);
    p.finish();
    let mut out = Vec::new();
    while let Some(m) = p.next_frame() {
        out.push(m?);
    }
    Ok(out)
}

/// Incremental decoder: feed bytes as they arrive, take messages as they complete.
#[derive(Debug, Default)]
pub(crate) struct EventStreamParser {
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    failed: bool,
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn parse_headers(mut b: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let take = |b: &mut &[u8], n: usize| -> Result<Vec<u8>, String> {
        if b.len() < n {
            return Err("a header runs past the headers section".to_owned());
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Ok(head.to_vec())
    };
    while !b.is_empty() {
        let name_len = usize::from(take(&mut b, 1)?[0]);
        let name = String::from_utf8(take(&mut b, name_len)?)
            .map_err(|_| "a header name is not UTF-8".to_owned())?;
        let kind = take(&mut b, 1)?[0];
        let value = match kind {
            0 => "true".to_owned(),
            1 => "false".to_owned(),
            2 => (take(&mut b, 1)?[0] as i8).to_string(),
            3 => {
                let v = take(&mut b, 2)?;
                i16::from_be_bytes([v[0], v[1]]).to_string()
            }
            4 => (be32(&take(&mut b, 4)?) as i32).to_string(),
            5 | 8 => {
                let v = take(&mut b, 8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(&v);
                i64::from_be_bytes(a).to_string()
            }
            6 | 7 => {
                let len = take(&mut b, 2)?;
                let v = take(&mut b, usize::from(u16::from_be_bytes([len[0], len[1]])))?;
                if kind == 7 {
                    String::from_utf8(v).map_err(|_| format!("header `{name}` is not UTF-8"))?
                } else {
                    format!("<{} bytes>", v.len())
                }
            }
            9 => {
                let v = take(&mut b, 16)?;
                crate::bedrock::sigv4::hex(&v)
            }
            other => return Err(format!("header `{name}` has unknown type {other}")),
        };
        out.push((name, value));
    }
    Ok(out)
}

impl Framer for EventStreamParser {
    type Frame = EventMessage;

    fn feed(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    fn finish(&mut self) {
        self.eof = true;
    }

    fn next_frame(&mut self) -> Option<Result<EventMessage, String>> {
        if self.failed {
            return None;
        }
        let mut fail = |msg: String| {
            self.failed = true;
            Some(Err(msg))
        };
        let rest = &self.buf[self.pos..];
        if rest.len() < 12 {
            return match (self.eof, rest.is_empty()) {
                (true, false) => fail(format!(
                    "the stream ends inside a message prelude ({} bytes)",
                    rest.len()
                )),
                _ => None,
            };
        }
        let total = be32(&rest[0..4]) as usize;
        let headers_len = be32(&rest[4..8]) as usize;
        if crc32fast::hash(&rest[0..8]) != be32(&rest[8..12]) {
            return fail("prelude checksum mismatch".to_owned());
        }
        if !(16..=MAX_MESSAGE_BYTES).contains(&total) || headers_len > total - 16 {
            return fail(format!(
                "impossible message lengths (total {total}, headers {headers_len})"
            ));
        }
        if rest.len() < total {
            return if self.eof {
                fail(format!(
                    "the stream ends inside a message ({} of {total} bytes)",
                    rest.len()
                ))
            } else {
                None
            };
        }
        let msg = &rest[..total];
        if crc32fast::hash(&msg[..total - 4]) != be32(&msg[total - 4..]) {
            return fail("message checksum mismatch".to_owned());
        }
        let headers = match parse_headers(&msg[12..12 + headers_len]) {
            Ok(h) => h,
            Err(e) => return fail(e),
        };
        let payload = msg[12 + headers_len..total - 4].to_vec();
        self.pos += total;
        Some(Ok(EventMessage { headers, payload }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut b = encode_message(
            &[(":message-type", "event"), (":event-type", "messageStart")],
            br#"{"role":"assistant"}"#,
        );
        b.extend(encode_message(
            &[
                (":message-type", "event"),
                (":event-type", "contentBlockDelta"),
            ],
            "{\"delta\":{\"text\":\"h\u{e9}\"},\"contentBlockIndex\":0}".as_bytes(),
        ));
        b
    }

    #[test]
    fn every_split_point_yields_the_same_messages() {
        let bytes = sample();
        let whole = decode_all(&bytes).unwrap_or_default();
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[1].header(":event-type"), Some("contentBlockDelta"));
        for i in 0..=bytes.len() {
            let mut p = EventStreamParser::default();
            let mut got = Vec::new();
            for piece in [&bytes[..i], &bytes[i..]] {
                p.feed(piece);
                while let Some(m) = p.next_frame() {
                    got.push(m.unwrap_or_else(|e| panic!("split {i}: {e}")));
                }
            }
            p.finish();
            assert!(p.next_frame().is_none());
            assert_eq!(got, whole, "split at {i}");
        }
    }

    #[test]
    fn a_flipped_payload_byte_fails_the_message_checksum() {
        let mut bytes = sample();
        bytes[30] ^= 0x01;
        let err = decode_all(&bytes).unwrap_err();
        assert!(err.contains("checksum"), "{err}");
    }

    #[test]
    fn a_flipped_length_byte_fails_the_prelude_checksum() {
        let mut bytes = sample();
        bytes[3] ^= 0x01;
        assert_eq!(decode_all(&bytes).unwrap_err(), "prelude checksum mismatch");
    }

    #[test]
    fn a_truncated_stream_is_an_error_at_end_of_input() {
        let bytes = sample();
        let err = decode_all(&bytes[..bytes.len() - 3]).unwrap_err();
        assert!(err.contains("ends inside a message"), "{err}");
        let err = decode_all(&bytes[..5]).unwrap_err();
        assert!(err.contains("prelude"), "{err}");
    }

    #[test]
    fn non_string_header_types_are_parsed() {
        // One header of each fixed-size type, encoded by hand.
        let mut h = Vec::new();
        for (name, kind, value) in [
            ("t", 0u8, vec![]),
            ("b", 2, vec![0xff]),
            ("i", 4, 7u32.to_be_bytes().to_vec()),
            ("l", 5, 9u64.to_be_bytes().to_vec()),
        ] {
            h.push(name.len() as u8);
            h.extend_from_slice(name.as_bytes());
            h.push(kind);
            h.extend(value);
        }
        let parsed = parse_headers(&h).unwrap_or_default();
        assert_eq!(
            parsed,
            vec![
                ("t".into(), "true".into()),
                ("b".into(), "-1".into()),
                ("i".into(), "7".into()),
                ("l".into(), "9".into())
            ]
        );
    }
}
