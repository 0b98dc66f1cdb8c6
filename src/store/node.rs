//! The byte layout of branch and leaf pages: reading cells straight from a verified page
//! ([`RawNode`]) and the owned form the writer edits and encodes ([`Node`]).

use super::error::Result;
use super::page::{
    le_u16, le_u32, le_u64, page_offset_bytes, seal, write_header, PageSource, PageType,
    HEADER_BYTES, PAGE_BYTES,
};

/// Longest key accepted; keeps at least three cells in every page.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest value accepted (stored in an overflow run when it does not fit inline).
pub const MAX_VALUE_BYTES: usize = 64 << 20;
/// A leaf cell up to this size keeps its value inline; a bigger one moves it to an overflow run.
pub const MAX_INLINE_CELL_BYTES: usize = 1024;
/// Bytes of a page available for slots and cells.
pub const BODY_BYTES: usize = PAGE_BYTES - HEADER_BYTES;
/// A node written with less than this many body bytes in use is merged with a sibling.
pub const MIN_FILL_BYTES: usize = BODY_BYTES / 4;

const SLOT_BYTES: usize = 2;
const LEAF_CELL_FIXED_BYTES: usize = 2 + 1 + 4;
const BRANCH_CELL_FIXED_BYTES: usize = 8 + 2;
const KIND_INLINE: u8 = 0;
const KIND_OVERFLOW: u8 = 1;

/// A leaf value as stored in a cell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Inline(Vec<u8>),
    Overflow { first_page: u64, value_len: u32 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafCell {
    pub key: Vec<u8>,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BranchCell {
    pub key: Vec<u8>,
    pub child: u64,
}

/// An owned node, as the writer builds it before giving it a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Leaf(Vec<LeafCell>),
    Branch(Vec<BranchCell>),
}

/// Body bytes (slot + cell) one leaf cell takes.
pub fn leaf_cell_bytes(cell: &LeafCell) -> usize {
    let value_bytes = match &cell.value {
        Value::Inline(value) => value.len(),
        Value::Overflow { .. } => 8,
    };
    SLOT_BYTES + LEAF_CELL_FIXED_BYTES + cell.key.len() + value_bytes
}

/// Body bytes (slot + cell) one branch cell takes.
pub fn branch_cell_bytes(cell: &BranchCell) -> usize {
    SLOT_BYTES + BRANCH_CELL_FIXED_BYTES + cell.key.len()
}

/// Whether a value of `value_len` bytes under `key_len` bytes of key stays inline.
pub fn fits_inline(key_len: usize, value_len: usize) -> bool {
    SLOT_BYTES + LEAF_CELL_FIXED_BYTES + key_len + value_len <= MAX_INLINE_CELL_BYTES
}

impl Node {
    pub fn len(&self) -> usize {
        match self {
            Node::Leaf(cells) => cells.len(),
            Node::Branch(cells) => cells.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Body bytes in use.
    pub fn used_bytes(&self) -> usize {
        match self {
            Node::Leaf(cells) => cells.iter().map(leaf_cell_bytes).sum(),
            Node::Branch(cells) => cells.iter().map(branch_cell_bytes).sum(),
        }
    }

    /// The node's first key (the lower bound of a split-off piece).
    pub fn first_key(&self) -> &[u8] {
        match self {
            Node::Leaf(cells) => &cells[0].key,
            Node::Branch(cells) => &cells[0].key,
        }
    }

    /// Encodes into one sealed page. The caller guarantees the node fits.
    pub fn encode(&self, page_id: u64, txn_id: u64) -> Vec<u8> {
        let used = self.used_bytes();
        assert!(
            used <= BODY_BYTES,
            "node of {used} body bytes does not fit a page"
        );
        assert!(!self.is_empty(), "empty nodes are never written");
        let mut buf = vec![0u8; PAGE_BYTES];
        let (page_type, count) = match self {
            Node::Leaf(cells) => (PageType::Leaf, cells.len()),
            Node::Branch(cells) => (PageType::Branch, cells.len()),
        };
        write_header(&mut buf, page_type, count as u16, page_id, txn_id);
        let mut end = PAGE_BYTES;
        for index in 0..count {
            let cell = self.encode_cell(index);
            end -= cell.len();
            buf[end..end + cell.len()].copy_from_slice(&cell);
            let slot = HEADER_BYTES + index * SLOT_BYTES;
            buf[slot..slot + 2].copy_from_slice(&(end as u16).to_le_bytes());
        }
        assert!(end >= HEADER_BYTES + count * SLOT_BYTES);
        seal(&mut buf);
        buf
    }

    fn encode_cell(&self, index: usize) -> Vec<u8> {
        let mut cell = Vec::new();
        match self {
            Node::Leaf(cells) => {
                let LeafCell { key, value } = &cells[index];
                cell.extend_from_slice(&(key.len() as u16).to_le_bytes());
                match value {
                    Value::Inline(bytes) => {
                        cell.push(KIND_INLINE);
                        cell.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                        cell.extend_from_slice(key);
                        cell.extend_from_slice(bytes);
                    }
                    Value::Overflow {
                        first_page,
                        value_len,
                    } => {
                        cell.push(KIND_OVERFLOW);
                        cell.extend_from_slice(&value_len.to_le_bytes());
                        cell.extend_from_slice(key);
                        cell.extend_from_slice(&first_page.to_le_bytes());
                    }
                }
            }
            Node::Branch(cells) => {
                let BranchCell { key, child } = &cells[index];
                cell.extend_from_slice(&child.to_le_bytes());
                cell.extend_from_slice(&(key.len() as u16).to_le_bytes());
                cell.extend_from_slice(key);
            }
        }
        cell
    }

    /// Reads a branch or leaf page into owned form.
    pub fn decode(source: &PageSource<'_>, page_id: u64) -> Result<Node> {
        let raw = RawNode::read(source, page_id)?;
        if raw.is_leaf {
            let mut cells = Vec::with_capacity(raw.count);
            for index in 0..raw.count {
                let (key, value) = raw.leaf_cell(index)?;
                let value = match value {
                    RawValue::Inline(bytes) => Value::Inline(bytes.to_vec()),
                    RawValue::Overflow {
                        first_page,
                        value_len,
                    } => Value::Overflow {
                        first_page,
                        value_len,
                    },
                };
                cells.push(LeafCell {
                    key: key.to_vec(),
                    value,
                });
            }
            Ok(Node::Leaf(cells))
        } else {
            let mut cells = Vec::with_capacity(raw.count);
            for index in 0..raw.count {
                let (key, child) = raw.branch_cell(index)?;
                cells.push(BranchCell {
                    key: key.to_vec(),
                    child,
                });
            }
            Ok(Node::Branch(cells))
        }
    }
}

/// A leaf value read in place.
#[derive(Clone, Copy, Debug)]
pub enum RawValue<'a> {
    Inline(&'a [u8]),
    Overflow { first_page: u64, value_len: u32 },
}

/// A verified branch or leaf page, read in place; every accessor bounds-checks.
#[derive(Clone, Copy)]
pub struct RawNode<'a> {
    pub source: PageSource<'a>,
    pub page_id: u64,
    pub bytes: &'a [u8],
    pub count: usize,
    pub is_leaf: bool,
}

impl<'a> RawNode<'a> {
    /// Reads and verifies a branch or leaf page.
    pub fn read(source: &PageSource<'a>, page_id: u64) -> Result<RawNode<'a>> {
        // The type byte decides which check applies; verification then insists on it.
        let peek_type = source
            .bytes
            .get(page_offset_bytes(page_id) as usize + 4)
            .copied()
            .and_then(PageType::from_byte);
        let expected = match peek_type {
            Some(PageType::Leaf) => PageType::Leaf,
            _ => PageType::Branch,
        };
        let (header, bytes) = source.page(page_id, expected)?;
        let count = header.count as usize;
        let node = RawNode {
            source: *source,
            page_id,
            bytes,
            count,
            is_leaf: expected == PageType::Leaf,
        };
        if count == 0 || HEADER_BYTES + count * SLOT_BYTES > PAGE_BYTES {
            return Err(node.corrupt(0, format!("cell count {count} impossible")));
        }
        Ok(node)
    }

    fn corrupt(&self, within_page: usize, detail: impl Into<String>) -> super::StoreError {
        self.source
            .corruption(page_offset_bytes(self.page_id) + within_page as u64, detail)
    }

    fn cell_start(&self, index: usize) -> Result<usize> {
        let slot = HEADER_BYTES + index * SLOT_BYTES;
        let start = le_u16(self.bytes, slot).map(usize::from);
        match start {
            Some(start) if start >= HEADER_BYTES + self.count * SLOT_BYTES => Ok(start),
            _ => Err(self.corrupt(slot, format!("cell {index} offset out of bounds"))),
        }
    }

    fn field<T>(&self, at: usize, value: Option<T>) -> Result<T> {
        value.ok_or_else(|| self.corrupt(at, "cell runs past the end of the page"))
    }

    fn slice(&self, at: usize, len: usize) -> Result<&'a [u8]> {
        let bytes = at.checked_add(len).and_then(|end| self.bytes.get(at..end));
        self.field(at, bytes)
    }

    /// The key of cell `index` (branch or leaf).
    pub fn key(&self, index: usize) -> Result<&'a [u8]> {
        let start = self.cell_start(index)?;
        if self.is_leaf {
            let key_len = self.key_len(start)?;
            self.slice(start + LEAF_CELL_FIXED_BYTES, key_len)
        } else {
            let key_len = self.key_len(start + 8)?;
            self.slice(start + BRANCH_CELL_FIXED_BYTES, key_len)
        }
    }

    /// Keys longer than [`MAX_KEY_BYTES`] are never written; such a length is corruption.
    fn key_len(&self, at: usize) -> Result<usize> {
        let key_len = self.field(at, le_u16(self.bytes, at))? as usize;
        if key_len > MAX_KEY_BYTES {
            return Err(self.corrupt(at, format!("key length {key_len}")));
        }
        Ok(key_len)
    }

    pub fn branch_cell(&self, index: usize) -> Result<(&'a [u8], u64)> {
        assert!(!self.is_leaf);
        let start = self.cell_start(index)?;
        let child = self.field(start, le_u64(self.bytes, start))?;
        Ok((self.key(index)?, child))
    }

    pub fn leaf_cell(&self, index: usize) -> Result<(&'a [u8], RawValue<'a>)> {
        assert!(self.is_leaf);
        let start = self.cell_start(index)?;
        let key_len = self.key_len(start)?;
        let kind = self.field(start, self.bytes.get(start + 2).copied())?;
        let value_len = self.field(start, le_u32(self.bytes, start + 3))?;
        let key = self.slice(start + LEAF_CELL_FIXED_BYTES, key_len)?;
        let value_at = start + LEAF_CELL_FIXED_BYTES + key_len;
        let value = match kind {
            KIND_INLINE if fits_inline(key_len, value_len as usize) => {
                RawValue::Inline(self.slice(value_at, value_len as usize)?)
            }
            KIND_OVERFLOW if value_len as usize <= MAX_VALUE_BYTES => RawValue::Overflow {
                first_page: self.field(value_at, le_u64(self.bytes, value_at))?,
                value_len,
            },
            other => {
                return Err(self.corrupt(
                    start,
                    format!("bad value kind {other} or length {value_len}"),
                ))
            }
        };
        Ok((key, value))
    }

    /// Binary search over the cells' keys, like `slice::binary_search`.
    pub fn search(&self, key: &[u8]) -> Result<std::result::Result<usize, usize>> {
        let (mut low, mut high) = (0, self.count);
        while low < high {
            let mid = low + (high - low) / 2;
            match self.key(mid)?.cmp(key) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Ok(Ok(mid)),
            }
        }
        Ok(Err(low))
    }

    /// The child of a branch that covers `key`.
    pub fn child_index_for(&self, key: &[u8]) -> Result<usize> {
        Ok(match self.search(key)? {
            Ok(index) => index,
            Err(0) => 0,
            Err(index) => index - 1,
        })
    }

    /// The bytes of a leaf value, following an overflow reference.
    pub fn resolve(&self, value: RawValue<'a>) -> Result<&'a [u8]> {
        match value {
            RawValue::Inline(bytes) => Ok(bytes),
            RawValue::Overflow {
                first_page,
                value_len,
            } => self.source.overflow_value(first_page, value_len as usize),
        }
    }
}
