//! Rings kept in process memory (`shm::keep_rings_in_process`, the single-process
//! pipeline's): nothing is written to the file system, a consumer of the same process
//! finds the ring by its path and reads what the producer publishes, a second live
//! producer at the path is refused, and an ended ring is gone for new consumers.
//!
//! A test binary of its own: the switch is process-wide.

use common::ring::shm::{self, CreateError, OpenError, ProducerId};
use common::ring::{Poll, StartAt};
use common::tick::Tick;

const ID: ProducerId = ProducerId {
    clock_source: 1,
    epoch_ns: 42,
    lossless: false,
    first_seq: 1,
};

#[test]
fn a_ring_in_process_memory_is_found_by_its_path_and_leaves_no_file() {
    shm::keep_rings_in_process();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.ring");
    assert!(matches!(
        shm::open(&path, StartAt::Oldest),
        Err(OpenError::Missing(_))
    ));
    let mut p = shm::create(&path, 1024, ID).unwrap();
    assert!(!path.exists(), "no ring file");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no lock file"
    );
    assert!(matches!(
        shm::create(&path, 1024, ID),
        Err(CreateError::Held { .. })
    ));
    for symbol in 0..100u16 {
        p.publish(&Tick {
            symbol,
            ..Tick::default()
        });
    }
    let reader = std::thread::spawn({
        let path = path.clone();
        move || {
            let (mut s, info) = shm::open(&path, StartAt::Oldest).unwrap();
            assert_eq!((info.capacity, info.epoch_ns), (1024, 42));
            assert!(s.region().in_process() && s.region().is_current());
            let mut seen = Vec::new();
            while seen.len() < 100 {
                if let Poll::Tick(t) = s.poll() {
                    seen.push((t.seq, t.symbol));
                }
            }
            assert!(seen
                .iter()
                .enumerate()
                .all(|(i, &(seq, sym))| seq == i as u64 + 1 && sym == i as u16));
            s
        }
    });
    let s = reader.join().unwrap();
    p.end_and_unlink();
    assert!(s.producer_ended() && !s.region().is_current());
    assert!(matches!(
        shm::open(&path, StartAt::Oldest),
        Err(OpenError::Missing(_))
    ));
    // An ended ring's path can be created again.
    drop(p);
    let again = shm::create(&path, 1024, ID).unwrap();
    assert!(shm::open(&path, StartAt::Latest).is_ok());
    again.end_and_unlink();
    assert!(!path.exists());
}
