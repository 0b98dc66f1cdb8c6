//! Repairs the `:authority` that etcd 3.4's grpc-go clients send as a whole URL.
//!
//! `etcdctl endpoint status --cluster` (etcdctl 3.4) dials every member's client URL as the
//! gRPC target `passthrough:///http://127.0.0.1:2379`, and grpc-go sends the target's endpoint
//! verbatim as `:authority: http://127.0.0.1:2379` (etcd 3.5.0's client sent
//! `#initially=[http://…]` on every call). etcd's Go server ignores the authority; `h2` parses
//! it as an RFC 3986 authority and resets the stream with PROTOCOL_ERROR before the request
//! reaches us, and h2 has no option to relax that (its maintainers declined one).
//!
//! [`AuthorityRewriter`] sits on the client-to-server bytes of one connection, in front of h2,
//! and runs in one of three modes:
//!
//! - **Inspecting** (from the start): the preface and every frame pass through unchanged,
//!   except the frames of the first header block (HEADERS plus its CONTINUATIONs), which are
//!   held until END_HEADERS and HPACK-decoded. If its `:authority` contains `://`, the
//!   connection switches to Rewriting and that block is re-encoded; otherwise the held bytes
//!   go out unchanged and the connection switches to Passthrough.
//! - **Passthrough**: the rewriter is done; the caller hands bytes straight to h2 (see
//!   [`super::authority_io`]), so ordinary clients pay for one decoded header block per
//!   connection and nothing per request.
//! - **Rewriting**: every header block is decoded (the client's HPACK dynamic table is tracked
//!   from the first block) and re-encoded with the scheme stripped from `:authority`
//!   (`http://127.0.0.1:2379` → `127.0.0.1:2379`, see [`strip_scheme`]). Fields are
//!   re-encoded as literals without indexing, so h2's decoder table stays empty and can never
//!   disagree with ours. Padding is dropped, PRIORITY data and END_STREAM are kept, and the
//!   block is re-split into frames of at most 16,384 bytes. All other frames pass through
//!   unchanged.
//!
//! The client encodes against the server's SETTINGS_HEADER_TABLE_SIZE, which h2 leaves at the
//! protocol default ([`SERVER_HEADER_TABLE_BYTES`]); a client's own SETTINGS_HEADER_TABLE_SIZE
//! governs the other direction, which this module never touches.
//!
//! Bad input: while Inspecting, anything the rewriter cannot make sense of (no preface, a
//! misplaced CONTINUATION, an oversized frame, HPACK garbage) makes it hand every byte to h2
//! unchanged, so h2 judges the connection exactly as it would without the rewriter. While
//! Rewriting, h2 can no longer see the client's bytes, so the same faults are a
//! [`RewriteError`] and the connection is closed. Nothing here panics on input, and every
//! buffer is bounded by [`Limits`].

use bytes::{Buf, BufMut, BytesMut};
use loona_hpack::Decoder;
use std::borrow::Cow;

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// SETTINGS_HEADER_TABLE_SIZE as h2 advertises it: the protocol default, since
/// `connection::http2_builder` does not change it. The client's encoder may not exceed it.
pub const SERVER_HEADER_TABLE_BYTES: usize = 4096;
/// Payload bytes of each frame we emit: the smallest SETTINGS_MAX_FRAME_SIZE a peer may set
/// (RFC 9113 §4.2), so it fits whatever h2 advertised.
pub const EMITTED_FRAME_BYTES_MAX: usize = 16_384;

const FRAME_HEADER_BYTES: usize = 9;
const PRIORITY_BYTES: usize = 5;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_PUSH_PROMISE: u8 = 0x5;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
const AUTHORITY: &[u8] = b":authority";
const SCHEME_SEPARATOR: &[u8] = b"://";
/// HPACK's per-field overhead when sizing a header list (RFC 7541 §4.1).
const FIELD_OVERHEAD_BYTES: usize = 32;

/// Bounds on what the rewriter buffers for one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest HEADERS or CONTINUATION payload accepted (the server's SETTINGS_MAX_FRAME_SIZE).
    pub frame_bytes_max: usize,
    /// Largest header block on the wire: HEADERS and its CONTINUATIONs, frame headers,
    /// padding and all (so a flood of empty CONTINUATIONs is bounded too).
    pub header_block_bytes_max: usize,
    /// Largest decoded header list, sized as HPACK sizes it (name + value + 32 per field).
    pub header_list_bytes_max: usize,
}

/// Which way the connection is being handled; see the module doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Inspecting,
    Rewriting,
    Passthrough,
}

/// A fault in a connection being rewritten: the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    #[error("frame of {length_bytes} bytes exceeds the {limit_bytes}-byte limit")]
    FrameTooLarge {
        length_bytes: usize,
        limit_bytes: usize,
    },
    #[error("header block exceeds the {limit_bytes}-byte limit")]
    HeaderBlockTooLarge { limit_bytes: usize },
    #[error("header list exceeds the {limit_bytes}-byte limit")]
    HeaderListTooLarge { limit_bytes: usize },
    #[error("HPACK decoding failed: {0}")]
    Hpack(String),
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
}

#[derive(Clone, Copy, Debug)]
struct FrameHeader {
    length_bytes: usize,
    kind: u8,
    flags: u8,
    stream_id: u32,
}

impl FrameHeader {
    fn parse(bytes: &[u8]) -> FrameHeader {
        assert!(bytes.len() >= FRAME_HEADER_BYTES);
        FrameHeader {
            length_bytes: usize::from(bytes[0]) << 16
                | usize::from(bytes[1]) << 8
                | usize::from(bytes[2]),
            kind: bytes[3],
            flags: bytes[4],
            stream_id: u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff,
        }
    }
}

fn put_frame_header(output: &mut BytesMut, length_bytes: usize, kind: u8, flags: u8, stream: u32) {
    assert!(length_bytes < 1 << 24);
    output.put_uint(length_bytes as u64, 3);
    output.put_u8(kind);
    output.put_u8(flags);
    output.put_u32(stream);
}

/// What the parser waits for next.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// `matched_bytes` of the preface seen so far.
    Preface {
        matched_bytes: usize,
    },
    FrameHeader,
    /// Payload bytes of a frame that passes through unchanged.
    Forward {
        remaining_bytes: usize,
    },
    /// A HEADERS or CONTINUATION frame, parsed once its whole payload has arrived.
    HeaderFrame(FrameHeader),
}

/// A header block whose END_HEADERS has not arrived yet.
struct PendingBlock {
    stream_id: u32,
    end_stream: bool,
    priority: Option<[u8; PRIORITY_BYTES]>,
    fragments: Vec<u8>,
    /// Bytes of the block's frames so far, frame headers included.
    wire_bytes: usize,
}

/// A decoded header block, re-encoded for h2.
struct Reencoded {
    block: Vec<u8>,
    authority_repaired: bool,
}

/// Client-to-server byte rewriter for one connection; see the module doc.
pub struct AuthorityRewriter {
    limits: Limits,
    mode: Mode,
    step: Step,
    decoder: Decoder<'static>,
    pending: Option<PendingBlock>,
    /// While Inspecting: the raw frames of the pending block, sent unchanged on fallback.
    held: Vec<u8>,
}

impl AuthorityRewriter {
    pub fn new(limits: Limits) -> AuthorityRewriter {
        let mut decoder = Decoder::new();
        decoder.set_max_allowed_table_size(SERVER_HEADER_TABLE_BYTES);
        AuthorityRewriter {
            limits,
            mode: Mode::Inspecting,
            step: Step::Preface { matched_bytes: 0 },
            decoder,
            pending: None,
            held: Vec::new(),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Consumes what it can of `input` and appends the bytes for h2 to `output`. Bytes of an
    /// incomplete frame header or header frame stay in `input` for the next call. Once the
    /// mode is Passthrough, all of `input` has been moved to `output` and the caller must
    /// forward later bytes itself.
    pub fn process(
        &mut self,
        input: &mut BytesMut,
        output: &mut BytesMut,
    ) -> Result<(), RewriteError> {
        while self.mode != Mode::Passthrough {
            let progressed = match self.step {
                Step::Preface { matched_bytes } => self.on_preface(matched_bytes, input, output),
                Step::FrameHeader => self.on_frame_header(input, output)?,
                Step::Forward { remaining_bytes } => {
                    let count = remaining_bytes.min(input.len());
                    output.extend_from_slice(&input[..count]);
                    input.advance(count);
                    self.step = match remaining_bytes - count {
                        0 => Step::FrameHeader,
                        remaining_bytes => Step::Forward { remaining_bytes },
                    };
                    count > 0 || remaining_bytes == 0
                }
                Step::HeaderFrame(header) => self.on_header_frame(header, input, output)?,
            };
            if !progressed {
                return Ok(());
            }
        }
        output.extend_from_slice(input);
        input.clear();
        Ok(())
    }

    fn on_preface(
        &mut self,
        matched_bytes: usize,
        input: &mut BytesMut,
        output: &mut BytesMut,
    ) -> bool {
        let wanted = &PREFACE[matched_bytes..];
        let count = wanted.len().min(input.len());
        if input[..count] != wanted[..count] {
            // Not HTTP/2 with prior knowledge: h2 will say so.
            self.mode = Mode::Passthrough;
            return true;
        }
        output.extend_from_slice(&input[..count]);
        input.advance(count);
        let matched_bytes = matched_bytes + count;
        self.step = if matched_bytes == PREFACE.len() {
            Step::FrameHeader
        } else {
            Step::Preface { matched_bytes }
        };
        count > 0
    }

    fn on_frame_header(
        &mut self,
        input: &mut BytesMut,
        output: &mut BytesMut,
    ) -> Result<bool, RewriteError> {
        if input.len() < FRAME_HEADER_BYTES {
            return Ok(false);
        }
        let header = FrameHeader::parse(input);
        let is_header_frame = header.kind == TYPE_HEADERS || header.kind == TYPE_CONTINUATION;
        let fault = if is_header_frame && header.length_bytes > self.limits.frame_bytes_max {
            Some(RewriteError::FrameTooLarge {
                length_bytes: header.length_bytes,
                limit_bytes: self.limits.frame_bytes_max,
            })
        } else if let Some(pending) = &self.pending {
            (header.kind != TYPE_CONTINUATION || header.stream_id != pending.stream_id)
                .then_some(RewriteError::Malformed("header block interrupted"))
        } else if header.kind == TYPE_CONTINUATION {
            Some(RewriteError::Malformed("CONTINUATION without HEADERS"))
        } else if header.kind == TYPE_PUSH_PROMISE {
            Some(RewriteError::Malformed("PUSH_PROMISE from a client"))
        } else {
            None
        };
        if let Some(fault) = fault {
            return self.fall_back(fault, output).map(|()| true);
        }
        if is_header_frame {
            if self.mode == Mode::Inspecting {
                self.held.extend_from_slice(&input[..FRAME_HEADER_BYTES]);
            }
            self.step = Step::HeaderFrame(header);
        } else {
            output.extend_from_slice(&input[..FRAME_HEADER_BYTES]);
            self.step = Step::Forward {
                remaining_bytes: header.length_bytes,
            };
        }
        input.advance(FRAME_HEADER_BYTES);
        Ok(true)
    }

    fn on_header_frame(
        &mut self,
        header: FrameHeader,
        input: &mut BytesMut,
        output: &mut BytesMut,
    ) -> Result<bool, RewriteError> {
        if input.len() < header.length_bytes {
            return Ok(false);
        }
        let payload = input.split_to(header.length_bytes);
        if self.mode == Mode::Inspecting {
            self.held.extend_from_slice(&payload);
        }
        self.step = Step::FrameHeader;
        let added = match self.pending.as_mut() {
            None => parse_headers_payload(header, &payload).map(|pending| {
                self.pending = Some(pending);
            }),
            Some(pending) => {
                pending.fragments.extend_from_slice(&payload);
                pending.wire_bytes += FRAME_HEADER_BYTES + payload.len();
                Ok(())
            }
        };
        if let Err(fault) = added {
            return self.fall_back(fault, output).map(|()| true);
        }
        let block_bytes = self.pending.as_ref().map_or(0, |p| p.wire_bytes);
        if block_bytes > self.limits.header_block_bytes_max {
            let fault = RewriteError::HeaderBlockTooLarge {
                limit_bytes: self.limits.header_block_bytes_max,
            };
            return self.fall_back(fault, output).map(|()| true);
        }
        if header.flags & FLAG_END_HEADERS != 0 {
            self.finish_block(output)?;
        }
        Ok(true)
    }

    fn finish_block(&mut self, output: &mut BytesMut) -> Result<(), RewriteError> {
        let Some(pending) = self.pending.take() else {
            return Err(RewriteError::Malformed(
                "END_HEADERS without a header block",
            ));
        };
        let reencoded = match reencode(&mut self.decoder, &pending.fragments, &self.limits) {
            Ok(reencoded) => reencoded,
            Err(fault) => return self.fall_back(fault, output),
        };
        if self.mode == Mode::Inspecting && !reencoded.authority_repaired {
            self.pass_through(output);
            return Ok(());
        }
        if self.mode == Mode::Inspecting {
            tracing::debug!("client sends a URL as :authority; rewriting its header blocks");
            self.mode = Mode::Rewriting;
            self.held = Vec::new();
        }
        emit_block(output, &pending, &reencoded.block);
        Ok(())
    }

    /// While Inspecting, hands everything to h2 unchanged (h2 judges it); while Rewriting,
    /// fails the connection.
    fn fall_back(
        &mut self,
        fault: RewriteError,
        output: &mut BytesMut,
    ) -> Result<(), RewriteError> {
        match self.mode {
            Mode::Inspecting => {
                tracing::debug!(%fault, "not rewriting this connection");
                self.pass_through(output);
                Ok(())
            }
            Mode::Rewriting | Mode::Passthrough => Err(fault),
        }
    }

    fn pass_through(&mut self, output: &mut BytesMut) {
        output.extend_from_slice(&self.held);
        self.held = Vec::new();
        self.pending = None;
        self.decoder = Decoder::new();
        self.mode = Mode::Passthrough;
    }
}

/// Splits a HEADERS payload into its padding, priority data and block fragment.
fn parse_headers_payload(
    header: FrameHeader,
    payload: &[u8],
) -> Result<PendingBlock, RewriteError> {
    if header.stream_id == 0 {
        return Err(RewriteError::Malformed("HEADERS on stream 0"));
    }
    let mut body = payload;
    let mut padding_bytes = 0;
    if header.flags & FLAG_PADDED != 0 {
        let Some((&pad, rest)) = body.split_first() else {
            return Err(RewriteError::Malformed(
                "PADDED HEADERS without a pad length",
            ));
        };
        padding_bytes = usize::from(pad);
        body = rest;
    }
    let mut priority = None;
    if header.flags & FLAG_PRIORITY != 0 {
        if body.len() < PRIORITY_BYTES {
            return Err(RewriteError::Malformed(
                "HEADERS too short for its priority",
            ));
        }
        let (fields, rest) = body.split_at(PRIORITY_BYTES);
        let mut bytes = [0u8; PRIORITY_BYTES];
        bytes.copy_from_slice(fields);
        priority = Some(bytes);
        body = rest;
    }
    if padding_bytes > body.len() {
        return Err(RewriteError::Malformed(
            "HEADERS padding longer than its payload",
        ));
    }
    Ok(PendingBlock {
        stream_id: header.stream_id,
        end_stream: header.flags & FLAG_END_STREAM != 0,
        priority,
        fragments: body[..body.len() - padding_bytes].to_vec(),
        wire_bytes: FRAME_HEADER_BYTES + payload.len(),
    })
}

/// Decodes one header block (updating the client's dynamic table in `decoder`) and encodes it
/// again as literals without indexing, with the scheme stripped from a URL `:authority`.
fn reencode(
    decoder: &mut Decoder<'static>,
    block: &[u8],
    limits: &Limits,
) -> Result<Reencoded, RewriteError> {
    let mut reencoded = Reencoded {
        block: Vec::with_capacity(block.len() + block.len() / 2),
        authority_repaired: false,
    };
    let mut list_bytes = 0usize;
    let mut too_large = false;
    decoder
        .decode_with_cb(block, |name: Cow<[u8]>, value: Cow<[u8]>| {
            list_bytes = list_bytes.saturating_add(name.len() + value.len() + FIELD_OVERHEAD_BYTES);
            // The decoder must see the whole block to keep its table right; past the limit,
            // only stop producing output.
            too_large |= list_bytes > limits.header_list_bytes_max;
            if too_large {
                return;
            }
            let value = if &*name == AUTHORITY {
                match strip_scheme(&value) {
                    Some(stripped) => {
                        reencoded.authority_repaired = true;
                        stripped
                    }
                    None => &value,
                }
            } else {
                &value
            };
            encode_literal(&mut reencoded.block, &name, value);
        })
        .map_err(|error| RewriteError::Hpack(error.to_string()))?;
    if too_large {
        return Err(RewriteError::HeaderListTooLarge {
            limit_bytes: limits.header_list_bytes_max,
        });
    }
    Ok(reencoded)
}

/// The host and port of the first URL in `authority`; `None` if it holds no `://`.
///
/// `http://127.0.0.1:2379` (etcd 3.4's `--cluster` dials) → `127.0.0.1:2379`;
/// `#initially=[https://a:2379;https://b:2379]` (etcd 3.5.0's client) → `a:2379`;
/// `http://[::1]:2379/` → `[::1]:2379`.
pub fn strip_scheme(authority: &[u8]) -> Option<&[u8]> {
    let start = authority
        .windows(SCHEME_SEPARATOR.len())
        .position(|window| window == SCHEME_SEPARATOR)?
        + SCHEME_SEPARATOR.len();
    let rest = &authority[start..];
    // An IPv6 literal's brackets and colons belong to the host.
    let host_end = match rest.first() {
        Some(b'[') => rest
            .iter()
            .position(|&byte| byte == b']')
            .map_or(0, |i| i + 1),
        _ => 0,
    };
    let end = rest[host_end..]
        .iter()
        .position(|byte| b"/;]?#".contains(byte))
        .map_or(rest.len(), |i| host_end + i);
    Some(&rest[..end])
}

/// "Literal Header Field without Indexing — New Name" (RFC 7541 §6.2.2), no Huffman coding.
fn encode_literal(block: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    block.push(0);
    encode_string(block, name);
    encode_string(block, value);
}

fn encode_string(block: &mut Vec<u8>, bytes: &[u8]) {
    encode_integer(block, 0, 7, bytes.len());
    block.extend_from_slice(bytes);
}

/// HPACK integer (RFC 7541 §5.1): `first_bits` are the bits above the `prefix_bits`-bit prefix.
fn encode_integer(block: &mut Vec<u8>, first_bits: u8, prefix_bits: u32, value: usize) {
    assert!((1..=8).contains(&prefix_bits));
    let prefix_max = (1usize << prefix_bits) - 1;
    if value < prefix_max {
        block.push(first_bits | value as u8);
        return;
    }
    block.push(first_bits | prefix_max as u8);
    let mut rest = value - prefix_max;
    while rest >= 0x80 {
        block.push((rest as u8 & 0x7f) | 0x80);
        rest >>= 7;
    }
    block.push(rest as u8);
}

/// Writes `block` as HEADERS plus as many CONTINUATIONs as it takes.
fn emit_block(output: &mut BytesMut, pending: &PendingBlock, block: &[u8]) {
    let priority: &[u8] = pending
        .priority
        .as_ref()
        .map_or(&[], |bytes| bytes.as_slice());
    let first_bytes = (EMITTED_FRAME_BYTES_MAX - priority.len()).min(block.len());
    let (first, mut rest) = block.split_at(first_bytes);
    let mut flags = 0;
    if pending.end_stream {
        flags |= FLAG_END_STREAM;
    }
    if pending.priority.is_some() {
        flags |= FLAG_PRIORITY;
    }
    if rest.is_empty() {
        flags |= FLAG_END_HEADERS;
    }
    let length_bytes = priority.len() + first.len();
    put_frame_header(output, length_bytes, TYPE_HEADERS, flags, pending.stream_id);
    output.extend_from_slice(priority);
    output.extend_from_slice(first);
    while !rest.is_empty() {
        let (chunk, remaining) = rest.split_at(EMITTED_FRAME_BYTES_MAX.min(rest.len()));
        let flags = if remaining.is_empty() {
            FLAG_END_HEADERS
        } else {
            0
        };
        put_frame_header(
            output,
            chunk.len(),
            TYPE_CONTINUATION,
            flags,
            pending.stream_id,
        );
        output.extend_from_slice(chunk);
        rest = remaining;
    }
}

#[cfg(test)]
#[path = "authority_tests.rs"]
mod tests;
