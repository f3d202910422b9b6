//! Speed benchmark: ms per step of an LRE configuration against the bandwidth floor measured in
//! the same run (two matrix-vector passes over an n×m f32 matrix with faer: Mᵀg and M·u), and
//! against plain Adam (`basis=identity; chain=[adam]`). Also the n-sized state held, against
//! n·m·4 bytes. A second table times the main curvatures (HVP curvatures through the callback
//! step, per-sample ones through the batch step); a third runs every basis with rank (or
//! history) 100. Every table covers every size and threads 1 and 2.
//!
//!     cargo bench --bench speed                 # n = 1e4, 1e5, 1e6, threads 1 and 2
//!     LRE_BENCH_QUICK=1 cargo bench --bench speed   # a seconds-long smoke run (n = 1e4)
//!     LRE_BENCH_ONLY=default,curvatures cargo bench --bench speed   # a subset of the tables
//!     LRE_BENCH_SIZES=10000,100000 cargo bench --bench speed        # other sizes
//!
//! Every row also goes to a CSV file (`LRE_BENCH_CSV`, default target/speed.csv).
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

/// How one benchmark step feeds the optimizer: a gradient, a gradient plus an HVP callback
/// (a diagonal Hessian, O(n), so the callback adds little to what is timed), or a batch of
/// per-sample gradients with their residuals.
#[derive(Clone, Copy)]
enum Feed {
    Gradient,
    Hvp,
    Batch(usize),
}

/// ms of each of `steps` timed steps, after `warmup` untimed ones, and the n-sized state held.
fn time_steps(spec: &str, n: usize, warmup: usize, steps: usize) -> (Vec<f64>, usize) {
    time_fed_steps(spec, n, Feed::Gradient, warmup, steps)
}

fn time_fed_steps(
    spec: &str,
    n: usize,
    feed: Feed,
    warmup: usize,
    steps: usize,
) -> (Vec<f64>, usize) {
    let mut opt = CpuOptimizer::<f32>::from_spec(spec, n).expect("benchmark spec");
    let mut x = vec![0.0f32; n];
    let rows = match feed {
        Feed::Batch(batch) => batch,
        Feed::Gradient | Feed::Hvp => 1,
    };
    let mut g = vec![0.0f32; n * rows];
    let residuals: Vec<f64> = (0..rows).map(|i| 1.0 + i as f64).collect();
    let mut noise = Noise(0x9e3779b97f4a7c15);
    let mut times = Vec::with_capacity(steps);
    for i in 0..warmup + steps {
        noise.fill(&mut g);
        let start = Instant::now();
        match feed {
            Feed::Gradient => opt.step(&mut x, &g),
            Feed::Hvp => opt.step_with_hvp(&mut x, &g, |v, hv| {
                for (j, (out, vj)) in hv.iter_mut().zip(v).enumerate() {
                    *out = (1 + j % 7) as f32 * vj;
                }
                true
            }),
            Feed::Batch(batch) => opt.step_batch(&mut x, &g, batch, Some(&residuals)),
        }
        .expect("benchmark step");
        if i >= warmup {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    (times, opt.memory_bytes())
}

/// One measured configuration: a row of a printed table and of the CSV.
struct Row<'a> {
    table: &'a str,
    config: &'a str,
    n: usize,
    threads: usize,
    ms: f64,
    floor: f64,
    adam: f64,
    state_ratio: f64,
}

impl Row<'_> {
    /// ms/step, floor ms, ratio to the floor, adam ms/step, ratio to adam, state ratio.
    fn measured(&self) -> [f64; 6] {
        [
            self.ms,
            self.floor,
            self.ms / self.floor,
            self.adam,
            self.ms / self.adam,
            self.state_ratio,
        ]
    }
}

/// Every row of every table, also written as CSV (`LRE_BENCH_CSV`, default
/// target/speed.csv) so runs can be compared by a script.
struct Csv(Vec<String>);

impl Csv {
    const HEADER: &str =
        "table,config,n,threads,ms_per_step,floor_ms,ratio_floor,adam_ms,ratio_adam,state_ratio";

    /// Prints `r` as a Markdown table row and keeps it for the CSV.
    fn record(&mut self, r: &Row) {
        let measured = r.measured();
        let markdown: Vec<String> = measured
            .iter()
            .zip([2, 2, 2, 2, 1, 3])
            .map(|(v, digits)| format!("{v:.digits$}"))
            .collect();
        println!(
            "| {} | {} | {} | {} |",
            r.config,
            r.n,
            r.threads,
            markdown.join(" | ")
        );
        let csv: Vec<String> = measured.iter().map(|v| format!("{v:.4}")).collect();
        self.0.push(format!(
            "{},\"{}\",{},{},{}",
            r.table,
            r.config,
            r.n,
            r.threads,
            csv.join(",")
        ));
    }

    fn write(&self) {
        let path = std::env::var("LRE_BENCH_CSV").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/target/speed.csv").to_string()
        });
        let text = std::iter::once(Self::HEADER.to_string())
            .chain(self.0.iter().cloned())
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&path, text + "\n").expect("write the speed CSV");
        println!("\nCSV: {path}");
    }
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

/// n values: `LRE_BENCH_SIZES` (comma-separated), else 1e4 in the smoke run and 1e4, 1e5, 1e6.
fn sizes(quick: bool) -> Vec<usize> {
    match std::env::var("LRE_BENCH_SIZES") {
        Ok(list) => list
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .expect("LRE_BENCH_SIZES: comma-separated integers")
            })
            .collect(),
        Err(_) if quick => vec![10_000],
        Err(_) => vec![10_000, 100_000, 1_000_000],
    }
}

/// The tables `LRE_BENCH_ONLY` (comma-separated: default, curvatures, bases) selects; all by
/// default.
fn wanted(table: &str) -> bool {
    std::env::var("LRE_BENCH_ONLY").map_or(true, |only| only.split(',').any(|t| t.trim() == table))
}

fn main() {
    let quick = std::env::var_os("LRE_BENCH_QUICK").is_some();
    let sizes = sizes(quick);
    let mut csv = Csv(Vec::new());
    if wanted("default") {
        default_configuration(&sizes, quick, &mut csv);
    }
    if wanted("curvatures") {
        curvatures(&sizes, quick, &mut csv);
    }
    if wanted("bases") {
        bases(&sizes, quick, &mut csv);
    }
    csv.write();
}

fn print_header(what: &str) {
    println!(
        "| {what} | n | threads | ms/step | floor ms | /floor | adam ms/step | /adam | state bytes / (n·k·4) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
}

/// The default configuration (medians after the window is full) at every size and thread count.
fn default_configuration(sizes: &[usize], quick: bool, csv: &mut Csv) {
    let m = 100;
    let steps = if quick { 5 } else { 15 };
    println!(
        "LRE speed benchmark, f32. floor = Mᵀg + M·u over an n×k f32 matrix (faer), same run; adam = basis=identity; chain=[adam]\n"
    );
    println!(
        "Default configuration (covariance, ggt(history_size={m}), [adam, cautious, normalize_by_ema])\n"
    );
    print_header("config");
    for &n in sizes {
        for threads in [1, 2] {
            let spec = format!("basis=ggt(history_size={m}); threads={threads}");
            let (lre, state) = time_steps(&spec, n, m, steps);
            let adam_spec = format!("basis=identity; chain=[adam]; threads={threads}");
            let row = Row {
                table: "default",
                config: "default",
                n,
                threads,
                ms: median(lre),
                floor: floor_ms(n, m, threads, steps),
                adam: median(time_steps(&adam_spec, n, 3, steps).0),
                state_ratio: state as f64 / (n * m * 4) as f64,
            };
            csv.record(&row);
        }
    }
}

/// The main curvatures on the default basis and chain: HVP curvatures through the callback step
/// (a diagonal Hessian), per-sample ones through the batch step (8 samples).
fn curvatures(sizes: &[usize], quick: bool, csv: &mut Csv) {
    let m = 100;
    let steps = if quick { 5 } else { 15 };
    let rows: &[(&str, Feed)] = &[
        ("covariance", Feed::Gradient),
        ("full_hutchinson_hessian", Feed::Hvp),
        ("bfgs", Feed::Hvp),
        ("sr1", Feed::Hvp),
        ("empirical_fisher", Feed::Batch(8)),
        ("gauss_newton", Feed::Batch(8)),
    ];
    println!("\nCurvatures with ggt(history_size={m}) and the default chain (medians)\n");
    print_header("curvature");
    for &n in sizes {
        for threads in [1, 2] {
            let floor = floor_ms(n, m, threads, steps);
            let adam_spec = format!("basis=identity; chain=[adam]; threads={threads}");
            let adam = median(time_steps(&adam_spec, n, 3, steps).0);
            for &(curvature, feed) in rows {
                let spec = format!(
                    "curvature={curvature}; basis=ggt(history_size={m}); threads={threads}"
                );
                let (times, state) = time_fed_steps(&spec, n, feed, m, steps);
                let row = Row {
                    table: "curvatures",
                    config: curvature,
                    n,
                    threads,
                    ms: median(times),
                    floor,
                    adam,
                    state_ratio: state as f64 / (n * m * 4) as f64,
                };
                csv.record(&row);
            }
        }
    }
}

/// Every basis at rank (history) 100, threads 1 and 2, f32, against the floor.
fn bases(sizes: &[usize], quick: bool, csv: &mut Csv) {
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
    println!("\nEvery basis, rank (history) {k}, default chain (means, amortized)\n");
    print_header("basis");
    for (&n, threads) in sizes.iter().flat_map(|n| [(n, 1), (n, 2)]) {
        let floor = floor_ms(n, k, threads, reps);
        let adam_spec = format!("basis=identity; chain=[adam]; threads={threads}");
        let adam = median(time_steps(&adam_spec, n, 3, reps).0);
        for &(basis, warmup, steps) in rows {
            let spec = format!("basis={basis}; threads={threads}");
            let (times, state) =
                time_steps(&spec, n, warmup.div_ceil(scale), steps.div_ceil(scale));
            let row = Row {
                table: "bases",
                config: basis,
                n,
                threads,
                ms: mean(&times),
                floor,
                adam,
                state_ratio: state as f64 / (n * k * 4) as f64,
            };
            csv.record(&row);
        }
    }
}
