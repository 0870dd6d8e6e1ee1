#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Convs on small planes whose tasks split the output channels (GEMM row
//! blocks) as well as the pixel blocks — the direct packed GEMM conv and
//! Winograd — and Winograd convs with fused epilogues (`ConvFused`:
//! activation and residual after the output transform):
//!
//! - values against the unfused graph computed by the direct conv and
//!   separate Add / activation kernels (tolerance 1e-5 + 1e-4 * max|ref|,
//!   the codegen tolerance), with SIMD (native) and the scalar path
//!   (baseline);
//! - a threaded run is bit-identical to the serial run for 1..=5 threads
//!   (tasks run in reverse order by a recording runtime) and real pools,
//!   and the kernels really are split.

mod common;
use common::{close, list, reference, run, t, threaded_equals_serial};
use kerf_ir::Tensor;

fn vals(n: usize, seed: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|i| ((((i + seed) * 7919) % 101) as f32 / 50.0 - 1.0) * scale).collect()
}

fn dims(s: &[usize]) -> String {
    s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",")
}

/// One conv layer: `n×c×h×w` → `k` channels, kernel `kh`, stride, pad.
#[derive(Clone, Copy)]
struct Layer {
    n: usize,
    c: usize,
    h: usize,
    k: usize,
    kh: usize,
    stride: usize,
    pad: usize,
}

impl Layer {
    fn out_hw(&self) -> usize {
        (self.h + 2 * self.pad - self.kh) / self.stride + 1
    }
    fn in_shape(&self) -> Vec<usize> {
        vec![self.n, self.c, self.h, self.h]
    }
    fn out_shape(&self) -> Vec<usize> {
        vec![self.n, self.k, self.out_hw(), self.out_hw()]
    }
    fn conv_attrs(&self, extra: &str) -> String {
        let (kh, s, p) = (self.kh, self.stride, self.pad);
        format!(
            "kernel=[{kh},{kh}], strides=[{s},{s}], dilations=[1,1], pads=[{p},{p},{p},{p}], group=1, layer=\"c\"{extra}"
        )
    }
    fn consts(&self) -> String {
        let w = vals(self.k * self.c * self.kh * self.kh, 7, 0.3);
        let b = vals(self.k, 3, 0.5);
        format!(
            "  const %1 \"w\": f32[{},{},{},{}] = {}\n  const %2 \"b\": f32[{}] = {}\n",
            self.k,
            self.c,
            self.kh,
            self.kh,
            list(&w),
            self.k,
            list(&b)
        )
    }
    /// `act(Conv(x) + r)` as a fused op (`algo`: "" or ", winograd=m").
    fn fused(&self, algo: &str, act: &str, residual: bool) -> String {
        let (o, r) = (dims(&self.out_shape()), if residual { ", %9" } else { "" });
        format!(
            "graph \"g\"\n  input %0 \"x\": f32[{}]\n  input %9 \"r\": f32[{o}]\n{}  %3 = ConvFused{{{}, {}, residual={residual}}}(%0, %1, %2{r}): f32[{o}] @\"c\"\n  output \"y\" = %3\n",
            dims(&self.in_shape()),
            self.consts(),
            self.conv_attrs(algo),
            act_attrs(act),
        )
    }
    /// The same function unfused: direct Conv, Add, activation nodes.
    fn unfused(&self, act: &str, residual: bool) -> String {
        let o = dims(&self.out_shape());
        let mut body = format!("  %3 = Conv{{{}}}(%0, %1, %2): f32[{o}] @\"c\"\n", self.conv_attrs(""));
        let mut last = 3;
        if residual {
            body += &format!("  %4 = Add(%3, %9): f32[{o}]\n");
            last = 4;
        }
        if act != "None" {
            body += &format!("  %5 = {act}(%{last}): f32[{o}]\n");
            last = 5;
        }
        format!(
            "graph \"g\"\n  input %0 \"x\": f32[{}]\n  input %9 \"r\": f32[{o}]\n{}{body}  output \"y\" = %{last}\n",
            dims(&self.in_shape()),
            self.consts()
        )
    }
    fn inputs(&self) -> Vec<Tensor> {
        let xn: usize = self.in_shape().iter().product();
        let on: usize = self.out_shape().iter().product();
        vec![t(&self.in_shape(), &vals(xn, 1, 1.0)), t(&self.out_shape(), &vals(on, 5, 2.0))]
    }
}

/// A unary op's text (`Clip{min=0.0, max=6.0}`) as epilogue attributes
/// (`act=Clip, act_min=0.0, act_max=6.0`).
fn act_attrs(act: &str) -> String {
    match act.split_once('{') {
        None => format!("act={act}"),
        Some((name, rest)) => {
            let args: Vec<String> =
                rest.trim_end_matches('}').split(", ").map(|a| format!("act_{}", a.trim())).collect();
            format!("act={name}, {}", args.join(", "))
        }
    }
}

fn check(name: &str, l: Layer, algo: &str, act: &str, residual: bool) {
    let inputs = l.inputs();
    for cpu in ["native", "baseline"] {
        let want = run(&l.unfused(act, residual), &inputs, cpu).remove(0);
        let got = run(&l.fused(algo, act, residual), &inputs, cpu).remove(0);
        close(&format!("{name} ({cpu})"), &got, &want, 1e-5, 1e-4);
    }
    threaded_equals_serial(name, &l.fused(algo, act, residual), &inputs);
}

#[test]
fn winograd_splits_channels_on_small_planes() {
    // one 7x7 tile block: the tasks split 128 output channels (11 row
    // blocks, the last of 8 rows); F(2) and F(4), edge tiles for both
    let l = Layer { n: 1, c: 64, h: 7, k: 128, kh: 3, stride: 1, pad: 1 };
    for tile in [2, 4] {
        check(&format!("winograd F({tile}) 7x7 64->128 relu+res"), l, &format!(", winograd={tile}"), "Relu", true);
    }
    // batch 2, more channels than one M chunk (96 rows): 100 = 96 + 4
    let l = Layer { n: 2, c: 48, h: 6, k: 100, kh: 3, stride: 1, pad: 1 };
    check("winograd F(2) 2x6x6 48->100 clip", l, ", winograd=2", "Clip{min=0.0, max=6.0}", false);
    check("winograd F(4) 2x6x6 48->100 res", l, ", winograd=4", "None", true);
}

#[test]
fn winograd_blocks_with_surplus_lanes() {
    // SqueezeNet's fire3 expand3x3: 55x55 gives 14 (F(4)) or 28 (F(2)) tile
    // columns, so a block of an odd number of tile rows does not fill its
    // last vector of tiles; those surplus lanes must stay inside the block
    // (they once computed the next block's first tiles from outside this
    // block's input strip, which only serial order overwrote).
    let l = Layer { n: 1, c: 16, h: 55, k: 64, kh: 3, stride: 1, pad: 1 };
    for tile in [2, 4] {
        check(&format!("winograd F({tile}) 55x55 16->64 relu"), l, &format!(", winograd={tile}"), "Relu", false);
    }
}

#[test]
fn winograd_fused_epilogues() {
    // several tile blocks (no channel split), edge tiles (27x27 out), every
    // activation, no pad
    let l = Layer { n: 1, c: 8, h: 29, k: 20, kh: 3, stride: 1, pad: 0 };
    for act in ["Relu", "LeakyRelu{alpha=0.1}", "HardSwish", "Clip{min=-1.0, max=1.0}"] {
        for residual in [false, true] {
            let inputs = l.inputs();
            for cpu in ["native", "baseline"] {
                let want = run(&l.unfused(act, residual), &inputs, cpu).remove(0);
                for tile in [2, 4] {
                    let got = run(&l.fused(&format!(", winograd={tile}"), act, residual), &inputs, cpu).remove(0);
                    close(&format!("F({tile}) {act} residual {residual} ({cpu})"), &got, &want, 1e-5, 1e-4);
                }
            }
        }
    }
}

#[test]
fn direct_gemm_conv_splits_channels_on_small_planes() {
    // 3x3 stride 2 and 1x1 stride 2 (ResNet's downsampling) to 7x7, and a
    // pointwise 1x1 on 7x7: one pixel block, channels split
    let cases = [
        ("3x3 s2 14->7 64->96", Layer { n: 1, c: 64, h: 14, k: 96, kh: 3, stride: 2, pad: 1 }),
        ("1x1 s2 14->7 64->128", Layer { n: 1, c: 64, h: 14, k: 128, kh: 1, stride: 2, pad: 0 }),
        ("1x1 7x7 96->100", Layer { n: 1, c: 96, h: 7, k: 100, kh: 1, stride: 1, pad: 0 }),
    ];
    for (name, l) in cases {
        check(name, l, "", "Relu", true);
    }
}

/// A 2-D conv geometry for the small-K direct kernel (`lower/conv_smallk.rs`:
/// K = C·kh·kw <= 48, one group, output rows <= 15 wide, output channels a
/// multiple of 8), with rectangular kernels, strides, dilations and
/// asymmetric pads.
struct SmallK {
    n: usize,
    c: usize,
    hw: (usize, usize),
    oc: usize,
    k: (usize, usize),
    s: (usize, usize),
    d: (usize, usize),
    pads: [usize; 4],
}

impl SmallK {
    fn out(&self) -> (usize, usize) {
        let o = |i: usize, k: usize, s: usize, d: usize, p: usize| (i + p - d * (k - 1) - 1) / s + 1;
        (
            o(self.hw.0, self.k.0, self.s.0, self.d.0, self.pads[0] + self.pads[2]),
            o(self.hw.1, self.k.1, self.s.1, self.d.1, self.pads[1] + self.pads[3]),
        )
    }
    fn graph(&self, act: &str, residual: bool) -> String {
        let (oh, ow) = self.out();
        let x = dims(&[self.n, self.c, self.hw.0, self.hw.1]);
        let o = dims(&[self.n, self.oc, oh, ow]);
        let w = vals(self.oc * self.c * self.k.0 * self.k.1, 7, 0.3);
        let b = vals(self.oc, 3, 0.5);
        let [pt, pl, pb, pr] = self.pads;
        let r = if residual { ", %9" } else { "" };
        format!(
            "graph \"g\"\n  input %0 \"x\": f32[{x}]\n  input %9 \"r\": f32[{o}]\n  const %1 \"w\": f32[{},{},{},{}] = {}\n  const %2 \"b\": f32[{}] = {}\n  %3 = ConvFused{{kernel=[{},{}], strides=[{},{}], dilations=[{},{}], pads=[{pt},{pl},{pb},{pr}], group=1, layer=\"c\", {}, residual={residual}}}(%0, %1, %2{r}): f32[{o}] @\"c\"\n  output \"y\" = %3\n",
            self.oc, self.c, self.k.0, self.k.1, list(&w), self.oc, list(&b),
            self.k.0, self.k.1, self.s.0, self.s.1, self.d.0, self.d.1, act_attrs(act),
        )
    }
    fn inputs(&self) -> Vec<Tensor> {
        let (oh, ow) = self.out();
        let xs = [self.n, self.c, self.hw.0, self.hw.1];
        let os = [self.n, self.oc, oh, ow];
        vec![t(&xs, &vals(xs.iter().product(), 1, 1.0)), t(&os, &vals(os.iter().product(), 5, 2.0))]
    }
}

#[test]
fn small_k_conv_matches_reference() {
    let cases = [
        // DS-CNN's first conv: 10x4 kernel, one input channel, 49x10 input
        (
            "10x4 s2 49x10",
            SmallK { n: 1, c: 1, hw: (49, 10), oc: 16, k: (10, 4), s: (2, 2), d: (1, 1), pads: [4, 1, 5, 2] },
        ),
        // batch 2, 2 channels, 3x3 on a 9x7 plane (last pixel tile overlaps)
        ("3x3 2x2x9x7", SmallK { n: 2, c: 2, hw: (9, 7), oc: 8, k: (3, 3), s: (1, 1), d: (1, 1), pads: [1, 1, 1, 1] }),
        // stride 2 and dilation 2, asymmetric pads
        ("3x3 s2 d2", SmallK { n: 1, c: 3, hw: (20, 13), oc: 24, k: (3, 3), s: (2, 2), d: (2, 2), pads: [2, 0, 1, 2] }),
    ];
    for (name, g) in cases {
        let inputs = g.inputs();
        for (act, residual) in [
            ("None", false),
            ("Relu", true),
            ("Clip{min=-1.0, max=1.0}", false),
            ("Gelu{tanh=false}", true),
            ("Sigmoid", false),
        ] {
            let text = g.graph(act, residual);
            let want = reference(&kerf_ir::text::parse(&text).unwrap(), &inputs).remove(0);
            for cpu in ["native", "baseline"] {
                let got = run(&text, &inputs, cpu).remove(0);
                close(&format!("small-K {name} {act} residual {residual} ({cpu})"), &got, &want, 1e-5, 1e-4);
            }
        }
    }
}
