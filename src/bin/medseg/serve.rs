//! `medseg serve`: the static file server of `scripts/serve.sh` (loopback only).

use std::path::PathBuf;

use crate::common::CliResult;

/// Serve a folder (the app) on http://127.0.0.1:PORT/.
#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = ".")]
    root: PathBuf,
    #[arg(long, default_value_t = 8080)]
    port: u16,
}

pub fn run(a: Args) -> CliResult {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], a.port));
    println!("serving {} on http://{addr}/", a.root.display());
    medseg::serve::serve(&a.root, addr).map_err(|e| format!("serve: {e}"))
}
