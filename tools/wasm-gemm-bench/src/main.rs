//! The native rows of scripts/bench-wasm-gemm.sh: the same products as the browser runs,
//! on one thread of this machine, in GFLOP/s: one table row (`| NAME | ROUND | ... |`) per
//! round, in the columns `run.mjs` prints for the browser.
fn main() {
    let shapes = [
        (1024, 256, 256),
        (4096, 64, 192),
        (1024, 1024, 1024),
        (256, 256, 1024),
    ];
    let name = std::env::args().nth(1).unwrap_or_else(|| "native".into());
    for round in 1..=2 {
        let gflops: Vec<String> = shapes
            .iter()
            .map(|&(m, k, n)| {
                let ms = wasm_gemm_bench::run(m, k, n, 5);
                format!("{:.1}", 2.0 * (m * k * n) as f64 / ms / 1e6)
            })
            .collect();
        println!("| {name} | {round} | {} |", gflops.join(" | "));
    }
}
