//! Pack encoding, ours against gix-pack's, on the objects of one busy
//! publication: `cargo bench --bench pack`.
//!
//! The ledger writes one pack (and its index) per publication
//! (`ledger::git::encode_pack`). gix offers the pieces to do the same:
//! `data::output::Entry::from_data` + `bytes::FromEntriesIter` for the pack,
//! and `index::File::write_data_iter_to_stream` over the written pack for
//! the index. Both sides produce a pack and an index of the same objects; the
//! result decides which one the ledger uses (BENCHMARKS.md).

// A benchmark: a failure is a panic with its reason.
#![allow(clippy::expect_used)]

use std::io::BufReader;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use gix::objs::Kind;
use gix::ObjectId;
use gix_pack::data::{input, output};

/// ~1,000 attestations' worth of objects: 1.9 KB envelopes, 250-byte entries
/// in 256-entry bundles, 8 KB tiles, and a few trees.
fn publication() -> gix::odb::memory::Storage {
    let mut objects = gix::odb::memory::Storage::default();
    let mut put = |kind: Kind, data: Vec<u8>| {
        let id = gix::objs::compute_hash(gix::hash::Kind::Sha1, kind, &data).expect("sha1");
        objects.insert(id, (kind, data));
    };
    for i in 0..1000u32 {
        let mut env =
            format!("{{\"payloadType\":\"application/vnd.in-toto+json\",\"payload\":\"{i:08}").into_bytes();
        env.extend((0..1900).map(|j| b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef"[(j * 7 + i as usize) % 32]));
        put(Kind::Blob, env);
    }
    for b in 0..4u32 {
        let bundle: Vec<u8> = (0..256u32 * 250)
            .map(|j| (j.wrapping_mul(31) ^ b) as u8)
            .collect();
        put(Kind::Blob, bundle);
    }
    for t in 0..8u32 {
        let tile: Vec<u8> = (0..8192u32)
            .map(|j| (j.wrapping_mul(2654435761) >> (t % 24)) as u8)
            .collect();
        put(Kind::Blob, tile);
    }
    for t in 0..40u32 {
        let tree: Vec<u8> = (0..3000u32).map(|j| (j ^ t) as u8).collect();
        put(Kind::Tree, tree);
    }
    objects
}

fn with_gix_pack(objects: &gix::odb::memory::Storage) -> (usize, usize) {
    let mut sorted: Vec<(&ObjectId, &(Kind, Vec<u8>))> = objects.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let entries: Result<Vec<_>, _> = sorted
        .iter()
        .map(|(id, (kind, data))| {
            let count = output::Count::from_data(**id, None);
            output::Entry::from_data(
                &count,
                &gix::objs::Data::new(data, *kind, gix::hash::Kind::Sha1),
                gix_zlib::Compression::new(1).expect("level 1"),
            )
        })
        .collect();
    let n = sorted.len() as u32;
    let mut pack = Vec::new();
    let mut w = output::bytes::FromEntriesIter::new(
        std::iter::once(entries),
        &mut pack,
        n,
        gix_pack::data::Version::V2,
        gix::hash::Kind::Sha1,
    );
    for step in &mut w {
        step.expect("writing the pack");
    }
    drop(w);
    let mut idx = Vec::new();
    let mut parsed = input::BytesToEntriesIter::new_from_header(
        BufReader::new(&pack[..]),
        input::Mode::Verify,
        input::EntryDataMode::Crc32,
        gix::hash::Kind::Sha1,
    )
    .expect("reading the pack back");
    let data = pack.clone();
    gix_pack::index::write_data_iter_to_stream(
        gix_pack::index::Version::V2,
        move || {
            Ok((
                resolve as fn(gix_pack::data::EntryRange, &Vec<u8>) -> Option<&[u8]>,
                data,
            ))
        },
        &mut parsed,
        Some(1),
        &mut gix::progress::Discard,
        &mut idx,
        &AtomicBool::new(false),
        gix::hash::Kind::Sha1,
        None,
        gix_pack::data::Version::V2,
    )
    .expect("writing the index");
    (pack.len(), idx.len())
}

/// The bytes of a pack entry, for the index writer (its resolver takes `&R`).
#[allow(clippy::ptr_arg)]
fn resolve(r: gix_pack::data::EntryRange, d: &Vec<u8>) -> Option<&[u8]> {
    d.get(r.start as usize..r.end as usize)
}

fn main() {
    let objects = publication();
    let rounds = 20;
    let mut ours = f64::MAX;
    let mut theirs = f64::MAX;
    let (mut ours_sizes, mut their_sizes) = ((0, 0), (0, 0));
    for _ in 0..rounds {
        let t = Instant::now();
        let p = tally::ledger::git::encode_pack(&objects).expect("encode");
        ours = ours.min(t.elapsed().as_secs_f64());
        ours_sizes = (p.pack.len(), p.idx.len());
        let t = Instant::now();
        their_sizes = with_gix_pack(&objects);
        theirs = theirs.min(t.elapsed().as_secs_f64());
    }
    let mb = objects.values().map(|o| o.1.len()).sum::<usize>() as f64 / 1e6;
    println!(
        "{{\"objects\": {}, \"mb\": {mb:.2}, \"ours_ms\": {:.2}, \"gix_pack_ms\": {:.2}, \"ours_bytes\": [{}, {}], \"gix_pack_bytes\": [{}, {}], \"best_of\": {rounds}}}",
        objects.len(),
        ours * 1e3,
        theirs * 1e3,
        ours_sizes.0,
        ours_sizes.1,
        their_sizes.0,
        their_sizes.1
    );
}
