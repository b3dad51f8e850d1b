//! One streaming engine for every provider: bytes from the network are cut into frames by a
//! [`Framer`] (SSE events, AWS event-stream messages) and translated into [`ChatChunk`]s by a
//! provider's [`Decoder`]. The engine owns the silence deadline, transport failures and the
//! rule that a stream which ends without its terminator ends with an `Err` item.

use std::{collections::VecDeque, pin::Pin, sync::Arc};

use aegis_contracts::{ChatChunk, ChatStream, Error};
use bytes::Bytes;
use futures_core::Stream;
use futures_util::StreamExt;

use crate::{
    http::HttpCore,
    sse::{SseEvent, SseParser},
    transport,
};

/// Cuts a byte stream into frames.
pub(crate) trait Framer: Send + 'static {
    /// One unit of the wire protocol.
    type Frame;
    /// Appends bytes read from the network.
    fn feed(&mut self, bytes: &[u8]);
    /// Marks the end of input.
    fn finish(&mut self);
    /// The next complete frame, or why the bytes are not a valid stream.
    fn next_frame(&mut self) -> Option<Result<Self::Frame, String>>;
}

impl Framer for SseParser {
    type Frame = SseEvent;

    fn feed(&mut self, bytes: &[u8]) {
        SseParser::feed(self, bytes);
    }

    fn finish(&mut self) {
        SseParser::finish(self);
    }

    fn next_frame(&mut self) -> Option<Result<SseEvent, String>> {
        self.next_event().map(|r| r.map_err(|e| e.to_string()))
    }
}

/// What a decoder says after a frame.
pub(crate) enum Flow {
    /// More frames may follow.
    Continue,
    /// The stream's terminator: the answer is complete.
    Done,
}

/// Translates a provider's frames into chunks.
pub(crate) trait Decoder<F>: Send + 'static {
    /// Translates one frame, pushing zero or more chunks.
    fn decode(
        &mut self,
        core: &HttpCore,
        frame: F,
        out: &mut VecDeque<ChatChunk>,
    ) -> Result<Flow, Error>;

    /// The input ended without [`Flow::Done`]: `Ok` when the answer is complete anyway
    /// (e.g. Gemini, whose streams have no terminator, after a finish reason), else the
    /// error to end the stream with.
    fn end(&mut self, core: &HttpCore, out: &mut VecDeque<ChatChunk>) -> Result<(), Error>;
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// The chunk stream over one response body.
pub(crate) struct FrameStream<F, D> {
    core: Arc<HttpCore>,
    body: ByteStream,
    framer: F,
    decoder: D,
    pending: VecDeque<ChatChunk>,
    /// An error to deliver once the chunks decoded before it are out.
    deferred: Option<Error>,
    eof: bool,
    finished: bool,
}

impl<F, D> FrameStream<F, D>
where
    F: Framer,
    D: Decoder<F::Frame>,
{
    pub(crate) fn new(core: Arc<HttpCore>, resp: reqwest::Response, framer: F, decoder: D) -> Self {
        Self {
            core,
            body: Box::pin(resp.bytes_stream()),
            framer,
            decoder,
            pending: VecDeque::new(),
            deferred: None,
            eof: false,
            finished: false,
        }
    }

    pub(crate) fn into_stream(self) -> ChatStream {
        Box::pin(futures_util::stream::unfold(self, |mut st| async move {
            let item = st.next_item().await?;
            Some((item, st))
        }))
    }

    fn fail(&mut self, err: Error) -> Option<Result<ChatChunk, Error>> {
        self.finished = true;
        self.pending.clear();
        Some(Err(err))
    }

    async fn next_item(&mut self) -> Option<Result<ChatChunk, Error>> {
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                return Some(Ok(chunk));
            }
            if let Some(err) = self.deferred.take() {
                return self.fail(err);
            }
            if self.finished {
                return None;
            }
            if let Some(frame) = self.framer.next_frame() {
                let flow = match frame {
                    Ok(frame) => self.decoder.decode(&self.core, frame, &mut self.pending),
                    Err(e) => Err(Error::provider(format!(
                        "provider `{}` sent a broken event stream: {e}",
                        self.core.name
                    ))),
                };
                match flow {
                    Ok(Flow::Continue) => continue,
                    Ok(Flow::Done) => {
                        self.finished = true;
                        continue;
                    }
                    Err(e) => {
                        // Chunks decoded before the failure are still delivered first.
                        self.finished = true;
                        self.deferred = Some(e);
                        continue;
                    }
                }
            }
            if self.eof {
                self.finished = true;
                if let Err(e) = self.decoder.end(&self.core, &mut self.pending) {
                    self.deferred = Some(e);
                }
                continue;
            }
            let next = match self.core.timeout {
                None => self.body.next().await,
                Some(d) => match tokio::time::timeout(d, self.body.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        let err = self.core.timeout_error(d);
                        return self.fail(err);
                    }
                },
            };
            match next {
                Some(Ok(bytes)) => self.framer.feed(&bytes),
                Some(Err(e)) => {
                    let err = transport::map_transport_error(&self.core.name, e.into());
                    return self.fail(err);
                }
                None => {
                    self.eof = true;
                    self.framer.finish();
                }
            }
        }
    }
}
