//! A full check of one committed state: tree shape, key order, separators, and that every
//! page below the high-water mark is exactly one of: reachable, free, or freelist chain.

use std::collections::BTreeSet;

use crate::store::freelist::{read_chain, FreeRuns};
use crate::store::meta::Meta;
use crate::store::node::{RawNode, RawValue};
use crate::store::page::{overflow_pages, PageSource, FIRST_TREE_PAGE, NO_PAGE};

struct Walk {
    pages: BTreeSet<u64>,
    leaf_depth: Option<usize>,
    keys: u64,
}

impl Walk {
    fn claim(&mut self, first: u64, count: u64) -> Result<(), String> {
        for page in first..first + count {
            if !self.pages.insert(page) {
                return Err(format!("page {page} reachable twice"));
            }
        }
        Ok(())
    }
}

fn walk(
    source: &PageSource<'_>,
    page_id: u64,
    lower: Option<&[u8]>,
    upper: Option<&[u8]>,
    depth: usize,
    walk_state: &mut Walk,
) -> Result<(), String> {
    walk_state.claim(page_id, 1)?;
    let node = RawNode::read(source, page_id).map_err(|e| e.to_string())?;
    let mut previous: Option<&[u8]> = None;
    for index in 0..node.count {
        let key = node.key(index).map_err(|e| e.to_string())?;
        if previous.is_some_and(|p| p >= key) {
            let show = |k: &[u8]| String::from_utf8_lossy(&k[..k.len().min(16)]).into_owned();
            return Err(format!(
                "page {page_id} (leaf {}, {} cells): keys out of order at {index}: {} then {}",
                node.is_leaf,
                node.count,
                show(previous.unwrap_or_default()),
                show(key)
            ));
        }
        previous = Some(key);
        let routed = !node.is_leaf && index == 0;
        let outside = lower.is_some_and(|l| key < l) || upper.is_some_and(|u| key >= u);
        if !routed && outside {
            return Err(format!(
                "page {page_id}: key {index} outside its parent's range"
            ));
        }
    }
    if node.is_leaf {
        match walk_state.leaf_depth {
            None => walk_state.leaf_depth = Some(depth),
            Some(d) if d != depth => {
                return Err(format!("leaf {page_id} at depth {depth}, not {d}"))
            }
            Some(_) => {}
        }
        for index in 0..node.count {
            let (_, value) = node.leaf_cell(index).map_err(|e| e.to_string())?;
            if let RawValue::Overflow {
                first_page,
                value_len,
            } = value
            {
                node.resolve(value).map_err(|e| e.to_string())?;
                walk_state.claim(first_page, overflow_pages(value_len as usize))?;
            }
            walk_state.keys += 1;
        }
        return Ok(());
    }
    for index in 0..node.count {
        let (key, child) = node.branch_cell(index).map_err(|e| e.to_string())?;
        let child_lower = if index == 0 { lower } else { Some(key) };
        let child_upper = if index + 1 < node.count {
            Some(node.key(index + 1).map_err(|e| e.to_string())?)
        } else {
            upper
        };
        walk(
            source,
            child,
            child_lower,
            child_upper,
            depth + 1,
            walk_state,
        )?;
    }
    Ok(())
}

/// `free` is the writer's view (reusable plus pending); it must equal the durable freelist.
pub fn check(source: &PageSource<'_>, meta: &Meta, free: &FreeRuns) -> Result<(), String> {
    let mut data = Walk {
        pages: BTreeSet::new(),
        leaf_depth: None,
        keys: 0,
    };
    if meta.data_root != NO_PAGE {
        walk(source, meta.data_root, None, None, 0, &mut data)?;
    }
    if data.keys != meta.data_keys {
        return Err(format!(
            "meta counts {} keys, tree has {}",
            meta.data_keys, data.keys
        ));
    }
    let mut all = Walk {
        pages: data.pages,
        leaf_depth: None,
        keys: 0,
    };
    if meta.meta_root != NO_PAGE {
        walk(source, meta.meta_root, None, None, 0, &mut all)?;
    }
    let (listed, chain) = read_chain(source, meta.freelist_head).map_err(|e| e.to_string())?;
    if &listed != free {
        return Err(format!(
            "durable freelist {listed:?} differs from the writer's {free:?}"
        ));
    }
    for page in chain {
        all.claim(page, 1)
            .map_err(|e| format!("freelist chain: {e}"))?;
    }
    for (start, pages) in listed.runs() {
        all.claim(start, pages)
            .map_err(|e| format!("free run: {e}"))?;
    }
    let expected: BTreeSet<u64> = (FIRST_TREE_PAGE..meta.page_count).collect();
    if all.pages != expected {
        let missing: Vec<_> = expected.difference(&all.pages).take(10).collect();
        let extra: Vec<_> = all.pages.difference(&expected).take(10).collect();
        return Err(format!(
            "pages leaked {missing:?} or beyond the high-water mark {extra:?}"
        ));
    }
    Ok(())
}
