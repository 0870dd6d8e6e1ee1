#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The pattern-sparse conv kernel (`lower/conv_pattern.rs`) against the
//! reference evaluator: weights whose kernels keep one of a few tap masks
//! (4-tap shapes with and without the centre, single taps, removed
//! kernels), on awkward widths (a full 16-pixel block plus a partial
//! vector), padding, dilation, 5x5 kernels and batches; every CPU preset
//! the host runs. Tolerance 1e-5 + 1e-5 * max|ref|.

mod common;
use common::{close, list, reference, run, t, xs};

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

fn check(x: [usize; 4], o: usize, k: usize, pad: usize, dil: usize, masks: &[u32]) {
    check_strided(x, o, k, pad, dil, 1, masks);
}

fn check_strided(x: [usize; 4], o: usize, k: usize, pad: usize, dil: usize, st: usize, masks: &[u32]) {
    let [n, c, h, wd] = x;
    let oh = (h + 2 * pad - dil * (k - 1) - 1) / st + 1;
    let ow = (wd + 2 * pad - dil * (k - 1) - 1) / st + 1;
    let w = pruned(o, c, k, masks);
    assert!(kerf_ir::Sparsity::detect(&t(&[o, c, k, k], &w)).is_some(), "the weight must read as pattern-pruned");
    let b: Vec<f32> = (0..o).map(|i| 0.1 * i as f32 - 0.3).collect();
    let text = format!(
        "graph \"p\"\n  input %0 \"x\": f32[{n},{c},{h},{wd}]\n  const %1 \"w\": f32[{o},{c},{k},{k}] = {}\n  const %2 \"b\": f32[{o}] = {}\n  \
         %3 = Conv{{kernel=[{k},{k}], strides=[{st},{st}], dilations=[{dil},{dil}], pads=[{pad},{pad},{pad},{pad}], group=1, layer=\"c\"}}(%0, %1, %2): f32[{n},{o},{oh},{ow}] @\"c\"\n  output \"y\" = %3\n",
        list(&w),
        list(&b)
    );
    let xin = t(&x, &xs(n * c * h * wd));
    let g = kerf_ir::text::parse(&text).unwrap();
    let want = reference(&g, std::slice::from_ref(&xin)).remove(0);
    for cpu in ["native", "baseline"] {
        let got = run(&text, std::slice::from_ref(&xin), cpu).remove(0);
        close(&format!("pattern conv {x:?} o{o} k{k} pad{pad} dil{dil} stride{st} ({cpu})"), &got, &want, 1e-5, 1e-5);
    }
}

const CENTRE4: u32 = 0b000_111_010; // centre, its left and right, top middle
const CORNERS: u32 = 0b001_010_101; // three corners and the centre
const OFFCENTRE: u32 = 0b110_100_000;
const SINGLE: u32 = 0b000_010_000;

#[test]
fn three_by_three_masks_and_removed_kernels() {
    let masks = [CENTRE4, CORNERS, OFFCENTRE, SINGLE, 0];
    check([1, 5, 7, 19], 6, 3, 1, 1, &masks); // 16-pixel block + 3
    check([2, 3, 9, 8], 4, 3, 1, 1, &masks); // batch 2, one 8-pixel rest
    check([1, 4, 6, 21], 3, 3, 0, 1, &masks); // no padding
    check([1, 3, 11, 13], 5, 3, 2, 2, &masks); // dilation 2
                                               // planes under 64 pixels (register tiles with AVX2, dense kernels
                                               // otherwise), and more input channels than one block of a tile
    check([1, 6, 5, 6], 4, 3, 1, 1, &masks);
    check([2, 80, 7, 7], 5, 3, 1, 1, &masks);
    // filters of unequal length (threads split them by work:
    // `lower/conv_pattern/work.rs`)
    check([1, 12, 9, 10], 9, 3, 1, 1, &UNEVEN);
}

/// With 12 input channels, filters keep from 1 to 3 of their kernels.
const UNEVEN: [u32; 7] = [CENTRE4, 0, 0, CORNERS, 0, 0, SINGLE];

/// Stride 2 (the register tiles read a phase-split padded image with
/// AVX2; dense kernels otherwise): odd and even sizes and pads, dilation,
/// 5x5, several blocks of input channels, a batch.
#[test]
fn stride_two() {
    let masks = [CENTRE4, CORNERS, OFFCENTRE, SINGLE, 0];
    check_strided([1, 5, 14, 14], 6, 3, 1, 1, 2, &masks);
    check_strided([2, 4, 13, 19], 3, 3, 1, 1, 2, &masks);
    check_strided([1, 3, 12, 11], 5, 3, 0, 1, 2, &masks);
    check_strided([1, 3, 15, 16], 4, 3, 2, 2, 2, &masks);
    check_strided([1, 90, 9, 9], 4, 3, 1, 1, 2, &masks);
    check_strided([1, 3, 40, 70], 4, 3, 1, 1, 2, &masks);
    check_strided([1, 12, 13, 12], 9, 3, 1, 1, 2, &UNEVEN);
    let five = [0b1_0000_0100_0110_0010_0000, 1 << 12, 0b11 << 23, 0];
    check_strided([1, 3, 17, 15], 4, 5, 2, 1, 2, &five);
}

#[test]
fn five_by_five_masks() {
    let masks = [0b1_0000_0100_0110_0010_0000, 1 << 12, 0b11 << 23, 0];
    check([1, 3, 10, 17], 4, 5, 2, 1, &masks);
}
