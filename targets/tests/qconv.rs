#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The integer conv kernel (`QConv`) against the reference evaluator, bit
//! for bit: the sums are exact integers and the epilogue performs the op's
//! f32 steps in the contract's order, so any difference is a bug (for
//! HardSwish and LeakyRelu, whose f32 routines are the kernels' own, every
//! tile must give the baseline's bits, within 1e-5 of the reference). Shapes
//! cover partial panel pairs, partial row blocks, odd K, strides,
//! dilations, groups, several images, a residual and Relu/Clip; the
//! adversarial case drives every product to its extreme (`x − zp = ±255`,
//! `w = −128 / 127`) over a long K to show the 16-bit pairs cannot
//! overflow, and the byte tile's pairs to the saturation bound. Every
//! shape runs with 8-bit weights and with 7-bit ones (the AVX2 byte tile). JIT-compiled for the host CPU (AVX-512 VNNI's byte-quad tile
//! where the host has it), for `haswell` where the host has AVX2 (the
//! 16-bit-pair tile) and for the baseline preset;
//! the cross-ISA run (aarch64, riscv64 under qemu) is in
//! `testsuite/tests/cross_isa.rs`.

mod common;
use common::qcase::*;
use common::run;
use kerf_ir::{DType, Tensor};

/// Where the host has AVX-512 VNNI, `native` code runs the integer conv on
/// the VNNI tile (assembled, called) and `haswell` code on the AVX2 tile;
/// skipped with a printed reason elsewhere. On any host: a `haswell`
/// object's pair tile applies the epilogue itself on whole units (the
/// conversion to f32 is in the tile, `vpmaddwd` beside it).
#[test]
fn vnni_tile_is_used_where_the_host_has_it() {
    use iced_x86::Mnemonic;
    let one = &window(1, 1, 1, 1);
    let c = Case { xsh: [1, 8, 4, 4], wsh: [4, 8, 1, 1], osh: [1, 4, 4, 4], attrs: one, epi: PLAIN, zp: 0 };
    let g = kerf_ir::text::parse(&graph_text(&c, &pseudo(32, 5, -127, 127))).unwrap();
    let code = common::kernel_instructions(&g, "haswell");
    let has = |m: Mnemonic| code.iter().any(|i| i.mnemonic() == m);
    assert!(has(Mnemonic::Vpmaddwd) && has(Mnemonic::Vcvtdq2ps), "haswell: the pair tile with its epilogue");
    if !host_runs(Cpu::Vnni) {
        return;
    }
    // VNNI: the tile and the byte-quad packer; haswell: the pair tile (8-bit weights)
    for (cpu, vnni, kernels) in [("native", true, 2), ("haswell", false, 1)] {
        let jm = common::jit(&g, cpu);
        assert_eq!(jm.report().caps.vnni, vnni, "{cpu}");
        assert_eq!(jm.report().micro_kernels, kernels, "{cpu}: assembled kernels");
    }
}

/// `haswell` code (AVX2, no VNNI) runs whole units of byte quads in
/// pairs on the wide tile, whose `vpmaddwd` reads its ones from memory,
/// where the pairs make at least 8 work items; with fewer (7 units of a
/// 7x7 plane make 4), the byte tile alone. Which code an object holds is
/// decided at compile time, so any host checks it; the numeric batteries
/// run both where the host can.
#[test]
fn whole_units_run_in_pairs_on_the_wide_tile() {
    use iced_x86::{Mnemonic, OpKind};
    let one = &window(1, 1, 1, 1);
    let wide = |n: usize, h: usize, w: usize| {
        let c = Case { xsh: [n, 16, h, w], wsh: [8, 16, 1, 1], osh: [n, 8, h, w], attrs: one, epi: PLAIN, zp: 0 };
        let g = kerf_ir::text::parse(&graph_text(&c, &pseudo(8 * 16, 5, -64, 64))).unwrap();
        let code = common::kernel_instructions(&g, "haswell");
        assert!(code.iter().any(|i| i.mnemonic() == Mnemonic::Vpmaddubsw), "{n}x{h}x{w}: byte quads");
        code.iter().any(|i| i.mnemonic() == Mnemonic::Vpmaddwd && i.op2_kind() == OpKind::Memory)
    };
    assert!(!wide(1, 7, 7), "7 units, 4 pairs: the byte tile");
    assert!(wide(1, 16, 8) && wide(1, 15, 9), "16 whole units (and a partial one): the wide tile");
    assert!(wide(2, 8, 8), "8 units in each of two images: 8 pairs");
}

/// Where the host has AVX2 (and no VNNI), `haswell` code runs a conv
/// whose weights are 7-bit on the byte tile, which stores them one byte
/// each (the pair tile two): the object's read-only data shrinks by about
/// the weights' size. `baseline` code keeps the pair layout for both.
#[test]
fn byte_tile_is_used_for_seven_bit_weights() {
    if !host_runs(Cpu::Avx2) {
        return;
    }
    let rodata = |cpu: &str, lo: i64, hi: i64| {
        let one = &window(1, 1, 1, 1);
        let c = Case { xsh: [1, 64, 8, 8], wsh: [64, 64, 1, 1], osh: [1, 64, 8, 8], attrs: one, epi: PLAIN, zp: 0 };
        let g = kerf_ir::text::parse(&graph_text(&c, &pseudo(64 * 64, 5, lo, hi))).unwrap();
        let jm = common::jit(&g, cpu);
        jm.report().rodata_bytes
    };
    // 4096 weights: 8192 bytes as pairs, 4096 as bytes plus a 768-byte epilogue table
    let (pairs, bytes) = (rodata("haswell", -127, 127), rodata("haswell", -64, 64));
    assert!(pairs >= bytes + 3000, "haswell: {pairs} bytes with 8-bit weights, {bytes} with 7-bit");
    assert_eq!(rodata("baseline", -127, 127), rodata("baseline", -64, 64), "baseline: the pair layout for both");
}

/// Each case twice: 8-bit weights (the 16-bit-pair tile on AVX2) and
/// 7-bit ones (`|q| ≤ 64`: the AVX2 byte tile, `vpmaddubsw`).
fn run_case(c: &Case) {
    let nx: usize = c.xsh.iter().product();
    let nw: usize = c.wsh.iter().product();
    let x: Vec<u8> = pseudo(nx, 1, 0, 255).into_iter().map(|v| v as u8).collect();
    check(c, &x, &pseudo(nw, 2, -127, 127));
    check(c, &x, &pseudo(nw, 2, -64, 64));
}

#[test]
fn three_by_three_with_partial_tiles() {
    // 5x5 = 25 pixels (3 pairs, the last with one pixel); 7 channels (a block of 6 and one of 1); K = 27 (odd)
    let attrs = &window(3, 1, 1, 1);
    run_case(&Case { xsh: [1, 3, 7, 7], wsh: [7, 3, 3, 3], osh: [1, 7, 5, 5], attrs, epi: PLAIN, zp: 128 });
    run_case(&Case {
        xsh: [2, 3, 7, 7],
        wsh: [7, 3, 3, 3],
        osh: [2, 7, 5, 5],
        attrs,
        epi: "act=Relu, residual=false",
        zp: 3,
    });
}

#[test]
fn one_by_one_strided_dilated_and_grouped() {
    let one = &window(1, 1, 1, 1);
    run_case(&Case { xsh: [1, 16, 4, 4], wsh: [12, 16, 1, 1], osh: [1, 12, 4, 4], attrs: one, epi: PLAIN, zp: 0 });
    let s2 = &window(3, 2, 1, 1);
    run_case(&Case { xsh: [1, 4, 9, 11], wsh: [6, 4, 3, 3], osh: [1, 6, 4, 5], attrs: s2, epi: PLAIN, zp: 255 });
    let dil = &window(3, 1, 2, 1);
    run_case(&Case { xsh: [1, 2, 8, 8], wsh: [5, 2, 3, 3], osh: [1, 5, 4, 4], attrs: dil, epi: PLAIN, zp: 77 });
    let grouped = &window(3, 1, 1, 2);
    run_case(&Case {
        xsh: [1, 6, 6, 6],
        wsh: [8, 3, 3, 3],
        osh: [1, 8, 4, 4],
        attrs: grouped,
        epi: "act=Clip, act_min=0.0, act_max=6.0, residual=false",
        zp: 100,
    });
}

#[test]
fn vector_and_scalar_input_packing() {
    // 12 pixels per output row: units of 8 pixels either fit in a row
    // (vector packing) or straddle two (scalar); 1x1 rows join up (always vector)
    let attrs = &window(3, 1, 1, 1);
    run_case(&Case { xsh: [1, 5, 14, 14], wsh: [9, 5, 3, 3], osh: [1, 9, 12, 12], attrs, epi: PLAIN, zp: 90 });
    let one = &window(1, 1, 1, 1);
    run_case(&Case { xsh: [1, 7, 5, 8], wsh: [6, 7, 1, 1], osh: [1, 6, 5, 8], attrs: one, epi: PLAIN, zp: 1 });
    // stride 2 (every other byte, with AVX2): rows of 13 and 16 output
    // pixels (units inside a row and straddling two), a 7x7 stem-like
    // window reaching the input's last byte, and a strided 1x1
    let s2 = &window(3, 2, 1, 1);
    run_case(&Case { xsh: [1, 3, 21, 27], wsh: [7, 3, 3, 3], osh: [1, 7, 10, 13], attrs: s2, epi: PLAIN, zp: 5 });
    let s7 = &window(7, 2, 1, 1);
    run_case(&Case { xsh: [1, 3, 23, 37], wsh: [13, 3, 7, 7], osh: [1, 13, 9, 16], attrs: s7, epi: PLAIN, zp: 0 });
    let one2 = &window(1, 2, 1, 1);
    run_case(&Case { xsh: [2, 8, 8, 20], wsh: [9, 8, 1, 1], osh: [2, 9, 4, 10], attrs: one2, epi: PLAIN, zp: 200 });
}

#[test]
fn residual_and_clip_epilogue() {
    let attrs = &window(3, 1, 1, 1);
    run_case(&Case {
        xsh: [1, 8, 10, 10],
        wsh: [13, 8, 3, 3],
        osh: [1, 13, 8, 8],
        attrs,
        epi: "act=Clip, act_min=-1.5, act_max=2.5, residual=true",
        zp: 128,
    });
    // the activations the byte tiles apply themselves (full units of 8 or
    // 16 pixels) and one they leave to the Cranelift epilogue; 13 channels
    // (a block of 12 and one of 1, ymm and zmm tiles alike) and 37 (three
    // whole 12-row blocks and a remainder); 64 pixels (whole units) and 36
    // (a partial last unit); 144 and 169 pixels run whole units in pairs on
    // AVX2's wide tile (169: 21 whole units, an odd one left, and a pixel)
    for epi in
        ["act=HardSwish, residual=true", "act=Relu, residual=true", "act=LeakyRelu, act_alpha=0.1, residual=false"]
    {
        for (m, side) in [(13, 8), (37, 8), (37, 6), (13, 12), (37, 13)] {
            let (xsh, osh) = ([1, 8, side + 2, side + 2], [1, m, side, side]);
            run_case(&Case { xsh, wsh: [m, 8, 3, 3], osh, attrs, epi, zp: 9 });
        }
    }
}

/// Depthwise QConvs, the only ones with padding (padded taps read the zero
/// point: they add nothing). With AVX2 (`native`, `haswell`) they run on
/// the assembled passes over `x − zp` as floats (exact sums below 2^24):
/// small stride-1 "same" planes on the flat pass (on `native` with VNNI
/// only rows under 7 pixels, the others on the quad pass), the rest on
/// the padded-plane pass; `baseline` (and rows under 4 pixels, stride 3)
/// on the scalar integer fallback; unpadded ones elsewhere on the integer
/// GEMM. The padded-plane pass on rows of 14 (whole vectors and an
/// overlapping last one) and 7 (`xmm` halves) on 280-pixel planes, and
/// 3; stride 2 on rows of 15 and 33 (the u8 copy's 8- and 16-wide parity
/// splits); 5x5; several images; residual, Relu, Clip, HardSwish.
#[test]
fn depthwise_with_padding_on_every_path() {
    let clip = "act=Clip, act_min=0.0, act_max=6.0, residual=false";
    for (side, s, p, k, epi, zp) in [
        (14, 1, 1, 3, clip, 3),
        (7, 1, 1, 3, PLAIN, 128),
        (3, 1, 1, 3, "act=Relu, residual=false", 250),
        (15, 2, 1, 3, clip, 17),
        (33, 2, 1, 3, "act=Relu, residual=true", 0),
        (9, 1, 2, 5, "act=HardSwish, residual=true", 99),
        (11, 3, 1, 3, PLAIN, 42),
        (12, 1, 0, 3, clip, 7),
    ] {
        let (c, n) = (5, 2);
        let o = (side + 2 * p - k) / s + 1;
        let attrs = &depthwise(k, s, p, c);
        run_case(&Case { xsh: [n, c, side, side], wsh: [c, 1, k, k], osh: [n, c, o, o], attrs, epi, zp });
    }
    // planes past the flat pass's 256 pixels: the padded-plane pass on
    // `haswell` (rows of 14 and 7)
    for (h, w, epi, zp) in [(20, 14, clip, 3), (40, 7, "act=HardSwish, residual=true", 128)] {
        let (c, n) = (3, 2);
        let attrs = &depthwise(3, 1, 1, c);
        run_case(&Case { xsh: [n, c, h, w], wsh: [c, 1, 3, 3], osh: [n, c, h, w], attrs, epi, zp });
    }
    // rows under 7 pixels: the flat pass on `native` too where it has VNNI
    for (h, w, k, epi, zp) in [(25, 5, 3, "act=Relu, residual=true", 30), (4, 6, 5, clip, 200)] {
        let (c, n, p) = (5, 2, k / 2);
        let attrs = &depthwise(k, 1, p, c);
        run_case(&Case { xsh: [n, c, h, w], wsh: [c, 1, k, k], osh: [n, c, h, w], attrs, epi, zp });
        if epi == clip {
            continue;
        }
        // and its requantising store (n·c·h·w a multiple of 4: the harness)
        let case = Case {
            xsh: [n, 4, h, w],
            wsh: [4, 1, k, k],
            osh: [n, 4, h, w],
            attrs: &depthwise(k, 1, p, 4),
            epi: clip,
            zp,
        };
        let x: Vec<u8> = pseudo(n * 4 * h * w, 1, 0, 255).into_iter().map(|v| v as u8).collect();
        check_quant(&case, &x, &pseudo(4 * k * k, 2, -127, 127));
    }
    // the flat pass at dilation 2 (a 12x6 "same" plane, pads 2) and with a
    // lopsided 2x2 window, f32 and u8 out
    for (k, d, p, epi) in [([3, 3], [2, 2], [2, 2, 2, 2], clip), ([2, 2], [1, 1], [0, 0, 1, 1], PLAIN)] {
        let attrs = &dw_window(k, [1, 1], d, p, 4);
        let case = Case { xsh: [2, 4, 12, 6], wsh: [4, 1, k[0], k[1]], osh: [2, 4, 12, 6], attrs, epi, zp: 77 };
        let x: Vec<u8> = pseudo(2 * 4 * 72, 6, 0, 255).into_iter().map(|v| v as u8).collect();
        let wts = pseudo(4 * k[0] * k[1], 7, -128, 127);
        check(&case, &x, &wts);
        check_quant(&case, &x, &wts);
    }
    // every product at its extreme over a 7x7 window: 49 · 255 · 128 < 2^24
    let attrs = &depthwise(7, 1, 3, 2);
    let c = Case { xsh: [1, 2, 8, 8], wsh: [2, 1, 7, 7], osh: [1, 2, 8, 8], attrs, epi: PLAIN, zp: 0 };
    let w: Vec<i64> = (0..98).map(|i| if i < 49 { -128 } else { 127 }).collect();
    check(&c, &[255u8; 128], &w);
}

/// A depthwise case: input rows and columns, kernel, strides, dilations,
/// pads (top, left, bottom, right), epilogue, zero point.
type DwCase<'a> = (usize, usize, [usize; 2], [usize; 2], [usize; 2], [usize; 4], &'a str, u8);

/// The VNNI depthwise quad pass (`ukernel::avx512::dw_quad`, which
/// `native` code takes where the host has AVX-512 VNNI; every other path
/// elsewhere) against the reference, bit for bit with f32 outputs and
/// byte for byte with u8 ones: rows of 1 to 200 pixels (partial last
/// blocks, more than 12 blocks a row), strides 1 and 2 along either axis,
/// kernels 1x3, 3x1, 2x4, 5x3 and 3x3 at dilation 2, paddings of 0 to 2 and
/// lopsided ones, heights giving whole row groups and a rest, two images
/// (the per-plane table repeats per image), a residual, and none, Relu,
/// Clip and HardSwish; rows of whole blocks, windows at the fit's limit,
/// vertical stride 3, and a plane with no row's window inside it.
#[test]
fn depthwise_quad_pass_geometries() {
    use iced_x86::Mnemonic::Vpdpbusd;
    let clip = "act=Clip, act_min=0.0, act_max=6.0, residual=false";
    let relu_res = "act=Relu, residual=true";
    let hs = "act=HardSwish, residual=false";
    // (h, w, kernel, strides, dilations, pads, epilogue, zp)
    // the quad pass runs only where `native` has VNNI (the bits are checked
    // on every preset the host runs); a VNNI object takes every case (one
    // micro-kernel), checked on any host
    let cases: [DwCase; 17] = [
        (8, 20, [3, 3], [1, 1], [1, 1], [1, 1, 1, 1], clip, 3),
        (5, 200, [3, 3], [1, 1], [1, 1], [1, 1, 1, 1], PLAIN, 128),
        (9, 33, [3, 3], [2, 2], [1, 1], [1, 1, 1, 1], relu_res, 0),
        (7, 7, [3, 3], [1, 1], [1, 1], [1, 1, 1, 1], clip, 250),
        (14, 14, [3, 3], [2, 2], [1, 1], [0, 0, 1, 1], clip, 17),
        (6, 17, [1, 3], [1, 1], [1, 1], [0, 1, 0, 1], hs, 9),
        (11, 5, [3, 1], [2, 1], [1, 1], [1, 0, 1, 0], PLAIN, 77),
        (7, 40, [2, 4], [1, 2], [1, 1], [0, 2, 1, 1], relu_res, 200),
        (12, 19, [5, 3], [1, 1], [1, 1], [2, 1, 2, 1], clip, 1),
        (10, 36, [3, 3], [1, 1], [2, 2], [2, 2, 2, 2], PLAIN, 60),
        (1, 3, [3, 3], [1, 1], [1, 1], [1, 1, 1, 1], clip, 5),
        (4, 70, [3, 3], [1, 2], [1, 1], [0, 0, 0, 0], PLAIN, 33),
        // whole blocks only (rows of 32 and 112): no masked store
        (6, 32, [3, 3], [1, 1], [1, 1], [1, 1, 1, 1], clip, 21),
        (3, 112, [3, 3], [1, 1], [1, 1], [1, 1, 1, 1], relu_res, 90),
        // windows at the fit's limit: (kw − 1)·dw = 8 at stride 1, 9 at stride 2
        (9, 40, [3, 3], [1, 1], [1, 4], [1, 4, 1, 4], clip, 44),
        (9, 50, [2, 4], [3, 2], [1, 3], [1, 3, 0, 3], PLAIN, 120),
        // no row's window inside the plane: every row on its own
        (2, 24, [5, 3], [1, 1], [1, 1], [2, 1, 2, 1], clip, 8),
    ];
    for (h, w, k, st, dl, p, epi, zp) in cases {
        // n·c = 4: every output has whole f32s' worth of u8 (the harness)
        let (n, c) = (2, 2);
        let oh = (h + p[0] + p[2] - dl[0] * (k[0] - 1) - 1) / st[0] + 1;
        let ow = (w + p[1] + p[3] - dl[1] * (k[1] - 1) - 1) / st[1] + 1;
        let attrs = &dw_window(k, st, dl, p, c);
        let case = Case { xsh: [n, c, h, w], wsh: [c, 1, k[0], k[1]], osh: [n, c, oh, ow], attrs, epi, zp };
        let x: Vec<u8> = pseudo(n * c * h * w, 3, 0, 255).into_iter().map(|v| v as u8).collect();
        let wts = pseudo(c * k[0] * k[1], 4, -128, 127);
        check(&case, &x, &wts);
        check_quant(&case, &x, &wts);
        let g = kerf_ir::text::parse(&graph_text(&case, &wts)).unwrap();
        let quad = common::kernel_instructions(&g, "sapphirerapids").iter().any(|i| i.mnemonic() == Vpdpbusd);
        assert!(object_kernels(&g, "sapphirerapids") == 1 && quad, "{}: the quad pass", case.attrs);
    }
}

/// Which pass a padded depthwise QConv takes is decided at compile time,
/// so any host checks it: small stride-1 "same" planes (25x5, 10x10) the
/// flat pass on `haswell` (one micro-kernel, `ymm` FMAs); with VNNI
/// (`sapphirerapids`) the flat pass on rows under 7 pixels (25x5) and the
/// quad pass on the others (one, `vpdpbusd`); a larger plane (17x17) the
/// padded-plane pass on `haswell` (its u8 copy and the pass: two); never
/// the scalar fallback `baseline` takes.
#[test]
fn depthwise_qconv_takes_the_assembled_passes() {
    use iced_x86::Mnemonic;
    let attrs = &depthwise(3, 1, 1, 4);
    for (h, w) in [(25, 5), (10, 10), (17, 17)] {
        let plane = [1, 4, h, w];
        let c = Case { xsh: plane, wsh: [4, 1, 3, 3], osh: plane, attrs, epi: PLAIN, zp: 1 };
        let g = kerf_ir::text::parse(&graph_text(&c, &pseudo(36, 5, -127, 127))).unwrap();
        for cpu in ["haswell", "sapphirerapids", "baseline"] {
            let code = common::kernel_instructions(&g, cpu);
            let has = |m: Mnemonic| code.iter().any(|i| i.mnemonic() == m);
            let ymm_fma = code.iter().any(|i| i.mnemonic() == Mnemonic::Vfmadd231ps && i.op0_register().is_ymm());
            let (flat, quad, padded) = ((1, true, false), (1, false, true), (2, true, false));
            let want = match (w, cpu) {
                (_, "baseline") => (0, false, false),
                (5, _) => flat,
                (10, "haswell") => flat,
                (_, "haswell") => padded,
                _ => quad,
            };
            let got = (object_kernels(&g, cpu), ymm_fma, has(Mnemonic::Vpdpbusd));
            assert_eq!(got, want, "{h}x{w} ({cpu}): kernels, ymm FMAs, vpdpbusd");
            // a u8 output (which the rules give only where the flat or the
            // quad pass takes the plane): the same passes; the padded-plane
            // pass stores f32 only, so 17x17 on `haswell` falls to the
            // scalar kernel
            let q = kerf_ir::text::parse(&quant_text(&c, &pseudo(36, 5, -127, 127), (0.05, 3))).unwrap();
            let qcode = common::kernel_instructions(&q, cpu);
            let q_fma = qcode.iter().any(|i| i.mnemonic() == Mnemonic::Vfmadd231ps && i.op0_register().is_ymm());
            let q_quad = qcode.iter().any(|i| i.mnemonic() == Mnemonic::Vpdpbusd);
            let want = if want == padded { (0, false, false) } else { want };
            assert_eq!((object_kernels(&q, cpu), q_fma, q_quad), want, "{h}x{w} ({cpu}), u8 out");
        }
    }
}

/// The requantising epilogue with a clamp activation whose bounds fall
/// inside the output grid (the epilogue folds them into the grid's own:
/// `round(6 · f)`, `f = 1 / scale`, here is 201, not its floor 200, and the lower bound
/// 0 lies above `−zp`): GEMM tiles and the depthwise passes, byte for
/// byte, also with infinities in a residual; with NaN there, the presets
/// agree with each other.
#[test]
fn clamp_bounds_inside_the_grid() {
    let clip = "act=Clip, act_min=0.0, act_max=6.0, residual=false";
    let grid = (6.0 / 200.6, 10);
    let one = &window(1, 1, 1, 1);
    let dw = &depthwise(3, 1, 1, 4);
    for c in [
        Case { xsh: [1, 16, 5, 8], wsh: [12, 16, 1, 1], osh: [1, 12, 5, 8], attrs: one, epi: clip, zp: 3 },
        Case { xsh: [1, 4, 9, 20], wsh: [4, 1, 3, 3], osh: [1, 4, 9, 20], attrs: dw, epi: clip, zp: 3 },
    ] {
        let (x, w) = case_data(&c);
        let want = check_quant_on(&c, &x, &w, grid);
        // both folded bounds bind
        assert!(want.contains(&10) && want.contains(&211), "{}", c.attrs);
    }
    // a residual with infinities: the folded epilogue gives the reference's
    // bytes (+∞ on the grid's top, −∞ on Relu's 0); with NaN too, byte 0
    // (Relu keeps a NaN, in the kernels' `max` as in the reference, and the
    // quantiser makes it the grid's low end)
    let relu = "act=Relu, residual=true";
    for c in [
        Case { xsh: [1, 16, 4, 16], wsh: [12, 16, 1, 1], osh: [1, 12, 4, 16], attrs: one, epi: relu, zp: 3 },
        Case { xsh: [1, 4, 9, 20], wsh: [4, 1, 3, 3], osh: [1, 4, 9, 20], attrs: dw, epi: relu, zp: 3 },
    ] {
        let (x, w) = case_data(&c);
        let poison = |v: &[(usize, f32)]| {
            let mut ins = inputs(&c, &x);
            let mut r = ins[1].to_f32_vec();
            for &(i, x) in v {
                r[i] = x;
            }
            ins[1] = Tensor::from_f32(c.osh.to_vec(), &r).unwrap();
            ins
        };
        let want = check_quant_with(&c, &poison(&[(20, f32::INFINITY), (37, f32::NEG_INFINITY)]), &w, grid);
        assert_eq!([want[20], want[37]], [255, 10], "{}", c.attrs);
        let want = check_quant_with(&c, &poison(&[(3, f32::NAN), (50, -f32::NAN)]), &w, grid);
        assert_eq!([want[3], want[50]], [0, 0], "{}", c.attrs);
    }
    // a NaN bias (no residual): channel 0 is NaN throughout, byte 0 on
    // every preset (the epilogue keeps its NaN step for such constants)
    for c in [
        Case { xsh: [1, 16, 5, 8], wsh: [12, 16, 1, 1], osh: [1, 12, 5, 8], attrs: one, epi: clip, zp: 3 },
        Case { xsh: [1, 4, 9, 20], wsh: [4, 1, 3, 3], osh: [1, 4, 9, 20], attrs: dw, epi: clip, zp: 3 },
    ] {
        let (x, w) = case_data(&c);
        let text = quant_text(&c, &w, grid);
        let text = text.replace(&format!("= {}", floats(&bias_of(&c))), &{
            let mut b = bias_of(&c);
            b[0] = f32::NAN;
            format!("= {}", floats(&b))
        });
        assert!(text.contains("NaN"), "{text}");
        let ins = inputs(&c, &x);
        let base = run(&text, &ins, "baseline").remove(0);
        let plane = c.osh[2] * c.osh[3];
        for cpu in cpus() {
            let got = run(&text, &ins, cpu).remove(0);
            let bytes: Vec<u8> = got.iter().flat_map(|f| f.to_le_bytes()).collect();
            assert!(bytes[..plane].iter().all(|&b| b == 0), "{} ({cpu})", c.attrs);
            assert!(got.iter().zip(&base).all(|(a, b)| a.to_bits() == b.to_bits()), "{} ({cpu})", c.attrs);
        }
    }
}

/// The requantising epilogue (`out=quant`, a u8 output through the next
/// layer's quantiser): the integer GEMM's tiles (whole 16- or 8-pixel
/// units through the byte tiles' own store, partial ones and other
/// activations through the Cranelift epilogue; 8- and 7-bit weights; a
/// residual, whose f32 rows are wider than the u8 output's) and the
/// scalar depthwise kernel (which every padded depthwise QConv with a u8
/// output takes), with Relu, Clip, none and HardSwish.
#[test]
fn requantised_outputs_match_the_reference_byte_for_byte() {
    let clip = "act=Clip, act_min=0.0, act_max=6.0, residual=false";
    let one = &window(1, 1, 1, 1);
    let three = &window(3, 1, 1, 1);
    let gemm = [
        Case { xsh: [1, 16, 5, 8], wsh: [12, 16, 1, 1], osh: [1, 12, 5, 8], attrs: one, epi: clip, zp: 3 },
        // whole units with a residual: the byte tiles' own store reads f32 residual rows
        Case {
            xsh: [1, 8, 10, 10],
            wsh: [13, 8, 3, 3],
            osh: [1, 13, 8, 8],
            attrs: three,
            epi: "act=Relu, residual=true",
            zp: 11,
        },
        Case { xsh: [2, 8, 10, 10], wsh: [13, 8, 3, 3], osh: [2, 13, 8, 8], attrs: three, epi: PLAIN, zp: 128 },
        Case {
            xsh: [1, 8, 6, 6],
            wsh: [4, 8, 3, 3],
            osh: [1, 4, 4, 4],
            attrs: three,
            epi: "act=HardSwish, residual=false",
            zp: 9,
        },
    ];
    for c in &gemm {
        let nx: usize = c.xsh.iter().product();
        let nw: usize = c.wsh.iter().product();
        let x: Vec<u8> = pseudo(nx, 1, 0, 255).into_iter().map(|v| v as u8).collect();
        for bits in [127, 64] {
            check_quant(c, &x, &pseudo(nw, 2, -bits, bits));
        }
    }
    for (side, s, p, epi, zp) in
        [(14, 1, 1, clip, 3), (7, 1, 1, PLAIN, 128), (3, 1, 1, "act=Relu, residual=false", 250), (15, 2, 1, clip, 17)]
    {
        let (c, n, k) = (4, 2, 3);
        let o = (side + 2 * p - k) / s + 1;
        let attrs = &depthwise(k, s, p, c);
        let case = Case { xsh: [n, c, side, side], wsh: [c, 1, k, k], osh: [n, c, o, o], attrs, epi, zp };
        let x: Vec<u8> = pseudo(n * c * side * side, 1, 0, 255).into_iter().map(|v| v as u8).collect();
        check_quant(&case, &x, &pseudo(c * k * k, 2, -127, 127));
    }
}

/// A u8 residual on its own grid (`res_scale`, `res_zp`: `QConv::res_grid`,
/// `f32(r − zp) · scale` added where an f32 residual is): on every preset
/// the host runs, the same bits as the f32-residual form fed that
/// dequantised residual (f32 and requantised u8 outputs), and for None,
/// Relu and Clip the reference's. Whole units through the assembled tiles'
/// own stores (byte quads with 7-bit weights, pairs with 8-bit ones without
/// VNNI), partial last units and row blocks through the Cranelift
/// epilogue, two images, 1x1 and 3x3.
#[test]
fn u8_residuals_add_their_dequantised_values() {
    let (one, three) = (&window(1, 1, 1, 1), &window(3, 1, 1, 1));
    // the first and last run whole units in pairs on AVX2 (the wide tile's
    // two vectors per row), the third one at a time
    let cases = [
        Case {
            xsh: [2, 8, 10, 10],
            wsh: [13, 8, 3, 3],
            osh: [2, 13, 8, 8],
            attrs: three,
            epi: "act=Relu, residual=true",
            zp: 11,
        },
        Case {
            xsh: [2, 16, 5, 9],
            wsh: [20, 16, 1, 1],
            osh: [2, 20, 5, 9],
            attrs: one,
            epi: "act=None, residual=true",
            zp: 128,
        },
        Case {
            xsh: [1, 12, 6, 19],
            wsh: [24, 12, 3, 3],
            osh: [1, 24, 4, 17],
            attrs: three,
            epi: "act=Clip, act_min=-1.0, act_max=4.0, residual=true",
            zp: 3,
        },
        Case {
            xsh: [1, 8, 32, 4],
            wsh: [12, 8, 1, 1],
            osh: [1, 12, 32, 4],
            attrs: one,
            epi: "act=HardSwish, residual=true",
            zp: 40,
        },
    ];
    let res = (0.0625, 100);
    for c in &cases {
        let (x, _) = case_data(c);
        let nw: usize = c.wsh.iter().product();
        for bits in [127, 63] {
            let w = pseudo(nw, 2, -bits, bits);
            for out in [None, Some((0.04, 7))] {
                check_u8_residual(c, &x, &w, out, res);
            }
        }
    }
}

/// The requantising epilogue multiplies by the grid's factor
/// (`QOut::factor`, `1 / scale` in f32) where the quantiser divides by the
/// scale: outputs whose real value lies within a few ulps of a half step,
/// where the two round apart, come out as the multiplication's bytes on
/// every preset and path (the GEMM tiles' own stores, the Cranelift
/// epilogue, the one-pixel product, the depthwise passes; no activation
/// and Relu, the clamp folded into the grid, and HardSwish, the unfolded
/// requantiser, on values from 3.5 up, where it is the identity). Zero
/// weights and the residual place every output on such a value; the test
/// asserts, per case, that the division would give other bytes on some of
/// them, so a path that divides fails it.
#[test]
fn requantised_near_ties_follow_the_multiplication() {
    let one = &window(1, 1, 1, 1);
    let dw = &depthwise(3, 1, 1, 4);
    let mut split = 0;
    for epi in ["act=None, residual=true", "act=Relu, residual=true", "act=HardSwish, residual=true"] {
        for c in [
            Case { xsh: [1, 16, 4, 8], wsh: [12, 16, 1, 1], osh: [1, 12, 4, 8], attrs: one, epi, zp: 3 },
            Case { xsh: [8, 16, 1, 1], wsh: [40, 16, 1, 1], osh: [8, 40, 1, 1], attrs: one, epi, zp: 3 },
            Case { xsh: [1, 4, 9, 20], wsh: [4, 1, 3, 3], osh: [1, 4, 9, 20], attrs: dw, epi, zp: 3 },
            Case { xsh: [1, 4, 5, 8], wsh: [4, 1, 3, 3], osh: [1, 4, 5, 8], attrs: dw, epi, zp: 3 },
        ] {
            let (x, _) = case_data(&c);
            let w = vec![0; c.wsh.iter().product()];
            // HardSwish is the identity from 3 up
            let from = if epi.contains("HardSwish") { 35 } else { -3 };
            let (grid, r) = near_ties(&c, from);
            let mut ins = inputs(&c, &x);
            ins[1] = Tensor::from_f32(c.osh.to_vec(), &r).unwrap();
            let want = check_quant_with(&c, &ins, &w, grid);
            // the division's bytes: y = b + r exactly as the epilogue adds them
            let plane = c.osh[2] * c.osh[3];
            let bias = bias_of(&c);
            let z = f32::from(grid.1);
            let by_division = r.iter().enumerate().map(|(i, &r)| {
                let y = bias[i / plane % c.osh[1]] + r;
                let y = if epi.contains("Relu") { y.max(0.0) } else { y };
                ((y / grid.0).round_ties_even().clamp(-z, 255.0 - z) + z) as u8
            });
            let apart = by_division.zip(&want).filter(|(d, w)| d != *w).count();
            assert!(apart > 0, "{} {}: no output where the division and the multiplication round apart", c.attrs, epi);
            split += apart;
        }
    }
    eprintln!("{split} outputs where the division would give another byte");
}

/// A grid and a residual for case `c` (zero weights, so each output's real
/// value is its bias plus the residual) placing the outputs on values
/// within a few ulps of half steps `k + 0.5` of the grid, `k` from `from`,
/// cycling through them.
fn near_ties(c: &Case, from: i32) -> ((f32, u8), Vec<f32>) {
    let (scale, zp) = (0.1f32, 3u8);
    let f = 1.0 / scale;
    let near = |h: f32, d: i32| f32::from_bits((h.to_bits() as i32 + d) as u32);
    // the values a few ulps from half steps where the two round apart, each
    // with its neighbours (where they may not)
    let mut targets = Vec::new();
    for k in from..250 {
        let h = (k as f32 + 0.5) * scale;
        for d in -3i32..=3 {
            let t = near(h, d);
            if (t / scale).round_ties_even() != (t * f).round_ties_even() {
                targets.extend([near(t, -1), t, near(t, 1)]);
            }
        }
    }
    let plane = c.osh[2] * c.osh[3];
    let bias = bias_of(c);
    let n: usize = c.osh.iter().product();
    // a residual `r` with `b + r` exactly the target (a nearby one where
    // the sum cannot hit it)
    let residual = |t: f32, b: f32| {
        let r0 = t - b;
        (-4i32..=4).map(|d| f32::from_bits((r0.to_bits() as i32 + d) as u32)).find(|&r| b + r == t).unwrap_or(r0)
    };
    let r = (0..n).map(|i| residual(targets[i % targets.len()], bias[i / plane % c.osh[1]])).collect();
    ((scale, zp), r)
}

/// One-pixel planes (a classifier head as a 1x1 conv): with VNNI or AVX2
/// the one-pixel product runs them, output channels in the lanes; partial
/// blocks (10, 1000 = 5 chunks of 192 and 40; every last block of 1..=7
/// of AVX2's 8 lanes, f32 and u8), two images, a residual, Relu, and u8
/// outputs; K = 6 (not whole quads) takes the unit tiles with VNNI, and
/// AVX2's pair product with either weight width. Bit for bit
/// on every preset, with 8-bit weights (AVX2: pairs) and 7-bit ones
/// (AVX2: byte quads); `haswell` and `sapphirerapids` objects hold the
/// product's variants (the unit tiles would need other counts), checked
/// at compile time on any host.
#[test]
fn one_pixel_products() {
    let one = &window(1, 1, 1, 1);
    for (n, c, m, epi) in [
        (1, 64, 128, PLAIN),
        (2, 512, 1000, "act=Relu, residual=false"),
        (1, 32, 12, "act=Clip, act_min=-1.0, act_max=4.0, residual=true"),
        (2, 6, 20, PLAIN),
        // a product's rows as images: groups of four sharing each weight
        // load, a last group of one or three, chunks of 96 channels and a rest
        (5, 128, 200, "act=Relu, residual=true"),
        (7, 64, 384, "act=HardSwish, residual=false"),
        (4, 96, 40, PLAIN),
        // AVX2's last blocks of 1..=7 lanes, in groups of two images and a last one
        (4, 16, 1, PLAIN),
        (4, 16, 2, "act=Relu, residual=true"),
        (3, 16, 4, PLAIN),
        (4, 8, 3, PLAIN),
        (4, 24, 5, "act=Clip, act_min=-1.0, act_max=4.0, residual=false"),
        (4, 16, 6, PLAIN),
        (4, 40, 7, PLAIN),
        (4, 16, 13, PLAIN),
    ] {
        let case = Case { xsh: [n, c, 1, 1], wsh: [m, c, 1, 1], osh: [n, m, 1, 1], attrs: one, epi, zp: 77 };
        run_case(&case);
        if (n * m) % 4 == 0 {
            let x: Vec<u8> = pseudo(n * c, 1, 0, 255).into_iter().map(|v| v as u8).collect();
            check_quant(&case, &x, &pseudo(m * c, 2, -127, 127));
            check_quant(&case, &x, &pseudo(m * c, 2, -64, 64));
        }
    }
    // a one-pixel output whose window is the whole 3x3 input (the product,
    // two images: each image's 72 bytes), and one whose window is not (a
    // stride-2 3x3 on 4x4: the unit tiles)
    let three = &window(3, 1, 1, 1);
    run_case(&Case { xsh: [2, 8, 3, 3], wsh: [12, 8, 3, 3], osh: [2, 12, 1, 1], attrs: three, epi: PLAIN, zp: 5 });
    let s2 = &window(3, 2, 1, 1);
    run_case(&Case { xsh: [2, 8, 4, 4], wsh: [12, 8, 3, 3], osh: [2, 12, 1, 1], attrs: s2, epi: PLAIN, zp: 5 });
    // which kernel `haswell` and `native` code chose, where the host has
    // them: with 8-bit weights five rows of ten channels, a pair of images
    // twice and a last one (two variants of the pair product; the unit
    // tiles: one, the pair tile), with 7-bit ones four rows (one variant of
    // the byte-quad product; the unit tiles: two, a fused byte tile and a
    // sums-only one for the partial unit); compiled, so on any host
    for (bits, n, variants) in [(127, 5, 2), (64, 4, 1)] {
        let c = Case { xsh: [n, 32, 1, 1], wsh: [10, 32, 1, 1], osh: [n, 10, 1, 1], attrs: one, epi: PLAIN, zp: 0 };
        let g = kerf_ir::text::parse(&graph_text(&c, &pseudo(320, 5, -bits, bits))).unwrap();
        assert_eq!(object_kernels(&g, "haswell"), variants, "{n} images, {bits}");
    }
    // with VNNI: one row, the product alone; five rows, a group of four
    // images and a last one of one (two variants)
    for (n, variants) in [(1, 1), (5, 2)] {
        let c = Case { xsh: [n, 32, 1, 1], wsh: [10, 32, 1, 1], osh: [n, 10, 1, 1], attrs: one, epi: PLAIN, zp: 0 };
        let g = kerf_ir::text::parse(&graph_text(&c, &pseudo(320, 5, -127, 127))).unwrap();
        assert_eq!(object_kernels(&g, "sapphirerapids"), variants, "sapphirerapids, {n} rows");
    }
}

/// Units whose last has 1..=9 pixels (planes of 16·u + t): with VNNI the
/// tail products (channels in the lanes) take 1..=8, the tile the rest;
/// with AVX2 and no VNNI (units of 8) its tail products take 1..=4, pairs
/// (8-bit weights) and byte quads (7-bit); full and partial row blocks
/// (12 + 8 channels), two images, a residual with Clip, a requantised
/// output, a 3x3 window over 40 input channels (K = 360: 90 quads): every
/// result bit-exact on every preset.
#[test]
fn tail_units_of_every_size() {
    let three = &window(3, 1, 1, 1);
    for t in 1..=9 {
        // an output plane of 16 + t pixels: one row of 16 + t
        let ow = 16 + t;
        let case =
            |epi| Case { xsh: [2, 40, 3, ow + 2], wsh: [20, 40, 3, 3], osh: [2, 20, 1, ow], attrs: three, epi, zp: 9 };
        run_case(&case(PLAIN));
        run_case(&case("act=Clip, act_min=-2.0, act_max=3.0, residual=true"));
        let c = case("act=Relu, residual=false");
        let x: Vec<u8> = pseudo(2 * 40 * 3 * (ow + 2), 3, 0, 255).into_iter().map(|v| v as u8).collect();
        check_quant(&c, &x, &pseudo(20 * 40 * 9, 4, -127, 127));
        check_quant(&c, &x, &pseudo(20 * 40 * 9, 4, -63, 63));
    }
    // row blocks of 7 and 11 channels (partial lane masks in the tail
    // products' first and second halves), tails of 1..=4 pixels
    for (m, t) in [(7, 1), (11, 3), (7, 4), (11, 2)] {
        let ow = 16 + t;
        run_case(&Case {
            xsh: [1, 40, 3, ow + 2],
            wsh: [m, 40, 3, 3],
            osh: [1, m, 1, ow],
            attrs: three,
            epi: PLAIN,
            zp: 5,
        });
    }
}

/// Weights past 256 KiB (224 channels × K = 130·9 = 1170: 293 quads, 586
/// pairs) run their units in chunks, every row block over the chunk's
/// units in turn (`lower::qconv::chunks`): planes of 7x7 (a last unit of 1
/// pixel: the tail products' six chains, 293 quads leaving 5 past the
/// last whole group of six) and 6x6 (a last unit of 4: two chains, one
/// quad left), two images so that a chunk spans both, full and partial
/// row blocks (18 × 12 + 8), a residual and a requantised output: every
/// result bit-exact on every preset.
#[test]
fn large_weights_run_units_in_chunks() {
    let three = &window(3, 1, 1, 1);
    for side in [7, 6] {
        let case = |epi| Case {
            xsh: [2, 130, side + 2, side + 2],
            wsh: [224, 130, 3, 3],
            osh: [2, 224, side, side],
            attrs: three,
            epi,
            zp: 11,
        };
        run_case(&case("act=Relu, residual=true"));
        let c = case("act=Relu, residual=false");
        let x: Vec<u8> = pseudo(2 * 130 * (side + 2) * (side + 2), 3, 0, 255).into_iter().map(|v| v as u8).collect();
        check_quant(&c, &x, &pseudo(224 * 130 * 9, 4, -127, 127));
    }
    // 7x10 planes (VNNI: four units of 16 and one of 6), 60 × 600 channels
    // (1350 quads: three units per chunk): two images' units in chunks of
    // three from unit 0, so one chunk spans both images and the second
    // image's last unit starts a chunk of its own (it runs alone, its
    // predecessor in the chunk before)
    let c = Case {
        xsh: [2, 600, 9, 12],
        wsh: [60, 600, 3, 3],
        osh: [2, 60, 7, 10],
        attrs: three,
        epi: "act=Relu, residual=true",
        zp: 7,
    };
    run_case(&c);
}

/// The VBMI window packer's plans (`ukernel::avx512::quad_pack_windows`,
/// where the host has VBMI; the other hosts run the same shapes on their
/// packers): 3x3 convs of 8 and 12 input channels, whose K steps repeat
/// every 9 (a loop over four channels at a time), at strides 1 and 2 on
/// rows of 28, 14, 7 and 5 output pixels (units in one row and across 2,
/// 3 and 4; 4 rows of output, so a plane of 5-pixel rows holds a whole
/// unit), and 2x2 ones (a period of one step, one window per step).
#[test]
fn window_packer_periods_and_segments() {
    for (k, s, ow, c) in
        [(3, 1, 28, 8), (3, 2, 14, 8), (3, 1, 7, 12), (3, 2, 5, 8), (3, 1, 5, 8), (2, 1, 14, 8), (2, 2, 7, 4)]
    {
        let attrs = &window(k, s, 1, 1);
        let (iw, ih) = ((ow - 1) * s + k, (4 - 1) * s + k);
        run_case(&Case { xsh: [1, c, ih, iw], wsh: [9, c, k, k], osh: [1, 9, 4, ow], attrs, epi: PLAIN, zp: 31 });
    }
}

/// Whole units whose 16 pixels lie in one output row or span 2 to 4 (rows
/// of 20, 28, 14, 7 and 5 pixels; rows of 4 would take 5 and pack in
/// halves), at strides 1 and 2, 3x3 (a gap between rows) and 1x1 (rows
/// that join at stride 1; a gap at stride 2), K not a multiple of 4: the
/// VNNI row-segment packer's variants, bit-exact on every preset.
#[test]
fn units_spanning_output_rows() {
    let cases = [(3, 1, 28), (3, 2, 20), (3, 1, 14), (3, 1, 7), (3, 2, 14), (3, 2, 7), (1, 1, 7), (1, 2, 14)];
    for (k, s, ow) in cases.into_iter().chain([(3, 1, 5), (3, 2, 5), (3, 1, 4)]) {
        let attrs = &window(k, s, 1, 1);
        let iw = (ow - 1) * s + k;
        let ih = (4 - 1) * s + k;
        let c = Case { xsh: [1, 5, ih, iw], wsh: [13, 5, k, k], osh: [1, 13, 4, ow], attrs, epi: PLAIN, zp: 17 };
        run_case(&c);
        run_case(&Case { epi: "act=Relu, residual=true", ..c });
    }
}

#[test]
fn extreme_products_do_not_overflow() {
    // K = 256·9 = 2304 steps of 255·128: |acc| ≈ 7.5e7, far past i16, inside i32
    let attrs = &window(3, 1, 1, 1);
    let c = Case { xsh: [1, 256, 3, 3], wsh: [2, 256, 3, 3], osh: [1, 2, 1, 1], attrs, epi: PLAIN, zp: 0 };
    let x = vec![255u8; 256 * 9];
    let w: Vec<i64> = (0..2 * 256 * 9).map(|i| if i < 256 * 9 { -128 } else { 127 }).collect();
    check(&c, &x, &w);
    let c = Case { zp: 255, ..c };
    check(&c, &vec![0u8; 256 * 9], &w);
    // the byte tile's bound: byte pairs of ±64 (|a| + |b| = 128) at x = 255
    // sum to ±32640, the largest the saturating i16 holds for any input
    let c = Case { zp: 0, ..c };
    let w: Vec<i64> = (0..2 * 256 * 9).map(|i| if i < 256 * 9 { -64 } else { 64 }).collect();
    check(&c, &vec![255u8; 256 * 9], &w);
    // one pair past it (−65, −64): the pair tile takes the layer, still exact
    let mut w = w;
    w[0] = -65;
    check(&c, &vec![255u8; 256 * 9], &w);
}

/// The accumulating form (`out=acc`, the integer core of ONNX ConvInteger
/// and QLinearConv): the i32 sums themselves, bit for bit, including sums far
/// past 2^24 (where an f32 accumulation would round) and partial tiles.
#[test]
fn accumulating_form_stores_exact_sums() {
    let check_acc = |xsh: [usize; 4], wsh: [usize; 4], osh: [usize; 4], attrs: &str, zp: u8, x: &[u8], w: &[i64]| {
        let text = acc_text([xsh, wsh, osh], attrs, zp, w);
        let g = kerf_ir::text::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let ins = vec![Tensor::from_bytes(DType::U8, xsh.to_vec(), x.to_vec()).unwrap()];
        let want = kerf_ir::eval::eval_graph(&g, &ins).unwrap().remove(0).to_i64_vec();
        for cpu in cpus() {
            let got = run(&text, &ins, cpu).remove(0);
            assert_eq!(got.len(), want.len());
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert_eq!(i64::from(a.to_bits() as i32), *b, "{attrs} ({cpu}): element {i}");
            }
        }
        want
    };
    let a3 = &window(3, 1, 1, 1);
    let x: Vec<u8> = pseudo(3 * 9 * 11, 1, 0, 255).into_iter().map(|v| v as u8).collect();
    check_acc([1, 3, 9, 11], [7, 3, 3, 3], [1, 7, 7, 9], a3, 17, &x, &pseudo(7 * 27, 2, -128, 127));
    let ag = &window(1, 2, 1, 2);
    let x: Vec<u8> = pseudo(2 * 8 * 25, 3, 0, 255).into_iter().map(|v| v as u8).collect();
    check_acc([2, 8, 5, 5], [6, 4, 1, 1], [2, 6, 3, 3], ag, 128, &x, &pseudo(24, 4, -128, 127));
    // every product at its extreme over K = 2304: |acc| = 2304·255·128 ≈ 7.5e7 > 2^24
    let w: Vec<i64> = (0..2 * 256 * 9).map(|i| if i < 256 * 9 { -128 } else { 127 }).collect();
    let sums = check_acc([1, 256, 3, 3], [2, 256, 3, 3], [1, 2, 1, 1], a3, 0, &vec![255u8; 256 * 9], &w);
    assert_eq!(sums, [-2304 * 255 * 128, 2304 * 255 * 127]);
}

/// Which packer builds a VNNI `QConv`'s byte quads is decided at compile
/// time, so any host checks it from the object: with VBMI
/// (`sapphirerapids`) the windows packer (`quad_pack_windows`: its index
/// vectors loaded once, no tap table read per step: no `movsxd`, no
/// `vpmulld`) where the tap offsets make a `WindowPlan` (3x3 at strides 1
/// and 2, a 7x7 stride-2 stem, a 1x2 conv), `quad_pack_vbmi` (each step's
/// offsets read from the tap table, `movsxd`, its index vector computed,
/// `vpmulld`) where they do not (1x1 convs: a K quad's four input
/// channels a plane apart need four windows); without VBMI
/// (`cascadelake`) neither, and the VNNI tile all the same.
#[test]
fn vbmi_packers_by_plan() {
    use iced_x86::Mnemonic::{Movsxd, Vpdpbusd, Vpermb, Vpermt2b, Vpmulld};
    let [w33, w33s2, w77s2, w11, w11s2] =
        [window(3, 1, 1, 1), window(3, 2, 1, 1), window(7, 2, 1, 1), window(1, 1, 1, 1), window(1, 2, 1, 1)];
    let w12 = "kernel=[1,2], strides=[1,1], dilations=[1,1], pads=[0,0,0,0], group=1".to_string();
    let case = |xsh, wsh, osh, attrs| Case { xsh, wsh, osh, attrs, epi: PLAIN, zp: 9 };
    // (case, whether the tap offsets plan windows)
    let cases = [
        (case([1, 8, 14, 30], [12, 8, 3, 3], [1, 12, 12, 28], &w33), true),
        (case([1, 8, 21, 40], [12, 8, 3, 3], [1, 12, 10, 19], &w33s2), true),
        (case([1, 3, 23, 70], [13, 3, 7, 7], [1, 13, 9, 32], &w77s2), true),
        (case([1, 8, 20, 60], [12, 8, 1, 2], [1, 12, 20, 59], &w12), true),
        (case([1, 8, 20, 60], [12, 8, 1, 1], [1, 12, 20, 60], &w11), false),
        (case([1, 8, 20, 60], [12, 8, 1, 1], [1, 12, 10, 30], &w11s2), false),
    ];
    for (c, windows) in cases {
        let (_, w) = case_data(&c);
        let g = kerf_ir::text::parse(&graph_text(&c, &w)).unwrap();
        for cpu in ["sapphirerapids", "cascadelake"] {
            let ks = common::kernels(&g, cpu);
            let has = |k: &[iced_x86::Instruction], m| k.iter().any(|i| i.mnemonic() == m);
            let packers: Vec<_> = ks.iter().filter(|k| has(k, Vpermb) || has(k, Vpermt2b)).collect();
            let what = format!("{} {:?} ({cpu})", c.attrs, c.wsh);
            assert!(ks.iter().any(|k| has(k, Vpdpbusd)), "{what}: no VNNI tile");
            if cpu == "cascadelake" {
                assert!(packers.is_empty(), "{what}: a VBMI packer without VBMI");
                continue;
            }
            assert!(!packers.is_empty(), "{what}: no VBMI packer");
            for k in packers {
                let reads_taps = has(k, Movsxd) && has(k, Vpmulld);
                assert_eq!(!reads_taps, windows, "{what}: windows packer expected: {windows}");
            }
        }
    }
}
