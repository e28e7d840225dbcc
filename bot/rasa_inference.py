"""A serving Rasa's graphs and DIET calls without the framework's per-call machinery.

Measured in process on the trained model (one parse of a bilingual line, CPU, in-process
medians side by side; ``tests/bot/test_rasa_inference.py`` checks the answers are the same):
about a third of a parse was machinery around the model rather than the model.

- **The graphs run in order, without dask** (:func:`run_in_order`). Rasa 3.6 hands each
  prediction's graph (NLU for a message: 15 nodes; the policies for each of a turn's two or
  three action predictions) to ``dask.get``, which re-derives the minimal graph, orders its
  tasks and schedules them one by one on every call. The graph is fixed while serving, so
  its order is worked out once per set of targets and the nodes are called in it, each
  given its needs' outputs as dask gave them (an input not given stays its name, as dask
  leaves an unknown key).
- **DIET's prediction calls its compiled function directly** (:func:`predict`). Rasa calls
  the ``tf.function`` with the batch, which canonicalises and casts every one of ~20 inputs
  against the signature and looks the trace up again, every call. The signature is fixed
  (built from the first batch), so its concrete function is taken once and given the batch's
  arrays as tensors of the signature's types. A batch that does not fit the signature
  (another dtype, rank or feature width) goes Rasa's own way, which raises as before.
- **Sparse features are put side by side directly** (:func:`combine_sparse`): the same
  matrix ``scipy.sparse.hstack`` builds from the count featurisers' COO blocks, from their
  coordinates, without its general block-matrix assembly.
- **A Rasa that starts parses a line in each language before it listens** (:func:`warm_up`):
  the first parse traces DIET's ``tf.function`` (about half a second), which otherwise fell on
  the first customer to reach a new or restarted server.

Installed by ``bot/rasa_server.py`` for ``rasa run`` only; training keeps Rasa's own code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

WARM_UP_LINES = ("你好，我的订单到哪了", "hello, where is my order")
_PLANS = "_kefu_plans"  # on a graph runner: targets -> [(node, its needs)] in running order
_DIRECT = "_kefu_direct"  # on a model: (concrete function, [(dtype, rank, width)])
_STOCK: dict[str, Any] = {}  # Rasa's own functions, kept for what the fast paths hand back


def run_in_order(self: Any, inputs: dict[str, Any] | None = None,
                 targets: list[str] | None = None) -> dict[str, Any]:
    """``DaskGraphRunner.run``: the same nodes, called in an order worked out once."""
    from rasa.engine.exceptions import GraphRunError

    run_targets = list(targets) if targets else list(self._graph_schema.target_names)
    plans: dict[tuple[str, ...], list[tuple[str, tuple[str, ...]]]] = \
        self.__dict__.setdefault(_PLANS, {})
    plan = plans.get(tuple(run_targets))
    if plan is None:
        plan = plans[tuple(run_targets)] = _plan(self._graph_schema, run_targets)
    results: dict[str, Any] = {}
    for name, value in (inputs or {}).items():
        if isinstance(value, str) and value in self._graph_schema.nodes:
            raise GraphRunError(
                f"Input value '{value}' clashes with a node name. Make sure that none of the "
                f"input names passed to the `run` method are the same as node names in the "
                f"graph schema.")
        results[name] = (name, value)
    nodes = self._instantiated_nodes
    try:
        for name, needs in plan:
            results[name] = nodes[name](*(results.get(need, need) for need in needs))
    except RuntimeError as exc:
        raise GraphRunError("Error running runner.") from exc
    return dict(results[target] for target in run_targets)


def _plan(schema: Any, targets: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    """The nodes the targets need, each after everything it needs (depth first)."""
    order: list[tuple[str, tuple[str, ...]]] = []
    placed: set[str] = set()

    def place(name: str) -> None:
        node = schema.nodes.get(name)
        if name in placed or node is None:  # placed already, or an input placeholder
            return
        placed.add(name)
        needs = tuple(node.needs.values())
        for need in needs:
            place(need)
        order.append((name, needs))

    for target in targets:
        place(target)
    return order


def predict(self: Any, batch_in: Any) -> dict[str, Any]:
    """``RasaModel._rasa_predict`` through the concrete function of its fixed signature."""
    import numpy as np
    import tensorflow as tf
    from keras.utils import tf_utils
    from rasa.shared.constants import DIAGNOSTIC_DATA

    stock = _STOCK["predict"]
    if self._run_eagerly or self._tf_predict_step is None or not self.prepared_for_prediction:
        return stock(self, batch_in)  # the first call builds the tf.function
    direct = self.__dict__.get(_DIRECT)
    if direct is None:
        function = self._tf_predict_step.get_concrete_function()
        specs = tf.nest.flatten(function.structured_input_signature)
        direct = self.__dict__[_DIRECT] = (function, [
            (spec.dtype.as_numpy_dtype, spec.shape.rank,
             spec.shape[-1] if spec.shape.rank and spec.shape.rank > 1 else None)
            for spec in specs])
    function, shapes = direct
    if len(batch_in) != len(shapes) or not all(
            isinstance(array, np.ndarray) and array.dtype == dtype and array.ndim == rank
            and (width is None or array.shape[-1] == width)
            for array, (dtype, rank, width) in zip(batch_in, shapes)):
        return stock(self, batch_in)
    self._training = False
    tensors = [tf.constant(array) for array in batch_in]
    outputs = tf_utils.sync_to_numpy_or_python_type(
        function._call_flat(tensors, function.captured_inputs))
    if DIAGNOSTIC_DATA in outputs:
        outputs[DIAGNOSTIC_DATA] = self._empty_lists_to_none_in_dict(outputs[DIAGNOSTIC_DATA])
    return outputs


def combine_sparse(self: Any, additional_features: Any) -> None:
    """``Features._combine_sparse_features``: the two matrices side by side (COO)."""
    import numpy as np
    import scipy.sparse

    left, right = self.features, additional_features.features
    if left.shape[0] != right.shape[0]:
        raise ValueError(
            f"Cannot combine sparse features as sequence dimensions do not match: "
            f"{left.shape[0]} != {right.shape[0]}.")
    if left.format == right.format and left.format in ("csr", "csc"):
        self.features = scipy.sparse.hstack([left, right])  # scipy's own fast path
        self._cached_fingerprint = None
        return
    left, right = left.tocoo(), right.tocoo()
    self.features = scipy.sparse.coo_matrix(
        (np.concatenate((left.data, right.data)),
         (np.concatenate((left.row, right.row)),
          np.concatenate((left.col, right.col + left.shape[1])))),
        shape=(left.shape[0], left.shape[1] + right.shape[1]))
    self._cached_fingerprint = None


async def warm_up(agent: Any) -> None:
    """Parse :data:`WARM_UP_LINES` (no tracker is touched); a failure is logged, not raised:
    the server still starts and the first turn pays what the warm-up would have."""
    if agent is None or not getattr(agent, "processor", None):
        return
    started = time.perf_counter()
    for line in WARM_UP_LINES:
        try:
            await agent.parse_message(line)
        except Exception as exc:  # noqa: BLE001 - a warm-up never stops a server
            log.warning("warm-up parse failed: %r", exc)
            return
    log.info("warmed up: %d lines parsed in %.0f ms", len(WARM_UP_LINES),
             (time.perf_counter() - started) * 1000)


def warmed(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """``rasa.core.run.load_agent_on_start`` followed by :func:`warm_up` of the agent it
    loaded (both run before Sanic binds its socket)."""
    async def load_agent_on_start(*args: Any, **kwargs: Any) -> Any:
        agent = await original(*args, **kwargs)
        await warm_up(agent)
        return agent

    load_agent_on_start.kefu_warmed = True  # type: ignore[attr-defined]
    return load_agent_on_start


def install() -> None:
    """The fast paths in place of Rasa's and the warm-up (``rasa run`` only); each left alone
    when the Rasa it finds does not have what it replaces."""
    import rasa.core.run
    from rasa.engine.runner.dask import DaskGraphRunner
    from rasa.shared.nlu.training_data.features import Features
    from rasa.utils.tensorflow.models import RasaModel

    if hasattr(DaskGraphRunner, "_build_dask_graph"):  # the runner this replaces
        DaskGraphRunner.run = run_in_order  # type: ignore[method-assign]
    stock = getattr(RasaModel, "_rasa_predict", None)
    if stock is not None and stock is not predict:
        _STOCK["predict"] = stock
        RasaModel._rasa_predict = predict  # type: ignore[method-assign]
    if hasattr(Features, "_combine_sparse_features"):
        Features._combine_sparse_features = combine_sparse  # type: ignore[method-assign]
    loader = getattr(rasa.core.run, "load_agent_on_start", None)
    if loader is not None and not getattr(loader, "kefu_warmed", False):
        rasa.core.run.load_agent_on_start = warmed(loader)
