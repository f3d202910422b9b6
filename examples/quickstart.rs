//! Quick start: train two small problems with LRE's default configuration and with Adam
//! (`basis=identity; chain=[adam]`), each with its best learning rate from the same grid, and
//! print how they compare.
//!
//!     cargo run --release --example quickstart

use lre::CpuOptimizer;
use std::time::Instant;

const GRID: [f64; 5] = [0.003, 0.01, 0.03, 0.1, 0.3];
const STEPS: usize = 1000;

/// A small deterministic generator for data and initial weights.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    }
}

/// A problem: a starting point and loss + gradient.
trait Problem {
    fn name(&self) -> String;
    fn init(&self) -> Vec<f32>;
    fn loss_grad(&self, x: &[f32], grad: &mut [f32]) -> f64;
}

/// f(x) = ½(x−x*)ᵀ·R·D·Rᵀ·(x−x*): a randomly rotated quadratic with condition number 1e4.
struct Quadratic {
    rotation: Vec<Vec<f64>>,
    diag: Vec<f64>,
    optimum: Vec<f64>,
}

impl Quadratic {
    fn new(n: usize) -> Self {
        let mut rng = Rng(7);
        let mut rotation: Vec<Vec<f64>> = Vec::new();
        while rotation.len() < n {
            let mut v: Vec<f64> = (0..n).map(|_| rng.uniform()).collect();
            for _ in 0..2 {
                for c in &rotation {
                    let p: f64 = c.iter().zip(&v).map(|(a, b)| a * b).sum();
                    v.iter_mut().zip(c).for_each(|(x, ci)| *x -= p * ci);
                }
            }
            let len = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            rotation.push(v.iter().map(|x| x / len).collect());
        }
        let diag = (0..n)
            .map(|i| 1e4f64.powf(i as f64 / (n - 1) as f64))
            .collect();
        let optimum = (0..n).map(|_| 2.0 * rng.uniform()).collect();
        Quadratic {
            rotation,
            diag,
            optimum,
        }
    }
}

impl Problem for Quadratic {
    fn name(&self) -> String {
        format!("rotated quadratic, n={}, cond=1e4", self.optimum.len())
    }
    fn init(&self) -> Vec<f32> {
        vec![0.0; self.optimum.len()]
    }
    fn loss_grad(&self, x: &[f32], grad: &mut [f32]) -> f64 {
        let e: Vec<f64> = x
            .iter()
            .zip(&self.optimum)
            .map(|(a, b)| *a as f64 - b)
            .collect();
        let mut g = vec![0.0f64; x.len()];
        let mut loss = 0.0;
        for (c, d) in self.rotation.iter().zip(&self.diag) {
            let z: f64 = c.iter().zip(&e).map(|(a, b)| a * b).sum();
            loss += 0.5 * d * z * z;
            g.iter_mut().zip(c).for_each(|(gi, ci)| *gi += d * z * ci);
        }
        grad.iter_mut().zip(&g).for_each(|(o, v)| *o = *v as f32);
        loss
    }
}

/// A 2–32–1 tanh MLP fitting y = sin(3·a)·cos(2·b) on 256 points (mean squared error).
struct Mlp {
    inputs: Vec<[f64; 2]>,
    targets: Vec<f64>,
}

const HIDDEN: usize = 32;
/// Layout: W1 (HIDDEN×2), b1 (HIDDEN), w2 (HIDDEN), b2 (1).
const MLP_PARAMS: usize = HIDDEN * 2 + HIDDEN + HIDDEN + 1;

impl Mlp {
    fn new() -> Self {
        let mut rng = Rng(11);
        let inputs: Vec<[f64; 2]> = (0..256)
            .map(|_| [2.0 * rng.uniform(), 2.0 * rng.uniform()])
            .collect();
        let targets = inputs
            .iter()
            .map(|[a, b]| (3.0 * a).sin() * (2.0 * b).cos())
            .collect();
        Mlp { inputs, targets }
    }
}

impl Problem for Mlp {
    fn name(&self) -> String {
        format!(
            "MLP 2-{HIDDEN}-1, {} samples, n={MLP_PARAMS}",
            self.inputs.len()
        )
    }
    fn init(&self) -> Vec<f32> {
        let mut rng = Rng(3);
        (0..MLP_PARAMS).map(|_| rng.uniform() as f32).collect()
    }
    fn loss_grad(&self, x: &[f32], grad: &mut [f32]) -> f64 {
        let p: Vec<f64> = x.iter().map(|v| *v as f64).collect();
        let (w1, rest) = p.split_at(HIDDEN * 2);
        let (b1, rest) = rest.split_at(HIDDEN);
        let (w2, b2) = rest.split_at(HIDDEN);
        let mut g = vec![0.0f64; MLP_PARAMS];
        let mut loss = 0.0;
        let scale = 1.0 / self.inputs.len() as f64;
        for (input, target) in self.inputs.iter().zip(&self.targets) {
            let h: Vec<f64> = (0..HIDDEN)
                .map(|j| (w1[2 * j] * input[0] + w1[2 * j + 1] * input[1] + b1[j]).tanh())
                .collect();
            let out: f64 = h.iter().zip(w2).map(|(a, b)| a * b).sum::<f64>() + b2[0];
            let err = out - target;
            loss += 0.5 * err * err * scale;
            let d_out = err * scale;
            for j in 0..HIDDEN {
                let d_h = d_out * w2[j] * (1.0 - h[j] * h[j]);
                g[2 * j] += d_h * input[0];
                g[2 * j + 1] += d_h * input[1];
                g[HIDDEN * 2 + j] += d_h;
                g[HIDDEN * 3 + j] += d_out * h[j];
            }
            g[HIDDEN * 4] += d_out;
        }
        grad.iter_mut().zip(&g).for_each(|(o, v)| *o = *v as f32);
        loss
    }
}

/// The loss after every step, and the wall time, of one configuration.
fn train(problem: &dyn Problem, spec: &str) -> (Vec<f64>, f64) {
    let mut x = problem.init();
    let mut grad = vec![0.0f32; x.len()];
    let mut opt = CpuOptimizer::<f32>::from_spec(spec, x.len()).expect("valid spec");
    let mut losses = Vec::with_capacity(STEPS + 1);
    let start = Instant::now();
    for _ in 0..STEPS {
        losses.push(problem.loss_grad(&x, &mut grad));
        opt.step(&mut x, &grad).expect("step");
    }
    losses.push(problem.loss_grad(&x, &mut grad));
    (losses, start.elapsed().as_secs_f64())
}

/// The best learning rate of the grid by final loss.
fn best(problem: &dyn Problem, base: &str) -> (f64, Vec<f64>, f64) {
    GRID.iter()
        .map(|lr| {
            let (losses, secs) = train(problem, &format!("{base}lr={lr}"));
            (*lr, losses, secs)
        })
        .filter(|(_, losses, _)| losses[STEPS].is_finite())
        .min_by(|a, b| a.1[STEPS].total_cmp(&b.1[STEPS]))
        .expect("some learning rate converges")
}

fn main() {
    let problems: Vec<Box<dyn Problem>> = vec![Box::new(Quadratic::new(256)), Box::new(Mlp::new())];
    println!(
        "LRE quick start: default configuration vs Adam, {STEPS} steps, f32, best lr of {GRID:?} each\n"
    );
    println!(
        "| problem | optimizer | best lr | loss @100 | loss @300 | final loss | steps to Adam's final loss | time |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for problem in &problems {
        let (adam_lr, adam, adam_secs) = best(problem.as_ref(), "basis=identity; chain=[adam]; ");
        let (lre_lr, lre, lre_secs) = best(problem.as_ref(), "");
        let target = adam[STEPS];
        for (name, lr, losses, secs) in [
            ("LRE (default)", lre_lr, &lre, lre_secs),
            ("Adam", adam_lr, &adam, adam_secs),
        ] {
            let reach = losses
                .iter()
                .position(|l| *l <= target)
                .map_or("never".to_string(), |s| s.to_string());
            println!(
                "| {} | {name} | {lr} | {:.3e} | {:.3e} | {:.3e} | {reach} | {:.2} s |",
                problem.name(),
                losses[100],
                losses[300],
                losses[STEPS],
                secs
            );
        }
    }
    println!("\nLRE's spec: {}", lre::Config::default());
}
