//! CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum etcd's `Hash` and
//! `HashKV` use (Go's `crc32.MakeTable(crc32.Castagnoli)`). A byte-at-a-time table: hashing
//! is a maintenance operation, not a hot path.

const POLYNOMIAL_REFLECTED: u32 = 0x82F6_3B78;

const TABLE: [u32; 256] = build_table();

const fn build_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut index = 0;
    while index < 256 {
        let mut crc = index as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLYNOMIAL_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[index] = crc;
        index += 1;
    }
    table
}

/// A running CRC-32C, fed with `update` in pieces (equal to hashing the concatenation).
#[derive(Debug, Clone)]
pub struct Crc32c {
    state: u32,
}

impl Default for Crc32c {
    fn default() -> Self {
        Crc32c { state: !0 }
    }
}

impl Crc32c {
    pub fn update(&mut self, bytes: &[u8]) {
        let mut crc = self.state;
        for &byte in bytes {
            crc = TABLE[((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8);
        }
        self.state = crc;
    }

    pub fn finish(&self) -> u32 {
        !self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crc32c(bytes: &[u8]) -> u32 {
        let mut crc = Crc32c::default();
        crc.update(bytes);
        crc.finish()
    }

    #[test]
    fn known_vectors() {
        // The standard check value of CRC-32C, and RFC 3720's 32 zero bytes.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn pieces_equal_the_whole() {
        let mut pieces = Crc32c::default();
        pieces.update(b"1234");
        pieces.update(b"");
        pieces.update(b"56789");
        assert_eq!(pieces.finish(), crc32c(b"123456789"));
    }

    #[test]
    fn etcds_empty_key_bucket_hash() {
        // etcd 3.4's HashKV of a fresh store hashes only the bucket name "key": 1084519789.
        assert_eq!(crc32c(b"key"), 1_084_519_789);
    }
}
