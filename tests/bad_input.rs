//! The bad-input corpus (`tests/bad-input/`): every case of `cases.tsv` runs the `medseg`
//! binary on a damaged file or a bad argument, and must end the way a user can act on:
//! an exit status in 1..=125 (not a signal, not an abort), exactly one non-empty line on
//! stderr that contains the case's expected words, and no panic message or backtrace.
//! Files that must be large to make their point (a gzip bomb) are made here at run time.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::sam2_small_dir;

/// A case that takes longer is a failure: bad input must be refused promptly, not after
/// inflating or allocating what the header claims.
const CASE_TIME_LIMIT: Duration = Duration::from_secs(60);

struct Case {
    name: String,
    format: String,
    args: Vec<String>,
    expected: String,
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/bad-input")
}

fn scratch_dir(case: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("medseg-bad-input-{}", std::process::id()))
        .join(case);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The rows of `cases.tsv`, placeholders filled in.
fn manifest_cases() -> Vec<Case> {
    let corpus = corpus_dir();
    let text = std::fs::read_to_string(corpus.join("cases.tsv")).expect("cases.tsv");
    let fixture = sam2_small_dir();
    let mut cases = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let [name, format, args, expected] = cols[..] else {
            panic!("cases.tsv line {}: expected 4 tab-separated columns", n + 1);
        };
        let out = scratch_dir(name);
        let args = args
            .split(' ')
            .map(|a| {
                let a = a
                    .replace("{model}", &path_str(&fixture.join("weights.safetensors")))
                    .replace("{image}", &path_str(&fixture.join("image.png")))
                    .replace("{frames}", &path_str(&fixture.join("frames")))
                    .replace("{out}", &path_str(&out));
                match a.strip_prefix("files/") {
                    Some(_) => path_str(&corpus.join(&a)),
                    None => a,
                }
            })
            .collect();
        cases.push(Case {
            name: name.into(),
            format: format.into(),
            args,
            expected: expected.into(),
        });
    }
    cases
}

fn path_str(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_string()
}

/// Cases whose files are made here: a few bytes of header and a stream that would inflate
/// to gigabytes if anything read past what the header allows.
fn generated_cases() -> Vec<Case> {
    let dir = scratch_dir("generated");
    let model = path_str(&sam2_small_dir().join("weights.safetensors"));
    let track = |name: &str, input: &Path, expected: &str| Case {
        name: name.into(),
        format: "nifti".into(),
        args: [
            "track",
            "--model",
            &model,
            "--input",
            &path_str(input),
            "--frame",
            "0",
            "--box",
            "2,2,6,6",
            "--out",
            &path_str(&dir.join(format!("{name}.nii.gz"))),
        ]
        .map(String::from)
        .to_vec(),
        expected: expected.into(),
    };
    // 4096 × 1024 × 1024 voxels (2^32, over the native limit): refused from the header,
    // before anything is inflated.
    let huge = dir.join("gzip-bomb-huge-dims.nii.gz");
    write_gzip_bomb(&huge, [4096, 1024, 1024], 352.0);
    // 8 × 8 × 4 voxels at a vox_offset past any stream: the 2 GiB are inflated to find
    // the end, but not kept.
    let far = dir.join("gzip-bomb-far-offset.nii.gz");
    write_gzip_bomb(&far, [8, 8, 4], 1.0e30);
    vec![
        track("nii-gzip-bomb-huge-dims", &huge, "volume too large"),
        track("nii-gzip-bomb-far-offset", &far, "truncated data"),
    ]
}

/// A `.nii.gz` of a uint8 volume of `dims` with its data at `vox_offset`, followed by
/// 2 GiB of zeros: 2048 identical gzip members of 1 MiB each (a gzip file may hold
/// several; `.nii.gz` readers concatenate them), about 2 MB on disk.
fn write_gzip_bomb(path: &Path, dims: [i16; 3], vox_offset: f32) {
    use flate2::{Compression, write::GzEncoder};
    let gzip = |bytes: &[u8]| {
        let mut e = GzEncoder::new(Vec::new(), Compression::best());
        e.write_all(bytes).expect("gzip");
        e.finish().expect("gzip")
    };
    let mut header = vec![0u8; 352];
    header[0..4].copy_from_slice(&348i32.to_le_bytes());
    let [nx, ny, nz] = dims;
    for (i, d) in [3i16, nx, ny, nz, 1, 1, 1, 1].iter().enumerate() {
        header[40 + 2 * i..42 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    header[70..72].copy_from_slice(&2i16.to_le_bytes()); // DT_UNSIGNED_CHAR
    header[72..74].copy_from_slice(&8i16.to_le_bytes());
    for i in 0..8 {
        header[76 + 4 * i..80 + 4 * i].copy_from_slice(&1f32.to_le_bytes());
    }
    header[108..112].copy_from_slice(&vox_offset.to_le_bytes());
    header[344..348].copy_from_slice(b"n+1\0");
    let zeros = gzip(&vec![0u8; 1 << 20]);
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("bomb"));
    file.write_all(&gzip(&header)).expect("bomb");
    for _ in 0..2048 {
        file.write_all(&zeros).expect("bomb");
    }
    file.flush().expect("bomb");
}

struct Outcome {
    status: Option<i32>,
    stderr: String,
    elapsed: Duration,
    timed_out: bool,
}

fn run(case: &Case) -> Outcome {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_medseg"))
        .args(&case.args)
        .current_dir(corpus_dir())
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run medseg");
    // stderr is read on a thread so a chatty child cannot block on a full pipe.
    let mut pipe = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut pipe, &mut s);
        s
    });
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > CASE_TIME_LIMIT {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Outcome {
        status: status.code(),
        stderr: reader.join().expect("stderr reader"),
        elapsed: started.elapsed(),
        timed_out,
    }
}

/// Why an outcome is not the clean refusal a case expects, if it is not.
fn judge(case: &Case, o: &Outcome) -> Option<String> {
    if o.timed_out {
        return Some(format!("ran past {CASE_TIME_LIMIT:?}"));
    }
    let lines: Vec<&str> = o.stderr.lines().collect();
    match o.status {
        Some(code) if (1..=125).contains(&code) => {}
        Some(0) => return Some("succeeded".into()),
        Some(code) => return Some(format!("exit status {code}")),
        None => return Some("killed by a signal (an abort or a crash)".into()),
    }
    for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
        if o.stderr.contains(bad) {
            return Some(format!("stderr shows a panic (`{bad}`)"));
        }
    }
    if lines.len() != 1 || lines[0].trim().is_empty() {
        return Some(format!("{} lines on stderr, not one", lines.len()));
    }
    if !lines[0].contains(&case.expected) {
        return Some(format!("the message lacks `{}`", case.expected));
    }
    None
}

#[test]
fn every_bad_input_is_refused_with_one_clear_line() {
    let mut cases = manifest_cases();
    cases.extend(generated_cases());
    let mut failures = Vec::new();
    let mut formats = std::collections::BTreeMap::<&str, usize>::new();
    for case in &cases {
        let outcome = run(case);
        *formats.entry(&case.format).or_default() += 1;
        let verdict = judge(case, &outcome);
        println!(
            "{:<34} {:>6.2} s  {:<4} {}",
            case.name,
            outcome.elapsed.as_secs_f64(),
            if verdict.is_none() { "ok" } else { "FAIL" },
            outcome.stderr.trim_end().replace('\n', " ⏎ ")
        );
        if let Some(why) = verdict {
            failures.push(format!(
                "{}: {why}\n  medseg {}\n  exit {:?}, stderr:\n{}",
                case.name,
                case.args.join(" "),
                outcome.status,
                outcome.stderr
            ));
        }
    }
    let by_format: Vec<String> = formats.iter().map(|(f, n)| format!("{f} {n}")).collect();
    println!(
        "bad-input corpus: {} cases ({}), {} failed",
        cases.len(),
        by_format.join(", "),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
