#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Kernel families against the f64 reference evaluator of kerf-ir (or
//! hand-computed values where it has no implementation), JIT-compiled for
//! the host and, for the vector/scalar split, for the SSE2 baseline as well.
//! Tolerance: |got - ref| <= 1e-5 + 1e-4 * max|ref| elementwise.

mod common;
use kerf_ir::{Graph, Tensor};
use kerf_targets::{jit_compile, CompileOptions};

/// Evaluates the graph node by node with `kerf_ir::eval::eval`.
fn reference(g: &Graph, inputs: &[Tensor]) -> Vec<Tensor> {
    kerf_ir::eval::eval_graph(g, inputs).unwrap_or_else(|e| panic!("reference: {e}"))
}

/// Deterministic test input for a value.
fn input_for(g: &Graph, k: usize) -> Tensor {
    let t = g.ty(g.inputs[k]);
    let n = t.numel();
    let v: Vec<f64> = (0..n).map(|i| (((i * 7919 + 13 * k) % 97) as f64 / 24.0) - 2.0).collect();
    Tensor::from_f64_values(t.dtype, t.shape.clone(), &v).unwrap()
}

fn run_jit(g: &Graph, inputs: &[Tensor], cpu: &str) -> Vec<Vec<u8>> {
    let jm = jit_compile(g, &CompileOptions::parse("host", cpu, "t").unwrap()).unwrap_or_else(|e| panic!("{e}"));
    let m = jm.model();
    // copy into 8-byte aligned storage
    let stores: Vec<Vec<u64>> = inputs
        .iter()
        .map(|t| {
            let mut s = vec![0u64; t.bytes().len().div_ceil(8)];
            kerf_runtime_bytes(&mut s)[..t.bytes().len()].copy_from_slice(t.bytes());
            s
        })
        .collect();
    let views: Vec<&[u8]> = stores.iter().zip(inputs).map(|(s, t)| &as_bytes(s)[..t.bytes().len()]).collect();
    let mut outs: Vec<Vec<u64>> = m.info().outputs.iter().map(|o| vec![0u64; o.bytes.div_ceil(8)]).collect();
    let sizes: Vec<usize> = m.info().outputs.iter().map(|o| o.bytes).collect();
    {
        let mut ov: Vec<&mut [u8]> =
            outs.iter_mut().zip(&sizes).map(|(o, &n)| &mut kerf_runtime_bytes(o)[..n]).collect();
        let mut arena = m.new_arena().unwrap();
        m.run(&views, &mut ov, &mut arena).unwrap();
    }
    outs.iter().zip(&sizes).map(|(o, &n)| as_bytes(o)[..n].to_vec()).collect()
}

fn as_bytes(v: &[u64]) -> &[u8] {
    // SAFETY: u64 has no padding; the view covers exactly the vector.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, v.len() * 8) }
}
fn kerf_runtime_bytes(v: &mut [u64]) -> &mut [u8] {
    // SAFETY: as above; any byte pattern is a valid u64.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, v.len() * 8) }
}

fn compare(name: &str, got: &[u8], want: &Tensor) {
    let dt = want.dtype();
    let g = Tensor::from_bytes(dt, want.shape().to_vec(), got.to_vec()).unwrap();
    let (a, b) = (g.to_f64_vec(), want.to_f64_vec());
    let m = b.iter().fold(0f64, |x, y| x.max(y.abs()));
    let tol = if dt.is_float() { 1e-5 + 1e-4 * m } else { 0.0 };
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!((x - y).abs() <= tol, "{name}: element {i}: got {x}, want {y} (tol {tol})");
    }
}

/// Checks a graph against the reference on the host and on baseline x86-64.
fn check(text: &str) {
    let g = kerf_ir::text::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let inputs: Vec<Tensor> = (0..g.inputs.len()).map(|k| input_for(&g, k)).collect();
    let want = reference(&g, &inputs);
    for cpu in ["native", "baseline"] {
        let got = run_jit(&g, &inputs, cpu);
        for (k, w) in want.iter().enumerate() {
            compare(&format!("{} ({cpu}) output {k}", g.name), &got[k], w);
        }
    }
}

/// Checks against given expected values.
fn check_values(text: &str, want: &[&[f32]]) {
    let g = kerf_ir::text::parse(text).unwrap();
    let inputs: Vec<Tensor> = (0..g.inputs.len()).map(|k| input_for(&g, k)).collect();
    for cpu in ["native", "baseline"] {
        let got = run_jit(&g, &inputs, cpu);
        for (k, w) in want.iter().enumerate() {
            let t = Tensor::from_f32(vec![w.len()], w).unwrap();
            compare(&format!("{} ({cpu})", g.name), &got[k], &t);
        }
    }
}

#[test]
fn unary_ops_with_tails() {
    for op in [
        "Relu",
        "Neg",
        "Abs",
        "Exp",
        "Tanh",
        "Sigmoid",
        "Erf",
        "Floor",
        "Ceil",
        "Round",
        "Sign",
        "Softsign",
        "HardSwish",
        "Softplus",
    ] {
        check(&format!(
            "graph \"{op}\"\n  input %0 \"x\": f32[3,7]\n  %1 = {op}(%0): f32[3,7] @\"u\"\n  output \"y\" = %1\n"
        ));
    }
    check("graph \"clip\"\n  input %0 \"x\": f32[11]\n  %1 = Clip{min=-0.5, max=1.25}(%0): f32[11] @\"c\"\n  output \"y\" = %1\n");
    check("graph \"lrelu\"\n  input %0 \"x\": f32[5]\n  %1 = LeakyRelu{alpha=0.1}(%0): f32[5] @\"c\"\n  output \"y\" = %1\n");
    check("graph \"gelu\"\n  input %0 \"x\": f32[9]\n  %1 = Gelu{tanh=true}(%0): f32[9] @\"c\"\n  output \"y\" = %1\n");
    check("graph \"log\"\n  input %0 \"x\": f32[9]\n  %1 = Abs(%0): f32[9] @\"a\"\n  %2 = Log(%1): f32[9] @\"l\"\n  %3 = Sqrt(%1): f32[9] @\"s\"\n  output \"y\" = %2\n  output \"z\" = %3\n");
}

#[test]
fn binary_broadcasting() {
    for op in ["Add", "Sub", "Mul", "Div", "Max", "Min", "PRelu"] {
        check(&format!(
            "graph \"{op}\"\n  input %0 \"a\": f32[2,3,5]\n  input %1 \"b\": f32[3,1]\n  %2 = {op}(%0, %1): f32[2,3,5] @\"b\"\n  %3 = {op}(%1, %0): f32[2,3,5] @\"c\"\n  output \"y\" = %2\n  output \"z\" = %3\n"
        ));
    }
    check("graph \"pow\"\n  input %0 \"a\": f32[7]\n  const %1 \"e\": f32[] = [2.0]\n  %2 = Pow(%0, %1): f32[7] @\"p\"\n  output \"y\" = %2\n");
    check("graph \"cmp\"\n  input %0 \"a\": f32[6]\n  input %1 \"b\": f32[1]\n  %2 = Greater(%0, %1): bool[6] @\"g\"\n  %3 = Where(%2, %0, %1): f32[6] @\"w\"\n  output \"y\" = %3\n  output \"m\" = %2\n");
    check("graph \"cast\"\n  input %0 \"a\": f32[6]\n  %1 = Cast{to=i64}(%0): i64[6] @\"c\"\n  %2 = Cast{to=f32}(%1): f32[6] @\"d\"\n  output \"y\" = %2\n  output \"i\" = %1\n");
}

#[test]
fn matmul_and_gemm() {
    check("graph \"mm\"\n  input %0 \"a\": f32[2,5,7]\n  input %1 \"b\": f32[7,6]\n  %2 = MatMul{layer=\"m\"}(%0, %1): f32[2,5,6] @\"m\"\n  output \"y\" = %2\n");
    check("graph \"mmc\"\n  input %0 \"a\": f32[3,9]\n  const %1 \"b\": f32[2,9,5] = iota(-1.0, 0.02)\n  %2 = MatMul{layer=\"m\"}(%0, %1): f32[2,3,5] @\"m\"\n  output \"y\" = %2\n");
    check("graph \"gemm\"\n  input %0 \"a\": f32[7,5]\n  const %1 \"b\": f32[6,7] = iota(0.5, -0.03)\n  const %2 \"c\": f32[1,6] = iota(0.1, 0.1)\n  %3 = Gemm{alpha=0.5, beta=2.0, trans_a=true, trans_b=true, layer=\"g\"}(%0, %1, %2): f32[5,6] @\"g\"\n  output \"y\" = %3\n");
    check("graph \"gemmr\"\n  input %0 \"a\": f32[3,4]\n  input %1 \"b\": f32[4,9]\n  input %2 \"c\": f32[3,9]\n  %3 = Gemm{alpha=1.5, beta=0.5, trans_a=false, trans_b=false, layer=\"g\"}(%0, %1, %2): f32[3,9] @\"g\"\n  output \"y\" = %3\n");
}

#[test]
fn movement_ops() {
    check("graph \"tr\"\n  input %0 \"x\": f32[2,3,5]\n  %1 = Transpose{perm=[2,0,1]}(%0): f32[5,2,3] @\"t\"\n  output \"y\" = %1\n");
    check("graph \"cat\"\n  input %0 \"x\": f32[2,3]\n  input %1 \"z\": f32[2,5]\n  %2 = Concat{axis=1}(%0, %1): f32[2,8] @\"c\"\n  output \"y\" = %2\n");
    check("graph \"split\"\n  input %0 \"x\": f32[3,7]\n  %1, %2 = Split{axis=1, sizes=[3,4]}(%0): f32[3,3], f32[3,4] @\"s\"\n  output \"a\" = %1\n  output \"b\" = %2\n");
    check("graph \"slice\"\n  input %0 \"x\": f32[6,7]\n  %1 = Slice{starts=[5,1], ends=[-1,7], steps=[-2,3]}(%0): f32[3,2] @\"s\"\n  output \"y\" = %1\n");
    check("graph \"expand\"\n  input %0 \"x\": f32[3,1]\n  %1 = Expand{shape=[2,3,5]}(%0): f32[2,3,5] @\"e\"\n  output \"y\" = %1\n");
    check("graph \"tile\"\n  input %0 \"x\": f32[2,3]\n  %1 = Tile{repeats=[2,3]}(%0): f32[4,9] @\"t\"\n  output \"y\" = %1\n");
    check("graph \"gather\"\n  input %0 \"x\": f32[4,5]\n  const %1 \"i\": i64[3] = [3,-1,0]\n  %2 = Gather{axis=1}(%0, %1): f32[4,3] @\"g\"\n  output \"y\" = %2\n");
    check("graph \"reshape_out\"\n  input %0 \"x\": f32[2,6]\n  %1 = Reshape{shape=[3,4]}(%0): f32[3,4] @\"r\"\n  output \"y\" = %1\n  output \"x\" = %0\n");
}

/// Interleaving copies (two source rows into alternate elements: a pixel
/// shuffle's last step) of every length class: whole vectors in loop trips
/// and leftover steps, a tail shorter than a vector, f32 and u8.
#[test]
fn interleaving_copies_of_every_length() {
    for (n, dt) in [(20, "f32"), (23, "f32"), (203, "f32"), (16, "u8"), (23, "u8"), (40, "u8"), (203, "u8")] {
        let text = format!(
            "graph \"zip\"\n  input %0 \"x\": {dt}[3,2,{n}]\n  %1 = Transpose{{perm=[0,2,1]}}(%0): {dt}[3,{n},2] @\"t\"\n  output \"y\" = %1\n"
        );
        check(&text);
    }
}

/// Contiguous row copies of every length class: whole vectors within one
/// unrolled run (8 of 16 bytes), loop trips plus leftover vectors, byte
/// tails, and rows shorter than a vector; f32 and u8.
#[test]
fn row_copies_of_every_length() {
    for (width, dt) in [(32, "f32"), (47, "f32"), (48, "f32"), (200, "f32"), (3, "f32"), (47, "u8"), (300, "u8")] {
        let text = format!(
            "graph \"rows\"\n  input %0 \"x\": {dt}[3,{}]\n  %1 = Slice{{starts=[0,1], ends=[3,{}], steps=[1,1]}}(%0): {dt}[3,{width}] @\"s\"\n  output \"y\" = %1\n",
            width + 5,
            width + 1
        );
        check(&text);
    }
}

#[test]
fn reductions() {
    for k in ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceL2", "ReduceSumSquare"] {
        check(&format!(
            "graph \"{k}\"\n  input %0 \"x\": f32[3,4,5]\n  %1 = {k}{{axes=[0,2], keepdims=true}}(%0): f32[1,4,1] @\"r\"\n  output \"y\" = %1\n"
        ));
    }
}

#[test]
fn conv_pool_norm_against_hand_values() {
    // 1-D conv, padding 1, stride 2: x = [-2, -2+7/24*..] computed here in f64
    let g = "graph \"c1\"\n  input %0 \"x\": f32[1,1,5]\n  const %1 \"w\": f32[1,1,3] = [1.0,2.0,3.0]\n  const %2 \"b\": f32[1] = [0.5]\n  %3 = Conv{kernel=[3], strides=[2], dilations=[1], pads=[1,1], group=1, layer=\"c\"}(%0, %1, %2): f32[1,1,3] @\"c\"\n  output \"y\" = %3\n";
    let x: Vec<f64> = (0..5).map(|i| (((i * 7919) % 97) as f64 / 24.0) - 2.0).collect();
    let conv = |o: usize| {
        let mut s = 0.5;
        for t in 0..3 {
            let i = (o * 2 + t) as i64 - 1;
            if (0..5).contains(&i) {
                s += x[i as usize] * [1.0, 2.0, 3.0][t];
            }
        }
        s as f32
    };
    check_values(g, &[&[conv(0), conv(1), conv(2)]]);
    // average pool with and without padded cells in the divisor
    let x4: Vec<f64> = (0..4).map(|i| (((i * 7919) % 97) as f64 / 24.0) - 2.0).collect();
    let g = "graph \"ap\"\n  input %0 \"x\": f32[1,1,4]\n  %1 = AveragePool{kernel=[3], strides=[2], dilations=[1], pads=[1,1], ceil_mode=false, count_include_pad=false}(%0): f32[1,1,2] @\"a\"\n  %2 = AveragePool{kernel=[3], strides=[2], dilations=[1], pads=[1,1], ceil_mode=false, count_include_pad=true}(%0): f32[1,1,2] @\"b\"\n  output \"y\" = %1\n  output \"z\" = %2\n";
    let a0 = (x4[0] + x4[1]) / 2.0;
    let a1 = (x4[1] + x4[2] + x4[3]) / 3.0;
    check_values(g, &[&[a0 as f32, a1 as f32], &[((x4[0] + x4[1]) / 3.0) as f32, a1 as f32]]);
    // softmax / layer norm over 6 values
    let x6: Vec<f64> = (0..6).map(|i| (((i * 7919) % 97) as f64 / 24.0) - 2.0).collect();
    let mx = x6.iter().cloned().fold(f64::MIN, f64::max);
    let s: f64 = x6.iter().map(|v| (v - mx).exp()).sum();
    let sm: Vec<f32> = x6.iter().map(|v| ((v - mx).exp() / s) as f32).collect();
    let lsm: Vec<f32> = x6.iter().map(|v| (v - mx - s.ln()) as f32).collect();
    let mean = x6.iter().sum::<f64>() / 6.0;
    let var = x6.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 6.0;
    let ln: Vec<f32> = x6.iter().map(|v| ((v - mean) / (var + 1e-5).sqrt() * 2.0 + 0.5) as f32).collect();
    let g = "graph \"sm\"\n  input %0 \"x\": f32[1,6]\n  const %1 \"s\": f32[6] = fill(2.0)\n  const %2 \"b\": f32[6] = fill(0.5)\n  %3 = Softmax{axis=1}(%0): f32[1,6] @\"s\"\n  %4 = LogSoftmax{axis=1}(%0): f32[1,6] @\"l\"\n  %5 = LayerNormalization{axis=1, epsilon=1e-5}(%0, %1, %2): f32[1,6] @\"n\"\n  output \"a\" = %3\n  output \"b\" = %4\n  output \"c\" = %5\n";
    check_values(g, &[&sm, &lsm, &ln]);
}

/// Direct-sum reference for a 2-D conv with weights iota(-0.5, 0.01) and
/// bias iota(0, 0.1); checks the JIT (GEMM path for >= 4 output channels
/// per group, the pixel-vector path below that).
#[allow(clippy::too_many_arguments)]
fn conv_case(c: usize, h: usize, w: usize, oc: usize, g: usize, k: usize, s: usize, d: usize, p: [usize; 4]) {
    let icg = c / g;
    let oh = (h + p[0] + p[2] - d * (k - 1) - 1) / s + 1;
    let ow = (w + p[1] + p[3] - d * (k - 1) - 1) / s + 1;
    let text = format!(
        "graph \"gc\"\n  input %0 \"x\": f32[1,{c},{h},{w}]\n  const %1 \"w\": f32[{oc},{icg},{k},{k}] = iota(-0.5, 0.01)\n  const %2 \"b\": f32[{oc}] = iota(0.0, 0.1)\n  %3 = Conv{{kernel=[{k},{k}], strides=[{s},{s}], dilations=[{d},{d}], pads=[{},{},{},{}], group={g}, layer=\"c\"}}(%0, %1, %2): f32[1,{oc},{oh},{ow}] @\"c\"\n  output \"y\" = %3\n",
        p[0], p[1], p[2], p[3]
    );
    let x: Vec<f64> = (0..c * h * w).map(|i| (((i * 7919) % 97) as f64 / 24.0) - 2.0).collect();
    let wt: Vec<f64> = (0..oc * icg * k * k).map(|i| -0.5 + 0.01 * i as f64).map(|v| v as f32 as f64).collect();
    let mut want = Vec::new();
    for o in 0..oc {
        let gi = o / (oc / g);
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = (0.1 * o as f64) as f32 as f64;
                for ic in 0..icg {
                    for ky in 0..k {
                        for kx in 0..k {
                            let iy = (oy * s + d * ky) as i64 - p[0] as i64;
                            let ix = (ox * s + d * kx) as i64 - p[1] as i64;
                            if (0..h as i64).contains(&iy) && (0..w as i64).contains(&ix) {
                                let ch = gi * icg + ic;
                                acc += x[(ch * h + iy as usize) * w + ix as usize]
                                    * wt[((o * icg + ic) * k + ky) * k + kx];
                            }
                        }
                    }
                }
                want.push(acc as f32);
            }
        }
    }
    check_values(&text, &[&want]);
}

#[test]
fn grouped_conv_matches_direct_sum() {
    // GEMM path: 5 output channels per group, dilation 2, asymmetric pads
    conv_case(4, 6, 7, 10, 2, 3, 1, 2, [2, 1, 2, 1]);
    // GEMM path with stride 2 (strided panel packing), odd width
    conv_case(3, 9, 11, 8, 1, 3, 2, 1, [1, 1, 1, 1]);
    // depthwise (pixel-vector path), stride 1 and stride 2, tails
    conv_case(5, 7, 9, 5, 5, 3, 1, 1, [1, 1, 1, 1]);
    conv_case(4, 8, 11, 4, 4, 3, 2, 1, [1, 1, 1, 1]);
    // 2 output channels per group, dilation 2
    conv_case(4, 9, 10, 4, 2, 3, 1, 2, [2, 2, 2, 2]);
}

/// The test input of `input_for` as f64 (what the graph's input holds).
fn xs(n: usize) -> Vec<f64> {
    (0..n).map(|i| (((i * 7919) % 97) as f64 / 24.0) - 2.0).collect()
}

/// Constant padding of byte and 2- and 8-byte tensors (the integer conv's
/// zero-point padding of u8 codes): the fill in 16-byte vectors and
/// single elements, each row copied in 16-byte vectors and 8-, 4-, 2-
/// and 1-byte moves (rows of 1 to 37 bytes), against the reference on
/// `native` and `baseline`.
#[test]
fn constant_pads_of_narrow_elements() {
    for (dt, v) in [("u8", "100.0"), ("i16", "-7.0"), ("f64", "3.0")] {
        for w in [1usize, 3, 14, 16, 23, 37] {
            let (h, pw) = (5usize, w + 3);
            check(&format!(
                "graph \"p\"\n  input %0 \"x\": {dt}[1,2,{h},{w}]\n  %1 = Pad{{pads=[0,0,1,2,0,0,1,1], mode=constant, value={v}}}(%0): {dt}[1,2,{},{pw}] @\"p\"\n  output \"y\" = %1\n",
                h + 2
            ));
        }
    }
}

#[test]
fn pad_modes() {
    let x = xs(6); // [2,3]
    let at = |r: usize, c: usize| x[r * 3 + c] as f32;
    let g = |mode: &str| {
        format!("graph \"p\"\n  input %0 \"x\": f32[2,3]\n  %1 = Pad{{pads=[1,2,0,1], mode={mode}, value=0.5}}(%0): f32[3,6] @\"p\"\n  output \"y\" = %1\n")
    };
    // rows: pad 1 before, 0 after; cols: 2 before, 1 after
    let build = |f: &dyn Fn(i64, i64) -> f32| -> Vec<f32> {
        let mut v = Vec::new();
        for r in 0..3i64 {
            for c in 0..6i64 {
                v.push(f(r - 1, c - 2));
            }
        }
        v
    };
    let constant =
        build(&|r, c| if (0..2).contains(&r) && (0..3).contains(&c) { at(r as usize, c as usize) } else { 0.5 });
    let edge = build(&|r, c| at(r.clamp(0, 1) as usize, c.clamp(0, 2) as usize));
    let refl = |i: i64, n: i64| {
        if i < 0 {
            -i
        } else if i >= n {
            2 * (n - 1) - i
        } else {
            i
        }
    };
    let reflect = build(&|r, c| at(refl(r, 2) as usize, refl(c, 3) as usize));
    let wrap = build(&|r, c| at(r.rem_euclid(2) as usize, c.rem_euclid(3) as usize));
    check_values(&g("constant"), &[&constant]);
    check_values(&g("edge"), &[&edge]);
    check_values(&g("reflect"), &[&reflect]);
    check_values(&g("wrap"), &[&wrap]);
}

#[test]
fn batch_norm_and_argmax() {
    let x = xs(2 * 3 * 5);
    let (sc, bi, mu, va) = ([1.0, 2.0, 0.5], [0.0, 0.1, -0.2], [0.3, -0.1, 0.0], [1.0, 0.25, 4.0]);
    let mut bn = Vec::new();
    for n in 0..2 {
        for c in 0..3 {
            for p in 0..5 {
                let v = x[(n * 3 + c) * 5 + p];
                bn.push(((v - mu[c]) / (va[c] + 1e-5f64).sqrt() * sc[c] + bi[c]) as f32);
            }
        }
    }
    let g = "graph \"bn\"\n  input %0 \"x\": f32[2,3,5]\n  const %1 \"s\": f32[3] = [1.0,2.0,0.5]\n  const %2 \"b\": f32[3] = [0.0,0.1,-0.2]\n  const %3 \"m\": f32[3] = [0.3,-0.1,0.0]\n  const %4 \"v\": f32[3] = [1.0,0.25,4.0]\n  %5 = BatchNormalization{epsilon=1e-5}(%0, %1, %2, %3, %4): f32[2,3,5] @\"bn\"\n  output \"y\" = %5\n";
    check_values(g, &[&bn]);
    // ArgMax over the last axis of [6,5] (i64 result), compared as values
    let x = xs(30);
    let am: Vec<f32> = (0..6)
        .map(|r| {
            let row = &x[r * 5..r * 5 + 5];
            let mut best = 0;
            for (i, v) in row.iter().enumerate() {
                if *v > row[best] {
                    best = i;
                }
            }
            best as f32
        })
        .collect();
    let g = "graph \"am\"\n  input %0 \"x\": f32[6,5]\n  %1 = ArgMax{axis=1, keepdims=false, select_last=false}(%0): i64[6] @\"a\"\n  %2 = Cast{to=f32}(%1): f32[6] @\"c\"\n  output \"y\" = %2\n";
    check_values(g, &[&am]);
}

#[test]
fn conv_transpose_matches_scatter() {
    // x [1,2,3,4], w [2,3,3,3] (C_in=2, C_out=3), stride 2, pads 1, output_padding 1
    let x = xs(24);
    let w: Vec<f64> = (0..54).map(|i| (-0.3 + 0.02 * i as f64) as f32 as f64).collect();
    let (oh, ow) = (2 * (3 - 1) + 1 + 2 + 1 - 2, 2 * (4 - 1) + 1 + 2 + 1 - 2);
    let mut y = vec![0.25f64; 3 * oh * ow];
    for ci in 0..2 {
        for iy in 0..3 {
            for ix in 0..4 {
                for co in 0..3 {
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let oy = (iy * 2 + ky) as i64 - 1;
                            let ox = (ix * 2 + kx) as i64 - 1;
                            if (0..oh as i64).contains(&oy) && (0..ow as i64).contains(&ox) {
                                y[(co * oh + oy as usize) * ow + ox as usize] +=
                                    x[(ci * 3 + iy) * 4 + ix] * w[((ci * 3 + co) * 3 + ky) * 3 + kx];
                            }
                        }
                    }
                }
            }
        }
    }
    let want: Vec<f32> = y.iter().map(|&v| v as f32).collect();
    let g = format!("graph \"ct\"\n  input %0 \"x\": f32[1,2,3,4]\n  const %1 \"w\": f32[2,3,3,3] = iota(-0.3, 0.02)\n  const %2 \"b\": f32[3] = fill(0.25)\n  %3 = ConvTranspose{{kernel=[3,3], strides=[2,2], dilations=[1,1], pads=[1,1,1,1], group=1, output_padding=[1,1], layer=\"ct\"}}(%0, %1, %2): f32[1,3,{oh},{ow}] @\"ct\"\n  output \"y\" = %3\n");
    check_values(&g, &[&want]);
}

fn sigm(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// f64 reference of ONNX LSTM (lstm=true, gates i,o,f,c, peepholes) or GRU
/// (gates z,r,h), both directions, default activations.
#[allow(clippy::too_many_arguments)]
fn rnn_ref(
    (lstm, coupled): (bool, bool),
    lbr: bool,
    x: &[f64],
    (seq, batch, input, h, dn): (usize, usize, usize, usize, usize),
    w: &[f64],
    r: &[f64],
    b: &[f64],
    h0: f64,
    c0: f64,
    p: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let ng = if lstm { 4 } else { 3 };
    let mut y = vec![0.0; seq * dn * batch * h];
    let mut yh = vec![h0; dn * batch * h];
    let mut yc = vec![c0; dn * batch * h];
    for d in 0..dn {
        for s in 0..seq {
            let t = if d == 1 { seq - 1 - s } else { s };
            for bi in 0..batch {
                let hp: Vec<f64> = (0..h).map(|u| yh[(d * batch + bi) * h + u]).collect();
                let cp: Vec<f64> = (0..h).map(|u| yc[(d * batch + bi) * h + u]).collect();
                let xw = |j: usize| -> f64 {
                    (0..input).map(|i| w[(d * ng * h + j) * input + i] * x[(t * batch + bi) * input + i]).sum::<f64>()
                        + b[d * 2 * ng * h + j]
                };
                let rh =
                    |j: usize, v: &[f64]| -> f64 { (0..h).map(|i| r[(d * ng * h + j) * h + i] * v[i]).sum::<f64>() };
                let rb = |j: usize| b[d * 2 * ng * h + ng * h + j];
                let mut hn = vec![0.0; h];
                if lstm {
                    for u in 0..h {
                        let pi = p[d * 3 * h + u];
                        let po = p[d * 3 * h + h + u];
                        let pf = p[d * 3 * h + 2 * h + u];
                        let i = sigm(xw(u) + rh(u, &hp) + rb(u) + pi * cp[u]);
                        let f = if coupled {
                            1.0 - i
                        } else {
                            sigm(xw(2 * h + u) + rh(2 * h + u, &hp) + rb(2 * h + u) + pf * cp[u])
                        };
                        let c = (xw(3 * h + u) + rh(3 * h + u, &hp) + rb(3 * h + u)).tanh();
                        let cn = f * cp[u] + i * c;
                        let o = sigm(xw(h + u) + rh(h + u, &hp) + rb(h + u) + po * cn);
                        hn[u] = o * cn.tanh();
                        yc[(d * batch + bi) * h + u] = cn;
                    }
                } else {
                    let z: Vec<f64> = (0..h).map(|u| sigm(xw(u) + rh(u, &hp) + rb(u))).collect();
                    let rr: Vec<f64> = (0..h).map(|u| sigm(xw(h + u) + rh(h + u, &hp) + rb(h + u))).collect();
                    let rhp: Vec<f64> = (0..h).map(|u| rr[u] * hp[u]).collect();
                    for u in 0..h {
                        let j = 2 * h + u;
                        let hh = if lbr {
                            (xw(j) + rr[u] * (rh(j, &hp) + rb(j))).tanh()
                        } else {
                            (xw(j) + rh(j, &rhp) + rb(j)).tanh()
                        };
                        hn[u] = (1.0 - z[u]) * hh + z[u] * hp[u];
                    }
                }
                for u in 0..h {
                    yh[(d * batch + bi) * h + u] = hn[u];
                    y[((t * dn + d) * batch + bi) * h + u] = hn[u];
                }
            }
        }
    }
    (y, yh, yc)
}

fn iota(n: usize, a: f64, s: f64) -> Vec<f64> {
    (0..n).map(|i| (a + s * i as f64) as f32 as f64).collect()
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

#[test]
fn bidirectional_lstm_with_peepholes() {
    let (seq, batch, input, h) = (3, 2, 3, 5);
    let x = xs(seq * batch * input);
    let (w, r, b, p) =
        (iota(2 * 20 * 3, -0.5, 0.01), iota(2 * 20 * 5, 0.3, -0.005), iota(80, -0.1, 0.003), iota(30, 0.05, 0.01));
    for coupled in [false, true] {
        let (y, yh, yc) = rnn_ref((true, coupled), false, &x, (seq, batch, input, h, 2), &w, &r, &b, 0.1, -0.2, &p);
        let g = r#"graph "lstm"
  input %0 "x": f32[3,2,3]
  const %1 "w": f32[2,20,3] = iota(-0.5, 0.01)
  const %2 "r": f32[2,20,5] = iota(0.3, -0.005)
  const %3 "b": f32[2,40] = iota(-0.1, 0.003)
  const %4 "h0": f32[2,2,5] = fill(0.1)
  const %5 "c0": f32[2,2,5] = fill(-0.2)
  const %6 "p": f32[2,15] = iota(0.05, 0.01)
  %7, %8, %9 = LSTM{hidden=5, direction=bidirectional, activations="Sigmoid,Tanh,Tanh,Sigmoid,Tanh,Tanh", clip=0.0, input_forget=false, layer="l"}(%0, %1, %2, %3, %4, %5, %6): f32[3,2,2,5], f32[2,2,5], f32[2,2,5] @"l"
  output "y" = %7
  output "yh" = %8
  output "yc" = %9
"#;
        let g = g.replace("input_forget=false", if coupled { "input_forget=true" } else { "input_forget=false" });
        check_values(&g, &[&f32s(&y), &f32s(&yh), &f32s(&yc)]);
    }
}

#[test]
fn gru_both_reset_modes() {
    let (seq, batch, input, h) = (4, 1, 3, 6);
    let x = xs(seq * batch * input);
    let (w, r, b) = (iota(18 * 3, -0.4, 0.013), iota(18 * 6, 0.2, -0.007), iota(36, -0.1, 0.005));
    for lbr in [false, true] {
        let (y, yh, _) = rnn_ref((false, false), lbr, &x, (seq, batch, input, h, 1), &w, &r, &b, 0.0, 0.0, &[]);
        let g = format!(
            r#"graph "gru"
  input %0 "x": f32[4,1,3]
  const %1 "w": f32[1,18,3] = iota(-0.4, 0.013)
  const %2 "r": f32[1,18,6] = iota(0.2, -0.007)
  const %3 "b": f32[1,36] = iota(-0.1, 0.005)
  const %4 "h0": f32[1,1,6] = fill(0.0)
  %5, %6 = GRU{{hidden=6, direction=forward, activations="Sigmoid,Tanh", clip=0.0, linear_before_reset={lbr}, layer="g"}}(%0, %1, %2, %3, %4): f32[4,1,1,6], f32[1,1,6] @"g"
  output "y" = %5
  output "yh" = %6
"#
        );
        check_values(&g, &[&f32s(&y), &f32s(&yh)]);
    }
}

#[test]
fn pointwise_conv_blocks_and_tails() {
    // 1x1 convs: plane of 17x19 = 323 pixels (one 256 block + a 67-pixel
    // tail ending in a partial panel), groups 1 and 2
    conv_case(6, 17, 19, 8, 1, 1, 1, 1, [0, 0, 0, 0]);
    conv_case(6, 3, 5, 12, 2, 1, 1, 1, [0, 0, 0, 0]);
}

#[test]
fn constant_and_repeated_outputs_are_copied() {
    let g = "graph \"co\"\n  input %0 \"x\": f32[3]\n  const %1 \"c\": f32[2] = [1.5,-2.0]\n  %2 = Neg(%0): f32[3] @\"n\"\n  output \"a\" = %2\n  output \"c\" = %1\n  output \"b\" = %2\n";
    let x = xs(3);
    let neg: Vec<f32> = x.iter().map(|v| -*v as f32).collect();
    check_values(g, &[&neg, &[1.5, -2.0], &neg]);
}

/// MaxPool's f32 step (`lower/pool.rs`, `max_f32`): NaN (all bits set) as
/// soon as a tap is NaN, else `acc < v ? v : acc` over the taps in row-major
/// order from -inf, so equal values (zeros of either sign) keep the earlier
/// tap's bits. Checked bit for bit on the `Fast2d` path (dilation 1: vector
/// body at strides 1 and 2, scalar interior and border columns) and the
/// generic path (dilation 2), on `native` and `baseline`.
#[test]
fn max_pool_nan_and_signed_zeros_bit_exact() {
    let (c, h, w) = (2usize, 11usize, 23usize);
    let x: Vec<f32> = (0..c * h * w)
        .map(|i| match i % 17 {
            3 => -0.0,
            5 | 11 => 0.0,
            _ if i % 61 == 7 => f32::NAN,
            _ => -((((i * 7919) % 97) as f32) / 24.0),
        })
        .collect();
    let ref_pool = |k: usize, s: usize, p: usize, d: usize, oh: usize, ow: usize| -> Vec<u32> {
        let mut out = Vec::new();
        for ch in 0..c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = f32::NEG_INFINITY;
                    for ky in 0..k {
                        for kx in 0..k {
                            let (iy, ix) = ((oy * s + ky * d) as i64 - p as i64, (ox * s + kx * d) as i64 - p as i64);
                            if iy < 0 || ix < 0 || iy >= h as i64 || ix >= w as i64 {
                                continue;
                            }
                            let v = x[(ch * h + iy as usize) * w + ix as usize];
                            acc = if acc.is_nan() || v.is_nan() {
                                f32::from_bits(u32::MAX)
                            } else if acc < v {
                                v
                            } else {
                                acc
                            };
                        }
                    }
                    out.push(acc.to_bits());
                }
            }
        }
        out
    };
    for (k, s, p, d) in [(3, 1, 1, 1), (3, 2, 1, 1), (2, 2, 0, 1), (3, 1, 2, 2)] {
        let oh = (h + 2 * p - d * (k - 1) - 1) / s + 1;
        let ow = (w + 2 * p - d * (k - 1) - 1) / s + 1;
        let text = format!(
            "graph \"mp\"\n  input %0 \"x\": f32[1,{c},{h},{w}]\n  %1 = MaxPool{{kernel=[{k},{k}], strides=[{s},{s}], dilations=[{d},{d}], pads=[{p},{p},{p},{p}], ceil_mode=false}}(%0): f32[1,{c},{oh},{ow}] @\"m\"\n  output \"y\" = %1\n"
        );
        let g = kerf_ir::text::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let input = Tensor::from_f32(vec![1, c, h, w], &x).unwrap();
        let want = ref_pool(k, s, p, d, oh, ow);
        assert!(want.contains(&u32::MAX) && want.contains(&(-0.0f32).to_bits()));
        for cpu in ["native", "baseline"] {
            let got = run_jit(&g, std::slice::from_ref(&input), cpu);
            let bits: Vec<u32> = got[0].chunks(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            for (i, (a, b)) in bits.iter().zip(&want).enumerate() {
                assert_eq!(a, b, "MaxPool k{k} s{s} p{p} d{d} ({cpu}): element {i}: got {a:#x}, want {b:#x}");
            }
        }
    }
}

/// MaxPool of bytes (`lower/pool.rs`, `Fast2d` over 16-byte vectors: the
/// `int8-maxpool` rule's pool of u8 codes), u8 compared unsigned and i8
/// signed, bit for bit against a max over the valid taps: the vector body
/// at strides 1 and 2 (stride 2 deinterleaves 16-bit lanes), its scalar
/// interior and border columns, ceil mode, and the generic path
/// (dilation 2), on `native` and `baseline`.
#[test]
fn max_pool_bytes_bit_exact() {
    // odd spans (10 - 3, 72 - 3): ceil mode adds a partial last window
    let (c, h, w) = (3usize, 10usize, 72usize);
    let codes: Vec<u8> = (0..c * h * w).map(|i| ((i * 7919 + i / 13) % 256) as u8).collect();
    for (dt, signed) in [("u8", false), ("i8", true)] {
        for (k, s, p, d, ceil) in
            [(3, 2, 1, 1, false), (3, 1, 1, 1, false), (2, 2, 0, 1, false), (3, 2, 0, 1, true), (3, 1, 2, 2, false)]
        {
            let span = |n: usize| {
                let e = n + 2 * p - d * (k - 1) - 1;
                if ceil {
                    e.div_ceil(s) + 1
                } else {
                    e / s + 1
                }
            };
            let (oh, ow) = (span(h), span(w));
            let geo = common::PoolGeo {
                c,
                hw: (h, w),
                kernel: (k, k),
                strides: (s, s),
                dilations: (d, d),
                pads: (p, p),
                out: (oh, ow),
            };
            let want = common::byte_max_pool(&codes, signed, &geo);
            let text = format!(
                "graph \"mp\"\n  input %0 \"x\": {dt}[1,{c},{h},{w}]\n  %1 = MaxPool{{kernel=[{k},{k}], strides=[{s},{s}], dilations=[{d},{d}], pads=[{p},{p},{p},{p}], ceil_mode={ceil}}}(%0): {dt}[1,{c},{oh},{ow}] @\"m\"\n  output \"y\" = %1\n"
            );
            let g = kerf_ir::text::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            let dtype = if signed { kerf_ir::DType::I8 } else { kerf_ir::DType::U8 };
            let input = Tensor::from_bytes(dtype, vec![1, c, h, w], codes.clone()).unwrap();
            for cpu in ["native", "baseline"] {
                let got = run_jit(&g, std::slice::from_ref(&input), cpu);
                for (i, (a, b)) in got[0].iter().zip(&want).enumerate() {
                    assert_eq!(a, b, "{dt} MaxPool k{k} s{s} p{p} d{d} ceil {ceil} ({cpu}): element {i}");
                }
            }
        }
    }
}

/// Concats written in place (`arena::decide_aliases`): the producers write
/// their slices of the output. Members read again after the concat, a
/// member that is also an input of a second concat (copied, not aliased:
/// its group is the first concat's), a nested concat of a concat, an
/// elementwise op in place over a member's slice after its last use, and a
/// concat of a graph input (copied): all equal the reference.
#[test]
fn concats_in_place() {
    // two concats, the second nesting the first
    let members = "  input %0 \"x\": f32[1,3,4,5]
  %1 = Relu(%0): f32[1,3,4,5] @\"a\"
  %2 = Neg(%0): f32[1,3,4,5] @\"b\"
  %3 = Concat{axis=1}(%1, %2): f32[1,6,4,5] @\"c1\"
  %4 = Abs(%0): f32[1,3,4,5] @\"d\"
  %5 = Concat{axis=1}(%3, %4): f32[1,9,4,5] @\"c2\"
";
    check(&format!(
        "graph \"cat_in_place\"
{members}  %6 = Concat{{axis=2}}(%1, %4): f32[1,3,8,5] @\"c3\"
  %7 = Sigmoid(%2): f32[1,3,4,5] @\"s\"
  %8 = Concat{{axis=1}}(%0, %7): f32[1,6,4,5] @\"c4\"
  output \"y\" = %5
  output \"z\" = %6
  output \"w\" = %8
"
    ));
    let text = format!("graph \"t\"\n{members}  %6 = Exp(%5): f32[1,9,4,5] @\"e\"\n  output \"y\" = %6\n");
    let g = kerf_ir::text::parse(&text).unwrap();
    let al = kerf_targets::arena::decide_aliases(&g);
    assert_eq!(al.free, vec![false, false, true, false, true, false], "both concats need no code");
    let at = |v: u32| al.group_of(kerf_ir::ValueId(v));
    let c2 = kerf_ir::ValueId(5);
    assert_eq!([at(1), at(2), at(3), at(4), at(5)], [(c2, 0), (c2, 240), (c2, 0), (c2, 480), (c2, 0)]);
}

/// 1x1 convs on one-pixel planes run as a Gemm (`matmul::pointwise_on_one_pixel`):
/// with and without bias, several images, 1-D and 2-D windows, against the reference;
/// a padded one (the pixel reads padding) stays a conv.
#[test]
fn one_pixel_pointwise_convs() {
    let w = |m: usize, c: usize, sp: &str| format!("const %1 \"w\": f32[{m},{c}{sp}] = iota(-0.5, 0.01)");
    check(&format!(
        "graph \"pw1\"\n  input %0 \"x\": f32[3,40,1,1]\n  {}\n  const %2 \"b\": f32[20] = iota(0.0, 0.1)\n  %3 = Conv{{kernel=[1,1], strides=[1,1], dilations=[1,1], pads=[0,0,0,0], group=1, layer=\"c\"}}(%0, %1, %2): f32[3,20,1,1] @\"c\"\n  output \"y\" = %3\n",
        w(20, 40, ",1,1")
    ));
    check(&format!(
        "graph \"pw2\"\n  input %0 \"x\": f32[1,17,1]\n  {}\n  %3 = Conv{{kernel=[1], strides=[2], dilations=[1], pads=[0,0], group=1, layer=\"c\"}}(%0, %1): f32[1,9,1] @\"c\"\n  output \"y\" = %3\n",
        w(9, 17, ",1")
    ));
    check(&format!(
        "graph \"pw3\"\n  input %0 \"x\": f32[1,8,1,1]\n  {}\n  const %2 \"b\": f32[5] = iota(0.0, 0.1)\n  %3 = Conv{{kernel=[1,1], strides=[2,2], dilations=[1,1], pads=[1,1,0,0], group=1, layer=\"c\"}}(%0, %1, %2): f32[1,5,1,1] @\"c\"\n  output \"y\" = %3\n",
        w(5, 8, ",1,1")
    ));
}

/// Stride-2 KxK convs on rows wide enough for the packed conv's row panels
/// (`conv_packed::pack_rows`): interior panels whose eight floats lie in the
/// row take the even lanes of two loads, the last ones (and the borders) go
/// lane by lane; even and odd widths, with and without padding.
#[test]
fn stride2_packed_conv_rows() {
    for (w, p, kk) in [(41usize, 0usize, 3usize), (40, 1, 3), (39, 2, 5), (38, 0, 2)] {
        let ow = (w + 2 * p - kk) / 2 + 1;
        let text = format!(
            "graph \"s2\"\n  input %0 \"x\": f32[1,3,5,{w}]\n  const %1 \"w\": f32[8,3,{kk},{kk}] = iota(-0.5, 0.01)\n  const %2 \"b\": f32[8] = iota(0.0, 0.1)\n  %3 = Conv{{kernel=[{kk},{kk}], strides=[2,2], dilations=[1,1], pads=[{p},{p},{p},{p}], group=1, layer=\"c\"}}(%0, %1, %2): f32[1,8,{},{ow}] @\"c\"\n  output \"y\" = %3\n",
            (5 + 2 * p - kk) / 2 + 1
        );
        check(&text);
    }
}

/// A pixel shuffle (DepthToSpace CRD, and the integer ConvTranspose's
/// output, `int8-convtranspose`): `[n, c, 2, 2, h, w] → [n, c, h, 2, w, 2]`.
/// Its copy interleaves two source rows into one output row, 16 bytes of
/// each per vector step: lanes of 4 bytes (f32), 2 (i16) and 1 (u8), rows
/// of whole vectors and of vectors plus a tail, and a row too short for a
/// vector (element by element).
#[test]
fn pixel_shuffles_interleave_rows() {
    for (dt, w) in [("f32", 13), ("f32", 8), ("f32", 3), ("i16", 19), ("u8", 37), ("u8", 16), ("u8", 9)] {
        let (c, h) = (3, 5);
        let cast_in = if dt == "f32" {
            "  %5 = Identity(%0): f32[1,12,5,W] @\"c\"\n".to_string()
        } else {
            // 0..=100: exact in every type
            format!("  %3 = Relu(%0): f32[1,12,5,W] @\"r\"\n  const %4 \"k\": f32[] = [50.0]\n  %6 = Mul(%3, %4): f32[1,12,5,W] @\"m\"\n  %5 = Cast{{to={dt}}}(%6): {dt}[1,12,5,W] @\"c\"\n")
        };
        let text = format!(
            "graph \"shuffle\"\n  input %0 \"x\": f32[1,12,5,W]\n{cast_in}  %7 = Reshape{{shape=[1,{c},2,2,{h},W]}}(%5): {dt}[1,{c},2,2,{h},W] @\"a\"\n  %8 = Transpose{{perm=[0,1,4,2,5,3]}}(%7): {dt}[1,{c},{h},2,W,2] @\"t\"\n  %9 = Reshape{{shape=[1,{c},{},{}]}}(%8): {dt}[1,{c},{},{}] @\"b\"\n  %10 = Cast{{to=f32}}(%9): f32[1,{c},{},{}] @\"o\"\n  output \"y\" = %10\n",
            2 * h,
            2 * w,
            2 * h,
            2 * w,
            2 * h,
            2 * w
        )
        .replace('W', &w.to_string());
        check(&text);
    }
}

/// A Gather's indices read at run time: in range (negative ones counting
/// from the end) the reference's values; outside `[-n, n)`, on either side
/// and in either index type, the run ends with
/// `status::INDEX_OUT_OF_RANGE` instead of a clamped result (the
/// runtime's guarded run: no store outside the outputs either way), and
/// the next run with good indices is right again (the word is zeroed per
/// run).
#[test]
fn gather_indices_out_of_range_end_the_run() {
    use kerf_runtime::{status, RuntimeError};
    for it in ["i64", "i32"] {
        let text = format!(
            "graph \"gather_rt\"\n  input %0 \"x\": f32[4,5]\n  input %1 \"i\": {it}[2,3]\n  \
             %2 = Gather{{axis=1}}(%0, %1): f32[4,2,3] @\"g\"\n  %3 = Relu(%2): f32[4,2,3] @\"r\"\n  output \"y\" = %3\n"
        );
        let g = kerf_ir::text::parse(&text).unwrap();
        let x = input_for(&g, 0);
        let idx = |v: &[f64]| Tensor::from_f64_values(g.ty(g.inputs[1]).dtype, vec![2, 3], v).unwrap();
        let good = idx(&[4.0, -5.0, 0.0, -1.0, 2.0, 3.0]);
        let want = reference(&g, &[x.clone(), good.clone()]);
        for cpu in ["native", "baseline"] {
            let jm = jit_compile(&g, &CompileOptions::parse("host", cpu, "t").unwrap()).unwrap();
            let m = jm.model();
            let run = |i: &Tensor| {
                let views = [x.bytes(), i.bytes()];
                // SAFETY: no runtime is passed (serial run).
                unsafe { m.run_guarded(&views, None) }
            };
            let got = run(&good).unwrap_or_else(|e| panic!("{it} ({cpu}): {e}"));
            compare(&format!("gather {it} ({cpu})"), &got[0], &want[0]);
            for bad in [5.0, -6.0, 1e6] {
                let err = run(&idx(&[0.0, 1.0, bad, 2.0, 3.0, 4.0])).expect_err("an index out of range");
                assert!(
                    matches!(err, RuntimeError::Status(s) if s == status::INDEX_OUT_OF_RANGE),
                    "{it} ({cpu}) index {bad}: {err}"
                );
                assert!(err.to_string().contains("outside its axis"), "{err}");
            }
            let again = run(&good).unwrap();
            compare(&format!("gather {it} ({cpu}) after a fault"), &again[0], &want[0]);
        }
    }
}
