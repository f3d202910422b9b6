//! A GGT window stored in bf16 or f16 (`ggt(storage=bf16)`, src/backend/packed.rs): the passes
//! over it against dense f64 references, a whole optimizer against the f32 window, the state
//! declaration and checkpoints. (Resume and declared-buffer checks of these specs also run in
//! tests/state.rs.)

mod common;
use common::Xorshift;

use lre::CpuOptimizer;
use lre::backend::{Backend, Cpu, PackedMatrix};
use lre::elem::ElemType;

const FORMATS: [(ElemType, &str); 2] = [(ElemType::Bf16, "bf16"), (ElemType::F16, "f16")];

/// Unit roundoff of each format: half the distance from 1 to the next value.
fn unit_roundoff(format: ElemType) -> f64 {
    match format {
        ElemType::Bf16 => 2f64.powi(-8),
        _ => 2f64.powi(-11),
    }
}

/// Columns with entries over `decades` decades of magnitude, both signs.
fn columns(rng: &mut Xorshift, n: usize, p: usize, decades: f64, top: f64) -> Vec<Vec<f32>> {
    (0..p)
        .map(|_| {
            (0..n)
                .map(|_| {
                    (top * rng.uniform().signum() * 10f64.powf(-decades * (rng.uniform() + 0.5)))
                        as f32
                })
                .collect()
        })
        .collect()
}

/// The packed matrix holding `cols`, and the values it stores (as `round` returns them).
fn packed(
    be: &Cpu<f32>,
    format: ElemType,
    cols: &[Vec<f32>],
) -> (Box<dyn PackedMatrix<Cpu<f32>>>, Vec<Vec<f32>>) {
    let mut m = be.packed_matrix(format).unwrap();
    m.grow(cols.len()).unwrap();
    let mut stored = Vec::new();
    for (j, c) in cols.iter().enumerate() {
        let mut r = vec![0f32; c.len()];
        let scale = m.round(c, &mut r);
        m.set_column(j, &r, scale);
        stored.push(r);
    }
    (m, stored)
}

/// Column dots against f64 references: with the stored values, within the streaming bound
/// 1e-6·Σ|c_i·x_i| (src/backend/cpu/streaming.rs); with the columns as given, within the
/// format's rounding, u·Σ|c_i·x_i|, plus f16's underflow: an entry below 2⁻²⁹·‖c‖ may lose all
/// digits, at most 2⁻³⁹·‖c‖ each (2⁻⁴⁰ relative to a top entry scaled into [2¹⁴, 2¹⁵)).
/// Entries span 1e-20..1e20 (beyond f16's own range: the scale per column must take them).
#[test]
fn column_dots_match_f64_within_the_stated_bounds() {
    let n = 100_003;
    for threads in [1, 2] {
        let be = Cpu::<f32>::new(n, threads);
        for (format, name) in FORMATS {
            for (decades, top) in [(2.0, 1.0), (6.0, 1e20), (6.0, 1e-20)] {
                let mut rng = Xorshift(7 + threads as u64);
                let cols = columns(&mut rng, n, 6, decades, top);
                let x: Vec<f32> = (0..n).map(|_| rng.uniform() as f32).collect();
                let (m, stored) = packed(&be, format, &cols);
                let mut out = vec![0.0; cols.len()];
                m.column_dots(&[0, 1, 2, 3, 4, 5], &x, &mut out);
                for j in 0..cols.len() {
                    let dot = |c: &[f32]| -> (f64, f64) {
                        c.iter().zip(&x).fold((0.0, 0.0), |(s, a), (c, x)| {
                            let p = *c as f64 * *x as f64;
                            (s + p, a + p.abs())
                        })
                    };
                    let (exact, magnitude) = dot(&stored[j]);
                    assert!(
                        (out[j] - exact).abs() <= 1e-6 * magnitude,
                        "{name}, threads {threads}, column {j}: {} vs stored {exact}",
                        out[j]
                    );
                    let (given, magnitude) = dot(&cols[j]);
                    let norm = cols[j]
                        .iter()
                        .map(|v| (*v as f64).powi(2))
                        .sum::<f64>()
                        .sqrt();
                    let x_sum: f64 = x.iter().map(|v| v.abs() as f64).sum();
                    let bound =
                        (unit_roundoff(format) + 1e-6) * magnitude + 2f64.powi(-39) * norm * x_sum;
                    assert!(
                        (out[j] - given).abs() <= bound,
                        "{name}, column {j}: {} vs {given}, bound {bound}",
                        out[j]
                    );
                }
                // The rounding is to nearest: no stored entry is farther than u relative
                // (or than f16's underflow quantum) from the given one.
                for (c, r) in cols.iter().zip(&stored) {
                    let norm = c.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
                    for (a, b) in c.iter().zip(r) {
                        let err = (*a as f64 - *b as f64).abs();
                        assert!(
                            err <= unit_roundoff(format) * (*a as f64).abs()
                                + 2f64.powi(-39) * norm,
                            "{name}: {a:e} stored as {b:e}"
                        );
                    }
                }
            }
        }
    }
}

/// The unprojection y + Σ_j w_j·c_j against an f64 reference with the stored values: within
/// 6e-7·Σ_j |w_j·c_j[i]| plus y_i's rounding to f32 (src/backend/cpu/streaming.rs).
#[test]
fn unprojection_matches_f64_within_the_stated_bound() {
    let n = 70_001;
    for threads in [1, 2] {
        let be = Cpu::<f32>::new(n, threads);
        for (format, name) in FORMATS {
            let mut rng = Xorshift(11);
            let cols = columns(&mut rng, n, 9, 4.0, 1e10);
            let (m, stored) = packed(&be, format, &cols);
            let w: Vec<f64> = (0..9).map(|j| 1e-10 * (j as f64 - 4.3)).collect();
            let y0: Vec<f32> = (0..n).map(|_| rng.uniform() as f32).collect();
            let mut y = y0.clone();
            let order: Vec<usize> = (0..9).collect();
            m.add_columns(&order, &w, &mut y);
            for i in 0..n {
                let (mut sum, mut magnitude) = (0.0f64, 0.0f64);
                for j in 0..9 {
                    let p = w[j] * stored[j][i] as f64;
                    sum += p;
                    magnitude += p.abs();
                }
                let exact = y0[i] as f64 + sum;
                let bound = 6e-7 * magnitude + exact.abs() * 2f64.powi(-24) + 1e-300;
                assert!(
                    (y[i] as f64 - exact).abs() <= bound * (1.0 + 1e-12),
                    "{name}, threads {threads}, row {i}: {} vs {exact}",
                    y[i]
                );
            }
        }
    }
}

/// A 16-bit matrix holds half the bytes of the f32 one and refuses non-finite codes and bad
/// scales on load, unchanged.
#[test]
fn packed_columns_load_checked() {
    let be = Cpu::<f32>::new(5, 1);
    let mut m = be.packed_matrix(ElemType::F16).unwrap();
    m.grow(3).unwrap();
    assert_eq!(m.bytes(), 5 * 3 * 2);
    m.column_from_host(&[0x3c00; 5], 4.0, 1).unwrap();
    let mut out = [0u16; 5];
    assert_eq!(m.column_to_host(1, &mut out), 4.0);
    assert_eq!(out, [0x3c00; 5]);
    let inf = m
        .column_from_host(&[0x3c00, 0x7c00, 0, 0, 0], 4.0, 1)
        .unwrap_err();
    assert!(inf.message.contains("non-finite"), "{inf}");
    let scale = m.column_from_host(&[0; 5], 3.0, 1).unwrap_err();
    assert!(scale.message.contains("power of two"), "{scale}");
    assert_eq!(m.column_to_host(1, &mut out), 4.0);
    assert_eq!(out, [0x3c00; 5]);
    // One 1.0 in the column, read as 1/4.
    let mut dots = [0.0];
    m.column_dots(&[1], &vec![1.0, 0.0, 0.0, 0.0, 0.0], &mut dots);
    assert_eq!(dots[0], 0.25);
}

/// A quadratic with spread curvature; the gradient at x.
fn gradient(x: &[f32]) -> Vec<f32> {
    x.iter()
        .enumerate()
        .map(|(i, v)| (1.0 + 9.0 * (i % 10) as f32 / 9.0) * v)
        .collect()
}

fn run(spec: &str, n: usize, steps: usize) -> Vec<f32> {
    let mut opt = CpuOptimizer::<f32>::from_spec(spec, n).unwrap();
    let mut rng = Xorshift(3);
    let mut x: Vec<f32> = (0..n).map(|_| rng.uniform() as f32).collect();
    for _ in 0..steps {
        let g = gradient(&x);
        opt.step(&mut x, &g).unwrap();
    }
    x
}

/// GGT with a 16-bit window against the f32 window on a small quadratic. Each stored column is
/// within u (2⁻⁸ for bf16, 2⁻¹¹ for f16) of the f32 one, relative entrywise, and the step is a
/// smooth function of the window whose eigenvalues here are well separated from the damping, so
/// the parameters after a step differ by O(u) relative to the distance they moved (measured:
/// 0.43u after one step for bf16, 0.11u after ten: the quadratic contracts earlier
/// perturbations), so 2u bounds the gap with room. The f16 run must be closer than the bf16
/// one (its u is 8× smaller).
#[test]
fn a_half_window_steps_like_the_f32_window() {
    let n = 500;
    let x0 = run("basis=ggt(history_size=8); lr=0.1", n, 0);
    let mut gaps = Vec::new();
    for steps in [1usize, 10] {
        let reference = run("basis=ggt(history_size=8); lr=0.1", n, steps);
        let moved: f64 = reference
            .iter()
            .zip(&x0)
            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        for (format, name) in FORMATS {
            let x = run(
                &format!("basis=ggt(history_size=8, storage={name}); lr=0.1"),
                n,
                steps,
            );
            let gap: f64 = x
                .iter()
                .zip(&reference)
                .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
                .sum::<f64>()
                .sqrt()
                / moved;
            let bound = 2.0 * unit_roundoff(format);
            assert!(
                gap <= bound,
                "{name}, {steps} steps: relative gap {gap:e} > {bound:e}"
            );
            gaps.push((name, steps, gap));
        }
    }
    for steps in [1, 10] {
        let gap = |want: &str| gaps.iter().find(|g| g.0 == want && g.1 == steps).unwrap().2;
        assert!(gap("f16") < gap("bf16"), "{steps} steps: {gaps:?}");
    }
}

/// The declaration: the window in its storage type (half the bytes), its scales, the exact
/// bound of a full window; a saved state stores the window as bf16/f16 and resumes bit for
/// bit; a state saved with another storage is refused, naming the buffer's type.
#[test]
fn declaration_and_checkpoints_follow_the_storage_type() {
    let n = 300;
    let m = 6;
    for (format, name) in FORMATS {
        let spec = format!("basis=ggt(history_size={m}, storage={name}); lr=0.05");
        let mut opt = CpuOptimizer::<f32>::from_spec(&spec, n).unwrap();
        let window = opt.state_layout().find("basis/window").unwrap();
        assert_eq!(window.elem(ElemType::F32), format);
        assert_eq!(window.elements(n), (n * m) as u128);
        assert!(opt.state_layout().find("basis/window_scale").is_some());
        let f32_opt =
            CpuOptimizer::<f32>::from_spec(&format!("basis=ggt(history_size={m}); lr=0.05"), n)
                .unwrap();
        // The bound shrinks by exactly the window's halved bytes, less the scales' buffer.
        let scale_buffer = (1 + 4 + "basis/window_scale".len() + 1 + 1 + 16 + 8 * m) as isize;
        let spec_growth =
            opt.config().to_string().len() as isize - f32_opt.config().to_string().len() as isize;
        let saved = (n * m * 2) as isize - scale_buffer - spec_growth;
        assert_eq!(
            f32_opt.state_bound().unwrap() as isize - opt.state_bound().unwrap() as isize,
            saved,
            "{name}"
        );

        let mut rng = Xorshift(9);
        let mut x: Vec<f32> = (0..n).map(|_| rng.uniform() as f32).collect();
        for _ in 0..m + 3 {
            let g = gradient(&x);
            opt.step(&mut x, &g).unwrap();
        }
        let blob = opt.state();
        let dec = lre::state::Decoder::new(&blob).unwrap();
        let stored: Vec<_> = dec.buffers().filter(|b| b.0 == "basis/window").collect();
        // The full window, m columns of n 16-bit values.
        assert_eq!(stored[0].1, format);
        assert_eq!(stored[0].2, &[m, n]);

        let mut resumed = CpuOptimizer::<f32>::from_spec(&spec, n).unwrap();
        resumed.load_state(&blob).unwrap();
        assert_eq!(resumed.state(), blob, "{name}: save, load, save");
        let mut y = x.clone();
        for _ in 0..4 {
            let (gx, gy) = (gradient(&x), gradient(&y));
            opt.step(&mut x, &gx).unwrap();
            resumed.step(&mut y, &gy).unwrap();
        }
        assert_eq!(x, y, "{name}: resumed run");

        let mut other =
            CpuOptimizer::<f32>::from_spec(&format!("basis=ggt(history_size={m}); lr=0.05"), n)
                .unwrap();
        let err = other.load_state(&blob).unwrap_err();
        assert!(
            err.to_string().contains("storage") || err.to_string().contains(name),
            "{err}"
        );
    }
}

/// Storage names are checked by the spec parser.
#[test]
fn storage_is_a_checked_word() {
    let Err(err) = CpuOptimizer::<f32>::from_spec("basis=ggt(storage=f8)", 10) else {
        panic!("storage=f8 was accepted");
    };
    assert!(err.message.contains("bf16"), "{err}");
    let opt = CpuOptimizer::<f32>::from_spec("basis=ggt(storage=bf16)", 10).unwrap();
    assert!(opt.config().to_string().contains("storage=bf16"));
}
