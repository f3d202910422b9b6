//! The multi-column backend operations (gram, cross, combine_columns, gaussian_columns,
//! clamp_columns) against naive f64 loops, at sizes that are not multiples of the tile, the
//! sub-block or the SIMD width, with one and two threads (the split starts above 2^16 rows per
//! thread, so the two-thread cases use n > 2^17).

mod common;
use common::Xorshift;

use faer::Mat;
use lre::backend::{Backend, Cpu, Scalar, normal};

fn filled<T: Scalar>(
    be: &Cpu<T>,
    cols: usize,
    rng: &mut Xorshift,
) -> (Vec<Vec<f64>>, <Cpu<T> as Backend>::Matrix) {
    let n = be.ndim();
    let mut m = be.matrix(cols).unwrap();
    let mut host = Vec::new();
    for j in 0..cols {
        let data: Vec<T> = (0..n).map(|_| T::from_f64(rng.uniform())).collect();
        be.column_from_host(&data, &mut m, j);
        host.push(data.iter().map(|x| x.to_f64()).collect());
    }
    (host, m)
}

fn column<T: Scalar>(be: &Cpu<T>, m: &<Cpu<T> as Backend>::Matrix, j: usize) -> Vec<f64> {
    let mut out = vec![T::default(); be.ndim()];
    be.column_to_host(m, j, &mut out);
    out.iter().map(|x| x.to_f64()).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn check<T: Scalar>(n: usize, threads: usize) {
    let be = Cpu::<T>::new(n, threads);
    let mut rng = Xorshift(n as u64 * 7 + threads as u64);
    let (host, mut m) = filled(&be, 11, &mut rng);
    let tol = 1e-12 * n as f64;

    // gram and cross over permuted column lists (tiles of 4 and single columns).
    let cols = [9, 2, 4, 0, 7, 1, 10];
    let g = be.gram(&m, &cols);
    let right = [3, 5, 9, 6, 8];
    let x = be.cross(&m, &cols, &right);
    for (i, &a) in cols.iter().enumerate() {
        for (j, &b) in cols.iter().enumerate() {
            let exact = dot(&host[a], &host[b]);
            assert!((g[(i, j)] - exact).abs() <= tol, "gram n={n} ({i},{j})");
            assert_eq!(g[(i, j)], g[(j, i)], "gram is symmetric");
        }
        for (j, &b) in right.iter().enumerate() {
            let exact = dot(&host[a], &host[b]);
            assert!((x[(i, j)] - exact).abs() <= tol, "cross n={n} ({i},{j})");
        }
    }

    // combine_columns in place (outputs overlap inputs) with an added vector.
    let inputs = [0, 3, 5, 6, 8];
    let outputs = [5, 1, 0];
    let t = Mat::from_fn(
        5,
        3,
        |i, j| if i == 4 && j == 2 { 0.0 } else { rng.uniform() },
    );
    let w: Vec<f64> = (0..5).map(|_| rng.uniform()).collect();
    let y0: Vec<T> = (0..n).map(|_| T::from_f64(rng.uniform())).collect();
    let mut y = y0.clone();
    be.combine_columns(&mut m, &inputs, t.as_ref(), &outputs, Some((&w, &mut y)));
    for (j, &out) in outputs.iter().enumerate() {
        let got = column(&be, &m, out);
        for r in (0..n).step_by(997).chain([n - 1]) {
            let exact: f64 = inputs
                .iter()
                .enumerate()
                .map(|(i, &c)| host[c][r] * t[(i, j)])
                .sum();
            assert!(
                (got[r] - exact).abs() <= 1e-6 * (1.0 + exact.abs()),
                "combine n={n} output {j} row {r}"
            );
        }
    }
    for r in (0..n).step_by(991).chain([n - 1]) {
        let exact: f64 = y0[r].to_f64()
            + inputs
                .iter()
                .zip(&w)
                .map(|(&c, wi)| host[c][r] * wi)
                .sum::<f64>();
        assert!(
            (y[r].to_f64() - exact).abs() <= 1e-6 * (1.0 + exact.abs()),
            "combine add n={n} row {r}"
        );
    }
    assert_eq!(
        column(&be, &m, 2),
        host[2],
        "columns outside the call are untouched"
    );

    // gaussian_columns: the documented counter-based stream, whatever the thread split.
    be.gaussian_columns(&mut m, &[4, 9], 77);
    for (j, &c) in [4usize, 9].iter().enumerate() {
        let got = column(&be, &m, c);
        for r in (0..n).step_by(1009).chain([n - 1]) {
            assert_eq!(
                got[r],
                T::from_f64(normal::normal(77, j as u64, r as u64)).to_f64()
            );
        }
    }

    // clamp_columns.
    be.clamp_columns(&mut m, &[4], 0.5);
    assert!(column(&be, &m, 4).iter().all(|v| v.abs() <= 0.5));
    assert!(column(&be, &m, 9).iter().any(|v| v.abs() > 0.5));
}

#[test]
fn matrix_kernels_match_naive_loops() {
    for n in [1, 7, 257, 5000] {
        check::<f64>(n, 1);
        check::<f32>(n, 1);
    }
    check::<f64>(300_001, 2);
    check::<f32>(300_001, 2);
}

#[test]
fn results_do_not_depend_on_threads_given_the_split() {
    // Same thread count → same bits; gaussian columns are identical for any thread count.
    let n = 300_001;
    let run = |threads| {
        let be = Cpu::<f32>::new(n, threads);
        let mut m = be.matrix(6).unwrap();
        be.gaussian_columns(&mut m, &[0, 1, 2, 3, 4, 5], 5);
        let g = be.gram(&m, &[0, 1, 2, 3, 4, 5]);
        (column(&be, &m, 3), g)
    };
    let (c1, g1) = run(1);
    let (c2, g2) = run(2);
    assert_eq!(c1, c2, "gaussian columns do not depend on the thread count");
    assert_eq!(g1, run(1).1, "deterministic");
    for i in 0..6 {
        for j in 0..6 {
            assert!((g1[(i, j)] - g2[(i, j)]).abs() <= 1e-9 * n as f64);
        }
    }
}
