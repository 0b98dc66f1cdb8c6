//! Keys and values as etcd's benchmark builds them.
//!
//! A key is `--key-size` zero bytes with the key's index written at the front as a Go
//! `binary.PutVarint` (zig-zag varint), so `--key-space-size 1` always writes the same key and
//! the same command line touches the same keys against etcd and Capstan. Values are random
//! bytes, made once per run.

use crate::error::BenchError;
use bytes::Bytes;
use rand::{Rng, SeedableRng};

/// Bytes of the zig-zag varint of `value`.
fn varint_len(value: i64) -> usize {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    let mut length = 1;
    while zigzag >= 0x80 {
        zigzag >>= 7;
        length += 1;
    }
    length
}

/// Checks that every index below `key_space_size` fits in a key of `key_size` bytes.
pub fn check_key_space(key_size: usize, key_space_size: u64) -> Result<(), BenchError> {
    if key_space_size == 0 {
        return Err(BenchError::Usage(
            "expected positive --key-space-size, got 0".to_string(),
        ));
    }
    let needed = varint_len(key_space_size.saturating_sub(1).min(i64::MAX as u64) as i64);
    if needed > key_size {
        return Err(BenchError::Usage(format!(
            "--key-size {key_size} is too small for --key-space-size {key_space_size} \
             (needs {needed} bytes)"
        )));
    }
    Ok(())
}

/// The key of index `index`: zig-zag varint at the front of `key_size` zero bytes.
pub fn varint_key(index: u64, key_size: usize) -> Bytes {
    let mut key = vec![0u8; key_size];
    let value = index.min(i64::MAX as u64) as i64;
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    let mut position = 0;
    loop {
        let byte = (zigzag & 0x7f) as u8;
        zigzag >>= 7;
        let more = zigzag != 0;
        // check_key_space guarantees room; a short key is truncated rather than overrun.
        if position < key.len() {
            key[position] = if more { byte | 0x80 } else { byte };
        }
        position += 1;
        if !more {
            break;
        }
    }
    Bytes::from(key)
}

/// A pseudo-random number for request `index` (splitmix64): stateless, so every client can
/// pick random keys without sharing a generator, and a run is reproducible from its seed.
pub fn spread(index: u64, seed: u64) -> u64 {
    let mut z = index.wrapping_add(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The key index request `index` writes: sequential or uniformly random over the key space.
pub fn key_index(index: u64, key_space_size: u64, sequential: bool, seed: u64) -> u64 {
    if sequential {
        index % key_space_size
    } else {
        spread(index, seed) % key_space_size
    }
}

/// `size` random bytes.
pub fn random_bytes(size: usize, seed: u64) -> Bytes {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut bytes = vec![0u8; size];
    rng.fill(&mut bytes[..]);
    Bytes::from(bytes)
}

/// `size` random lowercase letters (for keys people may want to read back).
pub fn random_text(size: usize, seed: u64) -> Bytes {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let text: Vec<u8> = (0..size).map(|_| rng.gen_range(b'a'..=b'z')).collect();
    Bytes::from(text)
}

/// The smallest key after every key that starts with `prefix` (etcd's `GetPrefixRangeEnd`);
/// `\0` (every key) for an empty or all-0xff prefix.
pub fn prefix_end(prefix: &[u8]) -> Bytes {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Bytes::from(end);
        }
    }
    Bytes::from_static(b"\0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_go_put_varint() {
        assert_eq!(&varint_key(0, 8)[..], &[0; 8]);
        // Go: binary.PutVarint(buf, 1) writes 0x02; 64 writes 0x80 0x01.
        assert_eq!(&varint_key(1, 4)[..], &[2, 0, 0, 0]);
        assert_eq!(&varint_key(64, 4)[..], &[0x80, 0x01, 0, 0]);
    }

    #[test]
    fn key_space_must_fit_the_key_size() {
        assert!(check_key_space(1, 64).is_ok());
        assert!(check_key_space(1, 65).is_err());
        assert!(check_key_space(8, 0).is_err());
    }

    #[test]
    fn random_key_indices_stay_in_the_key_space() {
        for index in 0..1000 {
            assert!(key_index(index, 7, false, 42) < 7);
        }
        assert_eq!(key_index(9, 7, true, 42), 2);
    }

    #[test]
    fn prefix_ends() {
        assert_eq!(&prefix_end(b"ab")[..], b"ac");
        assert_eq!(&prefix_end(b"a\xff")[..], b"b");
        assert_eq!(&prefix_end(b"")[..], b"\0");
    }
}
