//! Tests of the staged index: buffer and graph against the exact oracle,
//! drains, snapshots, and rebuilds racing changes.

use super::*;

fn vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            (0..dim)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((x >> 33) as f32 / (1u64 << 31) as f32) - 0.5
                })
                .collect()
        })
        .collect()
}

fn config() -> IndexConfig {
    IndexConfig {
        hnsw_threshold: 1_000_000,
        ..IndexConfig::default()
    }
}

/// Each vector under its position as slot.
fn numbered(data: &[Vec<f32>]) -> Vec<(Slot, &[f32])> {
    data.iter()
        .enumerate()
        .map(|(i, v)| (i as Slot, v.as_slice()))
        .collect()
}

fn slots(hits: &[Hit]) -> Vec<Slot> {
    hits.iter().map(|h| h.slot).collect()
}

#[test]
fn buffered_and_drained_vectors_answer_like_an_exact_index() {
    let dim = 16;
    let data = vectors(300, dim, 7);
    let staged = StagedIndex::new(dim, &config()).unwrap();
    let mut oracle = ExactIndex::new(dim);
    let items = numbered(&data);
    staged.add_direct(&items[..100]).unwrap();
    staged.add(&items[100..]).unwrap();
    oracle.add(&items).unwrap();
    assert_eq!(staged.staged_len().unwrap(), 200);
    assert_eq!(staged.len().unwrap(), 300);
    for slot in [5, 150, 299] {
        assert!(staged.remove(slot).unwrap());
        oracle.remove(slot);
    }
    assert!(!staged.contains(150).unwrap() && !staged.contains(5).unwrap());
    let queries = vectors(20, dim, 99);
    let eligible: SlotSet = (0..300).filter(|s| s % 3 == 0).collect();
    let check = |staged: &StagedIndex| {
        for q in &queries {
            let want = oracle.search(q, 10, None).unwrap();
            assert_eq!(slots(&staged.search(q, 10, None).unwrap()), slots(&want));
            let want = oracle.search(q, 10, Some(&eligible)).unwrap();
            let got = staged.search(q, 10, Some(&eligible)).unwrap();
            assert_eq!(slots(&got), slots(&want));
        }
    };
    check(&staged);
    while staged.drain(64).unwrap() > 0 {}
    assert_eq!(staged.staged_len().unwrap(), 0);
    assert_eq!(staged.len().unwrap(), 297);
    check(&staged);
}

#[test]
fn recent_writes_and_searches_are_seen_and_forgotten() {
    let dim = 16;
    let data = vectors(4, dim, 3);
    let staged = StagedIndex::new(dim, &config()).unwrap();
    let (long, short) = (Duration::from_secs(60), Duration::from_millis(20));
    assert!(!staged.added_within(long) && !staged.searched_within(long));
    staged.add(&numbered(&data)).unwrap();
    assert!(staged.added_within(long) && !staged.searched_within(long));
    staged.search(&data[0], 1, None).unwrap();
    assert!(staged.searched_within(long));
    std::thread::sleep(short * 3);
    assert!(!staged.added_within(short) && !staged.searched_within(short));
}

#[test]
fn try_drain_steps_aside_while_another_drain_runs() {
    let dim = 16;
    let data = vectors(10, dim, 5);
    let staged = StagedIndex::new(dim, &config()).unwrap();
    staged.add(&numbered(&data)).unwrap();
    {
        let _running = staged.draining.lock().unwrap();
        assert_eq!(staged.try_drain(4).unwrap(), None);
        assert_eq!(staged.buffered(), 10, "nothing moved");
    }
    assert_eq!(staged.try_drain(4).unwrap(), Some(4));
    assert_eq!(staged.buffered(), 6);
    assert_eq!(staged.search(&data[9], 1, None).unwrap()[0].slot, 9);
}

#[test]
fn drained_vectors_restore_from_a_snapshot_and_the_added_vectors() {
    let dim = 384;
    // Vectors that come out of a second normalisation with other bits,
    // so a drain that normalised again would fail the restore.
    let renormalised_differs = |v: &Vec<f32>| {
        crate::index::normalized(&crate::index::normalized(v)) != crate::index::normalized(v)
    };
    // Unit vectors normalised in f32, as embedding models hand them out.
    let data: Vec<Vec<f32>> = vectors(300, dim, 11)
        .into_iter()
        .map(|v| {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter().map(|x| x / norm).collect()
        })
        .collect();
    let differing = data.iter().filter(|v| renormalised_differs(v)).count();
    assert!(differing > 0, "no vector changes when normalised twice");
    let config = IndexConfig {
        hnsw_threshold: 50,
        ..IndexConfig::default()
    };
    let staged = StagedIndex::new(dim, &config).unwrap();
    let items = numbered(&data);
    staged.add_direct(&items[..100]).unwrap();
    staged.add(&items[100..]).unwrap();
    while staged.drain(64).unwrap() > 0 {}
    assert!(staged.remove(42).unwrap());
    let dir = std::env::temp_dir().join(format!("pulsedb-staged-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.idx");
    staged.save_snapshot(&path, 9, b"").unwrap();
    // The snapshot takes back the vectors as they were added: drained
    // vectors were stored exactly as the buffer normalised them.
    let restored = crate::index::Snapshot::load(&path, &config, dim, &mut |slot| {
        data.get(slot as usize).cloned()
    })
    .expect("snapshot restores")
    .index;
    assert!(restored.is_hnsw());
    assert_eq!(restored.len(), 299);
    assert_eq!(restored.tombstones(), 1);
    for q in vectors(10, dim, 5) {
        assert_eq!(
            slots(&restored.search(&q, 10, None).unwrap()),
            slots(&staged.search(&q, 10, None).unwrap())
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_slot_cannot_be_added_twice() {
    let dim = 8;
    let data = vectors(2, dim, 1);
    let staged = StagedIndex::new(dim, &config()).unwrap();
    staged.add_direct(&[(0, data[0].as_slice())]).unwrap();
    // A graph slot given again is refused when the drain inserts it.
    staged.add(&[(0, data[1].as_slice())]).unwrap();
    assert!(matches!(staged.drain(8), Err(IndexError::SlotTaken(0))));
    assert!(staged.remove(0).unwrap());
    staged.add(&[(1, data[1].as_slice())]).unwrap();
    assert!(matches!(
        staged.add(&[(1, data[1].as_slice())]),
        Err(IndexError::SlotTaken(1))
    ));
    assert_eq!(staged.len().unwrap(), 2);
}

#[test]
fn a_rebuild_keeps_the_changes_made_while_it_ran() {
    let dim = 16;
    let data = vectors(6_000, dim, 21);
    let config = IndexConfig {
        hnsw_threshold: 500,
        ..IndexConfig::default()
    };
    let staged = StagedIndex::new(dim, &config).unwrap();
    let items = numbered(&data);
    staged.add_direct(&items[..4_000]).unwrap();
    for slot in 0..1_500 {
        staged.remove(slot).unwrap();
    }
    assert!(staged.needs_rebuild());
    let mut oracle = ExactIndex::new(dim);
    oracle.add(&items[1_500..4_000]).unwrap();
    // Writes and removals land between the copy and the swap.
    let copy = staged.begin_rebuild().unwrap().expect("a rebuild is due");
    assert!(staged.begin_rebuild().unwrap().is_none(), "one at a time");
    for chunk in items[4_000..].chunks(100) {
        staged.add(chunk).unwrap();
        while staged.drain(50).unwrap() > 0 {}
        oracle.add(chunk).unwrap();
    }
    for slot in (1_500..3_000).step_by(3) {
        assert!(staged.remove(slot).unwrap());
        oracle.remove(slot);
    }
    assert_eq!(staged.tombstones(), 2_000, "the old graph until the swap");
    staged.finish_rebuild(copy).unwrap();
    assert_eq!(staged.tombstones(), 500, "only those made meanwhile");
    while staged.needs_rebuild() {
        staged.rebuild_if_needed().unwrap();
    }
    assert_eq!(staged.len().unwrap(), oracle.len());
    assert!(staged.tombstones() * 5 <= staged.len().unwrap());
    for slot in 0..6_000 {
        assert_eq!(
            staged.contains(slot).unwrap(),
            oracle.contains(slot),
            "{slot}"
        );
    }
    // Every live vector is its own nearest neighbour; nothing removed comes back.
    for slot in (1_501..6_000).step_by(37) {
        let hits = staged.search(&data[slot as usize], 10, None).unwrap();
        assert_eq!(hits.len(), 10);
        assert!(hits.iter().all(|h| oracle.contains(h.slot)));
        if oracle.contains(slot) {
            assert_eq!(hits[0].slot, slot);
        }
    }
}

#[test]
fn a_released_graph_goes_to_the_search_waiting_for_it() {
    let dim = 16;
    let staged = StagedIndex::new(dim, &config()).unwrap();
    staged.add_direct(&numbered(&vectors(10, dim, 8))).unwrap();
    let (about_to_read, asked) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let staged = &staged;
    std::thread::scope(|s| {
        let held = staged.main_mut();
        let reader = s.spawn(move || {
            about_to_read.send(()).unwrap();
            let graph = staged.main();
            released.recv().unwrap();
            graph.len()
        });
        asked.recv().unwrap();
        // Let the reader queue for the lock (a few microseconds' work).
        std::thread::sleep(Duration::from_millis(100));
        drop(held);
        // A drain looping over chunks takes the lock again at once: the
        // waiting reader must have it by then (a plain `std` release only
        // wakes it).
        assert!(
            staged.main.try_write().is_none(),
            "the lock went back to the releasing thread, not the waiting one"
        );
        release.send(()).unwrap();
        assert_eq!(reader.join().unwrap(), 10);
    });
}

#[test]
fn slots_are_removed_together_from_the_buffer_and_the_graph() {
    let dim = 16;
    let data = vectors(40, dim, 13);
    let staged = StagedIndex::new(dim, &config()).unwrap();
    let items = numbered(&data);
    staged.add_direct(&items[..20]).unwrap();
    staged.add(&items[20..]).unwrap();
    // Graph and buffer slots, one twice, one never added.
    let gone = [3, 25, 7, 25, 39, 99];
    assert_eq!(staged.remove_many(&gone).unwrap(), 4, "each live slot once");
    assert_eq!(staged.len().unwrap(), 36);
    assert_eq!(staged.staged_len().unwrap(), 18);
    assert_eq!(staged.tombstones(), 2);
    for slot in 0..40 {
        assert_eq!(
            staged.contains(slot).unwrap(),
            !gone.contains(&slot),
            "{slot}"
        );
    }
    for slot in [3, 25] {
        let hits = staged.search(&data[slot as usize], 40, None).unwrap();
        assert_eq!(hits.len(), 36);
        assert!(hits.iter().all(|h| !gone.contains(&h.slot)));
    }
    assert_eq!(staged.remove_many(&gone).unwrap(), 0);
}
