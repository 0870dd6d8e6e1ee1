#![allow(clippy::unwrap_used, clippy::expect_used)]
//! ConvTranspose with constant weights (`lower/conv_transpose.rs`: the GEMM
//! and col2im kernel) on awkward geometries, against the ONNX definition
//! summed in f64 here (tolerance 1e-5 + 1e-4 * max|ref|), with SIMD (native) and the
//! scalar path (baseline): exact tiling (kernel = stride, the bias in the
//! GEMM), overlapping taps, kernels smaller than the stride (outputs no tap
//! reaches keep the bias), dilation, asymmetric and large pads, output
//! padding, groups, rectangular kernels, 1-D, batches, several channel
//! blocks with a short last one and several pixel blocks with a short last
//! one. Threaded runs are bit-identical to the serial run.

mod common;
use common::{close, list, run, t, threaded_equals_serial};

fn vals(n: usize, seed: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|i| ((((i + seed) * 7919) % 101) as f32 / 50.0 - 1.0) * scale).collect()
}

fn dims(s: &[usize]) -> String {
    s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",")
}

/// One ConvTranspose: input `[n, c, spatial..]`, `ocg` output channels per
/// group, and per spatial axis kernel, stride, dilation, pads (begin, end)
/// and output padding.
struct Case {
    n: usize,
    c: usize,
    spatial: Vec<usize>,
    ocg: usize,
    group: usize,
    kernel: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    pads: Vec<(usize, usize)>,
    out_pad: Vec<usize>,
}

impl Case {
    fn out_shape(&self) -> Vec<usize> {
        let mut o = vec![self.n, self.ocg * self.group];
        for a in 0..self.spatial.len() {
            let full = (self.spatial[a] - 1) * self.strides[a] + self.dilations[a] * (self.kernel[a] - 1) + 1;
            o.push(full + self.out_pad[a] - self.pads[a].0 - self.pads[a].1);
        }
        o
    }
    fn text(&self) -> String {
        self.text_with("ConvTranspose", "")
    }
    /// The graph of `op` (`ConvTranspose` or `ConvTransposeFused`) with
    /// `epi` appended to its attributes (`, act=Relu, residual=false`).
    fn text_with(&self, op: &str, epi: &str) -> String {
        let x: Vec<usize> = [vec![self.n, self.c], self.spatial.clone()].concat();
        let w: Vec<usize> = [vec![self.c, self.ocg], self.kernel.clone()].concat();
        let oc = self.ocg * self.group;
        let pads: Vec<usize> = self.pads.iter().map(|p| p.0).chain(self.pads.iter().map(|p| p.1)).collect();
        format!(
            "graph \"ct\"\n  input %0 \"x\": f32[{}]\n  const %1 \"w\": f32[{}] = {}\n  const %2 \"b\": f32[{oc}] = {}\n  %3 = {op}{{kernel=[{}], strides=[{}], dilations=[{}], pads=[{}], group={}, output_padding=[{}], layer=\"ct\"{epi}}}(%0, %1, %2): f32[{}] @\"ct\"\n  output \"y\" = %3\n",
            dims(&x),
            dims(&w),
            list(&self.weights()),
            list(&self.bias()),
            dims(&self.kernel),
            dims(&self.strides),
            dims(&self.dilations),
            dims(&pads),
            self.group,
            dims(&self.out_pad),
            dims(&self.out_shape()),
        )
    }
    fn weights(&self) -> Vec<f32> {
        vals(self.c * self.ocg * self.kernel.iter().product::<usize>(), 7, 0.3)
    }
    fn bias(&self) -> Vec<f32> {
        vals(self.ocg * self.group, 3, 0.5)
    }
    /// The ONNX definition in f64: every input element adds `x · w` into
    /// each output position `i·s − pad + t·d` inside the output.
    fn reference(&self, x: &[f32]) -> Vec<f32> {
        let o = self.out_shape();
        // 1-D runs as 2-D with height 1
        let two = self.spatial.len() == 2;
        let ax = |v: &[usize], d: usize| if two { (v[0], v[1]) } else { (d, v[0]) };
        let (h, w) = ax(&self.spatial, 1);
        let (oh, ow) = if two { (o[2], o[3]) } else { (1, o[2]) };
        let (kh, kw) = ax(&self.kernel, 1);
        let (sh, sw) = ax(&self.strides, 1);
        let (dh, dw) = ax(&self.dilations, 1);
        let pb: Vec<usize> = self.pads.iter().map(|p| p.0).collect();
        let (ph, pw) = ax(&pb, 0);
        let (wt, b) = (self.weights(), self.bias());
        let (icg, ocg, oc) = (self.c / self.group, self.ocg, self.ocg * self.group);
        let mut y: Vec<f64> = (0..self.n * oc * oh * ow).map(|i| f64::from(b[i / (oh * ow) % oc])).collect();
        for n in 0..self.n {
            for ci in 0..self.c {
                let g = ci / icg;
                for iy in 0..h {
                    for ix in 0..w {
                        let xv = f64::from(x[((n * self.c + ci) * h + iy) * w + ix]);
                        for co in 0..ocg {
                            for ty in 0..kh {
                                for tx in 0..kw {
                                    let oy = (iy * sh + ty * dh) as isize - ph as isize;
                                    let ox = (ix * sw + tx * dw) as isize - pw as isize;
                                    if oy < 0 || ox < 0 || oy >= oh as isize || ox >= ow as isize {
                                        continue;
                                    }
                                    let wv = f64::from(wt[((ci * ocg + co) * kh + ty) * kw + tx]);
                                    let at = ((n * oc + g * ocg + co) * oh + oy as usize) * ow + ox as usize;
                                    y[at] += xv * wv;
                                }
                            }
                        }
                    }
                }
            }
        }
        y.iter().map(|&v| v as f32).collect()
    }
    fn input(&self) -> kerf_ir::Tensor {
        let x: Vec<usize> = [vec![self.n, self.c], self.spatial.clone()].concat();
        t(&x, &vals(x.iter().product(), 1, 1.0))
    }
}

/// A 2-D case with square kernel/stride/dilation and symmetric pads.
#[allow(clippy::too_many_arguments)]
fn sq(
    n: usize,
    c: usize,
    hw: (usize, usize),
    ocg: usize,
    group: usize,
    k: usize,
    s: usize,
    d: usize,
    p: usize,
    op: usize,
) -> Case {
    Case {
        n,
        c,
        spatial: vec![hw.0, hw.1],
        ocg,
        group,
        kernel: vec![k, k],
        strides: vec![s, s],
        dilations: vec![d, d],
        pads: vec![(p, p), (p, p)],
        out_pad: vec![op, op],
    }
}

fn check(name: &str, c: &Case) {
    let text = c.text();
    let x = c.input();
    let want = c.reference(&x.to_f32_vec());
    for cpu in ["native", "baseline"] {
        let got = run(&text, std::slice::from_ref(&x), cpu).remove(0);
        close(&format!("{name} ({cpu})"), &got, &want, 1e-5, 1e-4);
    }
}

#[test]
fn tiling_overlapping_and_gapped_kernels() {
    // kernel = stride: every output gets one tap (the detector head's 2x2 s2)
    check("2x2 s2 exact, 20 ch (short last channel block)", &sq(1, 8, (9, 11), 20, 1, 2, 2, 1, 0, 0));
    check("3x3 s3 exact, 2 groups", &sq(1, 6, (4, 7), 5, 2, 3, 3, 1, 0, 0));
    // overlapping taps: the output starts as the bias, taps add
    check("3x3 s2 p1 op1", &sq(1, 6, (7, 5), 13, 1, 3, 2, 1, 1, 1));
    check("4x4 s2 p1, batch 2", &sq(2, 5, (6, 6), 9, 1, 4, 2, 1, 1, 0));
    check("3x3 s1 p1 d2 (vector col2im)", &sq(1, 4, (5, 8), 6, 1, 3, 1, 2, 1, 0));
    check("5x5 s1 p3 (pads past the kernel's reach)", &sq(1, 3, (4, 6), 7, 1, 5, 1, 1, 3, 0));
    // kernel smaller than the stride: outputs between taps keep the bias
    check("1x1 s2", &sq(1, 3, (5, 4), 4, 1, 1, 2, 1, 0, 1));
    check("2x2 s3 op2, 3 groups", &sq(2, 6, (3, 5), 4, 3, 2, 3, 1, 0, 2));
}

#[test]
fn rectangular_asymmetric_and_one_dimensional() {
    let rect = Case {
        n: 1,
        c: 5,
        spatial: vec![3, 9],
        ocg: 6,
        group: 1,
        kernel: vec![1, 3],
        strides: vec![1, 2],
        dilations: vec![1, 1],
        pads: vec![(0, 0), (1, 2)],
        out_pad: vec![0, 1],
    };
    check("1x3 s(1,2) pads (0,1,0,2)", &rect);
    let asym = Case {
        n: 1,
        c: 4,
        spatial: vec![6, 5],
        ocg: 8,
        group: 1,
        kernel: vec![3, 2],
        strides: vec![2, 3],
        dilations: vec![2, 1],
        pads: vec![(2, 0), (0, 1)],
        out_pad: vec![1, 0],
    };
    check("3x2 s(2,3) d(2,1) asymmetric pads", &asym);
    let one = Case {
        n: 2,
        c: 4,
        spatial: vec![10],
        ocg: 7,
        group: 1,
        kernel: vec![5],
        strides: vec![3],
        dilations: vec![1],
        pads: vec![(2, 1)],
        out_pad: vec![0],
    };
    check("1-D k5 s3", &one);
}

#[test]
fn large_planes_split_and_stay_bit_identical() {
    // 61 input rows of 64 channels do not fit one pixel block (L2): several
    // blocks, the last one short; 24 channels in several task blocks
    let exact = sq(1, 64, (61, 40), 24, 1, 2, 2, 1, 0, 0);
    check("2x2 s2 61x40 64->24", &exact);
    threaded_equals_serial("2x2 s2 61x40 64->24", &exact.text(), &[exact.input()]);
    let overlap = sq(1, 32, (45, 30), 10, 1, 4, 2, 1, 1, 0);
    check("4x4 s2 p1 45x30 32->10", &overlap);
    threaded_equals_serial("4x4 s2 p1 45x30 32->10", &overlap.text(), &[overlap.input()]);
}

/// `ConvTransposeFused` (the `fusion` group's) applies its activation
/// where each output is final: in the GEMM's epilogue when the kernel tiles
/// the output exactly, else over the task's planes after its last pixel
/// block. Against the f64 definition with the activation applied, on both
/// paths, small and split into several blocks and tasks (threaded equal to
/// serial).
#[test]
fn fused_activations_apply_where_each_output_is_final() {
    let relu = |v: f32| v.max(0.0);
    let clip = |v: f32| v.clamp(-0.25, 0.5);
    let sigmoid = |v: f32| (1.0 / (1.0 + f64::from(-v).exp())) as f32;
    let acts: [(&str, &dyn Fn(f32) -> f32); 3] = [
        (", act=Relu, residual=false", &relu),
        (", act=Clip, act_min=-0.25, act_max=0.5, residual=false", &clip),
        (", act=Sigmoid, residual=false", &sigmoid),
    ];
    // (name, case, large enough to be split over threads)
    let cases = [
        ("2x2 s2 exact, 20 ch", sq(1, 8, (9, 11), 20, 1, 2, 2, 1, 0, 0), false),
        ("3x3 s2 p1 op1 overlapping", sq(1, 6, (7, 5), 13, 1, 3, 2, 1, 1, 1), false),
        ("2x2 s3 op2, 3 groups (gaps keep the bias)", sq(2, 6, (3, 5), 4, 3, 2, 3, 1, 0, 2), false),
        ("2x2 s2 61x40 64->24 (pixel blocks)", sq(1, 64, (61, 40), 24, 1, 2, 2, 1, 0, 0), true),
        ("4x4 s2 p1 45x30 32->10 (task planes)", sq(1, 32, (45, 30), 10, 1, 4, 2, 1, 1, 0), true),
    ];
    for (name, c, split) in &cases {
        let x = c.input();
        let plain = c.reference(&x.to_f32_vec());
        for (epi, f) in acts {
            let text = c.text_with("ConvTransposeFused", epi);
            let want: Vec<f32> = plain.iter().map(|&v| f(v)).collect();
            for cpu in ["native", "baseline"] {
                let got = run(&text, std::slice::from_ref(&x), cpu).remove(0);
                close(&format!("{name}{epi} ({cpu})"), &got, &want, 1e-5, 1e-4);
            }
            if *split {
                threaded_equals_serial(&format!("{name}{epi}"), &text, std::slice::from_ref(&x));
            }
        }
        // without a bias (fused as exported: the outputs start from zero)
        let text = c.text_with("ConvTransposeFused", ", act=Relu, residual=false").replace("(%0, %1, %2)", "(%0, %1)");
        let (bias, plane) = (c.bias(), c.out_shape()[2..].iter().product::<usize>());
        let want: Vec<f32> = plain.iter().enumerate().map(|(i, &v)| relu(v - bias[i / plane % bias.len()])).collect();
        for cpu in ["native", "baseline"] {
            let got = run(&text, std::slice::from_ref(&x), cpu).remove(0);
            close(&format!("{name}, no bias ({cpu})"), &got, &want, 1e-5, 1e-4);
        }
    }
}
