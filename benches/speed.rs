//! Speed benchmark: ms per step of an LRE configuration against floors measured in the same
//! run, alternating with its steps so both see the same machine load:
//!
//! - the streaming floor: two plain reads of an n×m f32 matrix (a sum with independent
//!   accumulators), the least memory traffic a GGT step can have, since it reads its window
//!   once for Mᵀg and once for M·u; with the step's thread count and with one thread;
//! - faer's two matrix-vector products over the same matrix (Mᵀg and M·u);
//!
//! and against plain Adam (`basis=identity; chain=[adam]`). Also the n-sized state held, against
//! n·m·4 bytes. A second table times the main curvatures (HVP curvatures through the callback
//! step, per-sample ones through the batch step); a third runs every basis with rank (or
//! history) 100; a fourth runs the default with its GGT window stored in bf16 and f16
//! (`ggt(storage=…)`) against the same f32 floors. Every table covers every size and threads 1
//! and 2. The default and storage tables end with their targets, met or not, with the numbers.
//!
//!     cargo bench --bench speed                 # n = 1e4, 1e5, 1e6, threads 1 and 2
//!     LRE_BENCH_QUICK=1 cargo bench --bench speed   # a seconds-long smoke run (n = 1e4)
//!     LRE_BENCH_ONLY=default,storage cargo bench --bench speed   # a subset of the tables
//!     LRE_BENCH_SIZES=10000,100000 cargo bench --bench speed        # other sizes
//!
//! Every row also goes to a CSV file (`LRE_BENCH_CSV`, default target/speed.csv).
//!
//! The default configuration's numbers are medians over repeated steps after the window is
//! full. The bases' numbers are means (amortized: eigen's compaction runs every ~rank updates,
//! so its window covers two of them) after a warm-up that brings each basis to its full rank.
//! Floors are medians of one measurement after each timed step. Ratios, not absolute times, are
//! the result: the machines are shared and noisy.

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

/// The sum of a slice with 64 independent f32 accumulators, compiled for the CPU's best SIMD
/// level (through `pulp`, as the library's kernels are): adding costs far less than reading, so
/// its time is the time to stream the slice from memory.
struct StreamSum<'a>(&'a [f32]);

impl pulp::WithSimd for StreamSum<'_> {
    type Output = f32;
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> f32 {
        let mut acc = [0.0f32; 64];
        let (chunks, rest) = self.0.as_chunks::<64>();
        for chunk in chunks {
            for i in 0..64 {
                acc[i] += chunk[i];
            }
        }
        acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
    }
}

/// The floors a step is compared with, each measured once per call of `measure` on an n×m f32
/// matrix of its own: two streaming reads of it (with `threads` threads, contiguous parts, and
/// with one), and faer's Mᵀg plus M·u (with `threads`).
struct Floors {
    data: Vec<f32>,
    n: usize,
    m: usize,
    threads: usize,
    arch: pulp::Arch,
    g: Mat<f32>,
    u: Mat<f32>,
    y: Mat<f32>,
    z: Mat<f32>,
    stream: Vec<f64>,
    stream1: Vec<f64>,
    faer: Vec<f64>,
}

/// Medians of the floors, ms.
#[derive(Clone, Copy)]
struct FloorMs {
    stream: f64,
    stream1: f64,
    faer: f64,
}

impl Floors {
    fn new(n: usize, m: usize, threads: usize) -> Self {
        let mut data = vec![0.0f32; n * m];
        Noise(12345).fill(&mut data);
        Floors {
            data,
            n,
            m,
            threads,
            arch: pulp::Arch::new(),
            g: Mat::from_fn(n, 1, |i, _| (i % 7) as f32),
            u: Mat::from_fn(m, 1, |j, _| 1.0 / (j + 1) as f32),
            y: Mat::zeros(m, 1),
            z: Mat::zeros(n, 1),
            stream: Vec::new(),
            stream1: Vec::new(),
            faer: Vec::new(),
        }
    }

    /// ms of two streaming reads of the matrix with `threads` threads.
    fn two_reads(&self, threads: usize) -> f64 {
        let part = self.data.len().div_ceil(threads);
        let arch = self.arch;
        let start = Instant::now();
        for _ in 0..2 {
            let total: f32 = if threads == 1 {
                arch.dispatch(StreamSum(&self.data))
            } else {
                std::thread::scope(|s| {
                    let handles: Vec<_> = self
                        .data
                        .chunks(part)
                        .map(|p| s.spawn(move || arch.dispatch(StreamSum(p))))
                        .collect();
                    handles.into_iter().map(|h| h.join().unwrap()).sum()
                })
            };
            std::hint::black_box(total);
        }
        start.elapsed().as_secs_f64() * 1e3
    }

    /// ms of Mᵀg plus M·u with faer.
    fn two_gemvs(&mut self) -> f64 {
        let par = match self.threads {
            1 => Par::Seq,
            t => Par::rayon(t),
        };
        let q = faer::MatRef::from_column_major_slice(&self.data, self.n, self.m);
        let start = Instant::now();
        matmul(
            self.y.as_mut(),
            Accum::Replace,
            q.transpose(),
            self.g.as_ref(),
            1.0f32,
            par,
        );
        matmul(
            self.z.as_mut(),
            Accum::Replace,
            q,
            self.u.as_ref(),
            1.0f32,
            par,
        );
        let ms = start.elapsed().as_secs_f64() * 1e3;
        std::hint::black_box((&self.y, &self.z));
        ms
    }

    /// One measurement of every floor.
    fn measure(&mut self) {
        let stream = self.two_reads(self.threads);
        self.stream.push(stream);
        let stream1 = match self.threads {
            1 => stream,
            _ => self.two_reads(1),
        };
        self.stream1.push(stream1);
        let faer = self.two_gemvs();
        self.faer.push(faer);
    }

    fn medians(&self) -> FloorMs {
        FloorMs {
            stream: median(self.stream.clone()),
            stream1: median(self.stream1.clone()),
            faer: median(self.faer.clone()),
        }
    }
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

/// What one configuration is timed with: its feed, untimed warm-up steps, timed steps, and the
/// floors measured after each timed step (none for Adam).
struct Timing<'a> {
    feed: Feed,
    warmup: usize,
    steps: usize,
    floors: Option<&'a mut Floors>,
}

/// ms of each timed step and the n-sized state held.
fn time_steps(spec: &str, n: usize, timing: Timing) -> (Vec<f64>, usize) {
    let Timing {
        feed,
        warmup,
        steps,
        mut floors,
    } = timing;
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
            if let Some(f) = floors.as_deref_mut() {
                f.measure();
            }
        }
    }
    (times, opt.memory_bytes())
}

/// Median ms per step of plain Adam (`basis=identity; chain=[adam]`).
fn adam_ms(n: usize, threads: usize, steps: usize) -> f64 {
    let spec = format!("basis=identity; chain=[adam]; threads={threads}");
    let timing = Timing {
        feed: Feed::Gradient,
        warmup: 3,
        steps,
        floors: None,
    };
    median(time_steps(&spec, n, timing).0)
}

/// One measured configuration: a row of a printed table and of the CSV.
struct Row<'a> {
    table: &'a str,
    config: &'a str,
    n: usize,
    threads: usize,
    ms: f64,
    floor: FloorMs,
    adam: f64,
    state_ratio: f64,
}

impl Row<'_> {
    /// ms/step, streaming floor ms, ratio to it, one-thread streaming floor ms, ratio to it,
    /// faer ms, ratio to it, adam ms/step, ratio to adam, state ratio.
    fn measured(&self) -> [f64; 10] {
        let f = self.floor;
        [
            self.ms,
            f.stream,
            self.ms / f.stream,
            f.stream1,
            self.ms / f.stream1,
            f.faer,
            self.ms / f.faer,
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
    const HEADER: &str = "table,config,n,threads,ms_per_step,stream_ms,ratio_stream,stream1_ms,\
                          ratio_stream1,faer_ms,ratio_faer,adam_ms,ratio_adam,state_ratio";

    /// Prints `r` as a Markdown table row and keeps it for the CSV.
    fn record(&mut self, r: &Row) {
        let measured = r.measured();
        // The one-thread floor's own time is in the CSV; the table shows the ratio to it.
        let markdown: Vec<String> = measured
            .iter()
            .zip([2, 2, 2, 0, 2, 2, 2, 2, 1, 3])
            .filter(|&(_, digits)| digits > 0)
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
    println!(
        "LRE speed benchmark, f32. Floors over an n×k f32 matrix, measured after each timed step: \
         stream = two streaming reads (a plain sum) with the row's threads, stream 1t = with one \
         thread, faer = Mᵀg + M·u with faer; adam = basis=identity; chain=[adam]\n"
    );
    if wanted("default") {
        default_configuration(&sizes, quick, &mut csv);
    }
    if wanted("curvatures") {
        curvatures(&sizes, quick, &mut csv);
    }
    if wanted("bases") {
        bases(&sizes, quick, &mut csv);
    }
    if wanted("storage") {
        storage(&sizes, quick, &mut csv);
    }
    csv.write();
}

fn print_header(what: &str) {
    println!(
        "| {what} | n | threads | ms/step | stream ms | /stream | /stream 1t | faer ms | /faer | adam ms/step | /adam | state bytes / (n·k·4) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
}

/// The speed targets of the default configuration, checked at n ≥ 1e6: the step against the
/// streaming floor with its own thread count.
const STREAM_TARGET: f64 = 1.15;
/// The state held against the window's n·m·4 bytes.
const STATE_TARGET: f64 = 1.05;

/// Prints every target with its measured number and whether it is met.
fn print_targets(rows: &[Row]) {
    println!();
    let large: Vec<&Row> = rows.iter().filter(|r| r.n >= 1_000_000).collect();
    if large.is_empty() {
        println!("Targets (checked at n ≥ 1e6): not measured in this run");
    }
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    for r in large {
        let ratio = r.ms / r.floor.stream;
        println!(
            "Target: step ≤ {STREAM_TARGET}× the streaming floor at n = {}, threads = {}: \
             {:.2} ms / {:.2} ms = {ratio:.2} — {}",
            r.n,
            r.threads,
            r.ms,
            r.floor.stream,
            verdict(ratio <= STREAM_TARGET)
        );
    }
    for r in rows {
        println!(
            "Target: state ≤ {STATE_TARGET} × n·m·4 bytes at n = {}, threads = {}: {:.3} — {}",
            r.n,
            r.threads,
            r.state_ratio,
            verdict(r.state_ratio <= STATE_TARGET)
        );
    }
}

/// The default configuration with the window in 16 bits, against the f32 window's floors: the
/// step within 0.6× two streaming reads of the f32 window (half the bytes, and some headroom for
/// the gradient's own passes), the state within 0.51 × n·m·4 bytes.
const HALF_STREAM_TARGET: f64 = 0.6;
const HALF_STATE_TARGET: f64 = 0.51;

/// Prints the 16-bit storage targets with their numbers (the step at n ≥ 1e6, both).
fn print_storage_targets(rows: &[Row]) {
    println!();
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    for r in rows.iter().filter(|r| r.config != "storage=params") {
        let ratio = r.ms / r.floor.stream;
        if r.n >= 1_000_000 {
            println!(
                "Target: {} step ≤ {HALF_STREAM_TARGET}× the f32 streaming floor at n = {}, \
                 threads = {}: {:.2} ms / {:.2} ms = {ratio:.2} — {}",
                r.config,
                r.n,
                r.threads,
                r.ms,
                r.floor.stream,
                verdict(ratio <= HALF_STREAM_TARGET)
            );
        }
        println!(
            "Target: {} state ≤ {HALF_STATE_TARGET} × n·m·4 bytes at n = {}, threads = {}: \
             {:.3} — {}",
            r.config,
            r.n,
            r.threads,
            r.state_ratio,
            verdict(r.state_ratio <= HALF_STATE_TARGET)
        );
    }
}

/// The default configuration (medians after the window is full) at every size and thread count.
fn default_configuration(sizes: &[usize], quick: bool, csv: &mut Csv) {
    println!(
        "Default configuration (covariance, ggt(history_size=100), [adam, cautious, normalize_by_ema])\n"
    );
    let rows = default_rows(sizes, quick, csv, &[("default", "")]);
    print_targets(&rows);
}

/// The default configuration with `storage=bf16` and `storage=f16` next to the f32 window, every
/// row against the f32 window's floors.
fn storage(sizes: &[usize], quick: bool, csv: &mut Csv) {
    println!("\nDefault configuration with the GGT window in 16 bits (ggt(storage=…))\n");
    let configs = ["storage=params", "storage=bf16", "storage=f16"].map(|s| (s, s));
    let rows = default_rows(sizes, quick, csv, &configs);
    print_storage_targets(&rows);
}

/// Rows of the default configuration, ggt's options extended by each config's text (name,
/// options), at every size and thread count.
fn default_rows<'a>(
    sizes: &[usize],
    quick: bool,
    csv: &mut Csv,
    configs: &[(&'a str, &str)],
) -> Vec<Row<'a>> {
    let m = 100;
    let steps = if quick { 5 } else { 15 };
    print_header("config");
    let mut rows = Vec::new();
    for &n in sizes {
        for threads in [1, 2] {
            for &(config, options) in configs {
                let sep = if options.is_empty() { "" } else { ", " };
                let spec = format!("basis=ggt(history_size={m}{sep}{options}); threads={threads}");
                let mut floors = Floors::new(n, m, threads);
                let timing = Timing {
                    feed: Feed::Gradient,
                    warmup: m,
                    steps,
                    floors: Some(&mut floors),
                };
                let (lre, state) = time_steps(&spec, n, timing);
                let row = Row {
                    table: if options.is_empty() {
                        "default"
                    } else {
                        "storage"
                    },
                    config,
                    n,
                    threads,
                    ms: median(lre),
                    floor: floors.medians(),
                    adam: adam_ms(n, threads, steps),
                    state_ratio: state as f64 / (n * m * 4) as f64,
                };
                csv.record(&row);
                rows.push(row);
            }
        }
    }
    rows
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
            let adam = adam_ms(n, threads, steps);
            for &(curvature, feed) in rows {
                let spec = format!(
                    "curvature={curvature}; basis=ggt(history_size={m}); threads={threads}"
                );
                let mut floors = Floors::new(n, m, threads);
                let timing = Timing {
                    feed,
                    warmup: m,
                    steps,
                    floors: Some(&mut floors),
                };
                let (times, state) = time_steps(&spec, n, timing);
                let row = Row {
                    table: "curvatures",
                    config: curvature,
                    n,
                    threads,
                    ms: median(times),
                    floor: floors.medians(),
                    adam,
                    state_ratio: state as f64 / (n * m * 4) as f64,
                };
                csv.record(&row);
            }
        }
    }
}

/// Every basis at rank (history) 100, threads 1 and 2, f32, against the floors.
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
        let adam = adam_ms(n, threads, reps);
        for &(basis, warmup, steps) in rows {
            let spec = format!("basis={basis}; threads={threads}");
            let mut floors = Floors::new(n, k, threads);
            let timing = Timing {
                feed: Feed::Gradient,
                warmup: warmup.div_ceil(scale),
                steps: steps.div_ceil(scale),
                floors: Some(&mut floors),
            };
            let (times, state) = time_steps(&spec, n, timing);
            let row = Row {
                table: "bases",
                config: basis,
                n,
                threads,
                ms: mean(&times),
                floor: floors.medians(),
                adam,
                state_ratio: state as f64 / (n * k * 4) as f64,
            };
            csv.record(&row);
        }
    }
}
