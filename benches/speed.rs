//! Speed benchmark: ms per step of an LRE configuration against the bandwidth floor measured in
//! the same run (two matrix-vector passes over an n×m f32 matrix with faer: Mᵀg and M·u), and
//! against plain Adam (`basis=identity; chain=[adam]`). Also the n-sized state held, against
//! n·m·4 bytes. A second table runs every basis with rank (or history) 100 at the largest n,
//! one thread, against the same floor.
//!
//!     cargo bench --bench speed                 # n = 1e5 and 1e6, threads 1 and 2; bases at 1e6
//!     LRE_BENCH_QUICK=1 cargo bench --bench speed   # a seconds-long smoke run (n = 1e4)
//!
//! The default configuration's numbers are medians over repeated steps after the window is
//! full. The bases' numbers are means (amortized: eigen's compaction runs every ~rank updates,
//! so its window covers two of them) after a warm-up that brings each basis to its full rank.
//! Ratios, not absolute times, are the result: the machines are shared and noisy.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par};
use lre::CpuOptimizer;
use std::time::Instant;

/// Cheap deterministic pseudo-random gradients (the generator is not what we time).
struct Noise(u64);

impl Noise {
    fn fill(&mut self, out: &mut [f32]) {
        for v in out {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *v = (self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        }
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// ms of each of `steps` timed steps, after `warmup` untimed ones, and the n-sized state held.
fn time_steps(spec: &str, n: usize, warmup: usize, steps: usize) -> (Vec<f64>, usize) {
    let mut opt = CpuOptimizer::<f32>::from_spec(spec, n).expect("benchmark spec");
    let mut x = vec![0.0f32; n];
    let mut g = vec![0.0f32; n];
    let mut noise = Noise(0x9e3779b97f4a7c15);
    let mut times = Vec::with_capacity(steps);
    for i in 0..warmup + steps {
        noise.fill(&mut g);
        let start = Instant::now();
        opt.step(&mut x, &g).expect("benchmark step");
        if i >= warmup {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    (times, opt.memory_bytes())
}

/// Median ms of Mᵀg plus M·u for an n×m f32 matrix (faer, `threads` threads).
fn floor_ms(n: usize, m: usize, threads: usize, reps: usize) -> f64 {
    let par = if threads == 1 {
        Par::Seq
    } else {
        Par::rayon(threads)
    };
    let mut noise = Noise(12345);
    let mut data = vec![0.0f32; n * m];
    noise.fill(&mut data);
    let q = faer::MatRef::from_column_major_slice(&data, n, m);
    let mut g = Mat::<f32>::zeros(n, 1);
    let mut u = Mat::<f32>::zeros(m, 1);
    let mut y = Mat::<f32>::zeros(m, 1);
    let mut z = Mat::<f32>::zeros(n, 1);
    for i in 0..n {
        g[(i, 0)] = (i % 7) as f32;
    }
    for j in 0..m {
        u[(j, 0)] = 1.0 / (j + 1) as f32;
    }
    let times = (0..reps)
        .map(|_| {
            let start = Instant::now();
            matmul(
                y.as_mut(),
                Accum::Replace,
                q.transpose(),
                g.as_ref(),
                1.0f32,
                par,
            );
            matmul(z.as_mut(), Accum::Replace, q, u.as_ref(), 1.0f32, par);
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    std::hint::black_box((&y, &z));
    median(times)
}

fn main() {
    let quick = std::env::var_os("LRE_BENCH_QUICK").is_some();
    let m = 100;
    let sizes: &[usize] = if quick {
        &[10_000]
    } else {
        &[100_000, 1_000_000]
    };
    let steps = if quick { 5 } else { 15 };
    println!(
        "LRE speed benchmark: default configuration (covariance, ggt(history_size={m}), [adam, cautious, normalize_by_ema]), f32"
    );
    println!(
        "floor = Mᵀg + M·u over an n×{m} f32 matrix (faer), same run; adam = basis=identity; chain=[adam]\n"
    );
    println!(
        "| n | threads | LRE ms/step | floor ms | LRE/floor | adam ms/step | LRE/adam | state bytes / (n·m·4) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &n in sizes {
        for threads in [1, 2] {
            let spec = format!("basis=ggt(history_size={m}); threads={threads}");
            let (lre, state) = time_steps(&spec, n, m, steps);
            let lre_ms = median(lre);
            let floor = floor_ms(n, m, threads, steps);
            let adam_spec = format!("basis=identity; chain=[adam]; threads={threads}");
            let adam_ms = median(time_steps(&adam_spec, n, 3, steps).0);
            println!(
                "| {n} | {threads} | {lre_ms:.2} | {floor:.2} | {:.2} | {adam_ms:.2} | {:.1} | {:.3} |",
                lre_ms / floor,
                lre_ms / adam_ms,
                state as f64 / (n * m * 4) as f64
            );
        }
    }
    bases(*sizes.last().expect("a size"), quick);
}

/// Every basis at rank (history) 100 on n parameters, one thread, f32, against the floor.
fn bases(n: usize, quick: bool) {
    let k = 100;
    // (basis, warm-up updates, timed updates): the warm-up brings the basis to its full rank
    // (eigen: past its first compaction at 2k columns); eigen's timed window covers two
    // compactions. The sketches and hebbian_learning cost seconds per update at n = 1e6.
    let rows: &[(&str, usize, usize)] = &[
        ("ggt(history_size=100)", k, 30),
        ("eigen(rank=100)", 2 * k + 20, 2 * k),
        ("low_rank(rank=100)", 2 * k + 20, 2 * k),
        ("common_directions(rank=100)", k, 30),
        ("randomized_eigen(rank=100)", k, 3),
        ("nystrom(rank=100)", k, 3),
        ("hebbian_learning(rank=100)", 1, 3),
        ("random(rank=100)", 1, 3),
    ];
    let (reps, scale) = if quick { (5, 10) } else { (15, 1) };
    let floor = floor_ms(n, k, 1, reps);
    let adam = median(time_steps("basis=identity; chain=[adam]", n, 3, reps).0);
    println!("\nEvery basis at n = {n}, rank (history) {k}, f32, threads=1, default chain");
    println!(
        "floor = Mᵀg + M·u over an n×{k} f32 matrix: {floor:.2} ms; adam: {adam:.2} ms/step\n"
    );
    println!("| basis | ms/step | basis/floor | basis/adam | state bytes / (n·k·4) |");
    println!("|---|---|---|---|---|");
    for &(basis, warmup, steps) in rows {
        let spec = format!("basis={basis}");
        let (times, state) = time_steps(&spec, n, warmup.div_ceil(scale), steps.div_ceil(scale));
        let ms = mean(&times);
        println!(
            "| {basis} | {ms:.2} | {:.2} | {:.1} | {:.3} |",
            ms / floor,
            ms / adam,
            state as f64 / (n * k * 4) as f64
        );
    }
}
