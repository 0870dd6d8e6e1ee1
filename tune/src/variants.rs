//! The per-layer variants the search measures ([`variants`]), their
//! order of harshness ([`harsher`]) and the low-rank plan of the report.

use kerf_compress::layer;
use kerf_compress::plan::{LayerRule, Settings};
use kerf_compress::{NmSetting, NmSparsity, Plan, Precision};

use crate::options::TuneOptions;
use crate::search::exact;

/// A per-layer compression choice.
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    /// Short name (`int8`, `p8c25`, `rank16+int8`, ...).
    pub name: String,
    /// The compression settings the layer gets.
    pub settings: Settings,
}

impl Variant {
    /// The variant over the settings `base` ([`TuneOptions::base`]): its
    /// own settings win, and the search's dimensions (precision, patterns,
    /// connectivity, pattern group, low rank, Tucker, N:M) and
    /// equalisation are its alone; the int8 settings of `base` (rounding,
    /// observer, granularity, weight bits, byte pairs) reach it only if it
    /// quantises, the pruning one (selection) only if it prunes.
    pub(crate) fn on(mut self, base: &Settings) -> Variant {
        let mut s = base.clone();
        (s.quant, s.patterns, s.connectivity, s.pattern_group) = (None, None, None, None);
        (s.low_rank, s.tucker, s.nm, s.equalize) = (None, None, None, None);
        if self.settings.quant != Some(Precision::Int8) {
            (s.rounding, s.observer, s.granularity, s.weight_bits, s.byte_pairs) = (None, None, None, None, None);
        }
        let prunes = self.settings.patterns.is_some() || matches!(self.settings.nm, Some(NmSetting::Sparse(_)));
        if !prunes {
            s.selection = None;
        }
        s.overlay(&self.settings);
        self.settings = s;
        self
    }
}

/// [`variants`] over the options' base settings.
pub(crate) fn variants_for(site: &layer::Site, opts: &TuneOptions) -> Vec<Variant> {
    variants(site).into_iter().map(|v| v.on(&opts.base)).collect()
}

pub(crate) fn variant(name: &str, quant: bool, patterns: usize, connectivity: f64, rank: f64) -> Variant {
    Variant {
        name: name.to_string(),
        settings: Settings {
            quant: Some(if quant { Precision::Int8 } else { Precision::F32 }),
            patterns: (patterns > 0).then_some(patterns),
            connectivity: (connectivity > 0.0).then_some(connectivity),
            low_rank: (rank > 0.0).then_some(rank),
            ..Settings::default()
        },
    }
}

/// The variants tried for a layer, each family from the mildest up: int8
/// for every layer; for 3x3 and 5x5 convs, pattern libraries of 8 and 4 patterns,
/// each with 25% or 50% of the kernels removed, alone and with int8, and
/// for such convs of at least 8 input channels the library of 8 with int8
/// and each pattern shared by a quad of input channels (`q4`:
/// `pattern_group = 4`, what the integer pattern kernel runs); for
/// products and one-group convs, rank min(N, K)/4 (where that pays,
/// `kerf_compress::price::low_rank_pays`), alone and with int8; for one-group KxK convs, Tucker-2 at a
/// quarter of the input and output channels (where both are reduced and
/// that pays, `kerf_compress::price::tucker_pays`), alone and with int8; for products and convs without
/// patterns whose input channels come in fours, 2:4 sparsity (smaller
/// weights, not faster code: no kernel skips per-row zeros), alone and with
/// int8, and for products and pointwise convs (one group, unit stride,
/// unpadded) 2:4 shared by blocks of the block-sparse
/// kernels' width (`kerf_targets::lower::matmul::SPARSE_BLOCK` output
/// channels; f32 only: int8 products run the dense integer kernels). (Rank /8 was a variant too: tuned on the
/// training split, the trained models' chosen plans then lost 1.1–1.3
/// points on their test sets, past a 1-point budget; the training data's
/// top-1 hides what a rank that low costs on unseen data.)
pub fn variants(site: &layer::Site) -> Vec<Variant> {
    let mut v = vec![variant("int8", true, 0, 0.0, 0.0)];
    if kerf_compress::prune::applies(site) {
        for library in [8, 4] {
            for removed in [0.25, 0.5] {
                let name = format!("p{library}c{}", (removed * 100.0) as usize);
                v.push(variant(&name, false, library, removed, 0.0));
                v.push(variant(&format!("{name}+int8"), true, library, removed, 0.0));
            }
        }
        if site.cols / site.kernel_area().max(1) >= 8 {
            for removed in [0.25, 0.5] {
                let mut q = variant(&format!("p8c{}q4+int8", (removed * 100.0) as usize), true, 8, removed, 0.0);
                q.settings.pattern_group = Some(4);
                v.push(q);
            }
        }
    }
    if site.groups() == 1 {
        let r = (site.rows.min(site.cols) / 4).max(1);
        if kerf_compress::price::low_rank_pays(site, r) {
            v.push(variant(&format!("rank{r}"), false, 0, 0.0, r as f64));
            v.push(variant(&format!("rank{r}+int8"), true, 0, 0.0, r as f64));
        }
        let area = site.kernel_area();
        let c = site.cols / area.max(1);
        let [r_in, r_out] = kerf_compress::tucker::ranks(c, site.rows, area, [(c / 4).max(1), (site.rows / 4).max(1)]);
        // (both modes reduced: a first 1x1 conv over all input channels,
        // e.g. of a one-channel image, only rescales them)
        let thinner = r_in < c && r_out < site.rows;
        if area > 1 && thinner && kerf_compress::price::tucker_pays(site, [r_in, r_out], 1, 1) {
            for int8 in [false, true] {
                let mut t =
                    variant(&format!("tucker{r_in},{r_out}{}", if int8 { "+int8" } else { "" }), int8, 0, 0.0, 0.0);
                t.settings.tucker = Some([r_in, r_out]);
                v.push(t);
            }
        }
    }
    let two_four = NmSparsity::per_row(2, 4);
    if !kerf_compress::prune::applies(site) && kerf_compress::nm::applies(site, two_four) {
        for int8 in [false, true] {
            let mut t = variant(if int8 { "nm2:4+int8" } else { "nm2:4" }, int8, 0, 0.0, 0.0);
            t.settings.nm = Some(NmSetting::Sparse(two_four));
            v.push(t);
        }
        if block_sparse_runs(site) {
            let shared = NmSparsity { block: kerf_targets::lower::matmul::SPARSE_BLOCK, ..two_four };
            let mut t = variant(&format!("nm{shared}"), false, 0, 0.0, 0.0);
            t.settings.nm = Some(NmSetting::Sparse(shared));
            v.push(t);
        }
    }
    // block-shared 2:4 in byte quads: the integer kernels' listed steps
    let quads = NmSparsity { block: 16, unit: 4, ..two_four };
    if lists_runs(site) && kerf_compress::nm::applies(site, quads) {
        let mut t = variant(&format!("nm{quads}+int8"), true, 0, 0.0, 0.0);
        t.settings.nm = Some(NmSetting::Sparse(quads));
        v.push(t);
    }
    v
}

/// Whether the integer kernels run the layer's block-shared N:M in byte
/// quads on their listed steps (`lower/qconv/listed.rs`): products (the
/// one-pixel products) and convs (the byte tiles; a KxK conv's K
/// tap-major, so that four channels at one tap are a quad).
fn lists_runs(site: &layer::Site) -> bool {
    use kerf_compress::layer::Kind;
    matches!(&site.kind, Kind::MatMulKn | Kind::MatMulNk | Kind::Conv { .. })
}

/// Whether the code generator has block-sparse kernels for this layer at
/// 2:4/16 (`lower/matmul/sparse.rs`): products, and pointwise convs (one
/// group, unit stride, unpadded) of at least 16 output channels in whole
/// quads and 24 input channels (12 kept, `conv_lanes::MIN_SPARSE_STEPS`)
/// on the MatMul engine's tiles. (The plane's scratch limit and the
/// epilogue are the code generator's to check; the search measures.)
fn block_sparse_runs(site: &layer::Site) -> bool {
    use kerf_compress::layer::Kind;
    match &site.kind {
        Kind::MatMulKn | Kind::MatMulNk => true,
        Kind::Conv { group, kernel, strides, pads, .. } => {
            *group == 1
                && kernel.iter().chain(strides).all(|&d| d == 1)
                && pads.iter().all(|&p| p == 0)
                && site.rows >= 16
                && site.rows.is_multiple_of(4)
                && site.cols >= 24
        }
        _ => false,
    }
}

/// Whether `b` compresses at least as hard as `a` in every respect (int8
/// over f32, a smaller pattern library, more kernels removed, patterns
/// shared by at least as many input channels, a lower
/// rank, lower Tucker-2 ranks, a smaller N:M fraction kept, N:M positions
/// shared by more output channels). The per-layer sweep skips `b` when `a` alone already misses the
/// budget: losses grow with each of these (the assumption every
/// accuracy-aware search makes). Under a tight budget most of a sensitive
/// layer's variants go unmeasured.
pub(crate) fn harsher(b: &Settings, a: &Settings) -> bool {
    let int8 = |s: &Settings| s.quant == Some(Precision::Int8);
    let library = |s: &Settings| s.patterns.unwrap_or(usize::MAX);
    let removed = |s: &Settings| s.connectivity.unwrap_or(0.0);
    let group = |s: &Settings| s.pattern_group.unwrap_or(1);
    let rank = |s: &Settings| s.low_rank.unwrap_or(f64::INFINITY);
    let tucker = |s: &Settings| s.tucker.unwrap_or([usize::MAX; 2]);
    let kept = |s: &Settings| match s.nm {
        Some(NmSetting::Sparse(nm)) => nm.n as f64 / nm.m as f64,
        _ => 1.0,
    };
    let block = |s: &Settings| match s.nm {
        Some(NmSetting::Sparse(nm)) => nm.block,
        _ => 1,
    };
    let unit = |s: &Settings| match s.nm {
        Some(NmSetting::Sparse(nm)) => nm.unit,
        _ => 1,
    };
    let (tb, ta) = (tucker(b), tucker(a));
    (int8(b) || !int8(a))
        && library(b) <= library(a)
        && removed(b) >= removed(a)
        && group(b) >= group(a)
        && rank(b) <= rank(a)
        && tb[0] <= ta[0]
        && tb[1] <= ta[1]
        && kept(b) <= kept(a)
        && block(b) >= block(a)
        && unit(b) >= unit(a)
}

/// Every product at the rank its per-layer variant uses (min(N, K)/4),
/// where that is cheaper, over the options' base settings.
pub(crate) fn low_rank_everywhere(sites: &[layer::Site], opts: &TuneOptions) -> Plan {
    let layers = sites
        .iter()
        .filter_map(|site| {
            let v = variants_for(site, opts)
                .into_iter()
                .find(|v| v.settings.low_rank.is_some() && v.settings.quant != Some(Precision::Int8))?;
            Some(LayerRule { pattern: exact(&site.layer), settings: v.settings })
        })
        .collect();
    Plan { default: Settings::default(), layers }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3x3 conv layer of `c` input and 8 output channels.
    fn conv_site(c: usize) -> layer::Site {
        let w = vec!["0.5"; 8 * c * 9].join(",");
        let src = format!(
            "graph \"g\"\n  input %0 \"x\": f32[1,{c},6,6]\n  const %1 \"w\": f32[8,{c},3,3] = [{w}]\n  \
             %2 = Conv{{kernel=[3,3], strides=[1,1], dilations=[1,1], pads=[1,1,1,1], group=1, layer=\"l\"}}(%0, %1): f32[1,8,6,6] @\"l\"\n  \
             output \"y\" = %2\n"
        );
        let g = kerf_ir::text::parse(&src).unwrap_or_else(|e| panic!("{e}"));
        layer::sites(&g).remove(0)
    }

    /// A 1x1 conv of `c` to 32 channels, with `stride`.
    fn pointwise_site(c: usize, stride: usize) -> layer::Site {
        let w = vec!["0.5"; 32 * c].join(",");
        let o = 8 / stride;
        let src = format!(
            "graph \"g\"\n  input %0 \"x\": f32[1,{c},8,8]\n  const %1 \"w\": f32[32,{c},1,1] = [{w}]\n  \
             %2 = Conv{{kernel=[1,1], strides=[{stride},{stride}], dilations=[1,1], pads=[0,0,0,0], group=1, layer=\"l\"}}(%0, %1): f32[1,32,{o},{o}] @\"l\"\n  \
             output \"y\" = %2\n"
        );
        let g = kerf_ir::text::parse(&src).unwrap_or_else(|e| panic!("{e}"));
        layer::sites(&g).remove(0)
    }

    /// Block-shared 2:4 is a variant where the code generator skips its
    /// zeros: a unit-stride pointwise conv of 24 input channels or more,
    /// not one of 16 (8 kept), a strided one or a 3x3 conv.
    #[test]
    fn block_shared_nm_variants_where_kernels_skip_the_blocks() {
        let has = |site: &layer::Site| variants(site).iter().any(|v| v.name == "nm2:4/16");
        assert!(has(&pointwise_site(24, 1)));
        assert!(!has(&pointwise_site(16, 1)) && !has(&pointwise_site(24, 2)) && !has(&conv_site(16)));
        assert!(variants(&pointwise_site(24, 2)).iter().any(|v| v.name == "nm2:4"), "per-row 2:4 stays a size variant");
    }

    #[test]
    fn quad_pattern_variants_for_3x3_convs_of_eight_channels_and_more() {
        let names = |c| variants(&conv_site(c)).into_iter().map(|v| v.name).collect::<Vec<_>>();
        let quads = |c| names(c).into_iter().filter(|n| n.contains("q4")).collect::<Vec<_>>();
        assert_eq!(quads(16), ["p8c25q4+int8", "p8c50q4+int8"]);
        assert!(quads(4).is_empty() && names(4).contains(&"p8c25+int8".to_string()));
        let q = variants(&conv_site(8)).into_iter().find(|v| v.name == "p8c50q4+int8").expect("a quad variant");
        let s = &q.settings;
        assert_eq!(
            (s.pattern_group, s.patterns, s.connectivity, s.quant),
            (Some(4), Some(8), Some(0.5), Some(Precision::Int8))
        );
    }

    /// The base settings reach every variant, their int8 ones only the
    /// variants that quantise; a variant's own choices win.
    #[test]
    fn base_settings_reach_the_variants_int8_ones_only_the_int8_variants() {
        use kerf_compress::plan::{BytePairs, Observer, Selection};
        let base = Settings {
            weight_bits: Some(7),
            byte_pairs: Some(BytePairs::Any),
            observer: Some(Observer::Kl),
            selection: Some(Selection::Magnitude),
            patterns: Some(4),
            ..Settings::default()
        };
        let int8 = variant("", true, 8, 0.25, 0.0).on(&base).settings;
        let f32 = variant("", false, 8, 0.25, 0.0).on(&base).settings;
        assert_eq!(
            (int8.weight_bits, int8.byte_pairs, int8.observer),
            (Some(7), Some(BytePairs::Any), Some(Observer::Kl))
        );
        assert_eq!((f32.weight_bits, f32.byte_pairs, f32.observer), (None, None, None));
        assert_eq!((int8.selection, f32.selection), (Some(Selection::Magnitude), Some(Selection::Magnitude)));
        let rank = variant("", false, 0, 0.0, 4.0).on(&base).settings;
        assert_eq!(rank.selection, None, "selection reaches only the variants that prune");
        assert_eq!((int8.patterns, f32.patterns), (Some(8), Some(8)), "the variant's own choice wins");
        let plain = variant("", true, 0, 0.0, 0.0).on(&base).settings;
        assert_eq!((plain.patterns, plain.weight_bits), (None, Some(7)), "the search's dimensions are the variant's");
        assert_eq!(variant("", true, 0, 0.0, 0.0).on(&Settings::default()).settings.weight_bits, None);
    }

    #[test]
    fn harsher_variants_compress_at_least_as_hard_in_every_respect() {
        let v = |q, p, c, r| variant("", q, p, c, r).settings;
        let int8 = v(true, 0, 0.0, 0.0);
        let (p8c25, p8c50, p4c25) = (v(false, 8, 0.25, 0.0), v(false, 8, 0.5, 0.0), v(false, 4, 0.25, 0.0));
        assert!(harsher(&p8c50, &p8c25) && harsher(&p4c25, &p8c25) && harsher(&v(true, 8, 0.25, 0.0), &p8c25));
        assert!(!harsher(&p8c25, &p8c50) && !harsher(&p8c25, &int8) && !harsher(&int8, &p8c25));
        assert!(!harsher(&p4c25, &p8c50) && !harsher(&p8c50, &p4c25));
        let quads = |mut s: Settings| {
            s.pattern_group = Some(4);
            s
        };
        let (q8c25, q8c50) = (quads(v(true, 8, 0.25, 0.0)), quads(v(true, 8, 0.5, 0.0)));
        assert!(harsher(&q8c25, &v(true, 8, 0.25, 0.0)) && harsher(&q8c50, &q8c25) && harsher(&q8c50, &p8c50));
        assert!(!harsher(&v(true, 8, 0.25, 0.0), &q8c25) && !harsher(&q8c25, &p8c50));
        assert!(harsher(&v(false, 0, 0.0, 8.0), &v(false, 0, 0.0, 16.0)));
        assert!(!harsher(&v(false, 0, 0.0, 16.0), &v(false, 0, 0.0, 8.0)));
        assert!(harsher(&v(true, 0, 0.0, 8.0), &int8) && !harsher(&v(false, 0, 0.0, 8.0), &int8));
        let with = |mut s: Settings, tucker: Option<[usize; 2]>, nm: Option<(usize, usize)>| {
            s.tucker = tucker;
            s.nm = nm.map(|(n, m)| NmSetting::Sparse(NmSparsity::per_row(n, m)));
            s
        };
        let (t8, t4) =
            (with(v(false, 0, 0.0, 0.0), Some([8, 16]), None), with(v(false, 0, 0.0, 0.0), Some([4, 16]), None));
        assert!(harsher(&t4, &t8) && !harsher(&t8, &t4) && !harsher(&t8, &int8) && !harsher(&int8, &t8));
        let (nm24, nm14) =
            (with(v(false, 0, 0.0, 0.0), None, Some((2, 4))), with(v(true, 0, 0.0, 0.0), None, Some((1, 4))));
        assert!(harsher(&nm14, &nm24) && !harsher(&nm24, &nm14) && harsher(&nm14, &int8) && !harsher(&int8, &nm24));
        // positions shared by a block of output channels: harsher than each its own
        let mut nm24b = nm24.clone();
        nm24b.nm = Some(NmSetting::Sparse(NmSparsity { block: 16, ..NmSparsity::per_row(2, 4) }));
        assert!(harsher(&nm24b, &nm24) && !harsher(&nm24, &nm24b) && !harsher(&nm24b, &nm14));
        // positions in runs of four input channels: harsher than one by one
        let mut nm24q = nm24b.clone();
        nm24q.nm =
            Some(NmSetting::Sparse(NmSparsity { unit: 4, ..NmSparsity { block: 16, ..NmSparsity::per_row(2, 4) } }));
        assert!(harsher(&nm24q, &nm24b) && !harsher(&nm24b, &nm24q));
    }

    /// Block-shared 2:4 in quads with int8 is a variant where the integer
    /// kernels list their steps: convs (pointwise at any stride, 3x3) of
    /// 16 input channels and more, not of 8.
    #[test]
    fn quad_nm_variants_for_int8_convs() {
        let has = |site: &layer::Site| variants(site).iter().any(|v| v.name == "nm2:4x4/16+int8");
        assert!(has(&pointwise_site(16, 1)) && has(&pointwise_site(32, 2)) && has(&conv_site(16)));
        assert!(!has(&pointwise_site(8, 1)) && !has(&conv_site(8)));
        let t = variants(&pointwise_site(16, 1)).into_iter().find(|v| v.name == "nm2:4x4/16+int8").expect("variant");
        assert_eq!(t.settings.quant, Some(Precision::Int8));
    }
}
