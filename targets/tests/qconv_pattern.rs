#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The integer pattern kernel (a `QConv` whose weight keeps one 4-tap
//! pattern per quad of input channels, `ChannelQuads`) against the
//! reference evaluator bit for bit on every preset the host runs, and
//! which objects hold it (compile-time checks, any host). The dense
//! integer conv's battery is `qconv.rs`.

mod common;
use common::qcase::*;

/// Which integer conv a quad-pattern weight gets is decided at compile
/// time, so any host checks it: with 8-bit codes (channel pairs that can
/// saturate `vpmaddubsw`) `sapphirerapids` objects (VNNI's `vpdpbusd`)
/// and AArch64 `dotprod` ones (`sdot`, any codes) hold only the kept
/// taps' program, `haswell` objects the dense layout of the integer GEMM
/// (every tap's code: pairs of 16-bit codes), AArch64 `baseline` ones the
/// `smull` tile's listed quads with K tap-major (a quad of channels at a
/// tap removed with its pattern: only the kept quads, plus their offsets).
#[test]
fn dot_product_objects_run_eight_bit_quads_on_the_pattern_kernel() {
    use kerf_targets::{compile_object, CompileOptions};
    let a3 = &window(3, 1, 1, 1);
    let c = Case { xsh: [1, 64, 18, 18], wsh: [64, 64, 3, 3], osh: [1, 64, 16, 16], attrs: a3, epi: PLAIN, zp: 0 };
    let cases = [
        ("x86_64-unknown-linux-gnu", "sapphirerapids", "haswell", -127),
        ("aarch64-unknown-linux-gnu", "dotprod", "baseline", -128),
    ];
    for (triple, pattern_cpu, other_cpu, lo) in cases {
        let g = kerf_ir::text::parse(&graph_text(&c, &quad_pattern_weights(c.wsh, lo, 127))).unwrap();
        let rodata = |cpu: &str| {
            let o = CompileOptions::parse(triple, cpu, "t").unwrap();
            compile_object(&g, &o).unwrap().report.rodata_bytes
        };
        let (pattern, other) = (rodata(pattern_cpu), rodata(other_cpu));
        assert!(pattern < 36864 * 2 / 3, "{pattern_cpu}: {pattern} bytes of read-only data ({other_cpu} {other})");
        match other_cpu {
            "haswell" => assert!(other > 36864, "{other_cpu}: {other} bytes (dense)"),
            _ => assert!((pattern..36864).contains(&other), "{other_cpu}: {other} bytes (listed)"),
        }
    }
}

/// Convs pruned with patterns shared by quads of input channels run on
/// the integer pattern kernel where the host has AVX2 (7-bit codes: its
/// byte pairs cannot saturate); bit for bit the reference's (None, Relu,
/// Clip) or the baseline's (HardSwish), like every other tile. Cases:
/// [`quad_pattern_cases`] (AArch64 `dotprod` runs them too, under qemu:
/// `qconv_cross.rs`) and quads of scattered tap sets.
#[test]
fn quad_patterns_on_the_integer_pattern_kernel() {
    let cases = quad_pattern_cases();
    let a3 = &window(3, 1, 1, 1);
    // quads of hundreds of different tap sets (3 to 5 of the 9 taps, 40%
    // of the quads removed: 30% density), as kernels pruned one by one
    // give: the integer GEMM takes them
    let sets: Vec<u32> = (0u32..512).filter(|m| (3..=5).contains(&m.count_ones())).collect();
    let scattered: Vec<i64> = pseudo(64 * 64 * 9, 4, -64, 64)
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let unit = i / 9 / 64 * 16 + i / 9 % 64 / 4;
            // a 32-bit integer hash (its mixing: ~270 distinct sets over 1024 quads)
            let mix = |h: u32| (h ^ (h >> 16)).wrapping_mul(0x045d_9f3b);
            let h = mix(mix(unit as u32));
            let h = (h ^ (h >> 16)) as usize;
            let mask = if h % 5 < 2 { 0 } else { sets[h / 5 % sets.len()] };
            if mask & (1 << (i % 9)) != 0 {
                v.max(1)
            } else {
                0
            }
        })
        .collect();
    let c = Case { xsh: [1, 64, 10, 10], wsh: [64, 64, 3, 3], osh: [1, 64, 8, 8], attrs: a3, epi: PLAIN, zp: 5 };
    let x: Vec<u8> = pseudo(64 * 100, 1, 0, 255).into_iter().map(|v| v as u8).collect();
    check(&c, &x, &scattered);
    for c in &cases {
        let nx: usize = c.xsh.iter().product();
        let x: Vec<u8> = pseudo(nx, 1, 0, 255).into_iter().map(|v| v as u8).collect();
        check(c, &x, &quad_pattern_weights(c.wsh, -64, 64));
        // 8-bit codes whose pairs may saturate: the integer GEMM's pair
        // tile, or with VNNI (native on such a host) the pattern kernel
        check(c, &x, &quad_pattern_weights(c.wsh, -127, 127));
        // the byte pairs' bound, every input at 255
        check(c, &vec![255u8; nx], &quad_pattern_weights(c.wsh, -64, -64));
    }
}

/// Where the host has AVX2, `haswell` code runs a quad-pattern conv on
/// the integer pattern kernel, whose program keeps only the kept taps'
/// weight quads: the object's read-only data is a fraction of the dense
/// byte layout's. `baseline` code takes the integer GEMM on Cranelift's
/// pair tile, which lists the kept K pairs tap-major (`qconv/listed.rs`):
/// fewer bytes than its dense pairs, more than the pattern program.
#[test]
fn integer_pattern_kernel_stores_only_kept_taps() {
    if !host_runs(Cpu::Avx2) {
        return;
    }
    let a3 = &window(3, 1, 1, 1);
    let c = Case { xsh: [1, 64, 18, 18], wsh: [64, 64, 3, 3], osh: [1, 64, 16, 16], attrs: a3, epi: PLAIN, zp: 0 };
    let rodata = |cpu: &str| {
        let g = kerf_ir::text::parse(&graph_text(&c, &quad_pattern_weights(c.wsh, -64, 64))).unwrap();
        common::jit(&g, cpu).report().rodata_bytes
    };
    // 36864 codes: one byte each in the byte tile's layout (two in the
    // baseline's dense pairs); the pattern program holds the kept 4 taps
    // of 60% of the quads, 8 bytes per tap (offset and weight quad):
    // ~20 KB; baseline's listed pairs the kept taps' pairs of every run
    // a block of 4 channels keeps, with a step offset each: ~44 KB
    let (pattern, listed) = (rodata("haswell"), rodata("baseline"));
    assert!(pattern < 36864 * 2 / 3, "haswell: {pattern} bytes of read-only data (baseline {listed})");
    assert!(pattern < listed && listed < 2 * 36864, "baseline: {listed} bytes");
}

/// A u8 output (`out=quant`: the next layer's quantiser, which
/// `int8-requant` folds into the conv) on the integer pattern kernel: the
/// tiles' requantising store, byte for byte against the reference on
/// every preset the host runs ([`check_quant`]: a grid on which both ends
/// clamp). One channel block and several (64 quads on a 7x7 plane at
/// stride 1, 40 at stride 2: the partial sums between blocks live in the
/// task's scratch, reused per image), partial vectors and row blocks (28-
/// pixel rows: on AVX-512 hosts `zmm` tiles whose last vector stores 12
/// bytes through a mask), two images, None, Relu, Clip and HardSwish; 7-bit
/// codes (AVX2's byte quads) and 8-bit ones (VNNI's, or the integer GEMM's
/// tiles without it). The `haswell` object of such a conv holds only the
/// kept taps: the pattern kernel runs it, not the dense GEMM.
#[test]
fn quad_patterns_store_requantised_bytes() {
    let a3 = &window(3, 1, 1, 1);
    let s2 = &window(3, 2, 1, 1);
    let relu = "act=Relu, residual=false";
    let clip = "act=Clip, act_min=-1.5, act_max=2.5, residual=false";
    let hswish = "act=HardSwish, residual=false";
    let cases = [
        Case { xsh: [1, 8, 12, 12], wsh: [5, 8, 3, 3], osh: [1, 5, 10, 10], attrs: a3, epi: PLAIN, zp: 128 },
        Case { xsh: [2, 6, 9, 22], wsh: [7, 6, 3, 3], osh: [2, 7, 7, 20], attrs: a3, epi: relu, zp: 3 },
        Case { xsh: [2, 256, 9, 9], wsh: [4, 256, 3, 3], osh: [2, 4, 7, 7], attrs: a3, epi: clip, zp: 9 },
        Case { xsh: [1, 8, 30, 30], wsh: [8, 8, 3, 3], osh: [1, 8, 28, 28], attrs: a3, epi: hswish, zp: 40 },
        Case { xsh: [1, 64, 18, 18], wsh: [64, 64, 3, 3], osh: [1, 64, 16, 16], attrs: a3, epi: relu, zp: 0 },
        Case { xsh: [1, 12, 13, 39], wsh: [6, 12, 3, 3], osh: [1, 6, 6, 19], attrs: s2, epi: relu, zp: 17 },
        Case { xsh: [2, 160, 10, 10], wsh: [3, 160, 3, 3], osh: [2, 3, 4, 4], attrs: s2, epi: PLAIN, zp: 250 },
    ];
    for c in &cases {
        let nx: usize = c.xsh.iter().product();
        let x: Vec<u8> = pseudo(nx, 1, 0, 255).into_iter().map(|v| v as u8).collect();
        check_quant(c, &x, &quad_pattern_weights(c.wsh, -64, 64));
        check_quant(c, &x, &quad_pattern_weights(c.wsh, -127, 127));
    }
    if !host_runs(Cpu::Avx2) {
        return;
    }
    let c = &cases[4];
    let w = quad_pattern_weights(c.wsh, -64, 64);
    let rodata = |text: String| common::jit(&kerf_ir::text::parse(&text).unwrap(), "haswell").report().rodata_bytes;
    let (bytes_out, real_out) = (rodata(quant_text(c, &w, (0.05, 3))), rodata(graph_text(c, &w)));
    assert!(bytes_out < 36864 * 2 / 3, "u8 output: {bytes_out} bytes of read-only data (f32 output {real_out})");
}

/// A u8 residual on its own grid (`QConv::res_grid`) on the integer pattern
/// kernel's x86 tiles: with an f32 output at strides 1 and 2, and with a
/// u8 output (stride 1: the residual at the tile's sixth argument), over
/// rows whose last vector is partial (7 and 20 pixels: byte-wise loads on
/// `ymm`, masked ones on `zmm`), one and two channel blocks, two images:
/// on every preset the host runs, the f32-residual form's bits fed the
/// dequantised residual, and the reference's (None, Relu, Clip). With
/// AVX2 a `haswell` object runs it on the pattern kernel, not the GEMM.
#[test]
fn quad_patterns_add_u8_residuals() {
    let (a3, s2) = (&window(3, 1, 1, 1), &window(3, 2, 1, 1));
    let relu = "act=Relu, residual=true";
    let cases = [
        Case { xsh: [2, 8, 9, 9], wsh: [4, 8, 3, 3], osh: [2, 4, 7, 7], attrs: a3, epi: relu, zp: 128 },
        Case {
            xsh: [1, 256, 9, 22],
            wsh: [4, 256, 3, 3],
            osh: [1, 4, 7, 20],
            attrs: a3,
            epi: "act=None, residual=true",
            zp: 3,
        },
        Case {
            xsh: [1, 8, 30, 30],
            wsh: [8, 8, 3, 3],
            osh: [1, 8, 28, 28],
            attrs: a3,
            epi: "act=Clip, act_min=-1.5, act_max=2.5, residual=true",
            zp: 40,
        },
        Case { xsh: [1, 12, 13, 39], wsh: [6, 12, 3, 3], osh: [1, 6, 6, 19], attrs: s2, epi: relu, zp: 17 },
    ];
    let res = (0.0625, 100);
    for c in &cases {
        let nx: usize = c.xsh.iter().product();
        let x: Vec<u8> = pseudo(nx, 1, 0, 255).into_iter().map(|v| v as u8).collect();
        // a u8 output with a residual: stride 1 only (`ChannelQuads::u8_residual_fits`)
        let outs: &[Option<(f32, u8)>] = if c.attrs == a3 { &[None, Some((0.04, 7))] } else { &[None] };
        for bits in [64, 127] {
            let w = quad_pattern_weights(c.wsh, -bits, bits);
            for &out in outs {
                check_u8_residual(c, &x, &w, out, res);
            }
        }
    }
    if !host_runs(Cpu::Avx2) {
        return;
    }
    // the pattern kernel runs it (only the kept taps' codes in the
    // object), not the dense GEMM (all 36864)
    let c = Case { xsh: [1, 64, 18, 18], wsh: [64, 64, 3, 3], osh: [1, 64, 16, 16], attrs: a3, epi: relu, zp: 0 };
    let w = quad_pattern_weights(c.wsh, -64, 64);
    for out in [None, Some((0.04, 7))] {
        let g = kerf_ir::text::parse(&u8_residual_text(&c, &w, out, res)).unwrap();
        let rodata = common::jit(&g, "haswell").report().rodata_bytes;
        assert!(rodata < 36864 * 2 / 3, "{out:?}: {rodata} bytes of read-only data");
    }
}
