//! A compact copy of one snapshot into a new file: leaves and branches packed full in key
//! order, overflow values copied into fresh runs, no free pages. Online defrag
//! ([`crate::store::Store::defragment`]) is built on it, and so can a consistent snapshot be.
//!
//! The copy is written with positioned writes, synced, then both meta slots are written (the
//! same meta, the snapshot's txn id) and synced again, and the directory is synced. A crash
//! before the end leaves a file with no valid meta, which open refuses; the original is never
//! touched.

use std::fs::{File, OpenOptions};
use std::path::Path;

use super::db::ReadTxn;
use super::error::{Result, StoreError};
use super::io::{FileWriter, PageWriter};
use super::meta::{Meta, META_SLOTS};
use super::node::{
    branch_cell_bytes, fits_inline, leaf_cell_bytes, BranchCell, LeafCell, Node, Value, BODY_BYTES,
};
use super::page::{
    overflow_pages, page_offset_bytes, seal, write_header, PageType, FIRST_TREE_PAGE, NO_PAGE,
    OVERFLOW_DATA_OFFSET, PAGE_BYTES,
};

/// Pages are gathered into writes of up to this many bytes.
const COPY_WRITE_BYTES: usize = 1 << 20;

/// What a copy wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyReport {
    pub txn_id: u64,
    pub page_count: u64,
    pub data_keys: u64,
}

/// Appends pages to the new file in page order, batching them into large writes.
struct PageAppender<'p> {
    path: &'p Path,
    writer: FileWriter,
    txn_id: u64,
    next_page: u64,
    pending: Vec<u8>,
    pending_first_page: u64,
}

impl PageAppender<'_> {
    fn io(&self, operation: &'static str) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = self.path.to_path_buf();
        move |source| StoreError::Io {
            path,
            operation,
            source,
        }
    }

    /// Reserves `pages` pages; the caller appends exactly that many bytes next.
    fn reserve(&mut self, pages: u64) -> u64 {
        let first = self.next_page;
        self.next_page += pages;
        first
    }

    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= COPY_WRITE_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let offset = page_offset_bytes(self.pending_first_page);
        self.writer
            .write_at(&self.pending, offset)
            .map_err(self.io("write copy"))?;
        self.pending_first_page += (self.pending.len() / PAGE_BYTES) as u64;
        self.pending.clear();
        Ok(())
    }

    fn write_node(&mut self, node: &Node) -> Result<u64> {
        let page_id = self.reserve(1);
        self.append(&node.encode(page_id, self.txn_id))?;
        Ok(page_id)
    }

    fn value(&mut self, key: &[u8], value: &[u8]) -> Result<Value> {
        if fits_inline(key.len(), value.len()) {
            return Ok(Value::Inline(value.to_vec()));
        }
        let pages = overflow_pages(value.len());
        let first_page = self.reserve(pages);
        let mut run = vec![0u8; pages as usize * PAGE_BYTES];
        write_header(&mut run, PageType::Overflow, 0, first_page, self.txn_id);
        run[OVERFLOW_DATA_OFFSET - 8..OVERFLOW_DATA_OFFSET]
            .copy_from_slice(&(value.len() as u64).to_le_bytes());
        run[OVERFLOW_DATA_OFFSET..OVERFLOW_DATA_OFFSET + value.len()].copy_from_slice(value);
        seal(&mut run);
        self.append(&run)?;
        Ok(Value::Overflow {
            first_page,
            value_len: value.len() as u32,
        })
    }
}

/// Builds one tree bottom-up from keys in ascending order, each node filled before the next.
#[derive(Default)]
struct TreeBuilder {
    leaf: Vec<LeafCell>,
    leaf_bytes: usize,
    /// Branch cells waiting at each level above the leaves, and their body bytes.
    levels: Vec<(Vec<BranchCell>, usize)>,
    /// Whether a node has been written at each level (leaves are level 0).
    written: Vec<bool>,
    keys: u64,
}

impl TreeBuilder {
    fn add(&mut self, out: &mut PageAppender<'_>, key: &[u8], value: &[u8]) -> Result<()> {
        let cell = LeafCell {
            key: key.to_vec(),
            value: out.value(key, value)?,
        };
        let bytes = leaf_cell_bytes(&cell);
        if !self.leaf.is_empty() && self.leaf_bytes + bytes > BODY_BYTES {
            self.flush_leaf(out)?;
        }
        self.leaf.push(cell);
        self.leaf_bytes += bytes;
        self.keys += 1;
        Ok(())
    }

    fn mark_written(&mut self, level: usize) -> bool {
        if self.written.len() <= level {
            self.written.resize(level + 1, false);
        }
        std::mem::replace(&mut self.written[level], true)
    }

    fn flush_leaf(&mut self, out: &mut PageAppender<'_>) -> Result<()> {
        let cells = std::mem::take(&mut self.leaf);
        self.leaf_bytes = 0;
        let separator = cells[0].key.clone();
        self.mark_written(0);
        let page_id = out.write_node(&Node::Leaf(cells))?;
        self.push_up(out, 0, separator, page_id)
    }

    /// Adds a child to the branch level above `child_level`.
    fn push_up(
        &mut self,
        out: &mut PageAppender<'_>,
        child_level: usize,
        key: Vec<u8>,
        child: u64,
    ) -> Result<()> {
        if self.levels.len() <= child_level {
            self.levels.resize_with(child_level + 1, Default::default);
        }
        let cell = BranchCell { key, child };
        let bytes = branch_cell_bytes(&cell);
        let (cells, used) = &self.levels[child_level];
        if !cells.is_empty() && used + bytes > BODY_BYTES {
            self.flush_branch(out, child_level)?;
        }
        let (cells, used) = &mut self.levels[child_level];
        cells.push(cell);
        *used += bytes;
        Ok(())
    }

    /// Writes the branch waiting above `child_level` and pushes it one level up.
    fn flush_branch(&mut self, out: &mut PageAppender<'_>, child_level: usize) -> Result<()> {
        let (mut cells, _) = std::mem::take(&mut self.levels[child_level]);
        let separator = cells[0].key.clone();
        if !self.mark_written(child_level + 1) {
            // The first branch of a level routes everything below its second key.
            cells[0].key.clear();
        }
        let page_id = out.write_node(&Node::Branch(cells))?;
        self.push_up(out, child_level + 1, separator, page_id)
    }

    /// Writes what is left and returns the root.
    fn finish(mut self, out: &mut PageAppender<'_>) -> Result<(u64, u64)> {
        if self.keys == 0 {
            return Ok((NO_PAGE, 0));
        }
        self.flush_leaf(out)?;
        let mut level = 0;
        loop {
            let is_top = self.levels.len() == level + 1
                && !self.written.get(level + 1).copied().unwrap_or(false);
            if is_top && self.levels[level].0.len() == 1 {
                return Ok((self.levels[level].0[0].child, self.keys));
            }
            self.flush_branch(out, level)?;
            level += 1;
        }
    }
}

/// Writes a compact copy of `read`'s snapshot to `dest`, which must not exist.
pub fn write_compact_copy(read: &ReadTxn, dest: &Path) -> Result<CopyReport> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dest)
        .map_err(|source| StoreError::Io {
            path: dest.to_path_buf(),
            operation: "create copy",
            source,
        })?;
    copy_into(read, dest, file)
}

fn copy_into(read: &ReadTxn, dest: &Path, file: File) -> Result<CopyReport> {
    let txn_id = read.txn_id();
    let mut out = PageAppender {
        path: dest,
        writer: FileWriter::new(file.try_clone().map_err(|source| StoreError::Io {
            path: dest.to_path_buf(),
            operation: "dup",
            source,
        })?),
        txn_id,
        next_page: FIRST_TREE_PAGE,
        pending: Vec::with_capacity(COPY_WRITE_BYTES + PAGE_BYTES),
        pending_first_page: FIRST_TREE_PAGE,
    };
    let mut data = TreeBuilder::default();
    for entry in read.iter(b"", None)? {
        let (key, value) = entry?;
        data.add(&mut out, key, value)?;
    }
    let (data_root, data_keys) = data.finish(&mut out)?;
    let mut meta_values = TreeBuilder::default();
    for entry in read.meta_iter()? {
        let (key, value) = entry?;
        meta_values.add(&mut out, key, value)?;
    }
    let (meta_root, _) = meta_values.finish(&mut out)?;
    out.flush()?;
    out.writer.sync_data().map_err(out.io("fdatasync copy"))?;
    let meta = Meta {
        txn_id,
        page_count: out.next_page,
        data_root,
        data_keys,
        meta_root,
        freelist_head: NO_PAGE,
        freelist_free_pages: 0,
        freelist_pages: 0,
    };
    for slot in 0..META_SLOTS {
        out.writer
            .write_at(&meta.encode(slot), page_offset_bytes(slot))
            .map_err(out.io("write copy meta"))?;
    }
    out.writer
        .sync_data()
        .map_err(out.io("fdatasync copy meta"))?;
    let directory = dest.parent().filter(|dir| !dir.as_os_str().is_empty());
    let directory = directory.unwrap_or(Path::new("."));
    File::open(directory)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| StoreError::Io {
            path: directory.to_path_buf(),
            operation: "fsync directory",
            source,
        })?;
    Ok(CopyReport {
        txn_id,
        page_count: meta.page_count,
        data_keys,
    })
}
