//! GGT's implicit basis against an explicit dense construction written here:
//! M = window (n×m), G = MᵀM, (λ, V) = eig(G), keep λ > eig_tol·λ_max, Q = M·V·Λ^{-1/2}.
//! Over 300 steps in f64 with a window of 12 (so it wraps around many times), the eigenvalues,
//! projections Qᵀv, unprojections Q·u and the change of basis C = Q_newᵀQ_old agree to 1e-10
//! relative (eigenvector signs are arbitrary, so columns are sign-aligned first).

mod common;
use common::Xorshift;

use faer::{Mat, Side};
use lre::backend::Cpu;
use lre::basis::ggt::Ggt;
use lre::basis::{Basis, Outcome, Source};
use lre::component::Component;
use lre::correction::Correction;
use lre::spec::parse_component;

const N: usize = 40;
const WINDOW: usize = 12;
const STEPS: usize = 300;
const TOL: f64 = 1e-10;

/// The dense reference basis of a window: (Q columns, eigenvalues ascending).
fn dense_basis(window: &[Vec<f64>], eig_tol: f64) -> (Vec<Vec<f64>>, Vec<f64>) {
    let m = window.len();
    let gram = Mat::from_fn(m, m, |i, j| {
        window[i]
            .iter()
            .zip(&window[j])
            .map(|(a, b)| a * b)
            .sum::<f64>()
    });
    let evd = gram.self_adjoint_eigen(Side::Lower).expect("dense eig");
    let values: Vec<f64> = (0..m).map(|i| evd.S().column_vector()[i]).collect();
    let lambda_max = values[m - 1];
    let mut q = Vec::new();
    let mut kept = Vec::new();
    for (j, &lambda) in values.iter().enumerate() {
        if lambda > eig_tol * lambda_max {
            let col: Vec<f64> = (0..N)
                .map(|r| {
                    (0..m).map(|i| window[i][r] * evd.U()[(i, j)]).sum::<f64>() / lambda.sqrt()
                })
                .collect();
            q.push(col);
            kept.push(lambda);
        }
    }
    (q, kept)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// Column j of the implicit basis: Q·e_j through `add_unprojected`.
fn implicit_column(basis: &mut Ggt<Cpu<f64>>, be: &Cpu<f64>, k: usize, j: usize) -> Vec<f64> {
    let mut e = vec![0.0; k];
    e[j] = 1.0;
    let mut col = vec![0.0; N];
    basis.add_unprojected(be, &e, 1.0, &mut col);
    col
}

fn ggt(args: &str) -> Component {
    parse_component(&format!("ggt({args})"), &lre::basis::FAMILY).unwrap()
}

#[test]
fn implicit_ggt_matches_dense_construction_through_wraparound() {
    let be = Cpu::<f64>::new(N, 1);
    let component = ggt(&format!("history_size={WINDOW}"));
    let eig_tol = component.f64("eig_tol");
    let mut basis = Ggt::new(&component, &be).unwrap();
    let mut rng = Xorshift(0x2545F4914F6CDD1D);
    // Gradients mostly in a 6-dimensional subspace plus tiny noise, so eig_tol drops
    // directions and k changes from step to step; every 7th gradient is fully random.
    let low_rank: Vec<Vec<f64>> = (0..6).map(|_| rng.vector(N)).collect();
    let mut window: Vec<Vec<f64>> = Vec::new();
    let mut previous: Option<(Vec<Vec<f64>>, Vec<f64>)> = None;
    let mut ranks = std::collections::BTreeSet::new();

    for step in 0..STEPS {
        let g: Vec<f64> = if step % 7 == 3 {
            rng.vector(N)
        } else {
            let coeffs = rng.vector(6);
            let noise = rng.vector(N);
            (0..N)
                .map(|i| (0..6).map(|c| coeffs[c] * low_rank[c][i]).sum::<f64>() + 1e-4 * noise[i])
                .collect()
        };
        let correction = Correction {
            columns: vec![&g],
            alpha: vec![1.0],
            z: None,
            gradient_column: Some(0),
        };
        let outcome = basis.update(&be, &correction).unwrap();
        window.push(g.clone());
        if window.len() > WINDOW {
            window.remove(0);
        }

        let (dense_q, dense_values) = dense_basis(&window, eig_tol);
        let k = dense_values.len();
        ranks.insert(k);
        let values = basis.eigenvalues().unwrap().to_vec();
        assert_eq!(values.len(), k, "step {step}: rank");
        for (a, b) in values.iter().zip(&dense_values) {
            assert!(
                (a - b).abs() <= TOL * b.abs(),
                "step {step}: eigenvalue {a} vs dense {b}"
            );
        }

        // Columns, sign-aligned to the dense ones.
        let implicit: Vec<Vec<f64>> = (0..k)
            .map(|j| implicit_column(&mut basis, &be, k, j))
            .collect();
        let signs: Vec<f64> = (0..k)
            .map(|j| dot(&implicit[j], &dense_q[j]).signum())
            .collect();
        for j in 0..k {
            for r in 0..N {
                let diff = (implicit[j][r] * signs[j] - dense_q[j][r]).abs();
                assert!(diff <= TOL, "step {step}: Q[{r},{j}] differs by {diff}");
            }
        }

        // Projection of the new gradient (cached path) and of a fresh vector (a pass over M).
        let v = rng.vector(N);
        for (what, x, source) in [
            ("gradient", &g, Source::CorrectionColumn(0, &g)),
            ("vector", &v, Source::Vector(&v)),
        ] {
            let mut projected = Vec::new();
            basis.project(&be, source, &mut projected);
            for j in 0..k {
                let expected = dot(&dense_q[j], x);
                let diff = (projected[j] * signs[j] - expected).abs();
                assert!(
                    diff <= TOL * norm(x),
                    "step {step}: projection of the {what}, entry {j}: {diff}"
                );
            }
        }

        // Unprojection y ← y + α·Q·u.
        let u = rng.vector(k);
        let mut y = vec![1.0; N];
        basis.add_unprojected(&be, &u, -0.5, &mut y);
        for r in 0..N {
            let expected = 1.0 - 0.5 * (0..k).map(|j| u[j] * signs[j] * dense_q[j][r]).sum::<f64>();
            assert!(
                (y[r] - expected).abs() <= TOL * (1.0 + norm(&u)),
                "step {step}: unprojection row {r}"
            );
        }

        // Change of basis against Q_newᵀQ_old formed densely.
        match (outcome, &previous) {
            (Outcome::Changed(change), Some((old_q, old_signs))) => {
                let c = change
                    .change
                    .expect("a change of basis after the first update");
                assert_eq!(
                    (c.nrows(), c.ncols()),
                    (k, old_q.len()),
                    "step {step}: C shape"
                );
                for i in 0..k {
                    for j in 0..old_q.len() {
                        let expected = dot(&dense_q[i], &old_q[j]);
                        let got = c[(i, j)] * signs[i] * old_signs[j];
                        assert!(
                            (got - expected).abs() <= TOL,
                            "step {step}: C[{i},{j}] = {got}, dense {expected}"
                        );
                    }
                }
            }
            (Outcome::Changed(change), None) => {
                assert!(change.change.is_none(), "first basis has no C")
            }
            (Outcome::Unchanged { failure }, _) => {
                panic!("step {step}: basis not updated: {failure:?}")
            }
        }
        previous = Some((dense_q, signs));
    }
    assert!(
        ranks.len() >= 3,
        "the test should exercise changing ranks, saw {ranks:?}"
    );
    assert!(
        ranks.contains(&WINDOW) || ranks.iter().any(|&k| k < WINDOW),
        "ranks seen: {ranks:?}"
    );
}

#[test]
fn truncate_and_damping_follow_the_reference() {
    // truncate keeps the largest eigenpairs; rdamping adds rdamping·λ_max to each returned value
    // but does not change Q (docs/algorithm.md §3.2 steps 3–5).
    let be = Cpu::<f64>::new(N, 1);
    let mut plain = Ggt::new(&ggt("history_size=8"), &be).unwrap();
    let mut shaped = Ggt::new(&ggt("history_size=8, truncate=3, rdamping=0.5"), &be).unwrap();
    let mut rng = Xorshift(99);
    for _ in 0..10 {
        let g = rng.vector(N);
        let correction = Correction {
            columns: vec![&g],
            alpha: vec![1.0],
            z: None,
            gradient_column: Some(0),
        };
        plain.update(&be, &correction).unwrap();
        shaped.update(&be, &correction).unwrap();
    }
    let full = plain.eigenvalues().unwrap().to_vec();
    let cut = shaped.eigenvalues().unwrap().to_vec();
    assert_eq!(cut.len(), 3);
    let lambda_max = full[full.len() - 1];
    for (c, f) in cut.iter().zip(&full[full.len() - 3..]) {
        assert!(
            (c - (f + 0.5 * lambda_max)).abs() <= 1e-10 * c,
            "{c} vs {f} + rdamping"
        );
    }
    let k = full.len();
    for j in 0..3 {
        let a = implicit_column(&mut plain, &be, k, k - 3 + j);
        let b = implicit_column(&mut shaped, &be, 3, j);
        assert!(
            (dot(&a, &b).abs() - 1.0).abs() < 1e-10,
            "column {j} is the same direction"
        );
    }
}

#[test]
fn zero_gradient_gives_an_empty_basis_not_a_failure() {
    let be = Cpu::<f64>::new(N, 1);
    let mut basis = Ggt::new(&ggt("history_size=4"), &be).unwrap();
    let g = vec![0.0; N];
    let correction = Correction {
        columns: vec![&g],
        alpha: vec![1.0],
        z: None,
        gradient_column: Some(0),
    };
    assert!(matches!(
        basis.update(&be, &correction).unwrap(),
        Outcome::Changed(_)
    ));
    assert_eq!(basis.rank(), Some(0));
    let mut projected = vec![1.0];
    basis.project(&be, Source::CorrectionColumn(0, &g), &mut projected);
    assert!(projected.is_empty());
}

#[test]
fn multi_column_corrections_larger_than_the_window_keep_the_newest() {
    // update_freq > 1 hands several gradients at once; more than history_size of them keeps the
    // newest history_size, exactly as adding them one by one would.
    let be = Cpu::<f64>::new(N, 1);
    let mut batched = Ggt::new(&ggt("history_size=5"), &be).unwrap();
    let mut single = Ggt::new(&ggt("history_size=5"), &be).unwrap();
    let mut rng = Xorshift(5);
    let columns: Vec<Vec<f64>> = (0..7).map(|_| rng.vector(N)).collect();
    let refs: Vec<&Vec<f64>> = columns.iter().collect();
    let correction = Correction {
        columns: refs,
        alpha: vec![1.0; 7],
        z: None,
        gradient_column: Some(6),
    };
    batched.update(&be, &correction).unwrap();
    for col in &columns {
        let one = Correction {
            columns: vec![col],
            alpha: vec![1.0],
            z: None,
            gradient_column: Some(0),
        };
        single.update(&be, &one).unwrap();
    }
    let a = batched.eigenvalues().unwrap();
    let b = single.eigenvalues().unwrap();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-10 * y, "{x} vs {y}");
    }
    let (mut p, mut q) = (Vec::new(), Vec::new());
    batched.project(&be, Source::CorrectionColumn(6, &columns[6]), &mut p);
    single.project(&be, Source::Vector(&columns[6]), &mut q);
    for (x, y) in p.iter().zip(&q) {
        assert!(
            (x.abs() - y.abs()).abs() <= 1e-10 * norm(&columns[6]),
            "projection {x} vs {y}"
        );
    }
}

#[test]
fn a_failed_eigendecomposition_keeps_the_window_and_the_basis() {
    // A non-finite column (the optimizer refuses such gradients; a direct caller may not)
    // makes the Gram matrix non-finite: the update fails, the window, Gram matrix and basis
    // stay as they were, and the products with the old window still serve projection.
    let be = Cpu::<f64>::new(N, 1);
    let mut basis = Ggt::new(&ggt("history_size=3"), &be).unwrap();
    let mut twin = Ggt::new(&ggt("history_size=3"), &be).unwrap();
    let mut rng = Xorshift(31);
    let good: Vec<Vec<f64>> = (0..4).map(|_| rng.vector(N)).collect();
    let update = |b: &mut Ggt<Cpu<f64>>, g: &Vec<f64>| {
        let c = Correction {
            columns: vec![g],
            alpha: vec![1.0],
            z: None,
            gradient_column: Some(0),
        };
        b.update(&be, &c).unwrap()
    };
    for g in &good[..2] {
        update(&mut basis, g);
        update(&mut twin, g);
    }
    let eigenvalues = basis.eigenvalues().unwrap().to_vec();
    let mut bad = rng.vector(N);
    bad[3] = f64::INFINITY;
    match update(&mut basis, &bad) {
        Outcome::Unchanged { failure: Some(why) } => assert!(why.contains("non-finite"), "{why}"),
        other => panic!("expected a failed update, got {other:?}"),
    }
    assert_eq!(basis.eigenvalues().unwrap(), eigenvalues.as_slice());
    let (mut p, mut q) = (Vec::new(), Vec::new());
    let v = rng.vector(N);
    basis.project(&be, Source::Vector(&v), &mut p);
    twin.project(&be, Source::Vector(&v), &mut q);
    assert_eq!(p, q, "projection uses the kept basis");
    // Later updates proceed as if the bad column had never been offered.
    for g in &good[2..] {
        update(&mut basis, g);
        update(&mut twin, g);
    }
    assert_eq!(basis.eigenvalues(), twin.eigenvalues());
}

/// The matrix a basis represents, Σ_j λ_j q_j q_jᵀ, formed from its columns (damping 0).
fn represented(basis: &mut Ggt<Cpu<f64>>, be: &Cpu<f64>) -> Vec<Vec<f64>> {
    let values = basis.eigenvalues().unwrap().to_vec();
    let k = values.len();
    let columns: Vec<Vec<f64>> = (0..k).map(|j| implicit_column(basis, be, k, j)).collect();
    (0..N)
        .map(|r| {
            (0..N)
                .map(|c| {
                    (0..k)
                        .map(|j| values[j] * columns[j][r] * columns[j][c])
                        .sum()
                })
                .collect()
        })
        .collect()
}

#[test]
fn combine_mean_represents_the_mean_of_the_window_corrections() {
    // Corrections α·v·vᵀ (α = 1 or 2.5), then pairs (y = c·z, α): ½α(yzᵀ + zyᵀ) = α·c·zzᵀ, each
    // counted once. After each update, ggt(combine=mean) represents (1/p)·Σ of the last
    // p ≤ history_size corrections, formed densely here, and ggt(combine=sum) (the default) their
    // sum.
    const HISTORY: usize = 5;
    for paired in [false, true] {
        let be = Cpu::<f64>::new(N, 1);
        let mut mean =
            Ggt::new(&ggt(&format!("history_size={HISTORY}, combine=mean")), &be).unwrap();
        let mut sum = Ggt::new(&ggt(&format!("history_size={HISTORY}")), &be).unwrap();
        let mut rng = Xorshift(0x9E3779B97F4A7C15);
        let mut window: Vec<Vec<Vec<f64>>> = Vec::new();
        let mut largest_p = 0;
        for step in 0..12 {
            let v = rng.vector(N);
            let alpha = if step % 3 == 0 { 2.5 } else { 1.0 };
            let c = 1.0 + rng.uniform();
            let y: Vec<f64> = v.iter().map(|x| c * x).collect();
            let correction = Correction {
                columns: vec![if paired { &y } else { &v }],
                alpha: vec![alpha],
                z: if paired { Some(vec![&v]) } else { None },
                gradient_column: None,
            };
            mean.update(&be, &correction).unwrap();
            sum.update(&be, &correction).unwrap();
            let weight = alpha * if paired { c } else { 1.0 };
            window.push(
                (0..N)
                    .map(|r| (0..N).map(|s| weight * v[r] * v[s]).collect())
                    .collect(),
            );
            if window.len() > HISTORY {
                window.remove(0);
            }
            let p = window.len();
            largest_p = largest_p.max(p);
            let dense_sum: Vec<Vec<f64>> = (0..N)
                .map(|r| {
                    (0..N)
                        .map(|s| window.iter().map(|a| a[r][s]).sum())
                        .collect()
                })
                .collect();
            let scale = dense_sum
                .iter()
                .flatten()
                .fold(0.0f64, |m, x| m.max(x.abs()));
            for (basis, divisor, what) in [(&mut sum, 1.0, "sum"), (&mut mean, p as f64, "mean")] {
                let got = represented(basis, &be);
                for r in 0..N {
                    for s in 0..N {
                        let expected = dense_sum[r][s] / divisor;
                        assert!(
                            (got[r][s] - expected).abs() <= 1e-9 * scale,
                            "step {step}, {what}: A[{r},{s}] = {}, dense {expected}",
                            got[r][s]
                        );
                    }
                }
            }
        }
        assert_eq!(largest_p, HISTORY, "the window should fill and wrap");
    }
}

#[test]
fn combine_ritz_represents_the_hessian_projected_onto_the_probes() {
    // Pairs (H·z, z) with a dense SPD H (eigenvalues 1…10): after each update ggt(combine=ritz)
    // represents P·H·P, P the orthogonal projector onto the last p ≤ history_size probes, formed
    // here by Gram–Schmidt. Its size does not depend on p or on the probes' lengths.
    const HISTORY: usize = 6;
    let be = Cpu::<f64>::new(N, 1);
    let mut basis = Ggt::new(&ggt(&format!("history_size={HISTORY}, combine=ritz")), &be).unwrap();
    let mut rng = Xorshift(0xD1B54A32D192ED03);
    let factors: Vec<Vec<f64>> = (0..N).map(|_| rng.vector(N)).collect();
    // H = I + FᵀF scaled so its largest eigenvalue is about 10.
    let gram: f64 = factors.iter().flatten().map(|x| x * x).sum::<f64>() / N as f64;
    let h: Vec<Vec<f64>> = (0..N)
        .map(|r| {
            (0..N)
                .map(|c| {
                    let f: f64 = factors.iter().map(|row| row[r] * row[c]).sum();
                    f * 9.0 / (gram * N as f64) + if r == c { 1.0 } else { 0.0 }
                })
                .collect()
        })
        .collect();
    let times_h = |v: &[f64]| -> Vec<f64> { h.iter().map(|row| dot(row, v)).collect() };
    let mut probes: Vec<Vec<f64>> = Vec::new();
    for step in 0..15 {
        // Probes of different lengths: the projection must not depend on them.
        let z: Vec<f64> = rng
            .vector(N)
            .iter()
            .map(|x| x * (1.0 + step as f64))
            .collect();
        let hz = times_h(&z);
        let correction = Correction {
            columns: vec![&hz],
            alpha: vec![1.0],
            z: Some(vec![&z]),
            gradient_column: None,
        };
        basis.update(&be, &correction).unwrap();
        probes.push(z);
        if probes.len() > HISTORY {
            probes.remove(0);
        }
        let mut q: Vec<Vec<f64>> = Vec::new();
        for z in &probes {
            let mut v = z.clone();
            for _ in 0..2 {
                for u in &q {
                    let d = dot(u, &v);
                    v.iter_mut().zip(u).for_each(|(x, ui)| *x -= d * ui);
                }
            }
            let length = norm(&v);
            q.push(v.iter().map(|x| x / length).collect());
        }
        let project = |v: &[f64]| -> Vec<f64> {
            let mut out = vec![0.0; N];
            for u in &q {
                let d = dot(u, v);
                out.iter_mut().zip(u).for_each(|(o, ui)| *o += d * ui);
            }
            out
        };
        let got = represented(&mut basis, &be);
        for c in 0..N {
            let mut e = vec![0.0; N];
            e[c] = 1.0;
            let expected = project(&times_h(&project(&e)));
            for r in 0..N {
                assert!(
                    (got[r][c] - expected[r]).abs() <= 1e-9,
                    "step {step}: A[{r},{c}] = {}, P·H·P {}",
                    got[r][c],
                    expected[r]
                );
            }
        }
        assert_eq!(basis.rank(), Some(probes.len()), "step {step}: rank p");
    }
}
