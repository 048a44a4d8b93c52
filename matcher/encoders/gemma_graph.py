"""EmbeddingGemma-300M's forward pass written as an ONNX graph, and its int8 quantization.

:mod:`matcher.encoders.gemma_onnx` builds this once from the fetched weights
and serves it; this module is the arithmetic:

- **Written by hand, not traced.** A traced export of transformers' Gemma 3
  has about 6,700 nodes, most of them shape arithmetic for masks and
  positions that ONNX Runtime runs on every call. This graph takes one
  unpadded text (no batch axis), its rotary tables and its sliding-window
  band as inputs, all made in numpy, and has about 900 nodes. In fp32 it
  gives the sentence-transformers vectors to within cosine 1.0000
  (tests/test_gemma_onnx.py).
- **The sliding window is 257, not 512.** transformers halves Gemma 3's
  512-token window for bidirectional models (``sliding_window // 2 + 1``,
  exclusive on both sides); texts over 257 tokens drift without the same
  band.
- **int8 matrix products, 7-bit weights.** Every linear layer is quantized
  dynamically with one weight scale per output channel. Weights use 7 bits
  (``reduce_range``): CPUs without VNNI multiply int8 pairs with an
  instruction that saturates at 16 bits, which cost the full 8-bit graph a
  worst cosine of 0.973 on real texts, against 0.990 with 7 bits.
- **The down-projections' outliers moved into their weights** (SmoothQuant,
  calibrated on a fixed set of everyday sentences in both languages), since
  their inputs carry channels 10 to 60 times the median, which one
  activation scale per call cannot hold.
- **The embedding table stays outside the graph**, as int8 rows with one
  scale per row (262,144 x 768: 201 MB instead of 805 MB), memory-mapped so
  every worker shares one copy in the page cache. The row scale includes
  Gemma's ``sqrt(hidden_size)`` embedding multiplier.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError
from .base import quantize_linear_layers

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: Tokens read per text, prompt included: far beyond any shopper text or facet.
MAX_TOKENS = 512
#: The transformer's width, and the sentence vector's.
DIMENSION = 768
#: SmoothQuant's migration strength: 0.5, its paper's default, took the worst
#: cosine to fp32 on the labelled texts from 0.990 to 0.9925 and a 420-token
#: text from 0.979 to 0.987; not tuned further.
SMOOTHING = 0.5

Progress = Callable[[str, int, int], None]


def save_graph(model: Any, path: Path) -> None:
    """Write an ONNX model to ``path`` (weights inline: the graph is under 2 GB)."""
    import onnx

    onnx.save(model, str(path))


def read_weights(model: Path) -> Any:
    from safetensors import safe_open

    return _Tensors(safe_open(str(model / "model.safetensors"), "np"))


def read_rows(model: Path, name: str, rows: list[int]) -> dict[int, NDArray[np.float32]]:
    """Some rows of one tensor, read without loading the rest (the 805 MB table)."""
    from safetensors import safe_open

    with safe_open(str(model / "model.safetensors"), "np") as handle:
        tensor = handle.get_slice(name)
        return {row: np.asarray(tensor[row : row + 1][0], dtype=np.float32) for row in rows}


class _Tensors:
    """Named tensors of a safetensors file, read one at a time."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def __getitem__(self, name: str) -> NDArray[np.float32]:
        return np.asarray(self._handle.get_tensor(name), dtype=np.float32)


def build_fp32_graph(model: Path, *, progress: Progress | None = None) -> Any:
    """Gemma 3's bidirectional encoder, mean pooling and the two dense layers, in fp32.

    Inputs: ``embeddings`` (tokens x 768, the scaled table rows),
    ``cos_local``/``sin_local`` and ``cos_global``/``sin_global`` (tokens x
    1 x 256: the rotary tables of the sliding and the full layers, the sign
    of ``rotate_half`` folded into the sines), ``band`` (tokens x tokens: 0
    inside the sliding window, -inf outside). Output ``embedding``: 1 x 768,
    not yet normalised.
    """
    from onnx import TensorProto, helper, numpy_helper

    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    heads, head_dim = int(config["num_attention_heads"]), int(config["head_dim"])
    if int(config["num_key_value_heads"]) != 1 or int(config["hidden_size"]) != DIMENSION:
        raise ConfigError(f"{model} is not the EmbeddingGemma-300M this graph is written for")
    eps = float(config["rms_norm_eps"])
    scaling = float(config["query_pre_attn_scalar"]) ** -0.5
    weights = read_weights(model)
    initializers: list[Any] = []
    nodes: list[Any] = []

    def const(name: str, value: Any) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(kind: str, inputs: list[str], output: str, **attributes: Any) -> str:
        domain = attributes.pop("domain", None)
        nodes.append(helper.make_node(kind, inputs, [output], output, domain=domain, **attributes))
        return output

    def norm(x: str, key: str, output: str, factor: float = 1.0) -> str:
        # Gemma's RMSNorm multiplies by (1 + weight); a constant factor folds in.
        gamma = ((1.0 + weights[key]) * factor).astype(np.float32)
        return op(
            "SimplifiedLayerNormalization",
            [x, const(f"{output}.gamma", gamma)],
            output,
            axis=-1,
            epsilon=eps,
        )

    def linear(x: str, key: str, output: str) -> str:
        return op("MatMul", [x, const(f"{output}.weight", weights[key].T)], output)

    halves = const("halves", np.array([head_dim // 2, head_dim // 2], np.int64))

    def rotary(x: str, cos: str, sin: str, output: str) -> str:
        first, second = f"{output}.first", f"{output}.second"
        nodes.append(
            helper.make_node("Split", [x, halves], [first, second], f"{output}.split", axis=-1)
        )
        swapped = op("Concat", [second, first], f"{output}.swapped", axis=-1)
        return op(
            "Add",
            [op("Mul", [x, cos], f"{output}.cos"), op("Mul", [swapped, sin], f"{output}.sin")],
            output,
        )

    per_head = const("per_head", np.array([-1, heads, head_dim], np.int64))
    one_head = const("one_head", np.array([-1, 1, head_dim], np.int64))
    flat = const("flat", np.array([-1, heads * head_dim], np.int64))
    hidden = "embeddings"
    kinds = config["layer_types"]
    for i, kind in enumerate(kinds):
        key, name = f"layers.{i}.", f"layer{i}"
        local = kind == "sliding_attention"
        cos, sin = ("cos_local", "sin_local") if local else ("cos_global", "sin_global")
        x = norm(hidden, key + "input_layernorm.weight", f"{name}.attn_norm")
        q = op(
            "Reshape",
            [linear(x, key + "self_attn.q_proj.weight", f"{name}.q"), per_head],
            f"{name}.q_heads",
        )
        k = op(
            "Reshape",
            [linear(x, key + "self_attn.k_proj.weight", f"{name}.k"), one_head],
            f"{name}.k_head",
        )
        v = linear(x, key + "self_attn.v_proj.weight", f"{name}.v")
        # The attention scale is folded into the query norm's weights.
        q = rotary(
            norm(q, key + "self_attn.q_norm.weight", f"{name}.q_norm", scaling),
            cos,
            sin,
            f"{name}.q_rot",
        )
        k = rotary(
            norm(k, key + "self_attn.k_norm.weight", f"{name}.k_norm"), cos, sin, f"{name}.k_rot"
        )
        scores = op(
            "MatMul",
            [
                op("Transpose", [q], f"{name}.q_t", perm=[1, 0, 2]),
                op("Transpose", [k], f"{name}.k_t", perm=[1, 2, 0]),
            ],
            f"{name}.scores",
        )
        if local:
            scores = op("Add", [scores, "band"], f"{name}.banded")
        attended = op(
            "MatMul", [op("Softmax", [scores], f"{name}.probs", axis=-1), v], f"{name}.attended"
        )
        attended = op(
            "Reshape",
            [op("Transpose", [attended], f"{name}.a_t", perm=[1, 0, 2]), flat],
            f"{name}.a_flat",
        )
        out = linear(attended, key + "self_attn.o_proj.weight", f"{name}.o")
        hidden = op(
            "Add",
            [hidden, norm(out, key + "post_attention_layernorm.weight", f"{name}.o_norm")],
            f"{name}.res_attn",
        )
        x = norm(hidden, key + "pre_feedforward_layernorm.weight", f"{name}.mlp_norm")
        gate = op(
            "FastGelu",
            [linear(x, key + "mlp.gate_proj.weight", f"{name}.gate")],
            f"{name}.gelu",
            domain="com.microsoft",
        )
        gated = op(
            "Mul", [gate, linear(x, key + "mlp.up_proj.weight", f"{name}.up")], f"{name}.gated"
        )
        down = linear(gated, key + "mlp.down_proj.weight", f"{name}.down")
        hidden = op(
            "Add",
            [hidden, norm(down, key + "post_feedforward_layernorm.weight", f"{name}.down_norm")],
            f"{name}.res_mlp",
        )
        if progress is not None:
            progress("writing the graph", i + 1, len(kinds))
    pooled = op(
        "ReduceMean", [norm(hidden, "norm.weight", "final_norm")], "pooled", axes=[0], keepdims=1
    )
    from safetensors import safe_open

    dense = pooled
    for j, sub in enumerate(("2_Dense", "3_Dense")):
        with safe_open(str(model / sub / "model.safetensors"), "np") as handle:
            weight = np.asarray(handle.get_tensor("linear.weight"), dtype=np.float32)
        dense = op(
            "MatMul",
            [dense, const(f"dense{j}.weight", weight.T)],
            "embedding" if j else f"dense{j}",
        )
    tokens = "tokens"
    inputs = [
        helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, [tokens, DIMENSION]),
        *(
            helper.make_tensor_value_info(name, TensorProto.FLOAT, [tokens, 1, head_dim])
            for name in ("cos_local", "sin_local", "cos_global", "sin_global")
        ),
        helper.make_tensor_value_info("band", TensorProto.FLOAT, [tokens, tokens]),
    ]
    outputs = [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, DIMENSION])]
    graph = helper.make_graph(nodes, "embeddinggemma", inputs, outputs, initializers)
    onnx_model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    onnx_model.ir_version = 8
    return onnx_model


def quantize(source: Path, destination: Path) -> None:
    """Quantize every linear layer's weights to 7-bit int8, one scale per output channel."""
    import onnx

    graph = onnx.load(str(source), load_external_data=False).graph
    linear = [
        n.name for n in graph.node if n.op_type == "MatMul" and n.input[1].endswith(".weight")
    ]
    quantize_linear_layers(
        source,
        destination,
        nodes_to_quantize=linear,
        # Shape inference cannot see through the com.microsoft nodes.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def quantize_table(
    table: NDArray[np.float32], multiplier: float
) -> tuple[NDArray[np.int8], NDArray[np.float32]]:
    """int8 rows with one scale each; ``rows * scales`` gives the scaled embeddings."""
    peak = np.abs(table).max(axis=1, keepdims=True)
    peak[peak == 0] = 1.0
    scales = (peak / 127.0).astype(np.float32)
    rows = np.clip(np.rint(table / scales), -127, 127).astype(np.int8)
    return rows, (scales * np.float32(multiplier)).astype(np.float32)


def rotary_tables(config: dict[str, Any], length: int = MAX_TOKENS) -> dict[str, tuple[Any, Any]]:
    """cos and sin (tokens x 1 x head_dim) of the sliding and full layers' rotary bases."""
    head_dim = int(config["head_dim"])
    tables = {}
    for kind, base in (
        ("local", float(config.get("rope_local_base_freq", 10000.0))),
        ("global", float(config["rope_theta"])),
    ):
        inverse = 1.0 / (base ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
        angles = np.arange(length, dtype=np.float32)[:, None] * inverse[None, :]
        angles = np.concatenate([angles, angles], axis=-1)
        sin = np.sin(angles)
        # rotate_half(x) = (-x2, x1): the graph swaps the halves and the sign lives here.
        sin[:, : head_dim // 2] *= -1
        tables[kind] = (
            np.ascontiguousarray(np.cos(angles)[:, None, :], dtype=np.float32),
            np.ascontiguousarray(sin[:, None, :], dtype=np.float32),
        )
    return tables


def graph_inputs(
    embeddings: NDArray[np.float32], rotary: dict[str, tuple[Any, Any]], window: int
) -> dict[str, NDArray[np.float32]]:
    """The graph's inputs for one text: its scaled token rows, rotary tables and band."""
    count = int(embeddings.shape[0])
    position = np.arange(count)
    band = np.where(np.abs(position[:, None] - position[None, :]) < window, 0.0, -np.inf)
    local, full = rotary["local"], rotary["global"]
    return {
        "embeddings": np.ascontiguousarray(embeddings, dtype=np.float32),
        "cos_local": local[0][:count],
        "sin_local": local[1][:count],
        "cos_global": full[0][:count],
        "sin_global": full[1][:count],
        "band": band.astype(np.float32),
    }


def smooth(graph: Any, peaks: dict[int, NDArray[np.float32]], alpha: float = SMOOTHING) -> None:
    """Move the feed-forward down-projections' activation outliers into their weights.

    SmoothQuant (Xiao et al., 2022): the down-projection's input channel
    ``j`` is divided by ``s_j`` and its weight row multiplied by it, which
    changes nothing in fp32 but evens out the channels that one activation
    scale per call must cover (their peaks run 10 to 60 times the median
    here). The division folds into the up-projection's output column, since
    the input is ``gelu(gate) * up``. ``s_j = peak_j ** alpha / weight_peak_j
    ** (1 - alpha)``. Edits ``graph`` (an fp32 model) in place.
    """
    from onnx import numpy_helper

    tensors = {tensor.name: tensor for tensor in graph.graph.initializer}
    for layer, peak in peaks.items():
        up, down = tensors[f"layer{layer}.up.weight"], tensors[f"layer{layer}.down.weight"]
        up_weight, down_weight = numpy_helper.to_array(up), numpy_helper.to_array(down)
        weight_peak = np.abs(down_weight).max(axis=1)
        factor = np.maximum(peak, 1e-5) ** alpha / np.maximum(weight_peak, 1e-5) ** (1 - alpha)
        up.CopyFrom(numpy_helper.from_array((up_weight / factor).astype(np.float32), up.name))
        down.CopyFrom(
            numpy_helper.from_array((down_weight * factor[:, None]).astype(np.float32), down.name)
        )


def down_projection_peaks(
    graph: Any, feeds: list[dict[str, NDArray[np.float32]]]
) -> dict[int, NDArray[np.float32]]:
    """Each layer's largest absolute down-projection input per channel, over ``feeds``."""
    import onnxruntime
    from onnx import TensorProto, helper

    probe = type(graph)()
    probe.CopyFrom(graph)
    layers = sorted(
        int(node.name[len("layer") : -len(".gated")])
        for node in probe.graph.node
        if node.name.endswith(".gated")
    )
    names = [f"layer{layer}.gated" for layer in layers]
    for name in names:
        probe.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    session = onnxruntime.InferenceSession(
        probe.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    peaks = {layer: np.zeros(0, dtype=np.float32) for layer in layers}
    for feed in feeds:
        for layer, values in zip(layers, session.run(names, feed), strict=True):
            top = np.abs(values).max(axis=0)
            peaks[layer] = top if peaks[layer].size == 0 else np.maximum(peaks[layer], top)
    return peaks


def sliding_window(config: dict[str, Any]) -> int:
    """The exclusive window transformers applies: ``512 // 2 + 1`` for this bidirectional model."""
    window = int(config["sliding_window"])
    return window // 2 + 1 if config.get("use_bidirectional_attention") else window
