//! Inner optimizers against docs/algorithm.md §5: reprojection rules (§5.2) with random orthonormal
//! bases, k_new ≠ k_old included; updates against direct formulas; and invariance of the whole
//! chain's parameter update to flipping the sign of any basis vector.

mod common;
use common::{Xorshift, orthonormal};

use faer::Mat;
use lre::inner::adam::Adam;
use lre::inner::clip_norm_by_ema::ClipNormByEma;
use lre::inner::ema::Ema;
use lre::inner::{self, Chain, Context, Inner};
use lre::rng::Rng;
use lre::spec::parse_component;

fn component(text: &str) -> lre::component::Component {
    parse_component(text, &inner::FAMILY).unwrap()
}

/// C = Q_newᵀQ_old.
fn change(new: &[Vec<f64>], old: &[Vec<f64>]) -> Mat<f64> {
    Mat::from_fn(new.len(), old.len(), |i, j| {
        new[i].iter().zip(&old[j]).map(|(a, b)| a * b).sum()
    })
}

fn step(member: &mut dyn Inner, u: &[f64], g: &[f64], rng: &mut Rng) -> Vec<f64> {
    let mut out = u.to_vec();
    member.step(&mut out, &Context::new(g, None), rng);
    out
}

fn assert_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: length");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}[{i}]: {x} vs {y}"
        );
    }
}

/// Pairs (k_old, k_new) covering growth, shrinkage and equal size.
const SHAPES: [(usize, usize); 3] = [(6, 8), (8, 5), (7, 7)];

#[test]
fn adam_moments_reproject_by_the_exact_rules() {
    for (k_old, k_new) in SHAPES {
        let mut rng = Xorshift(11 + k_old as u64);
        let mut r = Rng::new(0);
        let (q_old, q_new) = (
            orthonormal(&mut rng, 30, k_old),
            orthonormal(&mut rng, 30, k_new),
        );
        let c = change(&q_new, &q_old);
        let mut adam = Adam::new(&component("adam(amsgrad_beta=0.999)"));
        for _ in 0..4 {
            let u = rng.vector(k_old);
            step(&mut adam, &u, &u, &mut r);
        }
        let before = adam.state.clone().unwrap();
        adam.reproject(&c, &mut r);
        let after = adam.state.clone().unwrap();
        // m ← C·m
        let m: Vec<f64> = (0..k_new)
            .map(|a| (0..k_old).map(|i| c[(a, i)] * before.m[i]).sum())
            .collect();
        assert_close(&after.m, &m, 1e-14, "m");
        // v ← diag(C·diag(v)·Cᵀ), formed densely.
        for (buffer, old) in [
            (&after.v, &before.v),
            (
                after.v_max.as_ref().unwrap(),
                before.v_max.as_ref().unwrap(),
            ),
        ] {
            let dense = Mat::from_fn(k_new, k_new, |a, b| {
                (0..k_old)
                    .map(|i| c[(a, i)] * old[i] * c[(b, i)])
                    .sum::<f64>()
            });
            let diag: Vec<f64> = (0..k_new).map(|a| dense[(a, a)]).collect();
            assert_close(buffer, &diag, 1e-14, "second moment");
        }
        assert_eq!(after.t, before.t, "the step counter is never reset");
        // The next step runs at the new size.
        let u = rng.vector(k_new);
        assert_eq!(step(&mut adam, &u, &u, &mut r).len(), k_new);
    }
}

#[test]
fn ema_and_clip_norm_by_ema_reproject_their_first_moment() {
    for (k_old, k_new) in SHAPES {
        let mut rng = Xorshift(23 + k_new as u64);
        let mut r = Rng::new(1);
        let c = change(
            &orthonormal(&mut rng, 25, k_new),
            &orthonormal(&mut rng, 25, k_old),
        );
        let mut ema = Ema::new(&component("ema"));
        let mut clip = ClipNormByEma::new(&component("clip_norm_by_ema(min_norm=1e-6)"));
        for _ in 0..3 {
            let u = rng.vector(k_old);
            step(&mut ema, &u, &u, &mut r);
            step(&mut clip, &u, &u, &mut r);
        }
        let (e0, c0) = (ema.state.clone().unwrap(), clip.ema.clone().unwrap());
        ema.reproject(&c, &mut r);
        clip.reproject(&c, &mut r);
        let apply = |x: &[f64]| -> Vec<f64> {
            (0..k_new)
                .map(|a| (0..k_old).map(|i| c[(a, i)] * x[i]).sum())
                .collect()
        };
        assert_close(ema.state.as_ref().unwrap(), &apply(&e0), 1e-14, "ema");
        let expected = apply(&c0);
        assert_close(
            clip.ema.as_ref().unwrap(),
            &expected,
            1e-14,
            "clip_norm_by_ema",
        );
        let norm = expected.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!(
            (clip.previous_norm.unwrap() - norm).abs() < 1e-14,
            "p ← ‖C·e‖"
        );
    }
}

#[test]
fn clip_norm_by_ema_guards_collapse_and_small_norms() {
    let mut rng = Xorshift(3);
    let mut r = Rng::new(2);
    // Collapse: C = 0 wipes the EMA; it restarts along a random direction of norm min_norm
    // (the §7 item 13 fix: not ≈ √k).
    let mut clip = ClipNormByEma::new(&component("clip_norm_by_ema(min_norm=0.05)"));
    let u = rng.vector(6);
    step(&mut clip, &u, &u, &mut r);
    clip.reproject(&Mat::zeros(9, 6), &mut r);
    let e = clip.ema.clone().unwrap();
    let len = e.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert_eq!(e.len(), 9);
    assert!((len - 0.05).abs() < 1e-12, "restarted EMA norm {len}");
    assert_eq!(clip.previous_norm, Some(0.05));
    // Small: a reprojected EMA below min_norm is scaled up to it.
    let mut clip = ClipNormByEma::new(&component("clip_norm_by_ema(min_norm=0.05)"));
    let tiny: Vec<f64> = rng.vector(4).iter().map(|x| x * 1e-4).collect();
    step(&mut clip, &tiny, &tiny, &mut r);
    let before = clip.ema.clone().unwrap();
    clip.reproject(&Mat::identity(4, 4), &mut r);
    let after = clip.ema.clone().unwrap();
    let scale = 0.05 / before.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert_close(
        &after,
        &before.iter().map(|x| x * scale).collect::<Vec<_>>(),
        1e-12,
        "scaled EMA",
    );
}

#[test]
fn adam_update_matches_the_formula() {
    let mut r = Rng::new(0);
    let mut adam = Adam::new(&component("adam(beta1=0.8, beta2=0.9, eps=1e-3)"));
    let mut rng = Xorshift(7);
    let (mut m, mut v) = (vec![0.0; 5], vec![0.0; 5]);
    for t in 1..=4 {
        let u = rng.vector(5);
        let out = step(&mut adam, &u, &u, &mut r);
        let expected: Vec<f64> = (0..5)
            .map(|i| {
                m[i] = 0.8 * m[i] + 0.2 * u[i];
                v[i] = 0.9 * v[i] + 0.1 * u[i] * u[i];
                let m_hat = m[i] / (1.0 - 0.8f64.powi(t));
                let v_hat = v[i] / (1.0 - 0.9f64.powi(t));
                m_hat / (v_hat.sqrt() + 1e-3)
            })
            .collect();
        assert_close(&out, &expected, 1e-13, "adam");
    }
}

#[test]
fn stateless_members_match_their_formulas() {
    let mut r = Rng::new(0);
    let u = [0.5, -2.0, 3.0, -0.25, 1.0];
    let g = [1.0, 1.0, -1.0, -3.0, 0.0];
    assert_eq!(
        step(
            inner::build(&component("cautious")).unwrap().as_mut(),
            &u,
            &g,
            &mut r
        ),
        vec![0.5, 0.0, 0.0, -0.25, 0.0]
    );
    let l = [4.0, 0.25, 1.0, 16.0, 2.0];
    for (name, power) in [("l_inv", 1.0), ("l_inv_sqrt", 0.5)] {
        let mut member = inner::build(&component(name)).unwrap();
        assert!(member.needs_eigenvalues());
        let mut out = u.to_vec();
        member.step(&mut out, &Context::new(&g, Some(&l)), &mut r);
        let expected: Vec<f64> = u.iter().zip(&l).map(|(x, li)| x / li.powf(power)).collect();
        assert_close(&out, &expected, 1e-15, name);
    }
    let mut ema = inner::build(&component("ema(beta=0.5)")).unwrap();
    assert_eq!(
        step(ema.as_mut(), &u, &g, &mut r),
        u.iter().map(|x| 0.5 * x).collect::<Vec<_>>()
    );
}

#[test]
fn clip_norm_by_ema_first_steps_follow_the_walkthrough() {
    // docs/algorithm.md §6.2: e starts at 0.1·u, e' = 0.99e + 0.01u = 0.109u; normalize rescales
    // the update to ‖e'‖; without normalize the update is only clipped to that norm.
    let mut r = Rng::new(0);
    let u = vec![3.0, 4.0];
    let mut norm_by = inner::build(&component("normalize_by_ema")).unwrap();
    let out = step(norm_by.as_mut(), &u, &u, &mut r);
    assert_close(&out, &[0.327, 0.436], 1e-12, "normalize");
    // Clipping: the first update is longer than its EMA (0.109·‖u‖) and is cut to it; a later,
    // shorter update (0.01·u against an EMA of norm ≈ 0.54) passes unchanged.
    let mut clip = inner::build(&component("clip_norm_by_ema")).unwrap();
    assert_close(
        &step(clip.as_mut(), &u, &u, &mut r),
        &[0.327, 0.436],
        1e-12,
        "clip to the EMA norm",
    );
    let small = vec![0.03, 0.04];
    assert_close(
        &step(clip.as_mut(), &small, &small, &mut r),
        &small,
        1e-15,
        "clip keeps short updates",
    );
}

/// Runs the default chain on explicit bases Q_t for a gradient sequence; returns each step's
/// parameter update Q_t·û_t. `flip` multiplies basis column j at step t by flip(t, j).
fn chain_updates(
    bases: &[Vec<Vec<f64>>],
    grads: &[Vec<f64>],
    flip: impl Fn(usize, usize) -> f64,
) -> Vec<Vec<f64>> {
    let mut chain = Chain::new(
        ["adam", "cautious", "normalize_by_ema", "ema(beta=0.5)"]
            .iter()
            .map(|c| inner::build(&component(c)).unwrap())
            .collect(),
    );
    let mut r = Rng::new(9);
    let flipped: Vec<Vec<Vec<f64>>> = bases
        .iter()
        .enumerate()
        .map(|(t, q)| {
            q.iter()
                .enumerate()
                .map(|(j, col)| col.iter().map(|x| x * flip(t, j)).collect())
                .collect()
        })
        .collect();
    let mut updates = Vec::new();
    for (t, (q, g)) in flipped.iter().zip(grads).enumerate() {
        if t > 0 {
            chain.reproject(&change(q, &flipped[t - 1]), &mut r);
        }
        let projected: Vec<f64> = q
            .iter()
            .map(|col| col.iter().zip(g).map(|(a, b)| a * b).sum())
            .collect();
        let mut u = projected.clone();
        chain.step(&mut u, &Context::new(&projected, None), &mut r);
        let n = g.len();
        updates.push(
            (0..n)
                .map(|i| q.iter().zip(&u).map(|(col, uj)| col[i] * uj).sum())
                .collect(),
        );
    }
    updates
}

#[test]
fn parameter_update_is_invariant_to_basis_sign_flips() {
    let mut rng = Xorshift(42);
    let n = 20;
    let ks = [3, 4, 6, 6, 5, 7, 7, 4, 6, 6];
    let bases: Vec<Vec<Vec<f64>>> = ks.iter().map(|&k| orthonormal(&mut rng, n, k)).collect();
    let grads: Vec<Vec<f64>> = ks.iter().map(|_| rng.vector(n)).collect();
    let reference = chain_updates(&bases, &grads, |_, _| 1.0);
    let flipped = chain_updates(&bases, &grads, |t, j| {
        if (t * 7 + j * 3) % 5 < 2 { -1.0 } else { 1.0 }
    });
    for (t, (a, b)) in reference.iter().zip(&flipped).enumerate() {
        assert!(
            a.iter().any(|x| x.abs() > 1e-6),
            "step {t}: the update should not vanish"
        );
        assert_close(a, b, 1e-12, &format!("update at step {t}"));
    }
}

#[test]
fn an_unchanged_basis_update_refreshes_cached_preconditioners() {
    // The identity basis never changes, so it never reprojects; a full-matrix member must still
    // recompute its preconditioner after each update (the reference does it on every
    // reprojection): the optimizer calls `basis_refreshed`, which drops the cached one.
    use lre::inner::full_matrix_adam::FullMatrixAdam;
    let mut r = Rng::new(0);
    let mut member = FullMatrixAdam::new(&component("full_matrix_adam"));
    let u = [0.3, -0.2, 0.5];
    step(&mut member, &u, &u, &mut r);
    assert!(member.state.as_ref().unwrap().preconditioner.is_some());
    member.basis_refreshed();
    assert!(member.state.as_ref().unwrap().preconditioner.is_none());
    step(&mut member, &u, &u, &mut r);
    assert!(
        member.state.as_ref().unwrap().preconditioner.is_some(),
        "recomputed by the next step"
    );
}
