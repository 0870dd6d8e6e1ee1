#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `Chain` kernels (several elementwise steps in one pass) against the same
//! steps as separate nodes: bit-identical, on the native CPU and the
//! baseline one, with operands broadcast along the inner axis (hoisted),
//! along outer axes, a scalar tail (inner sizes that are not a multiple of
//! 4), both operand orders and a step that reads the chain's own input.

mod common;
use common::{list, run, t, xs};

fn dims(s: &[usize]) -> String {
    s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",")
}

/// `steps` (chain text) and the equivalent separate nodes; `x` of shape
/// `xsh`, operands %1 (`ysh`) and %2 (`zsh`) constant.
fn check(xsh: &[usize], ysh: &[usize], zsh: &[usize], steps: &str, nodes: &[&str]) {
    let nx: usize = xsh.iter().product();
    let ny: usize = ysh.iter().product();
    let nz: usize = zsh.iter().product();
    let y: Vec<f32> = xs(ny + 3)[3..].iter().map(|v| v * 0.7 + 0.05).collect();
    let z: Vec<f32> = xs(nz + 9)[9..].iter().map(|v| v * 1.3 - 0.1).collect();
    let o = dims(xsh);
    let head = format!(
        "  input %0 \"x\": f32[{o}]\n  const %1 \"y\": f32[{}] = {}\n  const %2 \"z\": f32[{}] = {}\n",
        dims(ysh),
        list(&y),
        dims(zsh),
        list(&z)
    );
    let fused = format!(
        "graph \"c\"\n{head}  %3 = Chain{{steps=\"{steps}\"}}(%0, %1, %2): f32[{o}] @\"c\"\n  output \"y\" = %3\n"
    );
    // separate nodes: `@` is the previous value, `$k` input k
    let mut body = String::new();
    let mut prev = "%0".to_string();
    for (i, n) in nodes.iter().enumerate() {
        let id = 10 + i;
        let expr = n.replace('@', &prev).replace("$0", "%0").replace("$1", "%1").replace("$2", "%2");
        body.push_str(&format!("  %{id} = {expr}: f32[{o}] @\"n{i}\"\n"));
        prev = format!("%{id}");
    }
    let plain = format!("graph \"p\"\n{head}{body}  output \"y\" = {prev}\n");
    let x: Vec<f32> = xs(nx).iter().map(|v| v * 1.7).collect();
    for cpu in ["native", "baseline"] {
        let got = run(&fused, &[t(xsh, &x)], cpu).remove(0);
        let want = run(&plain, &[t(xsh, &x)], cpu).remove(0);
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!(
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                "{steps} ({cpu}) element {i}: chain {a} vs nodes {b}"
            );
        }
    }
}

#[test]
fn chain_equals_its_steps_as_nodes() {
    // per-column operands (inner axis), scalar-tail inner size 13
    check(
        &[3, 2, 13],
        &[13],
        &[1],
        "Mul(@,$1) Sigmoid Sub($2,@) Tanh Add(@,$0)",
        &["Mul(@, $1)", "Sigmoid(@)", "Sub($2, @)", "Tanh(@)", "Add(@, $0)"],
    );
    // per-channel operands (broadcast along the inner axis: hoisted scalars)
    check(
        &[2, 5, 3, 7],
        &[5, 1, 1],
        &[1, 5, 1, 1],
        "Div(@,$1) Erf Max($2,@) Clip{min=-0.5,max=0.75} Mul($0,@) Gelu{tanh=true}",
        &["Div(@, $1)", "Erf(@)", "Max($2, @)", "Clip{min=-0.5, max=0.75}(@)", "Mul($0, @)", "Gelu{tanh=true}(@)"],
    );
    // full-shape operand, unary-only steps, inner size a multiple of 4
    check(
        &[4, 8],
        &[4, 8],
        &[8],
        "Exp Min(@,$1) LeakyRelu{alpha=0.1} Gelu{tanh=false} Relu",
        &["Exp(@)", "Min(@, $1)", "LeakyRelu{alpha=0.1}(@)", "Gelu{tanh=false}(@)", "Relu(@)"],
    );
}
