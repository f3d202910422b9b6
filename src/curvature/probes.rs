//! Probe vectors of the Hessian curvatures (docs/algorithm.md §2.7), with the §7 item 2 fix: the
//! documented choices work. z is Rademacher, Gaussian, "s" (the parameter change since the
//! previous HVP step), "g" (the gradient) or "mixed" (one of the four at random per update).
//! "s" falls back to a Gaussian z until two parameter vectors are known; "s" and "g" fall back
//! to Rademacher when they are (numerically) zero. With `orthogonalize`, z is projected off the
//! current basis and normalized.

use super::Approximation;
use crate::backend::{Backend, Scalar};
use crate::basis::store::{adopt_vectors, get_vectors, put_vectors};
use crate::component::Component;
use crate::error::{Error, Result, Status};
use crate::rng::Rng;
use crate::state::{Decoder, Encoder};

/// Twice the smallest positive normal f64: the reference's "safe floor".
const SAFE_FLOOR: f64 = 2.0 * f64::MIN_POSITIVE;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Rademacher,
    Gaussian,
    Displacement,
    Gradient,
    Mixed,
}

/// Draws probes and keeps the parameter vectors that "s" needs.
pub struct Probes<V> {
    kind: Kind,
    orthogonalize: bool,
    /// The parameters at the start of this step (copied after the previous step when this one
    /// draws probes) and at the previous probe step; each with whether it holds them yet.
    x_now: Option<V>,
    x_now_valid: bool,
    x_prev: Option<V>,
    x_prev_valid: bool,
}

impl<V> Probes<V> {
    pub fn new(c: &Component) -> Self {
        let kind = match c.word("z") {
            "rademacher" => Kind::Rademacher,
            "gaussian" => Kind::Gaussian,
            "s" => Kind::Displacement,
            "g" => Kind::Gradient,
            _ => Kind::Mixed,
        };
        Probes {
            kind,
            orthogonalize: c.bool("orthogonalize"),
            x_now: None,
            x_now_valid: false,
            x_prev: None,
            x_prev_valid: false,
        }
    }

    fn uses_displacement(&self) -> bool {
        matches!(self.kind, Kind::Displacement | Kind::Mixed)
    }

    /// z for this update step into `z`.
    pub fn draw<B: Backend<Vector = V>>(
        &self,
        be: &B,
        grad: &V,
        approx: &mut dyn Approximation<B>,
        rng: &mut Rng,
        z: &mut V,
    ) -> Result<()> {
        // A shard draws its rows of the global probe.
        let (n, rows) = (
            be.global_ndim(),
            be.row_offset()..be.row_offset() + be.ndim(),
        );
        let kind = match self.kind {
            Kind::Mixed => [
                Kind::Gaussian,
                Kind::Rademacher,
                Kind::Displacement,
                Kind::Gradient,
            ][rng.index(4)],
            other => other,
        };
        match (
            kind,
            self.x_now.as_ref().filter(|_| self.x_now_valid),
            &self.x_prev,
        ) {
            (Kind::Displacement, Some(now), Some(prev)) => {
                be.copy(now, z);
                be.axpy(-1.0, prev, z);
            }
            (Kind::Gradient, _, _) => be.copy(grad, z),
            (Kind::Rademacher, _, _) => upload(be, &rng.rademacher_rows(n, rows.clone()), z),
            _ => upload(be, &rng.gaussian_rows(n, rows.clone()), z),
        }
        if matches!(kind, Kind::Displacement | Kind::Gradient) && be.dot(z, z) < SAFE_FLOOR {
            upload(be, &rng.rademacher_rows(n, rows), z);
        }
        if self.orthogonalize {
            if approx.has_basis() {
                // Classical Gram–Schmidt twice when the first pass removed most of z
                // (§7 item 9): an "s" probe lies almost in span(Q), and one pass would leave
                // round-off that is not orthogonal to Q.
                let before = be.dot(z, z);
                for _ in 0..2 {
                    approx.remove_span(be, z);
                    if be.dot(z, z) >= 0.5 * before {
                        break;
                    }
                }
            }
            be.scale(1.0 / be.dot(z, z).sqrt().max(SAFE_FLOOR), z);
        }
        Ok(())
    }

    /// After a probe step: its parameters become the "previous" ones for the next "s".
    pub fn commit<B: Backend<Vector = V>>(&mut self, be: &B) {
        if let (true, Some(now), Some(prev)) = (self.x_now_valid, &self.x_now, &mut self.x_prev) {
            be.copy(now, prev);
            self.x_prev_valid = true;
            self.x_now_valid = false;
        }
    }

    /// Allocates what "s" needs, before a step changes anything.
    pub fn reserve<B: Backend<Vector = V>>(&mut self, be: &B) -> Result<()> {
        if self.uses_displacement() && self.x_now.is_none() {
            self.x_now = Some(be.vector()?);
            self.x_prev = Some(be.vector()?);
        }
        Ok(())
    }

    /// After the parameters moved: remember them if the next step draws an "s" probe.
    pub fn after_step<B: Backend<Vector = V>>(
        &mut self,
        be: &B,
        params: &B::InOut<'_>,
        next_update: bool,
    ) {
        if let (true, Some(now)) = (next_update, &mut self.x_now) {
            be.copy_params(params, now);
            self.x_now_valid = true;
        }
    }

    pub fn bytes<B: Backend<Vector = V>>(&self, be: &B) -> usize {
        (usize::from(self.x_now.is_some()) + usize::from(self.x_prev.is_some()))
            * be.matrix_bytes(1)
    }

    pub fn save<B: Backend<Vector = V>>(&self, be: &B, enc: &mut Encoder<'_>) {
        let now = self.x_now.as_ref().filter(|_| self.x_now_valid);
        let prev = self.x_prev.as_ref().filter(|_| self.x_prev_valid);
        for (name, v) in [("x_now", now), ("x_prev", prev)] {
            if let Some(v) = v {
                put_vectors(be, enc, name, &[v]);
            }
        }
    }

    pub fn load<B: Backend<Vector = V>>(&mut self, be: &B, dec: &mut Decoder<'_>) -> Result<()> {
        let displacement = self.uses_displacement();
        for (name, slot, valid) in [
            ("x_now", &mut self.x_now, &mut self.x_now_valid),
            ("x_prev", &mut self.x_prev, &mut self.x_prev_valid),
        ] {
            // Caller memory becomes the vector only where `reserve` would allocate it; other
            // probe kinds keep no points and leave it unused.
            let mut pool = Vec::new();
            if !displacement {
                dec.take_lent(name);
            } else if adopt_vectors(be, dec, name, &mut pool)? {
                *slot = pool.into_iter().next();
            }
            *valid = dec.has(name);
        }
        self.reserve(be)?;
        for (name, slot, valid) in [
            ("x_now", &mut self.x_now, self.x_now_valid),
            ("x_prev", &mut self.x_prev, self.x_prev_valid),
        ] {
            match (valid, slot.take()) {
                (true, Some(v)) => {
                    let mut pool = vec![v];
                    if get_vectors(be, dec, name, &mut pool)? != 1 {
                        return Err(Error::new(
                            Status::LRE_ERR_STATE,
                            format!("{name}: expected one vector"),
                        ));
                    }
                    *slot = pool.into_iter().next();
                }
                (true, None) => {
                    return Err(Error::new(
                        Status::LRE_ERR_STATE,
                        format!("{name}: this probe kind keeps no parameter vectors"),
                    ));
                }
                (false, v) => *slot = v,
            }
        }
        Ok(())
    }
}

fn upload<B: Backend>(be: &B, values: &[f64], out: &mut B::Vector) {
    let data: Vec<B::Elem> = values.iter().map(|v| B::Elem::from_f64(*v)).collect();
    be.vector_from_host(&data, out);
}

/// out ← B·s for the current approximation B = Q·diag(L)·Qᵀ of the basis, or 0 before the
/// first basis. (The reference starts B at the rank-1 (z + Hz)(z + Hz)ᵀ/4 instead, which the
/// basis never held, so its first correction did not match the matrix it was added to.)
pub fn approximation_times<B: Backend>(
    be: &B,
    approx: &mut dyn Approximation<B>,
    s: &B::Vector,
    out: &mut B::Vector,
) {
    if !approx.times(be, s, out) {
        be.scale(0.0, out);
    }
}
