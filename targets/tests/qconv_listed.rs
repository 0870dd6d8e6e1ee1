#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Block-sparse integer convs (`lower/qconv/listed.rs`): weights whose
//! blocks of 8 output channels share whole zero K quads (block-shared N:M
//! in runs of four input channels, `2:4x4/16`) run only the kept quads on
//! the byte tiles (VNNI's `vpdpbusd`, AVX2's `vpmaddubsw` for weights with
//! exact byte pairs), each step's B offset read from A. Integer sums are
//! exact, so every preset the host runs gives the reference's bits (the
//! shared QConv battery's `check`, byte for byte with u8 outputs). The
//! shapes cover 1x1 convs with a partial last row block (37 channels:
//! four blocks of 8 and one of 5), blocks keeping fewer quads than the
//! longest list (padded) and none, partial last units of 1..15 pixels
//! (the sums-only tile and Cranelift's epilogue), two images, groups, a
//! 3x3 conv whose K quads mix taps, a residual, Relu / Clip / HardSwish,
//! the requantising and accumulating forms; one-pixel products (VNNI's
//! listed `qdot_gemv`: each block's quads broadcast at its own offsets).
//! Which code runs is decided
//! at compile time, so any host checks that `sapphirerapids` and
//! `haswell` objects load B at listed offsets (`[rsi + rax]`) and that
//! denser weights (15 of 16 quads kept) do not, nor `baseline`'s, which
//! has no assembled tile (its Cranelift pair tile lists the kept pairs in
//! its own loop: `qconv_cross.rs`, `objects_list_the_kept_steps`).

mod common;
use common::qcase::*;
use iced_x86::{Mnemonic, OpKind, Register};

/// `check` (f32 out) on 8-bit and 7-bit codes (AVX2's byte tile takes the
/// latter), and `check_quant` where the output has whole f32s' worth of u8.
fn run_listed(c: &Case, empty: Option<usize>, short: Option<usize>) {
    let nx: usize = c.xsh.iter().product();
    let x: Vec<u8> = pseudo(nx, 1, 0, 255).into_iter().map(|v| v as u8).collect();
    for range in [(-128, 127), (-64, 64)] {
        let w = listed_weights(c.wsh, range, empty, short);
        check(c, &x, &w);
        if c.osh.iter().product::<usize>() % 4 == 0 && !c.epi.contains("residual=true") {
            check_quant(c, &x, &w);
        }
    }
}

#[test]
fn pointwise_convs_on_listed_quads() {
    let one = &window(1, 1, 1, 1);
    let relu_res = "act=Relu, residual=true";
    let clip = "act=Clip, act_min=0.0, act_max=6.0, residual=false";
    let hs = "act=HardSwish, residual=true";
    // (images, channels in, out, rows, cols, epilogue, zp)
    for (n, ci, co, h, w, epi, zp) in [
        (1, 64, 32, 8, 8, PLAIN, 0),
        (1, 64, 37, 8, 8, relu_res, 3),
        (2, 32, 37, 5, 7, clip, 128),
        (1, 48, 16, 4, 4, hs, 9),
        (1, 64, 24, 3, 3, PLAIN, 255),
        (2, 96, 40, 9, 9, "act=Relu, residual=false", 17),
        // an activation the tiles leave to Cranelift's epilogue: the sums-only tiles
        (1, 64, 32, 8, 8, "act=LeakyRelu, act_alpha=0.1, residual=false", 5),
    ] {
        let c = Case { xsh: [n, ci, h, w], wsh: [co, ci, 1, 1], osh: [n, co, h, w], attrs: one, epi, zp };
        run_listed(&c, (co > 16).then_some(1), (co > 32).then_some(2));
    }
}

#[test]
fn grouped_and_three_by_three_listed_quads() {
    // two groups of 16 outputs over 32 inputs each, and of 13 (a partial
    // row block in each group: the group's A stride counts it)
    let grouped = &window(1, 1, 1, 2);
    let c = Case { xsh: [1, 64, 6, 6], wsh: [32, 32, 1, 1], osh: [1, 32, 6, 6], attrs: grouped, epi: PLAIN, zp: 5 };
    run_listed(&c, None, Some(1));
    let c = Case { xsh: [1, 64, 6, 6], wsh: [26, 32, 1, 1], osh: [1, 26, 6, 6], attrs: grouped, epi: PLAIN, zp: 5 };
    run_listed(&c, None, None);
    // a 3x3 conv: K = 16·9 = 144, its quads across taps and channels
    let three = &window(3, 1, 1, 1);
    let c = Case { xsh: [1, 16, 10, 10], wsh: [24, 16, 3, 3], osh: [1, 24, 8, 8], attrs: three, epi: PLAIN, zp: 77 };
    run_listed(&c, Some(1), None);
}

/// One-pixel products (a classifier head, a product's rows as images) on
/// the listed products (VNNI's; AVX2's with 7-bit codes): one to six images (groups of four and a rest),
/// 37 channels (a partial last block) and 200 (two chunks of six blocks,
/// the last partial), blocks keeping fewer quads than the longest and
/// none; f32 with a residual and Relu, and u8 out.
#[test]
fn one_pixel_products_on_listed_quads() {
    let one = &window(1, 1, 1, 1);
    for (n, ci, co, epi) in [
        (1, 64, 37, "act=Relu, residual=true"),
        (6, 128, 200, PLAIN),
        (3, 32, 16, "act=Clip, act_min=0.0, act_max=6.0, residual=false"),
        (4, 256, 48, "act=HardSwish, residual=false"),
    ] {
        let c = Case { xsh: [n, ci, 1, 1], wsh: [co, ci, 1, 1], osh: [n, co, 1, 1], attrs: one, epi, zp: 11 };
        run_listed(&c, (co > 32).then_some(1), (co > 16).then_some(0));
    }
}

/// A KxK conv pruned in runs of four input channels at each tap
/// (`2:4x4/16`) runs listed with K tap-major (four channels at one tap a
/// quad): 3x3 at strides 1 and 2, 5x5, 37 outputs, u8 out; the same bits
/// as the reference on every preset, and `sapphirerapids` / `haswell`
/// objects take the listed tiles.
#[test]
fn kxk_convs_list_their_runs_tap_major() {
    let (three, s2, five) = (&window(3, 1, 1, 1), &window(3, 2, 1, 1), &window(5, 1, 1, 1));
    for (xsh, wsh, osh, attrs, epi) in [
        ([1, 32, 10, 10], [37, 32, 3, 3], [1, 37, 8, 8], three, "act=Relu, residual=true"),
        ([2, 16, 11, 13], [24, 16, 3, 3], [2, 24, 5, 6], s2, PLAIN),
        ([1, 32, 10, 10], [37, 32, 3, 3], [1, 37, 8, 8], three, "act=LeakyRelu, act_alpha=0.1, residual=false"),
        ([1, 32, 9, 9], [80, 32, 5, 5], [1, 80, 5, 5], five, "act=Clip, act_min=0.0, act_max=6.0, residual=false"),
    ] {
        let c = Case { xsh, wsh, osh, attrs, epi, zp: 21 };
        let x: Vec<u8> = pseudo(xsh.iter().product(), 1, 0, 255).into_iter().map(|v| v as u8).collect();
        for range in [(-128, 127), (-64, 64)] {
            let w = tap_run_weights(wsh, range);
            check(&c, &x, &w);
            if osh.iter().product::<usize>() % 4 == 0 && !epi.contains("residual=true") {
                check_quant(&c, &x, &w);
            }
        }
        let g = kerf_ir::text::parse(&graph_text(&c, &tap_run_weights(wsh, (-64, 64)))).unwrap();
        assert!(loads_listed(&g, "sapphirerapids") && loads_listed(&g, "haswell"), "{attrs}: listed");
    }
}

/// AVX2's byte tile adds adjacent byte products in an i16: codes whose
/// pairs are exact in the weight's order (channel, row, column) but not
/// tap-major (two channels at one tap: 100 and 100) keep the weight's
/// order there, the dense tile; VNNI lists them tap-major. The same bits
/// either way.
#[test]
fn tap_major_pairs_must_be_exact_on_the_byte_tile() {
    let two = &window(2, 1, 1, 1);
    let c = Case { xsh: [1, 32, 6, 6], wsh: [80, 32, 2, 2], osh: [1, 80, 5, 5], attrs: two, epi: PLAIN, zp: 0 };
    // ±100 by tap parity: channel-order pairs (taps 0, 1 and 2, 3) of opposite signs
    let w: Vec<i64> =
        tap_run_weights(c.wsh, (1, 1)).iter().enumerate().map(|(i, &k)| k * (100 - 200 * (i % 2) as i64)).collect();
    let g = kerf_ir::text::parse(&graph_text(&c, &w)).unwrap();
    assert!(loads_listed(&g, "sapphirerapids"), "VNNI: tap-major listed");
    assert!(!loads_listed(&g, "haswell"), "AVX2: its pairs would saturate tap-major");
    check(&c, &vec![255u8; 32 * 36], &w);
    let x: Vec<u8> = pseudo(32 * 36, 2, 0, 255).into_iter().map(|v| v as u8).collect();
    check(&c, &x, &w);
}

/// A u8 residual on its own grid (`res_grid`), f32 and requantised
/// outputs: the listed tiles' fused epilogue reads it as the dense ones.
#[test]
fn u8_residuals_on_listed_quads() {
    let one = &window(1, 1, 1, 1);
    for epi in ["act=Relu, residual=true", "act=None, residual=true"] {
        let c = Case { xsh: [1, 64, 5, 8], wsh: [32, 64, 1, 1], osh: [1, 32, 5, 8], attrs: one, epi, zp: 7 };
        let x: Vec<u8> = pseudo(64 * 40, 1, 0, 255).into_iter().map(|v| v as u8).collect();
        for range in [(-128, 127), (-64, 64)] {
            let w = listed_weights(c.wsh, range, Some(1), None);
            check_u8_residual(&c, &x, &w, None, (0.03, 9));
            check_u8_residual(&c, &x, &w, Some((0.05, 4)), (0.03, 9));
        }
    }
}

/// The accumulating form stores the exact sums (`QOut::Acc`) from the
/// listed tiles too.
#[test]
fn accumulating_form_on_listed_quads() {
    let shapes = [[1, 64, 5, 5], [20, 64, 1, 1], [1, 20, 5, 5]];
    let w = listed_weights(shapes[1], (-128, 127), Some(1), None);
    let text = acc_text(shapes, &window(1, 1, 1, 1), 7, &w);
    let g = kerf_ir::text::parse(&text).unwrap();
    let x: Vec<u8> = pseudo(64 * 25, 4, 0, 255).into_iter().map(|v| v as u8).collect();
    let ins = vec![kerf_ir::Tensor::from_bytes(kerf_ir::DType::U8, shapes[0].to_vec(), x).unwrap()];
    let want = kerf_ir::eval::eval_graph(&g, &ins).unwrap().remove(0).to_i64_vec();
    for cpu in cpus() {
        let got = common::run(&text, &ins, cpu).remove(0);
        assert_eq!(got.len(), want.len());
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert_eq!(i64::from(a.to_bits() as i32), *b, "{cpu}: element {i}");
        }
    }
}

/// Whether `g`'s object for `cpu` holds a kernel that reads a `u32` at
/// `[rdi + d]` into `eax` and loads a vector at `[rsi + rax + d]`: the
/// listed tiles' step offset and B load, or the listed one-pixel
/// product's offset and broadcast of an input quad.
fn loads_listed(g: &kerf_ir::Graph, cpu: &str) -> bool {
    common::kernels(g, cpu).iter().any(|code| {
        let offset = code.iter().any(|i| {
            i.mnemonic() == Mnemonic::Mov
                && i.op0_register() == Register::EAX
                && i.op_kind(1) == OpKind::Memory
                && i.memory_base() == Register::RDI
                && i.memory_index() == Register::None
        });
        let load = code.iter().any(|i| {
            (0..i.op_count()).any(|o| i.op_kind(o) == OpKind::Memory)
                && i.memory_base() == Register::RSI
                && i.memory_index() == Register::RAX
                && matches!(i.mnemonic(), Mnemonic::Vmovups | Mnemonic::Vmovdqu32 | Mnemonic::Vpbroadcastd)
        });
        offset && load
    })
}

/// Which code runs is decided at compile time: `sapphirerapids` (VNNI)
/// and `haswell` with 7-bit codes (the byte tile) take the listed tiles
/// for 2:4-of-quads weights; weights keeping 15 of 16 quads, and `baseline`,
/// the dense ones. Any host checks it.
#[test]
fn listed_tiles_are_taken_where_they_pay() {
    let one = &window(1, 1, 1, 1);
    let c = Case { xsh: [1, 64, 8, 8], wsh: [32, 64, 1, 1], osh: [1, 32, 8, 8], attrs: one, epi: PLAIN, zp: 0 };
    let graph = |w: &[i64]| kerf_ir::text::parse(&graph_text(&c, w)).unwrap();
    let sparse = graph(&listed_weights(c.wsh, (-64, 64), None, None));
    assert!(loads_listed(&sparse, "sapphirerapids"), "VNNI: the listed tile");
    assert!(loads_listed(&sparse, "haswell"), "AVX2, 7-bit codes: the listed byte tile");
    assert!(!loads_listed(&sparse, "baseline"), "baseline: no assembled tile");
    // 15 of every 16 quads kept: past `MAX_KEPT`, the dense tiles
    let mut dense = listed_weights(c.wsh, (-64, 64), None, None);
    for (i, v) in dense.iter_mut().enumerate() {
        if *v == 0 && (i / 4) % 8 != 0 {
            *v = 1;
        }
    }
    assert!(!loads_listed(&graph(&dense), "sapphirerapids"), "15 of 16 quads kept: dense");
    // a 3x3 conv pruned in patterns shared by channel quads: the integer
    // pattern kernel, not the listed tiles
    let q = Case { xsh: [1, 16, 10, 10], wsh: [16, 16, 3, 3], osh: [1, 16, 8, 8], attrs: &window(3, 1, 1, 1), ..c };
    let pat = kerf_ir::text::parse(&graph_text(&q, &quad_pattern_weights(q.wsh, -64, 64))).unwrap();
    assert!(!loads_listed(&pat, "sapphirerapids") && !loads_listed(&pat, "haswell"), "patterns: the pattern kernel");
    // one-pixel images: VNNI's listed product, AVX2's on byte quads (7-bit
    // codes), not on 16-bit pairs (8-bit codes) nor on `baseline`
    let c = Case { xsh: [4, 64, 1, 1], wsh: [32, 64, 1, 1], osh: [4, 32, 1, 1], attrs: one, epi: PLAIN, zp: 0 };
    let head = |range| kerf_ir::text::parse(&graph_text(&c, &listed_weights(c.wsh, range, None, None))).unwrap();
    assert!(loads_listed(&head((-64, 64)), "sapphirerapids"), "VNNI: the listed one-pixel product");
    assert!(loads_listed(&head((-64, 64)), "haswell"), "AVX2 byte quads: the listed one-pixel product");
    assert!(!loads_listed(&head((-128, 127)), "haswell"), "AVX2 16-bit pairs: dense");
    assert!(!loads_listed(&head((-64, 64)), "baseline"), "baseline: dense");
}
