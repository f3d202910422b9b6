//! The spec string (docs/design.md "The spec string") ⇄ `Config`: canonical printing round trips,
//! every registry entry and hyperparameter, the seed's names, every error class with its status
//! and message, every registry entry against the builders, and a deterministic fuzz loop.

use lre::component::{ComponentSpec, Kind, ParamSpec, Value, format_value};
use lre::family::Family;
use lre::spec::{AUTO_ROWS_PER_THREAD, Device, MAX_THREADS, Threads, parse_component};
use lre::{Config, CpuOptimizer, Dtype, Error, Status};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The canonical form of the default configuration, every default filled in.
const CANONICAL_DEFAULT: &str = "curvature=covariance; basis=ggt(history_size=100, storage=params, combine=sum, truncate=none, eig_tol=1e-5, \
     damping=0, rdamping=0, abs=false); chain=[adam(beta1=0.9, beta2=0.999, eps=1e-8, amsgrad_beta=none), \
     cautious, clip_norm_by_ema(beta=0.99, max_growth=1.2, normalize=true, min_norm=0.01, init=0.1)]; \
     lr=0.01; weight_decay=0; update_freq=1; init_steps=0; symmetrize=true; seed=0; dtype=f32; device=cpu; \
     threads=1";

/// The default spec as docs/design.md writes it.
const DESIGN_DEFAULT: &str = "curvature=covariance; basis=ggt; chain=[adam(beta2=0.999), cautious, clip_norm_by_ema(normalize=true)]; lr=0.01";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn parse_ok(spec: &str) -> Config {
    match Config::parse(spec) {
        Ok(c) => c,
        Err(e) => panic!(
            "spec {spec:?} should parse, got {:?}: {}",
            e.status, e.message
        ),
    }
}

fn parse_err(spec: &str) -> Error {
    match Config::parse(spec) {
        Ok(c) => panic!("spec {spec:?} should be rejected, but parsed to {c}"),
        Err(e) => e,
    }
}

/// Parses `spec`, expects `LRE_ERR_SPEC`, and checks the message contains every needle.
fn spec_error(spec: &str, needles: &[&str]) -> Error {
    let e = parse_err(spec);
    assert_eq!(
        e.status,
        Status::LRE_ERR_SPEC,
        "spec {spec:?}: wrong status; message: {}",
        e.message
    );
    assert!(!e.message.is_empty(), "spec {spec:?}: empty message");
    for needle in needles {
        assert!(
            e.message.contains(needle),
            "spec {spec:?}: message {:?} does not contain {needle:?}",
            e.message
        );
    }
    e
}

fn create_err(spec: &str, n: usize) -> Error {
    match CpuOptimizer::<f32>::from_spec(spec, n) {
        Ok(opt) => panic!(
            "creating {spec:?} with n = {n} should fail, but created {}",
            opt.config()
        ),
        Err(e) => e,
    }
}

/// Asserts the canonical round trip: parse(print(c)) == c, and printing again gives the same text.
fn assert_round_trip(config: &Config, origin: &str) -> String {
    let text = config.to_string();
    let again = match Config::parse(&text) {
        Ok(c) => c,
        Err(e) => panic!(
            "canonical print of {origin:?} does not parse: {text:?}: {}",
            e.message
        ),
    };
    assert_eq!(
        &again, config,
        "round trip of {origin:?} through {text:?} changed the config"
    );
    let text2 = again.to_string();
    assert_eq!(text2, text, "printing {origin:?} twice gave different text");
    text
}

/// Parses `spec` and asserts its canonical round trip; returns the config and canonical text.
fn round_trip(spec: &str) -> (Config, String) {
    let config = parse_ok(spec);
    let text = assert_round_trip(&config, spec);
    (config, text)
}

struct FamilyCase {
    family: &'static Family,
    key: &'static str,
}

const FAMILIES: [FamilyCase; 3] = [
    FamilyCase {
        family: &lre::curvature::FAMILY,
        key: "curvature",
    },
    FamilyCase {
        family: &lre::basis::FAMILY,
        key: "basis",
    },
    FamilyCase {
        family: &lre::inner::FAMILY,
        key: "chain",
    },
];

/// A spec that places `component_text` (a component with optional arguments) in its family's slot.
fn place(key: &str, component_text: &str) -> String {
    if key == "chain" {
        format!("chain=[{component_text}]")
    } else {
        format!("{key}={component_text}")
    }
}

/// The parsed component at the slot of `key` (the single chain member for "chain").
fn slot<'c>(config: &'c Config, key: &str) -> &'c lre::component::Component {
    match key {
        "curvature" => &config.curvature,
        "basis" => &config.basis,
        "chain" => {
            assert_eq!(
                config.chain.len(),
                1,
                "expected a one-member chain, got {config}"
            );
            &config.chain[0]
        }
        other => panic!("no slot {other}"),
    }
}

/// A legal value for `p` that differs from its default.
fn non_default_value(p: &ParamSpec) -> Value {
    let differs = |v: Value| v != p.default && p.check(v).is_ok();
    let candidates: Vec<Value> = match p.kind {
        Kind::Float(r) => {
            let mut xs = Vec::new();
            if r.lo.is_finite() && r.hi.is_finite() {
                xs.push((r.lo + r.hi) / 2.0);
                xs.push(r.lo + (r.hi - r.lo) / 4.0);
            } else if r.lo.is_finite() {
                xs.push(r.lo + 1.0);
                xs.push(r.lo + 2.5);
            } else if r.hi.is_finite() {
                xs.push(r.hi - 1.0);
                xs.push(r.hi - 2.5);
            } else {
                xs.push(1.5);
                xs.push(-2.5);
            }
            xs.into_iter().map(Value::Num).collect()
        }
        Kind::Int(min) => vec![Value::Num((min + 3) as f64), Value::Num((min + 4) as f64)],
        Kind::Bool => match p.default {
            Value::Bool(b) => vec![Value::Bool(!b)],
            _ => vec![Value::Bool(true)],
        },
        Kind::Word(choices) => choices.iter().map(|c| Value::Word(c)).collect(),
    };
    candidates
        .into_iter()
        .find(|v| differs(*v))
        .unwrap_or_else(|| panic!("no legal non-default value for parameter {p:?}"))
}

/// Whether `spec`, an implemented chain member, needs Hessian samples or per-sample Jacobians
/// (the optimizer refuses it with a curvature that cannot give them).
fn needs_samples(key: &str, spec: &ComponentSpec) -> bool {
    key == "chain" && {
        let member =
            lre::inner::build(&parse_component(spec.name, &lre::inner::FAMILY).unwrap()).unwrap();
        member.needs_hessian() || member.needs_jacobian()
    }
}

fn all_entries() -> Vec<(&'static str, &'static ComponentSpec)> {
    let mut out = Vec::new();
    for case in &FAMILIES {
        for spec in case.family.components() {
            out.push((case.key, spec));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// 1. Canonical round trip
// ---------------------------------------------------------------------------------------------

#[test]
fn default_and_hand_written_specs_round_trip() {
    let specs = [
        "",
        DESIGN_DEFAULT,
        CANONICAL_DEFAULT,
        lre::DEFAULT_SPEC,
        "lr=0.5",
        "lr=0",
        "lr=1e-12",
        "lr=123456789.25",
        "lr=3e300",
        "lr=5e-324",
        "lr=0.1; update_freq=3; init_steps=7; symmetrize=false; seed=42; dtype=f64; device=cuda:3; threads=4",
        "weight_decay=0.01",
        "weight_decay=1e-300; lr=0",
        "weight-decay=2.5",
        "seed=18446744073709551615; init_steps=18446744073709551615; update_freq=18446744073709551615",
        "threads=256",
        "threads=auto",
        "threads=AUTO",
        "device=cuda",
        "device=cuda:0",
        "dtype=float64",
        "chain=[]",
        "chain=adam",
        "chain=[ema(beta=0.5), l_inv_sqrt, l_inv, cautious]",
        "chain=[normalize_by_ema, clip_norm_by_ema(max_growth=none, init=0)]",
        "chain=[adam(beta1=0, beta2=0.999, eps=1e-6, amsgrad_beta=0.5)]",
        "basis=identity; chain=[adam]",
        "basis=full_matrix(beta=none, truncate=4, eig_tol=none, damping=1e-3, rdamping=0.5, abs=true)",
        "basis=ggt(history_size=3, truncate=2, eig_tol=none, damping=1.5, rdamping=1e-9, abs=true)",
        "basis=hebbian_learning(opt=stiefel_gd, value_clip=2, reortho_freq=5)",
        "curvature=bfgs(z=gaussian, orthogonalize=false, c=0, tol=0)",
        "curvature=sr1(inverse=true); basis=eigen(rank=5, beta=0); chain=[full_matrix_bfgs_adam(beta2=none)]",
        "basis=ggt(history_size=1e3)",
        "basis=ggt(history_size=7.0)",
        ";;lr=0.2;;",
    ];
    for spec in specs {
        round_trip(spec);
    }
    // The default configuration itself.
    assert_round_trip(&Config::default(), "Config::default()");
}

#[test]
fn threads_auto_prints_as_auto_and_follows_its_rule() {
    let (config, text) = round_trip("threads=Auto");
    assert_eq!(config.threads, Threads::Auto);
    assert!(text.ends_with("threads=auto"), "{text:?}");
    // The rule: one thread per AUTO_ROWS_PER_THREAD parameters, at most the cores available to
    // this process (its affinity), at least one.
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    for n in [
        1,
        AUTO_ROWS_PER_THREAD - 1,
        3 * AUTO_ROWS_PER_THREAD,
        1 << 40,
    ] {
        let expected = (n / AUTO_ROWS_PER_THREAD).clamp(1, cores.min(MAX_THREADS));
        assert_eq!(Threads::Auto.count(n), expected, "n = {n}, {cores} cores");
    }
    assert_eq!(Threads::Auto.count(1), 1);
    assert_eq!(Threads::Count(3).count(1), 3);
    // The optimizer reports the count it uses, and its spec still says auto.
    let n = 2 * AUTO_ROWS_PER_THREAD;
    let opt = CpuOptimizer::<f32>::from_spec("threads=auto", n).unwrap();
    assert_eq!(opt.threads(), Threads::Auto.count(n));
    assert_eq!(opt.config().threads, Threads::Auto);
}

#[test]
fn non_default_top_level_values_print_as_given() {
    let (config, text) = round_trip(
        "lr=0.25; weight_decay=0.125; update_freq=3; init_steps=7; symmetrize=false; seed=42; dtype=f64; device=cuda:3; threads=4",
    );
    assert_eq!(config.lr, 0.25);
    assert_eq!(config.weight_decay, 0.125);
    assert_eq!(config.update_freq, 3);
    assert_eq!(config.init_steps, 7);
    assert!(!config.symmetrize);
    assert_eq!(config.seed, 42);
    assert_eq!(config.dtype, Dtype::F64);
    assert_eq!(config.device, Device::Cuda(3));
    assert_eq!(config.threads, Threads::Count(4));
    for piece in [
        "lr=0.25",
        "weight_decay=0.125",
        "update_freq=3",
        "init_steps=7",
        "symmetrize=false",
        "seed=42",
        "dtype=f64",
        "device=cuda:3",
        "threads=4",
    ] {
        assert!(text.contains(piece), "{text:?} does not contain {piece:?}");
    }
    // Keys not given keep their defaults, including the default chain.
    let config = parse_ok("seed=5");
    assert_eq!(config.chain, Config::default().chain);
    assert_eq!(config.basis, Config::default().basis);
    assert_eq!(config.lr, 0.01);
    assert_eq!(config.weight_decay, 0.0);
}

/// The reference's recommended configuration stays available under `REFERENCE_SPEC`, the
/// short spec the README documents for it: the default with Adam's β2 = 0.99.
#[test]
fn the_reference_configuration_differs_from_the_default_only_in_beta2() {
    let reference = parse_ok(lre::REFERENCE_SPEC);
    assert_eq!(
        reference,
        parse_ok("chain=[adam, cautious, normalize_by_ema]")
    );
    let mut default = Config::default();
    assert_ne!(reference, default);
    assert_eq!(default.chain[0].f64("beta2"), 0.999);
    assert_eq!(reference.chain[0].f64("beta2"), 0.99);
    default.chain[0] = reference.chain[0].clone();
    assert_eq!(reference, default);
}

#[test]
fn diagonal_and_warmup_print_only_when_set() {
    use lre::spec::Diagonal;
    let default = Config::default();
    assert_eq!(default.diagonal, Diagonal::None);
    assert_eq!(default.warmup, 0);
    assert!(!default.to_string().contains("diagonal"));
    assert!(!default.to_string().contains("warmup"));
    for (text, diagonal) in [
        ("diagonal=complement", Diagonal::Complement),
        ("diagonal=Graft", Diagonal::Graft),
        ("diagonal=none", Diagonal::None),
    ] {
        let (config, printed) = round_trip(&format!("{text}; warmup=25"));
        assert_eq!(config.diagonal, diagonal, "{text}");
        assert_eq!(config.warmup, 25);
        assert!(printed.contains("; warmup=25"), "{printed}");
        assert_eq!(
            printed.contains("diagonal="),
            diagonal != Diagonal::None,
            "{printed}"
        );
    }
    spec_error(
        "diagonal=full",
        &["\"full\"", "diagonal", "none, complement or graft"],
    );
    spec_error("warmup=-1", &["\"-1\"", "warmup", ">= 0"]);
    spec_error("warmup=2.5", &["\"2.5\"", "warmup", "integer"]);
    spec_error("warmup=1; warmup=2", &["warmup", "twice"]);
}

/// ggt's `combine` (docs/algorithm.md §3.2): `sum` by default (the reference's window), `mean`
/// and `ritz` on request, printed in the canonical form; `ritz` needs paired Hessian corrections.
#[test]
fn ggt_combine_defaults_to_sum_and_accepts_mean_and_ritz() {
    let default = Config::default();
    assert_eq!(default.basis.word("combine"), "sum");
    for word in ["mean", "ritz"] {
        let (config, printed) = round_trip(&format!(
            "basis=ggt(history_size=7, combine={word}); chain=[l_inv]"
        ));
        assert_eq!(config.basis.word("combine"), word);
        assert!(
            printed.contains(&format!(
                "ggt(history_size=7, storage=params, combine={word},"
            )),
            "{printed}"
        );
        let mut expected = parse_ok("basis=ggt(history_size=7); chain=[l_inv]");
        expected.basis.set("combine", Value::Word(word)).unwrap();
        assert_eq!(config, expected);
    }
    let hessian =
        "curvature=full_hutchinson_hessian; basis=ggt(combine=ritz); chain=[l_inv]; dtype=f64";
    CpuOptimizer::<f64>::from_spec(&format!("{hessian}; symmetrize=false"), 8).unwrap();
    CpuOptimizer::<f64>::from_spec(&hessian.replace("ritz", "mean"), 8).unwrap();
    // Symmetrized corrections have no probe to project onto: refused at creation.
    let Err(refused) = CpuOptimizer::<f64>::from_spec(hessian, 8) else {
        panic!("combine=ritz with symmetrized corrections was accepted");
    };
    assert_eq!(refused.status, Status::LRE_ERR_SPEC);
    assert!(
        refused.message.contains("combine=ritz"),
        "{}",
        refused.message
    );
    assert!(
        refused.message.contains("symmetrize=false"),
        "{}",
        refused.message
    );
    let Err(covariance) = CpuOptimizer::<f64>::from_spec("basis=ggt(combine=ritz); dtype=f64", 8)
    else {
        panic!("combine=ritz over the covariance curvature was accepted");
    };
    assert_eq!(covariance.status, Status::LRE_ERR_SPEC);
    spec_error(
        "basis=ggt(combine=median)",
        &["\"median\"", "combine", "one of sum, mean, ritz"],
    );
    spec_error(
        "basis=ggt(combine=1)",
        &["combine", "one of sum, mean, ritz"],
    );
    spec_error(
        "basis=ggt(combine=mean, combine=sum)",
        &["combine", "twice"],
    );
}

#[test]
fn every_registry_entry_round_trips_with_defaults() {
    let mut count = 0;
    for case in &FAMILIES {
        assert!(
            case.family.components().next().is_some(),
            "{} family is empty",
            case.key
        );
        for spec in case.family.components() {
            for text in [spec.name.to_string(), format!("{}()", spec.name)] {
                let placed = place(case.key, &text);
                let (config, printed) = round_trip(&placed);
                let c = slot(&config, case.key);
                assert!(
                    std::ptr::eq(c.spec, spec),
                    "{placed:?} parsed to {}",
                    c.name()
                );
                assert_eq!(c.values.len(), spec.params.len());
                for (p, v) in spec.params.iter().zip(&c.values) {
                    assert_eq!(
                        *v, p.default,
                        "{placed:?}: {} should be its default",
                        p.name
                    );
                }
                // The canonical text names every parameter with its default.
                let canonical_component = c.to_string();
                assert!(
                    printed.contains(&canonical_component),
                    "{printed:?} lacks {canonical_component:?}"
                );
                if spec.params.is_empty() {
                    assert_eq!(canonical_component, spec.name);
                } else {
                    for p in spec.params {
                        let piece = format!("{}={}", p.name, format_value(p.default));
                        assert!(
                            canonical_component.contains(&piece),
                            "{canonical_component:?} lacks {piece:?}"
                        );
                    }
                }
                count += 1;
            }
        }
    }
    assert!(
        count >= 2 * (8 + 7 + 17),
        "only {count} registry entries checked"
    );
}

#[test]
fn every_parameter_round_trips_with_a_non_default_value() {
    let mut checked = 0;
    for case in &FAMILIES {
        for spec in case.family.components() {
            for (i, p) in spec.params.iter().enumerate() {
                let mut values = vec![non_default_value(p)];
                // Nullable parameters with a numeric default can also be switched off.
                if p.nullable && p.default != Value::None {
                    values.push(Value::None);
                }
                for value in values {
                    let formatted = format_value(value);
                    let placed = place(case.key, &format!("{}({}={formatted})", spec.name, p.name));
                    let (config, printed) = round_trip(&placed);
                    let c = slot(&config, case.key);
                    assert!(
                        std::ptr::eq(c.spec, spec),
                        "{placed:?} parsed to {}",
                        c.name()
                    );
                    assert_eq!(c.values[i], value, "{placed:?}: {} was not set", p.name);
                    for (j, (q, v)) in spec.params.iter().zip(&c.values).enumerate() {
                        if j != i {
                            assert_eq!(*v, q.default, "{placed:?}: {} changed too", q.name);
                        }
                    }
                    let piece = format!("{}={formatted}", p.name);
                    assert!(
                        printed.contains(&piece),
                        "{placed:?} printed {printed:?}, which lacks {piece:?}"
                    );
                    assert_ne!(value, p.default);
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} parameters checked");
}

#[test]
fn all_parameters_of_a_component_set_at_once_round_trip() {
    for case in &FAMILIES {
        for spec in case.family.components() {
            if spec.params.is_empty() {
                continue;
            }
            let args: Vec<String> = spec
                .params
                .iter()
                .map(|p| format!("{}={}", p.name, format_value(non_default_value(p))))
                .collect();
            let placed = place(case.key, &format!("{}({})", spec.name, args.join(", ")));
            let (config, printed) = round_trip(&placed);
            let c = slot(&config, case.key);
            for (p, v) in spec.params.iter().zip(&c.values) {
                assert_eq!(*v, non_default_value(p), "{placed:?}: {}", p.name);
            }
            // All arguments given in registry order: the canonical component is what we wrote.
            let expected = format!("{}({})", spec.name, args.join(", "));
            assert!(
                printed.contains(&expected),
                "{printed:?} lacks {expected:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. The default configuration
// ---------------------------------------------------------------------------------------------

#[test]
fn default_canonical_form_is_exact() {
    assert_eq!(Config::default().to_string(), CANONICAL_DEFAULT);
    assert_eq!(parse_ok("").to_string(), CANONICAL_DEFAULT);
    assert_eq!(parse_ok("   ").to_string(), CANONICAL_DEFAULT);
    assert_eq!(parse_ok(DESIGN_DEFAULT).to_string(), CANONICAL_DEFAULT);
    assert_eq!(parse_ok(lre::DEFAULT_SPEC).to_string(), CANONICAL_DEFAULT);
    assert_eq!(parse_ok(CANONICAL_DEFAULT).to_string(), CANONICAL_DEFAULT);
    assert_eq!(parse_ok(""), Config::default());
    assert_eq!(parse_ok(DESIGN_DEFAULT), parse_ok(""));
    assert_eq!(
        lre::DEFAULT_SPEC,
        DESIGN_DEFAULT,
        "the library's DEFAULT_SPEC drifted from docs/design.md"
    );
    // The optimizer reports the same configuration.
    let opt = CpuOptimizer::<f32>::from_spec("", 8).expect("default optimizer");
    assert_eq!(opt.config().to_string(), CANONICAL_DEFAULT);
}

// ---------------------------------------------------------------------------------------------
// 3. The seed's names
// ---------------------------------------------------------------------------------------------

#[test]
fn every_seed_name_is_recognised() {
    let curvatures = [
        "covariance",
        "full_hutchinson_hessian",
        "bfgs",
        "sr1",
        "empirical_fisher",
        "gauss_newton",
        "unrolled_gauss_newton",
        "covariance_times_loss",
    ];
    let bases = [
        "ggt",
        "eigen",
        "randomized_eigen",
        "nystrom",
        "hebbian_learning",
        "full_matrix",
        "random",
        "identity",
    ];
    let inners = [
        "adam",
        "full_matrix_adam",
        "hutchinson_adam",
        "full_matrix_hutchinson_adam",
        "full_matrix_bfgs_adam",
        "cubic_adam",
        "lion",
        "ema",
        "cautious",
        "clip_norm",
        "clip_value",
        "clip_norm_by_ema",
        "copy_grad_sign",
        "l_inv_sqrt",
        "l_inv",
    ];
    for (key, names) in [
        ("curvature", &curvatures[..]),
        ("basis", &bases[..]),
        ("chain", &inners[..]),
    ] {
        for name in names {
            let config = parse_ok(&place(key, name));
            assert_eq!(slot(&config, key).name(), *name, "{key}={name}");
        }
    }
    // The alias: normalize_by_ema is clip_norm_by_ema with normalize=true.
    let config = parse_ok("chain=[normalize_by_ema]");
    let c = &config.chain[0];
    assert_eq!(c.name(), "clip_norm_by_ema");
    assert!(c.bool("normalize"));
    let plain = parse_ok("chain=[clip_norm_by_ema]");
    assert!(
        !plain.chain[0].bool("normalize"),
        "clip_norm_by_ema defaults to normalize=false"
    );
    assert_eq!(config, parse_ok("chain=[clip_norm_by_ema(normalize=true)]"));
    assert_eq!(
        parse_ok("chain=[NormalizeByEMA(beta=0.5)]"),
        parse_ok("chain=[clip_norm_by_ema(normalize=true, beta=0.5)]")
    );
}

#[test]
fn seed_class_spellings_and_dashes_are_recognised() {
    let cases = [
        ("chain", "ClipNormByEMA", "clip_norm_by_ema"),
        ("chain", "clip-norm-by-ema", "clip_norm_by_ema"),
        ("chain", "CLIP_NORM_BY_EMA", "clip_norm_by_ema"),
        ("chain", "LInvSqrt", "l_inv_sqrt"),
        ("chain", "LInv", "l_inv"),
        ("chain", "Adam", "adam"),
        ("chain", "FullMatrixBFGSAdam", "full_matrix_bfgs_adam"),
        ("basis", "GGT", "ggt"),
        ("basis", "RandomizedEigen", "randomized_eigen"),
        ("basis", "HebbianLearning", "hebbian_learning"),
        ("basis", "full-matrix", "full_matrix"),
        (
            "curvature",
            "FullHutchinsonHessian",
            "full_hutchinson_hessian",
        ),
        ("curvature", "SR1", "sr1"),
        ("curvature", "BFGS", "bfgs"),
        ("curvature", "UnrolledGaussNewton", "unrolled_gauss_newton"),
    ];
    for (key, written, canonical) in cases {
        let config = parse_ok(&place(key, written));
        assert_eq!(slot(&config, key).name(), canonical, "{key}={written}");
        assert_eq!(
            config,
            parse_ok(&place(key, canonical)),
            "{written} ≠ {canonical}"
        );
        // The canonical print uses the snake_case name.
        let printed = config.to_string();
        assert!(
            printed.contains(canonical),
            "{printed:?} lacks {canonical:?}"
        );
    }
    // Hyperparameter names follow the same rule.
    assert_eq!(
        parse_ok("basis=GGT(HistorySize=5, Eig-Tol=0.5)"),
        parse_ok("basis=ggt(history_size=5, eig_tol=0.5)")
    );
    assert_eq!(
        parse_ok("UpdateFreq=2; init-steps=3"),
        parse_ok("update_freq=2; init_steps=3")
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Every registry entry against the builders
// ---------------------------------------------------------------------------------------------

#[test]
fn every_registry_entry_builds_an_optimizer() {
    let mut built = 0;
    for (key, spec) in all_entries() {
        let placed = place(key, spec.name);
        match CpuOptimizer::<f32>::from_spec(&placed, 8) {
            Ok(opt) => assert_eq!(slot(opt.config(), key).name(), spec.name),
            Err(e) if needs_samples(key, spec) => {
                // The default curvature (covariance) has no Hessian samples or Jacobians.
                assert_eq!(e.status, Status::LRE_ERR_SPEC, "{placed:?}: {}", e.message);
                assert!(
                    e.message.contains(spec.name),
                    "{placed:?}: message {:?} lacks the name",
                    e.message
                );
            }
            Err(e) => panic!(
                "{placed:?}: creation failed with {:?}: {}",
                e.status, e.message
            ),
        }
        built += 1;
    }
    // Every entry was tried (the loop did not skip any).
    let total: usize = [
        &lre::curvature::FAMILY,
        &lre::basis::FAMILY,
        &lre::inner::FAMILY,
    ]
    .iter()
    .map(|f| f.components().count())
    .sum();
    assert_eq!(built, total);
    assert!(built >= 38, "only {built} entries");
}

#[test]
fn implemented_entries_also_work_with_f64_and_non_default_values() {
    // Chain members that need Hessian samples or Jacobians are refused with the default
    // curvature (see every_registry_entry_builds_an_optimizer).
    for (key, spec) in all_entries()
        .into_iter()
        .filter(|(key, s)| !needs_samples(key, s))
    {
        let args: Vec<String> = spec
            .params
            .iter()
            .map(|p| format!("{}={}", p.name, format_value(non_default_value(p))))
            .collect();
        let text = if args.is_empty() {
            spec.name.to_string()
        } else {
            format!("{}({})", spec.name, args.join(", "))
        };
        let placed = format!("{}; dtype=f64", place(key, &text));
        let opt = CpuOptimizer::<f64>::from_spec(&placed, 8)
            .unwrap_or_else(|e| panic!("{placed:?}: {:?}: {}", e.status, e.message));
        assert_eq!(opt.config(), &parse_ok(&placed));
        assert_eq!(opt.ndim(), 8);
    }
}

#[test]
fn eigenvalue_members_need_a_basis_with_eigenvalues() {
    for member in ["l_inv", "l_inv_sqrt"] {
        for basis in ["ggt", "full_matrix"] {
            let spec = format!("basis={basis}; chain=[adam, {member}]");
            CpuOptimizer::<f32>::from_spec(&spec, 8)
                .unwrap_or_else(|e| panic!("{spec:?}: {:?}: {}", e.status, e.message));
        }
        let spec = format!("basis=identity; chain=[{member}]");
        let e = create_err(&spec, 8);
        assert_eq!(e.status, Status::LRE_ERR_SPEC, "{spec:?}: {}", e.message);
        assert!(
            e.message.contains(member) && e.message.contains("eigenvalues"),
            "{spec:?}: {}",
            e.message
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Error classes and messages
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_top_level_key() {
    spec_error("foo=1", &["\"foo\"", "update_freq", "curvature", "threads"]);
    spec_error("lr=0.1; learning_rate=0.1", &["\"learning_rate\"", "lr"]);
}

#[test]
fn unknown_component_names_list_the_valid_ones() {
    spec_error("curvature=hessian", &["\"hessian\"", "covariance", "bfgs"]);
    spec_error("basis=pca", &["\"pca\"", "ggt", "full_matrix", "identity"]);
    spec_error(
        "chain=[rmsprop]",
        &[
            "\"rmsprop\"",
            "adam",
            "clip_norm_by_ema",
            "normalize_by_ema",
        ],
    );
    spec_error("chain=rmsprop", &["\"rmsprop\"", "adam"]);
    spec_error("chain=[adam, sgdm, cautious]", &["\"sgdm\"", "adam"]);
    // A name of another family is unknown here.
    spec_error("basis=adam", &["\"adam\"", "ggt"]);
    spec_error("chain=[ggt]", &["\"ggt\"", "adam"]);
}

#[test]
fn unknown_component_argument_lists_the_valid_keys() {
    spec_error(
        "chain=[adam(beta3=0.5)]",
        &["\"beta3\"", "beta1", "beta2", "eps", "amsgrad_beta"],
    );
    spec_error(
        "basis=ggt(rank=3)",
        &["\"rank\"", "history_size", "eig_tol"],
    );
    spec_error("curvature=bfgs(q=1)", &["\"q\"", "orthogonalize"]);
}

#[test]
fn argument_for_a_component_that_takes_none() {
    spec_error(
        "chain=[cautious(x=1)]",
        &["\"x\"", "cautious", "no arguments"],
    );
    spec_error(
        "curvature=covariance(beta=0.5)",
        &["\"beta\"", "covariance"],
    );
    spec_error("basis=identity(rank=2)", &["\"rank\"", "identity"]);
}

#[test]
fn values_out_of_range() {
    spec_error("chain=[adam(beta1=1.5)]", &["\"1.5\"", "beta1", "[0, 1)"]);
    spec_error("chain=[adam(beta1=1)]", &["\"1\"", "beta1"]);
    spec_error("chain=[adam(beta2=-0.1)]", &["\"-0.1\"", "beta2"]);
    spec_error("chain=[adam(eps=0)]", &["\"0\"", "eps", "> 0"]);
    spec_error(
        "basis=ggt(history_size=0)",
        &["\"0\"", "history_size", ">= 1"],
    );
    spec_error(
        "basis=ggt(history_size=2.5)",
        &["\"2.5\"", "history_size", "integer"],
    );
    spec_error("basis=ggt(damping=-1)", &["\"-1\"", "damping"]);
    spec_error(
        "chain=[clip_norm_by_ema(max_growth=0.5)]",
        &["\"0.5\"", "max_growth"],
    );
    spec_error("lr=-1", &["\"-1\"", "lr", ">= 0"]);
    spec_error("weight_decay=-0.01", &["\"-0.01\"", "weight_decay", ">= 0"]);
    spec_error("weight_decay=nan", &["\"nan\"", "weight_decay", "finite"]);
    spec_error("weight_decay=inf", &["\"inf\"", "weight_decay", "finite"]);
    spec_error("threads=0", &["\"0\"", "threads", "auto", "256"]);
    spec_error("threads=automatic", &["\"automatic\"", "threads", "auto"]);
    spec_error("threads=257", &["\"257\"", "threads", "256"]);
    spec_error("update_freq=0", &["\"0\"", "update_freq", ">= 1"]);
    spec_error("update_freq=1.5", &["\"1.5\"", "update_freq", "integer"]);
    spec_error("seed=-3", &["\"-3\"", "seed"]);
    spec_error(
        "init_steps=18446744073709551616",
        &["\"18446744073709551616\"", "init_steps"],
    );
}

#[test]
fn values_of_the_wrong_type() {
    spec_error(
        "symmetrize=maybe",
        &["\"maybe\"", "symmetrize", "true or false"],
    );
    spec_error("symmetrize=1", &["\"1\"", "symmetrize", "true or false"]);
    spec_error("basis=ggt(abs=3)", &["\"3\"", "abs", "true or false"]);
    spec_error("chain=[adam(beta1=abc)]", &["\"abc\"", "beta1"]);
    spec_error("chain=[adam(beta1=true)]", &["\"true\"", "beta1"]);
    spec_error("chain=[adam(beta1=none)]", &["\"none\"", "beta1"]);
    spec_error(
        "curvature=bfgs(z=uniform)",
        &["\"uniform\"", "rademacher", "gaussian"],
    );
    spec_error("curvature=bfgs(z=1)", &["\"1\"", "rademacher"]);
    spec_error(
        "basis=hebbian_learning(opt=sgd)",
        &["\"sgd\"", "adamg", "stiefel_gd"],
    );
    spec_error("lr=fast", &["\"fast\"", "lr"]);
    spec_error("seed=abc", &["\"abc\"", "seed"]);
    spec_error("chain=[adam(beta1=[0.5])]", &["\"[\"", "value"]);
}

#[test]
fn non_finite_numbers() {
    for bad in ["nan", "NaN", "inf", "-inf", "infinity", "1e400"] {
        spec_error(
            &format!("lr={bad}"),
            &[&format!("\"{bad}\""), "lr", "finite"],
        );
        spec_error(
            &format!("chain=[adam(eps={bad})]"),
            &[&format!("\"{bad}\""), "eps"],
        );
        spec_error(
            &format!("basis=ggt(damping={bad})"),
            &[&format!("\"{bad}\""), "damping"],
        );
    }
    spec_error("basis=ggt(history_size=inf)", &["\"inf\"", "history_size"]);
    spec_error("basis=ggt(history_size=nan)", &["\"nan\"", "history_size"]);
}

#[test]
fn duplicate_keys_and_arguments() {
    spec_error("lr=0.1; lr=0.2", &["\"lr\"", "twice"]);
    spec_error("lr=0.1; LR=0.2", &["lr", "twice"]);
    spec_error("chain=[adam]; chain=[ema]", &["\"chain\"", "twice"]);
    spec_error(
        "chain=[adam(beta1=0.5, beta1=0.6)]",
        &["\"beta1\"", "twice"],
    );
    spec_error("chain=[adam(beta1=0.5, Beta-1=0.6)]", &["Beta-1", "twice"]);
    spec_error("basis=ggt(abs=true, abs=true)", &["\"abs\"", "twice"]);
    // The same member twice in a chain is fine (it is a chain, not a set).
    assert_eq!(parse_ok("chain=[cautious, cautious]").chain.len(), 2);
}

#[test]
fn missing_equals_sign() {
    spec_error("basis ggt", &["\"ggt\"", "'='"]);
    spec_error("lr", &["'='"]);
    spec_error("lr 0.1", &["\"0.1\"", "'='"]);
    spec_error("chain=[adam(beta1 0.5)]", &["\"0.5\"", "'='"]);
    spec_error("lr=", &["number"]);
    spec_error("=0.1", &["\"=\"", "key"]);
}

#[test]
fn missing_separators_and_stray_tokens() {
    spec_error("lr=0.1 seed=3", &["\"seed\"", "';'"]);
    spec_error("chain=[adam cautious]", &["\"cautious\""]);
    spec_error("chain=[adam,]", &["\"]\""]);
    spec_error("basis=ggt(abs=true,)", &["\")\""]);
    spec_error("basis=ggt)", &["\")\""]);
    spec_error("chain=adam]", &["\"]\""]);
    spec_error("lr=0.1)", &["\")\""]);
}

#[test]
fn unbalanced_brackets_and_parentheses_are_spec_errors() {
    for spec in [
        "chain=[adam",
        "chain=[adam, cautious",
        "chain=[",
        "basis=ggt(history_size=3",
        "basis=ggt(",
        "basis=ggt(history_size=3; lr=0.1",
        "chain=[adam(beta1=0.5]",
        "chain=[adam(beta1=0.5)",
    ] {
        let e = spec_error(spec, &[]);
        // The message quotes the spec (or the token where it went wrong).
        assert!(e.message.contains('"'), "{spec:?}: {}", e.message);
    }
}

// An unclosed list or argument list names the closing bracket, which is what the user forgot.
#[test]
fn unbalanced_brackets_say_what_closes_them() {
    spec_error("chain=[adam", &["']'"]);
    spec_error("basis=ggt(history_size=3", &["')'"]);
}

#[test]
fn bad_dtype_and_device() {
    spec_error("dtype=f16", &["\"f16\"", "f32", "f64"]);
    spec_error("dtype=bf16", &["\"bf16\"", "f32"]);
    spec_error("device=tpu", &["\"tpu\"", "cpu", "cuda"]);
    spec_error("device=cuda:x", &["\"cuda:x\"", "cuda:N"]);
    spec_error("device=cuda:-1", &["\"cuda:-1\""]);
    spec_error("device=gpu", &["\"gpu\""]);
}

/// Creating a device=cuda:N optimizer is tested in tests/device.rs.
#[test]
fn cuda_device_parses() {
    let config = parse_ok("device=cuda:0");
    assert_eq!(config.device, Device::Cuda(0));
    assert_eq!(parse_ok("device=CUDA:2").device, Device::Cuda(2));
}

#[test]
fn dtype_mismatch_and_bad_sizes() {
    let e = create_err("dtype=f64", 4);
    assert_eq!(e.status, Status::LRE_ERR_INVALID_ARGUMENT, "{}", e.message);
    assert!(
        e.message.contains("f64") && e.message.contains("f32"),
        "{}",
        e.message
    );
    match CpuOptimizer::<f64>::from_spec("", 4) {
        Ok(_) => panic!("an f64 optimizer with the default dtype=f32 should be refused"),
        Err(e) => assert_eq!(e.status, Status::LRE_ERR_INVALID_ARGUMENT, "{}", e.message),
    }
    CpuOptimizer::<f64>::from_spec("dtype=f64", 4).expect("f64 optimizer with dtype=f64");

    let e = create_err("", 0);
    assert_eq!(e.status, Status::LRE_ERR_INVALID_ARGUMENT, "{}", e.message);
    assert!(e.message.contains('0'), "{}", e.message);

    for n in [1025, 2000] {
        let e = create_err("basis=full_matrix", n);
        assert_eq!(
            e.status,
            Status::LRE_ERR_UNSUPPORTED,
            "n = {n}: {}",
            e.message
        );
        assert!(e.message.contains("1024"), "{}", e.message);
        assert!(e.message.contains(&n.to_string()), "{}", e.message);
    }
    CpuOptimizer::<f32>::from_spec("basis=full_matrix", 1024).expect("full_matrix at n = 1024");
    // A spec error wins over creation errors and keeps its status.
    assert_eq!(create_err("basis=nope", 8).status, Status::LRE_ERR_SPEC);
}

#[test]
fn control_characters_are_rejected() {
    for spec in ["lr=0.1\u{0}", "l\u{7}r=0.1", "basis=ggt\u{1b}"] {
        let e = parse_err(spec);
        assert_eq!(e.status, Status::LRE_ERR_SPEC, "{spec:?}: {}", e.message);
    }
    // Whitespace control characters are whitespace.
    assert_eq!(parse_ok("lr=0.5;\tseed=1\r\n"), parse_ok("lr=0.5; seed=1"));
}

// ---------------------------------------------------------------------------------------------
// 6. Whitespace, case, separators, chain forms
// ---------------------------------------------------------------------------------------------

#[test]
fn whitespace_and_case_are_ignored() {
    assert_eq!(
        parse_ok(" Basis = GGT ( History_Size = 50 ) ; LR = 0.1 "),
        parse_ok("basis=ggt(history_size=50); lr=0.1")
    );
    assert_eq!(
        parse_ok("basis=ggt(history_size=50); lr=0.1")
            .basis
            .usize("history_size"),
        50
    );
    assert_eq!(
        parse_ok("SYMMETRIZE=FALSE; DType=F64; Device=CPU"),
        parse_ok("symmetrize=false; dtype=f64; device=cpu")
    );
    assert_eq!(
        parse_ok("basis=ggt(truncate=NONE, abs=True)"),
        parse_ok("basis=ggt(truncate=none, abs=true)")
    );
    assert_eq!(
        parse_ok("curvature=bfgs(z=Gaussian)"),
        parse_ok("curvature=bfgs(z=gaussian)")
    );
    assert_eq!(
        parse_ok("\n\tchain = [ adam , cautious ]\n"),
        parse_ok("chain=[adam,cautious]")
    );
}

#[test]
fn separators_and_chain_forms() {
    assert_eq!(parse_ok("lr=0.1;"), parse_ok("lr=0.1"));
    assert_eq!(parse_ok("lr=0.1; seed=2;"), parse_ok("lr=0.1; seed=2"));
    assert_eq!(parse_ok(";"), Config::default());
    let empty = parse_ok("chain=[]");
    assert!(empty.chain.is_empty());
    assert!(empty.to_string().contains("chain=[];"), "{empty}");
    let one = parse_ok("chain=adam");
    assert_eq!(one.chain.len(), 1);
    assert_eq!(one.chain[0].name(), "adam");
    assert_eq!(one, parse_ok("chain=[adam]"));
    assert_eq!(
        parse_ok("chain=adam(beta1=0.5)"),
        parse_ok("chain=[adam(beta1=0.5)]")
    );
    let three = parse_ok("chain=[ema, adam, l_inv]");
    let names: Vec<&str> = three.chain.iter().map(|c| c.name()).collect();
    assert_eq!(names, ["ema", "adam", "l_inv"], "chain order is kept");
    // Key order does not matter.
    assert_eq!(
        parse_ok("seed=3; lr=0.2; basis=identity"),
        parse_ok("basis=identity; lr=0.2; seed=3")
    );
}

#[test]
fn an_empty_chain_creates_an_optimizer() {
    let opt = CpuOptimizer::<f32>::from_spec("chain=[]", 8).expect("empty chain");
    assert!(opt.config().chain.is_empty());
}

// ---------------------------------------------------------------------------------------------
// 7. parse_component
// ---------------------------------------------------------------------------------------------

#[test]
fn parse_component_works_and_rejects_trailing_text() {
    let c = parse_component("adam(beta2=0.999)", &lre::inner::FAMILY).expect("adam parses");
    assert_eq!(c.name(), "adam");
    assert_eq!(c.f64("beta2"), 0.999);
    assert_eq!(c.f64("beta1"), 0.9);
    assert_eq!(
        c.to_string(),
        "adam(beta1=0.9, beta2=0.999, eps=1e-8, amsgrad_beta=none)"
    );
    assert_eq!(
        parse_component(" Adam ( Beta2 = 0.999 ) ", &lre::inner::FAMILY).unwrap(),
        c
    );
    let plain = parse_component("cautious", &lre::inner::FAMILY).unwrap();
    assert_eq!(plain.to_string(), "cautious");
    let alias = parse_component("normalize_by_ema", &lre::inner::FAMILY).unwrap();
    assert_eq!(alias.name(), "clip_norm_by_ema");
    assert!(alias.bool("normalize"));
    let basis = parse_component("GGT(history_size=4)", &lre::basis::FAMILY).unwrap();
    assert_eq!(basis.usize("history_size"), 4);

    for (text, needle) in [
        ("adam(beta2=0.999) x", "\"x\""),
        ("adam(beta2=0.999);", "\";\""),
        ("adam(beta2=0.999))", "\")\""),
        ("adam, cautious", "\",\""),
        ("adam adam", "\"adam\""),
        ("adam(beta2=0.999)(beta1=0.5)", "\"(\""),
    ] {
        let e = parse_component(text, &lre::inner::FAMILY)
            .err()
            .unwrap_or_else(|| panic!("{text:?} accepted"));
        assert_eq!(e.status, Status::LRE_ERR_SPEC, "{text:?}");
        assert!(e.message.contains(needle), "{text:?}: {}", e.message);
    }
    for (text, needle) in [
        ("", "inner optimizer"),
        ("ggt", "\"ggt\""),
        ("adam(beta2=2)", "\"2\""),
        ("adam(beta2=0.999", "end"),
        ("[adam]", "\"[\""),
    ] {
        let e = parse_component(text, &lre::inner::FAMILY)
            .err()
            .unwrap_or_else(|| panic!("{text:?} accepted"));
        assert_eq!(e.status, Status::LRE_ERR_SPEC, "{text:?}");
        assert!(e.message.contains(needle), "{text:?}: {}", e.message);
    }
    // Unknown names list the family's valid names.
    let e = parse_component("ggt", &lre::inner::FAMILY).unwrap_err();
    assert!(
        e.message.contains("adam") && e.message.contains("normalize_by_ema"),
        "{}",
        e.message
    );
}

// ---------------------------------------------------------------------------------------------
// 8. Fuzz-style robustness
// ---------------------------------------------------------------------------------------------

/// xorshift64*: tiny, deterministic, good enough to pick characters.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const ALPHABET: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789;=,()[]._-: ";

fn seed_specs() -> Vec<String> {
    let mut specs: Vec<String> = vec![
        String::new(),
        DESIGN_DEFAULT.to_string(),
        CANONICAL_DEFAULT.to_string(),
        "basis=ggt(history_size=50); lr=0.1".to_string(),
        "chain=[adam(beta1=0.5, beta2=0.9), cautious]; seed=7; threads=2".to_string(),
        "curvature=bfgs(z=gaussian, c=0.5); basis=eigen(rank=10, beta=none)".to_string(),
        "device=cuda:1; dtype=f64; update_freq=10; init_steps=5".to_string(),
        "chain=[]; symmetrize=false".to_string(),
        "basis=full_matrix(truncate=4, eig_tol=1e-3); chain=normalize_by_ema(max_growth=2)"
            .to_string(),
        "basis=hebbian_learning(opt=gd, value_clip=0.5, reortho_freq=3)".to_string(),
        "lr=1e-3; seed=123456789; init_steps=0".to_string(),
    ];
    for case in &FAMILIES {
        for spec in case.family.components() {
            specs.push(place(case.key, spec.name));
            specs.push(parse_ok(&place(case.key, spec.name)).to_string());
        }
    }
    specs
}

/// A random spelling of a name: case changes and inserted '_'/'-' (all accepted).
fn respell(rng: &mut XorShift, name: &str) -> String {
    let mut out = String::new();
    for ch in name.chars() {
        match rng.below(8) {
            0 => out.push(ch.to_ascii_uppercase()),
            1 if ch == '_' => {}
            2 => {
                out.push(ch);
                out.push(if rng.below(2) == 0 { '-' } else { '_' });
            }
            _ => out.push(ch),
        }
    }
    out
}

/// Number text in the many forms `f64::from_str` accepts, sometimes out of range.
fn random_number(rng: &mut XorShift) -> String {
    let digits = |rng: &mut XorShift, k: usize| -> String {
        (0..k)
            .map(|_| char::from(b'0' + rng.below(10) as u8))
            .collect()
    };
    let k = 1 + rng.below(3);
    let int_part = digits(rng, k);
    let k = rng.below(4);
    let frac = digits(rng, k);
    let k = 1 + rng.below(3);
    let short = digits(rng, k);
    let mut text = match rng.below(6) {
        0 => int_part,
        1 => format!("{int_part}.{frac}"),
        2 => format!("0.{frac}"),
        3 => format!(".{short}"),
        4 => format!(
            "{int_part}e{}{}",
            if rng.below(2) == 0 { "-" } else { "" },
            rng.below(20)
        ),
        _ => format!("{int_part}.{frac}E+{}", rng.below(4)),
    };
    match rng.below(10) {
        0 => text.insert(0, '-'),
        1 => text.insert(0, '+'),
        _ => {}
    }
    text
}

/// A random value for parameter `p`: mostly of the right kind, sometimes not.
fn random_value(rng: &mut XorShift, p: &ParamSpec) -> String {
    if rng.below(10) == 0 {
        return rng
            .pick(&["none", "true", "false", "nan", "x", "1e999"])
            .to_string();
    }
    match p.kind {
        _ if p.nullable && rng.below(5) == 0 => "none".to_string(),
        Kind::Float(r) if rng.below(2) == 0 => {
            // Inside the range, printed with up to 17 significant digits.
            let u = (rng.below(1_000_000) as f64 + 0.5) / 1e6;
            let x = if r.hi.is_finite() {
                r.lo + (r.hi - r.lo) * u
            } else {
                r.lo + 10.0 * u
            };
            match rng.below(3) {
                0 => format!("{x}"),
                1 => format!("{x:e}"),
                _ => format!("{x:.3}"),
            }
        }
        Kind::Int(min) if rng.below(2) == 0 => (min + rng.below(50) as i64).to_string(),
        Kind::Float(_) | Kind::Int(_) => random_number(rng),
        Kind::Bool => rng.pick(&["true", "false", "TRUE", "False"]).to_string(),
        Kind::Word(choices) => {
            let choice = *rng.pick(choices);
            respell(rng, choice)
        }
    }
}

fn random_component(rng: &mut XorShift, family: &'static Family) -> String {
    let names: Vec<&str> = family
        .components()
        .map(|c| c.name)
        .chain(family.aliases.iter().map(|a| a.name))
        .collect();
    let name = *rng.pick(&names);
    let (spec, _) = family.lookup(name).expect("registry names resolve");
    let mut text = respell(rng, name);
    if spec.params.is_empty() {
        if rng.below(4) == 0 {
            text.push_str("()");
        }
        return text;
    }
    if rng.below(3) == 0 {
        return text;
    }
    let mut args = Vec::new();
    for p in spec.params {
        if rng.below(2) == 0 {
            args.push(format!("{}={}", respell(rng, p.name), random_value(rng, p)));
        }
    }
    // Shuffle: argument order does not matter.
    for i in (1..args.len()).rev() {
        let j = rng.below(i + 1);
        args.swap(i, j);
    }
    format!("{text}({})", args.join(", "))
}

/// A random, mostly well-formed spec built from the registries.
fn random_spec(rng: &mut XorShift) -> String {
    let mut entries = Vec::new();
    for key in [
        "curvature",
        "basis",
        "chain",
        "lr",
        "weight_decay",
        "update_freq",
        "init_steps",
        "symmetrize",
        "seed",
        "dtype",
        "device",
        "threads",
    ] {
        if rng.below(3) != 0 {
            continue;
        }
        let value = match key {
            "curvature" => random_component(rng, &lre::curvature::FAMILY),
            "basis" => random_component(rng, &lre::basis::FAMILY),
            "chain" => {
                let k = rng.below(4);
                let members: Vec<String> = (0..k)
                    .map(|_| random_component(rng, &lre::inner::FAMILY))
                    .collect();
                if k == 1 && rng.below(2) == 0 {
                    members[0].clone()
                } else {
                    format!("[{}]", members.join(", "))
                }
            }
            "symmetrize" => rng.pick(&["true", "false", "True"]).to_string(),
            "dtype" => rng
                .pick(&["f32", "f64", "float32", "float64", "F64"])
                .to_string(),
            "device" => rng
                .pick(&["cpu", "cuda", "cuda:0", "cuda:7", "CUDA:12", "cuda:+3"])
                .to_string(),
            "threads" => match rng.below(8) {
                0 => rng.pick(&["auto", "AUTO", "Auto"]).to_string(),
                _ => rng.below(270).to_string(),
            },
            _ if rng.below(4) == 0 => random_number(rng),
            "lr" | "weight_decay" => format!("{}", rng.below(100_000) as f64 / 1e4),
            _ => rng.below(1000).to_string(),
        };
        entries.push(format!("{}={value}", respell(rng, key)));
    }
    for i in (1..entries.len()).rev() {
        let j = rng.below(i + 1);
        entries.swap(i, j);
    }
    let mut spec = entries.join(if rng.below(2) == 0 { "; " } else { ";" });
    if rng.below(5) == 0 {
        spec.push(';');
    }
    spec
}

fn mutate(rng: &mut XorShift, text: &str) -> String {
    let mut bytes: Vec<u8> = text.bytes().collect();
    let edits = if rng.below(2) == 0 {
        1
    } else {
        1 + rng.below(3)
    };
    for _ in 0..edits {
        match rng.below(4) {
            0 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes.remove(i);
            }
            1 => {
                let i = rng.below(bytes.len() + 1);
                bytes.insert(i, *rng.pick(ALPHABET));
            }
            2 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] = *rng.pick(ALPHABET);
            }
            _ if !bytes.is_empty() => {
                // Duplicate or drop a slice: repeats entries, arguments, brackets.
                let i = rng.below(bytes.len());
                let j = (i + 1 + rng.below(12)).min(bytes.len());
                if rng.below(2) == 0 {
                    let piece: Vec<u8> = bytes[i..j].to_vec();
                    let at = rng.below(bytes.len() + 1);
                    bytes.splice(at..at, piece);
                } else {
                    bytes.drain(i..j);
                }
            }
            _ => bytes.push(*rng.pick(ALPHABET)),
        }
    }
    String::from_utf8(bytes).expect("the alphabet and the seeds are ASCII")
}

#[test]
fn fuzz_parse_never_panics_and_ok_results_round_trip() {
    let seeds = seed_specs();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut ok = 0usize;
    let mut failures: Vec<String> = Vec::new();
    let total = 100_000;
    for i in 0..total {
        let input = match i % 4 {
            0 => {
                let len = rng.below(48);
                (0..len)
                    .map(|_| *rng.pick(ALPHABET) as char)
                    .collect::<String>()
            }
            1 => random_spec(&mut rng),
            2 => {
                let base = random_spec(&mut rng);
                mutate(&mut rng, &base)
            }
            _ => {
                let base = rng.pick(&seeds).clone();
                mutate(&mut rng, &base)
            }
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let parsed = Config::parse(&input);
            match parsed {
                Ok(config) => {
                    let text = config.to_string();
                    match Config::parse(&text) {
                        Ok(again) if again == config && again.to_string() == text => Ok(true),
                        Ok(again) => Err(format!("round trip changed: {text:?} -> {again}")),
                        Err(e) => Err(format!(
                            "canonical print {text:?} does not parse: {}",
                            e.message
                        )),
                    }
                }
                Err(e) if e.status != Status::LRE_ERR_SPEC => {
                    Err(format!("status {:?}: {}", e.status, e.message))
                }
                Err(e) if e.message.is_empty() => Err("empty error message".to_string()),
                Err(_) => Ok(false),
            }
        }));
        match outcome {
            Ok(Ok(true)) => ok += 1,
            Ok(Ok(false)) => {}
            Ok(Err(why)) => failures.push(format!("{input:?}: {why}")),
            Err(_) => failures.push(format!("{input:?}: Config::parse panicked")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} inputs failed, e.g.:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
    println!("fuzz: {ok} of {total} inputs parsed and round-tripped");
    // The loop must exercise both outcomes to mean anything.
    assert!(ok > total / 10, "only {ok} of {total} fuzz inputs parsed");
    assert!(
        ok < total * 3 / 4,
        "{ok} of {total} fuzz inputs parsed: the mutations are not biting"
    );
}

#[test]
fn fuzz_parse_component_never_panics() {
    let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
    let seeds: Vec<String> = lre::inner::FAMILY
        .components()
        .map(|c| lre::component::Component::with_defaults(c).to_string())
        .collect();
    let mut ok = 0;
    for _ in 0..5_000 {
        let base = rng.pick(&seeds).clone();
        let input = mutate(&mut rng, &base);
        let result = catch_unwind(AssertUnwindSafe(|| {
            parse_component(&input, &lre::inner::FAMILY)
        }));
        match result {
            Err(_) => panic!("parse_component panicked on {input:?}"),
            Ok(Ok(c)) => {
                let again = parse_component(&c.to_string(), &lre::inner::FAMILY)
                    .unwrap_or_else(|e| panic!("{input:?} -> {c} does not reparse: {}", e.message));
                assert_eq!(again, c, "{input:?}");
                ok += 1;
            }
            Ok(Err(e)) => assert_eq!(e.status, Status::LRE_ERR_SPEC, "{input:?}: {}", e.message),
        }
    }
    assert!(ok > 100, "only {ok} parsed");
}
