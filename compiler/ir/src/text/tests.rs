use super::lex::{lex, Cursor};
use super::*;
use crate::attr::Attr;

const SRC: &str = r#"
graph "t"
  input %0 "x": f32[1,4]
  const %1 "w": f32[3,4] = iota(0.0, 0.5)
  const %2 "b": f32[3] = [0.5,0.25,-1.0]
  %3 = Gemm{alpha=1.0, beta=1.0, trans_a=false, trans_b=true, layer="fc"}(%0, %1, %2): f32[1,3] @"fc"
  %4, %5 = Split{axis=1, sizes=[1,2]}(%3): f32[1,1], f32[1,2] @"split"
  %6 = Relu(%5): f32[1,2] @"relu"
  output "y" = %6
  output "z" = %4
"#;

#[test]
fn round_trip_is_stable() {
    let g = parse(SRC).unwrap();
    let once = print(&g);
    let g2 = parse_with_weights(&once, Some(&g.weights)).unwrap();
    assert_eq!(print(&g2), once);
    assert!(once.contains("const %1 \"w\": f32[3,4] = #"), "{once}");
    assert!(once.contains("const %2 \"b\": f32[3] = [0.5,0.25,-1.0]"), "{once}");
}

/// Non-finite values as `{:?}` prints them (`NaN`, `inf`, `-inf`),
/// in constants and in attributes alike.
#[test]
fn non_finite_values_parse() {
    let src = "graph \"g\"\n  input %0 \"x\": f32[3]\n  const %1 \"c\": f32[3] = [NaN,inf,-inf]\n  \
               %2 = Clip{min=-inf, max=inf}(%0): f32[3] @\"c\"\n  %3 = Add(%2, %1): f32[3] @\"a\"\n  output \"y\" = %3\n";
    let g = parse(src).unwrap_or_else(|e| panic!("{e}"));
    let c = g.nodes.iter().find_map(|n| n.inputs.get(1).and_then(|&v| g.const_of(v))).unwrap().to_f32_vec();
    assert!(c[0].is_nan() && c[1] == f32::INFINITY && c[2] == f32::NEG_INFINITY, "{c:?}");
    let printed = print(&g);
    assert!(printed.contains("min=-inf, max=inf"), "{printed}");
    assert_eq!(print(&parse(&printed).unwrap_or_else(|e| panic!("{e}"))), printed);
    parse(&src.replace("min=-inf", "min=NaN")).unwrap_or_else(|e| panic!("NaN in an attribute: {e}"));
}

#[test]
fn errors_name_the_line() {
    let bad = SRC.replace("f32[1,3] @\"fc\"", "f32[1,4] @\"fc\"");
    let e = parse(&bad).unwrap_err().to_string();
    assert!(e.contains("line 6") && e.contains("inference gives f32[1,3]"), "{e}");
    let e = parse("graph \"g\"\n  %1 = Relu(%0)\n").unwrap_err().to_string();
    assert!(e.contains("%0 is not defined"), "{e}");
    let e = parse("graph \"g\"\n input %0 \"x\": f32[2]\n %1 = Relu{alpha=1.0}(%0)\n").unwrap_err().to_string();
    assert!(e.contains("unknown attribute 'alpha'"), "{e}");
    let e = parse("graph \"g\"\n input %0 \"x\": f32[2]\n const %1 \"w\": f32[9] = #00\n").unwrap_err().to_string();
    assert!(e.contains("no weight with hash #00"), "{e}");
}

#[test]
fn every_op_round_trips_through_text() {
    use crate::op::*;
    use crate::F32;
    let w = Window { kernel: vec![3], strides: vec![1], dilations: vec![1], pads: vec![1, 1] };
    let ops = vec![
        Op::QConv(QConv {
            conv: Conv {
                window: Window {
                    kernel: vec![3, 3],
                    strides: vec![2, 1],
                    dilations: vec![1, 2],
                    pads: vec![0, 0, 0, 0],
                },
                group: 2,
                layer: crate::Layer("q".into()),
                algo: ConvAlgo::Direct,
            },
            epi: Epilogue { act: Some(UnaryOp::Relu), residual: true },
            x_scale: F32::new(0.0125),
            x_zp: 200,
            out: QOut::Real,
            res_grid: Some(ResGrid { scale: F32::new(0.03125), zp: 17 }),
        }),
        Op::QConv(QConv {
            conv: Conv {
                window: Window {
                    kernel: vec![1, 1],
                    strides: vec![1, 1],
                    dilations: vec![1, 1],
                    pads: vec![0, 0, 0, 0],
                },
                group: 1,
                layer: crate::Layer("a".into()),
                algo: ConvAlgo::Direct,
            },
            epi: Epilogue::default(),
            x_scale: F32::new(1.0),
            x_zp: 3,
            out: QOut::Acc,
            res_grid: None,
        }),
        Op::QConv(QConv {
            conv: Conv {
                window: Window {
                    kernel: vec![3, 3],
                    strides: vec![1, 1],
                    dilations: vec![1, 1],
                    pads: vec![1, 1, 1, 1],
                },
                group: 4,
                layer: crate::Layer("dw".into()),
                algo: ConvAlgo::Direct,
            },
            epi: Epilogue { act: Some(UnaryOp::Clip { min: F32::new(0.0), max: F32::new(6.0) }), residual: false },
            x_scale: F32::new(0.5),
            x_zp: 7,
            out: QOut::Quant { scale: F32::new(0.0625), zp: 0 },
            res_grid: None,
        }),
        Op::Requantize { axis: 1, zp: -3, out: DType::I8 },
        Op::Quantize { scale: F32::new(0.05), zp: 128, pads: vec![0, 0, 1, 2, 0, 0, 2, 1] },
        Op::Unary(UnaryOp::Clip { min: F32::new(0.0), max: F32::new(6.0) }),
        Op::Unary(UnaryOp::Gelu { tanh: true }),
        Op::Unary(UnaryOp::HardSigmoid { alpha: F32::new(0.2), beta: F32::new(0.5) }),
        Op::Cast(DType::I64),
        Op::Conv(Conv { window: w.clone(), group: 2, layer: crate::Layer("c \"q\"".into()), algo: ConvAlgo::Direct }),
        Op::Conv(Conv {
            window: Window { kernel: vec![3, 3], strides: vec![1, 1], dilations: vec![1, 1], pads: vec![1, 1, 1, 1] },
            group: 1,
            layer: crate::Layer("w".into()),
            algo: ConvAlgo::Winograd { tile: 4 },
        }),
        Op::AveragePool(Pool { window: w.clone(), ceil_mode: true, count_include_pad: true }),
        Op::Reduce { kind: ReduceKind::L2, axes: vec![0, 2], keepdims: true },
        Op::Slice { starts: vec![3, 0], ends: vec![-1, 4], steps: vec![-1, 2] },
        Op::Pad { pads: vec![1, 2], mode: PadMode::Reflect, value: F32::new(0.0) },
        Op::Resize(Resize {
            mode: ResizeMode::Nearest(NearestMode::Floor),
            coord: CoordMode::Asymmetric,
            cubic_coeff: F32::new(-0.75),
            exclude_outside: false,
            scales: vec![F32::new(1.0), F32::new(2.0)],
            sizes: vec![1, 8],
        }),
        Op::Lstm(Rnn {
            hidden: 8,
            direction: Direction::Bidirectional,
            activations: vec![
                Activation::Sigmoid,
                Activation::HardSigmoid(F32::new(0.2), F32::new(0.5)),
                Activation::Tanh,
            ],
            clip: Some(F32::new(3.0)),
            linear_before_reset: false,
            input_forget: true,
            layer: crate::Layer("l".into()),
        }),
    ];
    for op in ops {
        let attrs: Vec<(String, Attr)> = op.attrs().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let text: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        // through the lexer, as the parser sees it
        let line = format!("%1 = {}{{{}}}(%0)", op.name(), text.join(", "));
        let toks = lex(&line, 1).unwrap();
        let mut c = Cursor { toks, pos: 3, line: 1 };
        let mut parsed = Vec::new();
        if c.eat('{') {
            while !c.eat('}') {
                let k = c.ident().unwrap();
                c.punct('=').unwrap();
                parsed.push((k, c.attr().unwrap()));
                c.eat(',');
            }
        }
        assert_eq!(Op::from_parts(op.name(), parsed).unwrap(), op, "{line}");
    }
}

/// Integer values with their grids (per tensor on an input and a node
/// output, per channel on a constant) and the two weight layouts.
const COMPRESSED: &str = r#"
graph "q"
  input %0 "x": u8[1,4] quant(scale: f32[] = [0.05], zp: u8[] = [128])
  const %1 "w": i8[3,4] quant(axis=0, scale: f32[3] = [0.5,0.25,0.125], zp: i8[3] = [0,0,0]) = [1,2,3,4,5,6,7,8,9,10,11,12]
  const %2 "k": f32[2,1,3,3] = [0,1,0,0,2,0,0,0,0,0,0,0,0,0,0,0,0,0] layout=pattern(kernel=[3,3], masks=[18,146], kept=1)
  const %3 "u": f32[4] = [0,0.5,0,1] layout=unstructured(nonzeros=2) grid=int8(axis=0, scales=[0.5,0.5,0.5,0.5])
  %4 = Cast{to=i32}(%0): i32[1,4] @"c"
  %5 = Cast{to=u8}(%4): u8[1,4] quant(scale: f32[] = [0.05], zp: u8[] = [128]) @"q"
  %6 = Cast{to=f32}(%1): f32[3,4] @"cw"
  %7 = Relu(%2): f32[2,1,3,3] @"r"
  %8 = Relu(%3): f32[4] @"ru"
  output "y" = %5
  output "w" = %6
  output "k" = %7
  output "u" = %8
"#;

#[test]
fn weights_off_their_grid_are_errors() {
    let text = |w: &str, grid: &str| {
        format!("graph \"g\"\n  const %0 \"w\": f32[2] = {w} grid=int8({grid})\n  %1 = Relu(%0): f32[2] @\"r\"\n  output \"y\" = %1\n")
    };
    for (w, grid, want) in [
        ("[4.1,0]", "axis=0, scales=[0.5,0.5]", "element 0 (4.1) is not f32(q · 0.5)"),
        ("[64,0]", "axis=0, scales=[0.5,0.5]", "element 0 (64) is not f32(q · 0.5) for an integer q in [-128, 127]"),
        ("[1,0]", "axis=0, scales=[0.5]", "1 grid scales for 2 channels"),
        ("[1,0]", "axis=1, scales=[0.5,0.5]", "grid axis 1 is out of range"),
        ("[0,0]", "axis=0, scales=[0,1]", "grid scale 0 is not positive"),
    ] {
        let e = parse(&text(w, grid)).unwrap_err().to_string();
        assert!(e.contains(want), "{w} {grid}: {e}");
    }
    assert!(parse(&text("[63.5,-0.5]", "axis=0, scales=[0.5,0.5]")).is_ok());
}

#[test]
fn grids_and_layouts_round_trip() {
    let g = parse(COMPRESSED).unwrap();
    let once = print(&g);
    assert_eq!(once, print(&parse_with_weights(&once, Some(&g.weights)).unwrap()));
    let x = g.ty(g.inputs[0]).quant.clone().unwrap();
    let y = g.ty(g.outputs[0].value).quant.clone().unwrap();
    assert_ne!(x, y, "each annotation has its own weights");
    assert!(x.same_grid(&y, &g.weights));
    let w = g.nodes[2].inputs[0];
    assert_eq!(g.ty(w).quant.as_ref().map(|q| q.axis), Some(Some(0)));
    let k = g.weights.get(match g.value(g.nodes[3].inputs[0]).def {
        ValueDef::Const(w) => w,
        _ => unreachable!(),
    });
    // kernel 0 has taps {1, 4} (mask 18), kernel 1 is zero and removed
    assert_eq!(
        k.sparsity,
        Sparsity::Pattern { kernel: [3, 3], patterns: vec![18, 146], assignment: vec![Some(0), None] }
    );
    assert!(once.contains("layout=unstructured(nonzeros=2) grid=int8(axis=0, scales=[0.5,0.5,0.5,0.5])"), "{once}");
    let u = g.weights.get(match g.value(g.nodes[4].inputs[0]).def {
        ValueDef::Const(w) => w,
        _ => unreachable!(),
    });
    assert_eq!(u.grid.as_ref().map(|gr| gr.codes(&u.tensor)), Some(Ok(vec![0, 1, 0, 2])));
    // survives compaction (grids' weights are copied and renumbered)
    assert_eq!(print(&g.compact()), once);
}

#[test]
fn bad_grids_and_layouts_are_errors() {
    let cases = [
        ("u8[1,4] quant(scale: f32[] = [0.05], zp: i8[] = [0])", "the zero point is i8, not u8"),
        ("u8[1,4] quant(axis=1, scale: f32[] = [0.05], zp: u8[] = [0])", "expected [4]"),
        ("u8[1,4] quant(axis=2, scale: f32[4] = fill(1), zp: u8[4] = fill(0))", "axis 2 is out of range"),
        ("f32[1,4] quant(scale: f32[] = [0.05], zp: f32[] = [0])", "only integer values carry a grid"),
    ];
    for (ty, msg) in cases {
        let src = format!("graph \"b\"\n  input %0 \"x\": {ty}\n  output \"y\" = %0\n");
        let e = parse(&src).unwrap_err().to_string();
        assert!(e.contains(msg) && e.contains("line 2"), "{ty}: {e}");
    }
    let layouts = [
        ("[0,1,0,1] layout=unstructured(nonzeros=1)", "2 non-zeros"),
        ("[0,1,0,0] layout=pattern(kernel=[2,2], masks=[1], kept=1)", "does not fit"),
        ("[0,1,0,0] layout=pattern(kernel=[2,2], masks=[2], kept=0)", "does not fit"),
        ("[0,1,0,0] layout=blocked(size=2)", "unknown layout 'blocked'"),
    ];
    for (data, msg) in layouts {
        let src = format!("graph \"b\"\n  const %0 \"w\": f32[1,1,2,2] = {data}\n  output \"y\" = %0\n");
        let e = parse(&src).unwrap_err().to_string();
        assert!(e.contains(msg), "{data}: {e}");
    }
}
