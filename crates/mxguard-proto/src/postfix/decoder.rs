//! Streaming, bounded decoder for Postfix policy requests (see the parent module for the
//! protocol). No I/O: `feed` bytes, then call `next_request` until it returns `None`.
//!
//! Memory is bounded by `max_line + max_request_bytes` per connection: a bad request's bytes
//! are discarded as they arrive, never accumulated.

use super::{DecodeError, PolicyRequest, REQUEST_TYPE};

/// Bounds on what one connection may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted `name=value` line, in bytes (without the newline).
    pub max_line: usize,
    /// Most attributes in one request (Postfix 3.7 sends 29).
    pub max_attributes: usize,
    /// Most bytes in one request, all lines together.
    pub max_request_bytes: usize,
    /// Most bytes discarded while skipping one bad request before giving up on the stream.
    pub max_discard_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // A real request is ~600 bytes (mail-e2e notes); long ccert subjects and SMTPUTF8
        // addresses stay far below these.
        Limits {
            max_line: 8 * 1024,
            max_attributes: 128,
            max_request_bytes: 64 * 1024,
            max_discard_bytes: 4 * 1024 * 1024,
        }
    }
}

/// The streaming decoder; one per connection.
#[derive(Debug)]
pub struct PolicyDecoder {
    limits: Limits,
    buf: Vec<u8>,
    /// Start of unconsumed bytes in `buf`.
    pos: usize,
    current: PolicyRequest,
    attributes: usize,
    request_bytes: usize,
    saw_request: bool,
    /// Set while discarding the rest of a bad request; returned at its empty line.
    skipping: Option<DecodeError>,
    /// True while inside an over-long line whose newline has not arrived yet.
    in_long_line: bool,
    discarded: usize,
    fatal: bool,
}

impl PolicyDecoder {
    pub fn new(limits: Limits) -> Self {
        PolicyDecoder {
            limits,
            buf: Vec::with_capacity(1024),
            pos: 0,
            current: PolicyRequest::default(),
            attributes: 0,
            request_bytes: 0,
            saw_request: false,
            skipping: None,
            in_long_line: false,
            discarded: 0,
            fatal: false,
        }
    }

    /// Appends bytes read from the peer.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.fatal {
            return;
        }
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// True when some bytes of an unfinished request are pending (a peer that disconnects now
    /// left half a request).
    pub fn is_mid_request(&self) -> bool {
        self.pos < self.buf.len()
            || self.attributes > 0
            || self.skipping.is_some()
            || self.in_long_line
    }

    /// Bytes currently buffered (bounded by `max_line` plus one read).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn reset_request(&mut self) {
        self.current = PolicyRequest::default();
        self.attributes = 0;
        self.request_bytes = 0;
        self.saw_request = false;
        self.skipping = None;
        self.discarded = 0;
    }

    fn skip(&mut self, err: DecodeError) {
        if self.skipping.is_none() {
            self.skipping = Some(err);
        }
    }

    fn discard(&mut self, n: usize) -> bool {
        self.discarded = self.discarded.saturating_add(n);
        if self.discarded > self.limits.max_discard_bytes {
            self.fatal = true;
            self.buf.clear();
            self.pos = 0;
        }
        self.fatal
    }

    /// The next complete request, a decode error for a complete-but-bad request, or `None`
    /// when more bytes are needed.
    pub fn next_request(&mut self) -> Option<Result<PolicyRequest, DecodeError>> {
        loop {
            if self.fatal {
                return Some(Err(DecodeError::Unrecoverable));
            }
            let pending = &self.buf[self.pos..];
            let Some(nl) = memchr_newline(pending) else {
                let n = pending.len();
                if self.in_long_line || n > self.limits.max_line {
                    if !self.in_long_line {
                        self.skip(DecodeError::LineTooLong {
                            limit: self.limits.max_line,
                        });
                        self.in_long_line = true;
                    }
                    self.buf.clear();
                    self.pos = 0;
                    if self.discard(n) {
                        continue;
                    }
                }
                return None;
            };
            let start = self.pos;
            self.pos += nl + 1;
            if self.in_long_line {
                // The tail of an over-long line.
                self.in_long_line = false;
                if self.discard(nl + 1) {
                    continue;
                }
                continue;
            }
            let mut line = &self.buf[start..start + nl];
            // Postfix sends bare LF; tolerate CRLF from hand-typed sessions (telnet, nc -C).
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if line.is_empty() {
                return Some(self.finish());
            }
            if self.skipping.is_some() {
                if self.discard(nl + 1) {
                    continue;
                }
                continue;
            }
            if line.len() > self.limits.max_line {
                let limit = self.limits.max_line;
                self.skip(DecodeError::LineTooLong { limit });
                continue;
            }
            self.request_bytes += nl + 1;
            self.attributes += 1;
            if self.request_bytes > self.limits.max_request_bytes {
                let limit = self.limits.max_request_bytes;
                self.skip(DecodeError::RequestTooLarge { limit });
                continue;
            }
            if self.attributes > self.limits.max_attributes {
                let limit = self.limits.max_attributes;
                self.skip(DecodeError::TooManyAttributes { limit });
                continue;
            }
            let Some(eq) = memchr::memchr(b'=', line) else {
                let line = self.attributes;
                self.skip(DecodeError::MalformedLine { line });
                continue;
            };
            if eq == 0 {
                let line = self.attributes;
                self.skip(DecodeError::MalformedLine { line });
                continue;
            }
            let (name, value) = (&line[..eq], &line[eq + 1..]);
            // Non-UTF-8 bytes (a client without SMTPUTF8 passing Latin-1 through) are replaced
            // rather than refused: the request stays answerable.
            let name = utf8(name);
            let value = utf8(value);
            if name == "request" {
                self.saw_request = true;
            }
            if let Err(e) = self.current.set(&name, value) {
                self.skip(e);
            }
        }
    }

    /// Ends the current request at its empty line.
    fn finish(&mut self) -> Result<PolicyRequest, DecodeError> {
        let result = if let Some(err) = self.skipping.take() {
            Err(err)
        } else if self.attributes == 0 {
            Err(DecodeError::EmptyRequest)
        } else if !self.saw_request {
            Err(DecodeError::MissingRequest)
        } else if self.current.request != REQUEST_TYPE {
            let mut request = self.current.request.clone();
            request.truncate(64);
            Err(DecodeError::UnsupportedRequest { request })
        } else {
            Ok(std::mem::take(&mut self.current))
        };
        self.reset_request();
        result
    }
}

fn memchr_newline(b: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', b)
}

/// Borrowed when valid UTF-8 (the fast, usual case), else lossily replaced.
fn utf8(b: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(b),
    }
}
