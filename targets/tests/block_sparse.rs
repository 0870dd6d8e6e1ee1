#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Block-sparse products (`lower/matmul/sparse.rs`): constant weights
//! whose 16-column blocks skip the same K rows run only the kept steps,
//! on the assembled tiles (AVX2, AVX-512) or Cranelift's 128-bit ones
//! (x86-64 `baseline`, AArch64, RISC-V `v`). The results equal the dense
//! engine's (`CompileOptions::skip_zeros` off) bit for bit on these
//! finite inputs (a skipped step adds `0·x = ±0`, which leaves a non-zero
//! finite sum as it is; a sum of zero may differ in sign, and an infinite
//! or NaN input the dense engine multiplies by a zero gives it NaN) and the
//! reference evaluator's within 1e-5 + 1e-4·max|ref|, on the host's
//! presets and, linked by the cross GCCs, under qemu for AArch64 and
//! RISC-V `v`; threaded runs equal serial ones; and the objects for
//! `haswell` and `sapphirerapids` call tiles that read A at listed
//! offsets, and every preset's objects hold fewer weight bytes, on any
//! host. The shapes cover every row count of
//! a tile (1..13, and last tiles of 5, 9 and 11 rows), a last block of 1..15 columns (and of more than and at
//! most 8, the `ymm` tile's one- and two-vector forms), blocks with fewer
//! kept rows than the longest (padded) and with none, transposed Gemm
//! operands, row and column addends, `alpha`, Relu / HardSwish /
//! residual in the tile, Gelu after it and LeakyRelu (dense on AVX2: not an assembled tile epilogue), batched MatMul, the
//! column-chunked Gemm of one and three rows (four blocks a call), 1x1
//! convs on the MatMul engine and an all-zero weight.

mod common;
use common::{close, list, reference, t, xs};
use kerf_ir::Tensor;
use kerf_targets::{jit_compile, CompileOptions};

/// `k × n` weights (row-major) where each block of 16 columns keeps 2 of
/// every 4 rows (`keep` rotates the choice per block), block `empty` (if
/// any) keeps no row, and block `short` keeps one of every 4.
fn weights(kk: usize, n: usize, empty: Option<usize>, short: Option<usize>) -> Vec<f32> {
    let v = xs(kk * n + 5);
    let mut w = vec![0f32; kk * n];
    for r in 0..kk {
        for j in 0..n {
            let blk = j / 16;
            let pos = (r + blk) % 4;
            let kept = match () {
                _ if Some(blk) == empty => false,
                _ if Some(blk) == short => pos == 0,
                _ => pos < 2,
            };
            if kept {
                w[r * n + j] = v[r * n + j + 5] * 0.05;
            }
        }
    }
    w
}

/// `w` (`k × n`, row-major) transposed.
fn transposed(w: &[f32], kk: usize, n: usize) -> Vec<f32> {
    (0..n).flat_map(|j| (0..kk).map(move |r| w[r * n + j])).collect()
}

fn input(shape: &[usize], seed: usize) -> Tensor {
    let n: usize = shape.iter().product();
    t(shape, &xs(n + seed)[seed..].iter().map(|x| x * 0.25).collect::<Vec<_>>())
}

/// A `MatMulFused` of `[m, k]` by block-sparse `[k, n]` weights, bias and
/// `act`, with a residual when `residual`.
fn matmul(m: usize, kk: usize, n: usize, act: &str, residual: bool) -> (String, Vec<Tensor>) {
    let w = weights(kk, n, (n > 48).then_some(1), (n > 32).then_some(2));
    let b: Vec<f32> = (0..n).map(|i| 0.02 * i as f32 - 0.3).collect();
    let op = format!("MatMulFused{{layer=\"m\", act={act}, residual={residual}}}");
    (fused(&op, [&[m, kk], &[kk, n], &[m, n]], (&w, &b), residual), vec![input(&[m, kk], 1), input(&[m, n], 2)])
}

/// The graph `y = op(x, w, b[, r])` of shapes `[x, w, y]`: input `x`,
/// constants `w` and `b`, and the input `r` of `y`'s shape (passed to `op`
/// when `residual`).
fn fused(op: &str, [x, w, y]: [&[usize]; 3], (wv, bv): (&[f32], &[f32]), residual: bool) -> String {
    let dims = |s: &[usize]| s.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    let (x, w, y) = (dims(x), dims(w), dims(y));
    format!(
        "graph \"g\"\n  input %0 \"x\": f32[{x}]\n  input %9 \"r\": f32[{y}]\n  const %1 \"w\": f32[{w}] = {}\n  const %2 \"b\": f32[{}] = {}\n  %3 = {op}(%0, %1, %2{}): f32[{y}] @\"l\"\n  output \"y\" = %3\n",
        list(wv),
        bv.len(),
        list(bv),
        if residual { ", %9" } else { "" }
    )
}

/// A `Gemm` by block-sparse weights stored transposed (`trans_b`), with
/// `alpha`, and `C` one value per row (`[m, 1]`) or per column.
fn gemm(m: usize, kk: usize, n: usize, trans_a: bool, per_row: bool) -> (String, Vec<Tensor>) {
    let w = transposed(&weights(kk, n, None, Some(0)), kk, n);
    let (c_shape, c) = if per_row { (format!("{m},1"), m) } else { (format!("{n}"), n) };
    let cv: Vec<f32> = (0..c).map(|i| 0.1 * i as f32 - 0.4).collect();
    let a_shape = if trans_a { [kk, m] } else { [m, kk] };
    let text = format!(
        "graph \"g\"\n  input %0 \"a\": f32[{},{}]\n  const %1 \"w\": f32[{n},{kk}] = {}\n  const %2 \"c\": f32[{c_shape}] = {}\n  %3 = Gemm{{alpha=0.5, beta=2.0, trans_a={trans_a}, trans_b=true, layer=\"g\"}}(%0, %1, %2): f32[{m},{n}] @\"g\"\n  output \"y\" = %3\n",
        a_shape[0],
        a_shape[1],
        list(&w),
        list(&cv)
    );
    (text, vec![input(&a_shape, 3)])
}

/// A batched MatMul: `[2, m, k]` by one block-sparse `[k, n]`.
fn batched(m: usize, kk: usize, n: usize) -> (String, Vec<Tensor>) {
    let w = weights(kk, n, None, None);
    let text = format!(
        "graph \"g\"\n  input %0 \"a\": f32[2,{m},{kk}]\n  const %1 \"w\": f32[{kk},{n}] = {}\n  %2 = MatMul{{layer=\"m\"}}(%0, %1): f32[2,{m},{n}] @\"m\"\n  output \"y\" = %2\n",
        list(&w)
    );
    (text, vec![input(&[2, m, kk], 4)])
}

fn cases() -> Vec<(String, Vec<Tensor>)> {
    let mut cs = Vec::new();
    // every tile height (12-row blocks, the ymm tile's 6) and last block width
    for m in 1..=13 {
        let n = 16 * (1 + m % 3) + m % 16;
        cs.push(matmul(m, 4 * (m % 5) + 8, n, if m % 2 == 0 { "Relu" } else { "None" }, m % 3 == 0));
    }
    // fewer than four rows: four blocks a call (zmm), whole calls and a rest
    cs.push(matmul(1, 40, 101, "Relu", true));
    cs.push(matmul(2, 24, 128, "None", false));
    cs.push(matmul(37, 64, 70, "HardSwish", true));
    // an activation the tile does not apply: a pass over each row block
    cs.push(matmul(20, 48, 40, "Gelu, act_tanh=false", false));
    cs.push(matmul(7, 32, 24, "LeakyRelu, act_alpha=0.1", true));
    cs.push(gemm(13, 32, 44, false, true));
    cs.push(gemm(9, 24, 37, true, false));
    // column chunks of 64 (four blocks) and a last chunk of 1..3 blocks
    cs.push(gemm(30, 40, 232, false, false));
    cs.push(batched(20, 48, 36));
    // one and three rows, 200 columns: a Gemm split over column chunks of
    // 64, four blocks a call inside a chunk
    cs.push(gemm(1, 64, 200, false, false));
    cs.push(gemm(3, 40, 200, true, true));
    // row counts whose last tile has 11, 5 and 9 rows (the dense tiling's
    // 4-row blocks are not the sparse tiles')
    for m in [23, 29, 33] {
        cs.push(matmul(m, 24, 40, "Relu", false));
    }
    // 1x1 convs on the MatMul engine: a 7x7 plane (channels in the lanes)
    // and a one-pixel plane; planes the conv engine would take dense (a
    // whole number of 16-pixel vectors, more than 64 pixels), two images,
    // a residual added in the transposing pass, 40 channels (a last block
    // of 8)
    cs.push(conv(64, 48, 7, 1, false));
    cs.push(conv(96, 40, 1, 1, false));
    cs.push(conv(40, 48, 12, 2, true));
    cs.push(conv(32, 40, 9, 1, false));
    cs.push(conv(24, 32, 20, 1, true));
    // HardSwish in the product's store; on the conv engine, dense (the
    // route asks the op, not the target): LeakyRelu (not a tile
    // epilogue) and 18 output channels (not whole quads)
    cs.push(conv_act(32, 48, 10, 1, false, "HardSwish"));
    cs.push(conv_act(32, 48, 10, 1, false, "LeakyRelu, act_alpha=0.1"));
    cs.push(conv(32, 18, 10, 1, false));
    // an all-zero weight: no kept step in any block
    cs.push((
        matmul(5, 16, 32, "Relu", false).0.replace(&list(&weights(16, 32, None, None)), &list(&[0.0; 16 * 32])),
        vec![input(&[5, 16], 1), input(&[5, 32], 2)],
    ));
    cs
}

/// A 1x1 `ConvFused` (+ Relu) of `c` to `m` channels on `n` images of a
/// `p`x`p` plane, by weights whose 16-output-channel blocks skip the same
/// input channels, plus a residual when `residual`.
fn conv(c: usize, m: usize, p: usize, n: usize, residual: bool) -> (String, Vec<Tensor>) {
    conv_act(c, m, p, n, residual, "Relu")
}

/// [`conv`] with activation `act`.
fn conv_act(c: usize, m: usize, p: usize, n: usize, residual: bool, act: &str) -> (String, Vec<Tensor>) {
    let w = transposed(&weights(c, m, None, Some(1)), c, m);
    let b: Vec<f32> = (0..m).map(|i| 0.05 * i as f32 - 0.5).collect();
    let op = format!(
        "ConvFused{{kernel=[1,1], strides=[1,1], dilations=[1,1], pads=[0,0,0,0], group=1, layer=\"c\", act={act}, residual={residual}}}"
    );
    let text = fused(&op, [&[n, c, p, p], &[m, c, 1, 1], &[n, m, p, p]], (&w, &b), residual);
    (text, vec![input(&[n, c, p, p], 6), input(&[n, m, p, p], 7)])
}

/// Block-sparse on the preset's tiles, block-sparse on Cranelift's
/// (micro-kernels off) and dense (`skip_zeros` off) give the same bits,
/// and the reference's values.
#[test]
fn block_sparse_products_equal_the_dense_ones() {
    for cpu in host_cpus() {
        for (i, (text, ins)) in cases().iter().enumerate() {
            check(cpu, i, text, ins);
        }
    }
}

/// Every case but the LeakyRelu ones (an epilogue the tiles do not
/// apply) and the 18-channel conv compiles (the all-zero weight too: tiles
/// of no step), for `haswell` and `sapphirerapids`, to tiles that read A
/// at listed offsets: the cases above test the block-sparse path, not a
/// dense fallback. On Cranelift's tiles (x86-64 `baseline`, AArch64,
/// RISC-V `v`) every case, the LeakyRelu product too, holds less constant
/// data than dense, except the convs the route leaves on the conv engine.
/// Any host.
#[test]
fn block_sparse_cases_take_the_block_sparse_tiles() {
    for (i, (text, _)) in cases().iter().enumerate() {
        let g = kerf_ir::text::parse(text).unwrap();
        let dense = text.contains("LeakyRelu");
        // convs the route keeps on the conv engine: dense on every target
        let conv_engine = text.contains("ConvFused") && (dense || text.contains("f32[18,"));
        for cpu in ["haswell", "sapphirerapids"] {
            assert_eq!(reads_listed_offsets(&g, cpu), !dense && !conv_engine, "case {i} ({cpu})");
        }
        for (triple, cpu) in CRANELIFT_TILES {
            let [sparse, dense] = [true, false].map(|skip| rodata(&g, triple, cpu, skip));
            assert_eq!(
                sparse < dense,
                !conv_engine,
                "case {i} ({triple} {cpu}): {sparse} B block-sparse, {dense} B dense"
            );
        }
    }
}

/// Presets whose block-sparse products run on Cranelift's tiles.
const CRANELIFT_TILES: [(&str, &str); 3] = [
    ("x86_64-unknown-linux-gnu", "baseline"),
    ("aarch64-unknown-linux-gnu", "baseline"),
    ("riscv64gc-unknown-linux-gnu", "v"),
];

/// A pointwise conv keeping 8 of 16 input channels per block (fewer than
/// the transposing pass pays for) stays on the conv engine, dense, on
/// every preset; with 24 input channels (12 kept) it takes the
/// block-sparse tiles; and so does a 64 → 64 conv on a 128x128 plane
/// (4 MiB of product), not on 129x129.
#[test]
fn short_block_sparse_convs_stay_on_the_conv_engine() {
    for (c, m, p, sparse) in [(16, 32, 9, false), (24, 32, 9, true), (32, 64, 128, true), (32, 64, 129, false)] {
        let g = kerf_ir::text::parse(&conv(c, m, p, 1, false).0).unwrap();
        for cpu in ["haswell", "sapphirerapids"] {
            assert_eq!(reads_listed_offsets(&g, cpu), sparse, "{c} -> {m}, {p}x{p} ({cpu})");
        }
        for (triple, cpu) in CRANELIFT_TILES {
            let [on, off] = [true, false].map(|skip| rodata(&g, triple, cpu, skip));
            assert_eq!(on < off, sparse, "{c} -> {m}, {p}x{p} ({triple} {cpu}): {on} B vs {off} B dense");
        }
    }
}

/// Constant data of `g`'s object, block-sparse (`skip`) or dense.
fn rodata(g: &kerf_ir::Graph, triple: &str, cpu: &str, skip: bool) -> usize {
    let mut o = CompileOptions::parse(triple, cpu, "t").unwrap();
    o.skip_zeros = skip;
    kerf_targets::compile_object(g, &o).unwrap().report.rodata_bytes
}

/// Whether `g`'s object for `cpu` holds a tile reading A at a listed
/// offset (`[rdi + rax + row]`).
fn reads_listed_offsets(g: &kerf_ir::Graph, cpu: &str) -> bool {
    use iced_x86::Register;
    common::kernel_instructions(g, cpu)
        .iter()
        .any(|i| i.memory_base() == Register::RDI && i.memory_index() == Register::RAX && i.memory_index_scale() == 1)
}

/// The presets whose tiles the host runs: `baseline` (Cranelift's),
/// `native`, and `haswell` too where `native` means the 512-bit tiles.
/// Without AVX2 `native` runs Cranelift's tiles (said once).
fn host_cpus() -> Vec<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if !(has!("avx2") && has!("fma")) {
            eprintln!("no AVX2 + FMA on this CPU: the assembled block-sparse tiles are not run here (the objects are checked)");
        } else if has!("avx512f") && has!("avx512vl") {
            return vec!["baseline", "native", "haswell"];
        } else {
            eprintln!("no AVX-512F + VL on this CPU: the 512-bit block-sparse tile is not run here");
        }
        vec!["baseline", "native"]
    }
    #[cfg(not(target_arch = "x86_64"))]
    vec!["native"]
}

/// Case `i` on preset `cpu`: block-sparse with micro-kernels on and off
/// and dense give the same bits, and each the reference's values.
fn check(cpu: &str, i: usize, text: &str, ins: &[Tensor]) {
    let g = kerf_ir::text::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let want = reference(&g, ins).remove(0);
    let mut outs = Vec::new();
    for (ukernels, skip_zeros) in [(true, true), (false, true), (true, false)] {
        let mut o = CompileOptions::parse("host", cpu, "t").unwrap();
        (o.ukernels, o.skip_zeros) = (ukernels, skip_zeros);
        let jm = jit_compile(&g, &o).unwrap_or_else(|e| panic!("case {i}: {e}"));
        let y = common::run_rt(jm.model(), ins, None);
        let y: Vec<f32> = y.chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let name = format!("case {i} ({cpu}, micro-kernels {ukernels}, skipping zeros {skip_zeros})");
        close(&name, &y, &want, 1e-5, 1e-4);
        outs.push((name, y));
    }
    for (name, y) in &outs[1..] {
        let diff = outs[0].1.iter().zip(y).position(|(a, b)| a.to_bits() != b.to_bits());
        assert!(diff.is_none(), "case {i}: element {diff:?} of {name} differs from {}", outs[0].0);
    }
}

/// Every case compiled for AArch64 (`baseline`) and RISC-V `v`,
/// block-sparse and dense, linked with the C harness by the cross GCCs
/// and run under qemu-user: the two give the same bytes, and the
/// reference's values.
#[test]
fn block_sparse_products_under_qemu() {
    use common::cross::{AARCH64, RISCV64_V};
    for t in [AARCH64, RISCV64_V] {
        if !t.available() {
            continue;
        }
        let root = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("block-sparse-{}", t.triple));
        let all = cases();
        for (i, (text, ins)) in all.iter().enumerate() {
            let g = kerf_ir::text::parse(text).unwrap();
            let want = reference(&g, ins).remove(0);
            let input: Vec<u8> = ins.iter().flat_map(|x| x.bytes().to_vec()).collect();
            let mut outs = Vec::new();
            for skip in [true, false] {
                let dir = root.join(format!("case{i}-{skip}"));
                std::fs::create_dir_all(&dir).unwrap();
                let mut o = CompileOptions::parse(t.triple, t.cpu, "m").unwrap();
                o.skip_zeros = skip;
                let art = kerf_targets::compile_object(&g, &o).unwrap();
                std::fs::write(dir.join("m.h"), &art.header).unwrap();
                std::fs::write(dir.join("m.o"), &art.object).unwrap();
                let exe = t.link(&dir, "m", &dir.join("m.o"));
                let got =
                    t.run(None, &exe, &input).unwrap_or_else(|e| panic!("case {i} ({} {}): {e}", t.triple, t.cpu));
                outs.push(got);
            }
            assert!(outs[0] == outs[1], "case {i} ({} {}): block-sparse and dense bytes differ", t.triple, t.cpu);
            let y: Vec<f32> = outs[0].chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            close(&format!("case {i} ({} {})", t.triple, t.cpu), &y, &want, 1e-5, 1e-4);
        }
        eprintln!("{} --cpu {}: {} block-sparse cases equal the dense engine", t.triple, t.cpu, all.len());
    }
}

/// Threaded runs equal serial ones: a MatMul split over rows, a Gemm
/// over column chunks (every block-sparse Gemm of 128 columns or more), a
/// pointwise conv over pixels.
#[test]
fn block_sparse_threads_equal_serial() {
    let (text, ins) = matmul(64, 96, 100, "Relu", true);
    common::threaded_equals_serial("block-sparse MatMul 64x96x100", &text, &ins);
    let (text, ins) = gemm(40, 64, 200, false, false);
    common::threaded_equals_serial("block-sparse Gemm 40x64x200", &text, &ins);
    let (text, ins) = conv(40, 48, 12, 2, true);
    common::threaded_equals_serial("block-sparse 1x1 conv 40 -> 48, 12x12", &text, &ins);
}

/// For `haswell` (`ymm`) and `sapphirerapids` (`zmm`) the object's tiles
/// read A at a listed offset (`[rdi + rax + row]`); there and on the
/// presets of Cranelift's tiles its constant data holds about half the
/// dense weight bytes (2:4 kept plus one `u32` per kept row and block);
/// with every row kept (zeros scattered, one column in eight) the product
/// stays dense.
#[test]
fn block_sparse_objects_skip_the_zeros() {
    let (kk, n) = (96, 64);
    let sparse = matmul(24, kk, n, "Relu", false).0;
    let dense_w: Vec<f32> = (0..kk * n).map(|i| if i % 8 == 0 { 0.0 } else { 0.01 * (i % 13) as f32 }).collect();
    let dense = sparse.replace(&list(&weights(kk, n, (n > 48).then_some(1), (n > 32).then_some(2))), &list(&dense_w));
    assert_ne!(dense, sparse);
    let [sparse, dense] = [sparse, dense].map(|t| kerf_ir::text::parse(&t).unwrap());
    let weight_bytes = kk * n * 4;
    let x86 = "x86_64-unknown-linux-gnu";
    let presets = [(x86, "haswell"), (x86, "sapphirerapids")].into_iter().chain(CRANELIFT_TILES);
    for (triple, cpu) in presets {
        if cpu == "haswell" || cpu == "sapphirerapids" {
            assert!(reads_listed_offsets(&sparse, cpu), "{cpu}: no tile reads A at listed offsets");
            assert!(!reads_listed_offsets(&dense, cpu), "{cpu}: every row kept, yet block-sparse");
        }
        let (sparse_rodata, dense_rodata) = (rodata(&sparse, triple, cpu, true), rodata(&dense, triple, cpu, true));
        assert_eq!(
            dense_rodata,
            rodata(&dense, triple, cpu, false),
            "{triple} {cpu}: every row kept, yet block-sparse"
        );
        assert!(
            dense_rodata - sparse_rodata > weight_bytes * 4 / 10,
            "{triple} {cpu}: constant data {sparse_rodata} B sparse vs {dense_rodata} B dense ({weight_bytes} B of weights)"
        );
    }
}
