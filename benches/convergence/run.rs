//! Training one configuration on one task at one learning rate, and picking the best learning
//! rate of a grid.

use crate::task::Task;
use lre::{CpuOptimizer, Status};
use std::time::Instant;

/// A run stops as diverged once the loss exceeds this multiple of the initial loss.
const DIVERGED: f64 = 1e3;

/// The loss at every step and the seconds since the run began when it was measured; index s is
/// the loss at the parameters after s steps (for a stochastic task: smoothed, and the mean over
/// its seeds).
pub struct Run {
    pub lr: f64,
    pub losses: Vec<f64>,
    pub seconds: Vec<f64>,
    pub outcome: Outcome,
    /// Gradient evaluations per step: 1 plus the Hessian-vector products.
    pub evaluations_per_step: usize,
    /// Held-out accuracy at the end (mean over seeds), for classifiers with a test split.
    pub accuracy: Option<f64>,
}

pub enum Outcome {
    Finished,
    /// The loss became non-finite or blew up at this step.
    Diverged(usize),
    /// The optimizer refused a step (its message).
    Failed(String),
}

impl Run {
    pub fn final_loss(&self) -> f64 {
        *self.losses.last().expect("a run measures the initial loss")
    }

    /// The first step whose loss is at or below `target`.
    pub fn steps_to(&self, target: f64) -> Option<usize> {
        self.losses.iter().position(|l| *l <= target)
    }

    /// Gradient evaluations (HVPs counted) until the loss is at or below `target`.
    pub fn evaluations_to(&self, target: f64) -> Option<usize> {
        self.steps_to(target).map(|s| s * self.evaluations_per_step)
    }

    /// Short description of how the run ended, for the per-lr table.
    pub fn summary(&self) -> String {
        match &self.outcome {
            Outcome::Finished => format!("{:.2e}", self.final_loss()),
            Outcome::Diverged(step) => format!("diverged@{step}"),
            Outcome::Failed(_) => "failed".into(),
        }
    }
}

/// `base` with `lr` set (the spec's own lr, if any, is overridden).
pub fn spec_with_lr(base: &str, lr: f64) -> String {
    if base.is_empty() {
        format!("lr={lr}")
    } else {
        format!("{base}; lr={lr}")
    }
}

/// Whether this build implements every component of `spec`: Ok, or the library's message
/// (`LRE_ERR_UNSUPPORTED`). Any other error is a bug in the benchmark's table.
pub fn available(spec: &str, n: usize) -> Result<(), String> {
    match CpuOptimizer::<f32>::from_spec(spec, n) {
        Ok(_) => Ok(()),
        Err(e) if e.status == Status::LRE_ERR_UNSUPPORTED => Err(e.message),
        Err(e) => panic!("benchmark spec {spec:?}: {e}"),
    }
}

/// Trains `spec` (f32) at `lr` for `steps` steps on every seed of the task; the losses are
/// smoothed over the task's window and averaged over the seeds. A seed that diverges or fails
/// ends the run with its outcome.
pub fn train(task: &dyn Task, spec: &str, lr: f64, steps: usize) -> Run {
    let mut runs = Vec::new();
    for seed in 0..task.seeds() {
        let mut run = train_seed(task, spec, lr, steps, seed);
        if !matches!(run.outcome, Outcome::Finished) {
            return run;
        }
        run.losses = trailing_mean(&run.losses, task.smoothing());
        runs.push(run);
    }
    let count = runs.len() as f64;
    let mean = |pick: fn(&Run) -> &Vec<f64>| -> Vec<f64> {
        (0..=steps)
            .map(|i| runs.iter().map(|r| pick(r)[i]).sum::<f64>() / count)
            .collect()
    };
    Run {
        lr,
        losses: mean(|r| &r.losses),
        seconds: mean(|r| &r.seconds),
        outcome: Outcome::Finished,
        evaluations_per_step: runs[0].evaluations_per_step,
        accuracy: runs[0]
            .accuracy
            .map(|_| runs.iter().filter_map(|r| r.accuracy).sum::<f64>() / count),
    }
}

/// Entry i is the mean of `values` over the `window` entries ending at i (fewer at the start).
fn trailing_mean(values: &[f64], window: usize) -> Vec<f64> {
    (0..values.len())
        .map(|i| {
            let part = &values[(i + 1).saturating_sub(window)..=i];
            part.iter().sum::<f64>() / part.len() as f64
        })
        .collect()
}

/// One seed's run. Each step passes what the configuration's curvature asks for:
/// Hessian-vector products from the task, the loss.
fn train_seed(task: &dyn Task, spec: &str, lr: f64, steps: usize, seed: u64) -> Run {
    let init = task.init_seeded(seed);
    let n = init.len();
    let mut opt =
        CpuOptimizer::<f32>::from_spec(&spec_with_lr(spec, lr), n).expect("available spec");
    let needs = opt.requirements();
    assert!(
        !needs.samples,
        "per-sample curvatures need a batch step; the benchmark tasks give summed gradients"
    );
    let mut x: Vec<f32> = init.iter().map(|v| *v as f32).collect();
    let mut x64 = init;
    let (mut g64, mut g32) = (vec![0.0f64; n], vec![0.0f32; n]);
    let mut v64 = vec![0.0f64; n];
    let mut hv64 = vec![0.0f64; n];
    let mut run = Run {
        lr,
        losses: Vec::with_capacity(steps + 1),
        seconds: Vec::with_capacity(steps + 1),
        outcome: Outcome::Finished,
        evaluations_per_step: 1 + needs.probes,
        accuracy: None,
    };
    let start = Instant::now();
    for step in 0..=steps {
        x64.iter_mut().zip(&x).for_each(|(d, s)| *d = f64::from(*s));
        let loss = task.step_loss_grad(seed, step, &x64, &mut g64);
        run.losses.push(loss);
        run.seconds.push(start.elapsed().as_secs_f64());
        if !loss.is_finite() || loss > DIVERGED * run.losses[0].abs().max(1e-30) {
            run.outcome = Outcome::Diverged(step);
            break;
        }
        if step == steps {
            run.accuracy = task.test_accuracy(&x64);
            break;
        }
        g32.iter_mut().zip(&g64).for_each(|(d, s)| *d = *s as f32);
        if needs.loss {
            opt.set_loss(loss).expect("finite loss");
        }
        let stepped = if needs.probes > 0 {
            opt.step_with_hvp(&mut x, &g32, |v, hv| {
                v64.iter_mut().zip(v).for_each(|(d, s)| *d = f64::from(*s));
                task.step_hvp(seed, step, &x64, &v64, &mut hv64);
                hv.iter_mut().zip(&hv64).for_each(|(d, s)| *d = *s as f32);
                true
            })
        } else {
            opt.step(&mut x, &g32)
        };
        if let Err(e) = stepped {
            run.outcome = Outcome::Failed(e.to_string());
            break;
        }
    }
    run
}

/// Every learning rate of `grid`, one after the other (so wall times are not shared), and the
/// index of the best one by final loss among the runs that finished.
pub fn sweep(task: &dyn Task, spec: &str, grid: &[f64], steps: usize) -> (Vec<Run>, Option<usize>) {
    let runs: Vec<Run> = grid
        .iter()
        .map(|&lr| train(task, spec, lr, steps))
        .collect();
    let best = runs
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r.outcome, Outcome::Finished))
        .min_by(|a, b| a.1.final_loss().total_cmp(&b.1.final_loss()))
        .map(|(i, _)| i);
    (runs, best)
}
