//! Free pages as runs of contiguous page ids, and their on-disk chain of freelist pages.

use std::collections::BTreeMap;

use super::error::Result as StoreResult;
use super::page::{
    le_u64, page_offset_bytes, seal, write_header, PageSource, PageType, FIRST_TREE_PAGE,
    HEADER_BYTES, NO_PAGE, PAGE_BYTES,
};

const NEXT_OFFSET: usize = HEADER_BYTES;
const RUNS_OFFSET: usize = HEADER_BYTES + 8;
const RUN_BYTES: usize = 16;
/// Runs one freelist page holds.
pub const RUNS_PER_PAGE: usize = (PAGE_BYTES - RUNS_OFFSET) / RUN_BYTES;

/// A set of page ids kept as non-overlapping, non-adjacent runs `start -> page_count`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FreeRuns {
    runs: BTreeMap<u64, u64>,
    total_pages: u64,
}

impl FreeRuns {
    pub fn total_pages(&self) -> u64 {
        self.total_pages
    }

    pub fn run_count(&self) -> usize {
        self.runs.len()
    }

    pub fn runs(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.runs.iter().map(|(&start, &pages)| (start, pages))
    }

    pub fn overlaps(&self, start: u64, pages: u64) -> bool {
        let before = self.runs.range(..=start).next_back();
        let after = self.runs.range(start..).next();
        before.is_some_and(|(&s, &n)| s + n > start)
            || after.is_some_and(|(&s, _)| s < start + pages)
    }

    /// Adds a run; `false` (and no change) if any of it is already free.
    pub fn try_insert(&mut self, start: u64, pages: u64) -> bool {
        if pages == 0 {
            return true;
        }
        if self.overlaps(start, pages) {
            return false;
        }
        let added_pages = pages;
        let (mut start, mut pages) = (start, pages);
        if let Some((&before, &before_pages)) = self.runs.range(..start).next_back() {
            if before + before_pages == start {
                self.runs.remove(&before);
                start = before;
                pages += before_pages;
            }
        }
        if let Some(after_pages) = self.runs.remove(&(start + pages)) {
            pages += after_pages;
        }
        self.runs.insert(start, pages);
        self.total_pages += added_pages;
        true
    }

    /// Adds a run that the caller knows is not free yet (a double free is a bug).
    pub fn insert(&mut self, start: u64, pages: u64) {
        assert!(
            self.try_insert(start, pages),
            "page run {start}+{pages} freed twice"
        );
    }

    /// Adds every run of `other`; `Err(run)` at the first run already (partly) free, which
    /// means a page was both free and in use: corruption of the file, not a bug here.
    pub fn try_insert_all(&mut self, other: &FreeRuns) -> Result<(), (u64, u64)> {
        for (start, pages) in other.runs() {
            if !self.try_insert(start, pages) {
                return Err((start, pages));
            }
        }
        Ok(())
    }

    /// Takes `pages` contiguous pages from the lowest run long enough (first fit).
    pub fn take(&mut self, pages: u64) -> Option<u64> {
        let (&start, &run_pages) = self.runs.iter().find(|(_, &run)| run >= pages)?;
        self.runs.remove(&start);
        if run_pages > pages {
            self.runs.insert(start + pages, run_pages - pages);
        }
        self.total_pages -= pages;
        Some(start)
    }

    /// Removes and returns the length of the run ending exactly at `end`, if any.
    pub fn take_run_ending_at(&mut self, end: u64) -> Option<(u64, u64)> {
        let (&start, &pages) = self.runs.range(..end).next_back()?;
        if start + pages != end {
            return None;
        }
        self.runs.remove(&start);
        self.total_pages -= pages;
        Some((start, pages))
    }
}

/// Pages a chain listing `run_count` runs needs.
pub fn chain_pages_for(run_count: usize) -> usize {
    run_count.div_ceil(RUNS_PER_PAGE)
}

/// Encodes `runs` into the chain pages `chain` (in order), sealed, as `(page_id, bytes)`.
/// The chain may have more pages than needed; the extra ones list no runs.
pub fn encode_chain(runs: &FreeRuns, chain: &[u64], txn_id: u64) -> Vec<(u64, Vec<u8>)> {
    assert!(chain.len() >= chain_pages_for(runs.run_count()));
    let all: Vec<(u64, u64)> = runs.runs().collect();
    let mut pieces = all.chunks(RUNS_PER_PAGE);
    let mut pages = Vec::with_capacity(chain.len());
    for (index, &page_id) in chain.iter().enumerate() {
        let listed = pieces.next().unwrap_or(&[]);
        let mut buf = vec![0u8; PAGE_BYTES];
        write_header(
            &mut buf,
            PageType::Freelist,
            listed.len() as u16,
            page_id,
            txn_id,
        );
        let next = chain.get(index + 1).copied().unwrap_or(NO_PAGE);
        buf[NEXT_OFFSET..NEXT_OFFSET + 8].copy_from_slice(&next.to_le_bytes());
        for (slot, (start, run_pages)) in listed.iter().enumerate() {
            let at = RUNS_OFFSET + slot * RUN_BYTES;
            buf[at..at + 8].copy_from_slice(&start.to_le_bytes());
            buf[at + 8..at + 16].copy_from_slice(&run_pages.to_le_bytes());
        }
        seal(&mut buf);
        pages.push((page_id, buf));
    }
    pages
}

/// Reads the chain starting at `head`: the free runs it lists and the chain's own pages.
/// Every run must lie inside the snapshot's pages and not overlap another.
pub fn read_chain(source: &PageSource<'_>, head: u64) -> StoreResult<(FreeRuns, Vec<u64>)> {
    let mut runs = FreeRuns::default();
    let mut chain = Vec::new();
    let mut page_id = head;
    while page_id != NO_PAGE {
        let offset = page_offset_bytes(page_id);
        if chain.len() as u64 >= source.page_count {
            return Err(source.corruption(offset, "freelist chain loops"));
        }
        let (header, buf) = source.page(page_id, PageType::Freelist)?;
        let count = header.count as usize;
        if count > RUNS_PER_PAGE {
            return Err(source.corruption(offset, format!("freelist page lists {count} runs")));
        }
        for slot in 0..count {
            let at = RUNS_OFFSET + slot * RUN_BYTES;
            let (start, pages) = (
                le_u64(buf, at).unwrap_or(0),
                le_u64(buf, at + 8).unwrap_or(0),
            );
            let inside = start >= FIRST_TREE_PAGE
                && start
                    .checked_add(pages)
                    .is_some_and(|end| end <= source.page_count);
            if !inside || !runs.try_insert(start, pages) {
                return Err(source.corruption(
                    offset + at as u64,
                    format!("free run {start}+{pages} is out of bounds or listed twice"),
                ));
            }
        }
        chain.push(page_id);
        page_id = le_u64(buf, NEXT_OFFSET).unwrap_or(NO_PAGE);
    }
    let mut chain_set = FreeRuns::default();
    for &page in &chain {
        if !chain_set.try_insert(page, 1) || runs.overlaps(page, 1) {
            return Err(source.corruption(
                page_offset_bytes(page),
                "freelist page is listed as free or twice in the chain",
            ));
        }
    }
    Ok((runs, chain))
}
