//! The `math` routines as AVX2 streams: `dst[i] = f(src[i])` over whole
//! `ymm` vectors, eight lanes at a time, from the very routine bodies
//! Cranelift lowers at four lanes (`crate::math`, written against
//! [`Emit`]). Cranelift's loop runs one vector's ~90-operation dependency
//! chain at a time and is latency-bound (~14 cycles per element for GELU
//! on Zen 3); here the chains of several vectors are interleaved
//! operation by operation, twice the lanes per instruction.
//!
//! How: the routine runs once on a recording [`Emit`] ([`Trace`]), which
//! gives its straight-line operation list. [`schedule`] places `u` copies
//! of that list round-robin, allocates the 16 `ymm` registers by linear
//! scan (a value's register is free after its last use; constants are
//! memory operands from a pool after the code, or loaded into a scratch
//! register where the instruction form needs a register), and takes the
//! largest `u` (at most 4) whose schedule fits without spilling. The loop
//! runs the `u`-wide body, then single vectors.
//!
//! The operations are the IEEE ones Cranelift emits for `f32x4` on x86-64
//! (`addps`…`divps`, `andps`/`xorps` for abs/neg, `cmpps`, `maxps`/`minps`
//! for the constant clamps, lane blends for selects, `cvtdq2ps`), so a
//! stream gives the Cranelift loop's bits; `targets/tests/ukernel.rs`
//! checks it on special and random inputs.
//!
//! Leaf ABI (`ukernel` module docs), arguments `src`, `dst` (may equal
//! `src`) and `n`, the number of 8-float vectors (≥ 0); the caller does the
//! remaining `len % 8` elements.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use iced_x86::code_asm::*;
use iced_x86::BlockEncoderOptions;

use super::PooledCode;
use crate::math::{self, Emit};

/// A function the streams compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VFn {
    /// [`math::exp`].
    Exp,
    /// [`math::tanh`].
    Tanh,
    /// [`math::sigmoid`].
    Sigmoid,
    /// [`math::erf`].
    Erf,
    /// [`math::gelu`].
    Gelu,
    /// [`math::gelu_tanh`].
    GeluTanh,
}

impl VFn {
    /// Every function.
    pub const ALL: [VFn; 6] = [VFn::Exp, VFn::Tanh, VFn::Sigmoid, VFn::Erf, VFn::Gelu, VFn::GeluTanh];

    fn trace(self) -> Trace {
        let mut t = Trace { nodes: vec![Node::Input], consts: BTreeMap::new(), slots: Vec::new() };
        let x = 0;
        let y = match self {
            VFn::Exp => math::exp(&mut t, x),
            VFn::Tanh => math::tanh(&mut t, x),
            VFn::Sigmoid => math::sigmoid(&mut t, x),
            VFn::Erf => math::erf(&mut t, x),
            VFn::Gelu => math::gelu(&mut t, x),
            VFn::GeluTanh => math::gelu_tanh(&mut t, x),
        };
        t.nodes.push(Node::Op(Ins::Out, [y, 0, 0]));
        // the pool holds the constants in bit-pattern order
        let order: Vec<usize> = t.consts.values().copied().collect();
        t.slots = (0..t.nodes.len()).map(|i| order.iter().position(|&j| j == i)).collect();
        t
    }
}

/// One recorded operation. Operands index earlier nodes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Node {
    /// The loaded input vector.
    Input,
    /// A constant: its bit pattern in every lane.
    Const(u32),
    /// An instruction on up to three operands.
    Op(Ins, [usize; 3]),
}

/// The instructions of the streams (`vblendvps`'s operands are
/// `[mask, if_set, if_clear]`; `MaxC`/`MinC`'s `[c, x]`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ins {
    Add,
    Sub,
    Mul,
    Div,
    And,
    Or,
    Xor,
    Lt,
    Eq,
    Ne,
    Blend,
    MaxC,
    MinC,
    IAdd,
    ISub,
    Sra(u8),
    Srl(u8),
    Sll(u8),
    Cvt,
    /// The result, stored to `dst`.
    Out,
}

impl Ins {
    fn arity(self) -> usize {
        match self {
            Ins::Sra(_) | Ins::Srl(_) | Ins::Sll(_) | Ins::Cvt | Ins::Out => 1,
            Ins::Blend => 3,
            _ => 2,
        }
    }
    /// Operands swap freely (so a constant can take the memory slot).
    fn commutes(self) -> bool {
        matches!(self, Ins::Add | Ins::Mul | Ins::And | Ins::Or | Ins::Xor | Ins::IAdd | Ins::Eq | Ins::Ne)
    }
    /// Which operand may be a memory operand (the instruction form's last
    /// source), if any.
    fn mem_slot(self) -> Option<usize> {
        match self {
            Ins::Blend => Some(1),
            Ins::MaxC | Ins::MinC => Some(1),
            Ins::Sra(_) | Ins::Srl(_) | Ins::Sll(_) | Ins::Out => None,
            Ins::Cvt => Some(0),
            _ => Some(1),
        }
    }
}

/// The recording [`Emit`]: values are node indices.
struct Trace {
    nodes: Vec<Node>,
    /// Constant node of each bit pattern.
    consts: BTreeMap<u32, usize>,
    /// Per node, its constant's slot in the pool (set when the trace is
    /// complete).
    slots: Vec<Option<usize>>,
}

impl Trace {
    /// The pool slot of node `i` if it is a constant.
    fn pool(&self, i: usize) -> Option<usize> {
        self.slots.get(i).copied().flatten()
    }
    fn konst(&mut self, bits: u32) -> usize {
        if let Some(&i) = self.consts.get(&bits) {
            return i;
        }
        self.nodes.push(Node::Const(bits));
        let i = self.nodes.len() - 1;
        self.consts.insert(bits, i);
        i
    }
    fn op(&mut self, ins: Ins, a: usize, b: usize) -> usize {
        self.nodes.push(Node::Op(ins, [a, b, 0]));
        self.nodes.len() - 1
    }
}

impl Emit for Trace {
    type V = usize;
    fn fconst(&mut self, _: usize, v: f32) -> usize {
        self.konst(v.to_bits())
    }
    fn iconst(&mut self, _: usize, v: i32) -> usize {
        self.konst(v as u32)
    }
    fn fadd(&mut self, a: usize, b: usize) -> usize {
        self.op(Ins::Add, a, b)
    }
    fn fsub(&mut self, a: usize, b: usize) -> usize {
        self.op(Ins::Sub, a, b)
    }
    fn fmul(&mut self, a: usize, b: usize) -> usize {
        self.op(Ins::Mul, a, b)
    }
    fn fdiv(&mut self, a: usize, b: usize) -> usize {
        self.op(Ins::Div, a, b)
    }
    fn fabs(&mut self, a: usize) -> usize {
        let m = self.konst(0x7fff_ffff);
        self.op(Ins::And, a, m)
    }
    fn fneg(&mut self, a: usize) -> usize {
        let m = self.konst(0x8000_0000);
        self.op(Ins::Xor, a, m)
    }
    fn flt(&mut self, a: usize, b: usize) -> usize {
        self.op(Ins::Lt, a, b)
    }
    fn feq(&mut self, a: usize, b: usize) -> usize {
        self.op(Ins::Eq, a, b)
    }
    fn fne(&mut self, a: usize, b: usize) -> usize {
        self.op(Ins::Ne, a, b)
    }
    fn select(&mut self, mask: usize, x: usize, y: usize) -> usize {
        self.nodes.push(Node::Op(Ins::Blend, [mask, x, y]));
        self.nodes.len() - 1
    }
    fn max_c(&mut self, x: usize, c: f32) -> usize {
        let c = self.konst(c.to_bits());
        self.op(Ins::MaxC, c, x)
    }
    fn min_c(&mut self, x: usize, c: f32) -> usize {
        let c = self.konst(c.to_bits());
        self.op(Ins::MinC, c, x)
    }
    fn bits(&mut self, x: usize) -> usize {
        x
    }
    fn float(&mut self, x: usize) -> usize {
        x
    }
    fn iadd(&mut self, a: usize, b: usize) -> usize {
        self.op(Ins::IAdd, a, b)
    }
    fn isub(&mut self, a: usize, b: usize) -> usize {
        self.op(Ins::ISub, a, b)
    }
    fn and(&mut self, a: usize, b: usize) -> usize {
        self.op(Ins::And, a, b)
    }
    fn or(&mut self, a: usize, b: usize) -> usize {
        self.op(Ins::Or, a, b)
    }
    fn sshr(&mut self, a: usize, n: u8) -> usize {
        self.op(Ins::Sra(n), a, 0)
    }
    fn ushr(&mut self, a: usize, n: u8) -> usize {
        self.op(Ins::Srl(n), a, 0)
    }
    fn shl(&mut self, a: usize, n: u8) -> usize {
        self.op(Ins::Sll(n), a, 0)
    }
    fn int_to_float(&mut self, a: usize) -> usize {
        self.op(Ins::Cvt, a, 0)
    }
}

/// Most vectors a body interleaves.
const MAX_WIDTH: usize = 4;

const YMM: [AsmRegisterYmm; 16] =
    [ymm0, ymm1, ymm2, ymm3, ymm4, ymm5, ymm6, ymm7, ymm8, ymm9, ymm10, ymm11, ymm12, ymm13, ymm14, ymm15];

/// Where an operand lives when an instruction reads it.
#[derive(Clone, Copy)]
enum Loc {
    Reg(AsmRegisterYmm),
    Pool(usize),
}

/// Machine code of the stream of `f` (arguments `src`, `dst`, `n`
/// vectors), assembled once per process: the bytes depend on `f` alone.
pub fn stream(f: VFn) -> Result<&'static PooledCode, String> {
    static CODE: [OnceLock<Result<PooledCode, String>>; VFn::ALL.len()] = [const { OnceLock::new() }; VFn::ALL.len()];
    let i = VFn::ALL.iter().position(|&g| g == f).unwrap_or(0);
    CODE[i].get_or_init(|| assemble_stream(f)).as_ref().map_err(Clone::clone)
}

/// The widest body that fits (at most [`MAX_WIDTH`] copies) and the
/// one-vector body, scheduled once, then assembled: once to learn where
/// the code ends, again with the pool padded to a 32-byte boundary (the
/// function is 64-byte aligned).
fn assemble_stream(f: VFn) -> Result<PooledCode, String> {
    let t = f.trace();
    let one = plan(&t, 1).ok_or_else(|| format!("vmath {f:?}: one vector needs more than 16 registers"))?;
    let wide = (2..=MAX_WIDTH).rev().find_map(|u| plan(&t, u).map(|s| (u, s)));
    let mut bodies = Vec::with_capacity(2);
    bodies.extend(wide);
    bodies.push((1, one));
    let (_, code_len) = assemble(&t, &bodies, 0)?;
    let pad = (32 - code_len % 32) % 32;
    let (bytes, at) = assemble(&t, &bodies, pad)?;
    if at != code_len + pad || at % 32 != 0 {
        return Err(format!("vmath {f:?}: constant pool at offset {at}, code ends at {code_len}"));
    }
    Ok(PooledCode { bytes, code_len })
}

/// A scheduled operation of one copy: operand locations, the constants
/// loaded into scratch registers first, and the result register.
struct Step {
    node: usize,
    copy: usize,
    srcs: Vec<Loc>,
    scratch: Vec<(AsmRegisterYmm, usize)>,
    dst: Option<AsmRegisterYmm>,
}

/// What issuing node `i` (operands `os`, this copy's remaining reader
/// counts `left`) takes from the free registers: the scratch registers its
/// constants need (taken before any operand frees up), and the net count
/// (scratch and the result, if read, less the operands read for the last
/// time).
fn issue_need(t: &Trace, i: usize, os: &[usize], left: &[usize], read: bool) -> (usize, isize) {
    let ins = match t.nodes[i] {
        Node::Op(ins, _) => Some(ins),
        _ => None,
    };
    let mem = ins.and_then(Ins::mem_slot);
    let scratch = os.iter().enumerate().filter(|&(k, &o)| t.pool(o).is_some() && mem != Some(k)).count();
    let mut seen = Vec::new();
    let mut freed = 0;
    for &o in os.iter().filter(|&&o| t.pool(o).is_none()) {
        let uses = os.iter().filter(|&&q| q == o).count();
        if !seen.contains(&o) && left[o] == uses {
            freed += 1;
        }
        seen.push(o);
    }
    let dst = usize::from(ins != Some(Ins::Out) && read);
    (scratch, (scratch + dst) as isize - freed as isize)
}

/// The steps of a `u`-wide body, or `None` if no schedule fits in the 16
/// registers without spilling. Tries [`schedule`] with growing reserves
/// (the more registers a trailing copy must leave free, the less the
/// copies overlap and the fewer are live at once).
fn plan(t: &Trace, u: usize) -> Option<Vec<Step>> {
    (0..=YMM.len()).find_map(|reserve| schedule(t, u, reserve))
}

/// List scheduling of `u` copies of the trace: round-robin over the
/// copies, one operation at a time, each copy in trace order; a copy other
/// than the leading unfinished one issues only while `reserve` registers
/// stay free after it. A value's register is freed when its last reader
/// issues (readers counted per copy). `None` when no copy can issue.
fn schedule(t: &Trace, u: usize, reserve: usize) -> Option<Vec<Step>> {
    let n = t.nodes.len();
    let ops: Vec<usize> = (0..n).filter(|&i| t.pool(i).is_none()).collect();
    // each node's operands, a constant moved to the memory slot of a
    // commutative instruction
    let operands: Vec<Vec<usize>> = (0..n)
        .map(|i| match t.nodes[i] {
            Node::Op(ins, mut o) => {
                let konst = |q: usize| t.pool(q).is_some();
                if ins.arity() == 2 && ins.commutes() && konst(o[0]) && !konst(o[1]) {
                    o.swap(0, 1);
                }
                o[..ins.arity()].to_vec()
            }
            _ => Vec::new(),
        })
        .collect();
    let mut readers = vec![0usize; n];
    for &i in &ops {
        for &o in &operands[i] {
            readers[o] += 1;
        }
    }
    let mut left: Vec<Vec<usize>> = vec![readers.clone(); u];
    let mut reg: Vec<Vec<Option<AsmRegisterYmm>>> = vec![vec![None; n]; u];
    let mut free: Vec<AsmRegisterYmm> = YMM.iter().rev().copied().collect();
    let mut cursor = vec![0usize; u];
    let mut steps = Vec::with_capacity(ops.len() * u);
    let mut turn = 0;
    while cursor.iter().any(|&c| c < ops.len()) {
        let leader = (0..u).find(|&c| cursor[c] < ops.len())?;
        let fits = |c: usize| {
            let i = ops[cursor[c]];
            let (scratch, cost) = issue_need(t, i, &operands[i], &left[c], readers[i] > 0);
            let keep = if c == leader { 0 } else { reserve as isize };
            free.len() >= scratch.max(1) && free.len() as isize - cost >= keep
        };
        let c = (0..u).map(|k| (turn + k) % u).find(|&c| cursor[c] < ops.len() && fits(c))?;
        turn = c + 1;
        let i = ops[cursor[c]];
        cursor[c] += 1;
        let ins = match t.nodes[i] {
            Node::Op(ins, _) => Some(ins),
            _ => None,
        };
        let mem = ins.and_then(Ins::mem_slot);
        let os = &operands[i];
        let mut srcs = Vec::with_capacity(os.len());
        let mut scratch = Vec::new();
        for (slot, &o) in os.iter().enumerate() {
            srcs.push(match (t.pool(o), mem == Some(slot)) {
                (Some(k), true) => Loc::Pool(k),
                (Some(k), false) => {
                    let r = free.pop()?;
                    scratch.push((r, k));
                    Loc::Reg(r)
                }
                (None, _) => Loc::Reg(reg[c][o]?),
            });
        }
        // operands read for the last time, and scratch registers, free up
        // before the result is placed (VEX forms may write a source)
        for &o in os.iter().filter(|&&o| t.pool(o).is_none()) {
            left[c][o] -= 1;
            if left[c][o] == 0 {
                if let Some(r) = reg[c][o].take() {
                    free.push(r);
                }
            }
        }
        free.extend(scratch.iter().map(|&(r, _)| r));
        let dst = if ins == Some(Ins::Out) {
            None
        } else {
            let r = free.pop()?;
            if readers[i] > 0 {
                reg[c][i] = Some(r);
            } else {
                free.push(r);
            }
            Some(r)
        };
        steps.push(Step { node: i, copy: c, srcs, scratch, dst });
    }
    Some(steps)
}

/// The whole function from its `(width, steps)` bodies, widest first,
/// with `pad` bytes before the pool; returns the bytes and the pool's
/// offset.
fn assemble(t: &Trace, bodies: &[(usize, Vec<Step>)], pad: usize) -> Result<(Vec<u8>, usize), String> {
    assemble_iced(t, bodies, pad).map_err(|e| format!("vmath: {e}"))
}

fn assemble_iced(t: &Trace, bodies: &[(usize, Vec<Step>)], pad: usize) -> Result<(Vec<u8>, usize), IcedError> {
    let (src, dst, n) = (rdi, rsi, rdx);
    let mut a = CodeAssembler::new(64)?;
    let mut pool: Vec<CodeLabel> = t.consts.keys().map(|_| a.create_label()).collect();
    // body i falls through to body i + 1 when fewer than its width remain
    let mut tops: Vec<CodeLabel> = bodies.iter().map(|_| a.create_label()).collect();
    let mut exit = a.create_label();
    for (i, (u, steps)) in bodies.iter().enumerate() {
        let u = *u;
        let next = tops.get(i + 1).copied().unwrap_or(exit);
        a.set_label(&mut tops[i])?;
        a.cmp(n, u as i32)?;
        a.jb(next)?;
        for st in steps {
            emit(&mut a, t, st, &pool)?;
        }
        a.add(src, (32 * u) as i32)?;
        a.add(dst, (32 * u) as i32)?;
        a.sub(n, u as i32)?;
        a.jmp(tops[i])?;
    }
    a.set_label(&mut exit)?;
    a.vzeroupper()?;
    a.ret()?;
    if pad > 0 {
        a.nops_with_size(pad)?;
    }
    for (l, &bits) in pool.iter_mut().zip(t.consts.keys()) {
        a.set_label(l)?;
        a.dd(&[bits; 8])?;
    }
    let r = a.assemble_options(0, BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS)?;
    let at = match pool.first() {
        Some(l) => r.label_ip(l)? as usize,
        None => r.inner.code_buffer.len(),
    };
    Ok((r.inner.code_buffer, at))
}

/// One scheduled step.
fn emit(a: &mut CodeAssembler, t: &Trace, st: &Step, pool: &[CodeLabel]) -> Result<(), IcedError> {
    for &(r, k) in &st.scratch {
        a.vmovups(r, ymmword_ptr(pool[k]))?;
    }
    // `plan` puts constants only in an instruction's memory slot
    let reg = |i: usize| match st.srcs[i] {
        Loc::Reg(r) => r,
        Loc::Pool(_) => ymm15,
    };
    let mem = |i: usize| match st.srcs[i] {
        Loc::Pool(k) => Some(ymmword_ptr(pool[k])),
        Loc::Reg(_) => None,
    };
    let Node::Op(ins, _) = t.nodes[st.node] else {
        // the input
        let d = st.dst.unwrap_or(ymm15);
        return a.vmovups(d, ymmword_ptr(rdi + (32 * st.copy) as i64));
    };
    if ins == Ins::Out {
        return a.vmovups(ymmword_ptr(rsi + (32 * st.copy) as i64), reg(0));
    }
    let d = st.dst.unwrap_or(ymm15);
    macro_rules! bin {
        ($m:ident) => {
            match mem(1) {
                Some(p) => a.$m(d, reg(0), p),
                None => a.$m(d, reg(0), reg(1)),
            }
        };
    }
    match ins {
        Ins::Add => bin!(vaddps),
        Ins::Sub => bin!(vsubps),
        Ins::Mul => bin!(vmulps),
        Ins::Div => bin!(vdivps),
        Ins::And => bin!(vandps),
        Ins::Or => bin!(vorps),
        Ins::Xor => bin!(vxorps),
        Ins::IAdd => bin!(vpaddd),
        Ins::ISub => bin!(vpsubd),
        Ins::MaxC => bin!(vmaxps),
        Ins::MinC => bin!(vminps),
        Ins::Lt => bin!(vcmpltps),
        Ins::Eq => bin!(vcmpeqps),
        Ins::Ne => bin!(vcmpneqps),
        Ins::Blend => {
            // [mask, if_set, if_clear]: vblendvps d, if_clear, if_set, mask
            let clear = reg(2);
            match mem(1) {
                Some(p) => a.vblendvps(d, clear, p, reg(0)),
                None => a.vblendvps(d, clear, reg(1), reg(0)),
            }
        }
        Ins::Sra(k) => a.vpsrad(d, reg(0), k as i32),
        Ins::Srl(k) => a.vpsrld(d, reg(0), k as i32),
        Ins::Sll(k) => a.vpslld(d, reg(0), k as i32),
        Ins::Cvt => match mem(0) {
            Some(p) => a.vcvtdq2ps(d, p),
            None => a.vcvtdq2ps(d, reg(0)),
        },
        Ins::Out => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every function assembles, interleaving at least two vectors.
    #[test]
    fn every_function_assembles_wide() {
        for f in VFn::ALL {
            let t = f.trace();
            let wide = (1..=MAX_WIDTH).rev().find(|&u| plan(&t, u).is_some());
            let code = stream(f).unwrap_or_else(|e| panic!("{f:?}: {e}"));
            eprintln!("{f:?}: {} nodes, width {wide:?}, {} bytes", t.nodes.len(), code.bytes.len());
            assert!(wide.is_some_and(|w| w >= 2), "{f:?}: width {wide:?}");
        }
    }
}
