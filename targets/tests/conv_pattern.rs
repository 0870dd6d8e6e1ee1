#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The pattern-sparse conv kernel (`lower/conv_pattern.rs`) against the
//! reference evaluator: weights whose kernels keep one of a few tap masks
//! (4-tap shapes with and without the centre, single taps, removed
//! kernels), on awkward widths (a full 16-pixel block plus a partial
//! vector), padding, dilation, 5x5 kernels and batches; every CPU preset
//! the host runs, and AArch64 `dotprod` (the NEON register tiles) and
//! `baseline` (the 128-bit passes) under qemu. Tolerance 1e-5 + 1e-5 *
//! max|ref|.

mod common;
use common::cross::AARCH64;
use common::{close, list, reference, run, t, xs};
use kerf_targets::{compile_object, CompileOptions};

/// A `[o, c, k, k]` weight whose kernel `(o, c)` keeps `masks[(o*c + c) % len]`.
fn pruned(o: usize, c: usize, k: usize, masks: &[u32]) -> Vec<f32> {
    let vals = xs(o * c * k * k + 5);
    let mut w = vec![0f32; o * c * k * k];
    for oi in 0..o {
        for ci in 0..c {
            let m = masks[(oi * c + ci) % masks.len()];
            for tap in 0..k * k {
                let i = (oi * c + ci) * k * k + tap;
                if m & (1 << tap) != 0 {
                    w[i] = vals[i + 5] * 0.3 + 0.05;
                }
            }
        }
    }
    w
}

/// One pattern conv: input shape, output channels, kernel size, padding,
/// dilation, stride, the masks its kernels keep in turn, and a fused
/// epilogue (`ConvFused`'s activation attributes, with a residual input).
struct Shape {
    x: [usize; 4],
    o: usize,
    k: usize,
    pad: usize,
    dil: usize,
    st: usize,
    masks: Vec<u32>,
    epi: Option<&'static str>,
}

impl Shape {
    fn new(x: [usize; 4], o: usize, k: usize, (pad, dil, st): (usize, usize, usize), masks: &[u32]) -> Shape {
        Shape { x, o, k, pad, dil, st, masks: masks.to_vec(), epi: None }
    }

    fn fused(self, act: &'static str) -> Shape {
        Shape { epi: Some(act), ..self }
    }

    fn name(&self) -> String {
        let Shape { x, o, k, pad, dil, st, .. } = self;
        format!("pattern conv {x:?} o{o} k{k} pad{pad} dil{dil} stride{st} {:?}", self.epi)
    }

    /// The conv's graph text and its inputs (the residual second).
    fn graph(&self) -> (String, Vec<kerf_ir::Tensor>) {
        let Shape { x, o, k, pad, dil, st, .. } = *self;
        let [n, c, h, wd] = x;
        let oh = (h + 2 * pad - dil * (k - 1) - 1) / st + 1;
        let ow = (wd + 2 * pad - dil * (k - 1) - 1) / st + 1;
        let w = pruned(o, c, k, &self.masks);
        assert!(kerf_ir::Sparsity::detect(&t(&[o, c, k, k], &w)).is_some(), "the weight must read as pattern-pruned");
        let b: Vec<f32> = (0..o).map(|i| 0.1 * i as f32 - 0.3).collect();
        let attrs = format!(
            "kernel=[{k},{k}], strides=[{st},{st}], dilations=[{dil},{dil}], pads=[{pad},{pad},{pad},{pad}], group=1, layer=\"c\""
        );
        let out = format!("f32[{n},{o},{oh},{ow}]");
        let (res_in, op) = match self.epi {
            None => (String::new(), format!("Conv{{{attrs}}}(%0, %1, %2)")),
            Some(act) => (
                format!("  input %9 \"r\": {out}\n"),
                format!("ConvFused{{{attrs}, {act}, residual=true}}(%0, %1, %2, %9)"),
            ),
        };
        let text = format!(
            "graph \"p\"\n  input %0 \"x\": f32[{n},{c},{h},{wd}]\n{res_in}  const %1 \"w\": f32[{o},{c},{k},{k}] = {}\n  \
             const %2 \"b\": f32[{o}] = {}\n  %3 = {op}: {out} @\"c\"\n  output \"y\" = %3\n",
            list(&w),
            list(&b)
        );
        let mut ins = vec![t(&x, &xs(n * c * h * wd))];
        if self.epi.is_some() {
            let r: Vec<f32> = xs(n * o * oh * ow + 3)[3..].iter().map(|v| v - 0.2).collect();
            ins.push(t(&[n, o, oh, ow], &r));
        }
        (text, ins)
    }

    /// Whether AArch64 without micro-kernels runs it on the 128-bit
    /// passes (stride 1, planes of 64 pixels and more), which sum in the
    /// tiles' order.
    fn on_passes(&self) -> bool {
        let [_, _, h, w] = self.x;
        let span = self.dil * (self.k - 1);
        self.st == 1 && (h + 2 * self.pad - span) * (w + 2 * self.pad - span) >= 64
    }
}

/// Every preset the host runs against the reference.
fn check(s: &Shape) {
    let (text, ins) = s.graph();
    let g = kerf_ir::text::parse(&text).unwrap();
    let want = reference(&g, &ins).remove(0);
    for cpu in ["native", "baseline"] {
        let got = run(&text, &ins, cpu).remove(0);
        close(&format!("{} ({cpu})", s.name()), &got, &want, 1e-5, 1e-5);
    }
}

const CENTRE4: u32 = 0b000_111_010; // centre, its left and right, top middle
const CORNERS: u32 = 0b001_010_101; // three corners and the centre
const OFFCENTRE: u32 = 0b110_100_000;
const SINGLE: u32 = 0b000_010_000;
const MASKS: [u32; 5] = [CENTRE4, CORNERS, OFFCENTRE, SINGLE, 0];
/// With 12 input channels, filters keep from 1 to 3 of their kernels.
const UNEVEN: [u32; 7] = [CENTRE4, 0, 0, CORNERS, 0, 0, SINGLE];
const FIVE: [u32; 4] = [0b1_0000_0100_0110_0010_0000, 1 << 12, 0b11 << 23, 0];

/// Stride 1, 3x3: a 16-pixel block + 3, a batch of 2 with one 8-pixel
/// rest, no padding, dilation 2, planes under 64 pixels (register tiles
/// where the target has them, dense kernels otherwise), more input
/// channels than one block of a tile, filters of unequal length (threads
/// split them by work: `lower/conv_pattern/work.rs`).
fn stride_one() -> Vec<Shape> {
    vec![
        Shape::new([1, 5, 7, 19], 6, 3, (1, 1, 1), &MASKS),
        Shape::new([2, 3, 9, 8], 4, 3, (1, 1, 1), &MASKS),
        Shape::new([1, 4, 6, 21], 3, 3, (0, 1, 1), &MASKS),
        Shape::new([1, 3, 11, 13], 5, 3, (2, 2, 1), &MASKS),
        Shape::new([1, 6, 5, 6], 4, 3, (1, 1, 1), &MASKS),
        Shape::new([2, 80, 7, 7], 5, 3, (1, 1, 1), &MASKS),
        Shape::new([1, 12, 9, 10], 9, 3, (1, 1, 1), &UNEVEN),
        // fused epilogues (the tiles' own, or a second pass), and two
        // blocks of input channels on a plane the 128-bit passes take
        Shape::new([1, 6, 8, 13], 5, 3, (1, 1, 1), &MASKS).fused("act=Relu"),
        Shape::new([2, 5, 6, 6], 4, 3, (1, 1, 1), &MASKS).fused("act=Clip, act_min=-0.5, act_max=0.75"),
        Shape::new([1, 4, 9, 9], 3, 3, (1, 1, 1), &MASKS).fused("act=HardSwish"),
        Shape::new([1, 80, 9, 9], 6, 3, (1, 1, 1), &MASKS),
        // rows of 14 and 28 pixels (`ymm` tiles whose last vector starts
        // early: at 6, and at 20) and of 32 (whole `zmm` vectors where
        // the target has AVX-512)
        Shape::new([1, 6, 14, 14], 5, 3, (1, 1, 1), &MASKS).fused("act=Relu"),
        Shape::new([1, 4, 5, 28], 3, 3, (1, 1, 1), &MASKS),
        Shape::new([1, 3, 4, 32], 4, 3, (1, 1, 1), &MASKS),
    ]
}

/// Stride 2 (the register tiles read a phase-split padded image; dense
/// kernels without them): odd and even sizes and pads, dilation, 5x5,
/// several blocks of input channels, a batch.
fn stride_two() -> Vec<Shape> {
    vec![
        Shape::new([1, 5, 14, 14], 6, 3, (1, 1, 2), &MASKS),
        Shape::new([2, 4, 13, 19], 3, 3, (1, 1, 2), &MASKS),
        Shape::new([1, 3, 12, 11], 5, 3, (0, 1, 2), &MASKS),
        Shape::new([1, 3, 15, 16], 4, 3, (2, 2, 2), &MASKS),
        Shape::new([1, 90, 9, 9], 4, 3, (1, 1, 2), &MASKS),
        Shape::new([1, 3, 40, 70], 4, 3, (1, 1, 2), &MASKS),
        Shape::new([1, 12, 13, 12], 9, 3, (1, 1, 2), &UNEVEN),
        Shape::new([1, 3, 17, 15], 4, 5, (2, 1, 2), &FIVE),
        Shape::new([1, 5, 14, 14], 6, 3, (1, 1, 2), &MASKS).fused("act=Relu"),
        // 28- and 14-pixel output rows (early last vectors)
        Shape::new([1, 3, 9, 56], 4, 3, (1, 1, 2), &MASKS),
        Shape::new([1, 4, 12, 28], 5, 3, (1, 1, 2), &MASKS),
    ]
}

fn five_by_five() -> Vec<Shape> {
    vec![Shape::new([1, 3, 10, 17], 4, 5, (2, 1, 1), &FIVE)]
}

/// A `[o, c, 1, 1]` weight keeping `kept` of every 8 input channels of
/// each output channel (rotating with the channel): N:M-style sparsity,
/// which reads as a pattern layout of single-tap kernels.
fn pointwise_nm(x: [usize; 4], o: usize, kept: usize) -> Shape {
    let masks: Vec<u32> = (0..8).map(|i| u32::from(i < kept)).collect();
    Shape::new(x, o, 1, (0, 1, 1), &masks)
}

/// 1x1 convs with a quarter, 3/8 and half of their kernels kept, on a
/// plane of 12x12 and one of 9x9 with a residual: with the assembled tiles
/// the first two run on the pattern kernel and half kept on the dense
/// pointwise GEMM (`Sparsity::pattern_beats_pointwise_gemm`), without
/// them (`baseline`) all on the 128-bit passes; all against the reference.
#[test]
fn pointwise_kernels_kept_or_removed() {
    for kept in [2, 3, 4] {
        check(&pointwise_nm([1, 16, 12, 12], 12, kept));
        check(&pointwise_nm([2, 24, 9, 9], 7, kept).fused("act=Relu"));
    }
}

#[test]
fn three_by_three_masks_and_removed_kernels() {
    stride_one().iter().for_each(check);
}

#[test]
fn stride_two_tiles() {
    stride_two().iter().for_each(check);
}

#[test]
fn five_by_five_masks() {
    five_by_five().iter().for_each(check);
}

/// Every shape above compiled for AArch64 `dotprod` and `baseline` (the
/// NEON register tiles, `ukernel::neon::pattern_tile`: each object must
/// call them) and `baseline` without micro-kernels (the 128-bit passes or
/// the dense kernels), run under qemu: each against the reference, and the
/// tiles bit for bit against the passes where those run, which sum in the
/// same order.
#[test]
fn aarch64_dotprod_pattern_tiles() {
    let dotprod = common::cross::AARCH64_DOTPROD;
    if !dotprod.available() {
        return;
    }
    let root = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("conv_pattern-aarch64");
    let shapes: Vec<Shape> = [stride_one(), stride_two(), five_by_five()].into_iter().flatten().collect();
    for (i, s) in shapes.iter().enumerate() {
        let (text, ins) = s.graph();
        let g = kerf_ir::text::parse(&text).unwrap();
        let want = reference(&g, &ins).remove(0);
        let input: Vec<u8> = ins.iter().flat_map(|t| t.bytes().to_vec()).collect();
        let mut outs = Vec::new();
        for (t, ukernels) in [(&dotprod, true), (&AARCH64, true), (&AARCH64, false)] {
            let name = format!("p{i}");
            let dir = root.join(format!("{}-{ukernels}", t.cpu)).join(&name);
            std::fs::create_dir_all(&dir).unwrap();
            let mut o = CompileOptions::parse(t.triple, t.cpu, &name).unwrap();
            o.ukernels = ukernels;
            let art = compile_object(&g, &o).unwrap();
            assert_eq!(art.report.micro_kernels > 0, ukernels, "{} ({}): micro-kernels", s.name(), t.cpu);
            std::fs::write(dir.join(format!("{name}.h")), &art.header).unwrap();
            std::fs::write(dir.join("m.o"), &art.object).unwrap();
            let exe = t.link(&dir, &name, &dir.join("m.o"));
            let got = t.run(None, &exe, &input).unwrap_or_else(|e| panic!("{} ({}): {e}", s.name(), t.cpu));
            let got: Vec<f32> = got.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
            close(&format!("{} ({})", s.name(), t.cpu), &got, &want, 1e-5, 1e-5);
            outs.push(got);
        }
        let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same(&outs[0], &outs[1]), "{}: dotprod's and baseline's tiles differ", s.name());
        if s.on_passes() {
            assert!(same(&outs[0], &outs[2]), "{}: the tiles' bits differ from the passes'", s.name());
        }
    }
}
