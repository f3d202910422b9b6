//! A low-rank correction: what a curvature hands the basis on an update step. Shared by both
//! families (neither depends on the other; the optimizer carries it from one to the other).

/// A low-rank correction Y·diag(α)·Zᵀ (Z absent: symmetric Y·diag(α)·Yᵀ), columns oldest first.
pub struct Correction<'a, V> {
    pub columns: Vec<&'a V>,
    pub alpha: Vec<f64>,
    pub z: Option<Vec<&'a V>>,
    /// Which column, if any, is this step's gradient (lets a basis project it for free).
    pub gradient_column: Option<usize>,
}
