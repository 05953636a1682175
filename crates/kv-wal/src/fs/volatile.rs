//! An in-memory file system that a test can cut the power of: afterwards it holds only what
//! was made durable, as a disk would after a power loss.
//!
//! What survives a cut, and what does not, follows POSIX as the log relies on it:
//! - a file's bytes as of its last `sync_data`; anything written since is lost (the worst
//!   case), or, with [`VolatileFileSystem::keep_unsynced_prefixes`], a random part of it
//!   written back in order, as a disk that had begun writing the file back would leave it,
//!   or, with [`VolatileFileSystem::keep_unsynced_pages`], each changed 4 KiB page kept or
//!   lost at random, out of order, as neither the kernel nor a disk cache keeps page order
//!   for unsynced data (a lost page reads as it was at the last sync: zeros past it);
//! - a directory's entries (files created, renamed or removed in it) as of its last
//!   `sync_dir`; a file that was synced but whose name never was is lost with its name.
//!
//! Directories are nodes of a tree, so renaming one moves what is in it, and a directory's
//! durable entries point at the same nodes as its live ones. The power goes before a chosen
//! changing call ([`VolatileFileSystem::cut_power_after`]); that call and every later one fail,
//! as they would in a process whose machine just died. Nothing is mapped: appends are writes.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{FileSystem, OpenMode, WalFile};

#[derive(Debug, Default)]
struct FileData {
    /// What reads see.
    live: Vec<u8>,
    /// What a power cut leaves.
    synced: Vec<u8>,
}

type File = Arc<Mutex<FileData>>;

#[derive(Debug, Clone)]
enum Node {
    File(File),
    Dir(usize),
}

#[derive(Debug, Default, Clone)]
struct Dir {
    live: BTreeMap<String, Node>,
    durable: BTreeMap<String, Node>,
}

#[derive(Debug)]
struct World {
    /// Directories by number; 0 is the root.
    dirs: Vec<Dir>,
    /// Changing calls so far.
    changes: u64,
    /// The power goes before this changing call.
    cut_at: Option<u64>,
    /// With a seed, a cut keeps a random prefix of each file's unsynced changes.
    keep_seed: Option<u64>,
    /// With the seed, a cut keeps a random set of changed pages instead of a prefix.
    out_of_order: bool,
    /// The disk as the power cut left it.
    left: Option<Vec<Dir>>,
}

impl World {
    /// Counts a changing call; fails it if the power is gone.
    fn change(&mut self) -> io::Result<()> {
        if self.left.is_none() && self.cut_at == Some(self.changes) {
            self.left = Some(self.durable_image());
        }
        if self.left.is_some() {
            return Err(io::Error::other("the power is cut"));
        }
        self.changes += 1;
        Ok(())
    }

    /// What a restart finds: each directory's durable entries, each file's synced bytes.
    fn durable_image(&self) -> Vec<Dir> {
        let mut image = vec![Dir::default(); self.dirs.len()];
        let mut random = self
            .keep_seed
            .map(|seed| seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        for (dir, new) in self.dirs.iter().zip(image.iter_mut()) {
            for (name, node) in &dir.durable {
                let node = match node {
                    Node::File(file) => {
                        let file = file.lock();
                        let left = match random.as_mut() {
                            Some(state) if self.out_of_order => pages_written_back(&file, state),
                            Some(state) => written_back(&file, xorshift(state)),
                            None => file.synced.clone(),
                        };
                        Node::File(Arc::new(Mutex::new(FileData {
                            live: left.clone(),
                            synced: left,
                        })))
                    }
                    Node::Dir(id) => Node::Dir(*id),
                };
                new.live.insert(name.clone(), node.clone());
                new.durable.insert(name.clone(), node);
            }
        }
        image
    }

    /// The directory `path` names.
    fn dir(&self, path: &Path) -> io::Result<usize> {
        let mut at = 0;
        for name in names(path)? {
            match self.dirs[at].live.get(name) {
                Some(Node::Dir(id)) => at = *id,
                Some(Node::File(_)) => return Err(io::ErrorKind::NotADirectory.into()),
                None => return Err(io::ErrorKind::NotFound.into()),
            }
        }
        Ok(at)
    }

    /// The directory holding `path`, and the name of `path` in it.
    fn parent<'p>(&self, path: &'p Path) -> io::Result<(usize, &'p str)> {
        let name = last_name(path)?;
        let parent = path.parent().ok_or(io::ErrorKind::InvalidInput)?;
        Ok((self.dir(parent)?, name))
    }
}

/// The next number of a xorshift64 generator.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// What a file holds after a cut whose disk had written back its changes in order, up to a
/// point `pick` chooses among the changed bytes (those past the last change are the same
/// either way: a point there would keep every change, and a torn write would be rare).
fn written_back(file: &FileData, pick: u64) -> Vec<u8> {
    let (synced, live) = (&file.synced, &file.live);
    let same = synced.iter().zip(live).take_while(|(a, b)| a == b).count();
    let changed_until = (same..live.len())
        .rev()
        .find(|&i| synced.get(i) != Some(&live[i]))
        .map_or(same, |i| i + 1);
    let upto = same + (pick % (changed_until - same + 1) as u64) as usize;
    let mut left = live[..upto].to_vec();
    if synced.len() > upto {
        left.extend_from_slice(&synced[upto..]);
    }
    left
}

/// The page size in which a disk writes back unsynced data.
const PAGE: usize = 4096;

/// What a file holds after a cut whose disk had written back some of its changed pages and
/// not others, in no particular order: each changed page is the live one or the synced one
/// (zeros past the synced length), at random. The file keeps its live length (the cut
/// came after the length was recorded: the worst case, a file ending in lost pages).
fn pages_written_back(file: &FileData, state: &mut u64) -> Vec<u8> {
    let (synced, live) = (&file.synced, &file.live);
    let old = |i: usize| synced.get(i).copied().unwrap_or(0);
    let mut left = live.clone();
    for start in (0..live.len()).step_by(PAGE) {
        let end = (start + PAGE).min(live.len());
        let changed = (start..end).any(|i| live[i] != old(i));
        if changed && xorshift(state) & 1 == 0 {
            for (i, byte) in left[start..end].iter_mut().enumerate() {
                *byte = old(start + i);
            }
        }
    }
    left
}

fn names(path: &Path) -> io::Result<Vec<&str>> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_str().ok_or(io::ErrorKind::InvalidInput)),
            _ => None,
        })
        .map(|name| name.map_err(io::Error::from))
        .collect()
}

fn last_name(path: &Path) -> io::Result<&str> {
    names(path)?
        .pop()
        .ok_or_else(|| io::ErrorKind::InvalidInput.into())
}

/// The file system; clones share one disk.
#[derive(Debug, Clone)]
pub struct VolatileFileSystem {
    world: Arc<Mutex<World>>,
}

impl VolatileFileSystem {
    /// An empty disk holding the directory `dir` (and its parents), durably.
    ///
    /// # Errors
    ///
    /// Never, in practice: the in-memory disk fails nothing it is not told to.
    pub fn with_dir(dir: &Path) -> io::Result<Self> {
        let fs = VolatileFileSystem::holding(vec![Dir::default()]);
        fs.create_dir_all(dir)?;
        let mut world = fs.world.lock();
        for dir in &mut world.dirs {
            dir.durable = dir.live.clone();
        }
        world.changes = 0;
        drop(world);
        Ok(fs)
    }

    /// Cuts the power before the changing call that follows `changes` more of them.
    pub fn cut_power_after(&self, changes: u64) {
        let mut world = self.world.lock();
        world.cut_at = Some(world.changes + changes);
    }

    /// Makes a power cut keep, of each file's changes since its last sync, a random prefix
    /// (in file order; `seed` picks them) instead of none.
    pub fn keep_unsynced_prefixes(&self, seed: u64) {
        let mut world = self.world.lock();
        world.keep_seed = Some(seed);
        world.out_of_order = false;
    }

    /// Makes a power cut keep, of each file's pages changed since its last sync, a random
    /// set (`seed` picks it): a later page may survive an earlier one.
    pub fn keep_unsynced_pages(&self, seed: u64) {
        let mut world = self.world.lock();
        world.keep_seed = Some(seed);
        world.out_of_order = true;
    }

    /// Changing calls made so far (writes, syncs, creations, renames, removals).
    pub fn changes(&self) -> u64 {
        self.world.lock().changes
    }

    /// Whether the power has been cut.
    pub fn is_cut(&self) -> bool {
        self.world.lock().left.is_some()
    }

    /// The disk as a restart finds it: as the power cut left it, or, if the power was never
    /// cut, as a cut now would.
    pub fn restart(&self) -> VolatileFileSystem {
        let world = self.world.lock();
        VolatileFileSystem::holding(world.left.clone().unwrap_or_else(|| world.durable_image()))
    }

    /// A disk holding `dirs` (the root first), its power on.
    fn holding(dirs: Vec<Dir>) -> Self {
        VolatileFileSystem {
            world: Arc::new(Mutex::new(World {
                dirs,
                changes: 0,
                cut_at: None,
                keep_seed: None,
                out_of_order: false,
                left: None,
            })),
        }
    }
}

/// An open file.
#[derive(Debug)]
struct VolatileFile {
    world: Arc<Mutex<World>>,
    file: File,
}

impl VolatileFile {
    /// Counts the call and applies it under the disk's lock, so that a cut by another
    /// thread's call lands before or after it, never in between.
    fn change(&self, f: impl FnOnce(&mut FileData)) -> io::Result<()> {
        let mut world = self.world.lock();
        world.change()?;
        f(&mut self.file.lock());
        drop(world);
        Ok(())
    }
}

impl WalFile for VolatileFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let file = self.file.lock();
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(file.live.len());
        let n = buf.len().min(file.live.len() - start);
        buf[..n].copy_from_slice(&file.live[start..start + n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let offset = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        self.change(|file| {
            if file.live.len() < offset + buf.len() {
                file.live.resize(offset + buf.len(), 0);
            }
            file.live[offset..offset + buf.len()].copy_from_slice(buf);
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.change(|file| file.synced = file.live.clone())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
        self.change(|file| file.live.resize(len, 0))
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.file.lock().live.len() as u64)
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
        self.change(|file| {
            if file.live.len() < len {
                file.live.resize(len, 0);
            }
        })
    }
}

impl FileSystem for VolatileFileSystem {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn WalFile>> {
        let mut world = self.world.lock();
        let (parent, name) = world.parent(path)?;
        let file = match (world.dirs[parent].live.get(name), mode) {
            (Some(Node::File(_)), OpenMode::CreateNew) => {
                return Err(io::ErrorKind::AlreadyExists.into())
            }
            (Some(Node::File(file)), _) => Arc::clone(file),
            (Some(Node::Dir(_)), _) => return Err(io::ErrorKind::IsADirectory.into()),
            (None, OpenMode::CreateNew) => {
                world.change()?;
                let file = File::default();
                world.dirs[parent]
                    .live
                    .insert(name.to_string(), Node::File(Arc::clone(&file)));
                file
            }
            (None, _) => return Err(io::ErrorKind::NotFound.into()),
        };
        Ok(Arc::new(VolatileFile {
            world: Arc::clone(&self.world),
            file,
        }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut world = self.world.lock();
        let mut at = 0;
        for name in names(path)? {
            at = match world.dirs[at].live.get(name) {
                Some(Node::Dir(id)) => *id,
                Some(Node::File(_)) => return Err(io::ErrorKind::NotADirectory.into()),
                None => {
                    world.change()?;
                    let id = world.dirs.len();
                    world.dirs.push(Dir::default());
                    world.dirs[at].live.insert(name.to_string(), Node::Dir(id));
                    id
                }
            };
        }
        Ok(())
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let world = self.world.lock();
        let dir = world.dir(path)?;
        Ok(world.dirs[dir].live.keys().cloned().collect())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut world = self.world.lock();
        let (parent, name) = world.parent(path)?;
        match world.dirs[parent].live.get(name) {
            Some(Node::File(_)) => {}
            Some(Node::Dir(_)) => return Err(io::ErrorKind::IsADirectory.into()),
            None => return Err(io::ErrorKind::NotFound.into()),
        }
        world.change()?;
        world.dirs[parent].live.remove(name);
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let mut world = self.world.lock();
        let (parent, name) = world.parent(path)?;
        match world.dirs[parent].live.get(name) {
            Some(Node::Dir(id)) if world.dirs[*id].live.is_empty() => {}
            Some(Node::Dir(_)) => return Err(io::ErrorKind::DirectoryNotEmpty.into()),
            Some(Node::File(_)) => return Err(io::ErrorKind::NotADirectory.into()),
            None => return Err(io::ErrorKind::NotFound.into()),
        }
        world.change()?;
        world.dirs[parent].live.remove(name);
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut world = self.world.lock();
        let (from_parent, from_name) = world.parent(from)?;
        let (to_parent, to_name) = world.parent(to)?;
        let node = world.dirs[from_parent]
            .live
            .get(from_name)
            .cloned()
            .ok_or(io::ErrorKind::NotFound)?;
        if let (Node::Dir(_), Some(Node::Dir(id))) =
            (&node, world.dirs[to_parent].live.get(to_name))
        {
            if !world.dirs[*id].live.is_empty() {
                return Err(io::ErrorKind::DirectoryNotEmpty.into());
            }
        }
        world.change()?;
        world.dirs[from_parent].live.remove(from_name);
        world.dirs[to_parent].live.insert(to_name.to_string(), node);
        Ok(())
    }

    /// Nothing to lock: the disk is this process's own.
    fn lock_dir(&self, _dir: &Path) -> crate::Result<Option<crate::DirLock>> {
        Ok(None)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut world = self.world.lock();
        let dir = world.dir(path)?;
        world.change()?;
        let live = world.dirs[dir].live.clone();
        world.dirs[dir].durable = live;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(fs: &VolatileFileSystem, path: &str, bytes: &[u8]) -> Arc<dyn WalFile> {
        let file = fs.open(Path::new(path), OpenMode::CreateNew).unwrap();
        file.write_all_at(bytes, 0).unwrap();
        file
    }

    fn read(fs: &VolatileFileSystem, path: &str) -> Option<Vec<u8>> {
        let file = fs.open(Path::new(path), OpenMode::Read).ok()?;
        let mut buf = vec![0; file.size().unwrap() as usize];
        file.read_at(&mut buf, 0).unwrap();
        Some(buf)
    }

    #[test]
    fn only_synced_bytes_under_synced_names_survive() {
        let fs = VolatileFileSystem::with_dir(Path::new("/d")).unwrap();
        let synced = write(&fs, "/d/a", b"one");
        synced.sync_data().unwrap();
        synced.write_all_at(b"two", 3).unwrap();
        let unsynced_name = write(&fs, "/d/b", b"b");
        fs.sync_dir(Path::new("/d")).unwrap();
        unsynced_name.sync_data().unwrap();
        write(&fs, "/d/c", b"c").sync_data().unwrap();
        let after = fs.restart();
        assert_eq!(read(&after, "/d/a").unwrap(), b"one");
        assert_eq!(
            read(&after, "/d/b").unwrap(),
            b"b",
            "named before its data was synced"
        );
        assert_eq!(read(&after, "/d/c"), None, "its name was never synced");
    }

    #[test]
    fn a_renamed_directory_takes_its_files_once_the_rename_is_synced() {
        let fs = VolatileFileSystem::with_dir(Path::new("/d")).unwrap();
        fs.create_dir_all(Path::new("/d/tmp")).unwrap();
        write(&fs, "/d/tmp/f", b"x").sync_data().unwrap();
        fs.sync_dir(Path::new("/d/tmp")).unwrap();
        fs.sync_dir(Path::new("/d")).unwrap();
        fs.rename(Path::new("/d/tmp"), Path::new("/d/done"))
            .unwrap();
        assert_eq!(read(&fs.restart(), "/d/tmp/f").unwrap(), b"x");
        fs.sync_dir(Path::new("/d")).unwrap();
        let after = fs.restart();
        assert_eq!(read(&after, "/d/done/f").unwrap(), b"x");
        assert_eq!(read(&after, "/d/tmp/f"), None);
    }

    #[test]
    fn a_cut_can_keep_part_of_what_was_not_synced_in_order() {
        let mut kept = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let fs = VolatileFileSystem::with_dir(Path::new("/d")).unwrap();
            let file = write(&fs, "/d/a", b"abc");
            fs.sync_dir(Path::new("/d")).unwrap();
            file.sync_data().unwrap();
            file.write_all_at(b"def", 3).unwrap();
            fs.keep_unsynced_prefixes(seed);
            let left = read(&fs.restart(), "/d/a").unwrap();
            assert!(b"abcdef".starts_with(&left) && left.len() >= 3, "{left:?}");
            kept.insert(left.len());
        }
        assert_eq!(
            kept.len(),
            4,
            "every length from none to all of it: {kept:?}"
        );
    }

    #[test]
    fn a_cut_can_keep_a_later_unsynced_page_and_lose_an_earlier_one() {
        let mut kept = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let fs = VolatileFileSystem::with_dir(Path::new("/d")).unwrap();
            let file = write(&fs, "/d/a", b"synced");
            fs.sync_dir(Path::new("/d")).unwrap();
            file.sync_data().unwrap();
            file.write_all_at(&[1; 3 * PAGE], 0).unwrap();
            fs.keep_unsynced_pages(seed);
            let left = read(&fs.restart(), "/d/a").unwrap();
            assert_eq!(left.len(), 3 * PAGE);
            let pages: Vec<bool> = left
                .chunks(PAGE)
                .map(|p| p.iter().all(|&b| b == 1))
                .collect();
            for (page, bytes) in left.chunks(PAGE).enumerate() {
                let lost: Vec<u8> = if page == 0 {
                    let mut old = b"synced".to_vec();
                    old.resize(PAGE, 0);
                    old
                } else {
                    vec![0; PAGE]
                };
                assert!(pages[page] || bytes == lost, "page {page} is neither");
            }
            kept.insert(pages);
        }
        assert!(
            kept.contains(&vec![false, true, false]) && kept.contains(&vec![true, false, true]),
            "later pages kept while earlier ones were lost: {kept:?}"
        );
    }

    #[test]
    fn after_the_cut_every_change_fails_and_the_disk_stays_as_it_was() {
        let fs = VolatileFileSystem::with_dir(Path::new("/d")).unwrap();
        let file = write(&fs, "/d/a", b"one");
        fs.sync_dir(Path::new("/d")).unwrap();
        file.sync_data().unwrap();
        fs.cut_power_after(1);
        file.write_all_at(b"two", 3).unwrap();
        assert!(file.sync_data().is_err(), "the power went before this sync");
        assert!(fs.is_cut());
        assert!(file.write_all_at(b"three", 6).is_err());
        assert_eq!(read(&fs.restart(), "/d/a").unwrap(), b"one");
    }
}
