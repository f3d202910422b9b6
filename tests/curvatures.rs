//! Every curvature of the seed (docs/algorithm.md §2) against its dense formula, the secant
//! conditions of BFGS and SR1, the Hutchinson estimate's mean, Gauss-Newton and Hutchinson
//! end to end, and the step protocol (split step, callback step, batch step, loss).

mod common;
use common::Quadratic;

use lre::backend::{Backend, Cpu};
use lre::basis::{self, Basis};
use lre::correction::Correction;
use lre::curvature::{self, Curvature, Observation};
use lre::optimizer::Current;
use lre::rng::Rng;
use lre::spec::parse_component;
use lre::{CpuOptimizer, Status};

const N: usize = 12;

fn curvature_of(text: &str, symmetrize: bool) -> Box<dyn Curvature<Cpu<f64>>> {
    curvature::build(
        &parse_component(text, &curvature::FAMILY).unwrap(),
        symmetrize,
    )
    .unwrap()
}

fn basis_of(text: &str, be: &Cpu<f64>) -> Box<dyn Basis<Cpu<f64>>> {
    basis::build(&parse_component(text, &basis::FAMILY).unwrap(), be).unwrap()
}

fn close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    let scale = b.iter().map(|x| x * x).sum::<f64>().sqrt().max(1.0);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * scale, "{what}[{i}]: {x} vs {y}");
    }
}

/// One update step of a Hessian curvature: draw the probe, compute Hz, observe; returns the
/// probe, Hz and the correction as dense columns (y's, z's, α).
#[allow(clippy::type_complexity)]
fn hessian_update(
    c: &mut dyn Curvature<Cpu<f64>>,
    basis: &mut dyn Basis<Cpu<f64>>,
    be: &Cpu<f64>,
    h: &Quadratic,
    grad: &Vec<f64>,
    rng: &mut Rng,
) -> (
    Vec<f64>,
    Vec<f64>,
    Option<(Vec<Vec<f64>>, Option<Vec<Vec<f64>>>, Vec<f64>)>,
) {
    let mut probes = vec![be.vector().unwrap()];
    c.draw_probes(be, grad, &mut Current(&mut *basis), rng, &mut probes)
        .unwrap();
    let hz = h.times(&probes[0]);
    let hvps = vec![hz.clone()];
    c.prepare(be, true, 0).unwrap();
    let z = probes[0].clone();
    let obs = Observation {
        grad,
        samples: &[],
        values: None,
        loss: None,
        probes: &probes,
        hvps: &hvps,
        update: true,
    };
    let observed = c.observe(be, &obs, &mut Current(&mut *basis));
    let dense = observed.correction.map(|corr| {
        let ys = corr.columns.iter().map(|v| v.to_vec()).collect();
        let zs = corr
            .z
            .as_ref()
            .map(|zs| zs.iter().map(|v| v.to_vec()).collect());
        (ys, zs, corr.alpha.clone())
    });
    (z, hz, dense)
}

fn apply(basis: &mut dyn Basis<Cpu<f64>>, be: &Cpu<f64>, v: &Vec<f64>) -> Vec<f64> {
    let mut out = be.vector().unwrap();
    assert!(
        basis.apply_curvature(be, v, &mut out),
        "the basis has eigenvalues"
    );
    out
}

#[test]
fn hutchinson_correction_is_hz_zt_and_symmetrized_mean() {
    let be = Cpu::<f64>::new(N, 1);
    let h = Quadratic::new(N, 50.0, 1);
    let grad = vec![0.5; N];
    let mut rng = Rng::new(3);
    for symmetrize in [true, false] {
        let mut c = curvature_of("full_hutchinson_hessian", symmetrize);
        let mut basis = basis_of("ggt", &be);
        let (z, hz, correction) =
            hessian_update(c.as_mut(), basis.as_mut(), &be, &h, &grad, &mut rng);
        assert!(z.iter().all(|v| v.abs() == 1.0), "Rademacher probe: {z:?}");
        let (ys, zs, alpha) = correction.expect("an update");
        assert_eq!(alpha, vec![1.0]);
        if symmetrize {
            let mean: Vec<f64> = z.iter().zip(&hz).map(|(a, b)| 0.5 * (a + b)).collect();
            close(&ys[0], &mean, 1e-15, "(z + Hz)/2");
            assert!(zs.is_none());
        } else {
            close(&ys[0], &hz, 0.0, "Y = Hz");
            close(&zs.expect("Z")[0], &z, 0.0, "Z = z");
        }
    }
}

#[test]
fn probe_kinds_follow_their_definitions() {
    let be = Cpu::<f64>::new(N, 1);
    let h = Quadratic::new(N, 10.0, 2);
    let grad: Vec<f64> = (0..N).map(|i| i as f64 - 3.0).collect();
    let mut rng = Rng::new(4);
    let mut basis = basis_of("ggt", &be);
    let (z, _, _) = hessian_update(
        curvature_of("full_hutchinson_hessian(z=g)", true).as_mut(),
        basis.as_mut(),
        &be,
        &h,
        &grad,
        &mut rng,
    );
    assert_eq!(z, grad, "z = g");
    let (z, _, _) = hessian_update(
        curvature_of("full_hutchinson_hessian(z=gaussian)", true).as_mut(),
        basis.as_mut(),
        &be,
        &h,
        &grad,
        &mut rng,
    );
    assert!(z.iter().any(|v| v.abs() != 1.0), "Gaussian probe");
    // orthogonalize: z ⊥ span(Q) and ‖z‖ = 1.
    let mut c = curvature_of("full_hutchinson_hessian(orthogonalize=true)", true);
    for _ in 0..4 {
        let (z, _, correction) =
            hessian_update(c.as_mut(), basis.as_mut(), &be, &h, &grad, &mut rng);
        let norm: f64 = z.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-12);
        if basis.rank().is_some() {
            let mut coords = Vec::new();
            basis.project(&be, lre::basis::Source::Vector(&z), &mut coords);
            assert!(
                coords.iter().all(|c| c.abs() < 1e-10),
                "z has components in span(Q): {coords:?}"
            );
        }
        let (ys, _, alpha) = correction.unwrap();
        let refs: Vec<&Vec<f64>> = ys.iter().collect();
        basis
            .update(
                &be,
                &Correction {
                    columns: refs,
                    alpha,
                    z: None,
                    gradient_column: None,
                },
            )
            .unwrap();
    }
}

#[test]
fn displacement_probe_is_the_last_parameter_change() {
    // z = s: Gaussian until two parameter vectors are known, then x_t − x_prev exactly.
    let h = Quadratic::new(N, 10.0, 5);
    let mut opt = CpuOptimizer::<f64>::from_spec(
        "curvature=full_hutchinson_hessian(z=s); dtype=f64; lr=0.1",
        N,
    )
    .unwrap();
    let mut x = vec![1.0; N];
    let mut starts = Vec::new();
    for t in 0..5 {
        starts.push(x.clone());
        let g = h.times(&x);
        let mut seen = Vec::new();
        opt.step_with_hvp(&mut x, &g, |v, hv| {
            seen.push(v.to_vec());
            hv.copy_from_slice(&h.times(v));
            true
        })
        .unwrap();
        if t >= 2 {
            let s: Vec<f64> = starts[t]
                .iter()
                .zip(&starts[t - 1])
                .map(|(a, b)| a - b)
                .collect();
            close(&seen[0], &s, 1e-15, &format!("step {t}: z = x_t − x_(t−1)"));
        }
    }
}

#[test]
fn sr1_and_bfgs_satisfy_the_secant_condition() {
    // After an accepted update, the new approximation maps the probe s onto y = H·s (BFGS up
    // to its tol): B_new·s = y. The bases hold the matrix exactly (no eig_tol cut).
    let be = Cpu::<f64>::new(N, 1);
    let h = Quadratic::new(N, 20.0, 6);
    let grad = vec![0.1; N];
    for (curv, tol) in [
        ("sr1(z=gaussian, orthogonalize=false)", 1e-9),
        ("bfgs(z=gaussian, orthogonalize=false, c=0)", 1e-6),
    ] {
        for basis_text in [
            "full_matrix(beta=none, eig_tol=none)",
            "ggt(history_size=50, eig_tol=none)",
        ] {
            let mut c = curvature_of(curv, true);
            let mut basis = basis_of(basis_text, &be);
            let mut rng = Rng::new(11);
            let mut checked = 0;
            for update in 0..6 {
                let (z, hz, correction) =
                    hessian_update(c.as_mut(), basis.as_mut(), &be, &h, &grad, &mut rng);
                let Some((ys, _, alpha)) = correction else {
                    continue;
                };
                let refs: Vec<&Vec<f64>> = ys.iter().collect();
                basis
                    .update(
                        &be,
                        &Correction {
                            columns: refs,
                            alpha,
                            z: None,
                            gradient_column: None,
                        },
                    )
                    .unwrap();
                if update == 0 {
                    continue; // the first update corrects the rank-1 initial B, not the basis
                }
                close(
                    &apply(basis.as_mut(), &be, &z),
                    &hz,
                    tol,
                    &format!("{curv} on {basis_text}: B·s = y"),
                );
                checked += 1;
            }
            assert!(
                checked >= 3,
                "{curv} on {basis_text}: only {checked} updates accepted"
            );
        }
    }
}

#[test]
fn hutchinson_estimate_averages_to_the_hessian() {
    // E[½(Hz·zᵀ + z·zᵀH)] = H for Rademacher z; the mean of N draws is within 5 standard errors.
    let be = Cpu::<f64>::new(N, 1);
    let h = Quadratic::new(N, 10.0, 7);
    let dense = h.dense();
    let mut c = curvature_of("full_hutchinson_hessian", false);
    let mut basis = basis_of("ggt", &be);
    let mut rng = Rng::new(8);
    let draws = 2000;
    let mut sum = vec![vec![0.0; N]; N];
    let mut sum_sq = 0.0;
    for _ in 0..draws {
        let (_, _, correction) =
            hessian_update(c.as_mut(), basis.as_mut(), &be, &h, &vec![0.0; N], &mut rng);
        let (ys, zs, _) = correction.unwrap();
        let (y, z) = (&ys[0], &zs.unwrap()[0]);
        let mut err = 0.0;
        for i in 0..N {
            for j in 0..N {
                let sample = 0.5 * (y[i] * z[j] + z[i] * y[j]);
                sum[i][j] += sample;
                err += (sample - dense[i][j]).powi(2);
            }
        }
        sum_sq += err;
    }
    let sd = (sum_sq / draws as f64).sqrt();
    let deviation: f64 = (0..N)
        .flat_map(|i| (0..N).map(move |j| (i, j)))
        .map(|(i, j)| (sum[i][j] / draws as f64 - dense[i][j]).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!(
        deviation < 5.0 * sd / (draws as f64).sqrt(),
        "‖mean − H‖ = {deviation}, sd {sd}"
    );
    assert!(deviation > 0.0);
}

/// r_i = a·exp(b·t_i) + c − y_i: 20 residuals, 3 parameters.
fn exp_fit(x: &[f64]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let truth = [2.0, -1.5, 0.5];
    let ts: Vec<f64> = (0..20).map(|i| i as f64 * 0.1).collect();
    let model = |p: &[f64], t: f64| p[0] * (p[1] * t).exp() + p[2];
    let residuals = ts.iter().map(|&t| model(x, t) - model(&truth, t)).collect();
    let jacobian = ts
        .iter()
        .map(|&t| vec![(x[1] * t).exp(), x[0] * t * (x[1] * t).exp(), 1.0])
        .collect();
    (residuals, jacobian)
}

#[test]
fn gauss_newton_correction_is_jtj_and_gradient_jtr() {
    let be = Cpu::<f64>::new(3, 1);
    let x = [1.5, -1.0, 0.3];
    let (r, jac) = exp_fit(&x);
    let c = curvature_of("gauss_newton", true);
    let mut g = be.vector().unwrap();
    c.batch_gradient(&be, &jac, Some(&r), &mut g);
    let jtr: Vec<f64> = (0..3)
        .map(|k| jac.iter().zip(&r).map(|(row, ri)| row[k] * ri).sum())
        .collect();
    close(&g, &jtr, 1e-14, "gradient Jᵀr");
    // The correction's columns are J's rows: in a plain accumulating full_matrix basis, M = I + JᵀJ.
    let mut c = curvature_of("gauss_newton", true);
    let mut basis = basis_of("full_matrix(beta=none, eig_tol=none)", &be);
    c.prepare(&be, true, jac.len()).unwrap();
    let obs = Observation {
        grad: &g,
        samples: &jac,
        values: Some(&r),
        loss: None,
        probes: &[],
        hvps: &[],
        update: true,
    };
    let correction = c
        .observe(&be, &obs, &mut Current(basis.as_mut()))
        .correction
        .expect("an update");
    basis.update(&be, &correction).unwrap();
    for k in 0..3 {
        let e: Vec<f64> = (0..3).map(|i| f64::from(u8::from(i == k))).collect();
        let column = apply(basis.as_mut(), &be, &e);
        let expected: Vec<f64> = (0..3)
            .map(|i| {
                f64::from(u8::from(i == k)) + jac.iter().map(|row| row[i] * row[k]).sum::<f64>()
            })
            .collect();
        close(&column, &expected, 1e-12, "I + JᵀJ");
    }
}

/// Steps until ½‖r‖² < target (or `max`).
fn steps_to_fit(spec: &str, target: f64, max: usize) -> usize {
    let mut opt = CpuOptimizer::<f64>::from_spec(spec, 3).unwrap();
    // Close enough that full Gauss-Newton steps converge (it has no line search).
    let mut x = vec![1.5, -1.0, 0.3];
    for t in 0..max {
        let (r, jac) = exp_fit(&x);
        if 0.5 * r.iter().map(|v| v * v).sum::<f64>() < target {
            return t;
        }
        let rows: Vec<f64> = jac.concat();
        if opt.requirements().samples {
            opt.step_batch(&mut x, &rows, 20, Some(&r)).unwrap();
        } else {
            let g: Vec<f64> = (0..3)
                .map(|k| jac.iter().zip(&r).map(|(row, ri)| row[k] * ri).sum())
                .collect();
            if opt.step(&mut x, &g).is_err() {
                return max;
            }
        }
    }
    max
}

#[test]
fn gauss_newton_fits_in_far_fewer_steps_than_adam() {
    // With a window of one batch (20 rows) the basis holds JᵀJ exactly and l_inv takes the
    // Gauss-Newton step.
    let gn = steps_to_fit(
        "curvature=gauss_newton; basis=ggt(history_size=20); chain=[l_inv]; lr=1; dtype=f64",
        1e-10,
        2000,
    );
    let adam = [0.003, 0.01, 0.03, 0.1, 0.3]
        .iter()
        .map(|lr| {
            steps_to_fit(
                &format!("basis=identity; chain=[adam]; lr={lr}; dtype=f64"),
                1e-10,
                2000,
            )
        })
        .min()
        .unwrap();
    println!("steps to ½‖r‖² < 1e-10: Gauss-Newton {gn}, Adam (best lr) {adam}");
    assert!(gn <= 10, "Gauss-Newton needed {gn} steps");
    assert!(gn * 10 <= adam, "Gauss-Newton {gn} steps vs Adam {adam}");
}

/// Steps until the loss is below `target` (or `max`), with exact HVPs.
fn steps_to_converge(h: &Quadratic, spec: &str, target: f64, max: usize) -> usize {
    let n = h.diag.len();
    let mut opt = CpuOptimizer::<f64>::from_spec(spec, n).unwrap();
    let mut x = vec![0.0; n];
    for t in 0..max {
        let (loss, g) = h.loss_and_grad(&x);
        if loss < target {
            return t;
        }
        let ok = opt.step_with_hvp(&mut x, &g, |v, hv| {
            hv.copy_from_slice(&h.times(v));
            true
        });
        if ok.is_err() {
            return max;
        }
    }
    max
}

#[test]
fn hutchinson_with_l_inv_converges_much_faster_than_adam() {
    // Orthogonalized probes make every new Hessian sample a fresh direction, so the window
    // spans H's range after n updates and l_inv takes Newton steps in it.
    let h = Quadratic::new(20, 1e3, 77);
    let lre = steps_to_converge(
        &h,
        "curvature=full_hutchinson_hessian(orthogonalize=true); symmetrize=false; basis=ggt(history_size=20); chain=[l_inv]; lr=0.5; dtype=f64",
        1e-6,
        400,
    );
    let adam = [0.01, 0.03, 0.1, 0.3, 1.0]
        .iter()
        .map(|lr| {
            steps_to_converge(
                &h,
                &format!("basis=identity; chain=[adam]; lr={lr}; dtype=f64"),
                1e-6,
                400,
            )
        })
        .min()
        .unwrap();
    println!(
        "steps to loss < 1e-6: full_hutchinson_hessian + ggt + l_inv {lre}, Adam (best lr) {adam}"
    );
    assert!(lre < 150, "LRE needed {lre} steps");
    assert!(2 * lre <= adam, "LRE {lre} steps vs Adam {adam}");
}

#[test]
fn ritz_window_of_gradient_probes_lets_l_inv_converge_where_the_sum_stalls() {
    // Probes z = g (orthogonalized) on a 40-dimensional quadratic (condition 1e3), a window of 20
    // pairs (H·z, z). Summed, L grows with the window count and the probes' lengths, so l_inv's
    // steps shrink and no lr of the grid reaches the optimum in 300 steps; with combine=ritz
    // the window is P·H·P (P onto the last 20 gradients) and l_inv at lr = 1 minimizes over
    // that span: it converges.
    let h = Quadratic::new(40, 1e3, 5);
    let spec = |combine: &str, lr: f64| {
        format!(
            "curvature=full_hutchinson_hessian(z=g, orthogonalize=true); symmetrize=false; \
             basis=ggt(history_size=20, combine={combine}); chain=[l_inv]; lr={lr}; dtype=f64"
        )
    };
    let best = |combine: &str| {
        [0.01, 0.03, 0.1, 0.3, 1.0]
            .iter()
            .map(|&lr| steps_to_converge(&h, &spec(combine, lr), 1e-6, 300))
            .min()
            .unwrap()
    };
    let (ritz, sum) = (best("ritz"), best("sum"));
    println!("steps to loss < 1e-6 (best lr): combine=ritz {ritz}, combine=sum {sum}");
    assert!(ritz < 300, "combine=ritz did not converge in 300 steps");
    assert_eq!(sum, 300, "combine=sum converged in {sum} steps");
}

fn quadratic_grad(h: &Quadratic, x: &[f64]) -> Vec<f64> {
    h.times(x)
}

#[test]
fn split_step_equals_callback_step_bit_for_bit() {
    let h = Quadratic::new(N, 30.0, 9);
    let spec = "curvature=bfgs; basis=ggt(history_size=8); dtype=f64; lr=0.05";
    let mut a = CpuOptimizer::<f64>::from_spec(spec, N).unwrap();
    let mut b = CpuOptimizer::<f64>::from_spec(spec, N).unwrap();
    let (mut x, mut y) = (vec![1.0; N], vec![1.0; N]);
    for _ in 0..10 {
        let g = quadratic_grad(&h, &x);
        a.step_with_hvp(&mut x, &g, |v, hv| {
            hv.copy_from_slice(&h.times(v));
            true
        })
        .unwrap();
        let g = quadratic_grad(&h, &y);
        let probes = b.begin(&g).unwrap();
        let hvps: Vec<Vec<f64>> = (0..probes).map(|i| h.times(b.probe(i).unwrap())).collect();
        let rows: Vec<&[f64]> = hvps.iter().map(Vec::as_slice).collect();
        b.finish(&mut y, &rows).unwrap();
    }
    assert_eq!(
        x.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        y.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}

#[test]
fn step_protocol_misuse_is_refused_and_changes_nothing() {
    let h = Quadratic::new(N, 30.0, 10);
    let mut opt = CpuOptimizer::<f64>::from_spec("curvature=sr1; dtype=f64", N).unwrap();
    let mut x = vec![1.0; N];
    let g = quadratic_grad(&h, &x);
    opt.step_with_hvp(&mut x, &g, |v, hv| {
        hv.copy_from_slice(&h.times(v));
        true
    })
    .unwrap();
    let before = (x.clone(), opt.state());
    let unchanged =
        |opt: &CpuOptimizer<f64>, x: &Vec<f64>| assert_eq!((x.clone(), opt.state()), before);
    let status = |r: lre::Result<()>| r.unwrap_err().status;

    assert_eq!(
        status(opt.finish(&mut x, &[])),
        Status::LRE_ERR_CALL_ORDER,
        "finish without begin"
    );
    assert_eq!(
        opt.probe(0).unwrap_err().status,
        Status::LRE_ERR_CALL_ORDER,
        "probes before begin"
    );
    assert_eq!(
        status(opt.step(&mut x, &g)),
        Status::LRE_ERR_INVALID_ARGUMENT,
        "plain step needs HVPs"
    );
    let failed = opt.step_with_hvp(&mut x, &g, |_, _| false).unwrap_err();
    assert_eq!(failed.status, Status::LRE_ERR_CALLBACK);
    assert!(failed.message.contains("callback"), "{}", failed.message);
    unchanged(&opt, &x);

    assert_eq!(opt.begin(&g).unwrap(), 1);
    assert_eq!(
        opt.begin(&g).unwrap_err().status,
        Status::LRE_ERR_CALL_ORDER,
        "begin twice"
    );
    assert_eq!(
        status(opt.finish(&mut x, &[])),
        Status::LRE_ERR_INVALID_ARGUMENT,
        "missing HVP"
    );
    let mut bad = h.times(opt.probe(0).unwrap());
    bad[4] = f64::NAN;
    let err = opt.finish(&mut x, &[&bad]).unwrap_err();
    assert_eq!(err.status, Status::LRE_ERR_NUMERICAL);
    assert!(err.message.contains("hvp 0[4]"), "{}", err.message);
    assert!(opt.in_step(), "a refused finish keeps the step begun");
    opt.cancel();
    unchanged(&opt, &x);

    // Curvatures with other needs.
    let mut fisher =
        CpuOptimizer::<f64>::from_spec("curvature=empirical_fisher; dtype=f64", N).unwrap();
    assert_eq!(
        status(fisher.step(&mut x, &g)),
        Status::LRE_ERR_INVALID_ARGUMENT
    );
    let mut gn = CpuOptimizer::<f64>::from_spec("curvature=gauss_newton; dtype=f64", N).unwrap();
    let rows = vec![0.5; 2 * N];
    assert_eq!(
        status(gn.step_batch(&mut x, &rows, 2, None)),
        Status::LRE_ERR_INVALID_ARGUMENT,
        "residuals needed"
    );
    assert_eq!(
        status(gn.step_batch(&mut x, &rows, 2, Some(&[1.0]))),
        Status::LRE_ERR_INVALID_ARGUMENT,
        "values per row"
    );
    assert_eq!(
        status(gn.step_batch(&mut x, &rows, 3, Some(&[1.0; 3]))),
        Status::LRE_ERR_INVALID_ARGUMENT,
        "batch size"
    );
    let mut lossy =
        CpuOptimizer::<f64>::from_spec("curvature=covariance_times_loss; dtype=f64", N).unwrap();
    let err = lossy.step(&mut x, &g).unwrap_err();
    assert_eq!(err.status, Status::LRE_ERR_CALL_ORDER);
    assert!(err.message.contains("loss"), "{}", err.message);
    lossy.set_loss(2.0).unwrap();
    lossy.step(&mut x, &g).unwrap();
    assert_eq!(
        status(lossy.step(&mut x, &g)),
        Status::LRE_ERR_CALL_ORDER,
        "the loss is consumed by its step"
    );
}

#[test]
fn loss_curvatures_scale_their_columns() {
    // covariance_times_loss: y = g·(ℓ − min previous ℓ); unrolled_gauss_newton steps along
    // Σ ℓ_i·g_i over its history.
    let be = Cpu::<f64>::new(3, 1);
    let mut c = curvature_of("covariance_times_loss", true);
    let mut basis = basis_of("ggt", &be);
    let g = vec![1.0, 2.0, -1.0];
    let mut seen = Vec::new();
    for loss in [5.0, 3.0, 4.0] {
        c.prepare(&be, true, 0).unwrap();
        let obs = Observation {
            grad: &g,
            samples: &[],
            values: None,
            loss: Some(loss),
            probes: &[],
            hvps: &[],
            update: true,
        };
        let correction = c
            .observe(&be, &obs, &mut Current(basis.as_mut()))
            .correction
            .unwrap();
        seen.push(correction.columns[0][0]);
    }
    assert_eq!(seen, vec![5.0, 3.0 - 5.0, 4.0 - 3.0]);

    let mut u = curvature_of("unrolled_gauss_newton(history_size=2)", true);
    let grads = [
        vec![1.0, 0.0, 0.0],
        vec![0.0, 1.0, 0.0],
        vec![0.0, 0.0, 1.0],
    ];
    let mut last = Vec::new();
    for (g, loss) in grads.iter().zip([2.0, 3.0, 4.0]) {
        u.prepare(&be, false, 0).unwrap();
        let obs = Observation {
            grad: g,
            samples: &[],
            values: None,
            loss: Some(loss),
            probes: &[],
            hvps: &[],
            update: false,
        };
        last = u
            .observe(&be, &obs, &mut Current(basis.as_mut()))
            .gradient
            .expect("g_GN")
            .clone();
    }
    // Never corrected, so the history keeps all three; g_GN uses the last two.
    assert_eq!(last, vec![0.0, 3.0, 4.0]);
}

#[test]
fn bfgs_and_sr1_need_a_basis_with_eigenvalues() {
    let err = CpuOptimizer::<f32>::from_spec("curvature=bfgs; basis=identity", 4)
        .err()
        .unwrap();
    assert_eq!(err.status, Status::LRE_ERR_SPEC);
    assert!(err.message.contains("eigenvalues"), "{}", err.message);
    let err =
        CpuOptimizer::<f32>::from_spec("curvature=covariance; chain=[hutchinson_adam]", 4).err();
    assert!(err.is_none_or(
        |e| e.status == Status::LRE_ERR_SPEC || e.status == Status::LRE_ERR_UNSUPPORTED
    ));
}
