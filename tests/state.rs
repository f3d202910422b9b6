//! Saved state (docs/state-format.md): bit-exact resume for every implemented component, in
//! memory and through files, f32 and f64; mismatches and corruption refused with nothing
//! changed; every format version ever written stays readable; the loader survives fuzzing.

mod common;
#[path = "common/process.rs"]
mod process;
use common::Xorshift;
use process::scratch_dir;

use lre::backend::Scalar;
use lre::{CpuOptimizer, Status};
use std::collections::BTreeSet;

/// Every curvature, basis and inner member of the registries, each in a configuration that
/// gives it what it needs, with small windows and ranks so that windows wrap within `STEPS`
/// steps; in turn with pending gradients (update_freq), init steps and AMSGrad where a member
/// has it. Then a few settings no single component covers.
fn resume_specs() -> Vec<String> {
    const SETTINGS: [&str; 4] = [
        "",
        "update_freq=3",
        "init_steps=4",
        "update_freq=2; init_steps=3",
    ];
    let mut specs = Vec::new();
    let mut push = |spec: String| {
        let setting = SETTINGS[specs.len() % SETTINGS.len()];
        specs.push(format!("{spec}; {setting}"));
    };
    for c in lre::curvature::FAMILY.components() {
        push(format!(
            "curvature={}; basis=ggt(history_size=5); chain=[adam]",
            small(c)
        ));
    }
    for b in lre::basis::FAMILY.components() {
        push(format!("basis={}; chain=[adam]", small(b)));
    }
    for m in lre::inner::FAMILY.components() {
        let member =
            lre::inner::build(&lre::spec::parse_component(m.name, &lre::inner::FAMILY).unwrap())
                .unwrap();
        let curvature = if member.needs_hessian() {
            "full_hutchinson_hessian"
        } else if member.needs_jacobian() {
            "empirical_fisher"
        } else {
            "covariance"
        };
        push(format!(
            "curvature={curvature}; basis=ggt(history_size=5); chain=[{}, clip_norm]",
            small(m)
        ));
    }
    specs.extend(
        [
            "",
            "chain=[]",
            "curvature=full_hutchinson_hessian(z=s, orthogonalize=true); symmetrize=false; \
             basis=ggt(history_size=4); chain=[hutchinson_adam, full_matrix_hutchinson_adam]",
            "basis=eigen(rank=3, beta=none, abs=true, update_truncate=2); init_steps=5; update_freq=2",
            "basis=hebbian_learning(rank=2, opt=stiefel_gd, reortho_freq=2)",
            "basis=ggt(history_size=4, storage=bf16); chain=[adam]; update_freq=2",
            "curvature=full_hutchinson_hessian(z=s, orthogonalize=true); symmetrize=false; \
             basis=ggt(history_size=3, storage=f16)",
            "basis=eigen(rank=2); diagonal=complement; warmup=3",
            "diagonal=graft; update_freq=2",
            "warmup=4; init_steps=2",
        ]
        .map(String::from),
    );
    specs
}

/// A component with the small sizes the resume tests use and AMSGrad on where it exists.
fn small(c: &lre::component::ComponentSpec) -> String {
    let args: Vec<&str> = c
        .params
        .iter()
        .filter_map(|p| match p.name {
            "rank" => Some("rank=3"),
            "history_size" => Some("history_size=4"),
            "oversampling" => Some("oversampling=2"),
            "amsgrad_beta" => Some("amsgrad_beta=0.999"),
            _ => None,
        })
        .collect();
    format!("{}({})", c.name, args.join(", "))
}

const N: usize = 7;
const STEPS: usize = 20;

fn gradients<T: Scalar>(seed: u64) -> Vec<Vec<T>> {
    let mut rng = Xorshift(seed);
    (0..STEPS)
        .map(|_| (0..N).map(|_| T::from_f64(rng.uniform())).collect())
        .collect()
}

fn bits<T: Scalar>(x: &[T]) -> Vec<u64> {
    x.iter().map(|v| v.to_f64().to_bits()).collect()
}

fn spec_for<T: Scalar>(base: &str) -> String {
    format!("{base}; dtype={}; lr=0.05", T::DTYPE)
}

/// One step that gives the curvature what it needs: the loss, Hessian-vector products of
/// H = diag(1, 2, …, n), or per-sample gradients (three scaled copies of g, residuals 1, 2, −1).
fn drive<T: Scalar>(opt: &mut CpuOptimizer<T>, x: &mut [T], g: &[T], t: usize) {
    let needs = opt.requirements();
    if needs.loss {
        opt.set_loss(1.0 + (t as f64 * 0.7).sin()).unwrap();
    }
    if needs.samples {
        let rows: Vec<T> = [0.5, 0.3, 0.2]
            .iter()
            .flat_map(|w| g.iter().map(move |v| T::from_f64(w * v.to_f64())))
            .collect();
        opt.step_batch(x, &rows, 3, Some(&[1.0, 2.0, -1.0]))
            .unwrap();
    } else if needs.probes > 0 {
        opt.step_with_hvp(x, g, |v, hv| {
            for (i, (o, vi)) in hv.iter_mut().zip(v).enumerate() {
                *o = T::from_f64((i + 1) as f64 * vi.to_f64());
            }
            true
        })
        .unwrap();
    } else {
        opt.step(x, g).unwrap();
    }
}

/// Runs `STEPS` steps without interruption.
fn straight<T: Scalar>(spec: &str, grads: &[Vec<T>]) -> Vec<T> {
    let mut opt = CpuOptimizer::<T>::from_spec(spec, N).unwrap();
    let mut x = vec![T::from_f64(0.3); N];
    for (t, g) in grads.iter().enumerate() {
        drive(&mut opt, &mut x, g, t);
    }
    x
}

/// How a resumed run gets its optimizer back.
#[derive(Clone, Copy, Debug)]
enum Resume {
    /// `load_state` into a fresh optimizer built from the same spec.
    LoadIntoFresh,
    /// `from_state`: spec, n and dtype from the blob.
    FromState,
    /// `save_file` + `from_file`.
    File,
}

fn resumed<T: Scalar>(
    spec: &str,
    grads: &[Vec<T>],
    k: usize,
    how: Resume,
    dir: &std::path::Path,
) -> Vec<T> {
    let mut opt = CpuOptimizer::<T>::from_spec(spec, N).unwrap();
    let mut x = vec![T::from_f64(0.3); N];
    for (t, g) in grads[..k].iter().enumerate() {
        drive(&mut opt, &mut x, g, t);
    }
    let mut opt = match how {
        Resume::LoadIntoFresh => {
            let mut fresh = CpuOptimizer::<T>::from_spec(spec, N).unwrap();
            fresh.load_state(&opt.state()).unwrap();
            fresh
        }
        Resume::FromState => CpuOptimizer::<T>::from_state(&opt.state()).unwrap(),
        Resume::File => {
            let path = dir.join(format!("resume-{}-{k}.lre", T::DTYPE));
            opt.save_file(&path).unwrap();
            CpuOptimizer::<T>::from_file(&path).unwrap()
        }
    };
    for (t, g) in grads.iter().enumerate().skip(k) {
        drive(&mut opt, &mut x, g, t);
    }
    x
}

fn check_resume<T: Scalar>() {
    let dir = scratch_dir(&format!("state-resume-{}", T::DTYPE));
    for base in resume_specs() {
        let spec = spec_for::<T>(&base);
        let grads = gradients::<T>(17);
        let expected = bits(&straight(&spec, &grads));
        for k in [0, 1, 2, 6, 13, STEPS] {
            for how in [Resume::LoadIntoFresh, Resume::FromState, Resume::File] {
                let got = bits(&resumed(&spec, &grads, k, how, &dir));
                assert_eq!(
                    got, expected,
                    "spec {spec:?}: resume after {k} steps via {how:?}"
                );
            }
        }
    }
}

#[test]
fn resume_is_bit_exact_f32() {
    check_resume::<f32>();
}

#[test]
fn resume_is_bit_exact_f64() {
    check_resume::<f64>();
}

#[test]
fn resume_specs_cover_every_component() {
    let mut used = BTreeSet::new();
    for base in resume_specs() {
        let c = lre::Config::parse(&base).unwrap();
        used.insert(c.curvature.name());
        used.insert(c.basis.name());
        used.extend(c.chain.iter().map(|m| m.name()));
    }
    let mut total = 0;
    for family in [
        &lre::curvature::FAMILY,
        &lre::basis::FAMILY,
        &lre::inner::FAMILY,
    ] {
        for spec in family.components() {
            total += 1;
            assert!(
                used.contains(spec.name),
                "no resume test covers {} {}",
                family.what,
                spec.name
            );
        }
    }
    assert!(total >= 38, "{total} components");
}

fn expect_state_error(result: lre::Result<()>, needles: &[&str]) {
    let err = result.unwrap_err();
    assert_eq!(err.status, Status::LRE_ERR_STATE, "{}", err.message);
    for needle in needles {
        assert!(
            err.message.contains(needle),
            "message {:?} lacks {needle:?}",
            err.message
        );
    }
}

#[test]
fn mismatching_states_are_refused_and_change_nothing() {
    let grads = gradients::<f32>(3);
    let mut source = CpuOptimizer::<f32>::from_spec("basis=ggt(history_size=6)", N).unwrap();
    let mut x = vec![0.0f32; N];
    for g in &grads[..4] {
        source.step(&mut x, g).unwrap();
    }
    let blob = source.state();
    let mut target = CpuOptimizer::<f32>::from_spec("basis=ggt(history_size=8)", N).unwrap();
    target.step(&mut x, &grads[5]).unwrap();
    let before = target.state();
    expect_state_error(
        target.load_state(&blob),
        &["basis", "history_size=6", "history_size=8"],
    );
    let mut chain =
        CpuOptimizer::<f32>::from_spec("basis=ggt(history_size=6); chain=[adam]", N).unwrap();
    expect_state_error(chain.load_state(&blob), &["chain"]);
    let mut wider = CpuOptimizer::<f32>::from_spec("basis=ggt(history_size=6)", N + 1).unwrap();
    expect_state_error(
        wider.load_state(&blob),
        &["n: the state has 7, this optimizer 8"],
    );
    let mut double =
        CpuOptimizer::<f64>::from_spec("basis=ggt(history_size=6); dtype=f64", N).unwrap();
    expect_state_error(double.load_state(&blob), &["dtype"]);
    assert_eq!(
        target.state(),
        before,
        "a refused load changed the optimizer"
    );
    let err = CpuOptimizer::<f64>::from_state(&blob)
        .err()
        .expect("dtype mismatch");
    assert_eq!(err.status, Status::LRE_ERR_STATE);

    // lr is state (schedules change it) and threads belong to the machine: both may differ.
    let mut other_lr =
        CpuOptimizer::<f32>::from_spec("basis=ggt(history_size=6); lr=0.5; threads=2", N).unwrap();
    other_lr.load_state(&blob).unwrap();
    assert_eq!(other_lr.config().lr, 0.01);
    assert_eq!(other_lr.threads(), 2);
}

/// The blob with its checksum recomputed (so mutations reach the structural checks).
fn reseal(blob: &mut [u8]) {
    let body = blob.len() - 4;
    let crc = crc32fast::hash(&blob[..body]);
    blob[body..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn corrupt_blobs_are_refused_with_a_reason() {
    let mut opt = CpuOptimizer::<f64>::from_spec("dtype=f64", N).unwrap();
    let mut x = vec![0.0; N];
    for g in &gradients::<f64>(4)[..3] {
        opt.step(&mut x, g).unwrap();
    }
    let blob = opt.state();
    let before = opt.state();
    let mut flipped = blob.clone();
    flipped[blob.len() / 2] ^= 0x40;
    expect_state_error(opt.load_state(&flipped), &["checksum"]);
    expect_state_error(opt.load_state(&blob[..blob.len() - 9]), &["checksum"]);
    expect_state_error(opt.load_state(b"not a state at all"), &["magic"]);
    expect_state_error(opt.load_state(&[]), &["magic"]);
    let mut newer = blob.clone();
    newer[8..12].copy_from_slice(&(lre::state::FORMAT_VERSION + 1).to_le_bytes());
    reseal(&mut newer);
    let newer_version = format!("format version {}", lre::state::FORMAT_VERSION + 1);
    expect_state_error(opt.load_state(&newer), &[newer_version.as_str(), "newer"]);
    assert_eq!(opt.state(), before);
}

/// The run that produced tests/data/state-v1.bin (format version 1): 5 steps of this spec.
const SAMPLE_SPEC: &str = "basis=ggt(history_size=4); update_freq=2; chain=[adam(amsgrad_beta=0.99), cautious, normalize_by_ema, ema]; seed=7";

fn sample_run() -> (CpuOptimizer<f32>, Vec<f32>, Vec<Vec<f32>>) {
    let grads = gradients::<f32>(2024);
    let mut opt = CpuOptimizer::<f32>::from_spec(SAMPLE_SPEC, N).unwrap();
    let mut x = vec![0.25f32; N];
    for g in &grads[..5] {
        opt.step(&mut x, g).unwrap();
    }
    (opt, x, grads)
}

#[test]
fn every_format_version_ever_written_stays_readable() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/state-v1.bin");
    if std::env::var_os("LRE_BLESS").is_some() && !path.exists() {
        sample_run().0.save_file(&path).unwrap();
    }
    let sample = std::fs::read(&path).expect("tests/data/state-v1.bin (create with LRE_BLESS=1)");
    assert_eq!(
        &sample[8..12],
        &1u32.to_le_bytes(),
        "the v1 sample is format version 1"
    );
    let mut loaded = CpuOptimizer::<f32>::from_state(&sample).unwrap();
    let (mut live, x, grads) = sample_run();
    assert_eq!(loaded.steps(), 5);
    let (mut a, mut b) = (x.clone(), x);
    for g in &grads[5..] {
        loaded.step(&mut a, g).unwrap();
        live.step(&mut b, g).unwrap();
    }
    assert_eq!(
        bits(&a),
        bits(&b),
        "the v1 sample resumes exactly like the live run"
    );
}

#[test]
fn save_file_replaces_atomically_and_reports_io_errors() {
    let dir = scratch_dir("state-files");
    let path = dir.join("checkpoint.lre");
    let mut opt = CpuOptimizer::<f32>::from_spec("", N).unwrap();
    let mut x = vec![0.0f32; N];
    opt.save_file(&path).unwrap();
    let first = std::fs::read(&path).unwrap();
    opt.step(&mut x, &gradients::<f32>(1)[0]).unwrap();
    opt.save_file(&path).unwrap();
    let second = std::fs::read(&path).unwrap();
    assert_ne!(first, second);
    assert_eq!(second, opt.state());
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "temporary files left behind: {leftovers:?}"
    );
    let missing = dir.join("no/such/folder/checkpoint.lre");
    let err = opt.save_file(&missing).unwrap_err();
    assert_eq!(err.status, Status::LRE_ERR_IO);
    assert!(err.message.contains("no/such/folder"), "{}", err.message);
    let err = opt.load_file(&dir.join("absent.lre")).unwrap_err();
    assert_eq!(err.status, Status::LRE_ERR_IO);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        second,
        "failed saves leave the checkpoint intact"
    );
}

#[test]
fn the_loader_survives_mutated_blobs() {
    // 100,000 mutated blobs, half with a recomputed checksum so the structural checks are
    // reached: never a panic, memory only for the buffers a blob contains (n-sized memory
    // grows with loaded content), and a blob that loads is self-consistent.
    let mut opt =
        CpuOptimizer::<f32>::from_spec("basis=ggt(history_size=3); update_freq=2", 3).unwrap();
    let mut x = vec![0.0f32; 3];
    for g in [[0.1f32, -0.2, 0.3], [0.5, 0.1, -0.1], [0.2, 0.2, 0.2]] {
        opt.step(&mut x, &g).unwrap();
    }
    let blob = opt.state();
    let mut rng = Xorshift(99);
    let mut loaded = 0;
    for case in 0..100_000u32 {
        let mut m = blob.clone();
        let edits = 1 + ((rng.uniform() + 0.5) * 3.0) as usize;
        for _ in 0..edits {
            let at = ((rng.uniform() + 0.5) * m.len() as f64) as usize % m.len();
            match case % 4 {
                0 => m[at] ^= 1 << (at % 8),
                1 => m[at] = 0xff,
                2 => m.truncate(at.max(1)),
                _ => m.insert(at, (case % 251) as u8),
            }
        }
        if case % 2 == 0 && m.len() > 4 {
            reseal(&mut m);
        }
        let result =
            std::panic::catch_unwind(|| CpuOptimizer::<f32>::from_state(&m).map(|o| o.state()));
        match result {
            Err(_) => panic!("case {case}: the loader panicked"),
            Ok(Ok(resaved)) => {
                // A mutated blob may still be valid (a changed number, a spec spelled in other
                // case); loading its canonical re-save must give the same state again.
                loaded += 1;
                let again = CpuOptimizer::<f32>::from_state(&resaved).map(|o| o.state());
                assert!(
                    again.as_ref() == Ok(&resaved),
                    "case {case}: the re-saved state is not a fixpoint"
                );
            }
            Ok(Err(e)) => assert!(
                matches!(
                    e.status,
                    Status::LRE_ERR_STATE
                        | Status::LRE_ERR_OUT_OF_MEMORY
                        | Status::LRE_ERR_UNSUPPORTED
                ),
                "case {case}: {e}"
            ),
        }
    }
    assert!(
        loaded > 0 && loaded < 100_000,
        "{loaded} of 100000 mutated blobs loaded"
    );
}

/// Every buffer of every blob is declared by its component (same name and element type, no
/// larger than declared), and the state bound (lre.jax keeps the blob in a buffer of this size)
/// holds every blob — n below and above the windows, every step of a run long enough to fill
/// them. Only configurations with a buffer as large as the batch are refused.
#[test]
fn saved_buffers_are_declared_and_within_the_bound() {
    let mut refused = Vec::new();
    for base in resume_specs() {
        let spec = spec_for::<f32>(&base);
        for n in [3usize, 7, 40, 400] {
            let mut opt = CpuOptimizer::<f32>::from_spec(&spec, n).unwrap();
            let bound = opt.state_bound();
            if let Err(e) = &bound {
                assert_eq!(e.status, Status::LRE_ERR_UNSUPPORTED, "{spec}: {e:?}");
                assert!(e.message.contains("batch size"), "{spec}: {e:?}");
                refused.push(base.clone());
            }
            let mut rng = Xorshift(n as u64 + 5);
            let mut x = vec![0.3f32; n];
            for t in 0..30 {
                let g: Vec<f32> = (0..n).map(|_| rng.uniform() as f32).collect();
                drive(&mut opt, &mut x, &g, t);
                let blob = opt.state();
                assert_eq!(
                    opt.state_size() as usize,
                    blob.len(),
                    "{spec}: the counted size"
                );
                let context = format!("{spec}, n={n}, step {t}");
                check_declared(&opt, &blob, &context);
                if let Ok(bound) = bound {
                    assert!(
                        blob.len() <= bound,
                        "{context}: {} > bound {bound}",
                        blob.len()
                    );
                }
            }
        }
    }
    refused.dedup();
    assert!(
        !refused.is_empty()
            && refused
                .iter()
                .all(|s| s.contains("natural_gradient") || s.contains("gauss_newton")),
        "refused: {refused:?}"
    );
}

/// Every buffer of `blob` against `opt`'s declaration.
fn check_declared(opt: &CpuOptimizer<f32>, blob: &[u8], context: &str) {
    use lre::state::layout::Extent;
    let n = opt.ndim();
    let dec = lre::state::Decoder::new(blob).unwrap();
    for (name, elem, shape) in dec.buffers() {
        let decl = opt
            .state_layout()
            .find(name)
            .unwrap_or_else(|| panic!("{context}: saved buffer {name} is not declared"));
        assert_eq!(
            elem,
            decl.elem(lre::elem::ElemType::F32),
            "{context}: {name}"
        );
        let elements: u128 = shape.iter().map(|&d| d as u128).product();
        match decl.extent {
            Extent::Vectors(count) | Extent::Within(count) | Extent::StoredVectors(_, count) => {
                assert!(
                    shape.len() == 2 && shape[1] == n && shape[0] as u128 <= count,
                    "{context}: {name} has shape {shape:?}, declared {count} vectors of {n}"
                )
            }
            Extent::Host(_, len) => assert!(
                elements <= len,
                "{context}: {name} has {elements} elements, declared {len}"
            ),
            Extent::BatchSized => {}
        }
    }
}

/// A configuration whose largest state cannot be addressed is refused when it is created, with
/// an error naming n; nothing wraps around.
#[test]
fn unaddressable_states_are_refused_at_creation() {
    for (spec, n) in [
        ("", 1usize << 62),
        ("", usize::MAX),
        ("basis=eigen(rank=1000000000000)", 1 << 40),
        ("basis=ggt(history_size=1000000000000)", 1 << 40),
    ] {
        let err = CpuOptimizer::<f32>::from_spec(spec, n).err().unwrap();
        assert_eq!(
            err.status,
            Status::LRE_ERR_INVALID_ARGUMENT,
            "{spec}: {err:?}"
        );
        assert!(err.message.contains(&format!("ndim = {n}")), "{err:?}");
    }
    // Small n and large windows are fine: the window is capped by what it holds, not n.
    let opt = CpuOptimizer::<f32>::from_spec("basis=ggt(history_size=1000000)", 10).unwrap();
    assert!(opt.state_bound().unwrap() > 40_000_000);
}

/// For the default GGT the bound is tight: within 2% of the full window's blob.
#[test]
fn state_bound_is_tight_for_ggt() {
    let n = 2000;
    let spec = "basis=ggt(history_size=20)";
    let mut opt = CpuOptimizer::<f32>::from_spec(spec, n).unwrap();
    let bound = opt.state_bound().unwrap();
    let mut rng = Xorshift(3);
    let mut x = vec![0f32; n];
    for _ in 0..25 {
        let g: Vec<f32> = (0..n).map(|_| rng.uniform() as f32).collect();
        opt.step(&mut x, &g).unwrap();
    }
    let full = opt.state().len();
    assert!(
        full <= bound && (bound as f64) < 1.06 * full as f64,
        "bound {bound}, full window {full}"
    );
}
