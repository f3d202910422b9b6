//! The f32 window passes, which sum short blocks in f32 to read the window at memory speed
//! (src/backend/cpu/streaming.rs), against exact references at n = 1e7 on adversarial data:
//! magnitudes from 1e-30 to 1e30 (products that overflow and underflow f32), all-tiny columns,
//! pairs of products that cancel, partial sums that overflow f32 and cancel later. The bounds
//! under test are the documented ones: a column dot within 1e-6·Σ_i |c_i·x_i| of the exact one;
//! the sum an unprojection adds to y_i within 6e-7·Σ_j |w_j·c_j[i]| + p·2⁻¹⁵⁰, then y_i's
//! rounding to f32. One and two threads.

mod common;
use common::Xorshift;

use lre::backend::{Backend, Cpu};

const N: usize = 10_000_000;

/// Neumaier-compensated sum and the sum of magnitudes.
fn exact_sum(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut sum, mut carry, mut magnitude) = (0.0f64, 0.0f64, 0.0f64);
    for v in values {
        let t = sum + v;
        carry += if sum.abs() >= v.abs() {
            (sum - t) + v
        } else {
            (v - t) + sum
        };
        sum = t;
        magnitude += v.abs();
    }
    (sum + carry, magnitude)
}

/// ±10^e with e uniform in [-30, 30).
fn wide(rng: &mut Xorshift) -> Vec<f32> {
    (0..N)
        .map(|_| {
            let sign = if rng.uniform() < 0.0 { -1.0 } else { 1.0 };
            (sign * 10f64.powf(60.0 * rng.uniform())) as f32
        })
        .collect()
}

fn uniform(rng: &mut Xorshift, scale: f64) -> Vec<f32> {
    (0..N).map(|_| (scale * rng.uniform()) as f32).collect()
}

/// A column whose products with x cancel in pairs, c_{2k}·x_{2k} ≈ r_k ≈ −c_{2k+1}·x_{2k+1}
/// (up to the f32 rounding of c), with |r_k| from 1e-5 to 1e5.
fn cancelling(rng: &mut Xorshift, x: &[f32]) -> Vec<f32> {
    let mut c = vec![0.0f32; N];
    for k in (0..N - 1).step_by(2) {
        let r = 10f64.powf(10.0 * rng.uniform());
        c[k] = (r / x[k] as f64) as f32;
        c[k + 1] = (-r / x[k + 1] as f64) as f32;
    }
    c
}

/// 1e38 in the first half (eight of them overflow an f32 sum), 0 after.
fn edge() -> Vec<f32> {
    (0..N).map(|i| if i < N / 2 { 1e38 } else { 0.0 }).collect()
}

/// The columns as a window matrix.
fn window(be: &Cpu<f32>, columns: &[Vec<f32>]) -> lre::backend::cpu::HostMatrix<f32> {
    let mut m = be.matrix(columns.len()).unwrap();
    for (j, c) in columns.iter().enumerate() {
        be.column_from_host(c, &mut m, j);
    }
    m
}

#[test]
fn column_dots_stay_within_their_bound_on_adversarial_data() {
    let mut rng = Xorshift(2026);
    let xs = [
        wide(&mut rng),
        uniform(&mut rng, 2e-30),
        uniform(&mut rng, 1.0),
    ];
    let columns = [
        uniform(&mut rng, 1.0),
        wide(&mut rng),
        cancelling(&mut rng, &xs[0]),
        uniform(&mut rng, 2e-30),
        uniform(&mut rng, 1e25),
    ];
    for threads in [1, 2] {
        let be = Cpu::<f32>::new(N, threads);
        let m = window(&be, &columns);
        let cols: Vec<usize> = (0..columns.len()).collect();
        for (which, x) in xs.iter().enumerate() {
            let mut out = vec![0.0; cols.len()];
            be.column_dots(&m, &cols, x, &mut out);
            for (j, c) in columns.iter().enumerate() {
                let (exact, magnitude) =
                    exact_sum(c.iter().zip(x).map(|(a, b)| *a as f64 * *b as f64));
                let error = (out[j] - exact).abs();
                assert!(
                    error <= 1e-6 * magnitude,
                    "threads {threads}, x {which}, column {j}: {} vs exact {exact} \
                     (error {error:e}, Σ|c·x| {magnitude:e})",
                    out[j]
                );
            }
        }
    }
}

#[test]
fn unprojection_stays_within_its_bound_on_adversarial_data() {
    let mut rng = Xorshift(7);
    let columns = [
        uniform(&mut rng, 1.0),
        wide(&mut rng),
        uniform(&mut rng, 2e-30),
        edge(),
    ];
    // Eight times +edge then eight times −edge: the first group's f32 sum overflows, the exact
    // total of the two groups is 0. Then the other columns with weights of mixed magnitude
    // (1e-20 on the tiny column: products that underflow f32).
    let mut cols = vec![3; 16];
    let mut w = [vec![1.0; 8], vec![-1.0; 8]].concat();
    for (j, weight) in [(0, 0.75), (1, -3e-5), (2, 1e-20), (0, -0.75), (1, 2e-5)] {
        cols.push(j);
        w.push(weight);
    }
    // The same with one weight that is not a normal f32 (the whole call is combined in f64).
    let mut w_subnormal = w.clone();
    w_subnormal[17] = 1e-40;
    let y0 = uniform(&mut rng, 1.0);
    let p = cols.len() as f64;
    for threads in [1, 2] {
        let be = Cpu::<f32>::new(N, threads);
        let m = window(&be, &columns);
        for weights in [&w, &w_subnormal] {
            let mut y = y0.clone();
            be.add_columns(&m, &cols, weights, &mut y);
            for i in 0..N {
                let (sum, magnitude) = exact_sum(
                    cols.iter()
                        .zip(weights.iter())
                        .map(|(&j, wj)| wj * columns[j][i] as f64),
                );
                let exact = y0[i] as f64 + sum;
                let bound = 6e-7 * magnitude
                    + p * 2f64.powi(-150)
                    + 2f64.powi(-23) * exact.abs()
                    + 2f64.powi(-149);
                let error = (y[i] as f64 - exact).abs();
                assert!(
                    error <= bound,
                    "threads {threads}, row {i}: {} vs exact {exact} (error {error:e}, \
                     bound {bound:e})",
                    y[i]
                );
            }
        }
    }
}
