//! One Cranelift function per node (`<name>_k<i>`), lowered by
//! [`crate::lower`]; nodes the arena planner aliases away get none. Every
//! node that cannot be lowered is collected, so the error lists them all.

use cranelift_codegen::ir::{Function, InstBuilder, Signature, UserFuncName};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{FuncId, Linkage, Module};
use kerf_ir::{Graph, Node};

use super::{cg_err, scratch_slot};
use crate::arena;
use crate::isa::Caps;
use crate::lower::{self, Kernel, Param, Split};
use crate::{ProgressHook, TargetError, UnsupportedNode};

/// A defined kernel: its node, function, parameters in call order, split.
pub(super) struct KernelInfo {
    pub node: usize,
    pub func: FuncId,
    pub params: Vec<Param>,
    pub split: Option<Split>,
}

/// The kernels of `g` in node order and each node's scratch bytes (what
/// the arena planner reserves beside the node's outputs).
pub(super) struct Kernels {
    pub list: Vec<KernelInfo>,
    pub scratch: Vec<usize>,
}

/// Lowers and defines every node's kernel; `Unsupported` lists every node
/// that has none.
pub(super) fn lower_all<M: Module>(
    module: &mut M,
    g: &Graph,
    name: &str,
    caps: Caps,
    progress: Option<&ProgressHook>,
) -> Result<Kernels, TargetError> {
    let report = |done: usize, what: &str| {
        if let Some(p) = progress {
            (p.0)(done, g.nodes.len(), what);
        }
    };
    let aliases = arena::decide_aliases(g);
    let mut fctx = FunctionBuilderContext::new();
    let mut unsupported = Vec::new();
    let mut list = Vec::new();
    let mut scratch = vec![0usize; g.nodes.len()];
    let call_conv = module.isa().default_call_conv();
    for (i, node) in g.nodes.iter().enumerate() {
        report(i, &node.name);
        if aliases.free[i] {
            continue;
        }
        let mut func = Function::with_name_signature(UserFuncName::user(0, i as u32), Signature::new(call_conv));
        let (params, split) = match lower_one(&mut func, &mut fctx, module, g, node, caps) {
            Ok(ps) => ps,
            Err(reason) => {
                fctx = FunctionBuilderContext::new();
                unsupported.push(UnsupportedNode { node: node.name.clone(), op: node.op.name().to_string(), reason });
                continue;
            }
        };
        let copies = split.map_or(1, |s| s.max_tasks);
        scratch[i] = params
            .iter()
            .map(|p| match p {
                Param::Scratch(s) => scratch_slot(*s),
                Param::TaskScratch(s) => scratch_slot(*s) * copies,
                Param::Fault => scratch_slot(4),
                _ => 0,
            })
            .sum();
        let fname = format!("{name}_k{i}");
        let fid = module.declare_function(&fname, Linkage::Local, &func.signature).map_err(|e| cg_err(&fname, e))?;
        let mut ctx = Context::for_function(func);
        module.define_function(fid, &mut ctx).map_err(|e| cg_err(&fname, format!("{e:?}")))?;
        list.push(KernelInfo { node: i, func: fid, params, split });
    }
    report(g.nodes.len(), "");
    if !unsupported.is_empty() {
        return Err(TargetError::Unsupported(unsupported));
    }
    Ok(Kernels { list, scratch })
}

/// Lowers `node` into `func`: the entry block only receives parameters
/// (added on demand while lowering) and jumps to the body. Returns the
/// parameters and the split, or why the node has no kernel.
fn lower_one<M: Module>(
    func: &mut Function,
    fctx: &mut FunctionBuilderContext,
    module: &M,
    g: &Graph,
    node: &Node,
    caps: Caps,
) -> Result<(Vec<Param>, Option<Split>), String> {
    let mut b = FunctionBuilder::new(func, fctx);
    let entry = b.create_block();
    let start = b.create_block();
    // `entry` must come first in the layout.
    b.func.layout.append_block(entry);
    b.switch_to_block(start);
    let mut k = Kernel { b, caps, g, node, params: Vec::new(), entry, split: None, ranged: false };
    lower::lower_node(&mut k)?;
    k.b.ins().return_(&[]);
    k.b.switch_to_block(entry);
    k.b.ins().jump(start, &[]);
    k.b.seal_all_blocks();
    let (params, split) = (k.params, k.split);
    k.b.finalize(module.target_config());
    Ok((params, split))
}
