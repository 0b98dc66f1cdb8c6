use super::*;
use rand::{Rng, SeedableRng};

/// What etcdctl 3.4 (grpc-go 1.26) sent for `endpoint status` against
/// `http://127.0.0.1:23799`: preface, SETTINGS, SETTINGS ack, HEADERS (Huffman-coded literals
/// with incremental indexing, `:authority: http://127.0.0.1:23799`), DATA, RST_STREAM.
const ETCDCTL_CAPTURE_HEX: &str = "505249202a20485454502f322e300d0a0d0a534d0d0a0d0a000000040000\
    0000000000000401000000000000770104000000018386459760a924882d9dcb6571afa066a925a87510ac6e48d3\
    6a3f41909d29aee30c044eae05c0b86e09975f7f5f8b1d75d0620d263d4c4d65647a8b9acac8b4c7602bb2caecff\
    40027465864d833505b11f40899acac8b24d494f6a7f860befbecb2edb408d25062d495875996ee5b1063d5f0333\
    2e34000005000100000001000000000000000403000000000100000008";

const LIMITS: Limits = Limits {
    frame_bytes_max: 256 * 1024,
    header_block_bytes_max: 256 * 1024,
    header_list_bytes_max: 64 * 1024,
};

type Headers = Vec<(String, String)>;

fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).expect("ascii"), 16).expect("hex"))
        .collect()
}

fn capture() -> Vec<u8> {
    unhex(ETCDCTL_CAPTURE_HEX)
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut bytes = BytesMut::new();
    put_frame_header(&mut bytes, payload.len(), kind, flags, stream);
    bytes.extend_from_slice(payload);
    bytes.to_vec()
}

fn settings() -> Vec<u8> {
    frame(0x4, 0, 0, &[])
}

fn data(stream: u32, payload: &[u8]) -> Vec<u8> {
    frame(0x0, FLAG_END_STREAM, stream, payload)
}

/// A header block of literals with incremental indexing (so later blocks can refer to them).
fn indexed_block(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in headers {
        block.push(0x40);
        encode_string(&mut block, name.as_bytes());
        encode_string(&mut block, value.as_bytes());
    }
    block
}

fn grpc_request(authority: &str) -> Vec<(&'static str, String)> {
    vec![
        (":method", "POST".to_string()),
        (":scheme", "http".to_string()),
        (":path", "/etcdserverpb.Maintenance/Status".to_string()),
        (":authority", authority.to_string()),
        ("content-type", "application/grpc".to_string()),
        ("te", "trailers".to_string()),
    ]
}

fn connection(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = PREFACE.to_vec();
    bytes.extend(settings());
    for frame in frames {
        bytes.extend_from_slice(frame);
    }
    bytes
}

/// Feeds `bytes` in chunks of `chunk_bytes`; returns the output, or the first error.
fn run_chunked(bytes: &[u8], chunk_bytes: usize) -> (Result<Vec<u8>, RewriteError>, Mode) {
    let mut rewriter = AuthorityRewriter::new(LIMITS);
    let mut input = BytesMut::new();
    let mut output = BytesMut::new();
    for chunk in bytes.chunks(chunk_bytes.max(1)) {
        input.extend_from_slice(chunk);
        if let Err(error) = rewriter.process(&mut input, &mut output) {
            return (Err(error), rewriter.mode());
        }
        if rewriter.mode() == Mode::Passthrough {
            // The caller forwards the rest itself.
            assert!(input.is_empty());
            output.extend_from_slice(chunk_rest(bytes, chunk));
            return (Ok(output.to_vec()), rewriter.mode());
        }
    }
    (Ok(output.to_vec()), rewriter.mode())
}

/// The bytes of `whole` after the sub-slice `chunk`.
fn chunk_rest<'a>(whole: &'a [u8], chunk: &[u8]) -> &'a [u8] {
    let end = chunk.as_ptr() as usize - whole.as_ptr() as usize + chunk.len();
    &whole[end..]
}

fn run(bytes: &[u8]) -> (Result<Vec<u8>, RewriteError>, Mode) {
    run_chunked(bytes, bytes.len())
}

/// A frame as h2 would read it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

fn parse_frames(bytes: &[u8]) -> Vec<Frame> {
    assert_eq!(&bytes[..PREFACE.len()], PREFACE);
    let mut rest = &bytes[PREFACE.len()..];
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let header = FrameHeader::parse(rest);
        let end = FRAME_HEADER_BYTES + header.length_bytes;
        frames.push(Frame {
            kind: header.kind,
            flags: header.flags,
            stream: header.stream_id,
            payload: rest[FRAME_HEADER_BYTES..end].to_vec(),
        });
        rest = &rest[end..];
    }
    frames
}

/// Decodes every header block in `frames` the way h2 would, with a decoder whose dynamic table
/// holds nothing: rewritten blocks must not depend on one. Returns (stream, flags of the
/// HEADERS frame, headers) per block.
fn decode_blocks(frames: &[Frame]) -> Vec<(u32, u8, Headers)> {
    let mut decoder = Decoder::new();
    decoder.set_max_allowed_table_size(0);
    decoder.set_max_table_size(0);
    let mut blocks = Vec::new();
    let mut pending: Option<(u32, u8, Vec<u8>)> = None;
    for frame in frames {
        match frame.kind {
            TYPE_HEADERS => {
                assert!(pending.is_none(), "HEADERS inside a block");
                assert_eq!(frame.flags & FLAG_PADDED, 0, "padding is dropped");
                let skip = if frame.flags & FLAG_PRIORITY != 0 {
                    PRIORITY_BYTES
                } else {
                    0
                };
                pending = Some((frame.stream, frame.flags, frame.payload[skip..].to_vec()));
            }
            TYPE_CONTINUATION => {
                let block = pending.as_mut().expect("CONTINUATION inside a block");
                assert_eq!(block.0, frame.stream);
                block.2.extend_from_slice(&frame.payload);
            }
            _ => {
                assert!(pending.is_none(), "frame inside a header block");
                continue;
            }
        }
        assert!(frame.payload.len() <= EMITTED_FRAME_BYTES_MAX);
        if frame.flags & FLAG_END_HEADERS != 0 {
            let (stream, flags, block) = pending.take().expect("block");
            let headers = decoder
                .decode(&block)
                .expect("rewritten block decodes without a dynamic table")
                .into_iter()
                .map(|(name, value)| {
                    (
                        String::from_utf8(name).expect("utf-8"),
                        String::from_utf8(value).expect("utf-8"),
                    )
                })
                .collect();
            blocks.push((stream, flags, headers));
        }
    }
    assert!(pending.is_none(), "unfinished header block");
    blocks
}

fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(found, _)| found == name)
        .map(|(_, value)| value.as_str())
}

#[test]
fn strip_scheme_keeps_host_and_port_only() {
    assert_eq!(
        strip_scheme(b"http://127.0.0.1:2379"),
        Some(&b"127.0.0.1:2379"[..])
    );
    assert_eq!(
        strip_scheme(b"https://etcd-0:2379/"),
        Some(&b"etcd-0:2379"[..])
    );
    assert_eq!(strip_scheme(b"unix://"), Some(&b""[..]));
    assert_eq!(
        strip_scheme(b"#initially=[https://a:2379;https://b:2379]"),
        Some(&b"a:2379"[..])
    );
    assert_eq!(strip_scheme(b"#initially=[http://a:1]"), Some(&b"a:1"[..]));
    assert_eq!(
        strip_scheme(b"http://[::1]:2379/"),
        Some(&b"[::1]:2379"[..])
    );
    assert_eq!(strip_scheme(b"http://[::1"), Some(&b"[::1"[..]));
    assert_eq!(strip_scheme(b"http://h:1?x#y"), Some(&b"h:1"[..]));
    assert_eq!(strip_scheme(b"127.0.0.1:2379"), None);
    assert_eq!(strip_scheme(b""), None);
}

#[test]
fn integers_round_trip_through_the_hpack_decoder() {
    for value in [0usize, 1, 126, 127, 128, 255, 16_383, 16_384, 1 << 20] {
        let text = "x".repeat(value);
        let mut block = Vec::new();
        encode_literal(&mut block, b"name", text.as_bytes());
        let decoded = Decoder::new().decode(&block).expect("decodes");
        assert_eq!(
            decoded,
            vec![(b"name".to_vec(), text.into_bytes())],
            "length {value}"
        );
    }
}

#[test]
fn etcdctl_capture_is_rewritten() {
    let input = capture();
    let (output, mode) = run(&input);
    let output = output.expect("rewritten");
    assert_eq!(mode, Mode::Rewriting);
    let before = parse_frames(&input);
    let after = parse_frames(&output);
    let kinds = |frames: &[Frame]| frames.iter().map(|f| f.kind).collect::<Vec<_>>();
    assert_eq!(kinds(&after), kinds(&before), "same frames, in order");
    for (old, new) in before.iter().zip(&after) {
        if old.kind != TYPE_HEADERS {
            assert_eq!(old, new, "non-header frames pass unchanged");
        }
    }
    let blocks = decode_blocks(&after);
    assert_eq!(blocks.len(), 1);
    let (stream, flags, headers) = &blocks[0];
    assert_eq!(*stream, 1);
    assert_eq!(*flags, FLAG_END_HEADERS);
    assert_eq!(header(headers, ":authority"), Some("127.0.0.1:23799"));
    assert_eq!(
        header(headers, ":path"),
        Some("/etcdserverpb.Maintenance/Status")
    );
    assert_eq!(header(headers, ":method"), Some("POST"));
    assert_eq!(header(headers, "content-type"), Some("application/grpc"));
    assert!(header(headers, "user-agent").is_some_and(|agent| agent.starts_with("grpc-go/")));

    // The original block, decoded, differs only in :authority.
    let mut original = Decoder::new()
        .decode(
            &before
                .iter()
                .find(|f| f.kind == TYPE_HEADERS)
                .expect("HEADERS")
                .payload,
        )
        .expect("capture decodes");
    let authority = original
        .iter_mut()
        .find(|(name, _)| name == b":authority")
        .expect(":authority");
    assert_eq!(authority.1, b"http://127.0.0.1:23799");
    authority.1 = b"127.0.0.1:23799".to_vec();
    let rewritten: Vec<(Vec<u8>, Vec<u8>)> = headers
        .iter()
        .map(|(n, v)| (n.clone().into_bytes(), v.clone().into_bytes()))
        .collect();
    assert_eq!(rewritten, original);
}

#[test]
fn every_split_of_the_input_gives_the_same_output() {
    let input = capture();
    let (whole, _) = run(&input);
    let whole = whole.expect("rewritten");
    for chunk_bytes in 1..=input.len() {
        let (output, mode) = run_chunked(&input, chunk_bytes);
        assert_eq!(output.as_ref(), Ok(&whole), "chunks of {chunk_bytes}");
        assert_eq!(mode, Mode::Rewriting);
    }
}

#[test]
fn later_blocks_are_decoded_against_the_clients_dynamic_table() {
    let request = grpc_request("http://10.0.0.1:2379");
    let first: Vec<(&str, &str)> = request.iter().map(|(n, v)| (*n, v.as_str())).collect();
    // Six entries inserted; the newest is index 62 (te), the oldest 67 (:method).
    let second = [
        0x80 | 67,
        0x80 | 66,
        0x80 | 65,
        0x80 | 64,
        0x80 | 63,
        0x80 | 62,
    ];
    let input = connection(&[
        frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &indexed_block(&first)),
        data(1, b"\0\0\0\0\0"),
        frame(TYPE_HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 3, &second),
    ]);
    let (output, mode) = run(&input);
    assert_eq!(mode, Mode::Rewriting);
    let blocks = decode_blocks(&parse_frames(&output.expect("rewritten")));
    assert_eq!(blocks.len(), 2);
    for (stream, _, headers) in &blocks {
        assert_eq!(
            header(headers, ":authority"),
            Some("10.0.0.1:2379"),
            "stream {stream}"
        );
        assert_eq!(
            header(headers, ":path"),
            Some("/etcdserverpb.Maintenance/Status")
        );
        assert_eq!(headers.len(), 6);
    }
    assert_eq!(blocks[1].0, 3);
    assert_eq!(blocks[1].1, FLAG_END_HEADERS | FLAG_END_STREAM);
}

#[test]
fn an_ordinary_client_passes_through_byte_for_byte() {
    let request = grpc_request("127.0.0.1:2379");
    let headers: Vec<(&str, &str)> = request.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let input = connection(&[
        frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &indexed_block(&headers)),
        data(1, b"\0\0\0\0\0"),
        // A URL in a later request is not looked at: the decision is made once.
        frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS,
            3,
            &indexed_block(&[(":authority", "http://x:1")]),
        ),
    ]);
    for chunk_bytes in [1, 7, 100, input.len()] {
        let (output, mode) = run_chunked(&input, chunk_bytes);
        assert_eq!(output, Ok(input.clone()));
        assert_eq!(mode, Mode::Passthrough);
    }
}

#[test]
fn the_first_block_may_span_continuations() {
    let request = grpc_request("http://127.0.0.1:2379");
    let headers: Vec<(&str, &str)> = request.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let block = indexed_block(&headers);
    let (a, rest) = block.split_at(10);
    let (b, c) = rest.split_at(1);
    let input = connection(&[
        frame(TYPE_HEADERS, FLAG_END_STREAM, 1, a),
        frame(TYPE_CONTINUATION, 0, 1, b),
        frame(TYPE_CONTINUATION, 0, 1, &[]),
        frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, c),
    ]);
    let (output, mode) = run_chunked(&input, 5);
    assert_eq!(mode, Mode::Rewriting);
    let frames = parse_frames(&output.expect("rewritten"));
    let blocks = decode_blocks(&frames);
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].1, FLAG_END_STREAM | FLAG_END_HEADERS);
    assert_eq!(header(&blocks[0].2, ":authority"), Some("127.0.0.1:2379"));
    // Small enough for one frame again.
    assert_eq!(
        frames
            .iter()
            .filter(|f| f.kind == TYPE_CONTINUATION)
            .count(),
        0
    );
}

#[test]
fn padding_is_dropped_and_priority_kept() {
    let request = grpc_request("http://127.0.0.1:2379");
    let headers: Vec<(&str, &str)> = request.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let priority = [0x80, 0, 0, 0x01, 0x2a];
    let mut payload = vec![3];
    payload.extend_from_slice(&priority);
    payload.extend(indexed_block(&headers));
    payload.extend_from_slice(&[0, 0, 0]);
    let flags = FLAG_PADDED | FLAG_PRIORITY | FLAG_END_HEADERS;
    let (output, _) = run(&connection(&[frame(TYPE_HEADERS, flags, 1, &payload)]));
    let frames = parse_frames(&output.expect("rewritten"));
    let headers_frame = frames
        .iter()
        .find(|f| f.kind == TYPE_HEADERS)
        .expect("HEADERS");
    assert_eq!(headers_frame.flags, FLAG_PRIORITY | FLAG_END_HEADERS);
    assert_eq!(headers_frame.payload[..PRIORITY_BYTES], priority);
    let blocks = decode_blocks(&frames);
    assert_eq!(header(&blocks[0].2, ":authority"), Some("127.0.0.1:2379"));
    assert_eq!(blocks[0].2.len(), 6);
}

#[test]
fn a_large_block_is_split_into_continuations() {
    let token = "t".repeat(40_000);
    let mut request = grpc_request("http://127.0.0.1:2379");
    request.push(("token", token.clone()));
    let headers: Vec<(&str, &str)> = request.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let flags = FLAG_PRIORITY | FLAG_END_HEADERS;
    let mut payload = vec![0, 0, 0, 0, 16];
    payload.extend(indexed_block(&headers));
    let (output, _) = run(&connection(&[frame(TYPE_HEADERS, flags, 5, &payload)]));
    let frames = parse_frames(&output.expect("rewritten"));
    let kinds: Vec<u8> = frames.iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        [0x4, TYPE_HEADERS, TYPE_CONTINUATION, TYPE_CONTINUATION]
    );
    assert_eq!(frames[1].payload.len(), EMITTED_FRAME_BYTES_MAX);
    assert_eq!(frames[1].flags, FLAG_PRIORITY);
    assert_eq!(frames[2].flags, 0);
    assert_eq!(frames[3].flags, FLAG_END_HEADERS);
    let blocks = decode_blocks(&frames);
    assert_eq!(header(&blocks[0].2, "token"), Some(token.as_str()));
    assert_eq!(header(&blocks[0].2, ":authority"), Some("127.0.0.1:2379"));
}

fn rewriting_connection() -> Vec<u8> {
    let request = grpc_request("http://127.0.0.1:2379");
    let headers: Vec<(&str, &str)> = request.iter().map(|(n, v)| (*n, v.as_str())).collect();
    connection(&[frame(
        TYPE_HEADERS,
        FLAG_END_HEADERS,
        1,
        &indexed_block(&headers),
    )])
}

#[test]
fn faults_while_rewriting_close_the_connection() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "HPACK index out of range",
            frame(TYPE_HEADERS, FLAG_END_HEADERS, 3, &[0xff, 0x7f]),
        ),
        (
            "truncated HPACK string",
            frame(TYPE_HEADERS, FLAG_END_HEADERS, 3, &[0x40, 0x05, b'a']),
        ),
        (
            "HEADERS on stream 0",
            frame(TYPE_HEADERS, FLAG_END_HEADERS, 0, &[0x82]),
        ),
        (
            "padding past the end",
            frame(TYPE_HEADERS, FLAG_PADDED | FLAG_END_HEADERS, 3, &[9, 0x82]),
        ),
        (
            "empty padded HEADERS",
            frame(TYPE_HEADERS, FLAG_PADDED | FLAG_END_HEADERS, 3, &[]),
        ),
        (
            "short priority",
            frame(TYPE_HEADERS, FLAG_PRIORITY | FLAG_END_HEADERS, 3, &[0, 0]),
        ),
        (
            "stray CONTINUATION",
            frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 3, &[0x82]),
        ),
        (
            "PUSH_PROMISE",
            frame(TYPE_PUSH_PROMISE, FLAG_END_HEADERS, 3, &[0, 0, 0, 2, 0x82]),
        ),
        ("oversized header frame", {
            let mut bytes = BytesMut::new();
            put_frame_header(&mut bytes, (1 << 24) - 1, TYPE_HEADERS, 0, 3);
            bytes.to_vec()
        }),
        (
            "table size update over the server's limit",
            frame(TYPE_HEADERS, FLAG_END_HEADERS, 3, &[0x3f, 0xe2, 0x1f, 0x82]),
        ),
        ("interrupted block", {
            let mut bytes = frame(TYPE_HEADERS, 0, 3, &[0x82]);
            bytes.extend(data(3, b""));
            bytes
        }),
        ("CONTINUATION of another stream", {
            let mut bytes = frame(TYPE_HEADERS, 0, 3, &[0x82]);
            bytes.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 5, &[0x84]));
            bytes
        }),
    ];
    for (name, bad) in cases {
        let mut input = rewriting_connection();
        input.extend(bad);
        let (output, mode) = run(&input);
        assert!(output.is_err(), "{name}: {output:?}");
        assert_eq!(mode, Mode::Rewriting, "{name}");
    }
}

#[test]
fn limits_hold_while_rewriting() {
    let limits = Limits {
        frame_bytes_max: 1_000,
        header_block_bytes_max: 2_000,
        header_list_bytes_max: 1_500,
    };
    let rewrite = |frames: &[Vec<u8>]| {
        let mut input = BytesMut::from(&rewriting_connection()[..]);
        for frame in frames {
            input.extend_from_slice(frame);
        }
        let mut output = BytesMut::new();
        AuthorityRewriter::new(limits).process(&mut input, &mut output)
    };
    let big_literal = |bytes: usize| indexed_block(&[("x", &"v".repeat(bytes))]);
    assert!(matches!(
        rewrite(&[frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS,
            3,
            &big_literal(1_100)
        )]),
        Err(RewriteError::FrameTooLarge { .. })
    ));
    let block = big_literal(2_100);
    let mut frames = vec![frame(TYPE_HEADERS, 0, 3, &block[..900])];
    frames.push(frame(TYPE_CONTINUATION, 0, 3, &block[900..1_800]));
    frames.push(frame(
        TYPE_CONTINUATION,
        FLAG_END_HEADERS,
        3,
        &block[1_800..],
    ));
    assert!(matches!(
        rewrite(&frames),
        Err(RewriteError::HeaderBlockTooLarge { .. })
    ));
    // A flood of empty CONTINUATIONs costs its frame headers.
    let mut flood = vec![frame(TYPE_HEADERS, 0, 3, &[0x82])];
    flood.extend((0..300).map(|_| frame(TYPE_CONTINUATION, 0, 3, &[])));
    assert!(matches!(
        rewrite(&flood),
        Err(RewriteError::HeaderBlockTooLarge { .. })
    ));
    // 100 references to one 400-byte entry: a tiny block, a large list.
    let mut amplified = indexed_block(&[("x", &"v".repeat(400))]);
    amplified.extend(std::iter::repeat_n(0x80 | 62, 100));
    assert!(matches!(
        rewrite(&[frame(TYPE_HEADERS, FLAG_END_HEADERS, 3, &amplified)]),
        Err(RewriteError::HeaderListTooLarge { .. })
    ));
}

#[test]
fn faults_while_inspecting_are_left_to_h2() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("HTTP/1.1", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("short preface", PREFACE[..10].to_vec()),
        (
            "HPACK garbage",
            connection(&[frame(
                TYPE_HEADERS,
                FLAG_END_HEADERS,
                1,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
            )]),
        ),
        (
            "stray CONTINUATION",
            connection(&[frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, &[0x82])]),
        ),
        (
            "interrupted block",
            connection(&[frame(TYPE_HEADERS, 0, 1, &[0x82]), settings()]),
        ),
        (
            "HEADERS on stream 0",
            connection(&[frame(TYPE_HEADERS, FLAG_END_HEADERS, 0, &[0x82])]),
        ),
        ("CONTINUATION flood", {
            let mut frames = vec![frame(TYPE_HEADERS, 0, 1, &[0x82])];
            let flood_frames = LIMITS.header_block_bytes_max / FRAME_HEADER_BYTES + 1;
            frames.extend((0..flood_frames).map(|_| frame(TYPE_CONTINUATION, 0, 1, &[])));
            connection(&frames)
        }),
        ("oversized HEADERS", {
            let mut bytes = connection(&[]);
            let mut header = BytesMut::new();
            put_frame_header(&mut header, LIMITS.frame_bytes_max + 1, TYPE_HEADERS, 0, 1);
            bytes.extend_from_slice(&header);
            bytes.extend_from_slice(&[0x82; 100]);
            bytes
        }),
    ];
    for (name, input) in cases {
        for chunk_bytes in [1, 3, input.len()] {
            let (output, mode) = run_chunked(&input, chunk_bytes);
            let output = output.unwrap_or_else(|error| panic!("{name}: {error}"));
            if name == "short preface" {
                // Still waiting for more bytes: what went out is a prefix of the input.
                assert_eq!(mode, Mode::Inspecting, "{name}");
                assert!(input.starts_with(&output), "{name}: prefix");
            } else {
                assert_eq!(mode, Mode::Passthrough, "{name}");
                assert_eq!(output, input, "{name}: unchanged");
            }
        }
    }
}

/// Seeded random inputs, in random chunks, both before and after the rewriter commits to
/// rewriting: no panic, and the output never exceeds what the limits allow.
#[test]
fn random_input_never_panics() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_a11d);
    let rewriting = rewriting_connection();
    let passthrough_or_inspecting = connection(&[]);
    for round in 0..3_000 {
        let mut input = if round % 2 == 0 {
            rewriting.clone()
        } else {
            passthrough_or_inspecting.clone()
        };
        // Mostly plausible frame headers with random payloads, some pure noise.
        for _ in 0..rng.gen_range(1..6) {
            if rng.gen_bool(0.7) {
                let kind = [0u8, 1, 1, 1, 5, 9, 9, 3, 4, 8][rng.gen_range(0..10)];
                let length = rng.gen_range(0..64);
                let payload: Vec<u8> = (0..length).map(|_| rng.gen()).collect();
                input.extend(frame(kind, rng.gen(), rng.gen_range(0..4), &payload));
            } else {
                input.extend((0..rng.gen_range(0..40)).map(|_| rng.gen::<u8>()));
            }
        }
        let chunk_bytes = rng.gen_range(1..32);
        let _ = run_chunked(&input, chunk_bytes);
    }
}

/// A client connection for h2 tests: reads come from a script, writes are collected.
struct ScriptedClient {
    script: futures::io::Cursor<Vec<u8>>,
    written: Vec<u8>,
}

impl ScriptedClient {
    fn new(script: Vec<u8>) -> ScriptedClient {
        ScriptedClient {
            script: futures::io::Cursor::new(script),
            written: Vec::new(),
        }
    }
}

impl futures::io::AsyncRead for ScriptedClient {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.script.position() as usize == this.script.get_ref().len() {
            // The client is idle, not gone: an EOF would make h2 drop unaccepted streams.
            return std::task::Poll::Pending;
        }
        std::pin::Pin::new(&mut this.script).poll_read(cx, buf)
    }
}

impl futures::io::AsyncWrite for ScriptedClient {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.get_mut().written.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_close(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Polls `future` until it is ready, giving up after `POLLS_MAX` polls; nothing here waits on
/// anything external, so a pending future is stuck.
fn run_to_completion<F: std::future::Future>(future: F) -> Option<F::Output> {
    const POLLS_MAX: usize = 1_000;
    let waker = futures::task::noop_waker();
    let mut context = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    (0..POLLS_MAX).find_map(|_| match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    })
}

/// The whole path: etcdctl's bytes through the shim into a real h2 server, which accepts the
/// request with the repaired authority.
#[test]
fn h2_accepts_the_rewritten_etcdctl_request() {
    use super::super::authority_io::AuthorityShim;
    use tokio_util::compat::FuturesAsyncReadCompatExt;

    // Without the final RST_STREAM, which would cancel the request before it is accepted.
    let mut script = capture();
    script.truncate(script.len() - FRAME_HEADER_BYTES - 4);
    let client = ScriptedClient::new(script);
    let shim = AuthorityShim::new(client, LIMITS);
    let request = run_to_completion(async move {
        let mut connection = h2::server::handshake(shim.compat())
            .await
            .expect("handshake");
        let (request, _respond) = connection
            .accept()
            .await
            .expect("a request")
            .expect("accepted");
        request
    })
    .expect("h2 accepts the request");
    assert_eq!(
        request.uri().authority().map(|a| a.as_str()),
        Some("127.0.0.1:23799")
    );
    assert_eq!(request.uri().path(), "/etcdserverpb.Maintenance/Status");
}

#[test]
fn h2_without_the_shim_rejects_etcdctl_request() {
    use tokio_util::compat::FuturesAsyncReadCompatExt;

    let mut script = capture();
    script.truncate(script.len() - FRAME_HEADER_BYTES - 4);
    let client = ScriptedClient::new(script);
    let accepted = run_to_completion(async move {
        let mut connection = h2::server::handshake(client.compat())
            .await
            .expect("handshake");
        connection.accept().await.map(|result| result.is_ok())
    });
    // h2 resets the stream and never hands it to us.
    assert_eq!(
        accepted, None,
        "h2 no longer rejects the URL: is this module still needed?"
    );
}

/// Reads from `shim` in small reads until the script is used up (the read goes pending) or a
/// read fails.
fn read_all<S: futures::io::AsyncRead + Unpin>(
    shim: &mut super::super::authority_io::AuthorityShim<S>,
) -> (Vec<u8>, Option<std::io::Error>) {
    use futures::io::AsyncReadExt;
    let mut bytes = Vec::new();
    loop {
        let mut buffer = [0u8; 7];
        match run_to_completion(shim.read(&mut buffer)) {
            None | Some(Ok(0)) => return (bytes, None),
            Some(Ok(count)) => bytes.extend_from_slice(&buffer[..count]),
            Some(Err(error)) => return (bytes, Some(error)),
        }
    }
}

#[test]
fn the_shim_steps_aside_after_an_ordinary_first_request() {
    use super::super::authority_io::AuthorityShim;
    let request = grpc_request("127.0.0.1:2379");
    let headers: Vec<(&str, &str)> = request.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let input = connection(&[
        frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &indexed_block(&headers)),
        data(1, b"\0\0\0\0\0"),
    ]);
    let mut shim = AuthorityShim::new(ScriptedClient::new(input.clone()), LIMITS);
    assert!(!shim.is_passthrough());
    let (bytes, error) = read_all(&mut shim);
    assert!(error.is_none());
    assert_eq!(bytes, input);
    assert!(shim.is_passthrough());
}

#[test]
fn the_shim_fails_reads_after_a_fault_while_rewriting() {
    use super::super::authority_io::AuthorityShim;
    let good = rewriting_connection();
    let mut input = good.clone();
    input.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 3, &[0x82]));
    let mut shim = AuthorityShim::new(ScriptedClient::new(input), LIMITS);
    let (bytes, error) = read_all(&mut shim);
    let error = error.expect("the read fails");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
    // Everything before the fault reached h2, rewritten.
    let blocks = decode_blocks(&parse_frames(&bytes));
    assert_eq!(header(&blocks[0].2, ":authority"), Some("127.0.0.1:2379"));
    assert!(!shim.is_passthrough());
    let (_, again) = read_all(&mut shim);
    assert!(again.is_some(), "later reads fail too");
}
