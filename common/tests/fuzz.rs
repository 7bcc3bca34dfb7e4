//! Fuzz targets for everything `common` reads from outside the process, written as
//! proptest properties so that they run on stable Rust inside `cargo test`.
//!
//! - `config`: the configuration loader on arbitrary bytes, on TOML-like token soup,
//!   and on structured mutations of the seed corpus (`configs/*.toml`, except `lab
//!   compare` matrices, and `tests/corpus/config/*.toml`). It must never panic; it
//!   returns a configuration that validates, or one line that starts with the file name
//!   (and `LINE:COLUMN: ` where a position is known).
//! - `ring`: ring files derived from a valid one made by `shm::create` (small capacity,
//!   some ticks published, ended or not, lossless or not: the ring seed corpus is
//!   generated here, from these parameters) with random byte and word edits in the
//!   header and the slots, then truncated or extended. `shm::open` must refuse the file
//!   or give a subscriber that, polled until `Ended` or a bounded number of polls,
//!   never panics or reads out of bounds, returns only valid ticks with strictly
//!   increasing sequence numbers, and accounts for every sequence number it passes.
//! - `tick`: `Tick::from_words` on arbitrary words.
//!
//! Cases per property: `PROPTEST_CASES` (proptest's default, 256, when unset); CI runs
//! them with more (see `.ci/run`). A failure is shrunk and saved under
//! `proptest-regressions/`, which is committed so that it is replayed on every run.

use common::config::edit::Edit;
use common::config::{Config, ConfigError};
use common::ring::shm::{self, ProducerId};
use common::ring::{Header, Poll, StartAt, HEADER_BYTES};
use common::tick::{Side, Tick, TickKind, TICK_WORDS};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use std::path::{Path, PathBuf};

const CORES: &[usize] = &[0, 1];

/// `PROPTEST_CASES` cases (256 when unset); failures are saved under
/// `common/proptest-regressions/` (cargo runs tests in the package folder) and replayed
/// first on every later run.
fn cases() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/fuzz.txt",
        ))),
        ..ProptestConfig::default()
    }
}

mod config {
    use super::*;

    /// The seed corpus: the shipped run configurations and `tests/corpus/config`.
    fn seeds() -> &'static [(PathBuf, String)] {
        static SEEDS: std::sync::OnceLock<Vec<(PathBuf, String)>> = std::sync::OnceLock::new();
        SEEDS.get_or_init(read_seeds)
    }

    fn read_seeds() -> Vec<(PathBuf, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut seeds = Vec::new();
        for dir in [root.join("../configs"), root.join("tests/corpus/config")] {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            paths.sort();
            for path in paths {
                let text = std::fs::read_to_string(&path).unwrap();
                // Not run configurations: `lab compare` matrices and `lab cluster` files.
                if !text.contains("[[block]]") && !text.contains("[[hosts]]") {
                    seeds.push((path, text));
                }
            }
        }
        seeds
    }

    /// Parses `text` as `fuzz.toml` and checks the outcome's contract.
    fn check(text: &str) {
        let path = Path::new("fuzz.toml");
        match Config::parse(text, path, CORES) {
            Ok(config) => {
                assert_eq!(config.validate(CORES), Ok(()));
                assert!(config.ring.capacity.is_power_of_two());
                assert!(!config.symbols.is_empty());
            }
            Err(e) => check_error(&e, text),
        }
    }

    fn check_error(e: &ConfigError, text: &str) {
        let shown = e.to_string();
        assert!(shown.starts_with("fuzz.toml:"), "{shown}");
        assert!(!shown.contains('\n'), "one line: {shown:?}");
        if let ConfigError::Invalid {
            line, column, key, ..
        } = e
        {
            let lines = text.split('\n').count();
            assert!(
                (1..=lines).contains(line),
                "line {line} of {lines}: {shown}"
            );
            assert!(*column >= 1, "{shown}");
            assert!(
                shown.starts_with(&format!("fuzz.toml:{line}:{column}: {key}: ")),
                "{shown}"
            );
        }
    }

    /// One structured edit of a seed, applied line by line.
    #[derive(Clone, Debug)]
    enum Mutation {
        DeleteLine(usize),
        DuplicateLine(usize),
        SwapLines(usize, usize),
        /// Replaces what follows `=` on a line.
        SetValue(usize, &'static str),
        /// Renames the key of a line (appends `x`).
        RenameKey(usize),
        InsertByte(usize, u8),
        Truncate(usize),
    }

    const VALUES: &[&str] = &[
        "0",
        "1",
        "-1",
        "2",
        "3.5",
        "1e308",
        "-1e308",
        "nan",
        "-nan",
        "inf",
        "-inf",
        "1024",
        "4096",
        "65536",
        "1023",
        "67108864",
        "134217728",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "\"\"",
        "\" \"",
        "\"x\"",
        "\"AAA\"",
        "\"/no/such/dir/r.ring\"",
        "\"/dev\"",
        "\"spin\"",
        "\"pool\"",
        "[]",
        "[0]",
        "[0, 1]",
        "[5000]",
        "{}",
        "true",
        "1979-05-27",
        "[[]]",
        "= 1",
        "\"\u{e9}\"",
    ];

    fn mutation() -> impl Strategy<Value = Mutation> {
        // Positions are taken modulo the line or byte count when applied.
        let at = any::<usize>;
        prop_oneof![
            1 => at().prop_map(Mutation::DeleteLine),
            1 => at().prop_map(Mutation::DuplicateLine),
            1 => (at(), at()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
            4 => (at(), prop::sample::select(VALUES)).prop_map(|(i, v)| Mutation::SetValue(i, v)),
            1 => at().prop_map(Mutation::RenameKey),
            1 => (at(), any::<u8>()).prop_map(|(i, b)| Mutation::InsertByte(i, b)),
            1 => at().prop_map(Mutation::Truncate),
        ]
    }

    fn apply(text: &str, mutations: &[Mutation]) -> String {
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        let mut bytes_edits = Vec::new();
        for m in mutations {
            let n = lines.len().max(1);
            match *m {
                Mutation::DeleteLine(i) if !lines.is_empty() => {
                    lines.remove(i % n);
                }
                Mutation::DuplicateLine(i) if !lines.is_empty() => {
                    lines.insert(i % n, lines[i % n].clone());
                }
                Mutation::SwapLines(a, b) if !lines.is_empty() => lines.swap(a % n, b % n),
                Mutation::SetValue(i, v) if !lines.is_empty() => {
                    let line = &mut lines[i % n];
                    if let Some(eq) = line.find('=') {
                        line.truncate(eq + 1);
                        line.push(' ');
                        line.push_str(v);
                    }
                }
                Mutation::RenameKey(i) if !lines.is_empty() => {
                    let line = &mut lines[i % n];
                    if let Some(eq) = line.find(" =") {
                        line.insert(eq, 'x');
                    }
                }
                Mutation::InsertByte(..) | Mutation::Truncate(_) => bytes_edits.push(m.clone()),
                _ => {}
            }
        }
        let mut bytes = lines.join("\n").into_bytes();
        bytes.push(b'\n');
        for m in bytes_edits {
            match m {
                Mutation::InsertByte(i, b) => bytes.insert(i % (bytes.len() + 1), b),
                Mutation::Truncate(i) => bytes.truncate(i % (bytes.len() + 1)),
                _ => unreachable!(),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn seeds_are_valid() {
        let seeds = seeds();
        assert!(seeds.len() >= 7, "{} seeds", seeds.len());
        for (path, text) in seeds {
            // A seed's ring folder may be missing on this machine; check the rest.
            let text = Edit::new(text)
                .set("ring.path", std::env::temp_dir().join("seed.ring"))
                .finish()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            Config::parse(&text, path, CORES).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    proptest! {
        #![proptest_config(cases())]

        /// Arbitrary bytes through `Config::load` (a file that is not UTF-8 included).
        #[test]
        fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("fuzz.toml");
            std::fs::write(&path, &bytes).unwrap();
            match Config::load(&path, CORES) {
                Ok(config) => prop_assert_eq!(config.validate(CORES), Ok(())),
                Err(e) => {
                    let shown = e.to_string();
                    prop_assert!(shown.starts_with(&path.display().to_string()), "{}", shown);
                    prop_assert!(!shown.contains('\n'), "{}", shown);
                }
            }
        }

        /// Strings of TOML's own tokens, which reach deeper into the parser than bytes.
        #[test]
        fn token_soup(text in "([a-z_]{1,8}|\\[{1,2}|\\]{1,2}|=|\"|'|[0-9.e+-]{1,6}|,|\\{|\\}|#|\n| ){0,60}") {
            check(&text);
        }

        /// Structured mutations of the seed corpus.
        #[test]
        fn mutated_seeds(
            seed in any::<prop::sample::Index>(),
            mutations in prop::collection::vec(mutation(), 1..6),
        ) {
            let (_, text) = &seeds()[seed.index(seeds().len())];
            check(&apply(text, &mutations));
        }
    }
}

mod ring {
    use super::*;

    /// Capacity of the fuzzed rings: small, so that publishing wraps them.
    const CAPACITY: u64 = 8;

    /// An edit of a ring file's bytes.
    #[derive(Clone, Debug)]
    enum Edit {
        /// Sets one byte at an offset (into the header's fields, or anywhere).
        Byte(usize, u8),
        /// Sets the 8-byte word at an 8-aligned offset to an interesting value.
        Word(usize, u64),
        /// Sets one header field (by its offset, `common::ring::offsets`) to an
        /// interesting value.
        Field(usize, u64),
    }

    const FIELDS: &[(usize, usize)] = &common::ring::offsets::ALL;

    fn value() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(0),
            Just(1),
            Just(2),
            Just(CAPACITY),
            Just(CAPACITY * 2),
            Just(u64::MAX),
            Just(u64::MAX - 1),
            Just(1 << 63),
            Just((1 << 63) | 5),
            Just(i64::MAX as u64),
            0..64u64,
            any::<u64>(),
        ]
    }

    fn edit(len: usize) -> impl Strategy<Value = Edit> {
        let header_end = std::mem::size_of::<Header>();
        prop_oneof![
            1 => (0..header_end, any::<u8>()).prop_map(|(at, b)| Edit::Byte(at, b)),
            1 => (0..len, any::<u8>()).prop_map(|(at, b)| Edit::Byte(at, b)),
            2 => (0..len / 8, value()).prop_map(|(w, v)| Edit::Word(w * 8, v)),
            2 => (0..FIELDS.len(), value()).prop_map(|(f, v)| Edit::Field(f, v)),
        ]
    }

    /// How the file's length changes after the edits.
    #[derive(Clone, Debug)]
    enum Resize {
        Keep,
        To(usize),
        Grow(usize),
    }

    fn resize(len: usize) -> impl Strategy<Value = Resize> {
        prop_oneof![
            6 => Just(Resize::Keep),
            1 => (0..len).prop_map(Resize::To),
            1 => (1..3 * 4096usize).prop_map(Resize::Grow),
        ]
    }

    fn put(bytes: &mut [u8], at: usize, value: u64, width: usize) {
        if at + width <= bytes.len() {
            bytes[at..at + width].copy_from_slice(&value.to_ne_bytes()[..width]);
        }
    }

    /// A valid ring with `published` ticks (payload derived from the seq), as bytes.
    fn valid_ring(dir: &Path, published: u64, ended: bool, lossless: bool) -> Vec<u8> {
        let path = dir.join("seed.ring");
        let id = ProducerId {
            clock_source: 1,
            epoch_ns: 7,
            lossless,
            first_seq: 1,
        };
        let mut producer = shm::create(&path, CAPACITY, id).unwrap();
        for i in 0..published {
            producer.publish(&Tick {
                scheduled_raw: i * 3,
                symbol: (i % 5) as u16,
                kind: if i % 2 == 0 {
                    TickKind::Quote
                } else {
                    TickKind::Trade
                },
                side: Side::Buy,
                bid_px_e8: i as i64,
                ..Tick::default()
            });
        }
        if ended {
            producer.end();
        }
        std::fs::read(&path).unwrap()
    }

    /// What draining a subscriber saw.
    #[derive(Debug, Default)]
    struct Drained {
        received: u64,
        missed: u64,
        corrupt: u64,
        ended: bool,
    }

    /// Opens `path` and polls it until `Ended` or `limit` polls, checking every result.
    /// `None` if the file was refused.
    fn drain(path: &Path, start: StartAt, limit: usize) -> Result<Option<Drained>, TestCaseError> {
        let (mut sub, info) = match shm::open(path, start) {
            Ok(opened) => opened,
            Err(e) => {
                let shown = e.to_string();
                prop_assert!(shown.contains(&path.display().to_string()), "{}", shown);
                return Ok(None);
            }
        };
        prop_assert!(info.capacity.is_power_of_two());
        let first = sub.next_seq();
        let mut d = Drained::default();
        let mut last_seq = 0;
        for _ in 0..limit {
            let expected = sub.next_seq();
            match sub.poll() {
                Poll::Tick(t) => {
                    prop_assert_eq!(t.seq, expected);
                    prop_assert!(t.seq > last_seq, "seq {} after {}", t.seq, last_seq);
                    prop_assert_eq!(Tick::from_words(t.to_words()), Some(t));
                    last_seq = t.seq;
                    d.received += 1;
                }
                Poll::Gap { first_seq, missed } => {
                    prop_assert_eq!(first_seq, expected);
                    prop_assert!(missed > 0);
                    last_seq = first_seq + missed - 1;
                    d.missed += missed;
                }
                Poll::Corrupt { seq } => {
                    prop_assert_eq!(seq, expected);
                    last_seq = seq;
                    d.corrupt += 1;
                }
                Poll::Empty => {}
                Poll::Ended => {
                    d.ended = true;
                    break;
                }
                #[allow(unreachable_patterns)]
                other => prop_assert!(false, "unexpected poll result {:?}", other),
            }
            // Every sequence number passed is accounted for exactly once.
            prop_assert_eq!(d.received + d.missed + d.corrupt, sub.next_seq() - first);
        }
        Ok(Some(d))
    }

    proptest! {
        #![proptest_config(cases())]

        /// An untouched ring drains exactly: published == received + missed.
        #[test]
        fn valid_rings_account_for_every_tick(
            published in 0..40u64,
            ended in any::<bool>(),
            lossless in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("r.ring");
            std::fs::write(&path, valid_ring(dir.path(), published, ended, lossless)).unwrap();
            let d = drain(&path, StartAt::Oldest, 4096)?.expect("a valid ring opens");
            prop_assert_eq!(d.corrupt, 0);
            prop_assert_eq!(d.received + d.missed, published);
            // A lapped reader resumes half a ring behind the head.
            prop_assert!(d.received >= published.min(CAPACITY / 2), "{:?}", d);
            prop_assert_eq!(d.ended, ended);
        }

        /// Edited, truncated and extended rings: refused, or read without panic,
        /// out-of-bounds read or hang, and with exact accounting.
        #[test]
        fn corrupt_rings_never_panic_or_hang(
            published in 0..40u64,
            ended in any::<bool>(),
            lossless in any::<bool>(),
            latest in any::<bool>(),
            edits in prop::collection::vec(edit(shm::file_len(CAPACITY) as usize), 0..8),
            resize in resize(shm::file_len(CAPACITY) as usize),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut bytes = valid_ring(dir.path(), published, ended, lossless);
            for e in &edits {
                match *e {
                    Edit::Byte(at, b) => bytes[at] = b,
                    Edit::Word(at, v) => put(&mut bytes, at, v, 8),
                    Edit::Field(f, v) => put(&mut bytes, FIELDS[f].0, v, FIELDS[f].1),
                }
            }
            match resize {
                Resize::Keep => {}
                Resize::To(len) => bytes.truncate(len),
                Resize::Grow(n) => bytes.resize(bytes.len() + n, 0),
            }
            let path = dir.path().join("r.ring");
            std::fs::write(&path, &bytes).unwrap();
            let start = if latest { StartAt::Latest } else { StartAt::Oldest };
            let opened = drain(&path, start, 3000)?;
            if edits.is_empty() && matches!(resize, Resize::Keep) {
                prop_assert!(opened.is_some(), "a valid ring was refused");
            }
            if bytes.len() < HEADER_BYTES {
                prop_assert!(opened.is_none(), "a short file was accepted");
            }
        }
    }
}

mod tick {
    use super::*;

    /// Word 3 with `kind` and `side` bytes near the valid range, so both outcomes of
    /// the check are common.
    fn word3() -> impl Strategy<Value = u64> {
        prop_oneof![
            any::<u64>(),
            (any::<u16>(), 0..4u8, 0..5u8, any::<u32>()).prop_map(|(sym, kind, side, qty)| {
                let t = [sym.to_ne_bytes()[0], sym.to_ne_bytes()[1], kind, side];
                let mut b = [0u8; 8];
                b[..4].copy_from_slice(&t);
                b[4..].copy_from_slice(&qty.to_ne_bytes());
                u64::from_ne_bytes(b)
            }),
        ]
    }

    proptest! {
        #![proptest_config(cases())]

        #[test]
        fn from_words_accepts_exactly_the_valid_enums(
            mut words in any::<[u64; TICK_WORDS]>(),
            w3 in word3(),
        ) {
            words[3] = w3;
            // Decode kind and side from the bytes, independently of `from_words`.
            let probe = Tick { kind: TickKind::Trade, side: Side::Sell, ..Tick::default() }.to_words()[3];
            let at = |v: u8| probe.to_ne_bytes().iter().position(|&b| b == v).unwrap();
            let bytes = w3.to_ne_bytes();
            let valid = bytes[at(TickKind::Trade as u8)] <= TickKind::Trade as u8
                && bytes[at(Side::Sell as u8)] <= Side::Sell as u8;
            match Tick::from_words(words) {
                Some(t) => {
                    prop_assert!(valid);
                    prop_assert_eq!(t.to_words(), words);
                    let _ = t.mid_px_e8();
                }
                None => prop_assert!(!valid),
            }
        }
    }
}
