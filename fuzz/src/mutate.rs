// Structure-aware mutations of an ONNX `ModelProto`, shared by the fuzz
// targets (included with `include!`, so no crate boilerplate here).
//
// Every edit keeps the message encodable; most keep it "almost valid" (small
// dims, names that exist) so the mutant gets past the importer and exercises
// the passes and code generator.

use onnx_protobuf::tensor_shape_proto::dimension::Value as Dim;
use onnx_protobuf::type_proto::Value as TypeValue;
use onnx_protobuf::{AttributeProto, ModelProto, NodeProto};

/// xorshift32 seeded by libFuzzer, so a mutation sequence is reproducible.
pub struct Rng(u32);

impl Rng {
    pub fn new(seed: u32) -> Rng {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            self.next() as usize % n
        }
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> Option<&'a T> {
        if xs.is_empty() {
            None
        } else {
            xs.get(self.below(xs.len()))
        }
    }
}

/// Interesting integers: boundaries, small values, and ones that overflow
/// products.
const INTS: [i64; 16] = [0, 1, 2, 3, -1, -2, 4, 7, 8, 16, 255, 1 << 16, 1 << 31, 1 << 40, i64::MAX, i64::MIN];
/// Small values a shape can take without making the model huge.
const SMALL: [i64; 8] = [0, 1, 2, 3, 4, 5, 8, 17];
const FLOATS: [f32; 10] = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-30, 1e30, f32::INFINITY, f32::NAN, f32::MIN_POSITIVE];
/// ONNX op types the mutator swaps in (a mix of supported and unsupported).
const OPS: [&str; 24] = [
    "Add", "Mul", "Relu", "Conv", "Gemm", "MatMul", "Reshape", "Transpose", "Concat", "Slice", "Gather", "Softmax",
    "MaxPool", "AveragePool", "BatchNormalization", "Flatten", "Squeeze", "Unsqueeze", "Split", "LSTM", "GRU",
    "ReduceMean", "Expand", "Identity",
];

fn int(rng: &mut Rng) -> i64 {
    if rng.below(3) == 0 {
        *rng.pick(&INTS).unwrap_or(&0)
    } else {
        *rng.pick(&SMALL).unwrap_or(&1)
    }
}

/// All value names defined in the graph (inputs, initializers, node outputs).
fn value_names(m: &ModelProto) -> Vec<String> {
    let g = match m.graph.as_ref() {
        Some(g) => g,
        None => return Vec::new(),
    };
    let mut v: Vec<String> = g.input.iter().map(|i| i.name.clone()).collect();
    v.extend(g.initializer.iter().map(|t| t.name.clone()));
    for n in &g.node {
        v.extend(n.output.iter().cloned());
    }
    v
}

fn mutate_attr(a: &mut AttributeProto, rng: &mut Rng) {
    match rng.below(7) {
        0 => a.i = int(rng),
        1 => {
            if a.ints.is_empty() {
                a.ints.push(int(rng));
            } else {
                let j = rng.below(a.ints.len());
                a.ints[j] = int(rng);
            }
        }
        2 => {
            // Change the arity of a list attribute (pads, strides, perm...).
            if rng.below(2) == 0 {
                a.ints.pop();
            } else {
                a.ints.push(int(rng));
            }
        }
        3 => a.f = *rng.pick(&FLOATS).unwrap_or(&0.0),
        4 => {
            // Wrong attribute type.
            let t = rng.below(15) as i32;
            a.type_ = protobuf::EnumOrUnknown::from_i32(t);
        }
        5 => a.s = [b"", b"SAME_UPPER".as_slice(), b"VALID", b"NOTSET", b"xyz"][rng.below(5)].to_vec(),
        _ => {
            if let Some(t) = a.t.as_mut() {
                if let Some(d) = t.dims.first_mut() {
                    *d = int(rng);
                }
            }
        }
    }
}

fn mutate_node(n: &mut NodeProto, names: &[String], rng: &mut Rng) {
    match rng.below(8) {
        0 | 1 => {
            if n.attribute.is_empty() {
                return;
            }
            let k = rng.below(n.attribute.len());
            mutate_attr(&mut n.attribute[k], rng);
        }
        2 => {
            if !n.attribute.is_empty() {
                let k = rng.below(n.attribute.len());
                n.attribute.remove(k);
            }
        }
        3 => {
            // Rewire an input to another existing value (or to nothing).
            if let Some(src) = rng.pick(names).cloned() {
                if n.input.is_empty() || rng.below(4) == 0 {
                    n.input.push(src);
                } else {
                    let k = rng.below(n.input.len());
                    n.input[k] = if rng.below(8) == 0 { String::new() } else { src };
                }
            }
        }
        4 => {
            if !n.input.is_empty() {
                let k = rng.below(n.input.len());
                n.input.remove(k);
            }
        }
        5 => {
            if let Some(op) = rng.pick(&OPS) {
                n.op_type = op.to_string();
            }
        }
        6 => {
            // Add an attribute copied from a common name set with a random value.
            let name = ["axis", "perm", "pads", "strides", "kernel_shape", "group", "axes", "keepdims", "dilations"]
                [rng.below(9)];
            let mut a = AttributeProto::new();
            a.name = name.to_string();
            if rng.below(2) == 0 {
                a.type_ = protobuf::EnumOrUnknown::from_i32(2); // INT
                a.i = int(rng);
            } else {
                a.type_ = protobuf::EnumOrUnknown::from_i32(7); // INTS
                for _ in 0..rng.below(6) {
                    a.ints.push(int(rng));
                }
            }
            n.attribute.retain(|x| x.name != name);
            n.attribute.push(a);
        }
        _ => {
            // Extra or fewer outputs.
            if rng.below(2) == 0 {
                n.output.pop();
            } else {
                n.output.push(format!("fz{}", rng.next()));
            }
        }
    }
}

/// Applies 1–4 structural edits to `m`.
pub fn mutate_model(m: &mut ModelProto, rng: &mut Rng) {
    for _ in 0..1 + rng.below(4) {
        let names = value_names(m);
        match rng.below(10) {
            0 => {
                m.ir_version = [0, 3, 7, 8, 9, 10, 11, 99][rng.below(8)];
            }
            1 => {
                if let Some(o) = m.opset_import.first_mut() {
                    o.version = [1, 6, 7, 9, 11, 13, 17, 18, 21, 22, 99][rng.below(11)];
                }
            }
            2..=5 => {
                let g = m.graph.mut_or_insert_default();
                if g.node.is_empty() {
                    continue;
                }
                let k = rng.below(g.node.len());
                mutate_node(&mut g.node[k], &names, rng);
            }
            6 => {
                // Node order / duplication / removal.
                let g = m.graph.mut_or_insert_default();
                if g.node.is_empty() {
                    continue;
                }
                let k = rng.below(g.node.len());
                match rng.below(3) {
                    0 => {
                        let n = g.node.remove(k);
                        if rng.below(2) == 0 {
                            let j = rng.below(g.node.len() + 1);
                            g.node.insert(j, n);
                        }
                    }
                    1 => {
                        let n = g.node[k].clone();
                        g.node.insert(k, n);
                    }
                    _ => {
                        let j = rng.below(g.node.len());
                        g.node.swap(k, j);
                    }
                }
            }
            7 => {
                // Initializer dims / data / type.
                let g = m.graph.mut_or_insert_default();
                if g.initializer.is_empty() {
                    continue;
                }
                let k = rng.below(g.initializer.len());
                let t = &mut g.initializer[k];
                match rng.below(5) {
                    0 => {
                        if !t.dims.is_empty() {
                            let j = rng.below(t.dims.len());
                            t.dims[j] = int(rng);
                        }
                    }
                    1 => {
                        if rng.below(2) == 0 {
                            t.dims.pop();
                        } else {
                            t.dims.push(int(rng).clamp(0, 4));
                        }
                    }
                    2 => {
                        let len = t.raw_data.len();
                        t.raw_data.truncate(rng.below(len + 1));
                    }
                    3 => t.data_type = [0, 1, 2, 3, 6, 7, 9, 10, 11, 16, 99][rng.below(11)],
                    _ => {
                        if !t.int64_data.is_empty() {
                            let j = rng.below(t.int64_data.len());
                            t.int64_data[j] = int(rng);
                        } else if t.data_type == 7 && t.raw_data.len() >= 8 {
                            let j = rng.below(t.raw_data.len() / 8) * 8;
                            t.raw_data[j..j + 8].copy_from_slice(&int(rng).to_le_bytes());
                        }
                    }
                }
            }
            8 => {
                // Graph input shape / element type.
                let g = m.graph.mut_or_insert_default();
                if g.input.is_empty() {
                    continue;
                }
                let k = rng.below(g.input.len());
                let ty = g.input[k].type_.mut_or_insert_default();
                if let Some(TypeValue::TensorType(tt)) = ty.value.as_mut() {
                    if rng.below(4) == 0 {
                        tt.elem_type = [1, 6, 7, 9, 10, 11][rng.below(6)];
                    } else {
                        let sh = tt.shape.mut_or_insert_default();
                        if sh.dim.is_empty() || rng.below(6) == 0 {
                            if rng.below(2) == 0 {
                                sh.dim.pop();
                            } else {
                                let mut d = onnx_protobuf::tensor_shape_proto::Dimension::new();
                                d.value = Some(Dim::DimValue(*rng.pick(&SMALL).unwrap_or(&1)));
                                sh.dim.push(d);
                            }
                        } else {
                            let j = rng.below(sh.dim.len());
                            sh.dim[j].value = Some(if rng.below(10) == 0 {
                                Dim::DimParam("N".to_string())
                            } else {
                                Dim::DimValue(*rng.pick(&SMALL).unwrap_or(&1))
                            });
                        }
                    }
                }
            }
            _ => {
                // Graph outputs: point one at another value, or drop one.
                let g = m.graph.mut_or_insert_default();
                if g.output.is_empty() {
                    continue;
                }
                let k = rng.below(g.output.len());
                if rng.below(3) == 0 && g.output.len() > 1 {
                    g.output.remove(k);
                } else if let Some(nm) = rng.pick(&names) {
                    g.output[k].name = nm.clone();
                }
            }
        }
    }
}
