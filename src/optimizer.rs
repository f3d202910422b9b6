//! The step loop (ALGORITHM.md §1.3), written once over a [`Backend`].
//!
//! One step: validate the gradient (nothing changes if it is bad) → the curvature turns it into a
//! correction on update steps → the basis absorbs it and, if it changed, hands C = Q_newᵀQ_old to
//! the whole chain → project ĝ = Qᵀg → the chain transforms ĝ into û → x ← x − lr·Q·û.

use crate::backend::{Backend, Cpu, InputError, Scalar};
use crate::basis::{self, Basis, Outcome, Source};
use crate::component::Component;
use crate::curvature::{self, Curvature};
use crate::error::{Error, Result, Status};
use crate::inner::{self, Chain, Context};
use crate::rng::Rng;
use crate::spec::{Config, Device};
use crate::state::{self, Decoder, Encoder};
use std::io::{self, Write};
use std::path::Path;

/// An LRE optimizer on backend `B`.
pub struct Optimizer<B: Backend> {
    config: Config,
    backend: B,
    curvature: Box<dyn Curvature<B>>,
    basis: Box<dyn Basis<B>>,
    chain: Chain,
    rng: Rng,
    /// Steps taken (init steps included).
    step: u64,
    /// k used by the chain in the last step (0 before the first).
    last_rank: usize,
    /// Validated copy of the caller's gradient (allocated at the first step).
    grad: Option<B::Vector>,
    /// ĝ and the update û (k-vectors).
    projected: Vec<f64>,
    update: Vec<f64>,
    /// The eigenvalues the chain saw in the last step.
    last_eigenvalues: Vec<f64>,
    /// Why the last basis update was skipped (the previous basis was kept), if it was.
    last_basis_failure: Option<String>,
}

/// The CPU optimizer for element type `T` (f32 or f64).
pub type CpuOptimizer<T> = Optimizer<Cpu<T>>;

impl<T: Scalar> Optimizer<Cpu<T>> {
    /// Creates a CPU optimizer for `n` parameters from a spec string (`""` is the default).
    /// The spec's dtype must be `T`.
    pub fn from_spec(spec: &str, n: usize) -> Result<Self> {
        Self::from_config(Config::parse(spec)?, n)
    }

    /// Creates a CPU optimizer for `n` parameters from a parsed configuration.
    pub fn from_config(config: Config, n: usize) -> Result<Self> {
        if config.dtype != T::DTYPE {
            return Err(Error::invalid(format!(
                "the spec says dtype={} but this optimizer is for {}",
                config.dtype,
                T::DTYPE
            )));
        }
        if let Device::Cuda(_) = config.device {
            return Err(Error::new(
                Status::LRE_ERR_DEVICE,
                "device=cuda:N needs the CUDA backend, which was not compiled into this build (cargo feature \"cuda\")",
            ));
        }
        if n == 0 {
            return Err(Error::invalid("ndim = 0; expected ndim >= 1"));
        }
        let backend = Cpu::new(n, config.threads);
        Optimizer::new(config, backend)
    }
}

impl<T: Scalar> Optimizer<Cpu<T>> {
    /// Recreates an optimizer — configuration included — from a saved state.
    pub fn from_state(bytes: &[u8]) -> Result<Self> {
        let mut dec = Decoder::new(bytes)?;
        let config = saved_config(&dec)?;
        if dec.dtype != T::DTYPE {
            return Err(Error::new(
                Status::LRE_ERR_STATE,
                format!(
                    "the state has dtype={}; this is an optimizer for {}",
                    dec.dtype,
                    T::DTYPE
                ),
            ));
        }
        let mut opt = Self::from_config(config, dec.n)?;
        opt.restore(&mut dec)?;
        Ok(opt)
    }

    /// Recreates an optimizer from a file written by `save_file`.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_state(&state::file::read(path)?)
    }
}

/// The configuration recorded in a state blob.
fn saved_config(dec: &Decoder<'_>) -> Result<Config> {
    Config::parse(&dec.spec).map_err(|e| {
        Error::new(
            Status::LRE_ERR_STATE,
            format!("the state's spec does not parse: {}", e.message),
        )
    })
}

/// What differs between a saved configuration and an optimizer's, lr and threads aside (lr is
/// state a schedule changes; threads belong to the machine).
fn config_differences(saved: &Config, current: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut note = |key: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{key}: the state has {a}, this optimizer {b}"));
        }
    };
    note(
        "curvature",
        saved.curvature.to_string(),
        current.curvature.to_string(),
    );
    note("basis", saved.basis.to_string(), current.basis.to_string());
    let chain = |c: &Config| {
        format!(
            "[{}]",
            c.chain
                .iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    note("chain", chain(saved), chain(current));
    note(
        "update_freq",
        saved.update_freq.to_string(),
        current.update_freq.to_string(),
    );
    note(
        "init_steps",
        saved.init_steps.to_string(),
        current.init_steps.to_string(),
    );
    note(
        "symmetrize",
        saved.symmetrize.to_string(),
        current.symmetrize.to_string(),
    );
    note("seed", saved.seed.to_string(), current.seed.to_string());
    note(
        "device",
        saved.device.to_string(),
        current.device.to_string(),
    );
    out
}

impl<B: Backend + 'static> Optimizer<B> {
    /// Creates an optimizer from a parsed configuration on a ready backend.
    pub fn new(config: Config, backend: B) -> Result<Self> {
        let curvature = curvature::build(&config.curvature)?;
        let basis = basis::build(&config.basis, &backend)?;
        let mut chain = Chain::default();
        for member in &config.chain {
            chain.push(build_member(
                member,
                basis.as_ref(),
                curvature.as_ref(),
                config.curvature.name(),
            )?);
        }
        Ok(Optimizer {
            rng: Rng::new(config.seed),
            config,
            backend,
            curvature,
            basis,
            chain,
            step: 0,
            last_rank: 0,
            grad: None,
            projected: Vec::new(),
            update: Vec::new(),
            last_eigenvalues: Vec::new(),
            last_basis_failure: None,
        })
    }

    /// The configuration in use (its `Display` is the canonical spec).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Number of parameters n.
    pub fn ndim(&self) -> usize {
        self.backend.ndim()
    }

    /// Steps taken so far (init steps included).
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Basis size used by the inner chain in the last step (0 before the first).
    pub fn rank(&self) -> usize {
        self.last_rank
    }

    /// Hessian-vector products per update step.
    pub fn num_probes(&self) -> usize {
        self.curvature.num_probes()
    }

    /// The regularized eigenvalues handed to the chain in the last step (ascending, `rank()` of
    /// them); an error for bases without eigenvalues.
    pub fn eigenvalues(&self) -> Result<&[f64]> {
        if !self.basis.provides_eigenvalues() {
            return Err(Error::unsupported(format!(
                "basis {} has no eigenvalues",
                self.config.basis.name()
            )));
        }
        Ok(&self.last_eigenvalues)
    }

    /// Why the most recent basis update was skipped (the previous basis was kept), if it was.
    pub fn last_basis_failure(&self) -> Option<&str> {
        self.last_basis_failure.as_deref()
    }

    /// Bytes of n-sized memory held (basis window, curvature history, the gradient copy).
    pub fn memory_bytes(&self) -> usize {
        let staging = if self.grad.is_some() {
            self.backend.matrix_bytes(1)
        } else {
            0
        };
        self.basis.state_bytes(&self.backend) + self.curvature.state_bytes(&self.backend) + staging
    }

    /// Writes the complete state (docs/state-format.md) to `out`; returns the number of bytes.
    pub fn save_state(&self, out: &mut dyn Write) -> io::Result<u64> {
        let mut enc = Encoder::new(out, &self.config.to_string(), self.ndim(), B::Elem::DTYPE);
        enc.push("optimizer");
        enc.put_u64("step", self.step);
        enc.put_u64("rank", self.last_rank as u64);
        enc.put(
            "eigenvalues",
            &[self.last_eigenvalues.len()],
            &self.last_eigenvalues,
        );
        enc.put("rng", &[7], &self.rng.to_words());
        enc.pop();
        enc.push("curvature");
        self.curvature.save(&self.backend, &mut enc);
        enc.pop();
        enc.push("basis");
        self.basis.save(&self.backend, &mut enc);
        enc.pop();
        self.chain.save(&mut enc);
        enc.finish()
    }

    /// Size in bytes of the state `save_state` writes.
    pub fn state_size(&self) -> u64 {
        self.save_state(&mut io::sink())
            .expect("writing to a sink cannot fail")
    }

    /// The complete state as a byte vector.
    pub fn state(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.state_size() as usize);
        self.save_state(&mut bytes)
            .expect("writing to memory cannot fail");
        bytes
    }

    /// Replaces this optimizer's state with a saved one. The blob must come from an optimizer
    /// with the same configuration (lr and threads aside), n and dtype; lr is restored from
    /// it. On any error nothing changes.
    pub fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        let mut dec = Decoder::new(bytes)?;
        let saved = saved_config(&dec)?;
        let mut differences = config_differences(&saved, &self.config);
        if dec.dtype != B::Elem::DTYPE {
            differences.push(format!(
                "dtype: the state has {}, this optimizer {}",
                dec.dtype,
                B::Elem::DTYPE
            ));
        }
        if dec.n != self.ndim() {
            differences.push(format!(
                "n: the state has {}, this optimizer {}",
                dec.n,
                self.ndim()
            ));
        }
        if !differences.is_empty() {
            return Err(Error::new(
                Status::LRE_ERR_STATE,
                format!(
                    "the state does not match this optimizer: {}",
                    differences.join("; ")
                ),
            ));
        }
        let mut config = self.config.clone();
        config.lr = saved.lr;
        let mut fresh = Optimizer::new(config, self.backend.clone())?;
        fresh.restore(&mut dec)?;
        *self = fresh;
        Ok(())
    }

    /// Writes the state to `path` atomically (a crash mid-save leaves the old file intact).
    pub fn save_file(&self, path: &Path) -> Result<()> {
        state::file::write_atomically(path, |out| self.save_state(out).map(|_| ()))
    }

    /// Loads a state written by `save_file` (see `load_state`).
    pub fn load_file(&mut self, path: &Path) -> Result<()> {
        self.load_state(&state::file::read(path)?)
    }

    /// Reads every buffer of a blob into this freshly built optimizer.
    fn restore(&mut self, dec: &mut Decoder<'_>) -> Result<()> {
        dec.push("optimizer");
        self.step = dec.get_u64("step")?;
        self.last_rank = usize::try_from(dec.get_u64("rank")?).unwrap_or(usize::MAX);
        self.last_eigenvalues = dec.get::<f64>("eigenvalues")?.0;
        let words: [u64; 7] = dec
            .get_shaped::<u64>("rng", &[7])?
            .try_into()
            .expect("shape checked");
        self.rng = Rng::from_words(&words);
        dec.pop();
        dec.push("curvature");
        self.curvature.load(&self.backend, dec)?;
        dec.pop();
        dec.push("basis");
        self.basis.load(&self.backend, dec)?;
        dec.pop();
        self.chain.load(dec)?;
        dec.finish()
    }

    /// Sets the learning rate (finite, >= 0); takes effect at the next step.
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(Error::invalid(format!(
                "lr = {lr}; expected a finite number >= 0"
            )));
        }
        self.config.lr = lr;
        Ok(())
    }

    /// Appends a member to the inner chain; only before the first step.
    pub fn chain_push(&mut self, component: Component) -> Result<()> {
        if self.step > 0 {
            return Err(Error::new(
                Status::LRE_ERR_CALL_ORDER,
                format!(
                    "the chain can only be changed before the first step; {} steps were taken",
                    self.step
                ),
            ));
        }
        let member = build_member(
            &component,
            self.basis.as_ref(),
            self.curvature.as_ref(),
            self.config.curvature.name(),
        )?;
        self.chain.push(member);
        self.config.chain.push(component);
        Ok(())
    }

    /// One optimizer step: x ← x − lr·Q·û. On error nothing has changed.
    pub fn step(&mut self, params: B::InOut<'_>, grad: B::Input<'_>) -> Result<()> {
        if self.curvature.num_probes() > 0 {
            return Err(Error::invalid(format!(
                "curvature {} needs Hessian-vector products; use the step with an HVP callback",
                self.config.curvature.name()
            )));
        }
        let staged = match &mut self.grad {
            Some(buffer) => buffer,
            empty => empty.insert(self.backend.vector()?),
        };
        self.backend.load_checked(grad, staged).map_err(|e| {
            let what = match e {
                InputError::NonFinite { index } => {
                    format!("grad[{index}] is not finite (NaN or Inf)")
                }
                InputError::TooLarge => "grad is too large: ‖grad‖² overflows f64".to_string(),
            };
            Error::new(
                Status::LRE_ERR_NUMERICAL,
                format!("{what}; step skipped, nothing changed"),
            )
        })?;
        let t = self.step;
        let should_update = t.is_multiple_of(self.config.update_freq) || t < self.config.init_steps;
        // Memory the step needs is reserved before anything changes.
        let width = self.curvature.prepare(&self.backend, should_update)?;
        self.basis.prepare(&self.backend, width)?;
        // Nothing below fails on valid input: a failed eigensolve keeps the old basis.
        let grad = self.grad.as_ref().expect("staged above");
        let correction = self.curvature.observe(&self.backend, grad, should_update);
        let mut grad_column = None;
        // `symmetrize` only matters for corrections with a Z part, which no implemented
        // curvature produces yet (the Hessian curvatures will).
        if let Some(correction) = correction {
            match self.basis.update(&self.backend, &correction)? {
                Outcome::Changed(change) => {
                    self.last_basis_failure = None;
                    grad_column = correction.gradient_column;
                    if let Some(c) = &change.change {
                        self.chain.reproject(c, &mut self.rng);
                    }
                }
                Outcome::Unchanged { failure } => {
                    grad_column = correction.gradient_column;
                    if failure.is_some() {
                        self.last_basis_failure = failure;
                    }
                }
            }
        }
        self.step += 1;
        if t < self.config.init_steps || self.basis.rank().is_none() {
            // Init steps only build the basis; with no basis yet there is nothing to step in.
            return Ok(());
        }
        let source = match grad_column {
            Some(j) => Source::CorrectionColumn(j, grad),
            None => Source::Vector(grad),
        };
        self.basis
            .project(&self.backend, source, &mut self.projected);
        self.update.clone_from(&self.projected);
        let ctx = Context::new(&self.projected, self.basis.eigenvalues());
        self.chain.step(&mut self.update, &ctx, &mut self.rng);
        self.last_rank = self.update.len();
        self.last_eigenvalues.clear();
        self.last_eigenvalues
            .extend_from_slice(self.basis.eigenvalues().unwrap_or(&[]));
        self.basis
            .add_unprojected(&self.backend, &self.update, -self.config.lr, params);
        Ok(())
    }
}

/// Builds a chain member and checks that `basis` and `curvature` give it what it needs.
fn build_member<B: Backend>(
    component: &Component,
    basis: &dyn Basis<B>,
    curvature: &dyn Curvature<B>,
    curvature_name: &str,
) -> Result<Box<dyn inner::Inner>> {
    let member = inner::build(component)?;
    if member.needs_hessian() && curvature.num_probes() == 0 {
        return Err(Error::spec(format!(
            "inner optimizer {} needs Hessian-vector products, which curvature {} does not compute; \
             use a Hessian curvature (full_hutchinson_hessian, bfgs, sr1)",
            component.name(),
            curvature_name
        )));
    }
    if member.needs_jacobian() && !curvature.provides_jacobian() {
        return Err(Error::spec(format!(
            "inner optimizer {} needs per-sample Jacobians, which curvature {} does not provide; \
             use empirical_fisher or gauss_newton",
            component.name(),
            curvature_name
        )));
    }
    if member.needs_eigenvalues() && !basis.provides_eigenvalues() {
        return Err(Error::spec(format!(
            "inner optimizer {} divides by the basis's eigenvalues, but this basis has none; use a basis \
             with eigenvalues (ggt, full_matrix)",
            component.name()
        )));
    }
    Ok(member)
}
