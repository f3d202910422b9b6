//! A GGT window stored in bf16 or f16 (`ggt(storage=bf16)`, src/backend/packed.rs): the passes
//! over it against dense f64 references, a whole optimizer against the f32 window, the state
//! declaration and checkpoints. (Resume and declared-buffer checks of these specs also run in
//! tests/state.rs.)

mod common;
use common::Xorshift;

use lre::CpuOptimizer;
use lre::backend::{Backend, Cpu, PackedMatrix};
use lre::elem::ElemType;
use lre::half::{Bf16, F16, Half};

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

/// Column `j` of `m` as the values it stands for (codes over the scale), in f64.
fn stored(m: &dyn PackedMatrix<Cpu<f32>>, j: usize, n: usize) -> Vec<f64> {
    let mut codes = vec![0u16; n];
    let scale = m.column_to_host(j, &mut codes);
    codes
        .iter()
        .map(|&b| {
            let v = match m.format() {
                ElemType::Bf16 => Bf16(b).to_f32(),
                _ => F16(b).to_f32(),
            };
            v as f64 / scale
        })
        .collect()
}

/// The packed matrix holding `cols`, and the values it stores.
fn packed(
    be: &Cpu<f32>,
    format: ElemType,
    cols: &[Vec<f32>],
) -> (Box<dyn PackedMatrix<Cpu<f32>>>, Vec<Vec<f64>>) {
    let mut m = be.packed_matrix(format).unwrap();
    m.grow(cols.len()).unwrap();
    for (j, c) in cols.iter().enumerate() {
        let scale = m.scale_for(c);
        m.set_column(j, c, scale);
    }
    let values = (0..cols.len())
        .map(|j| stored(m.as_ref(), j, cols[0].len()))
        .collect();
    (m, values)
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
                    let dot = |c: &[f64]| -> (f64, f64) {
                        c.iter().zip(&x).fold((0.0, 0.0), |(s, a), (c, x)| {
                            let p = *c * *x as f64;
                            (s + p, a + p.abs())
                        })
                    };
                    let (exact, magnitude) = dot(&stored[j]);
                    assert!(
                        (out[j] - exact).abs() <= 1e-6 * magnitude,
                        "{name}, threads {threads}, column {j}: {} vs stored {exact}",
                        out[j]
                    );
                    let given_column: Vec<f64> = cols[j].iter().map(|v| *v as f64).collect();
                    let (given, magnitude) = dot(&given_column);
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
                        let err = (*a as f64 - *b).abs();
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
                    let p = w[j] * stored[j][i];
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

/// The products a new column enters with are those of the column as it is then stored: with
/// the stored columns within the streaming bound, with itself and another new column as f64
/// sums of the stored values.
#[test]
fn entering_products_are_those_of_the_stored_column() {
    let n = 90_001;
    for threads in [1, 2] {
        let be = Cpu::<f32>::new(n, threads);
        for (format, name) in FORMATS {
            let mut rng = Xorshift(5);
            let cols = columns(&mut rng, n, 7, 3.0, 1e-3);
            let (mut m, values) = packed(&be, format, &cols[..5]);
            let (y, z) = (&cols[5], &cols[6]);
            let (sy, sz) = (m.scale_for(y), m.scale_for(z));
            let (products, inner) = m.entering_products(&[4, 0, 2], &[(y, sy), (z, sz)]);
            m.grow(7).unwrap();
            m.set_column(5, y, sy);
            m.set_column(6, z, sz);
            let (y_stored, z_stored) = (stored(m.as_ref(), 5, n), stored(m.as_ref(), 6, n));
            let dot = |a: &[f64], b: &[f64]| -> (f64, f64) {
                a.iter()
                    .zip(b)
                    .fold((0.0, 0.0), |(s, t), (a, b)| (s + a * b, t + (a * b).abs()))
            };
            for (row, v) in [(0, &y_stored), (1, &z_stored)] {
                for (k, j) in [4, 0, 2].into_iter().enumerate() {
                    let (exact, magnitude) = dot(&values[j], v);
                    assert!(
                        (products[row][k] - exact).abs() <= 1e-6 * magnitude,
                        "{name}, threads {threads}: new {row} · column {j}"
                    );
                }
            }
            for ((i, a), (j, b)) in [
                ((0, &y_stored), (0, &y_stored)),
                ((1, &z_stored), (0, &y_stored)),
            ] {
                let (exact, magnitude) = dot(a, b);
                assert!(
                    (inner[(i, j)] - exact).abs() <= 1e-12 * magnitude
                        && inner[(i, j)] == inner[(j, i)],
                    "{name}, threads {threads}: inner ({i}, {j})"
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
