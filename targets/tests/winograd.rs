#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Winograd F(2x2,3x3) and F(4x4,3x3) convs (`winograd=2|4` on a Conv)
//! against the same graph computed by the direct conv, over shapes with
//! odd sizes, every padding, partial edge tiles, several tile blocks, a
//! batch of 2 and no bias; with SIMD (native) and the scalar path
//! (baseline flags). Tolerance 1e-5 + 1e-4 * max|ref|, the codegen
//! tolerance the model tests use against ONNX Runtime.

mod common;
use common::{close, list, run, t};

fn vals(n: usize, seed: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|i| ((((i + seed) * 7919) % 101) as f32 / 50.0 - 1.0) * scale).collect()
}

fn case(n: usize, c: usize, h: usize, w: usize, k: usize, pads: [usize; 4], bias: bool) {
    let oh = h + pads[0] + pads[2] - 2;
    let ow = w + pads[1] + pads[3] - 2;
    let x = vals(n * c * h * w, 1, 1.0);
    let wt = vals(k * c * 9, 7, 0.3);
    let b = vals(k, 3, 0.5);
    let dims = |s: &[usize]| s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",");
    let graph = |algo: &str| {
        let (bin, bdecl) = if bias {
            (", %2".to_string(), format!("  const %2 \"b\": f32[{k}] = {}\n", list(&b)))
        } else {
            (String::new(), String::new())
        };
        format!(
            "graph \"g\"\n  input %0 \"x\": f32[{}]\n  const %1 \"w\": f32[{k},{c},3,3] = {}\n{bdecl}  %3 = Conv{{kernel=[3,3], strides=[1,1], dilations=[1,1], pads=[{}], group=1, layer=\"c\"{algo}}}(%0, %1{bin}): f32[{}] @\"c\"\n  output \"y\" = %3\n",
            dims(&[n, c, h, w]),
            list(&wt),
            dims(&pads),
            dims(&[n, k, oh, ow])
        )
    };
    for cpu in ["native", "baseline"] {
        let want = run(&graph(""), &[t(&[n, c, h, w], &x)], cpu).remove(0);
        for tile in [2, 4] {
            let got = run(&graph(&format!(", winograd={tile}")), &[t(&[n, c, h, w], &x)], cpu).remove(0);
            let name = format!("F({tile},3) n{n} c{c} {h}x{w} k{k} pads {pads:?} bias {bias} ({cpu})");
            close(&name, &got, &want, 1e-5, 1e-4);
        }
    }
}

#[test]
fn winograd_matches_direct_conv() {
    case(1, 3, 8, 8, 4, [1, 1, 1, 1], true); // exact tiles (F4: 2x2 tiles)
    case(1, 5, 7, 9, 6, [1, 1, 1, 1], true); // odd sizes: partial edge tiles
    case(2, 4, 6, 5, 13, [0, 0, 0, 0], false); // batch, no pad, no bias, K not a multiple of 4
    case(1, 2, 5, 6, 4, [2, 0, 1, 3], true); // asymmetric padding
    case(1, 1, 3, 3, 1, [0, 0, 0, 0], true); // a single output pixel
    case(1, 16, 30, 29, 24, [1, 1, 1, 1], true); // many tiles, ragged last quad
}

#[test]
fn winograd_spans_several_tile_blocks() {
    // 64 -> 64 channels on 56x56: more tiles than one block holds
    case(1, 64, 56, 56, 64, [1, 1, 1, 1], true);
}

#[test]
fn winograd_threaded_equals_serial() {
    // 7 blocks of 2 tile rows (F4 on 56x56): split across a real pool, every
    // output bit equals the serial run (each block is one task).
    let (c, hw, k) = (64, 56, 64);
    let x = vals(c * hw * hw, 5, 1.0);
    let src = format!(
        "graph \"g\"\n  input %0 \"x\": f32[1,{c},{hw},{hw}]\n  const %1 \"w\": f32[{k},{c},3,3] = {}\n  %2 = Conv{{kernel=[3,3], strides=[1,1], dilations=[1,1], pads=[1,1,1,1], group=1, layer=\"c\", winograd=4}}(%0, %1): f32[1,{k},{hw},{hw}] @\"c\"\n  output \"y\" = %2\n",
        list(&vals(k * c * 9, 2, 0.2))
    );
    let g = kerf_ir::text::parse(&src).unwrap();
    let jm =
        kerf_targets::jit_compile(&g, &kerf_targets::CompileOptions::parse("host", "native", "t").unwrap()).unwrap();
    let m = jm.model();
    let xt = t(&[1, c, hw, hw], &x);
    let run = |pool: Option<&kerf_runtime::ThreadPool>| {
        let mut out = vec![0u8; k * hw * hw * 4];
        let mut arena = m.new_arena().unwrap();
        let mut outs = [out.as_mut_slice()];
        match pool {
            Some(p) => m.run_with_pool(&[xt.bytes()], &mut outs, &mut arena, p).unwrap(),
            None => m.run(&[xt.bytes()], &mut outs, &mut arena).unwrap(),
        }
        out
    };
    let serial = run(None);
    let pool = kerf_runtime::ThreadPool::new(3);
    assert!(run(Some(&pool)) == serial, "threaded Winograd differs from serial");
}
