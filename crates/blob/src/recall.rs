//! The recall cache: cold blobs brought back to disk for reading, `recall/<shard>/<hash>`,
//! bounded in bytes and emptied least recently used first.
//!
//! Readers open paths, so a recalled blob must be a file; what the cache adds is the bound.
//! It remembers its files in memory (rebuilt from the directory at start, oldest first by
//! modification time) and evicts whenever a recall takes it over budget. A reader that
//! opened a file before its eviction keeps reading it: unlinking does not close it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use renkei_domain::model::BlobHash;

use crate::BlobError;

#[derive(Debug)]
pub(crate) struct RecallCache {
    dir: PathBuf,
    budget: u64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Hash → (size, last use).
    entries: HashMap<String, (u64, u64)>,
    total: u64,
    clock: u64,
}

impl RecallCache {
    /// Opens the cache under `data_dir`, creating its directories and counting what is there.
    pub(crate) fn open(data_dir: &Path, budget: u64) -> Result<Self, BlobError> {
        let dir = data_dir.join("recall");
        let mut found = Vec::new();
        for shard in 0..=255u8 {
            let shard = dir.join(format!("{shard:02x}"));
            std::fs::create_dir_all(&shard)?;
            for entry in std::fs::read_dir(&shard)? {
                let entry = entry?;
                let metadata = entry.metadata()?;
                let name = entry.file_name().to_string_lossy().into_owned();
                found.push((metadata.modified()?, name, metadata.len()));
            }
        }
        found.sort();
        let mut state = State::default();
        for (_, name, size) in found {
            state.clock += 1;
            state.total += size;
            state.entries.insert(name, (size, state.clock));
        }
        let cache = Self { dir, budget, state: Mutex::new(state) };
        cache.evict();
        Ok(cache)
    }

    pub(crate) fn path(&self, hash: &BlobHash) -> PathBuf {
        self.dir.join(hash.0.get(..2).unwrap_or("00")).join(&hash.0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Marks a cached blob as just used; false if the cache does not hold it.
    pub(crate) fn touch(&self, hash: &BlobHash) -> bool {
        let mut state = self.lock();
        state.clock += 1;
        let clock = state.clock;
        match state.entries.get_mut(&hash.0) {
            Some(entry) => {
                entry.1 = clock;
                true
            }
            None => false,
        }
    }

    /// Counts a blob just recalled, then evicts down to the budget. The new blob itself is
    /// kept even when it alone exceeds the budget: its reader is about to open it.
    pub(crate) fn add(&self, hash: &BlobHash, size: u64) {
        {
            let mut state = self.lock();
            state.clock += 1;
            let clock = state.clock;
            if let Some((old, _)) = state.entries.insert(hash.0.clone(), (size, clock)) {
                state.total -= old;
            }
            state.total += size;
        }
        self.evict();
    }

    /// Bytes held.
    #[cfg(test)]
    fn total(&self) -> u64 {
        self.lock().total
    }

    /// Removes least recently used blobs until the cache fits its budget, sparing the one
    /// used last.
    fn evict(&self) {
        let victims: Vec<String> = {
            let mut state = self.lock();
            if state.total <= self.budget {
                return;
            }
            let mut by_age: Vec<(u64, String, u64)> =
                state.entries.iter().map(|(hash, (size, used))| (*used, hash.clone(), *size)).collect();
            by_age.sort();
            by_age.pop();
            let mut victims = Vec::new();
            for (_, hash, size) in by_age {
                if state.total <= self.budget {
                    break;
                }
                state.entries.remove(&hash);
                state.total -= size;
                victims.push(hash);
            }
            victims
        };
        for hash in victims {
            let path = self.path(&BlobHash(hash));
            if let Err(error) = std::fs::remove_file(&path)
                && error.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(%error, "cannot evict a recalled blob");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u8) -> BlobHash {
        BlobHash(format!("{n:02x}").repeat(32))
    }

    fn put(cache: &RecallCache, n: u8, size: usize) {
        std::fs::write(cache.path(&hash(n)), vec![n; size]).expect("write");
        cache.add(&hash(n), size as u64);
    }

    #[test]
    fn least_recently_used_blobs_go_first_and_the_budget_holds() {
        let dir = tempfile::tempdir().expect("dir");
        let cache = RecallCache::open(dir.path(), 300).expect("open");
        put(&cache, 1, 100);
        put(&cache, 2, 100);
        put(&cache, 3, 100);
        assert!(cache.touch(&hash(1)), "1 is used again");
        put(&cache, 4, 100);
        assert!(!cache.path(&hash(2)).exists(), "2 was least recently used");
        for kept in [1, 3, 4] {
            assert!(cache.path(&hash(kept)).exists(), "{kept} kept");
        }
        assert_eq!(cache.total(), 300);
        // Reopening counts what is on disk.
        drop(cache);
        assert_eq!(RecallCache::open(dir.path(), 300).expect("reopen").total(), 300);
    }

    #[test]
    fn a_blob_larger_than_the_budget_stays_until_the_next_recall() {
        let dir = tempfile::tempdir().expect("dir");
        let cache = RecallCache::open(dir.path(), 50).expect("open");
        put(&cache, 1, 100);
        assert!(cache.path(&hash(1)).exists());
        put(&cache, 2, 10);
        assert!(!cache.path(&hash(1)).exists());
        assert_eq!(cache.total(), 10);
    }
}
