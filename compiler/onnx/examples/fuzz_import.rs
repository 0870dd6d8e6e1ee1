//! Mutation fuzzing of the importer: flips, truncates and splices bytes of
//! the given seed models and checks that import never panics.
//!
//! `cargo run -p kerf-onnx --example fuzz_import -- ITERATIONS seed1.onnx ...`

fn main() {
    let mut args = std::env::args().skip(1);
    let iters: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let seeds: Vec<Vec<u8>> = args.filter_map(|p| std::fs::read(p).ok()).collect();
    if seeds.is_empty() {
        eprintln!("no seeds");
        std::process::exit(2);
    }
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    std::panic::set_hook(Box::new(|_| {}));
    let (mut ok, mut err, mut panics) = (0, 0, 0);
    for it in 0..iters {
        let mut b = seeds[(rnd() as usize) % seeds.len()].clone();
        // Half the time mutate the structure: attribute ints and tensor dims
        // get extreme values.
        if rnd() % 2 == 0 {
            use protobuf::Message;
            if let Ok(mut m) = onnx_protobuf::ModelProto::parse_from_bytes(&b) {
                const EXTREMES: [i64; 9] = [i64::MIN, i64::MAX, -1, 0, 1, 2, 1 << 40, -(1 << 40), 3];
                let g = m.graph.mut_or_insert_default();
                for _ in 0..1 + rnd() % 3 {
                    let v = EXTREMES[(rnd() as usize) % EXTREMES.len()];
                    match rnd() % 3 {
                        0 if !g.node.is_empty() => {
                            let k = (rnd() as usize) % g.node.len();
                            let n = &mut g.node[k];
                            if !n.attribute.is_empty() {
                                let a = (rnd() as usize) % n.attribute.len();
                                let at = &mut n.attribute[a];
                                at.i = v;
                                if !at.ints.is_empty() {
                                    let j = (rnd() as usize) % at.ints.len();
                                    at.ints[j] = v;
                                }
                            }
                        }
                        1 if !g.initializer.is_empty() => {
                            let k = (rnd() as usize) % g.initializer.len();
                            let t = &mut g.initializer[k];
                            if !t.dims.is_empty() {
                                let j = (rnd() as usize) % t.dims.len();
                                t.dims[j] = v;
                            } else {
                                t.int64_data.push(v);
                            }
                            if !t.int64_data.is_empty() {
                                let j = (rnd() as usize) % t.int64_data.len();
                                t.int64_data[j] = v;
                            }
                            if !t.raw_data.is_empty() && t.data_type == 7 {
                                let j = ((rnd() as usize) % (t.raw_data.len() / 8).max(1)) * 8;
                                if let Some(dst) = t.raw_data.get_mut(j..j + 8) {
                                    dst.copy_from_slice(&v.to_le_bytes());
                                }
                            }
                        }
                        _ => {
                            if let Some(inp) = g.input.first_mut() {
                                if let Some(onnx_protobuf::type_proto::Value::TensorType(tt)) =
                                    inp.type_.mut_or_insert_default().value.as_mut()
                                {
                                    let sh = tt.shape.mut_or_insert_default();
                                    if !sh.dim.is_empty() {
                                        let j = (rnd() as usize) % sh.dim.len();
                                        sh.dim[j].value =
                                            Some(onnx_protobuf::tensor_shape_proto::dimension::Value::DimValue(
                                                v.unsigned_abs().min(1 << 20) as i64,
                                            ));
                                    }
                                }
                            }
                        }
                    }
                }
                if let Ok(nb) = m.write_to_bytes() {
                    b = nb;
                }
                let r = std::panic::catch_unwind(|| kerf_onnx::load_model_bytes(&b, None, &Default::default()));
                match r {
                    Ok(Ok(_)) => ok += 1,
                    Ok(Err(_)) => err += 1,
                    Err(e) => {
                        panics += 1;
                        let msg = e
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        let path = format!("/tmp/fuzz_panic_{it}.onnx");
                        let _ = std::fs::write(&path, &b);
                        println!("PANIC at iteration {it}: {msg} (saved {path})");
                    }
                }
                continue;
            }
        }
        let n = 1 + rnd() % 2;
        for _ in 0..n {
            if b.is_empty() {
                break;
            }
            let pos = (rnd() as usize) % b.len();
            match rnd() % 4 {
                0 => b[pos] ^= 1 << (rnd() % 8),
                1 => b[pos] = rnd() as u8,
                2 => b.truncate(pos.max(1)),
                _ => {
                    // Overwrite with a varint-ish extreme value.
                    for (k, v) in [0xffu8, 0xff, 0xff, 0xff, 0x0f].iter().enumerate() {
                        if let Some(x) = b.get_mut(pos + k) {
                            *x = *v;
                        }
                    }
                }
            }
        }
        let r = std::panic::catch_unwind(|| kerf_onnx::load_model_bytes(&b, None, &Default::default()));
        match r {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(_)) => err += 1,
            Err(e) => {
                panics += 1;
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let path = format!("/tmp/fuzz_panic_{it}.onnx");
                let _ = std::fs::write(&path, &b);
                println!("PANIC at iteration {it}: {msg} (saved {path})");
            }
        }
    }
    println!("ok {ok} err {err} panics {panics}");
}
