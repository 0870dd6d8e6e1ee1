//! The LSTM step's recurrent product ([`rnn_product`]) on `ymm` (AVX2 +
//! FMA) or, where the target has AVX-512, `zmm`: one body for both widths.

use iced_x86::code_asm::asm_traits::CodeAsmVpxord;
use iced_x86::code_asm::*;

use super::pattern::PatOps;
use super::IntVreg;

/// Most blocks of [`rnn_product`] per call.
pub const RNN_MAX_BLOCKS: usize = 24;

/// Machine code of the recurrent product of an RNN step whose gate vectors
/// of one hidden block are 16 floats (LSTM: 4 gates × 4 units,
/// `lower::rnn`): `out[b] = (xw[b] + bias[b]) + Σ_k h[k] · R[b][k]` for
/// `blocks` blocks (1..=[`RNN_MAX_BLOCKS`]), arguments `out` (`rdi`,
/// `[blocks][16]`), `h` (`rsi`, `kk` floats), `R` (`rdx`,
/// `[blocks][kk][16]`), `xw` (`rcx`) and `bias` (`r8`, both
/// `[blocks][16]`). A block is one `zmm` (`zmm`) or two `ymm`. Each output
/// is the sum `xw + bias`, then one FMA per `k` in order: the 128-bit
/// tile's chain (the product `h[k] · R` commutes exactly), so the same
/// bits at either width.
pub fn rnn_product(blocks: usize, kk: usize, zmm: bool) -> Result<Vec<u8>, IcedError> {
    let blocks = blocks.clamp(1, RNN_MAX_BLOCKS);
    if zmm {
        // eight blocks a run: a block's rows are `64·kk` bytes apart (4 KiB
        // for a hidden size of 64), and sixteen streams at that stride
        // share one L1 set; eight chains still keep the FMA pipes busy
        product(blocks, kk, (&ZMM_ACCS[..], zmm31, 8))
    } else {
        // six blocks of two `ymm`: the 12 accumulators of the 16 registers
        product(blocks, kk, (&AsmRegisterYmm::ACC[..12], ymm15, 6))
    }
}

/// The accumulators of the `zmm` product: each run of eight blocks its
/// own (measured 1% faster on Zen 4 than reusing `zmm0`–`zmm7`).
const ZMM_ACCS: [AsmRegisterZmm; 24] = [
    zmm0, zmm1, zmm2, zmm3, zmm4, zmm5, zmm6, zmm7, zmm8, zmm9, zmm10, zmm11, zmm12, zmm13, zmm14, zmm15, zmm16, zmm17,
    zmm18, zmm19, zmm20, zmm21, zmm22, zmm23,
];

/// [`rnn_product`] on register class `R`: `accs` (at least `run` blocks'
/// vectors; where they hold every block's, each run takes its own), the
/// broadcast register, blocks per run.
fn product<R: IntVreg>(blocks: usize, kk: usize, (accs, bcast, run): (&[R], R, usize)) -> Result<Vec<u8>, IcedError>
where
    CodeAssembler: PatOps<R> + CodeAsmVpxord<R, R, R>,
{
    let (out_p, h_p, r_p, x_p, b_p, n) = (rdi, rsi, rdx, rcx, r8, rax);
    let (h_i, r_i) = (r9, r10);
    let vb = 64 / (4 * R::LANES); // vectors per block
    let mut a = CodeAssembler::new(64)?;
    a.set_prefer_vex(R::LANES == 8);
    for b0 in (0..blocks).step_by(run) {
        let n_run = run.min(blocks - b0);
        let first = if accs.len() >= RNN_MAX_BLOCKS * vb { b0 * vb } else { 0 };
        // block `i` of the run: its `vb` accumulators and their byte offsets
        let each = |i: usize| (0..vb).map(move |v| (first + i * vb + v, (64 * i + 4 * R::LANES * v) as i64));
        for i in 0..n_run {
            for (r, at) in each(i) {
                let at = at + (64 * b0) as i64;
                a.vmovups(accs[r], R::ptr(x_p + at))?;
                a.vaddps(accs[r], accs[r], R::ptr(b_p + at))?;
            }
        }
        a.mov(h_i, h_p)?;
        a.lea(r_i, qword_ptr(r_p + (b0 * kk * 64) as i64))?;
        a.mov(n, kk as u64)?;
        super::super::counted_loop(&mut a, n, |a| {
            a.vbroadcastss(bcast, dword_ptr(h_i))?;
            for i in 0..n_run {
                for (r, at) in each(i) {
                    // block i's row k: `i·kk·64` bytes past the run's
                    let at = at - (64 * i) as i64 + (i * kk * 64) as i64;
                    a.vfmadd231ps(accs[r], bcast, R::ptr(r_i + at))?;
                }
            }
            a.add(h_i, 4)?;
            a.add(r_i, 64)
        })?;
        for i in 0..n_run {
            for (r, at) in each(i) {
                a.vmovups(R::ptr(out_p + (at + (64 * b0) as i64)), accs[r])?;
            }
        }
    }
    // the upper registers (`zmm16`–`zmm23`, `zmm31`) hold no state past
    // the call
    for &z in R::UPPER.iter().chain(accs.iter().skip(16)) {
        a.vpxord(z, z, z)?;
    }
    super::super::leaf_end(a)
}
