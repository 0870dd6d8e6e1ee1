//! The epilogue assembled kernels apply in their stores, as data: the x86
//! kernels' ([`super::avx2`], [`super::avx512`]: GEMM, integer and pattern
//! tiles, depthwise passes, one-pixel products) and AArch64's pattern tile
//! ([`super::neon`]; its `sdot` tile and product store sums only). Each
//! kernel emits these operations in this order, the order of the Cranelift
//! epilogues (`lower::matmul::finish`, `lower::epilogue`), so every form
//! gives the same bits.

/// The store's epilogue: `clamp(acc · scale + addend·addend_scale +
/// residual)` with each part optional, the order and operations of the
/// Cranelift tiles (`lower::matmul::finish`, `lower::epilogue`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TileEpi {
    /// Factor the accumulators are multiplied by first (`None`: no multiply).
    pub scale: Option<f32>,
    /// A tensor read through the `bias` argument (then not a row bias).
    pub addend: Option<Addend>,
    /// Add the residual tensor (the `residual` argument, output layout).
    pub residual: bool,
    /// Relu/Clip applied last, if any.
    pub clamp: Option<Clamp>,
    /// HardSwish applied last, `x·min(max(x·f32(1/6) + 0.5, 0), 1)` (the
    /// operations of `lower::epilogue`; with no `clamp`).
    pub hardswish: bool,
    /// The integer tiles' scales and biases are all finite: with no
    /// residual no NaN reaches a requantising store, which then skips the
    /// step that carries one (`avx2::requantise`).
    pub finite: bool,
}

/// A tensor added at the store: one value per row (`per_column` false,
/// broadcast) or one per column, rows `row` bytes apart, times `scale`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Addend {
    /// One value per column (a full row vector) instead of one broadcast value per row.
    pub per_column: bool,
    /// Bytes between the addend's rows.
    pub row: usize,
    /// Factor the addend is multiplied by (no multiply when 1).
    pub scale: f32,
}

/// The vector Relu/Clip of `lower::epilogue` as compare-selects: `lo`
/// (`x < lo ? lo : x`, then `+ 0.0` when `lo` is zero, so `-0` becomes
/// `+0`) and an optional `hi` (`hi < y ? hi : y`). `vmaxps a, lo, x` and
/// `vminps a, hi, y` are exactly these selects, NaN passing through.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clamp {
    /// Lower bound (0 for Relu).
    pub lo: f32,
    /// Upper bound, if any (Clip).
    pub hi: Option<f32>,
}

impl Clamp {
    /// Whether these selects (`+0.0` added after a `+0` lower bound) give
    /// `fmax`/`fmin`'s bits ([`kerf_ir::op::Epilogue::clamp_by_selects`]).
    /// The tiles and Cranelift's clamp take only such bounds, so every form
    /// (and AArch64's `fmax`/`fmin`) agrees.
    pub fn selects_equal_fmax_fmin(self) -> bool {
        kerf_ir::op::Epilogue::clamp_by_selects(self.lo, self.hi)
    }
}
