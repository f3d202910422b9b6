//! What every benchmark task provides, and the pieces tasks share: a seeded generator, dense
//! matrix helpers and a finite-difference Hessian-vector product.
//!
//! Tasks evaluate the loss, gradient and H·v in f64 from the optimizer's f32 parameters, so the
//! reported losses and the finite differences are not limited by f32 rounding in the model.

/// A problem: a starting point, loss + gradient, and Hessian-vector products. Deterministic
/// problems give the full-batch values at every step; a stochastic one overrides the `step_*`
/// methods with a minibatch's, runs several seeds and smooths the losses it reports.
pub trait Task: Sync {
    /// Short name, used in the CSV and in plot file names (`convergence-<id>.png`).
    fn id(&self) -> &'static str;
    /// One line for the tables: what the problem is, with its size.
    fn title(&self) -> String;
    fn init(&self) -> Vec<f64>;
    /// Writes ∇f(x) into `grad` and returns f(x).
    fn loss_grad(&self, x: &[f64], grad: &mut [f64]) -> f64;
    /// Writes H(x)·v into `hv`. The default is a central difference of the gradient.
    fn hvp(&self, x: &[f64], v: &[f64], hv: &mut [f64]) {
        finite_difference_hvp(|p, g| self.loss_grad(p, g), x, v, hv);
    }
    /// How `hvp` is computed, for the report.
    fn hvp_kind(&self) -> &'static str {
        "central finite difference of the gradient"
    }
    /// The minimum of f, where it is known: the plots show f − f* then.
    fn minimum(&self) -> Option<f64> {
        None
    }
    /// Independent repetitions (initial point and minibatch order); the tables average them.
    fn seeds(&self) -> u64 {
        1
    }
    /// The starting point of repetition `seed`.
    fn init_seeded(&self, _seed: u64) -> Vec<f64> {
        self.init()
    }
    /// The loss and gradient the optimizer gets at `step` of repetition `seed`.
    fn step_loss_grad(&self, _seed: u64, _step: usize, x: &[f64], grad: &mut [f64]) -> f64 {
        self.loss_grad(x, grad)
    }
    /// The Hessian-vector product the optimizer gets at `step` of repetition `seed`.
    fn step_hvp(&self, _seed: u64, _step: usize, x: &[f64], v: &[f64], hv: &mut [f64]) {
        self.hvp(x, v, hv)
    }
    /// The reported loss at a step is the mean over this many steps ending there.
    fn smoothing(&self) -> usize {
        1
    }
    /// Held-out accuracy at `x`, for classifiers with a test split.
    fn test_accuracy(&self, _x: &[f64]) -> Option<f64> {
        None
    }
}

/// H·v ≈ (∇f(x + εv) − ∇f(x − εv)) / 2ε with ε = 1e-5·(1 + ‖x‖)/‖v‖ (f64 throughout).
/// `gradient(x, g)` writes ∇f(x) into g (and returns anything).
pub fn finite_difference_hvp<R>(
    gradient: impl Fn(&[f64], &mut [f64]) -> R,
    x: &[f64],
    v: &[f64],
    hv: &mut [f64],
) {
    let v_norm = norm(v);
    if v_norm == 0.0 {
        hv.fill(0.0);
        return;
    }
    let eps = 1e-5 * (1.0 + norm(x)) / v_norm;
    let shifted =
        |sign: f64| -> Vec<f64> { x.iter().zip(v).map(|(a, b)| a + sign * eps * b).collect() };
    let mut minus = vec![0.0; x.len()];
    gradient(&shifted(1.0), hv);
    gradient(&shifted(-1.0), &mut minus);
    hv.iter_mut()
        .zip(&minus)
        .for_each(|(p, m)| *p = (*p - m) / (2.0 * eps));
}

pub fn norm(v: &[f64]) -> f64 {
    v.iter().map(|a| a * a).sum::<f64>().sqrt()
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// A small deterministic generator (xorshift64) for data, rotations and initial weights.
pub struct Rng(pub u64);

impl Rng {
    /// Uniform in [-0.5, 0.5).
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.uniform() + 0.5;
        let v = self.uniform() + 0.5;
        (-2.0 * (1.0 - u).ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    pub fn normals(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.normal()).collect()
    }
}

/// A dense row-major matrix.
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

impl Matrix {
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// out = self·v.
    pub fn times(&self, v: &[f64], out: &mut [f64]) {
        for (o, i) in out.iter_mut().zip(0..self.rows) {
            *o = dot(self.row(i), v);
        }
    }
}

/// An n×n orthogonal matrix: Gram–Schmidt (twice) on Gaussian vectors, rows orthonormal.
pub fn random_rotation(rng: &mut Rng, n: usize) -> Matrix {
    let mut rows: Vec<Vec<f64>> = Vec::with_capacity(n);
    while rows.len() < n {
        let mut v = rng.normals(n);
        for _ in 0..2 {
            for r in &rows {
                let p = dot(r, &v);
                v.iter_mut().zip(r).for_each(|(x, ri)| *x -= p * ri);
            }
        }
        let len = norm(&v);
        rows.push(v.iter().map(|x| x / len).collect());
    }
    Matrix {
        rows: n,
        cols: n,
        data: rows.concat(),
    }
}

/// Checks a task's derivatives at a random point near its start, along a few random directions:
/// ∇f·v against a central difference of f, and (for exact products) H·v against a central
/// difference of ∇f. Panics with the task and the relative error when they disagree.
pub fn check_derivatives(task: &dyn Task) {
    let mut rng = Rng(0xdec1de);
    let x: Vec<f64> = task.init().iter().map(|a| a + 0.1 * rng.normal()).collect();
    let n = x.len();
    let mut grad = vec![0.0; n];
    task.loss_grad(&x, &mut grad);
    for _ in 0..3 {
        let v = rng.normals(n);
        let eps = 1e-6 * (1.0 + norm(&x)) / norm(&v);
        let mut scratch = vec![0.0; n];
        let at =
            |sign: f64| -> Vec<f64> { x.iter().zip(&v).map(|(a, b)| a + sign * eps * b).collect() };
        let slope = (task.loss_grad(&at(1.0), &mut scratch)
            - task.loss_grad(&at(-1.0), &mut scratch))
            / (2.0 * eps);
        let exact = dot(&grad, &v);
        let err = (slope - exact).abs() / exact.abs().max(1e-12);
        assert!(
            err < 1e-5,
            "{}: gradient·v = {exact}, finite difference {slope}",
            task.id()
        );
        let mut hv = vec![0.0; n];
        task.hvp(&x, &v, &mut hv);
        let mut reference = vec![0.0; n];
        finite_difference_hvp(|p, g| task.loss_grad(p, g), &x, &v, &mut reference);
        let diff: Vec<f64> = hv.iter().zip(&reference).map(|(a, b)| a - b).collect();
        let err = norm(&diff) / norm(&reference).max(1e-12);
        assert!(
            err < 1e-5,
            "{}: H·v differs from a finite difference by {err:.1e} (relative)",
            task.id()
        );
    }
}
