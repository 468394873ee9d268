//! `medseg`: the command-line face of MedSeg. One file per command, each a thin caller
//! of the application core (`medseg::app`); `medseg COMMAND --help` describes each.

mod bench;
mod bench_video;
mod common;
mod convert;
mod eval;
mod finetune;
mod segment;
mod serve;
mod track;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// MedSAM2 and LiteMedSAM segmentation of images, clips and CT/MR volumes, on the CPU.
#[derive(Parser)]
#[command(name = "medseg", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Segment(segment::Args),
    Track(track::Args),
    Eval(eval::Args),
    Convert(convert::Args),
    Finetune(finetune::Args),
    Bench(bench::Args),
    BenchVideo(bench_video::Args),
    Serve(serve::Args),
}

/// Keeps freed memory in the process for reuse (glibc malloc). By default
/// glibc maps every allocation above its (at most 32 MB) threshold afresh and
/// unmaps it on free, so each large activation (LiteMedSAM's MBConv maps are
/// 67 MB) costs page faults to fault in and zero, plus TLB-shootdown
/// interrupts to unmap: 1.6 M faults and ~30 % of the LiteMedSAM encoder time
/// on a 2-core VM. Served from the heap and never trimmed, those pages are
/// reused from one tensor to the next; the peak resident size is unchanged,
/// only no longer handed back between frames.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    const M_TRIM_THRESHOLD: i32 = -1;
    const M_MMAP_MAX: i32 = -4;
    unsafe extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    // SAFETY: mallopt only adjusts allocator parameters; called before any
    // other thread exists.
    unsafe {
        mallopt(M_MMAP_MAX, 0);
        mallopt(M_TRIM_THRESHOLD, i32::MAX);
    }
}

fn main() -> ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    keep_freed_memory();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print to stdout and succeed; `medseg` alone shows the help.
        Err(e)
            if !e.use_stderr()
                || e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            e.exit()
        }
        Err(e) => {
            eprintln!("medseg: {}", one_line(&e.render().to_string()));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Segment(a) => segment::run(a),
        Command::Track(a) => track::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Convert(a) => convert::run(a),
        Command::Finetune(a) => finetune::run(a),
        Command::Bench(a) => bench::run(a),
        Command::BenchVideo(a) => bench_video::run(a),
        Command::Serve(a) => serve::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("medseg: error: {}", e.trim_end());
            ExitCode::FAILURE
        }
    }
}

/// clap's error as one line of stderr, as the commands' own errors are: its several
/// lines (the error, a tip, the usage, a pointer to --help) become the error and the tip.
fn one_line(clap_message: &str) -> String {
    let kept: Vec<&str> = clap_message
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    format!("{} (see --help)", kept.join(" | "))
}
