"""The backend seam: the few things `keras.ops` does not give, for TensorFlow, JAX and PyTorch.

Everything else in `gdl` is written with `keras.ops` and `keras.random`. What lives here:

- `value_and_grad(fn, variables)`: a loss (and extras) and its gradients with respect to Keras
  variables, for training steps written once in the ordinary stateful style;
- `input_grad(fn, x)` and `jacobian(fn, x)`: derivatives with respect to a tensor (the gradient
  penalty, Langevin dynamics, a flow's Jacobian);
- `compile(fn, variables)`: a graph-compiled function that may read and update Keras variables;
- `StatefulTraining`: a `keras.Model` mixin that lets a stateful `train_step(data)` (several
  optimizers, replay buffers, EMA weights) run under `fit` on JAX, whose trainer is stateless;
- `BatchNormalization`: Keras' layer, with TensorFlow's fused kernel on TensorFlow.

Nothing else in `gdl` imports TensorFlow, JAX or PyTorch (a loader's `tf.data` fast path aside).

JAX needs pure functions. Keras' `StatelessScope` turns stateful code into one: inside it,
reading a variable returns a value we supply and `assign` records the new value instead of
writing it. The JAX branches below run the caller's code inside such a scope, with the values
being differentiated (or traced) as the variables' values, and hand the recorded updates back.
"""
from __future__ import annotations

import keras
from keras import ops

__all__ = ["name", "value_and_grad", "input_grad", "jacobian", "compile", "in_compiled_code",
           "StatefulTraining",
           "BatchNormalization", "collect_variables"]


def name() -> str:
    """The Keras backend in use: "tensorflow", "jax" or "torch"."""
    return keras.backend.backend()


def _unsupported(what):
    return NotImplementedError(f"gdl.backend.{what} supports the tensorflow, jax and torch "
                               f"backends; KERAS_BACKEND is {name()!r}")


# ------------------------------------------------------------------------------- JAX plumbing
class _Scope(keras.StatelessScope):
    """A StatelessScope that inherits the enclosing scope's values and remembers which
    variables were updated (StatelessScope keeps only their ids)."""

    def __init__(self, mapping=()):
        super().__init__()
        from keras.src.backend.common.stateless_scope import get_stateless_scope

        parent = get_stateless_scope()
        if parent is not None:
            self.state_mapping.update(parent.state_mapping)
        self.state_mapping.update({id(v): value for v, value in mapping})
        self.updated: dict[int, keras.Variable] = {}

    def add_update(self, update):
        variable, value = update
        self.updated[id(variable)] = variable
        super().add_update(update)

    def updates(self):
        return [(v, self.state_mapping[i]) for i, v in self.updated.items()]


def _apply_updates(updates):
    """Write updates recorded in a finished transform: into the enclosing scope if there is one
    (`assign` does that), else into the variables."""
    for variable, value in updates:
        variable.assign(value)


def _jax_pure(fn, variables):
    """fn() -> out, turned into pure(values) -> (out, updates) for jax transforms."""
    def pure(values, *args):
        with _Scope(zip(variables, values)) as scope:
            out = fn(*args)
        return out, scope.updates()
    return pure


# ------------------------------------------------------------------------------- gradients
def value_and_grad(fn, variables, has_aux: bool = False):
    """Call `fn()` and differentiate its result with respect to `variables` (Keras variables).

    `fn` takes no arguments and reads the variables as ordinary stateful Keras code does.
    Returns `(loss, grads)`, or `((loss, aux), grads)` when `has_aux` and `fn` returns
    `(loss, aux)`. Updates `fn` makes (batch-norm statistics, seed generators) take effect.
    """
    variables = list(variables)
    backend = name()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            out = fn()
        loss = out[0] if has_aux else out
        return out, tape.gradient(loss, variables)
    if backend == "jax":
        import jax

        pure = _jax_pure(fn, variables)

        def loss_fn(values):
            out, updates = pure(values)
            loss = out[0] if has_aux else out
            return loss, (out, updates)

        (_, (out, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            [v.value for v in variables])
        _apply_updates(updates)
        return out, grads
    if backend == "torch":
        import torch

        out = fn()
        loss = out[0] if has_aux else out
        tensors = [v.value for v in variables]
        grads = torch.autograd.grad(loss, tensors, allow_unused=True)
        grads = [torch.zeros_like(t) if g is None else g for t, g in zip(tensors, grads)]
        return out, grads
    raise _unsupported("value_and_grad")


def input_grad(fn, x, has_aux: bool = False):
    """The gradient of `sum(fn(x))` with respect to the tensor `x`.

    For a batch whose examples are independent (a critic's scores, an energy per image), row i
    is d fn(x)_i / d x_i. The result can itself be differentiated with respect to the weights
    `fn` reads (the gradient penalty needs that). With `has_aux`, `fn` returns `(values, aux)`
    and the result is `(grad, aux)`.
    """
    backend = name()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = fn(x)
            total = ops.sum(out[0] if has_aux else out)
        grad = tape.gradient(total, x)
        return (grad, out[1]) if has_aux else grad
    if backend == "jax":
        import jax

        pure = _jax_pure(fn, [])

        def total(x_):
            out, updates = pure([], x_)
            return ops.sum(out[0] if has_aux else out), (out, updates)

        grad, (out, updates) = jax.grad(total, has_aux=True)(ops.convert_to_tensor(x))
        _apply_updates(updates)
        return (grad, out[1]) if has_aux else grad
    if backend == "torch":
        import torch

        x = ops.convert_to_tensor(x)
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        out = fn(x)
        total = ops.sum(out[0] if has_aux else out)
        (grad,) = torch.autograd.grad(total, x, create_graph=torch.is_grad_enabled())
        return (grad, out[1]) if has_aux else grad
    raise _unsupported("input_grad")


def jacobian(fn, x):
    """The Jacobian d fn(x) / d x, of shape fn(x).shape + x.shape (for small problems: tests,
    and the chapters' checks of closed-form log-determinants)."""
    backend = name()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        return tape.jacobian(y, x)
    if backend == "jax":
        import jax

        pure = _jax_pure(fn, [])
        jac, updates = jax.jacrev(lambda x_: pure([], x_), has_aux=True)(ops.convert_to_tensor(x))
        _apply_updates(updates)
        return jac
    if backend == "torch":
        import torch

        return torch.autograd.functional.jacobian(fn, ops.convert_to_tensor(x))
    raise _unsupported("jacobian")


# ------------------------------------------------------------------------------- compiling
def in_compiled_code() -> bool:
    """True while tracing a compiled function (a `tf.function` graph, or the JAX
    transforms of this module and of Keras' trainer); a function that compiles
    itself when called eagerly should then just run."""
    backend = name()
    if backend == "tensorflow":
        import tensorflow as tf

        return not tf.executing_eagerly()
    if backend == "jax":
        from keras.src.backend.common.stateless_scope import in_stateless_scope

        return in_stateless_scope()
    return False


def collect_variables(*owners) -> list:
    """The Keras variables held by layers/models, optimizers, metrics, seed generators or
    variables themselves, each once, in a stable order."""
    out, seen = [], set()

    def add(v):
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)

    for owner in owners:
        if owner is None:
            continue
        if isinstance(owner, keras.Variable):
            add(owner)
        elif isinstance(owner, keras.random.SeedGenerator):
            add(owner.state)
        elif isinstance(owner, (list, tuple)):
            for v in collect_variables(*owner):
                add(v)
        elif hasattr(owner, "variables"):
            for v in owner.variables:
                add(v)
        else:
            raise TypeError(f"cannot find Keras variables in {type(owner).__name__}")
    return out


def compile(fn, variables=()):
    """A graph-compiled version of `fn(*tensors)`.

    `fn` may read and update Keras variables; on JAX, whose compiled functions are pure, every
    variable it reads or updates must be named in `variables` (layers, models, optimizers,
    seed generators or variables; see `collect_variables`), and an update of any other variable
    is an error rather than a silent loss. TensorFlow uses `tf.function` (no XLA: slower on
    CPU here), PyTorch runs eagerly.
    """
    backend = name()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=False)
    if backend == "torch":
        return fn
    if backend != "jax":
        raise _unsupported("compile")
    import jax

    owners = variables

    def pure(values, *args):
        state = collect_variables(owners)
        with _Scope(zip(state, values)) as scope:
            out = fn(*args)
        known = {id(v) for v in state}
        stray = [v.path for v in scope.updated.values() if id(v) not in known]
        if stray:
            raise ValueError(f"gdl.backend.compile: {getattr(fn, '__name__', 'fn')} updates "
                             f"{stray}, which are not in `variables=`; name their owner there")
        return out, [scope.state_mapping.get(id(v), value) for v, value in zip(state, values)]

    jitted = jax.jit(pure)

    def run(*args):
        state = collect_variables(owners)
        out, new = jitted([v.value for v in state], *args)
        for v, value in zip(state, new):
            v.assign(value)
        return out

    run.__name__ = getattr(fn, "__name__", "compiled")
    return run


# ------------------------------------------------------------------------------- training
class StatefulTraining:
    """Mixin for `keras.Model`s whose `train_step(data)` / `test_step(data)` are stateful code
    (several optimizers, buffers, EMA weights), so that `fit` runs them on every backend.

    TensorFlow and PyTorch call them as they are. JAX's trainer calls `train_step(state, data)`
    with the model's state as arrays and expects new arrays back; this mixin runs the stateful
    step inside a `StatelessScope` over that state, inside one `jax.jit`. Variables that Keras
    does not pass in the state (optimizers other than `model.optimizer`, the trackers) are read
    from and written back to the variables themselves around the compiled call.
    """

    def compile(self, *args, **kwargs):
        # The JAX branch jits the step itself (and XLA is slower for these models on CPU).
        kwargs.setdefault("jit_compile", False)
        super().compile(*args, **kwargs)

    def extra_state(self) -> list:
        """Variables the step updates besides the model's own: optimizers, trackers."""
        return collect_variables(getattr(self, "optimizers", None), self.metrics)

    def _keras_state(self, which):
        groups = {"trainable": self.trainable_variables,
                  "non_trainable": self.non_trainable_variables,
                  "optimizer": self.optimizer.variables if self.optimizer is not None else [],
                  "metrics": self.metrics_variables}
        return [groups[w] for w in which]

    def _jax_step(self, kind, step, state, data):
        import jax

        which = (("trainable", "non_trainable", "optimizer", "metrics") if kind == "train"
                 else ("trainable", "non_trainable", "metrics"))
        groups = self._keras_state(which)
        known = {id(v) for group in groups for v in group}
        extras = [v for v in self.extra_state() if id(v) not in known]
        cache = self.__dict__.setdefault("_gdl_jitted", {})
        if kind not in cache:
            def pure(state, extra_values, data):
                groups = self._keras_state(which)
                flat = [v for group in groups for v in group]
                values = [x for group in state for x in group]
                extras_now = [v for v in self.extra_state() if id(v) not in
                              {id(u) for u in flat}]
                with _Scope(list(zip(flat, values)) + list(zip(extras_now, extra_values))) as s:
                    logs = step(data)
                new_state = tuple([s.state_mapping[id(v)] for v in group] for group in groups)
                return logs, new_state, [s.state_mapping[id(v)] for v in extras_now]

            cache[kind] = jax.jit(pure)
        logs, new_state, new_extra = cache[kind](state, [v.value for v in extras], data)
        for v, value in zip(extras, new_extra):
            v.assign(value)
        return logs, new_state

    def train_step(self, *args):
        if name() == "jax":
            state, data = args
            return self._jax_step("train", self.stateful_train_step, state, data)
        return self.stateful_train_step(*args)

    def test_step(self, *args):
        if name() == "jax":
            state, data = args
            return self._jax_step("test", self.stateful_test_step, state, data)
        return self.stateful_test_step(*args)

    def stateful_train_step(self, data):
        raise NotImplementedError

    def stateful_test_step(self, data):
        return {m.name: m.result() for m in self.metrics}


# ------------------------------------------------------------------------------- kernels
@keras.saving.register_keras_serializable(package="gdl")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization`, computed by TensorFlow's fused kernel on TensorFlow.

    Keras 3 runs batch norm on TensorFlow as separate elementwise ops (and their gradients);
    the fused kernel that Keras 2 used is measurably faster for convolutional nets on CPU
    (benchmarks/backend.md). Same variables, same results (to float round-off), same saved
    files; other backends, masks and non-channel-last axes use Keras' own code.
    """

    def call(self, inputs, training=None, mask=None):
        if (name() != "tensorflow" or mask is not None or len(inputs.shape) != 4
                or self.axis not in (-1, 3) or self.synchronized or inputs.dtype != "float32"):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones((channels,))
        beta = self.beta if self.center else tf.zeros((channels,))
        if training and self.trainable:
            y, mean, var = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, epsilon=self.epsilon, is_training=True)
            # The kernel returns the unbiased (n - 1) batch variance; Keras' moving average
            # uses the biased one.
            n = tf.cast(tf.reduce_prod(tf.shape(inputs)[:3]), var.dtype)
            var = var * (n - 1.0) / n
            m = self.momentum
            self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
            self.moving_variance.assign(self.moving_variance * m + var * (1.0 - m))
            return y
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, mean=self.moving_mean, variance=self.moving_variance,
            epsilon=self.epsilon, is_training=False)
        return y
