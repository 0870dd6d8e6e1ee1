//! The compression plan: what to do to each layer.
//!
//! One format for every producer and consumer: the command-line flags
//! (`--quantize`, `--prune-patterns`, `--connectivity`) build a plan with
//! only a `[default]` table, a user's `--plan plan.toml` adds per-layer
//! overrides, and the codesign loop (`kerf tune`) writes the same file. The
//! format is documented in `docs/compression.md`:
//!
//! ```toml
//! [default]
//! quant = "int8"            # "f32" | "int8"
//! rounding = "gptq"         # "nearest" | "gptq"
//! observer = "mse"          # "minmax" | "percentile" | "mse" | "kl"
//! patterns = 8              # pattern library size for 3x3 and 5x5 convs; 0 = no pattern pruning
//! connectivity = 0.25       # fraction of 3x3/5x5 kernels removed whole
//! pattern_group = 4         # input channels sharing one pattern (and removed together); 1 = per kernel
//! selection = "obs"         # "obs" (saliency + least-squares refit) | "magnitude"
//! low_rank = 16             # Gemm/MatMul/Conv: rank (whole number) or whitened energy kept (0..1)
//! tucker = [8, 16]          # KxK convs: Tucker-2 ranks (input, output channels): 1x1 → KxK core → 1x1
//! nm = "2:4"                # N:M sparsity of Gemm/MatMul and convs without patterns: N of every M input channels kept; "2:4/16": shared by blocks of 16 output channels (the block-sparse product kernels); "dense": none
//! bias_correction = true     # shift Conv/Gemm biases by the mean output error
//! granularity = "tensor"     # int8 weight steps: "channel" (default) | "tensor"
//! weight_bits = 7            # int8 weight codes within ±(2^(bits-1) - 1): 8 (default) .. 2
//! byte_pairs = "exact"       # "exact": each row's code pairs fit vpmaddubsw's i16 | "any"
//! equalize = true            # cross-layer equalisation of ReLU-joined layers first
//! residual = "int8"          # a residual added to this int8 conv's output on its int8 grid | "f32": as it is; unset: the target decides
//!
//! [[layer]]
//! match = "conv1*"          # glob over layer names: * and ? wildcards
//! quant = "f32"
//! ```
//!
//! A layer's settings are the `[default]` table overridden by every
//! `[[layer]]` entry whose glob matches, in file order. [`Plan::resolve`]
//! checks that every glob matches at least one layer of the model: a plan
//! naming a layer that does not exist is an error, not a silent no-op.

use serde::{Deserialize, Serialize};

use crate::CompressError;

/// The numeric format a layer's weights and input activation are stored in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Unchanged.
    #[default]
    F32,
    /// Weights symmetric int8 per output channel (grid −127…127), the
    /// layer's input activation asymmetric uint8 per tensor.
    Int8,
}

/// How many int8 steps a weight has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// One step per output channel.
    #[default]
    Channel,
    /// One step for the whole tensor (what per-tensor-only hardware and
    /// runtimes take; pair it with `equalize` on depthwise-separable nets).
    Tensor,
}

/// Whether a row's adjacent weight codes, `(2j, 2j + 1)`, may be any two
/// codes or must be an exact byte pair ([`kerf_ir::byte_pairs_exact`]: no
/// `u8 × s8` pair sum past i16), which AVX2's `vpmaddubsw` then multiplies
/// without saturating, at twice the rate of the 16-bit pairs; for convs
/// whose pattern is shared by channel quads also the channel pairs at each
/// tap ([`kerf_ir::channel_pairs_exact`], the integer pattern kernel's).
/// When a plan does not say, the pipeline decides from the target (exact
/// for x86-64 with AVX2 and the micro-kernels but no VNNI, any elsewhere).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BytePairs {
    /// Every code of the grid, in any pair.
    #[default]
    Any,
    /// A pair's second code clamped to the first's partners
    /// ([`kerf_ir::byte_pair_partners`]) as it is rounded, the clamp's
    /// error compensated like any rounding error. Depthwise convs (one
    /// input channel per group), which no byte tile multiplies, stay free.
    Exact,
}

/// How weights are put on the int8 grid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rounding {
    /// Round to nearest, each weight alone.
    Nearest,
    /// GPTQ: column by column, the rounding error of each weight is
    /// compensated in the weights not yet rounded, through the layer's input
    /// Hessian (`../shared/COMPRESSION.md` §2).
    #[default]
    Gptq,
}

/// How an activation's quantisation range is chosen from calibration data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Observer {
    /// The observed minimum and maximum.
    MinMax,
    /// The 0.01 and 99.99 percentiles.
    Percentile,
    /// The clipping range that minimises the mean squared quantisation error
    /// over the observed values.
    #[default]
    Mse,
    /// The clipping range whose quantised histogram is closest to the
    /// observed one in KL divergence (TensorRT's entropy calibration).
    Kl,
}

/// How pruning chooses what to remove, and whether it compensates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Selection {
    /// OBS saliency through the layer's input Hessian, then a least-squares
    /// refit of the kept weights (kerf's method).
    #[default]
    Obs,
    /// Largest magnitudes kept, no compensation (the no-retraining
    /// baseline of the literature; for comparison).
    Magnitude,
}

/// N:M sparsity: of every `m` consecutive input channels (per output
/// channel and kernel tap), `n` weights are kept (NVIDIA's 2:4 is `2:4`).
/// Written `"N:M"` in the plan file (through [`NmSetting`]) and on the
/// command line; `"N:M/B"` makes each block of `B` consecutive output
/// channels keep the same positions (`2:4/16`), the structure the products'
/// block-sparse kernels skip (16 output channels per vector on AVX-512,
/// two vectors on AVX2: `docs/compression.md`, "Block-shared N:M");
/// `"N:MxU"` keeps and drops runs of `U` consecutive input channels
/// together (`2:4x4/16`: two of every four runs of four), the byte quads
/// the integer kernels' dot products take whole (a KxK conv's with its K
/// ordered tap-major).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NmSparsity {
    /// Weights kept per group.
    pub n: usize,
    /// Input channels per group.
    pub m: usize,
    /// Output channels sharing one choice of kept positions (1: each its
    /// own).
    pub block: usize,
    /// Consecutive input channels kept or dropped together (1: each on
    /// its own); `n` and `m` count these runs.
    pub unit: usize,
}

impl NmSparsity {
    /// `n` of every `m`, each output channel choosing its own positions.
    pub const fn per_row(n: usize, m: usize) -> NmSparsity {
        NmSparsity { n, m, block: 1, unit: 1 }
    }

    /// Input channels per group: `m` runs of `unit`.
    pub const fn span(&self) -> usize {
        self.m * self.unit
    }
}

/// The longest run of input channels [`NmSparsity::unit`] takes: a byte
/// quad and its double.
pub const MAX_NM_UNIT: usize = 8;

/// The largest block of output channels sharing N:M positions.
pub const MAX_NM_BLOCK: usize = 64;

/// The plan file's `nm` value: `"N:M"`, or `"dense"` (no N:M; what a
/// `[[layer]]` entry says to exempt layers from a `[default]` N:M).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum NmSetting {
    /// No N:M sparsity.
    Dense,
    /// N of every M kept.
    Sparse(NmSparsity),
}

impl TryFrom<String> for NmSetting {
    type Error = String;
    fn try_from(s: String) -> Result<NmSetting, String> {
        s.parse()
    }
}

impl std::str::FromStr for NmSetting {
    type Err = String;
    fn from_str(s: &str) -> Result<NmSetting, String> {
        match s {
            "dense" => Ok(NmSetting::Dense),
            _ => s.parse().map(NmSetting::Sparse).map_err(|e| format!("{e}, or dense")),
        }
    }
}

impl From<NmSetting> for String {
    fn from(s: NmSetting) -> String {
        match s {
            NmSetting::Dense => "dense".to_string(),
            NmSetting::Sparse(nm) => nm.to_string(),
        }
    }
}

/// The largest group [`NmSparsity`] takes: the OBS choice tries every kept
/// subset of a group (`C(8, 4) = 70` at most), each a Cholesky
/// factorisation of its dropped columns' `H⁻¹` block
/// ([`crate::linalg::obs_cost_of`]).
pub const MAX_NM_GROUP: usize = 8;

impl std::str::FromStr for NmSparsity {
    type Err = String;
    fn from_str(s: &str) -> Result<NmSparsity, String> {
        let bad = || {
            format!(
                "'{s}': expected N:M with 1 <= N < M <= {MAX_NM_GROUP}, e.g. 2:4, optionally xU with \
                 1 <= U <= {MAX_NM_UNIT} consecutive input channels kept together, e.g. 2:4x4, and /B with \
                 1 <= B <= {MAX_NM_BLOCK} output channels sharing the positions, e.g. 2:4/16"
            )
        };
        let (nm, block) = match s.split_once('/') {
            Some((nm, b)) => (nm, b.trim().parse::<usize>().map_err(|_| bad())?),
            None => (s, 1),
        };
        let (nm, unit) = match nm.split_once('x') {
            Some((nm, u)) => (nm, u.trim().parse::<usize>().map_err(|_| bad())?),
            None => (nm, 1),
        };
        let (n, m) = nm.split_once(':').ok_or_else(bad)?;
        let (n, m): (usize, usize) = (n.trim().parse().map_err(|_| bad())?, m.trim().parse().map_err(|_| bad())?);
        let ranges = (1..=MAX_NM_BLOCK).contains(&block) && (1..=MAX_NM_UNIT).contains(&unit);
        if n == 0 || n >= m || m > MAX_NM_GROUP || !ranges {
            return Err(bad());
        }
        Ok(NmSparsity { n, m, block, unit })
    }
}

impl std::fmt::Display for NmSparsity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.n, self.m)?;
        if self.unit > 1 {
            write!(f, "x{}", self.unit)?;
        }
        match self.block {
            1 => Ok(()),
            b => write!(f, "/{b}"),
        }
    }
}

/// `FromStr` with the plan file's spelling, for command-line flags.
macro_rules! parse_as_in_plan {
    ($t:ty, $($name:literal => $v:expr),+) => {
        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<$t, String> {
                match s {
                    $($name => Ok($v),)+
                    _ => Err(format!("'{s}': expected one of {}", [$($name),+].join(", "))),
                }
            }
        }
    };
}
parse_as_in_plan!(Precision, "f32" => Precision::F32, "int8" => Precision::Int8);
parse_as_in_plan!(Granularity, "channel" => Granularity::Channel, "tensor" => Granularity::Tensor);
parse_as_in_plan!(Rounding, "gptq" => Rounding::Gptq, "nearest" => Rounding::Nearest);
parse_as_in_plan!(Selection, "obs" => Selection::Obs, "magnitude" => Selection::Magnitude);
parse_as_in_plan!(BytePairs, "exact" => BytePairs::Exact, "any" => BytePairs::Any);
parse_as_in_plan!(
    Observer,
    "mse" => Observer::Mse,
    "minmax" => Observer::MinMax,
    "percentile" => Observer::Percentile,
    "kl" => Observer::Kl
);

/// Settings of one layer (every field optional in the file; see
/// [`LayerSettings`] for the resolved form).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Numeric format of the weights and input activation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quant: Option<Precision>,
    /// How int8 weights are rounded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rounding: Option<Rounding>,
    /// How the input activation's int8 range is chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observer: Option<Observer>,
    /// Pattern library size (4-tap patterns of 3x3 kernels, 8-tap ones of
    /// 5x5 kernels: `prune::taps`); 0 disables.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patterns: Option<usize>,
    /// Fraction of 3x3/5x5 kernels removed whole, in [0, 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connectivity: Option<f64>,
    /// Consecutive input channels whose kernels share one pattern and are
    /// removed together (1, the default: each kernel its own; 4: the
    /// integer pattern kernel's quads, one byte-quad dot product per tap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern_group: Option<usize>,
    /// How pruned weights are chosen: "obs" (default) or "magnitude".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selection: Option<Selection>,
    /// Low-rank factorisation of Gemm/MatMul and one-group conv weights: a fraction in (0, 1)
    /// of the whitened energy to keep, or a whole number ≥ 1, the rank.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low_rank: Option<f64>,
    /// Tucker-2 of one-group KxK convs: `[r_in, r_out]`, the ranks of the
    /// input and output channel modes (1x1 → KxK core → 1x1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tucker: Option<[usize; 2]>,
    /// N:M sparsity of products and of convs that are not pattern-pruned
    /// (`"dense"`: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nm: Option<NmSetting>,
    /// Bias correction: shift the bias by the compressed layer's mean
    /// output error on the calibration data (Conv and Gemm).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bias_correction: Option<bool>,
    /// int8 weight steps: per output channel (default) or per tensor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granularity: Option<Granularity>,
    /// Bits of the int8 weight codes (2..=8; default 8): 7 keeps them
    /// within ±63, which AVX2's byte tile multiplies exactly, as it does
    /// 8-bit codes with exact byte pairs ([`BytePairs`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_bits: Option<u8>,
    /// Whether each row's adjacent int8 codes must be exact byte pairs
    /// (see [`BytePairs`]; unset: the target decides).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub byte_pairs: Option<BytePairs>,
    /// Cross-layer equalisation before compressing: rescale the channels
    /// between two layers joined by a ReLU so both have the same range
    /// (exact: the function does not change).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub equalize: Option<bool>,
    /// A residual added to this int8 conv's output (`Add(conv, x)`) reads
    /// `x` on the int8 grid the model already quantises it to for another
    /// layer ("int8"), or as it is ("f32", what unset resolves to here;
    /// the pipeline's session decides an unset default for its target):
    /// see [`crate::rewrite::quantize_residuals`]. Only for an int8 layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub residual: Option<Precision>,
}

impl Settings {
    /// These settings with every field `o` gives replaced by `o`'s (a
    /// layer rule over the defaults).
    pub fn overlay(&mut self, o: &Settings) {
        // every field by name, so that a new one cannot be forgotten here
        let Settings {
            quant,
            rounding,
            observer,
            patterns,
            connectivity,
            pattern_group,
            selection,
            low_rank,
            tucker,
            nm,
            bias_correction,
            granularity,
            weight_bits,
            byte_pairs,
            equalize,
            residual,
        } = o;
        self.quant = quant.or(self.quant);
        self.rounding = rounding.or(self.rounding);
        self.observer = observer.or(self.observer);
        self.patterns = patterns.or(self.patterns);
        self.connectivity = connectivity.or(self.connectivity);
        self.pattern_group = pattern_group.or(self.pattern_group);
        self.selection = selection.or(self.selection);
        self.low_rank = low_rank.or(self.low_rank);
        self.tucker = tucker.or(self.tucker);
        self.nm = nm.or(self.nm);
        self.bias_correction = bias_correction.or(self.bias_correction);
        self.granularity = granularity.or(self.granularity);
        self.weight_bits = weight_bits.or(self.weight_bits);
        self.byte_pairs = byte_pairs.or(self.byte_pairs);
        self.equalize = equalize.or(self.equalize);
        self.residual = residual.or(self.residual);
    }
}

/// A per-layer override.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerRule {
    /// Glob over layer names (`*` any run, `?` one character).
    #[serde(rename = "match")]
    pub pattern: String,
    /// The settings it overrides (only those given).
    #[serde(flatten)]
    pub settings: Settings,
}

/// A whole plan: defaults plus ordered per-layer overrides.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Settings of every layer (the `[default]` table).
    #[serde(default)]
    pub default: Settings,
    /// Overrides (the `[[layer]]` entries), applied in order.
    #[serde(default, rename = "layer", skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerRule>,
}

/// The settings one layer ends up with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerSettings {
    /// Numeric format of the weights and input activation.
    pub quant: Precision,
    /// How int8 weights are rounded.
    pub rounding: Rounding,
    /// How the input activation's int8 range is chosen.
    pub observer: Observer,
    /// Pattern library size; 0: no pattern pruning.
    pub patterns: usize,
    /// Fraction of 3x3/5x5 kernels removed whole, in [0, 1).
    pub connectivity: f64,
    /// Input channels per shared pattern (1: per kernel).
    pub pattern_group: usize,
    /// How pruned weights are chosen.
    pub selection: Selection,
    /// 0: off; (0, 1): whitened energy kept; ≥ 1: the rank.
    pub low_rank: f64,
    /// Tucker-2 ranks `[r_in, r_out]` of one-group KxK convs (which then
    /// take it instead of `low_rank`).
    pub tucker: Option<[usize; 2]>,
    /// N:M sparsity (products, and convs without patterns).
    pub nm: Option<NmSparsity>,
    /// Shift the bias by the mean output error (off by default).
    pub bias_correction: bool,
    /// int8 weight steps per channel or per tensor.
    pub granularity: Granularity,
    /// Bits of the int8 weight codes (8, or fewer).
    pub weight_bits: u8,
    /// Whether adjacent int8 codes must be exact byte pairs.
    pub byte_pairs: BytePairs,
    /// Equalise this layer's channel ranges with its neighbours'.
    pub equalize: bool,
    /// A residual added to this conv's output reads its int8 grid (where
    /// the layer is int8).
    pub residual: Precision,
}

impl LayerSettings {
    /// Whether the layer is changed at all.
    pub fn is_lossy(&self) -> bool {
        self.quant != Precision::F32
            || self.patterns > 0
            || self.connectivity > 0.0
            || self.low_rank > 0.0
            || self.tucker.is_some()
            || self.nm.is_some()
    }
}

/// The largest pattern library: every 4-tap pattern of a 3x3 kernel that
/// keeps the centre (C(8,3) = 56). 5x5 libraries are fitted and held to
/// the same bound; the pattern kernel takes layers of at most 32 masks
/// (`kerf_ir::Sparsity::detect`), beyond which a pruned layer runs dense.
pub const MAX_PATTERNS: usize = 56;

impl Plan {
    /// Parses a plan file's text. Errors name the file's problem (unknown
    /// keys and values included).
    pub fn parse(text: &str) -> Result<Plan, CompressError> {
        let plan: Plan = toml::from_str(text).map_err(|e| CompressError::Plan(e.to_string()))?;
        plan.check()?;
        Ok(plan)
    }

    /// The plan as TOML text (what `kerf tune` writes); parses back to an
    /// equal plan.
    pub fn to_toml(&self) -> String {
        // Serialising plain structs of strings and numbers cannot fail.
        toml::to_string(self).unwrap_or_default()
    }

    /// Checks value ranges (the parser checks names and types).
    pub fn check(&self) -> Result<(), CompressError> {
        let all = std::iter::once(("[default]".to_string(), &self.default))
            .chain(self.layers.iter().map(|r| (format!("layer '{}'", r.pattern), &r.settings)));
        for (site, s) in all {
            if let Some(k) = s.patterns {
                if k > MAX_PATTERNS {
                    return Err(CompressError::Plan(format!(
                        "{site}: patterns = {k}, the library has at most {MAX_PATTERNS} 4-tap patterns"
                    )));
                }
            }
            if let Some(r) = s.low_rank {
                if !(r > 0.0 && (r < 1.0 || r.fract() == 0.0)) {
                    return Err(CompressError::Plan(format!(
                        "{site}: low_rank = {r}, expected an energy fraction in (0, 1) or a whole rank >= 1"
                    )));
                }
            }
            if let Some([r_in, r_out]) = s.tucker {
                if r_in == 0 || r_out == 0 {
                    return Err(CompressError::Plan(format!(
                        "{site}: tucker = [{r_in}, {r_out}], expected two ranks >= 1 (input, output channels)"
                    )));
                }
            }
            if let Some(b) = s.weight_bits {
                if !(2..=8).contains(&b) {
                    return Err(CompressError::Plan(format!(
                        "{site}: weight_bits = {b}, expected 2 to 8 (int8 codes within ±(2^(bits-1) - 1))"
                    )));
                }
            }
            if let Some(g) = s.pattern_group {
                if !(1..=64).contains(&g) {
                    return Err(CompressError::Plan(format!(
                        "{site}: pattern_group = {g}, expected 1 to 64 input channels sharing a pattern"
                    )));
                }
            }
            if let Some(c) = s.connectivity {
                if !(0.0..1.0).contains(&c) {
                    return Err(CompressError::Plan(format!(
                        "{site}: connectivity = {c}, expected a fraction in [0, 1)"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The settings of every named layer, in the order given. Every
    /// `[[layer]]` glob must match at least one of `layers`.
    pub fn resolve(&self, layers: &[&str]) -> Result<Vec<LayerSettings>, CompressError> {
        self.check()?;
        for rule in &self.layers {
            if !layers.iter().any(|l| glob(&rule.pattern, l)) {
                return Err(CompressError::Plan(format!(
                    "layer '{}' matches no compressible layer of the model (it has: {})",
                    rule.pattern,
                    layers.join(", ")
                )));
            }
        }
        Ok(layers.iter().map(|l| self.settings_of(l)).collect())
    }

    fn settings_of(&self, layer: &str) -> LayerSettings {
        let mut s = self.default.clone();
        for rule in self.layers.iter().filter(|r| glob(&r.pattern, layer)) {
            s.overlay(&rule.settings);
        }
        LayerSettings {
            quant: s.quant.unwrap_or_default(),
            rounding: s.rounding.unwrap_or_default(),
            observer: s.observer.unwrap_or_default(),
            patterns: s.patterns.unwrap_or(0),
            connectivity: s.connectivity.unwrap_or(0.0),
            pattern_group: s.pattern_group.unwrap_or(1),
            selection: s.selection.unwrap_or_default(),
            low_rank: s.low_rank.unwrap_or(0.0),
            tucker: s.tucker,
            nm: match s.nm {
                Some(NmSetting::Sparse(nm)) => Some(nm),
                Some(NmSetting::Dense) | None => None,
            },
            bias_correction: s.bias_correction.unwrap_or(false),
            granularity: s.granularity.unwrap_or_default(),
            weight_bits: s.weight_bits.unwrap_or(8),
            byte_pairs: s.byte_pairs.unwrap_or_default(),
            equalize: s.equalize.unwrap_or(false),
            residual: s.residual.unwrap_or_default(),
        }
    }
}

/// `*` matches any run of characters, `?` exactly one; everything else
/// matches itself.
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // classic two-pointer match with backtracking to the last star
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (p, n, want) in [
            ("conv*", "conv1", true),
            ("conv*", "fc", false),
            ("*", "", true),
            ("c?nv", "conv", true),
            ("c?nv", "cnv", false),
            ("*.1", "layer.1", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
        ] {
            assert_eq!(glob(p, n), want, "{p} on {n}");
        }
    }

    #[test]
    fn overrides_apply_in_order() {
        let plan = Plan::parse(
            "[default]\nquant = \"int8\"\npatterns = 8\n\n[[layer]]\nmatch = \"conv1\"\nquant = \"f32\"\n\n[[layer]]\nmatch = \"conv*\"\nconnectivity = 0.25\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let s = plan.resolve(&["conv1", "conv2", "fc"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s[0].quant, Precision::F32);
        assert_eq!(s[0].connectivity, 0.25);
        assert_eq!(s[1].quant, Precision::Int8);
        assert_eq!(s[2].connectivity, 0.0);
        assert_eq!(s[2].patterns, 8);
    }

    #[test]
    fn a_layer_can_be_exempted_from_a_default_nm() {
        let plan = Plan::parse("[default]\nnm = \"2:4\"\n\n[[layer]]\nmatch = \"fc1\"\nnm = \"dense\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let s = plan.resolve(&["fc1", "fc2"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s[0].nm, None);
        assert_eq!(s[1].nm, Some(NmSparsity::per_row(2, 4)));
        assert_eq!(Plan::parse(&plan.to_toml()).unwrap_or_else(|e| panic!("{e}")), plan);
    }

    #[test]
    fn round_trips() {
        let text =
            "[default]\nquant = \"int8\"\nrounding = \"nearest\"\nnm = \"2:4\"\n\n[[layer]]\nmatch = \"fc*\"\nquant = \"f32\"\n";
        let plan = Plan::parse(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Plan::parse(&plan.to_toml()).unwrap_or_else(|e| panic!("{e}")), plan);
    }

    #[test]
    fn bad_plans_are_errors() {
        for (text, needle) in [
            ("[default]\nquant = \"int4\"\n", "int4"),
            ("[default]\nqaunt = \"int8\"\n", "qaunt"),
            ("[default]\nconnectivity = 1.5\n", "connectivity"),
            ("[default]\npattern_group = 0\n", "pattern_group"),
            ("[default]\npatterns = 99\n", "patterns"),
            ("[default]\nlow_rank = 2.5\n", "low_rank"),
            ("[default]\nlow_rank = 0\n", "low_rank"),
            ("[default]\nnm = \"4:2\"\n", "4:2"),
            ("[default]\ntucker = [0, 4]\n", "tucker"),
            ("[default]\ntucker = [4]\n", "tucker"),
            ("[default]\nnm = \"2:16\"\n", "2:16"),
            ("[default]\nnm = \"two\"\n", "dense"),
        ] {
            let e = Plan::parse(text).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(needle), "{text:?} gave {e:?}");
        }
        let plan = Plan::parse("[[layer]]\nmatch = \"nope\"\nquant = \"int8\"\n").unwrap_or_else(|e| panic!("{e}"));
        let e = plan.resolve(&["conv1"]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("nope") && e.contains("conv1"), "{e}");
    }
}
