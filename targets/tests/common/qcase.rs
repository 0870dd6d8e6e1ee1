//! QConv cases as data: a case's graph in the IR text format (per-channel
//! steps and biases of its own, a residual input when the epilogue adds
//! one, a u8 output through a grid), its inputs and fixed pseudo-random
//! data, shared by the host battery (`qconv.rs`) and the cross-ISA one
//! (`qconv_cross.rs`).

use kerf_ir::{DType, Tensor};

/// A QConv graph: x u8 `xsh`, w i8 `wsh` with values `w`, output `osh`.
pub struct Case<'a> {
    pub xsh: [usize; 4],
    pub wsh: [usize; 4],
    pub osh: [usize; 4],
    pub attrs: &'a str,
    pub epi: &'a str,
    pub zp: u8,
}

/// A shape as the text format writes it: `1,3,7,7`.
pub fn dims(s: &[usize]) -> String {
    s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",")
}

/// The attributes of an unpadded square window: kernel, stride, dilation, groups.
pub fn window(k: usize, s: usize, d: usize, g: usize) -> String {
    format!("kernel=[{k},{k}], strides=[{s},{s}], dilations=[{d},{d}], pads=[0,0,0,0], group={g}")
}

/// A constant's integer values.
pub fn ints(v: &[i64]) -> String {
    format!("[{}]", v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(","))
}

/// A constant's f32 values (round-trip precision).
pub fn floats(v: &[f32]) -> String {
    format!("[{}]", v.iter().map(|x| format!("{x:?}")).collect::<Vec<_>>().join(","))
}

/// The QConv graph of case `c` with weights `w` (per-channel steps and
/// biases of its own, a residual input when the epilogue adds one).
pub fn graph_text(c: &Case, w: &[i64]) -> String {
    let m = c.wsh[0];
    let w_scale: Vec<f32> = (0..m).map(|i| 0.01 + 0.003 * i as f32).collect();
    let bias = bias_of(c);
    let residual = c.epi.contains("residual=true");
    format!(
        "graph \"q\"\n  input %0 \"x\": u8[{}]\n{}  const %1 \"w\": i8[{}] = {}\n  const %2 \"s\": f32[{m}] = {}\n  const %3 \"b\": f32[{m}] = {}\n  %4 = QConv{{{}, layer=\"c\", {}, x_scale=0.05, x_zp={}}}(%0, %1, %2, %3{}): f32[{}] @\"c\"\n  output \"y\" = %4\n",
        dims(&c.xsh),
        if residual { format!("  input %9 \"r\": f32[{}]\n", dims(&c.osh)) } else { String::new() },
        dims(&c.wsh),
        ints(w),
        floats(&w_scale),
        floats(&bias),
        c.attrs,
        c.epi,
        c.zp,
        if residual { ", %9" } else { "" },
        dims(&c.osh),
    )
}

/// The biases [`graph_text`] gives case `c`'s channels.
pub fn bias_of(c: &Case) -> Vec<f32> {
    (0..c.wsh[0]).map(|i| 0.25 * i as f32 - 1.0).collect()
}

/// The inputs of case `c`: `x`, and a residual when the epilogue adds one.
pub fn inputs(c: &Case, x: &[u8]) -> Vec<Tensor> {
    let mut ins = vec![Tensor::from_bytes(DType::U8, c.xsh.to_vec(), x.to_vec()).unwrap()];
    if c.epi.contains("residual=true") {
        let n: usize = c.osh.iter().product();
        let r: Vec<f32> = (0..n).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.5).collect();
        ins.push(Tensor::from_f32(c.osh.to_vec(), &r).unwrap());
    }
    ins
}

/// `n` fixed pseudo-random integers in `lo..=hi`.
pub fn pseudo(n: usize, seed: usize, lo: i64, hi: i64) -> Vec<i64> {
    (0..n).map(|i| lo + ((i * 7919 + seed * 104729) % 9973) as i64 % (hi - lo + 1)).collect()
}

/// No activation, no residual.
pub const PLAIN: &str = "act=None, residual=false";

/// A depthwise window (one channel per group, `c` groups) with padding `p`.
pub fn depthwise(k: usize, s: usize, p: usize, c: usize) -> String {
    format!("kernel=[{k},{k}], strides=[{s},{s}], dilations=[1,1], pads=[{p},{p},{p},{p}], group={c}")
}

/// A depthwise window of `c` channels: kernel `kh × kw`, strides,
/// dilations and pads (top, left, bottom, right).
pub fn dw_window(k: [usize; 2], s: [usize; 2], d: [usize; 2], p: [usize; 4], c: usize) -> String {
    format!(
        "kernel=[{},{}], strides=[{},{}], dilations=[{},{}], pads=[{},{},{},{}], group={c}",
        k[0], k[1], s[0], s[1], d[0], d[1], p[0], p[1], p[2], p[3]
    )
}

/// The QConv graph of case `c` with a u8 output through the grid `(scale, zp)`.
pub fn quant_text(c: &Case, w: &[i64], (scale, zp): (f32, u8)) -> String {
    graph_text(c, w)
        .replace(&format!("x_zp={}}}", c.zp), &format!("x_zp={}, out=quant, out_scale={scale:?}, out_zp={zp}}}", c.zp))
        .replace(&format!("): f32[{}] @\"c\"", dims(&c.osh)), &format!("): u8[{}] @\"c\"", dims(&c.osh)))
}

/// Case `c`'s input bytes and 8-bit weights (fixed pseudo-random values).
pub fn case_data(c: &Case) -> (Vec<u8>, Vec<i64>) {
    let nx: usize = c.xsh.iter().product();
    let nw: usize = c.wsh.iter().product();
    (pseudo(nx, 1, 0, 255).into_iter().map(|v| v as u8).collect(), pseudo(nw, 2, -127, 127))
}

/// The accumulating form (`out=acc`: the i32 sums `Σ (x − zp)·w`
/// themselves) of an `xsh` input, `wsh` weight `w`, `osh` output.
pub fn acc_text(shapes: [[usize; 4]; 3], attrs: &str, zp: u8, w: &[i64]) -> String {
    let [xsh, wsh, osh] = shapes;
    format!(
        "graph \"q\"\n  input %0 \"x\": u8[{}]\n  const %1 \"w\": i8[{}] = {}\n  %2 = QConv{{{attrs}, layer=\"c\", act=None, residual=false, x_scale=1.0, x_zp={zp}, out=acc}}(%0, %1): i32[{}] @\"c\"\n  output \"y\" = %2\n",
        dims(&xsh),
        dims(&wsh),
        ints(w),
        dims(&osh),
    )
}
