//! The sequencing log: append-only segment files in which every entry is
//! durably given its index before anyone is told it.
//!
//! Segment `seq/<first index, 20 digits>.wal` starts with [`MAGIC`] and holds
//! records `u32 len ‖ u32 crc32(payload) ‖ payload`, where payload is
//! `u32 entry_len ‖ entry ‖ u32 n ‖ (u32 len ‖ body)*`. Record k of a segment
//! is the entry at index `first + k`. A record is acknowledged only after the
//! write that holds it was `fdatasync`'d, so a torn or corrupt record can only
//! be at the tail of the last segment and was never acknowledged: recovery
//! truncates it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::ledger::LedgerError;

/// First bytes of every segment.
pub const MAGIC: &[u8; 8] = b"TALLYWL1";
/// A segment is closed and a new one started beyond this size.
pub const SEGMENT_BYTES: u64 = 64 << 20;

/// One sequenced entry and the bodies stored with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The entry (leaf data).
    pub entry: Vec<u8>,
    /// Bodies the entry points to, stored by digest on publication.
    pub bodies: Vec<Vec<u8>>,
}

/// Encodes a record, appending to `out`.
pub fn encode(rec: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&(rec.entry.len() as u32).to_le_bytes());
    out.extend_from_slice(&rec.entry);
    out.extend_from_slice(&(rec.bodies.len() as u32).to_le_bytes());
    for b in &rec.bodies {
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    }
    let payload_len = (out.len() - start - 8) as u32;
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&payload_len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn take_u32(p: &[u8], at: &mut usize) -> Option<u32> {
    let b = p.get(*at..*at + 4)?;
    *at += 4;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn decode_payload(p: &[u8]) -> Option<Record> {
    let mut at = 0;
    let n = take_u32(p, &mut at)? as usize;
    let entry = p.get(at..at + n)?.to_vec();
    at += n;
    let count = take_u32(p, &mut at)? as usize;
    let mut bodies = Vec::with_capacity(count.min(16));
    for _ in 0..count {
        let n = take_u32(p, &mut at)? as usize;
        bodies.push(p.get(at..at + n)?.to_vec());
        at += n;
    }
    (at == p.len()).then_some(Record { entry, bodies })
}

/// Path of the segment starting at `first`.
pub fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.wal"))
}

/// The segments in `dir`, sorted by first index.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LedgerError> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(LedgerError::io("listing the sequencing log"))? {
        let e = e.map_err(LedgerError::io("listing the sequencing log"))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".wal") else {
            continue;
        };
        let Ok(first) = stem.parse::<u64>() else { continue };
        if stem.len() == 20 {
            out.push((first, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// What recovery found in the sequencing log.
#[derive(Debug, Default)]
pub struct Replay {
    /// Index of the first record read (the first segment's start).
    pub first: u64,
    /// The records, in index order from `first`.
    pub records: Vec<Record>,
    /// Bytes cut from a torn tail, if any.
    pub truncated_bytes: u64,
}

/// Reads every segment, truncating a torn tail of the last one. Records
/// below `skip_below` are checked for presence but not returned.
pub fn replay(dir: &Path, skip_below: u64) -> Result<Replay, LedgerError> {
    let segs = list_segments(dir)?;
    let mut out = Replay {
        first: skip_below,
        ..Replay::default()
    };
    let mut next: Option<u64> = None;
    for (i, (first, path)) in segs.iter().enumerate() {
        if let Some(n) = next {
            if *first != n {
                return Err(LedgerError::Corrupt(format!(
                    "sequencing log segment {} starts at index {first}, but the previous one ends at {n}",
                    path.display()
                )));
            }
        }
        let last = i + 1 == segs.len();
        let mut f = OpenOptions::new()
            .read(true)
            .write(last)
            .open(path)
            .map_err(LedgerError::io("opening a sequencing log segment"))?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)
            .map_err(LedgerError::io("reading a sequencing log segment"))?;
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            if last && bytes.len() < MAGIC.len() && MAGIC.starts_with(&bytes) {
                // A segment created but never written to: torn header.
                f.set_len(0)
                    .map_err(LedgerError::io("truncating a torn segment"))?;
                f.write_all(MAGIC)
                    .map_err(LedgerError::io("rewriting a segment header"))?;
                f.sync_all().map_err(LedgerError::io("syncing a segment"))?;
                next = Some(*first);
                continue;
            }
            return Err(LedgerError::Corrupt(format!(
                "{} is not a sequencing log segment",
                path.display()
            )));
        }
        let mut at = MAGIC.len();
        let mut index = *first;
        while at < bytes.len() {
            let torn = || {
                if last {
                    Ok(())
                } else {
                    Err(LedgerError::Corrupt(format!(
                        "sequencing log segment {} is damaged at byte {at} (not its last segment)",
                        path.display()
                    )))
                }
            };
            let Some(h) = bytes.get(at..at + 8) else {
                torn()?;
                break;
            };
            let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
            let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
            let Some(payload) = bytes.get(at + 8..at + 8 + len) else {
                torn()?;
                break;
            };
            if crc32fast::hash(payload) != crc {
                torn()?;
                break;
            }
            let Some(rec) = decode_payload(payload) else {
                torn()?;
                break;
            };
            if index >= skip_below {
                if out.records.is_empty() {
                    out.first = index;
                }
                out.records.push(rec);
            }
            index += 1;
            at += 8 + len;
        }
        if at < bytes.len() {
            out.truncated_bytes = (bytes.len() - at) as u64;
            f.set_len(at as u64)
                .map_err(LedgerError::io("truncating a torn record"))?;
            f.sync_all()
                .map_err(LedgerError::io("syncing a truncated segment"))?;
        }
        next = Some(index);
    }
    if let Some(n) = next {
        if n < skip_below {
            return Err(LedgerError::Corrupt(format!(
                "the sequencing log ends at index {n}, before the published size {skip_below}"
            )));
        }
        if out.records.is_empty() {
            out.first = n;
        }
    }
    Ok(out)
}

/// The open segment the sequencer appends to.
///
/// A write or sync that fails (a full disk, an I/O error) leaves the
/// segment `dirty`: whatever it wrote past `len` was never acknowledged, and
/// the next append first cuts the segment back to `len` and syncs that, so
/// the log never holds a torn record before acknowledged ones.
#[derive(Debug)]
pub struct Writer {
    dir: PathBuf,
    file: File,
    first: u64,
    /// Bytes of the segment that are durable and acknowledged.
    len: u64,
    dirty: bool,
}

impl Writer {
    /// Opens the last segment for appending, or starts one at `next_index`.
    pub fn open(dir: &Path, next_index: u64) -> Result<Self, LedgerError> {
        let segs = list_segments(dir)?;
        if let Some((first, path)) = segs.last() {
            let mut file = OpenOptions::new()
                .append(true)
                .open(path)
                .map_err(LedgerError::io("opening the sequencing log"))?;
            let len = file
                .seek(SeekFrom::End(0))
                .map_err(LedgerError::io("seeking the sequencing log"))?;
            return Ok(Writer {
                dir: dir.to_owned(),
                file,
                first: *first,
                len,
                dirty: false,
            });
        }
        Self::create(dir, next_index)
    }

    fn create(dir: &Path, first: u64) -> Result<Self, LedgerError> {
        let path = segment_path(dir, first);
        // A segment already named `first` holds nothing acknowledged (its
        // records would have indices from `first` on, and `first` is the
        // next index): it is what a failed creation left. Start it afresh.
        let made = (|| {
            let mut file = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(&path)?;
            file.write_all(MAGIC)?;
            file.sync_all()?;
            File::open(dir).and_then(|d| d.sync_all())?;
            Ok::<_, io::Error>(file)
        })();
        let file = made.map_err(|e| {
            let _ = fs::remove_file(&path);
            LedgerError::io("creating a sequencing log segment")(e)
        })?;
        Ok(Writer {
            dir: dir.to_owned(),
            file,
            first,
            len: MAGIC.len() as u64,
            dirty: false,
        })
    }

    /// Appends encoded records (which start at `next_index`) and makes them
    /// durable. Rotates to a new segment first when this one is full. After
    /// a failed append, the unacknowledged bytes are cut first.
    pub fn append_durably(&mut self, next_index: u64, encoded: &[u8]) -> io::Result<()> {
        if self.dirty {
            self.file.set_len(self.len)?;
            self.file.sync_data()?;
            // A segment this writer created is not in append mode.
            self.file.seek(SeekFrom::Start(self.len))?;
            self.dirty = false;
        }
        if self.len >= SEGMENT_BYTES {
            *self = Self::create(&self.dir, next_index).map_err(|e| io::Error::other(e.to_string()))?;
        }
        self.dirty = true;
        self.file.write_all(encoded)?;
        self.file.sync_data()?;
        self.len += encoded.len() as u64;
        self.dirty = false;
        Ok(())
    }

    /// First index of the open segment.
    pub fn first(&self) -> u64 {
        self.first
    }
}

/// Deletes segments every record of which is below `published`.
pub fn delete_published(dir: &Path, published: u64) -> Result<usize, LedgerError> {
    let segs = list_segments(dir)?;
    let mut deleted = 0;
    for w in segs.windows(2) {
        let (_, path) = &w[0];
        let (next_first, _) = w[1];
        if next_first <= published {
            fs::remove_file(path).map_err(LedgerError::io("deleting a published segment"))?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Deletes every segment; only for a ledger whose every sequenced entry is
/// published (a clean shutdown). The next open starts a new segment.
pub fn delete_all(dir: &Path) -> Result<usize, LedgerError> {
    let segs = list_segments(dir)?;
    for (_, path) in &segs {
        fs::remove_file(path).map_err(LedgerError::io("deleting a published segment"))?;
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(LedgerError::io("syncing the sequencing log directory"))?;
    Ok(segs.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u8) -> Record {
        Record {
            entry: vec![i; usize::from(i) + 1],
            bodies: vec![vec![i; 3]],
        }
    }

    #[test]
    fn write_replay_and_truncate_torn_tail() {
        let d = tempfile::tempdir().unwrap();
        let mut w = Writer::open(d.path(), 0).unwrap();
        let mut buf = Vec::new();
        for i in 0..5 {
            encode(&rec(i), &mut buf);
        }
        w.append_durably(0, &buf).unwrap();
        // A torn record at the tail.
        let mut torn = Vec::new();
        encode(&rec(9), &mut torn);
        w.append_durably(5, &torn[..torn.len() - 3]).unwrap();
        let r = replay(d.path(), 0).unwrap();
        assert_eq!(r.records, (0..5).map(rec).collect::<Vec<_>>());
        assert!(r.truncated_bytes > 0);
        // Replay again: the tail is gone, nothing else changed.
        let r = replay(d.path(), 2).unwrap();
        assert_eq!((r.first, r.records.len(), r.truncated_bytes), (2, 3, 0));
    }

    #[test]
    fn an_append_after_a_failed_one_cuts_its_bytes_first() {
        let d = tempfile::tempdir().unwrap();
        let mut w = Writer::open(d.path(), 0).unwrap();
        let mut buf = Vec::new();
        for i in 0..3 {
            encode(&rec(i), &mut buf);
        }
        w.append_durably(0, &buf).unwrap();
        // A write that failed half-way (ENOSPC, EIO): some of its bytes
        // reached the segment, nothing was acknowledged.
        let mut half = Vec::new();
        encode(&rec(7), &mut half);
        let seg = segment_path(d.path(), 0);
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&half[..half.len() / 2]).unwrap();
        w.dirty = true;
        // The next batch takes index 3 after the acknowledged records.
        let mut next = Vec::new();
        encode(&rec(3), &mut next);
        w.append_durably(3, &next).unwrap();
        let r = replay(d.path(), 0).unwrap();
        assert_eq!(r.records, (0..4).map(rec).collect::<Vec<_>>());
        assert_eq!(r.truncated_bytes, 0);
    }

    #[test]
    fn a_segment_a_failed_rotation_left_is_started_afresh() {
        let d = tempfile::tempdir().unwrap();
        // A creation that died after writing part of the header.
        std::fs::write(segment_path(d.path(), 4), &MAGIC[..2]).unwrap();
        let mut w = Writer::create(d.path(), 4).unwrap();
        let mut buf = Vec::new();
        encode(&rec(4), &mut buf);
        w.append_durably(4, &buf).unwrap();
        let r = replay(d.path(), 0).unwrap();
        assert_eq!((r.first, r.records.len()), (4, 1));
    }
}
