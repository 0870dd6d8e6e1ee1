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
/// hold only the kept taps' program, `haswell` objects the dense byte
/// layout of the integer GEMM (pairs of 16-bit codes).
#[test]
fn vnni_objects_run_eight_bit_quads_on_the_pattern_kernel() {
    use kerf_targets::{compile_object, CompileOptions};
    let a3 = &window(3, 1, 1, 1);
    let c = Case { xsh: [1, 64, 18, 18], wsh: [64, 64, 3, 3], osh: [1, 64, 16, 16], attrs: a3, epi: PLAIN, zp: 0 };
    let g = kerf_ir::text::parse(&graph_text(&c, &quad_pattern_weights(c.wsh, -127, 127))).unwrap();
    let rodata = |cpu: &str| {
        let o = CompileOptions::parse("x86_64-unknown-linux-gnu", cpu, "t").unwrap();
        compile_object(&g, &o).unwrap().report.rodata_bytes
    };
    let (vnni, avx2) = (rodata("sapphirerapids"), rodata("haswell"));
    assert!(vnni < 36864 * 2 / 3, "sapphirerapids: {vnni} bytes of read-only data (haswell {avx2})");
    assert!(avx2 > 2 * 36864, "haswell: {avx2} bytes");
}

/// Weights of a conv pruned with one pattern per quad of input channels
/// (`pattern_group = 4`): per (output channel, quad) half removed, the
/// others one of four 4-tap masks of a 3x3 kernel, codes in `lo..=hi`.
fn quad_pattern_weights(wsh: [usize; 4], lo: i64, hi: i64) -> Vec<i64> {
    const MASKS: [u32; 4] = [0b000_111_010, 0b010_110_010, 0b000_011_011, 0b010_010_011];
    let (o, c, area) = (wsh[0], wsh[1], wsh[2] * wsh[3]);
    let codes = pseudo(o * c * area, 3, lo, hi);
    (0..o * c * area)
        .map(|i| {
            let (oi, ci, tap) = (i / (c * area), i / area % c, i % area);
            let unit = oi * c.div_ceil(4) + ci / 4;
            let mask = if (unit * 7 + 3) % 5 < 2 { 0 } else { MASKS[unit * 13 % 4] };
            if mask & (1 << tap) != 0 && codes[i] != 0 {
                codes[i]
            } else if mask & (1 << tap) != 0 {
                1
            } else {
                0
            }
        })
        .collect()
}

/// Convs pruned with patterns shared by quads of input channels run on
/// the integer pattern kernel where the host has AVX2 (7-bit codes: its
/// byte pairs cannot saturate); bit for bit the reference's (None, Relu,
/// Clip) or the baseline's (HardSwish), like every other tile. Cases:
/// partial 8-pixel vectors and row blocks, a partial quad (6 channels),
/// several images, 50 quads (several channel blocks: partial sums between
/// calls), dilation 2, stride 2, residuals, and LeakyRelu (which the tiles
/// do not apply: the integer GEMM takes it).
#[test]
fn quad_patterns_on_the_integer_pattern_kernel() {
    let a3 = &window(3, 1, 1, 1);
    let cases = [
        Case { xsh: [1, 8, 12, 12], wsh: [5, 8, 3, 3], osh: [1, 5, 10, 10], attrs: a3, epi: PLAIN, zp: 128 },
        Case {
            xsh: [2, 6, 9, 21],
            wsh: [7, 6, 3, 3],
            osh: [2, 7, 7, 19],
            attrs: a3,
            epi: "act=Relu, residual=false",
            zp: 3,
        },
        Case {
            xsh: [1, 200, 9, 9],
            wsh: [3, 200, 3, 3],
            osh: [1, 3, 7, 7],
            attrs: a3,
            epi: "act=Clip, act_min=-1.5, act_max=2.5, residual=true",
            zp: 9,
        },
        Case {
            xsh: [1, 8, 12, 36],
            wsh: [4, 8, 3, 3],
            osh: [1, 4, 8, 32],
            attrs: &window(3, 1, 2, 1),
            epi: "act=HardSwish, residual=true",
            zp: 200,
        },
        Case {
            xsh: [1, 4, 6, 6],
            wsh: [2, 4, 3, 3],
            osh: [1, 2, 4, 4],
            attrs: a3,
            epi: "act=LeakyRelu, act_alpha=0.1, residual=false",
            zp: 0,
        },
        // stride 2 (phase-split quad images): odd and even input sizes,
        // rows of 16 + 3 pixels (the vector split and the scalar tail)
        Case {
            xsh: [1, 12, 13, 39],
            wsh: [6, 12, 3, 3],
            osh: [1, 6, 6, 19],
            attrs: &window(3, 2, 1, 1),
            epi: "act=Relu, residual=true",
            zp: 17,
        },
        Case {
            xsh: [2, 160, 10, 10],
            wsh: [3, 160, 3, 3],
            osh: [2, 3, 4, 4],
            attrs: &window(3, 2, 1, 1),
            epi: PLAIN,
            zp: 250,
        },
    ];
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
/// byte layout's. `baseline` code takes the integer GEMM (all weights).
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
    // baseline's pairs); the pattern program holds the kept 4 taps of
    // 60% of the quads, 8 bytes per tap (offset and weight quad): ~20 KB
    let (pattern, dense) = (rodata("haswell"), rodata("baseline"));
    assert!(pattern < 36864 * 2 / 3, "haswell: {pattern} bytes of read-only data (baseline {dense})");
    assert!(dense > 2 * 36864, "baseline: {dense} bytes");
}
