//! The stochastic task: a 64–32–10 tanh MLP classifying scikit-learn's digits with softmax
//! cross-entropy, trained on minibatches of 32 from a fixed 80 % training split; the other 20 %
//! is held out for the test accuracy. Each seed draws its own initial weights and minibatch
//! order; the reported loss is the minibatch loss averaged over the last 50 steps. H·v is a
//! central finite difference of the same minibatch's gradient.

use crate::dense::Dense;
use crate::logistic::{Dataset, softmax};
use crate::task::{Rng, Task, finite_difference_hvp};

const NET: Dense = Dense {
    widths: &[64, 32, 10],
};
const BATCH: usize = 32;
const SEEDS: u64 = 3;
const WINDOW: usize = 50;
/// Every fifth sample (after a seeded shuffle) is held out.
const TEST_EVERY: usize = 5;

pub struct Minibatch {
    data: Dataset,
    train: Vec<usize>,
    test: Vec<usize>,
}

/// The indices 0..len in a seeded random order (Fisher–Yates).
fn shuffled(len: usize, rng: &mut Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    for i in (1..len).rev() {
        let j = ((rng.uniform() + 0.5) * (i + 1) as f64) as usize;
        order.swap(i, j.min(i));
    }
    order
}

impl Minibatch {
    pub fn new(data: Dataset) -> Self {
        let order = shuffled(data.labels.len(), &mut Rng(0x5eed));
        let held_out = |position: usize| position.is_multiple_of(TEST_EVERY);
        let pick = |test: bool| -> Vec<usize> {
            (0..order.len())
                .filter(|&p| held_out(p) == test)
                .map(|p| order[p])
                .collect()
        };
        Minibatch {
            train: pick(false),
            test: pick(true),
            data,
        }
    }

    /// Seed `seed`'s minibatch at `step`: the training split reshuffled every epoch.
    fn batch(&self, seed: u64, step: usize) -> Vec<usize> {
        let per_epoch = self.train.len() / BATCH;
        let epoch = (step / per_epoch) as u64;
        let order = shuffled(self.train.len(), &mut Rng((seed + 1) << 32 | (epoch + 1)));
        let start = (step % per_epoch) * BATCH;
        order[start..start + BATCH]
            .iter()
            .map(|&i| self.train[i])
            .collect()
    }

    /// Mean cross-entropy over `samples` and its gradient.
    fn loss_grad_on(&self, samples: &[usize], params: &[f64], grad: &mut [f64]) -> f64 {
        grad.fill(0.0);
        let scale = 1.0 / samples.len() as f64;
        let mut loss = 0.0;
        for &i in samples {
            let acts = NET.forward(params, self.data.features.row(i));
            let mut p = acts.last().unwrap().clone();
            let label = self.data.labels[i];
            loss += (softmax(&mut p) - acts.last().unwrap()[label]) * scale;
            p[label] -= 1.0;
            p.iter_mut().for_each(|d| *d *= scale);
            NET.backward(params, &acts, p, grad);
        }
        loss
    }
}

impl Task for Minibatch {
    fn id(&self) -> &'static str {
        "minibatch"
    }

    fn title(&self) -> String {
        format!(
            "digits MLP 64-32-10 tanh, minibatch {BATCH} of {} training samples, {} held out, \
             {SEEDS} seeds, loss averaged over {WINDOW} steps (n={})",
            self.train.len(),
            self.test.len(),
            NET.len()
        )
    }

    fn init(&self) -> Vec<f64> {
        self.init_seeded(0)
    }

    /// The full training split's loss (for the derivative check).
    fn loss_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        self.loss_grad_on(&self.train, x, grad)
    }

    fn hvp_kind(&self) -> &'static str {
        "central finite difference of the minibatch gradient"
    }

    fn seeds(&self) -> u64 {
        SEEDS
    }

    fn init_seeded(&self, seed: u64) -> Vec<f64> {
        NET.init(&mut Rng(0xd161 + seed))
    }

    fn step_loss_grad(&self, seed: u64, step: usize, x: &[f64], grad: &mut [f64]) -> f64 {
        self.loss_grad_on(&self.batch(seed, step), x, grad)
    }

    fn step_hvp(&self, seed: u64, step: usize, x: &[f64], v: &[f64], hv: &mut [f64]) {
        let batch = self.batch(seed, step);
        finite_difference_hvp(|p, g| self.loss_grad_on(&batch, p, g), x, v, hv);
    }

    fn smoothing(&self) -> usize {
        WINDOW
    }

    fn test_accuracy(&self, x: &[f64]) -> Option<f64> {
        let correct = self
            .test
            .iter()
            .filter(|&&i| {
                let out = NET.forward(x, self.data.features.row(i)).pop().unwrap();
                let guess = (0..out.len()).max_by(|&a, &b| out[a].total_cmp(&out[b]));
                guess == Some(self.data.labels[i])
            })
            .count();
        Some(correct as f64 / self.test.len() as f64)
    }
}
