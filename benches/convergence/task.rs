//! What every benchmark task provides, and the pieces tasks share: a seeded generator, dense
//! matrix helpers and a finite-difference Hessian-vector product.
//!
//! Tasks evaluate the loss, gradient and H·v in f64 from the optimizer's f32 parameters, so the
//! reported losses and the finite differences are not limited by f32 rounding in the model.

/// A deterministic problem: a starting point, loss + gradient, and Hessian-vector products.
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
        finite_difference_hvp(self, x, v, hv);
    }
    /// How `hvp` is computed, for the report.
    fn hvp_kind(&self) -> &'static str {
        "central finite difference of the gradient"
    }
    /// The minimum of f, where it is known: the plots show f − f* then.
    fn minimum(&self) -> Option<f64> {
        None
    }
}

/// H·v ≈ (∇f(x + εv) − ∇f(x − εv)) / 2ε with ε = 1e-5·(1 + ‖x‖)/‖v‖ (f64 throughout).
pub fn finite_difference_hvp<T: Task + ?Sized>(task: &T, x: &[f64], v: &[f64], hv: &mut [f64]) {
    let v_norm = norm(v);
    if v_norm == 0.0 {
        hv.fill(0.0);
        return;
    }
    let eps = 1e-5 * (1.0 + norm(x)) / v_norm;
    let shifted =
        |sign: f64| -> Vec<f64> { x.iter().zip(v).map(|(a, b)| a + sign * eps * b).collect() };
    let mut minus = vec![0.0; x.len()];
    task.loss_grad(&shifted(1.0), hv);
    task.loss_grad(&shifted(-1.0), &mut minus);
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
        finite_difference_hvp(task, &x, &v, &mut reference);
        let diff: Vec<f64> = hv.iter().zip(&reference).map(|(a, b)| a - b).collect();
        let err = norm(&diff) / norm(&reference).max(1e-12);
        assert!(
            err < 1e-5,
            "{}: H·v differs from a finite difference by {err:.1e} (relative)",
            task.id()
        );
    }
}
