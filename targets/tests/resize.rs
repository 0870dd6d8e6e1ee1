#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Resize linear and cubic against a direct port of the ONNX reference
//! (`op_resize.py`: edge-padded data, the n nearest neighbours by distance,
//! ratio in (0, 1]), applied axis by axis in f64.
//! Tolerance: |got - ref| <= 1e-5 + 1e-5 * max|ref|.

mod common;
use common::{close, run, t, xs};

fn coeffs(cubic: Option<f64>, ratio: f64) -> Vec<f64> {
    match cubic {
        None => vec![1.0 - ratio, ratio],
        Some(a) => vec![
            ((a * (ratio + 1.0) - 5.0 * a) * (ratio + 1.0) + 8.0 * a) * (ratio + 1.0) - 4.0 * a,
            ((a + 2.0) * ratio - (a + 3.0)) * ratio * ratio + 1.0,
            ((a + 2.0) * (1.0 - ratio) - (a + 3.0)) * (1.0 - ratio) * (1.0 - ratio) + 1.0,
            ((a * ((1.0 - ratio) + 1.0) - 5.0 * a) * ((1.0 - ratio) + 1.0) + 8.0 * a) * ((1.0 - ratio) + 1.0) - 4.0 * a,
        ],
    }
}

/// `_interpolate_1d_with_x` of the ONNX reference.
fn interp_1d(data: &[f64], scale: f64, out_len: usize, x: usize, coord: &str, cubic: Option<f64>, excl: bool) -> f64 {
    let iw = data.len() as f64;
    let ow = scale * iw;
    let x = x as f64;
    let xo = match coord {
        "align_corners" => {
            if ow == 1.0 {
                0.0
            } else {
                x * (iw - 1.0) / (ow - 1.0)
            }
        }
        "asymmetric" => x / scale,
        "pytorch_half_pixel" => {
            if ow == 1.0 {
                -0.5
            } else {
                (x + 0.5) / scale - 0.5
            }
        }
        "half_pixel" => (x + 0.5) / scale - 0.5,
        "half_pixel_symmetric" => {
            let adj = out_len as f64 / ow;
            iw / 2.0 * (1.0 - adj) + (x + 0.5) / scale - 0.5
        }
        _ => unreachable!(),
    };
    let ratio = if xo.fract() == 0.0 { 1.0 } else { xo - xo.floor() };
    let mut c = coeffs(cubic, ratio);
    let n = c.len();
    let pad = n.div_ceil(2);
    let mut padded = vec![data[0]; pad];
    padded.extend_from_slice(data);
    padded.extend(std::iter::repeat_n(data[data.len() - 1], pad));
    let xp = xo + pad as f64;
    let mut idx: Vec<usize> = (0..padded.len()).collect();
    idx.sort_by(|&a, &b| ((xp - a as f64).abs(), a).partial_cmp(&((xp - b as f64).abs(), b)).unwrap());
    idx.truncate(n);
    idx.sort();
    if excl {
        for (i, &j) in idx.iter().enumerate() {
            let orig = j as i64 - pad as i64;
            if orig < 0 || orig >= data.len() as i64 {
                c[i] = 0.0;
            }
        }
        let s: f64 = c.iter().sum();
        c.iter_mut().for_each(|v| *v /= s);
    }
    idx.iter().zip(&c).map(|(&j, w)| padded[j] * w).sum()
}

/// 2-D resize of an `[h, w]` image: rows first, then columns.
#[allow(clippy::too_many_arguments)]
fn reference(
    x: &[f64],
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    s: [f64; 2],
    coord: &str,
    cubic: Option<f64>,
    excl: bool,
) -> Vec<f32> {
    // along W for every input row
    let mut tmp = vec![0.0; h * ow];
    for r in 0..h {
        for o in 0..ow {
            tmp[r * ow + o] = interp_1d(&x[r * w..r * w + w], s[1], ow, o, coord, cubic, excl);
        }
    }
    let mut out = vec![0f32; oh * ow];
    for c in 0..ow {
        let col: Vec<f64> = (0..h).map(|r| tmp[r * ow + c]).collect();
        for o in 0..oh {
            out[o * ow + c] = interp_1d(&col, s[0], oh, o, coord, cubic, excl) as f32;
        }
    }
    out
}

fn case(mode: &str, coord: &str, a: f64, excl: bool, (h, w): (usize, usize), s: [f32; 2], (oh, ow): (usize, usize)) {
    let g = format!(
        "graph \"r\"\n  input %0 \"x\": f32[1,2,{h},{w}]\n  %1 = Resize{{mode={mode}, coord={coord}, cubic_coeff={a:?}, exclude_outside={excl}, scales=[1.0,1.0,{:?},{:?}], sizes=[1,2,{oh},{ow}]}}(%0): f32[1,2,{oh},{ow}] @\"r\"\n  output \"y\" = %1\n",
        s[0], s[1]
    );
    let x = xs(2 * h * w);
    let cubic = (mode == "cubic").then_some(a);
    let mut want = Vec::new();
    for c in 0..2 {
        let plane: Vec<f64> = x[c * h * w..(c + 1) * h * w].iter().map(|&v| v as f64).collect();
        want.extend(reference(&plane, h, w, oh, ow, [s[0] as f64, s[1] as f64], coord, cubic, excl));
    }
    for cpu in ["native", "baseline"] {
        let got = run(&g, &[t(&[1, 2, h, w], &x)], cpu).remove(0);
        close(&format!("{mode} {coord} a={a} excl={excl} ({cpu})"), &got, &want, 1e-5, 1e-5);
    }
}

#[test]
fn linear_every_coordinate_mode_up_and_down() {
    for coord in ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "half_pixel_symmetric"] {
        case("linear", coord, -0.75, false, (4, 5), [2.0, 1.5], (8, 7));
        case("linear", coord, -0.75, false, (4, 5), [0.6, 0.6], (2, 3));
        // one output row: pytorch_half_pixel and align_corners special cases
        case("linear", coord, -0.75, false, (3, 4), [0.34, 1.0], (1, 4));
    }
}

#[test]
fn cubic_with_and_without_exclude_outside() {
    for coord in ["half_pixel", "align_corners", "asymmetric"] {
        case("cubic", coord, -0.75, false, (4, 4), [2.0, 2.0], (8, 8));
        case("cubic", coord, -0.5, true, (4, 4), [0.8, 0.8], (3, 3));
        case("cubic", coord, -0.5, true, (4, 5), [1.5, 2.0], (6, 10));
    }
}

/// Source index of output `o` for nearest: `asymmetric` + `floor` and
/// `half_pixel` + `round_prefer_floor` (the ONNX reference's formulas).
fn nearest_index(o: usize, il: usize, s: f64, coord: &str) -> usize {
    let x = match coord {
        "asymmetric" => (o as f64 / s).floor(),
        _ => {
            let x = (o as f64 + 0.5) / s - 0.5;
            if x.fract().abs() == 0.5 {
                x.floor()
            } else {
                x.round()
            }
        }
    };
    x.clamp(0.0, il as f64 - 1.0) as usize
}

/// Nearest upsampling by whole factors takes the row path (`movement.rs`,
/// `resize_rows`: factors 1, 2 and multiples of 4 along the last axis, a
/// vector body and a scalar tail), the others the per-element gather; both
/// equal the reference exactly (a copy), on `native` and `baseline`.
#[test]
fn nearest_by_whole_factors() {
    let modes = [("nearest_floor", "asymmetric"), ("nearest_round_prefer_floor", "half_pixel")];
    for (mode, coord) in modes {
        for ((h, w), s) in
            [((3, 5), [2usize, 2]), ((2, 8), [4, 4]), ((3, 6), [2, 8]), ((2, 7), [3, 1]), ((4, 4), [1, 3])]
        {
            let (oh, ow) = (h * s[0], w * s[1]);
            let g = format!(
                "graph \"r\"\n  input %0 \"x\": f32[1,2,{h},{w}]\n  %1 = Resize{{mode={mode}, coord={coord}, cubic_coeff=-0.75, exclude_outside=false, scales=[1.0,1.0,{:?},{:?}], sizes=[1,2,{oh},{ow}]}}(%0): f32[1,2,{oh},{ow}] @\"r\"\n  output \"y\" = %1\n",
                s[0] as f32, s[1] as f32
            );
            let x = xs(2 * h * w);
            let mut want = Vec::new();
            for c in 0..2 {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let (iy, ix) =
                            (nearest_index(oy, h, s[0] as f64, coord), nearest_index(ox, w, s[1] as f64, coord));
                        want.push(x[(c * h + iy) * w + ix]);
                    }
                }
            }
            for cpu in ["native", "baseline"] {
                let got = run(&g, &[t(&[1, 2, h, w], &x)], cpu).remove(0);
                close(&format!("{mode} {coord} {s:?} ({cpu})"), &got, &want, 0.0, 0.0);
            }
        }
    }
}
