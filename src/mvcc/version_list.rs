//! The versions of one key: a plain vector while there are few, a persistent vector beyond.
//!
//! Every write to a key clones its list first (the store is copy-on-write), so the
//! representation matters twice over. `imbl::Vector` clones in O(1) but allocates whole 64-slot
//! chunks (about 5 KiB for one version), which made a million single-version keys cost gigabytes;
//! a `Vec` sized exactly is a few dozen bytes plus the version, but clones in O(versions).
//! Below [`SMALL_VERSIONS_MAX`] versions the copy is cheaper than the chunk; above it (a hot key
//! between compactions) the persistent vector keeps each write O(log n).

use crate::mvcc::key_history::StoredVersion;
use imbl::Vector;

/// Longest list kept as a plain vector.
pub const SMALL_VERSIONS_MAX: usize = 16;

#[derive(Debug, Clone)]
pub enum VersionList {
    Small(Vec<StoredVersion>),
    Large(Vector<StoredVersion>),
}

impl Default for VersionList {
    fn default() -> Self {
        VersionList::Small(Vec::new())
    }
}

impl PartialEq for VersionList {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl Eq for VersionList {}

impl std::ops::Index<usize> for VersionList {
    type Output = StoredVersion;

    fn index(&self, index: usize) -> &StoredVersion {
        match self {
            VersionList::Small(versions) => &versions[index],
            VersionList::Large(versions) => &versions[index],
        }
    }
}

impl VersionList {
    pub fn len(&self) -> usize {
        match self {
            VersionList::Small(versions) => versions.len(),
            VersionList::Large(versions) => versions.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn last(&self) -> Option<&StoredVersion> {
        match self {
            VersionList::Small(versions) => versions.last(),
            VersionList::Large(versions) => versions.last(),
        }
    }

    pub fn push_back(&mut self, version: StoredVersion) {
        match self {
            VersionList::Small(versions) if versions.len() < SMALL_VERSIONS_MAX => {
                versions.reserve_exact(1);
                versions.push(version);
            }
            VersionList::Small(versions) => {
                let mut large: Vector<StoredVersion> = versions.drain(..).collect();
                large.push_back(version);
                *self = VersionList::Large(large);
            }
            VersionList::Large(versions) => versions.push_back(version),
        }
    }

    /// Keeps `[0, at)` and returns `[at, len)`, as a small list when it is short.
    pub fn split_off(&mut self, at: usize) -> VersionList {
        let tail = match self {
            VersionList::Small(versions) => VersionList::Small(versions.split_off(at)),
            VersionList::Large(versions) => VersionList::Large(versions.split_off(at)),
        };
        tail.compacted()
    }

    fn compacted(self) -> VersionList {
        match self {
            VersionList::Large(versions) if versions.len() <= SMALL_VERSIONS_MAX => {
                VersionList::Small(versions.into_iter().collect())
            }
            VersionList::Small(mut versions) => {
                versions.shrink_to_fit();
                VersionList::Small(versions)
            }
            large => large,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &StoredVersion> + '_ {
        (0..self.len()).map(move |index| &self[index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::revision::Revision;

    fn tombstone(main: i64) -> StoredVersion {
        StoredVersion::Tombstone(Revision { main, sub: 0 })
    }

    #[test]
    fn grows_into_a_persistent_vector_and_shrinks_back() {
        let mut list = VersionList::default();
        for main in 0..40 {
            list.push_back(tombstone(main));
            assert_eq!(list.len(), main as usize + 1);
            assert_eq!(list.last(), Some(&tombstone(main)));
        }
        assert!(matches!(list, VersionList::Large(_)));
        let tail = list.split_off(30);
        assert!(matches!(tail, VersionList::Small(_)));
        assert_eq!(tail.len(), 10);
        assert_eq!(tail[0], tombstone(30));
        assert_eq!(list.len(), 30);
        let mut small = VersionList::default();
        for main in 0..30 {
            small.push_back(tombstone(main));
        }
        assert_eq!(list, small, "equal whatever the representation");
        let revisions: Vec<i64> = tail.iter().map(|v| v.revision().main).collect();
        assert_eq!(revisions, (30..40).collect::<Vec<_>>());
    }
}
