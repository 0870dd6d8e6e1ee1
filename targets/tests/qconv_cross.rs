#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The integer conv (`QConv`) compiled for AArch64 and RISC-V 64, linked
//! with the C harness by the cross GCCs and run under qemu-user, against
//! the reference evaluator bit for bit (f32 outputs), byte for byte (u8)
//! and exactly (i32 sums): AArch64 `baseline` (the assembled
//! `smull`/`sadalp` tile, whose program must also run on a Cortex-A53),
//! AArch64 `dotprod` (the assembled `sdot` tile, whose object must
//! hold it and whose program must die where the CPU lacks `sdot`), and
//! riscv64 `rv64gc` (the scalar tile) and `v` (the 16-bit-pair tile on
//! Cranelift's RVV lowering).
//!
//! The shapes cover the `sdot` tile's row blocks of 8 (1 to 8 rows in the
//! last) and the `smull` tile's of 4, units of 8 pixels with a partial last one, K not a multiple of
//! 4, strides, dilation, groups, two images, a residual, Relu and Clip,
//! requantised u8 outputs, the accumulating form, products at their
//! extremes over K = 2304 (`x − 128 = −128` against `w = −128`), a
//! padded depthwise conv (the depthwise kernels), and one-pixel planes
//! (`dotprod`'s one-pixel product, `sdot_gemv`: every variant of its
//! channel chunks and image groups, K in steps of four quads and single
//! ones, f32 and u8 out), and block-sparse weights on the listed steps of
//! the AArch64 tiles and of RISC-V's 16-bit-pair tiles (`listed_cases`). Each runs with 8-bit weights over the whole
//! grid. Beside them, the byte MaxPool the `int8-maxpool` rule puts
//! between integer convs (16-byte vectors, stride 2 deinterleaved as
//! 16-bit lanes), byte for byte.

mod common;
use common::cross::{Cross, AARCH64, AARCH64_DOTPROD, RISCV64, RISCV64_V};
use common::qcase::*;
use kerf_ir::{DType, Tensor};
use kerf_targets::ukernel::KSteps;
use kerf_targets::{compile_object, CompileOptions};

/// One compiled case: a name, its graph, inputs and the reference's
/// output bytes.
struct Run {
    name: String,
    graph: kerf_ir::Graph,
    inputs: Vec<Tensor>,
    /// The QConv runs on the GEMM tile (not depthwise).
    gemm: bool,
    want: Vec<u8>,
}

impl Run {
    fn new(name: String, text: String, inputs: Vec<Tensor>) -> Run {
        let g = kerf_ir::text::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
        let want = kerf_ir::eval::eval_graph(&g, &inputs).unwrap().remove(0).bytes().to_vec();
        let gemm = g.nodes.iter().any(|n| match &n.op {
            kerf_ir::Op::QConv(q) => !q.conv.is_depthwise(&g.ty(n.inputs[1]).shape),
            _ => false,
        });
        Run { name, graph: g, inputs, gemm, want }
    }
}

/// The real-valued cases: `(case, weights)` with the case's input data.
fn real_cases() -> Vec<Run> {
    let clip = "act=Clip, act_min=-1.5, act_max=2.5, residual=false";
    let relu_res = "act=Relu, residual=true";
    let a3 = window(3, 1, 1, 1);
    let (a1, s2, dil, grouped) = (window(1, 1, 1, 1), window(3, 2, 1, 1), window(3, 1, 2, 1), window(3, 1, 1, 2));
    let s7 = window(7, 2, 1, 1);
    let dw = depthwise(3, 1, 1, 5);
    let cases = [
        // 25 pixels (a partial unit), K = 27 (a partial quad), 7 rows
        Case { xsh: [1, 3, 7, 7], wsh: [7, 3, 3, 3], osh: [1, 7, 5, 5], attrs: &a3, epi: PLAIN, zp: 128 },
        Case { xsh: [2, 3, 7, 7], wsh: [11, 3, 3, 3], osh: [2, 11, 5, 5], attrs: &a3, epi: relu_res, zp: 3 },
        Case { xsh: [1, 16, 4, 4], wsh: [12, 16, 1, 1], osh: [1, 12, 4, 4], attrs: &a1, epi: PLAIN, zp: 0 },
        Case { xsh: [1, 4, 9, 11], wsh: [6, 4, 3, 3], osh: [1, 6, 4, 5], attrs: &s2, epi: clip, zp: 255 },
        Case { xsh: [1, 2, 8, 8], wsh: [5, 2, 3, 3], osh: [1, 5, 4, 4], attrs: &dil, epi: PLAIN, zp: 77 },
        Case { xsh: [1, 6, 6, 6], wsh: [8, 3, 3, 3], osh: [1, 8, 4, 4], attrs: &grouped, epi: clip, zp: 100 },
        // 12-pixel rows (units inside a row and straddling two), 9 rows (8 + 1)
        Case { xsh: [1, 5, 14, 14], wsh: [9, 5, 3, 3], osh: [1, 9, 12, 12], attrs: &a3, epi: PLAIN, zp: 90 },
        // a 7x7 stride-2 stem, 13 rows (8 + 5); 37 rows (4 × 8 + 5), 64 pixels
        Case { xsh: [1, 3, 23, 37], wsh: [13, 3, 7, 7], osh: [1, 13, 9, 16], attrs: &s7, epi: PLAIN, zp: 0 },
        Case { xsh: [1, 8, 10, 10], wsh: [37, 8, 3, 3], osh: [1, 37, 8, 8], attrs: &a3, epi: relu_res, zp: 9 },
        Case { xsh: [1, 8, 9, 9], wsh: [14, 8, 3, 3], osh: [1, 14, 7, 7], attrs: &a3, epi: clip, zp: 200 },
        // weights past 256 KiB: units in chunks (`lower::qconv::chunks`), two
        // images of 25 pixels (units of 8 and a last of 1)
        Case { xsh: [2, 130, 7, 7], wsh: [224, 130, 3, 3], osh: [2, 224, 5, 5], attrs: &a3, epi: relu_res, zp: 21 },
        // padded depthwise: the depthwise kernels, not the GEMM tile
        Case { xsh: [2, 5, 14, 14], wsh: [5, 1, 3, 3], osh: [2, 5, 14, 14], attrs: &dw, epi: clip, zp: 17 },
        // one-pixel planes (`dotprod`: the one-pixel product): K = 20 (a
        // step of four quads and one more), 70 channels (64 + 6: a last
        // chunk of two blocks, two live lanes); 5 images (3 + 2 per call)
        // in one chunk of 13; 7 images (3 + 3 + 1) × 40 channels (two full
        // chunks of 20) at K = 8 (single quads only); K = 4; 5 images × 30
        // channels (chunks of 20 and 10 × groups of 3 and 2: all four
        // variants, each under both tests)
        Case { xsh: [1, 20, 1, 1], wsh: [70, 20, 1, 1], osh: [1, 70, 1, 1], attrs: &a1, epi: relu_res, zp: 31 },
        Case { xsh: [5, 16, 1, 1], wsh: [13, 16, 1, 1], osh: [5, 13, 1, 1], attrs: &a1, epi: clip, zp: 250 },
        Case { xsh: [7, 8, 1, 1], wsh: [40, 8, 1, 1], osh: [7, 40, 1, 1], attrs: &a1, epi: PLAIN, zp: 128 },
        Case { xsh: [2, 4, 1, 1], wsh: [6, 4, 1, 1], osh: [2, 6, 1, 1], attrs: &a1, epi: relu_res, zp: 0 },
        Case { xsh: [5, 8, 1, 1], wsh: [30, 8, 1, 1], osh: [5, 30, 1, 1], attrs: &a1, epi: clip, zp: 77 },
    ];
    let mut runs = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let (x, _) = case_data(c);
        let nw: usize = c.wsh.iter().product();
        let w = pseudo(nw, 2, -128, 127);
        runs.push(Run::new(format!("real{i}"), graph_text(c, &w), inputs(c, &x)));
    }
    // every product at its extreme over K = 2304, both signs of x − 128
    let c = Case { xsh: [1, 256, 3, 3], wsh: [2, 256, 3, 3], osh: [1, 2, 1, 1], attrs: &a3, epi: PLAIN, zp: 0 };
    let w: Vec<i64> = (0..2 * 256 * 9).map(|i| if i < 256 * 9 { -128 } else { 127 }).collect();
    for (name, x, zp) in [("extreme_lo", 0u8, 255), ("extreme_hi", 255, 0)] {
        let c = Case { zp, ..c };
        runs.push(Run::new(name.into(), graph_text(&c, &w), inputs(&c, &vec![x; 256 * 9])));
    }
    runs
}

/// Requantised u8 outputs, u8 residuals and the accumulating form's i32 sums.
fn integer_cases() -> Vec<Run> {
    let (a1, a3) = (window(1, 1, 1, 1), window(3, 1, 1, 1));
    let clip = "act=Clip, act_min=0.0, act_max=6.0, residual=false";
    let mut runs = Vec::new();
    for (i, c) in [
        Case { xsh: [1, 16, 5, 8], wsh: [12, 16, 1, 1], osh: [1, 12, 5, 8], attrs: &a1, epi: clip, zp: 3 },
        Case { xsh: [2, 8, 10, 10], wsh: [13, 8, 3, 3], osh: [2, 13, 8, 8], attrs: &a3, epi: PLAIN, zp: 128 },
        // the one-pixel product's u8 store: 4 images (3 + 1), 9 channels
        // (a last block of one lane), K = 12
        Case { xsh: [4, 12, 1, 1], wsh: [9, 12, 1, 1], osh: [4, 9, 1, 1], attrs: &a1, epi: clip, zp: 60 },
    ]
    .iter()
    .enumerate()
    {
        let (x, w) = case_data(c);
        runs.push(Run::new(format!("quant{i}"), quant_text(c, &w, (0.02, 10)), inputs(c, &x)));
    }
    // u8 residuals on their own grid, f32 and requantised outputs
    let relu_res = "act=Relu, residual=true";
    for (i, c) in [
        Case { xsh: [2, 8, 10, 10], wsh: [13, 8, 3, 3], osh: [2, 13, 8, 8], attrs: &a3, epi: relu_res, zp: 11 },
        Case {
            xsh: [1, 16, 5, 9],
            wsh: [12, 16, 1, 1],
            osh: [1, 12, 5, 9],
            attrs: &a1,
            epi: "act=None, residual=true",
            zp: 128,
        },
    ]
    .iter()
    .enumerate()
    {
        let (x, w) = case_data(c);
        let res = (0.0625, 100);
        let xt = Tensor::from_bytes(DType::U8, c.xsh.to_vec(), x).unwrap();
        let ins = vec![xt, u8_residual(c, res).0];
        for (j, out) in [None, Some((0.03, 5))].into_iter().enumerate() {
            runs.push(Run::new(format!("u8res{i}{j}"), u8_residual_text(c, &w, out, res), ins.clone()));
        }
    }
    let (xsh, wsh, osh) = ([1, 3, 9, 11], [7, 3, 3, 3], [1, 7, 7, 9]);
    let x: Vec<u8> = pseudo(3 * 9 * 11, 1, 0, 255).into_iter().map(|v| v as u8).collect();
    let text = acc_text([xsh, wsh, osh], &a3, 17, &pseudo(7 * 27, 2, -128, 127));
    runs.push(Run::new("acc".into(), text, vec![Tensor::from_bytes(DType::U8, xsh.to_vec(), x).unwrap()]));
    runs
}

/// MaxPools of u8 codes: ResNet's 3x3 stride-2 pads-1 window and
/// SqueezeNet's ceil-mode one on rows holding two 16-byte groups and a
/// scalar rest, and a stride-1 window.
fn byte_pool_cases() -> Vec<Run> {
    // odd spans (10 - 3, 72 - 3): ceil mode adds a partial last window
    let (c, h, w) = (3usize, 10usize, 72usize);
    let x: Vec<u8> = pseudo(c * h * w, 5, 0, 255).into_iter().map(|v| v as u8).collect();
    let x = Tensor::from_bytes(DType::U8, vec![1, c, h, w], x).unwrap();
    [(2, 1, false, [5, 36]), (2, 0, true, [5, 36]), (1, 1, false, [10, 72])]
        .iter()
        .enumerate()
        .map(|(i, &(s, p, ceil, [oh, ow]))| {
            let text = format!(
                "graph \"pool{i}\"\n  input %0 \"x\": u8[1,{c},{h},{w}]\n  %1 = MaxPool{{kernel=[3,3], strides=[{s},{s}], dilations=[1,1], pads=[{p},{p},{p},{p}], ceil_mode={ceil}}}(%0): u8[1,{c},{oh},{ow}] @\"m\"\n  output \"y\" = %1\n"
            );
            Run::new(format!("pool{i}"), text, vec![x.clone()])
        })
        .collect()
}

/// Compiles, links and runs every case on `t`; the failures, one line each.
fn run_all(t: &Cross, runs: &[Run]) -> Vec<String> {
    let root = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("qconv-{}-{}", t.triple, t.cpu));
    let mut failures = Vec::new();
    for r in runs {
        let dir = root.join(&r.name);
        std::fs::create_dir_all(&dir).unwrap();
        let art = compile_object(&r.graph, &CompileOptions::parse(t.triple, t.cpu, &r.name).unwrap())
            .unwrap_or_else(|e| panic!("{} {}: {e}", t.cpu, r.name));
        // AArch64's GEMM tiles are assembled (`sdot`, or `smull`/`sadalp`
        // without `dotprod`); the depthwise kernels are Cranelift's
        let assembled = t.triple.starts_with("aarch64") && r.gemm;
        let dotprod = t.cpu == "dotprod" && r.gemm;
        assert_eq!(art.report.micro_kernels > 0, assembled, "{} {}: micro-kernels", t.cpu, r.name);
        // without micro-kernels, the Cranelift tiles (the bits are the same: `baseline` checks them)
        let mut plain = CompileOptions::parse(t.triple, t.cpu, &r.name).unwrap();
        plain.ukernels = false;
        assert_eq!(compile_object(&r.graph, &plain).unwrap().report.micro_kernels, 0, "{}: ukernels off", r.name);
        std::fs::write(dir.join(format!("{}.h", r.name)), &art.header).unwrap();
        std::fs::write(dir.join("m.o"), &art.object).unwrap();
        let exe = t.link(&dir, &r.name, &dir.join("m.o"));
        let input: Vec<u8> = r.inputs.iter().flat_map(|t| t.bytes().to_vec()).collect();
        match t.run(None, &exe, &input) {
            Ok(got) if got == r.want => {}
            Ok(got) => {
                let at = got.iter().zip(&r.want).position(|(a, b)| a != b);
                failures.push(format!("{} {}: {} bytes, first difference at byte {at:?}", t.cpu, r.name, got.len()));
            }
            Err(e) => failures.push(format!("{} {}: {e}", t.cpu, r.name)),
        }
        // on a Cortex-A53 (ARMv8.0): the sdot tile cannot run, the smull
        // tile gives the same bytes
        if assembled && r.name == "real0" {
            let a53 = ["qemu-aarch64", "-cpu", "cortex-a53", "-L", "/usr/aarch64-linux-gnu"];
            match (dotprod, t.run(Some(&a53), &exe, &input)) {
                (true, ran) => {
                    let died = ran.err().unwrap_or_default();
                    assert!(died.contains("SIGILL"), "the dotprod program on a Cortex-A53: {died:?}");
                }
                (false, ran) => {
                    let same = ran.as_deref().is_ok_and(|got| got == &r.want[..]);
                    assert!(same, "the baseline program on a Cortex-A53: {:?}", ran.err());
                }
            }
        }
    }
    failures
}

/// Block-sparse weights (blocks of 16 output channels keeping two of
/// every four K quads, one block none, one one of four): AArch64's tiles
/// and RISC-V's 16-bit-pair tiles on their listed steps
/// (`lower/qconv/listed.rs`), f32 with a residual
/// and u8 out, a partial row block (37 channels) and unit, a 3x3 conv, and
/// one-pixel images.
fn listed_cases() -> Vec<Run> {
    let (a1, a3) = (window(1, 1, 1, 1), window(3, 1, 1, 1));
    let relu_res = "act=Relu, residual=true";
    let pw = Case { xsh: [1, 64, 5, 7], wsh: [37, 64, 1, 1], osh: [1, 37, 5, 7], attrs: &a1, epi: relu_res, zp: 3 };
    let three = Case { xsh: [1, 16, 8, 8], wsh: [24, 16, 3, 3], osh: [1, 24, 6, 6], attrs: &a3, epi: PLAIN, zp: 77 };
    // one-pixel images (`dotprod`'s product, listed per 16 channels): 5
    // images (3 + 2) × 37 channels (chunks of 16 and a last of 5), and 2
    // images × 40 channels (a chunk of 32 and one of 8), f32 with Relu
    let gemv1 = Case { xsh: [5, 64, 1, 1], wsh: [37, 64, 1, 1], osh: [5, 37, 1, 1], attrs: &a1, epi: relu_res, zp: 9 };
    let gemv2 = Case { xsh: [2, 128, 1, 1], wsh: [40, 128, 1, 1], osh: [2, 40, 1, 1], attrs: &a1, epi: PLAIN, zp: 200 };
    // two groups of 13 outputs (partial row blocks of 8 and of 4 in each)
    let a1g = window(1, 1, 1, 2);
    let grouped = Case { xsh: [1, 64, 4, 6], wsh: [26, 32, 1, 1], osh: [1, 26, 4, 6], attrs: &a1g, epi: PLAIN, zp: 1 };
    let mut runs = Vec::new();
    // a 3x3 conv pruned in runs of four channels at each tap: tap-major K
    let taps = Case { xsh: [1, 16, 7, 9], wsh: [20, 16, 3, 3], osh: [1, 20, 5, 7], attrs: &a3, epi: relu_res, zp: 40 };
    let (x, _) = case_data(&taps);
    let w = tap_run_weights(taps.wsh, (-128, 127));
    runs.push(Run::new("listed_taps".into(), graph_text(&taps, &w), inputs(&taps, &x)));
    let cases = [("listed_pw", &pw), ("listed_3x3", &three), ("listed_grouped", &grouped)];
    for (name, c) in cases.into_iter().chain([("listed_gemv1", &gemv1), ("listed_gemv2", &gemv2)]) {
        let (x, _) = case_data(c);
        let w = listed_weights(c.wsh, (-128, 127), Some(1), Some(2));
        runs.push(Run::new(name.into(), graph_text(c, &w), inputs(c, &x)));
    }
    let q = Case { epi: PLAIN, osh: [1, 32, 5, 8], wsh: [32, 64, 1, 1], xsh: [1, 64, 5, 8], ..pw };
    let (x, _) = case_data(&q);
    let w = listed_weights(q.wsh, (-128, 127), None, Some(1));
    runs.push(Run::new("listed_quant".into(), quant_text(&q, &w, (0.05, 10)), inputs(&q, &x)));
    runs
}

/// Which code runs is decided at compile time: objects for AArch64
/// (`dotprod` and without: the `sdot` and `smull` tiles), RISC-V 64
/// (`rv64gc`, `v`) and x86-64 `baseline` (Cranelift's 16-bit-pair tiles)
/// hold listed A for block-sparse weights, fewer bytes than the dense
/// tiles' (skip zeros off), on any host; the pair tiles list a 3x3 conv's
/// runs tap-major where that keeps fewer steps.
#[test]
fn objects_list_the_kept_steps() {
    let a1 = window(1, 1, 1, 1);
    let c = Case { xsh: [1, 64, 8, 8], wsh: [32, 64, 1, 1], osh: [1, 32, 8, 8], attrs: &a1, epi: PLAIN, zp: 0 };
    let g = kerf_ir::text::parse(&graph_text(&c, &listed_weights(c.wsh, (-128, 127), None, None))).unwrap();
    let targets = [
        ("aarch64-unknown-linux-gnu", "dotprod"),
        ("aarch64-unknown-linux-gnu", "baseline"),
        ("riscv64gc-unknown-linux-gnu", "rv64gc"),
        ("riscv64gc-unknown-linux-gnu", "v"),
        ("x86_64-unknown-linux-gnu", "baseline"),
    ];
    for (triple, cpu) in targets {
        let rodata = |g: &kerf_ir::Graph, skip: bool| {
            let mut o = CompileOptions::parse(triple, cpu, "t").unwrap();
            o.skip_zeros = skip;
            compile_object(g, &o).unwrap().report.rodata_bytes
        };
        // dense A: 32 · 64 bytes (quads; pairs: the same 4 bytes per row
        // and step); listed: half the steps plus a u32 per step and block
        let (listed, dense) = (rodata(&g, true), rodata(&g, false));
        assert!(listed + 600 <= dense, "{triple} {cpu}: {listed} bytes of read-only data listed, {dense} dense");
    }
    // a 3x3 conv pruned in runs of four channels at each tap: Cranelift's
    // pair tiles list it tap-major (72 of 144 pair steps kept; in the
    // weight's own order 112): dense A 18,432 bytes, listed tap-major
    // 10,368 (8 rows a block), 11,520 (4), 13,824 (2), in the weight's
    // own order 16,128, 17,920, 21,504
    let c3 = Case { xsh: [1, 32, 8, 8], wsh: [32, 32, 3, 3], osh: [1, 32, 6, 6], attrs: &window(3, 1, 1, 1), ..c };
    let g3 = kerf_ir::text::parse(&graph_text(&c3, &tap_run_weights(c3.wsh, (-128, 127)))).unwrap();
    for (triple, cpu) in &targets[2..] {
        let rodata = |skip: bool| {
            let mut o = CompileOptions::parse(triple, cpu, "t").unwrap();
            o.skip_zeros = skip;
            compile_object(&g3, &o).unwrap().report.rodata_bytes
        };
        let (listed, dense) = (rodata(true), rodata(false));
        assert!(listed + 4000 <= dense, "{triple} {cpu}: 3x3 {listed} bytes listed, {dense} dense (not tap-major?)");
    }
}

fn check_target(t: &Cross) {
    if !t.available() {
        return;
    }
    let runs: Vec<Run> =
        real_cases().into_iter().chain(integer_cases()).chain(byte_pool_cases()).chain(listed_cases()).collect();
    let failures = run_all(t, &runs);
    assert!(failures.is_empty(), "{} --cpu {}:\n{}", t.triple, t.cpu, failures.join("\n"));
    eprintln!("{} --cpu {}: {} cases bit for bit", t.triple, t.cpu, runs.len());
}

#[test]
fn aarch64_dotprod_sdot_tile() {
    check_target(&AARCH64_DOTPROD);
}

#[test]
fn aarch64_baseline_mull_tile() {
    check_target(&AARCH64);
}

#[test]
fn riscv64_scalar_tile() {
    check_target(&RISCV64);
}

#[test]
fn riscv64_v_pair_tile() {
    check_target(&RISCV64_V);
}

/// The `sdot` tile in every row count, the pattern tiles
/// ([`pattern_tiles`]) and the one-pixel product in each
/// of its image counts (with one, a middling and the most blocks),
/// disassembled by binutils: leaves of the AAPCS64 (no call, no stack,
/// only caller-saved registers: `x0`–`x17` and `v0`–`v7`, `v16`–`v31`,
/// never the callee-saved low halves of `v8`–`v15`), ending in their only
/// `ret`, with one `sdot` pair per tile row and, in the product, one
/// `sdot` per image and block in each of the four quads of a step and in
/// the single quad after them; and the `smull` tile of every row count,
/// four `smull`/`smull2` per row.
#[test]
fn sdot_kernels_keep_the_leaf_abi() {
    use kerf_targets::ukernel::neon::{
        mull_tile, sdot_gemv, sdot_tile, MULL_ROWS, SDOT_GEMV_ACCS, SDOT_GEMV_IMAGES_MAX, SDOT_ROWS,
    };
    let objdump = "aarch64-linux-gnu-objdump";
    if !common::cross::tools_or_skip(&[objdump], "binutils-aarch64-linux-gnu") {
        return;
    }
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sdot-abi");
    std::fs::create_dir_all(&dir).unwrap();
    let mut kernels: Vec<(String, Vec<u8>, usize)> = (1..=SDOT_ROWS)
        .map(|rows| (format!("tile{rows}"), sdot_tile(rows, KSteps::Dense).unwrap(), 2 * rows))
        .collect();
    for images in 1..=SDOT_GEMV_IMAGES_MAX {
        for blocks in [1, 3, SDOT_GEMV_ACCS / images] {
            let code = sdot_gemv(blocks, images, 70_000, KSteps::Dense).unwrap();
            kernels.push((format!("gemv{images}x{blocks}"), code, 5 * images * blocks));
            let code = sdot_gemv(blocks, images, 70_000, KSteps::Listed).unwrap();
            kernels.push((format!("lgemv{images}x{blocks}"), code, images * blocks));
        }
    }
    kernels
        .extend((1..=MULL_ROWS).map(|rows| (format!("mull{rows}"), mull_tile(rows, KSteps::Dense).unwrap(), 4 * rows)));
    // the listed tiles: the same products, each step's B through x9/x10
    kernels.extend((1..=SDOT_ROWS).map(|r| (format!("listed{r}"), sdot_tile(r, KSteps::Listed).unwrap(), 2 * r)));
    kernels.extend((1..=MULL_ROWS).map(|r| (format!("lmull{r}"), mull_tile(r, KSteps::Listed).unwrap(), 4 * r)));
    kernels.extend(pattern_tiles());
    for (name, code, sdots) in kernels {
        let bin = dir.join(format!("{name}.bin"));
        std::fs::write(&bin, code).unwrap();
        let out = std::process::Command::new(objdump).args(["-D", "-b", "binary", "-m", "aarch64"]).arg(&bin).output();
        let text = String::from_utf8(out.unwrap().stdout).unwrap();
        // "   4:\t4fa6e825 \tsdot\tv5.4s, v1.16b, v6.4b[3]": mnemonic and operands
        let insns: Vec<(&str, &str)> = text
            .lines()
            .filter_map(|l| {
                let mut f = l.split('\t');
                f.next().filter(|a| a.trim_end().ends_with(':'))?;
                f.next()?;
                Some((f.next()?.trim(), f.next().unwrap_or("").trim()))
            })
            .collect();
        assert!(insns.len() > 8, "{name}: {text}");
        let ctx = |i: usize| format!("{name}, instruction {i} {:?}", insns[i]);
        for (i, (op, args)) in insns.iter().enumerate() {
            assert!(!matches!(*op, "bl" | "blr" | "br" | "svc" | "udf" | ".inst"), "{}", ctx(i));
            assert!(*op != "ret" || i == insns.len() - 1, "{}: a ret before the end", ctx(i));
            for reg in args.split(|c: char| !c.is_ascii_alphanumeric()).filter(|t| !t.is_empty()) {
                let (class, num) = reg.split_at(1);
                let Ok(n) = num.parse::<u32>() else {
                    assert!(reg != "sp" && reg != "wsp", "{}: the stack", ctx(i));
                    continue;
                };
                match class {
                    "x" | "w" => assert!(n <= 17, "{}: callee-saved {reg}", ctx(i)),
                    "v" | "q" | "d" | "s" | "h" | "b" => assert!(!(8..=15).contains(&n), "{}: {reg}", ctx(i)),
                    _ => {}
                }
            }
        }
        assert_eq!(insns.last().map(|i| i.0), Some("ret"), "{name}");
        let macs = insns.iter().filter(|i| ["sdot", "fmla", "smull", "smull2"].contains(&i.0)).count();
        assert_eq!(macs, sdots, "{name}: sdots (fmlas, smulls)");
    }
}

/// AArch64 pattern tiles (`ukernel::neon::pattern_tile`) of every entry
/// kind, f32 and `sdot` quads, small and full register tiles, partial
/// last vectors, rows too far apart for an immediate offset, a first and
/// an accumulating call, with and without epilogues; each with its count
/// of `sdot`s (or f32 `fmla`s): one per tap, row and vector.
fn pattern_tiles() -> Vec<(String, Vec<u8>, usize)> {
    use kerf_targets::ukernel::epi::{Clamp, TileEpi};
    use kerf_targets::ukernel::neon::pattern_tile;
    use kerf_targets::ukernel::pattern::{Elem, EntryKind, PatternTile};
    let kinds = vec![
        EntryKind::Column(vec![0]),
        EntryKind::Column(vec![0, 1]),
        EntryKind::Column(vec![0, 1, 2]),
        EntryKind::Kernel(4),
    ];
    let clip = Clamp { lo: -1.5, hi: Some(2.5) };
    let epis = [
        None,
        Some(TileEpi { residual: true, clamp: Some(clip), ..TileEpi::default() }),
        Some(TileEpi { hardswish: true, ..TileEpi::default() }),
    ];
    let mut out = Vec::new();
    for elem in [Elem::F32, Elem::QuadsSdot] {
        for (rows, vecs, last_lanes) in [(1, 1, 1), (4, 4, 4), (3, 5, 3), (16, 1, 2)] {
            for (e, epi) in epis.iter().enumerate() {
                for (out_row, in_row) in [(28, 64), (4096, 70_000)] {
                    let accumulate = e == 1;
                    let t = PatternTile {
                        elem,
                        kinds: kinds.clone(),
                        rows,
                        vecs,
                        lanes: 4,
                        last_lanes,
                        back: 0,
                        out_row,
                        in_row,
                        accumulate,
                        epi: *epi,
                        quant: None,
                        res_u8: None,
                    };
                    let macs = kinds.iter().map(|k| k.taps()).sum::<usize>() * rows * vecs;
                    let name = format!("pattern{elem:?}{rows}x{vecs}l{last_lanes}e{e}r{in_row}");
                    out.push((name, pattern_tile(&t).unwrap(), macs));
                }
            }
        }
    }
    out
}

/// On any host: a `dotprod` object of one-pixel planes holds the one-pixel
/// product's code for both of its variants (7 images: calls of 3 and a
/// last one of 1, 5 blocks of 4 channels each), and not the unit tile.
#[test]
fn one_pixel_planes_take_the_sdot_product() {
    use kerf_targets::ukernel::neon::{sdot_gemv, sdot_tile, SDOT_ROWS};
    let a1 = window(1, 1, 1, 1);
    let c = Case { xsh: [7, 8, 1, 1], wsh: [40, 8, 1, 1], osh: [7, 40, 1, 1], attrs: &a1, epi: PLAIN, zp: 128 };
    let (_, w) = case_data(&c);
    let g = kerf_ir::text::parse(&graph_text(&c, &w)).unwrap();
    let t = &AARCH64_DOTPROD;
    let art = compile_object(&g, &CompileOptions::parse(t.triple, t.cpu, "p").unwrap()).unwrap();
    let holds = |code: Vec<u8>| art.object.windows(code.len()).any(|w| w == code.as_slice());
    assert!(holds(sdot_gemv(5, 3, 8, KSteps::Dense).unwrap()), "the product of 3 images");
    assert!(holds(sdot_gemv(5, 1, 8, KSteps::Dense).unwrap()), "the product of the last image");
    assert!(!holds(sdot_tile(SDOT_ROWS, KSteps::Dense).unwrap()), "the unit tile");
}

/// The integer pattern kernel on AArch64 `dotprod` (`sdot` by element on
/// `x ^ 0x80` quad images, `ukernel::neon::pattern_tile`): the host
/// battery's quad-pattern convs ([`quad_pattern_cases`]) with 7-bit and
/// 8-bit codes and the products' extreme, bit for bit the reference's
/// (None, Relu, Clip) or the host `baseline` kernels' (HardSwish, whose
/// bits every tile shares). Each object must hold the tile's `sdot`s
/// (input quads from `v4`–`v7`, the weight quad lane 0 of `v0`–`v3`: no
/// other kernel has that form), except LeakyRelu's, which the tiles do
/// not apply (the integer GEMM takes it).
#[test]
fn aarch64_dotprod_pattern_tile() {
    let t = &AARCH64_DOTPROD;
    let objdump = "aarch64-linux-gnu-objdump";
    if !t.available() || !common::cross::tools_or_skip(&[objdump], "binutils-aarch64-linux-gnu") {
        return;
    }
    let mut runs = Vec::new();
    for (i, c) in quad_pattern_cases().iter().enumerate() {
        let nx: usize = c.xsh.iter().product();
        let x: Vec<u8> = pseudo(nx, 1, 0, 255).into_iter().map(|v| v as u8).collect();
        let data = [(x.clone(), (-64, 64)), (x, (-127, 127)), (vec![255u8; nx], (-128, -128))];
        for (j, (x, (lo, hi))) in data.into_iter().enumerate() {
            let w = quad_pattern_weights(c.wsh, lo, hi);
            let mut r = Run::new(format!("pattern{i}_{j}"), graph_text(c, &w), inputs(c, &x));
            let o = CompileOptions::parse(t.triple, t.cpu, &r.name).unwrap();
            let sdots = pattern_sdots(objdump, &compile_object(&r.graph, &o).unwrap().object, &r.name);
            assert_eq!(sdots > 0, !c.epi.starts_with("act=LeakyRelu"), "{}: {sdots} pattern-tile sdots", r.name);
            if !exact_act(c.epi) {
                let base = common::run(&graph_text(c, &w), &r.inputs, "baseline").remove(0);
                r.want = base.iter().flat_map(|v| v.to_le_bytes()).collect();
            }
            runs.push(r);
        }
    }
    let failures = run_all(t, &runs);
    assert!(failures.is_empty(), "{} --cpu {}:\n{}", t.triple, t.cpu, failures.join("\n"));
    eprintln!("{} --cpu {}: {} pattern cases bit for bit", t.triple, t.cpu, runs.len());
}

/// The pattern tile's `sdot`s in `object` (`sdot vA.4s, v4..v7.16b,
/// v0..v3.4b[0]`), by binutils' disassembly.
fn pattern_sdots(objdump: &str, object: &[u8], name: &str) -> usize {
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("pattern-sdots-{name}.o"));
    std::fs::write(&path, object).unwrap();
    let out = std::process::Command::new(objdump).arg("-d").arg(&path).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let is_tile = |l: &str| {
        let Some(args) = l.split("sdot\t").nth(1) else { return false };
        let ops: Vec<&str> = args.split(", ").map(str::trim).collect();
        let reg =
            |op: &str, suffix: &str| op.strip_prefix('v').and_then(|r| r.strip_suffix(suffix)?.parse::<u8>().ok());
        ops.len() == 3
            && reg(ops[1], ".16b").is_some_and(|r| (4..=7).contains(&r))
            && reg(ops[2], ".4b[0]").is_some_and(|r| r <= 3)
    };
    text.lines().filter(|l| is_tile(l)).count()
}
