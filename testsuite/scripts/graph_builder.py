"""A small ONNX graph builder that names things the way `torch.onnx.export` does.

Node names look like `/layer1/layer1.0/conv1/Conv`, outputs like `<node name>_output_0`,
shape constants are `Constant` nodes (not initializers), weights are initializers. The
builder also knows how to
  * calibrate BatchNormalization running statistics on a calibration input (so random
    networks keep O(1) activations like trained ones),
  * fold Conv+BatchNormalization the way PyTorch's exporter does (`do_constant_folding`),
  * deduplicate identical initializers into `Identity` nodes, as the exporter does for
    parameters that share values (e.g. zero biases, LayerNorm ones/zeros).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
from onnx import TensorProto, helper

import common

OPSET = 17
IR_VERSION = 8
PRODUCER = "kerf-testsuite make_models.py"


class Builder:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, np.ndarray] = {}
        self._names: Counter = Counter()
        self._anon = 0
        self.bns: list[onnx.NodeProto] = []

    # ---- naming -------------------------------------------------------------------------
    def _node_name(self, scope: str, op: str) -> str:
        base = f"{scope}/{op}"
        k = self._names[base]
        self._names[base] += 1
        return base if k == 0 else f"{base}_{k}"

    def anon(self, prefix: str) -> str:
        """A fresh `onnx::<Op>_<n>` initializer name, as the exporter gives folded weights."""
        self._anon += 1
        return f"onnx::{prefix}_{self._anon}"

    # ---- graph pieces -------------------------------------------------------------------
    def init(self, name: str, arr: np.ndarray) -> str:
        assert name not in self.inits, name
        self.inits[name] = np.asarray(arr)
        return name

    def node(self, op: str, scope: str, inputs: list[str], n_out: int = 1, outputs=None, **attrs) -> list[str]:
        name = self._node_name(scope, op)
        if outputs is None:
            outputs = [f"{name}_output_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, **attrs))
        return outputs

    def op(self, op: str, scope: str, inputs: list[str], **attrs) -> str:
        return self.node(op, scope, inputs, **attrs)[0]

    def const(self, scope: str, value, dtype=None) -> str:
        arr = np.asarray(value, dtype=dtype)
        return self.op("Constant", scope, [], value=common.tensor("", arr))

    # ---- layers -------------------------------------------------------------------------
    def he_normal(self, shape, fan_in: int) -> np.ndarray:
        return (self.rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    def uniform(self, shape, bound: float) -> np.ndarray:
        return self.rng.uniform(-bound, bound, shape).astype(np.float32)

    def conv(self, scope: str, x: str, cin: int, cout: int, k: int, stride: int = 1, pad: int = 0,
             group: int = 1, bias: bool = True, w_name: str | None = None, b_name: str | None = None,
             w=None, b=None) -> str:
        fan_in = cin // group * k * k
        if w is None:
            w = self.he_normal((cout, cin // group, k, k), fan_in)
        ins = [x, self.init(w_name or self.anon("Conv"), w)]
        if bias:
            if b is None:
                b = self.uniform((cout,), 1.0 / np.sqrt(fan_in))
            ins.append(self.init(b_name or self.anon("Conv"), b))
        return self.op("Conv", scope, ins, dilations=[1, 1], group=group, kernel_shape=[k, k],
                       pads=[pad] * 4, strides=[stride, stride])

    def bn(self, scope: str, x: str, c: int, param_prefix: str) -> str:
        """BatchNormalization with gamma/beta drawn now; running stats are placeholders until
        `calibrate_bn` replaces them with (perturbed) statistics of the actual activations."""
        gamma = self.rng.uniform(0.6, 1.4, c).astype(np.float32)
        beta = (self.rng.standard_normal(c) * 0.2).astype(np.float32)
        ins = [x,
               self.init(f"{param_prefix}.weight", gamma),
               self.init(f"{param_prefix}.bias", beta),
               self.init(f"{param_prefix}.running_mean", np.zeros(c, np.float32)),
               self.init(f"{param_prefix}.running_var", np.ones(c, np.float32))]
        out = self.op("BatchNormalization", scope, ins, epsilon=1e-5, momentum=0.9)
        self.bns.append(self.nodes[-1])
        return out

    def clip6(self, scope: str, x: str) -> str:
        lo = self.const(scope, 0.0, np.float32)
        hi = self.const(scope, 6.0, np.float32)
        return self.op("Clip", scope, [x, lo, hi])

    def gemm(self, scope: str, x: str, fin: int, fout: int, prefix: str, output: str | None = None) -> str:
        bound = 1.0 / np.sqrt(fin)
        w = self.init(f"{prefix}.weight", self.uniform((fout, fin), bound))
        b = self.init(f"{prefix}.bias", self.uniform((fout,), bound))
        outs = [output] if output else None
        return self.node("Gemm", scope, [x, w, b], outputs=outs, alpha=1.0, beta=1.0, transB=1)[0]

    # ---- model assembly -----------------------------------------------------------------
    def model(self, inputs, outputs, nodes=None, inits=None, opset: int = OPSET,
              ir_version: int = IR_VERSION) -> onnx.ModelProto:
        """inputs/outputs: lists of (name, shape-or-None, elem_type)."""
        nodes = self.nodes if nodes is None else nodes
        inits = self.inits if inits is None else inits
        graph = helper.make_graph(
            nodes, "main_graph",
            [helper.make_tensor_value_info(n, t, s) for n, s, t in inputs],
            [helper.make_tensor_value_info(n, t, s) for n, s, t in outputs],
            initializer=[common.tensor(k, v) for k, v in inits.items()])
        m = helper.make_model(graph, producer_name=PRODUCER, producer_version="1",
                              opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = ir_version
        return m

    def prefix_model(self, input_name: str, input_shape, target: str) -> onnx.ModelProto:
        """The sub-graph that computes `target` (only its ancestors), with `target` as output."""
        needed = {target}
        keep = []
        for n in reversed(self.nodes):
            if any(o in needed for o in n.output):
                keep.append(n)
                needed.update(i for i in n.input if i)
        keep.reverse()
        inits = {k: v for k, v in self.inits.items() if k in needed}
        return self.model([(input_name, input_shape, TensorProto.FLOAT)], [(target, None, TensorProto.FLOAT)],
                          nodes=keep, inits=inits)

    def calibrate_bn(self, input_name: str, x_calib: np.ndarray, seed: int) -> None:
        """Set each BN's running mean/var to the per-channel statistics of its actual input on
        `x_calib` (processed in topological order, so earlier BNs are already calibrated),
        perturbed slightly so the BN is never an exact standardisation."""
        rng = np.random.default_rng(seed)
        shape = ["N"] + list(x_calib.shape[1:])
        for bn in self.bns:
            y = common.run(self.prefix_model(input_name, shape, bn.input[0]), {input_name: x_calib})[0]
            axes = (0,) + tuple(range(2, y.ndim))
            mean = y.mean(axis=axes, dtype=np.float64)
            var = y.var(axis=axes, dtype=np.float64)
            c = mean.shape[0]
            mean = mean + rng.standard_normal(c) * 0.05 * np.sqrt(var)
            var = var * rng.uniform(0.85, 1.2, c) + 1e-4
            self.inits[bn.input[3]] = mean.astype(np.float32)
            self.inits[bn.input[4]] = var.astype(np.float32)

    def folded(self) -> tuple[list[onnx.NodeProto], dict[str, np.ndarray]]:
        """Conv -> BatchNormalization pairs folded into a Conv with bias, as PyTorch exports them.
        Returns new (nodes, initializers); the builder itself is unchanged."""
        consumers = Counter(i for n in self.nodes for i in n.input)
        producer = {o: n for n in self.nodes for o in n.output}
        rename: dict[str, str] = {}
        folded_convs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        drop = set()
        for bn in self.bns:
            conv = producer.get(bn.input[0])
            if conv is None or conv.op_type != "Conv" or consumers[bn.input[0]] != 1:
                continue
            g, b, mu, var = (self.inits[bn.input[i]].astype(np.float64) for i in range(1, 5))
            eps = next(a.f for a in bn.attribute if a.name == "epsilon")
            s = g / np.sqrt(var + eps)
            w = self.inits[conv.input[1]].astype(np.float64)
            cb = self.inits[conv.input[2]].astype(np.float64) if len(conv.input) > 2 else np.zeros_like(b)
            folded_convs[conv.name] = ((w * s[:, None, None, None]).astype(np.float32),
                                       (b + (cb - mu) * s).astype(np.float32))
            rename[bn.output[0]] = bn.input[0]
            drop.add(bn.name)
        nodes = []
        inits: dict[str, np.ndarray] = {}
        counter = 0
        for n in self.nodes:
            if n.name in drop:
                continue
            if n.name in folded_convs:
                w, b = folded_convs[n.name]
                counter += 1
                wn = f"onnx::Conv_{counter}"
                counter += 1
                bname = f"onnx::Conv_{counter}"
                inits[wn] = w
                inits[bname] = b
                new = helper.make_node("Conv", [rename.get(n.input[0], n.input[0]), wn, bname], list(n.output), name=n.name)
                new.attribute.extend(n.attribute)
                nodes.append(new)
                continue
            new = onnx.NodeProto()
            new.CopyFrom(n)
            for k, i in enumerate(new.input):
                if i in rename:
                    new.input[k] = rename[i]
            nodes.append(new)
            for i in new.input:
                if i in self.inits and i not in inits:
                    inits[i] = self.inits[i]
        return nodes, inits


def dedup_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """Identical initializers (same dtype, shape and bytes) kept once; the duplicates become
    `Identity` nodes at the top of the graph, exactly like the PyTorch exporter produces."""
    g = model.graph
    first: dict[tuple, str] = {}
    keep = []
    idents = []
    for init in g.initializer:
        key = (init.data_type, tuple(init.dims), onnx.numpy_helper.to_array(init).tobytes())
        if key in first:
            idents.append(helper.make_node("Identity", [first[key]], [init.name], name=f"Identity_{len(idents)}"))
        else:
            first[key] = init.name
            keep.append(init)
    if not idents:
        return model
    nodes = idents + list(g.node)
    del g.initializer[:]
    g.initializer.extend(keep)
    del g.node[:]
    g.node.extend(nodes)
    return model
