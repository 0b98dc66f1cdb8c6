//! Copy-on-write update: builds a new tree from an old root plus sorted operations.
//!
//! The update is one recursive merge. A subtree with no operations keeps its page. A touched
//! subtree is decoded, changed, and comes back as zero or more *fresh* nodes of the same height
//! (zero when everything in it was deleted, several when it split). The parent then merges any
//! fresh child below [`MIN_FILL_BYTES`] with a neighbour (re-splitting if the pair is too big),
//! gives the fresh children pages, and is itself returned as fresh nodes. At the top, several
//! nodes get a new root above them; a root branch with one child is replaced by that child.
//! Every page the new tree no longer uses is recorded in `freed` (old readers may still need it).

use std::collections::BTreeMap;

use super::error::Result;
use super::freelist::FreeRuns;
use super::node::{fits_inline, BranchCell, LeafCell, Node, Value, BODY_BYTES, MIN_FILL_BYTES};
use super::page::{
    overflow_pages, page_offset_bytes, seal, write_header, PageSource, PageType, FIRST_TREE_PAGE,
    NO_PAGE, OVERFLOW_DATA_OFFSET, PAGE_BYTES,
};
use super::tree_read::MAX_TREE_DEPTH;

/// One operation of a batch: `Some(value)` puts, `None` deletes.
pub type Op<'o> = (&'o [u8], Option<&'o [u8]>);

/// Hands out pages: reusable free runs first, then new pages above the high-water mark.
#[derive(Clone, Debug)]
pub struct Allocator {
    pub free: FreeRuns,
    pub page_count: u64,
}

impl Allocator {
    pub fn allocate(&mut self, pages: u64) -> u64 {
        self.free.take(pages).unwrap_or_else(|| {
            let first = self.page_count;
            self.page_count += pages;
            first
        })
    }
}

/// A child of a branch being rebuilt: an untouched page or a fresh node not yet written.
enum Child {
    Page(u64),
    Fresh(Node),
}

struct Slot {
    key: Vec<u8>,
    child: Child,
}

/// The state of one commit's tree update.
pub struct TreeWriter<'a> {
    source: PageSource<'a>,
    txn_id: u64,
    pub alloc: Allocator,
    /// Nodes given a page in this commit, encoded only at the end (a node may still be taken
    /// back, e.g. when a root collapses onto it).
    nodes: BTreeMap<u64, Node>,
    /// Overflow runs written in this commit, sealed.
    overflow_runs: Vec<(u64, Vec<u8>)>,
    /// Pages of the old trees this commit no longer uses.
    pub freed: FreeRuns,
    /// Keys added minus keys removed by the last [`TreeWriter::apply`].
    pub key_delta: i64,
}

impl<'a> TreeWriter<'a> {
    pub fn new(source: PageSource<'a>, txn_id: u64, alloc: Allocator) -> TreeWriter<'a> {
        TreeWriter {
            source,
            txn_id,
            alloc,
            nodes: BTreeMap::new(),
            overflow_runs: Vec::new(),
            freed: FreeRuns::default(),
            key_delta: 0,
        }
    }

    /// Applies `ops` (sorted by key, keys unique) to the tree at `root`; returns the new root.
    pub fn apply(&mut self, root: u64, ops: &[Op<'_>]) -> Result<u64> {
        self.key_delta = 0;
        if ops.is_empty() {
            return Ok(root);
        }
        let mut level = if root == NO_PAGE {
            let cells = self.merge_leaf(Vec::new(), ops)?;
            if cells.is_empty() {
                Vec::new()
            } else {
                split(Node::Leaf(cells))
            }
        } else {
            self.apply_subtree(root, ops, 0)?
        };
        loop {
            match level.len() {
                0 => return Ok(NO_PAGE),
                1 => return self.finish_root(level.remove(0)),
                _ => {
                    let mut cells = Vec::with_capacity(level.len());
                    for (index, node) in level.into_iter().enumerate() {
                        let key = if index == 0 {
                            Vec::new()
                        } else {
                            node.first_key().to_vec()
                        };
                        cells.push(BranchCell {
                            key,
                            child: self.write_node(node),
                        });
                    }
                    level = split(Node::Branch(cells));
                }
            }
        }
    }

    /// All pages written by this commit, sorted by id, sealed.
    pub fn into_pages(self) -> (Allocator, FreeRuns, Vec<(u64, Vec<u8>)>) {
        let txn_id = self.txn_id;
        let mut pages: Vec<(u64, Vec<u8>)> = self
            .nodes
            .into_iter()
            .map(|(page_id, node)| (page_id, node.encode(page_id, txn_id)))
            .collect();
        pages.extend(self.overflow_runs);
        pages.sort_by_key(|(page_id, _)| *page_id);
        (self.alloc, self.freed, pages)
    }

    fn finish_root(&mut self, mut node: Node) -> Result<u64> {
        for _ in 0..MAX_TREE_DEPTH {
            match node {
                Node::Branch(cells) if cells.len() == 1 => {
                    node = self.take_node(Child::Page(cells[0].child))?;
                }
                other => return Ok(self.write_node(other)),
            }
        }
        Err(self
            .source
            .corruption(0, "root collapse deeper than the tree limit"))
    }

    fn write_node(&mut self, node: Node) -> u64 {
        let page_id = self.alloc.allocate(1);
        self.nodes.insert(page_id, node);
        page_id
    }

    fn free_page(&mut self, page_id: u64, pages: u64) -> Result<()> {
        let inside = page_id >= FIRST_TREE_PAGE
            && page_id
                .checked_add(pages)
                .is_some_and(|end| end <= self.source.page_count);
        if inside && self.freed.try_insert(page_id, pages) {
            Ok(())
        } else {
            Err(self.source.corruption(
                page_offset_bytes(page_id),
                "page reachable twice from the tree",
            ))
        }
    }

    /// The node behind a child, which stops being part of the tree (its page is freed).
    fn take_node(&mut self, child: Child) -> Result<Node> {
        match child {
            Child::Fresh(node) => Ok(node),
            Child::Page(page_id) => {
                if let Some(node) = self.nodes.remove(&page_id) {
                    // Written in this commit: no reader has seen it, reuse it at once.
                    self.alloc.free.insert(page_id, 1);
                    return Ok(node);
                }
                let node = Node::decode(&self.source, page_id)?;
                self.free_page(page_id, 1)?;
                Ok(node)
            }
        }
    }

    fn apply_subtree(&mut self, page_id: u64, ops: &[Op<'_>], depth: usize) -> Result<Vec<Node>> {
        if depth >= MAX_TREE_DEPTH {
            return Err(self.source.corruption(
                page_offset_bytes(page_id),
                format!("tree deeper than {MAX_TREE_DEPTH} levels (a cycle?)"),
            ));
        }
        match self.take_node(Child::Page(page_id))? {
            Node::Leaf(cells) => {
                let cells = self.merge_leaf(cells, ops)?;
                Ok(if cells.is_empty() {
                    Vec::new()
                } else {
                    split(Node::Leaf(cells))
                })
            }
            Node::Branch(cells) => {
                let mut slots = Vec::with_capacity(cells.len() + 1);
                let mut rest = ops;
                for index in 0..cells.len() {
                    let taken = match cells.get(index + 1) {
                        Some(next) => rest.partition_point(|(key, _)| *key < next.key.as_slice()),
                        None => rest.len(),
                    };
                    let (mine, after) = rest.split_at(taken);
                    rest = after;
                    let cell = &cells[index];
                    if mine.is_empty() {
                        slots.push(Slot {
                            key: cell.key.clone(),
                            child: Child::Page(cell.child),
                        });
                        continue;
                    }
                    let pieces = self.apply_subtree(cell.child, mine, depth + 1)?;
                    for (piece_index, piece) in pieces.into_iter().enumerate() {
                        let key = if piece_index == 0 {
                            cell.key.clone()
                        } else {
                            piece.first_key().to_vec()
                        };
                        slots.push(Slot {
                            key,
                            child: Child::Fresh(piece),
                        });
                    }
                }
                self.rebalance(&mut slots, page_id)?;
                if slots.is_empty() {
                    return Ok(Vec::new());
                }
                let mut cells = Vec::with_capacity(slots.len());
                for slot in slots {
                    let child = match slot.child {
                        Child::Page(child) => child,
                        Child::Fresh(node) => self.write_node(node),
                    };
                    cells.push(BranchCell {
                        key: slot.key,
                        child,
                    });
                }
                // Child 0 takes everything below key 1, so its key is only a stale lower
                // bound; clear it, or a later split of child 0 could put a smaller key after it.
                cells[0].key.clear();
                Ok(split(Node::Branch(cells)))
            }
        }
    }

    /// Merges every underfull fresh child with a neighbour until none is left (or one child).
    fn rebalance(&mut self, slots: &mut Vec<Slot>, parent_page: u64) -> Result<()> {
        let mut index = 0;
        while index < slots.len() && slots.len() > 1 {
            let underfull = matches!(&slots[index].child, Child::Fresh(node) if is_underfull(node));
            if !underfull {
                index += 1;
                continue;
            }
            let left = if index + 1 < slots.len() {
                index
            } else {
                index - 1
            };
            let right_slot = slots.remove(left + 1);
            let left_slot = slots.remove(left);
            let left_node = self.take_node(left_slot.child)?;
            let right_node = self.take_node(right_slot.child)?;
            let combined = concat(left_node, right_node, right_slot.key).ok_or_else(|| {
                self.source.corruption(
                    page_offset_bytes(parent_page),
                    "children of one branch have different heights",
                )
            })?;
            let pieces = split(combined);
            let piece_count = pieces.len();
            for (piece_index, piece) in pieces.into_iter().enumerate() {
                let key = if piece_index == 0 {
                    left_slot.key.clone()
                } else {
                    piece.first_key().to_vec()
                };
                let slot = Slot {
                    key,
                    child: Child::Fresh(piece),
                };
                slots.insert(left + piece_index, slot);
            }
            // One piece may still be underfull: look at it again. Several pieces from a split
            // are each big enough by construction of `split`.
            index = if piece_count == 1 {
                left
            } else {
                left + piece_count
            };
        }
        Ok(())
    }

    /// Merges sorted `ops` into a leaf's sorted cells.
    fn merge_leaf(&mut self, cells: Vec<LeafCell>, ops: &[Op<'_>]) -> Result<Vec<LeafCell>> {
        let mut merged = Vec::with_capacity(cells.len() + ops.len());
        let mut cells = cells.into_iter().peekable();
        for &(key, value) in ops {
            while let Some(cell) = cells.next_if(|cell| cell.key.as_slice() < key) {
                merged.push(cell);
            }
            let existing = cells.next_if(|cell| cell.key.as_slice() == key);
            if let Some(old) = &existing {
                self.free_value(&old.value)?;
            }
            match (existing.is_some(), value) {
                (true, None) => self.key_delta -= 1,
                (false, None) => {}
                (was_there, Some(value)) => {
                    if !was_there {
                        self.key_delta += 1;
                    }
                    let value = self.make_value(key, value);
                    merged.push(LeafCell {
                        key: key.to_vec(),
                        value,
                    });
                }
            }
        }
        merged.extend(cells);
        Ok(merged)
    }

    fn make_value(&mut self, key: &[u8], value: &[u8]) -> Value {
        if fits_inline(key.len(), value.len()) {
            return Value::Inline(value.to_vec());
        }
        let pages = overflow_pages(value.len());
        let first_page = self.alloc.allocate(pages);
        let mut run = vec![0u8; pages as usize * PAGE_BYTES];
        write_header(&mut run, PageType::Overflow, 0, first_page, self.txn_id);
        run[OVERFLOW_DATA_OFFSET - 8..OVERFLOW_DATA_OFFSET]
            .copy_from_slice(&(value.len() as u64).to_le_bytes());
        run[OVERFLOW_DATA_OFFSET..OVERFLOW_DATA_OFFSET + value.len()].copy_from_slice(value);
        seal(&mut run);
        self.overflow_runs.push((first_page, run));
        Value::Overflow {
            first_page,
            value_len: value.len() as u32,
        }
    }

    fn free_value(&mut self, value: &Value) -> Result<()> {
        match value {
            Value::Inline(_) => Ok(()),
            Value::Overflow {
                first_page,
                value_len,
            } => self.free_page(*first_page, overflow_pages(*value_len as usize)),
        }
    }
}

fn is_underfull(node: &Node) -> bool {
    node.used_bytes() < MIN_FILL_BYTES || matches!(node, Node::Branch(cells) if cells.len() < 2)
}

/// Joins two siblings of one height; `right_key` separates them. `None` if heights differ.
fn concat(left: Node, right: Node, right_key: Vec<u8>) -> Option<Node> {
    match (left, right) {
        (Node::Leaf(mut left), Node::Leaf(right)) => {
            left.extend(right);
            Some(Node::Leaf(left))
        }
        (Node::Branch(mut left), Node::Branch(mut right)) => {
            right[0].key = right_key;
            left.extend(right);
            Some(Node::Branch(left))
        }
        _ => None,
    }
}

/// Cuts a node into pieces that each fit a page: pages are filled in order (good for
/// appends), and a last piece under half a page is balanced with the one before it.
pub fn split(node: Node) -> Vec<Node> {
    match node {
        Node::Leaf(cells) => {
            let sizes: Vec<usize> = cells.iter().map(super::node::leaf_cell_bytes).collect();
            cut(cells, &split_points(&sizes))
                .into_iter()
                .map(Node::Leaf)
                .collect()
        }
        Node::Branch(cells) => {
            let sizes: Vec<usize> = cells.iter().map(super::node::branch_cell_bytes).collect();
            cut(cells, &split_points(&sizes))
                .into_iter()
                .map(Node::Branch)
                .collect()
        }
    }
}

fn split_points(sizes: &[usize]) -> Vec<usize> {
    let mut points = Vec::new();
    let mut piece_bytes = 0;
    for (index, &size) in sizes.iter().enumerate() {
        if piece_bytes + size > BODY_BYTES && index > 0 {
            points.push(index);
            piece_bytes = 0;
        }
        piece_bytes += size;
    }
    if let Some(&last_start) = points.last() {
        if piece_bytes < BODY_BYTES / 2 {
            let before_start = points.len().checked_sub(2).map_or(0, |at| points[at]);
            let pair = &sizes[before_start..];
            let total: usize = pair.iter().sum();
            let mut best = (usize::MAX, last_start);
            let mut left_bytes = 0;
            for (offset, &size) in pair.iter().enumerate().take(pair.len() - 1) {
                left_bytes += size;
                let larger = left_bytes.max(total - left_bytes);
                if larger < best.0 {
                    best = (larger, before_start + offset + 1);
                }
            }
            *points.last_mut().expect("points is not empty") = best.1;
        }
    }
    points
}

fn cut<T>(cells: Vec<T>, points: &[usize]) -> Vec<Vec<T>> {
    let mut pieces = Vec::with_capacity(points.len() + 1);
    let mut rest = cells;
    for &point in points.iter().rev() {
        pieces.push(rest.split_off(point));
    }
    pieces.push(rest);
    pieces.reverse();
    pieces
}
