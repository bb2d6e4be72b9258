//! Replays every committed fuzz corpus (`fuzz/corpus/TARGET/*`) on stable, through the same
//! target functions the fuzzers run (`fuzz/src/lib.rs`, included here): no input may panic,
//! and the seeds named `valid-*` must still be accepted. CI runs this; it does no fuzzing of
//! its own (README, "Fuzzing").

#[path = "../../fuzz/src/lib.rs"]
mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

#[test]
fn every_corpus_input_is_handled_and_valid_seeds_are_accepted() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut failures = Vec::new();
    for (name, target) in targets::TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("a corpus entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{name}: an empty corpus replays nothing");
        for file in files {
            let data = std::fs::read(&file).expect("a corpus file");
            let valid = file
                .file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.starts_with("valid-"));
            match catch_unwind(AssertUnwindSafe(|| target(&data))) {
                Err(_) => failures.push(format!("{}: panicked", file.display())),
                Ok(Err(e)) if valid => {
                    failures.push(format!("{}: a valid seed was refused: {e}", file.display()))
                }
                Ok(_) => {}
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_torn_live_message_is_refused_not_decoded() {
    // LINEAR16 stereo at 8 kHz: a 5-byte message tears a 4-byte frame.
    let mut data = vec![0, 0, 2, 5];
    data.extend_from_slice(&[1, 2, 3, 4, 5]);
    let outcome = targets::live_frames(&data);
    assert_eq!(outcome, Err("1 torn message(s) refused".to_owned()));
}
