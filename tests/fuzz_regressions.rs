//! The fuzz targets' inputs that matter, without libFuzzer: every seed
//! (`fuzz/seeds/TARGET/`, valid files of each format) and every input a fuzzing run
//! found (`fuzz/regressions/TARGET/`, kept by scripts/fuzz.sh once it made a target
//! panic, run out of memory or time) goes through the target's code (`fuzz/targets.rs`),
//! which must end without a panic.

#[allow(dead_code)] // the module's `TARGETS` table is what this test uses
#[path = "../fuzz/targets.rs"]
mod targets;

use std::path::Path;

#[test]
fn seeds_and_found_inputs_run_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, run) in targets::TARGETS {
        for kind in ["seeds", "regressions"] {
            let dir = root.join(kind).join(name);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            files.sort();
            for file in files.iter().filter(|f| f.is_file()) {
                let bytes = std::fs::read(file).expect("read a fuzz input");
                ran += 1;
                if std::panic::catch_unwind(|| run(&bytes)).is_err() {
                    failed.push(file.display().to_string());
                }
            }
        }
    }
    assert!(
        ran >= targets::TARGETS.len(),
        "only {ran} inputs under {}",
        root.display()
    );
    assert!(failed.is_empty(), "panicked on: {failed:?}");
    eprintln!("{ran} fuzz inputs, no panic");
}
