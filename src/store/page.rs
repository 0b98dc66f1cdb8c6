//! Page geometry, the common page header, checksums, and verified page reads from mapped bytes.
//! This file knows nothing of keys; see the FORMAT section of the module doc.

use std::path::Path;

use super::error::{Result, StoreError};

/// Bytes per page.
pub const PAGE_BYTES: usize = 4096;
/// Bytes of the common header at the start of every page.
pub const HEADER_BYTES: usize = 24;
/// Page id that means "none" (page 0 is a meta page, never a tree page).
pub const NO_PAGE: u64 = 0;
/// Pages 0 and 1 hold the two meta slots; tree pages start here.
pub const FIRST_TREE_PAGE: u64 = 2;

/// What a page holds (byte 4 of the header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PageType {
    Meta = 1,
    Branch = 2,
    Leaf = 3,
    Overflow = 4,
    Freelist = 5,
}

impl PageType {
    pub fn from_byte(byte: u8) -> Option<PageType> {
        match byte {
            1 => Some(PageType::Meta),
            2 => Some(PageType::Branch),
            3 => Some(PageType::Leaf),
            4 => Some(PageType::Overflow),
            5 => Some(PageType::Freelist),
            _ => None,
        }
    }
}

/// The decoded common header.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    pub page_type: PageType,
    pub count: u16,
    pub page_id: u64,
    pub txn_id: u64,
}

/// Byte offset of a page in the file.
pub fn page_offset_bytes(page_id: u64) -> u64 {
    page_id * PAGE_BYTES as u64
}

/// Fills in the header (checksum left zero; [`seal`] sets it once the body is written).
pub fn write_header(buf: &mut [u8], page_type: PageType, count: u16, page_id: u64, txn_id: u64) {
    buf[0..4].fill(0);
    buf[4] = page_type as u8;
    buf[5] = 0;
    buf[6..8].copy_from_slice(&count.to_le_bytes());
    buf[8..16].copy_from_slice(&page_id.to_le_bytes());
    buf[16..24].copy_from_slice(&txn_id.to_le_bytes());
}

/// Computes the checksum over `buf[4..]` (one page or one overflow run) and stores it.
pub fn seal(buf: &mut [u8]) {
    let sum = crc32fast::hash(&buf[4..]);
    buf[0..4].copy_from_slice(&sum.to_le_bytes());
}

pub fn le_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

pub fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

pub fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// Decodes the header of a buffer at least [`HEADER_BYTES`] long; `None` for an unknown type.
pub fn read_header(buf: &[u8]) -> Option<Header> {
    Some(Header {
        page_type: PageType::from_byte(*buf.get(4)?)?,
        count: le_u16(buf, 6)?,
        page_id: le_u64(buf, 8)?,
        txn_id: le_u64(buf, 16)?,
    })
}

/// Checks the checksum of a page or run; `Err(detail)` if it does not match.
pub fn check_sum(buf: &[u8]) -> std::result::Result<(), String> {
    let stored = le_u32(buf, 0).ok_or_else(|| "page shorter than its checksum".to_string())?;
    let computed = crc32fast::hash(&buf[4..]);
    if stored != computed {
        return Err(format!(
            "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
        ));
    }
    Ok(())
}

/// Verified reads of the pages one snapshot may reach, from the mapped file bytes.
#[derive(Clone, Copy)]
pub struct PageSource<'a> {
    pub path: &'a Path,
    pub bytes: &'a [u8],
    /// Pages at or above this id do not exist in the snapshot.
    pub page_count: u64,
    /// The snapshot's commit; newer pages were written after it and must not be reached.
    pub txn_id: u64,
}

impl<'a> PageSource<'a> {
    pub fn corruption(&self, offset_bytes: u64, detail: impl Into<String>) -> StoreError {
        StoreError::Corruption {
            path: self.path.to_path_buf(),
            offset_bytes,
            detail: detail.into(),
        }
    }

    /// The bytes of `pages` pages starting at `page_id`, bounds-checked but not verified.
    fn span(&self, page_id: u64, pages: u64) -> Result<&'a [u8]> {
        let offset = page_offset_bytes(page_id);
        let in_range = page_id >= FIRST_TREE_PAGE
            && page_id
                .checked_add(pages)
                .is_some_and(|end| end <= self.page_count);
        let end = offset.checked_add(pages.saturating_mul(PAGE_BYTES as u64));
        match end {
            Some(end) if in_range && end <= self.bytes.len() as u64 => {
                Ok(&self.bytes[offset as usize..end as usize])
            }
            _ => Err(self.corruption(
                offset,
                format!(
                    "page reference {page_id} (+{pages}) outside the {} pages in use",
                    self.page_count
                ),
            )),
        }
    }

    /// Checks everything the header promises about a page or run read as `expected`.
    fn verify(&self, buf: &[u8], page_id: u64, expected: PageType) -> Result<Header> {
        let offset = page_offset_bytes(page_id);
        check_sum(buf).map_err(|detail| self.corruption(offset, detail))?;
        let header =
            read_header(buf).ok_or_else(|| self.corruption(offset, "unknown page type"))?;
        if header.page_id != page_id {
            return Err(self.corruption(
                offset,
                format!("page claims id {} but sits at id {page_id}", header.page_id),
            ));
        }
        if header.page_type != expected {
            return Err(self.corruption(
                offset,
                format!("expected a {expected:?} page, found {:?}", header.page_type),
            ));
        }
        if header.txn_id > self.txn_id {
            return Err(self.corruption(
                offset,
                format!(
                    "page written by commit {} is newer than snapshot {}",
                    header.txn_id, self.txn_id
                ),
            ));
        }
        Ok(header)
    }

    /// One verified page of the expected type, with its header.
    pub fn page(&self, page_id: u64, expected: PageType) -> Result<(Header, &'a [u8])> {
        let buf = self.span(page_id, 1)?;
        let header = self.verify(buf, page_id, expected)?;
        Ok((header, buf))
    }

    /// The value stored in the overflow run at `first_page`, verified, `value_len` bytes long.
    pub fn overflow_value(&self, first_page: u64, value_len: usize) -> Result<&'a [u8]> {
        let offset = page_offset_bytes(first_page);
        if value_len > super::node::MAX_VALUE_BYTES {
            return Err(self.corruption(offset, format!("overflow value of {value_len} bytes")));
        }
        let pages = overflow_pages(value_len);
        let run = self.span(first_page, pages)?;
        self.verify(run, first_page, PageType::Overflow)?;
        let stored_len = le_u64(run, HEADER_BYTES).unwrap_or(u64::MAX);
        if stored_len != value_len as u64 {
            return Err(self.corruption(
                offset,
                format!("overflow run holds {stored_len} bytes, leaf says {value_len}"),
            ));
        }
        Ok(&run[OVERFLOW_DATA_OFFSET..OVERFLOW_DATA_OFFSET + value_len])
    }
}

/// Where the value starts in the first page of an overflow run.
pub const OVERFLOW_DATA_OFFSET: usize = HEADER_BYTES + 8;

/// Pages an overflow run of `value_len` bytes occupies.
pub fn overflow_pages(value_len: usize) -> u64 {
    (OVERFLOW_DATA_OFFSET + value_len).div_ceil(PAGE_BYTES) as u64
}
