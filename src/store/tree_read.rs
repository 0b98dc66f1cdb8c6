//! Reading one snapshot's tree: point lookups and ordered range iteration, zero-copy from the
//! mapped file. Every page is verified as it is entered.

use super::error::Result;
use super::node::RawNode;
use super::page::{page_offset_bytes, PageSource, NO_PAGE};

/// Deeper than this is a corrupt (cyclic) tree: a 4 KiB-page tree of 2^64 keys is far shallower.
pub const MAX_TREE_DEPTH: usize = 32;

fn too_deep(source: &PageSource<'_>, page_id: u64) -> super::StoreError {
    source.corruption(
        page_offset_bytes(page_id),
        format!("tree deeper than {MAX_TREE_DEPTH} levels (a cycle?)"),
    )
}

/// The value stored under `key`, if any.
pub fn get<'a>(source: &PageSource<'a>, root: u64, key: &[u8]) -> Result<Option<&'a [u8]>> {
    if root == NO_PAGE {
        return Ok(None);
    }
    let mut node = RawNode::read(source, root)?;
    for _ in 0..MAX_TREE_DEPTH {
        if node.is_leaf {
            return match node.search(key)? {
                Ok(index) => {
                    let (_, value) = node.leaf_cell(index)?;
                    Ok(Some(node.resolve(value)?))
                }
                Err(_) => Ok(None),
            };
        }
        let (_, child) = node.branch_cell(node.child_index_for(key)?)?;
        node = RawNode::read(source, child)?;
    }
    Err(too_deep(source, node.page_id))
}

/// Ascending iteration over `[start, end)` (`end` `None`: to the last key).
pub struct RangeIter<'a> {
    source: PageSource<'a>,
    /// Path from the root: each node and the index of the cell being visited.
    stack: Vec<(RawNode<'a>, usize)>,
    end: Option<Vec<u8>>,
    /// The last key returned; keys must come out strictly ascending or the tree is corrupt.
    last_key: Option<&'a [u8]>,
    failed: bool,
}

impl<'a> RangeIter<'a> {
    pub fn new(
        source: PageSource<'a>,
        root: u64,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Result<RangeIter<'a>> {
        let mut iter = RangeIter {
            source,
            stack: Vec::new(),
            end: end.map(<[u8]>::to_vec),
            last_key: None,
            failed: false,
        };
        if root == NO_PAGE {
            return Ok(iter);
        }
        let mut node = RawNode::read(&source, root)?;
        loop {
            if iter.stack.len() >= MAX_TREE_DEPTH {
                return Err(too_deep(&source, node.page_id));
            }
            if node.is_leaf {
                let index = match node.search(start)? {
                    Ok(index) | Err(index) => index,
                };
                iter.stack.push((node, index));
                return Ok(iter);
            }
            let index = node.child_index_for(start)?;
            let (_, child) = node.branch_cell(index)?;
            iter.stack.push((node, index));
            node = RawNode::read(&source, child)?;
        }
    }

    /// Moves to the leftmost leaf of the next subtree once the current leaf is exhausted.
    /// Returns `false` at the end of the tree.
    fn advance_leaf(&mut self) -> Result<bool> {
        loop {
            self.stack.pop();
            let Some((parent, index)) = self.stack.last_mut() else {
                return Ok(false);
            };
            *index += 1;
            if *index < parent.count {
                let (_, child) = parent.branch_cell(*index)?;
                return self.descend_leftmost(child).map(|()| true);
            }
        }
    }

    fn descend_leftmost(&mut self, page_id: u64) -> Result<()> {
        let mut node = RawNode::read(&self.source, page_id)?;
        loop {
            if self.stack.len() >= MAX_TREE_DEPTH {
                return Err(too_deep(&self.source, node.page_id));
            }
            self.stack.push((node, 0));
            if node.is_leaf {
                return Ok(());
            }
            let (_, child) = node.branch_cell(0)?;
            node = RawNode::read(&self.source, child)?;
        }
    }

    fn next_entry(&mut self) -> Result<Option<(&'a [u8], &'a [u8])>> {
        loop {
            let Some(&(leaf, index)) = self.stack.last() else {
                return Ok(None);
            };
            if index >= leaf.count {
                if !self.advance_leaf()? {
                    self.stack.clear();
                    return Ok(None);
                }
                continue;
            }
            let (key, value) = leaf.leaf_cell(index)?;
            if self.end.as_deref().is_some_and(|end| key >= end) {
                self.stack.clear();
                return Ok(None);
            }
            if self.last_key.is_some_and(|last| key <= last) {
                return Err(leaf.source.corruption(
                    page_offset_bytes(leaf.page_id),
                    "keys out of order across the tree",
                ));
            }
            self.last_key = Some(key);
            if let Some(last) = self.stack.last_mut() {
                last.1 += 1;
            }
            return Ok(Some((key, leaf.resolve(value)?)));
        }
    }
}

impl<'a> Iterator for RangeIter<'a> {
    type Item = Result<(&'a [u8], &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.next_entry() {
            Ok(entry) => entry.map(Ok),
            Err(error) => {
                self.failed = true;
                Some(Err(error))
            }
        }
    }
}
