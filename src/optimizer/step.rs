//! The step loop (docs/algorithm.md §1.3) in two phases.
//!
//! `begin` validates the gradient and decides which Hessian-vector products the step needs
//! (it draws the probe vectors); `finish` validates the HVPs, then updates the curvature, the
//! basis and the chain and moves the parameters. Everything that can fail is checked before
//! anything changes, so a refused call leaves the optimizer exactly as it was. The one-call
//! steps (plain, with an HVP callback, batch) are thin wrappers over the two phases.

use super::Current;
use super::Optimizer;
use super::diagonal_adam::{Work, add_scaled};
use super::{complement, graft, warmup};
use crate::backend::cpu::VectorStorage;
use crate::backend::{Backend, Cpu, InputError, Scalar};
use crate::basis::{Outcome, Source};
use crate::curvature::Observation;
use crate::error::{Error, Result, Status};
use crate::inner::{Context, HessianSample};
use crate::rng::Rng;
use crate::spec::Diagonal;
use faer::Mat;

/// The step between `begin` and `finish`.
pub(super) struct Pending {
    update: bool,
    /// HVPs `finish` expects.
    probes: usize,
    /// Per-sample gradients staged by `begin_batch` (0 for other steps).
    batch: usize,
    has_values: bool,
    /// The generator after drawing the probes; committed by `finish`.
    rng: Rng,
}

/// Buffers of the step in progress. Not state: a saved optimizer does not include them.
pub(super) struct Scratch<B: Backend> {
    /// The validated gradient.
    pub(super) grad: Option<B::Vector>,
    probes: Vec<B::Vector>,
    hvps: Vec<B::Vector>,
    samples: Vec<B::Vector>,
    values: Vec<f64>,
    /// ĝ and the update û (k-vectors).
    projected: Vec<f64>,
    update: Vec<f64>,
    /// The last sharded step's rollback state, kept so that the next one writes into memory
    /// already mapped (at n = 1e6 a fresh allocation's page faults cost as much as the copy).
    rollback_state: Vec<u8>,
    /// n-sized work of the diagonal Adam (`diagonal`, `warmup`).
    diagonal: Option<Work<B>>,
}

impl<B: Backend> Default for Scratch<B> {
    fn default() -> Self {
        Scratch {
            grad: None,
            probes: Vec::new(),
            hvps: Vec::new(),
            samples: Vec::new(),
            values: Vec::new(),
            projected: Vec::new(),
            update: Vec::new(),
            rollback_state: Vec::new(),
            diagonal: None,
        }
    }
}

impl<B: Backend> Scratch<B> {
    /// Whether the diagonal Adam's work buffers are allocated (after the first step with it).
    pub(super) fn has_diagonal_work(&self) -> bool {
        self.diagonal.is_some()
    }
}

/// Grows `pool` to `count` vectors.
fn reserve<B: Backend>(be: &B, pool: &mut Vec<B::Vector>, count: usize) -> Result<()> {
    while pool.len() < count {
        pool.push(be.vector()?);
    }
    Ok(())
}

/// The error for a refused input vector.
fn refused(what: &str, e: InputError) -> Error {
    let why = match e {
        InputError::NonFinite { index } => format!("{what}[{index}] is not finite (NaN or Inf)"),
        InputError::TooLarge => format!("{what} is too large: its squared norm overflows f64"),
        InputError::OtherRank => {
            format!("{what} is not finite or too large on another rank (sharded optimizer)")
        }
    };
    Error::new(
        Status::LRE_ERR_NUMERICAL,
        format!("{why}; step skipped, nothing changed"),
    )
}

fn call_order(message: String) -> Error {
    Error::new(Status::LRE_ERR_CALL_ORDER, message)
}

fn allreduce_failed(when: &str) -> Error {
    Error::new(
        Status::LRE_ERR_CALLBACK,
        format!(
            "the all-reduce callback failed {when}; this rank's step was abandoned and its \
             parameters and state are unchanged"
        ),
    )
}

/// Loads and checks caller vectors into `staged` (named by `name(i)` in errors). In sharded mode
/// the check is all-reduced, so every rank refuses the same vector.
fn load_all<'a, B: Backend>(
    be: &B,
    inputs: &[B::Input<'a>],
    staged: &mut [B::Vector],
    name: impl Fn(usize) -> String,
) -> Result<()>
where
    B::Input<'a>: Copy,
{
    for (i, (input, staged)) in inputs.iter().zip(staged).enumerate() {
        let loaded = be.load_checked(*input, staged);
        if be.shard().is_some_and(|s| s.reducer.take_failure()) {
            return Err(allreduce_failed(&format!("while checking {}", name(i))));
        }
        loaded.map_err(|e| refused(&name(i), e))?;
    }
    Ok(())
}

/// What a sharded step restores when its all-reduce fails part way.
struct Rollback<B: Backend> {
    state: Vec<u8>,
    params: B::Vector,
    loss: Option<f64>,
}

impl<B: Backend + 'static> Optimizer<B> {
    /// Sets the loss of the next step, for curvatures that use it (covariance_times_loss,
    /// unrolled_gauss_newton); consumed by that step.
    pub fn set_loss(&mut self, loss: f64) -> Result<()> {
        if !loss.is_finite() {
            return Err(Error::invalid(format!(
                "loss = {loss}; expected a finite number"
            )));
        }
        self.loss = Some(loss);
        Ok(())
    }

    /// Whether a step is between `begin` and `finish`.
    pub fn in_step(&self) -> bool {
        self.pending.is_some()
    }

    /// Sharded mode: an error unless an all-reduce is registered.
    fn check_reducer(&self) -> Result<()> {
        self.backend
            .shard()
            .map_or(Ok(()), |s| s.reducer.check_ready())
    }

    /// Whether an all-reduce failed since the last time this was asked.
    fn reduction_failed(&self) -> bool {
        self.backend
            .shard()
            .is_some_and(|s| s.reducer.take_failure())
    }

    fn check_not_in_step(&self) -> Result<()> {
        match self.pending {
            Some(_) => Err(call_order(
                "a step is already begun; call finish (or cancel) before beginning another".into(),
            )),
            None => Ok(()),
        }
    }

    /// Phase one: validates `grad` and returns how many Hessian-vector products this step needs
    /// (their probe vectors are then available from `probe`).
    pub fn begin(&mut self, grad: B::Input<'_>) -> Result<usize> {
        self.check_not_in_step()?;
        self.check_reducer()?;
        if self.curvature.requirements().samples {
            return Err(Error::invalid(format!(
                "curvature {} needs per-sample gradients; use the batch step",
                self.config.curvature.name()
            )));
        }
        let staged = match &mut self.scratch.grad {
            Some(buffer) => buffer,
            empty => empty.insert(self.backend.vector()?),
        };
        let loaded = self.backend.load_checked(grad, staged);
        if self.reduction_failed() {
            return Err(allreduce_failed("while checking grad"));
        }
        loaded.map_err(|e| refused("grad", e))?;
        self.begin_staged(0, false)
    }

    /// Phase one of a batch step: `samples` are the per-sample gradients (rows of the Jacobian)
    /// and `values` the per-sample values (residuals for Gauss-Newton). The step's gradient is
    /// formed by the curvature (the sum of the rows; Jᵀr for Gauss-Newton).
    pub fn begin_batch(&mut self, samples: &[B::Input<'_>], values: Option<&[f64]>) -> Result<usize>
    where
        for<'x> B::Input<'x>: Copy,
    {
        self.check_not_in_step()?;
        self.check_reducer()?;
        let requirements = self.curvature.requirements();
        if samples.is_empty() {
            return Err(Error::invalid(
                "batch = 0; a batch step needs at least one per-sample gradient",
            ));
        }
        match values {
            Some(v) if v.len() != samples.len() => {
                return Err(Error::invalid(format!(
                    "{} per-sample values for a batch of {}",
                    v.len(),
                    samples.len()
                )));
            }
            Some(v) => {
                if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                    return Err(Error::new(
                        Status::LRE_ERR_NUMERICAL,
                        format!(
                            "per_sample_values[{i}] is not finite; step skipped, nothing changed"
                        ),
                    ));
                }
            }
            None if requirements.values => {
                return Err(Error::invalid(format!(
                    "curvature {} needs per-sample values (the residuals); pass them with the batch",
                    self.config.curvature.name()
                )));
            }
            None => {}
        }
        let be = &self.backend;
        reserve(be, &mut self.scratch.samples, samples.len())?;
        if self.scratch.grad.is_none() {
            self.scratch.grad = Some(be.vector()?);
        }
        load_all(be, samples, &mut self.scratch.samples, |i| {
            format!("per_sample_grads row {i}")
        })?;
        self.scratch.values.clear();
        self.scratch.values.extend_from_slice(values.unwrap_or(&[]));
        let grad = self.scratch.grad.as_mut().expect("allocated above");
        self.curvature
            .batch_gradient(be, &self.scratch.samples[..samples.len()], values, grad);
        let squares = be.dot(grad, grad);
        if self.reduction_failed() {
            return Err(allreduce_failed("while forming the batch's gradient"));
        }
        if !squares.is_finite() {
            return Err(refused("the batch's gradient", InputError::TooLarge));
        }
        self.begin_staged(samples.len(), values.is_some())
    }

    fn begin_staged(&mut self, batch: usize, has_values: bool) -> Result<usize> {
        let requirements = self.curvature.requirements();
        if requirements.loss && self.loss.is_none() {
            return Err(call_order(format!(
                "curvature {} needs the loss of every step: set it (set_loss, or set_param \"loss\") \
                 before the step",
                self.config.curvature.name()
            )));
        }
        let update = self.is_update_step(self.step);
        let probes = if update { requirements.probes } else { 0 };
        let mut rng = self.rng.clone();
        if probes > 0 {
            reserve(&self.backend, &mut self.scratch.probes, probes)?;
            let grad = self.scratch.grad.as_ref().expect("staged by begin");
            self.curvature.draw_probes(
                &self.backend,
                grad,
                &mut Current(self.basis.as_mut()),
                &mut rng,
                &mut self.scratch.probes[..probes],
            )?;
            if self.reduction_failed() {
                return Err(allreduce_failed("while drawing the probes"));
            }
        }
        self.pending = Some(Pending {
            update,
            probes,
            batch,
            has_values,
            rng,
        });
        Ok(probes)
    }

    fn is_update_step(&self, t: u64) -> bool {
        t.is_multiple_of(self.config.update_freq) || t < self.config.init_steps
    }

    /// HVPs the begun step needs (an error without a begun step).
    pub fn begun_probes(&self) -> Result<usize> {
        self.pending
            .as_ref()
            .map(|p| p.probes)
            .ok_or_else(|| call_order("no step is begun; call begin first".into()))
    }

    /// Probe vector `i` of the begun step.
    pub fn probe(&self, i: usize) -> Result<&B::Vector> {
        let pending = self
            .pending
            .as_ref()
            .ok_or_else(|| call_order("no step is begun; call begin first".into()))?;
        if i >= pending.probes {
            return Err(Error::invalid(format!(
                "probe {i} of a step with {} probes",
                pending.probes
            )));
        }
        Ok(&self.scratch.probes[i])
    }

    /// Abandons a begun step; nothing changes.
    pub fn cancel(&mut self) {
        self.pending = None;
    }

    /// Phase two: absorbs H·probe for each probe (in order), updates the curvature, the basis and
    /// the chain, and moves `params`. Non-finite HVPs are refused with nothing changed and the
    /// step still begun.
    pub fn finish(&mut self, params: B::InOut<'_>, hvps: &[B::Input<'_>]) -> Result<()>
    where
        for<'x> B::Input<'x>: Copy,
    {
        let pending = self.pending.as_ref().ok_or_else(|| {
            call_order("finish without begin: call begin (or use the one-call step) first".into())
        })?;
        if hvps.len() != pending.probes {
            return Err(Error::invalid(format!(
                "{} Hessian-vector products given; this step needs {}",
                hvps.len(),
                pending.probes
            )));
        }
        let be = &self.backend;
        reserve(be, &mut self.scratch.hvps, hvps.len())?;
        load_all(be, hvps, &mut self.scratch.hvps, |i| format!("hvp {i}"))?;
        let be = &self.backend;
        // Memory the step needs is reserved before anything changes.
        let width = self.curvature.prepare(be, pending.update, pending.batch)?;
        self.basis.prepare(be, width)?;
        if self.diagonal.is_some() && self.scratch.diagonal.is_none() {
            self.scratch.diagonal = Some(Work::new(be)?);
        }
        let mut params = params;
        // A sharded step all-reduces between its changes: it keeps what it needs to undo them.
        let rollback = match be.shard() {
            Some(_) => {
                let mut saved = be.vector()?;
                be.copy_params(&params, &mut saved);
                let mut state = std::mem::take(&mut self.scratch.rollback_state);
                state.clear();
                self.save_state(&mut state)
                    .expect("writing to memory cannot fail");
                Some(Rollback::<B> {
                    state,
                    params: saved,
                    loss: self.loss,
                })
            }
            None => None,
        };
        let pending = self.pending.take().expect("checked above");
        let be = self.backend.clone();
        self.advance(be.reborrow(&mut params), pending);
        let Some(rollback) = rollback else {
            return Ok(());
        };
        let failed = self.reduction_failed();
        if failed {
            let failure = self.last_basis_failure.clone();
            self.load_state(&rollback.state)
                .expect("a state this optimizer saved loads back");
            self.loss = rollback.loss;
            self.last_basis_failure = failure;
            be.restore_params(&rollback.params, params);
        }
        self.scratch.rollback_state = rollback.state;
        match failed {
            true => Err(allreduce_failed("during the step")),
            false => Ok(()),
        }
    }

    /// The rest of the step; nothing here fails on validated input (a failed eigensolve keeps
    /// the previous basis).
    fn advance(&mut self, mut params: B::InOut<'_>, pending: Pending) {
        let next_update = self.is_update_step(self.step + 1);
        let be = &self.backend;
        let scratch = &mut self.scratch;
        let grad = scratch.grad.as_ref().expect("staged by begin");
        let loss = self.loss.take();
        let t = self.step;
        let obs = Observation {
            grad,
            samples: &scratch.samples[..pending.batch],
            values: pending.has_values.then_some(&scratch.values[..]),
            loss,
            probes: &scratch.probes[..pending.probes],
            hvps: &scratch.hvps[..pending.probes],
            update: pending.update,
        };
        let observed = self
            .curvature
            .observe(be, &obs, &mut Current(self.basis.as_mut()));
        let mut grad_column = None;
        if let Some(correction) = observed.correction {
            match self.basis.update(be, &correction) {
                Ok(Outcome::Changed(change)) => {
                    self.last_basis_failure = None;
                    grad_column = correction.gradient_column;
                    if let Some(c) = &change.change {
                        self.chain.reproject(c, &mut self.rng);
                    }
                }
                Ok(Outcome::Unchanged { failure }) => {
                    grad_column = correction.gradient_column;
                    match failure {
                        Some(why) => self.last_basis_failure = Some(why),
                        None => self.chain.basis_refreshed(),
                    }
                }
                // A correction the basis cannot take (checked at creation where possible) is
                // skipped like a failed update.
                Err(e) => self.last_basis_failure = Some(e.message),
            }
        }
        self.rng = pending.rng;
        self.step += 1;
        let step_grad = observed.gradient.unwrap_or(grad);
        let decay = self.config.lr * self.config.weight_decay;
        if t >= self.config.init_steps && warmup::active(t, self.config.warmup) {
            let adam = self.diagonal.as_mut().expect("created with the options");
            let work = scratch.diagonal.as_mut().expect("allocated by finish");
            if decay != 0.0 {
                be.scale_params(1.0 - decay, be.reborrow(&mut params));
            }
            warmup::step(be, step_grad, adam, work);
            add_scaled(
                be,
                &mut work.step,
                -self.config.lr,
                be.reborrow(&mut params),
            );
            self.curvature.after_step(be, &params, next_update);
            return;
        }
        if t < self.config.init_steps || self.basis.rank().is_none() {
            // Init steps only build the basis; with no basis yet there is nothing to step in.
            // The parameters do not move, weight decay included.
            self.curvature.after_step(be, &params, next_update);
            return;
        }
        let source = match (grad_column, observed.gradient) {
            (Some(j), None) => Source::CorrectionColumn(j, step_grad),
            _ => Source::Vector(step_grad),
        };
        self.basis.project(be, source, &mut scratch.projected);
        scratch.update.clone_from(&scratch.projected);
        let project_all =
            |basis: &mut dyn crate::basis::Basis<B>, vs: &[B::Vector]| -> Vec<Vec<f64>> {
                vs.iter()
                    .map(|v| {
                        let mut out = Vec::new();
                        basis.project(be, Source::Vector(v), &mut out);
                        out
                    })
                    .collect()
            };
        let (z, hz) = if self.chain_needs_hessian && pending.probes > 0 {
            (
                project_all(self.basis.as_mut(), &scratch.probes[..pending.probes]),
                project_all(self.basis.as_mut(), &scratch.hvps[..pending.probes]),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        let jacobian = (self.chain_needs_jacobian && pending.batch > 0).then(|| {
            let columns = project_all(self.basis.as_mut(), &scratch.samples[..pending.batch]);
            Mat::from_fn(scratch.projected.len(), columns.len(), |i, j| columns[j][i])
        });
        let mut ctx = Context::new(&scratch.projected, self.basis.eigenvalues());
        if !z.is_empty() {
            ctx.hessian = Some(HessianSample { z: &z, hz: &hz });
        }
        ctx.jacobian = jacobian.as_ref();
        self.chain.step(&mut scratch.update, &ctx, &mut self.rng);
        self.last_rank = scratch.update.len();
        self.last_eigenvalues.clear();
        self.last_eigenvalues
            .extend_from_slice(self.basis.eigenvalues().unwrap_or(&[]));
        // Decoupled weight decay, as AdamW: x ← (1 − lr·wd)·x − lr·Q·û, the decay taken on the
        // x before the step. With wd = 0 the parameters are not touched, so results stay
        // bit-identical to an optimizer without the key.
        if decay != 0.0 {
            be.scale_params(1.0 - decay, be.reborrow(&mut params));
        }
        let mut length = 1.0;
        if let (Some(adam), Some(work)) = (&mut self.diagonal, &mut scratch.diagonal) {
            match self.config.diagonal {
                Diagonal::Graft => {
                    length = graft::factor(
                        be,
                        self.basis.as_mut(),
                        step_grad,
                        &scratch.update,
                        adam,
                        work,
                    );
                }
                Diagonal::Complement => {
                    complement::step(
                        be,
                        self.basis.as_mut(),
                        step_grad,
                        &scratch.projected,
                        adam,
                        work,
                    );
                    add_scaled(
                        be,
                        &mut work.step,
                        -self.config.lr,
                        be.reborrow(&mut params),
                    );
                }
                Diagonal::None => {}
            }
        }
        self.basis.add_unprojected(
            be,
            &scratch.update,
            -self.config.lr * length,
            be.reborrow(&mut params),
        );
        self.curvature.after_step(be, &params, next_update);
    }

    /// One step with a plain gradient: x ← (1 − lr·weight_decay)·x − lr·Q·û. For curvatures that need Hessian-vector
    /// products use a step with HVPs. On error nothing has changed.
    pub fn step(&mut self, params: B::InOut<'_>, grad: B::Input<'_>) -> Result<()>
    where
        for<'x> B::Input<'x>: Copy,
    {
        if self.curvature.requirements().probes > 0 {
            return Err(Error::invalid(format!(
                "curvature {} needs Hessian-vector products; use the step with an HVP callback or \
                 the split step",
                self.config.curvature.name()
            )));
        }
        self.begin(grad)?;
        self.finish_or_cancel(params, &[])
    }

    /// Phase two of a one-call step. Unlike the split step's `finish`, a failure (out of memory,
    /// say) abandons the step, so that nothing has changed and the next step can begin.
    fn finish_or_cancel(&mut self, params: B::InOut<'_>, hvps: &[B::Input<'_>]) -> Result<()>
    where
        for<'x> B::Input<'x>: Copy,
    {
        let finished = self.finish(params, hvps);
        if finished.is_err() {
            self.cancel();
        }
        finished
    }
}

impl<B: Backend + 'static> Optimizer<B> {
    /// One step with a Hessian-vector product callback on the backend's vectors: `hvp(v, hv)`
    /// writes H·v into `hv` and returns true, or false to abort the step (`LRE_ERR_CALLBACK`;
    /// nothing changes). Called once per probe, synchronously.
    pub fn step_with_hvp_vectors(
        &mut self,
        params: B::InOut<'_>,
        grad: B::Input<'_>,
        mut hvp: impl FnMut(&B::Vector, &mut B::Vector) -> bool,
    ) -> Result<()>
    where
        for<'x> B::Input<'x>: Copy,
    {
        let probes = self.begin(grad)?;
        let mut products = Vec::with_capacity(probes);
        for _ in 0..probes {
            match self.backend.vector() {
                Ok(v) => products.push(v),
                Err(e) => {
                    self.cancel();
                    return Err(e);
                }
            }
        }
        for (i, hv) in products.iter_mut().enumerate() {
            let probe = self.probe(i)?;
            if !hvp(probe, hv) {
                self.cancel();
                return Err(Error::new(
                    Status::LRE_ERR_CALLBACK,
                    format!(
                        "the Hessian-vector product callback failed for probe {i}; step aborted, nothing changed"
                    ),
                ));
            }
        }
        let inputs: Vec<B::Input<'_>> = products.iter().map(|h| self.backend.as_input(h)).collect();
        self.finish_or_cancel(params, &inputs)
    }

    /// One batch step on the backend's vectors: `rows` are the per-sample gradients, `values`
    /// the per-sample values where the curvature needs them (residuals).
    pub fn step_batch_rows(
        &mut self,
        params: B::InOut<'_>,
        rows: &[B::Input<'_>],
        values: Option<&[f64]>,
    ) -> Result<()>
    where
        for<'x> B::Input<'x>: Copy,
    {
        if self.curvature.requirements().probes > 0 {
            return Err(Error::invalid(
                "the batch step has no HVPs; this curvature needs them",
            ));
        }
        self.begin_batch(rows, values)?;
        self.finish_or_cancel(params, &[])
    }
}

impl<T: Scalar, V: VectorStorage<T>> Optimizer<Cpu<T, V>> {
    /// One step with a Hessian-vector product callback: `hvp(v, hv)` writes H·v into `hv` and
    /// returns true, or false to abort the step (`LRE_ERR_CALLBACK`; nothing changes). It is
    /// called once per probe, synchronously.
    pub fn step_with_hvp(
        &mut self,
        params: &mut [T],
        grad: &[T],
        mut hvp: impl FnMut(&[T], &mut [T]) -> bool,
    ) -> Result<()> {
        self.step_with_hvp_vectors(params, grad, |v, hv| hvp(v, hv))
    }

    /// One batch step: `per_sample` holds `batch` rows of n per-sample gradients (row-major),
    /// `values` the per-sample values where the curvature needs them (residuals).
    pub fn step_batch(
        &mut self,
        params: &mut [T],
        per_sample: &[T],
        batch: usize,
        values: Option<&[f64]>,
    ) -> Result<()> {
        let n = self.ndim();
        if batch.checked_mul(n) != Some(per_sample.len()) {
            return Err(Error::invalid(format!(
                "per_sample_grads holds {} values; batch × n = {batch} × {n} expected",
                per_sample.len()
            )));
        }
        let rows: Vec<&[T]> = per_sample.chunks_exact(n.max(1)).collect();
        self.step_batch_rows(params, &rows, values)
    }
}
