//! The two meta pages: encoding, verification, and choosing the newest valid one at open.

use std::path::Path;

use super::error::{Result, StoreError};
use super::page::{
    check_sum, le_u32, le_u64, page_offset_bytes, read_header, seal, write_header, PageType,
    NO_PAGE, PAGE_BYTES,
};

pub const MAGIC: &[u8; 8] = b"CAPSTPGS";
pub const FORMAT_VERSION: u32 = 1;
/// Meta slots are pages 0 and 1.
pub const META_SLOTS: u64 = 2;

/// What one commit records (see the module doc's FORMAT for the byte layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub txn_id: u64,
    pub page_count: u64,
    pub data_root: u64,
    pub data_keys: u64,
    pub meta_root: u64,
    pub freelist_head: u64,
    pub freelist_free_pages: u64,
    pub freelist_pages: u64,
}

impl Meta {
    /// The state of a new, empty store.
    pub fn empty() -> Meta {
        Meta {
            txn_id: 0,
            page_count: META_SLOTS,
            data_root: NO_PAGE,
            data_keys: 0,
            meta_root: NO_PAGE,
            freelist_head: NO_PAGE,
            freelist_free_pages: 0,
            freelist_pages: 0,
        }
    }

    /// The slot commit `txn_id` writes its meta to.
    pub fn slot(&self) -> u64 {
        self.txn_id % META_SLOTS
    }

    pub fn encode(&self, slot: u64) -> Vec<u8> {
        let mut buf = vec![0u8; PAGE_BYTES];
        write_header(&mut buf, PageType::Meta, 0, slot, self.txn_id);
        buf[24..32].copy_from_slice(MAGIC);
        buf[32..36].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        buf[36..40].copy_from_slice(&(PAGE_BYTES as u32).to_le_bytes());
        let fields = [
            self.page_count,
            self.data_root,
            self.data_keys,
            self.meta_root,
            self.freelist_head,
            self.freelist_free_pages,
            self.freelist_pages,
        ];
        for (index, value) in fields.iter().enumerate() {
            let at = 40 + index * 8;
            buf[at..at + 8].copy_from_slice(&value.to_le_bytes());
        }
        seal(&mut buf);
        buf
    }

    /// Decodes and verifies the meta page in `slot`; `Err(detail)` if it does not verify.
    pub fn decode(buf: &[u8], slot: u64) -> std::result::Result<Meta, String> {
        if buf.len() < PAGE_BYTES {
            return Err(format!("file too short for meta slot {slot}"));
        }
        check_sum(buf)?;
        let header = read_header(buf).ok_or("unknown page type")?;
        if header.page_type != PageType::Meta || header.page_id != slot {
            return Err(format!("not meta slot {slot}: {header:?}"));
        }
        if &buf[24..32] != MAGIC {
            return Err("bad magic".to_string());
        }
        let version = le_u32(buf, 32).unwrap_or(0);
        let page_bytes = le_u32(buf, 36).unwrap_or(0);
        if version != FORMAT_VERSION || page_bytes != PAGE_BYTES as u32 {
            return Err(format!(
                "unsupported version {version} / page size {page_bytes}"
            ));
        }
        let field = |index: usize| le_u64(buf, 40 + index * 8).unwrap_or(0);
        let meta = Meta {
            txn_id: header.txn_id,
            page_count: field(0),
            data_root: field(1),
            data_keys: field(2),
            meta_root: field(3),
            freelist_head: field(4),
            freelist_free_pages: field(5),
            freelist_pages: field(6),
        };
        meta.check_bounds()?;
        Ok(meta)
    }

    fn check_bounds(&self) -> std::result::Result<(), String> {
        let roots = [self.data_root, self.meta_root, self.freelist_head];
        if self.page_count < META_SLOTS || roots.iter().any(|&root| root >= self.page_count) {
            return Err(format!("page references outside page_count: {self:?}"));
        }
        let accounted = self.freelist_free_pages.checked_add(self.freelist_pages);
        if accounted.is_none_or(|pages| pages > self.page_count) {
            return Err(format!("free page counts exceed page_count: {self:?}"));
        }
        Ok(())
    }
}

/// Which meta open chose, and what it had to ignore.
#[derive(Debug)]
pub struct MetaChoice {
    pub meta: Meta,
    /// The other slot, if it did not verify (normal after a crash during a meta write).
    pub ignored: Option<StoreError>,
}

/// Reads both slots from the file bytes and picks the valid one with the higher `txn_id`.
pub fn choose(path: &Path, file_bytes: &[u8]) -> Result<MetaChoice> {
    let read_slot = |slot: u64| {
        let start = page_offset_bytes(slot) as usize;
        let bytes = file_bytes.get(start..start + PAGE_BYTES).unwrap_or(&[]);
        Meta::decode(bytes, slot).map_err(|detail| StoreError::Corruption {
            path: path.to_path_buf(),
            offset_bytes: start as u64,
            detail: format!("meta slot {slot}: {detail}"),
        })
    };
    match (read_slot(0), read_slot(1)) {
        (Ok(first), Ok(second)) => Ok(MetaChoice {
            meta: if second.txn_id > first.txn_id {
                second
            } else {
                first
            },
            ignored: None,
        }),
        (Ok(meta), Err(error)) | (Err(error), Ok(meta)) => Ok(MetaChoice {
            meta,
            ignored: Some(error),
        }),
        (Err(first), Err(second)) => Err(StoreError::Corruption {
            path: path.to_path_buf(),
            offset_bytes: 0,
            detail: format!("no valid meta page: {first}; {second}"),
        }),
    }
}
