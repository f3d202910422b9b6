//! What sharding costs: one optimizer over P = 1, 2, 4 MPI ranks (OpenMPI, installed as the
//! tests install it) at the same global n, against the unsharded optimizer in one process,
//! measured in the same run (benches/mpi_cost.c does the stepping). Per step: all-reduce calls,
//! bytes all-reduced, the median step time (the slowest rank's) and its ratio to the
//! single-process step. This machine has 2 cores, so P = 4 oversubscribes them: the table shows
//! overhead, not speed-up. Then the same per-step bytes at n = 1e9, P = 8 against a gradient
//! all-reduce and Distributed Shampoo's all-gather of the search direction.
//!
//!     cargo bench --bench sharded                     # n = 2^20, 120 warm-up + 30 timed steps
//!     LRE_BENCH_QUICK=1 cargo bench --bench sharded   # a seconds-long smoke run (n = 2^14)
//!     LRE_BENCH_N=4000000 cargo bench --bench sharded # another global n

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/mpi.rs"]
mod mpi;
#[path = "../tests/common/process.rs"]
mod process;
#[path = "../tests/common/setup.rs"]
mod setup;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Configurations measured (f32): the default (GGT, window of 100) and the eigen basis.
const SPECS: &[&str] = &["", "basis=eigen; chain=[adam]"];

/// One line of benches/mpi_cost.c.
struct Measured {
    calls: f64,
    doubles: f64,
    seconds: f64,
}

fn compile() -> PathBuf {
    let root = process::crate_root();
    let lib = common::linkable_library_dir();
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mpi_cost");
    let mut mpicc = Command::new("mpicc");
    mpicc
        .args([
            "-std=c99",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
        ])
        .arg(format!("-I{}", root.join("include").display()))
        .arg(format!("-I{}", root.join("tests/c").display()))
        .arg(root.join("benches/mpi_cost.c"))
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", lib.display()))
        .arg("-llre")
        .arg(format!("-Wl,-rpath,{}", lib.display()));
    process::run_ok(&mut mpicc, "compiling benches/mpi_cost.c");
    exe
}

fn measure(exe: &Path, ranks: usize, mode: &str, args: &[String]) -> Measured {
    let mut mpirun = mpi::mpirun(ranks, exe);
    mpirun.arg(mode).args(args);
    let out = process::run_ok(&mut mpirun, &format!("mpi_cost {mode} on {ranks} ranks"));
    let fields: Vec<f64> = out
        .split_whitespace()
        .skip(2)
        .map(|f| f.parse().expect("a number"))
        .collect();
    Measured {
        calls: fields[0],
        doubles: fields[1],
        seconds: fields[2],
    }
}

fn main() {
    mpi::install();
    let quick = std::env::var_os("LRE_BENCH_QUICK").is_some();
    let n: usize = std::env::var("LRE_BENCH_N")
        .ok()
        .map(|v| v.parse().expect("LRE_BENCH_N: a number of rows"))
        .unwrap_or(if quick { 1 << 14 } else { 1 << 20 });
    let (warmup, timed) = if quick { (5, 5) } else { (120, 30) };
    let exe = compile();
    println!("Sharded step cost, f32, global n = {n}, {warmup} warm-up + {timed} timed steps");
    println!(
        "| spec | P | all-reduce calls/step | bytes all-reduced/step | ms/step | vs one process |"
    );
    println!("|---|---|---|---|---|---|");
    let mut widest = 0.0f64;
    for spec in SPECS {
        let args = [n, warmup, timed].map(|v| v.to_string());
        let args = [&args[..], &[spec.to_string()]].concat();
        let single = measure(&exe, 1, "single", &args);
        let name = if spec.is_empty() { "default" } else { spec };
        println!(
            "| {name} | unsharded | 0 | 0 | {:.2} | 1.00 |",
            single.seconds * 1e3
        );
        for ranks in [1, 2, 4] {
            let m = measure(&exe, ranks, "sharded", &args);
            widest = widest.max(8.0 * m.doubles);
            println!(
                "| {name} | {ranks} | {:.0} | {:.0} | {:.2} | {:.2} |",
                m.calls,
                8.0 * m.doubles,
                m.seconds * 1e3,
                m.seconds / single.seconds
            );
        }
    }
    // Per rank and step at n = 1e9, P = 8, ring collectives (each rank sends 2(P−1)/P of an
    // all-reduced buffer and (P−1)/P of an all-gathered one).
    let (big_n, p) = (1e9, 8.0);
    let ring = 2.0 * (p - 1.0) / p;
    println!(
        "\nAt n = 1e9, P = 8, per rank and step: LRE's all-reduce {:.0} bytes (the most above; \
         independent of n), a gradient all-reduce (f32) {:.1} GB, Distributed Shampoo's \
         all-gather of the search direction (bf16) {:.2} GB",
        ring * widest,
        ring * 4.0 * big_n / 1e9,
        (p - 1.0) / p * 2.0 * big_n / 1e9
    );
}
