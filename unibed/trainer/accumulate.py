"""Gradient accumulation: one optimizer step over several micro-batches.

The replica's batch is cut into `micro_steps` equal consecutive slices; each
slice's forward and backward pass runs in turn (only one slice's activations
are alive at a time) and the gradients are summed. The loss of each slice is
already divided by the whole global batch (tf.nn.compute_average_loss), so
the sum is the gradient of the global batch's mean loss: the same update as
one big batch, with the optimizer (its step count, Adam's bias correction,
the schedule) stepping once. Keras' own `gradient_accumulation_steps` counts
micro-batches as optimizer iterations, which changes Adam's bias correction
and the schedule, hence this.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

# forward(images, labels) -> (loss over the global batch's size, a metric summed likewise)
Forward = Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]


def _dense(g):
    # sparse gradients (gathers) cannot be summed as loop variables
    return tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g


def _slices(x: tf.Tensor, n: int) -> tf.Tensor:
    """[B, ...] -> [n, B/n, ...]: slice k holds rows k*B/n .. (k+1)*B/n - 1."""
    return tf.reshape(x, tf.concat([[n, -1], tf.shape(x)[1:]], axis=0))


def gradients(forward: Forward, variables, optimizer, images, labels, micro_steps: int = 1):
    """(gradients of the summed loss (None where a variable is unused), loss, metric);
    the loss is scaled by the optimizer (fp16 loss scaling) for the gradients only."""
    def one(x, y):
        with tf.GradientTape() as tape:
            loss, metric = forward(x, y)
            scaled = optimizer.scale_loss(loss)
        return [_dense(g) if g is not None else None
                for g in tape.gradient(scaled, variables)], loss, metric

    if micro_steps == 1:
        return one(images, labels)
    xs, ys = _slices(images, micro_steps), _slices(labels, micro_steps)
    first, loss, metric = one(xs[0], ys[0])
    used = [i for i, g in enumerate(first) if g is not None]

    def body(k, acc, loss, metric):
        g, step_loss, step_metric = one(xs[k], ys[k])
        return k + 1, [a + g[i] for a, i in zip(acc, used)], loss + step_loss, metric + step_metric

    _, acc, loss, metric = tf.while_loop(
        lambda k, *_: k < micro_steps, body,
        (tf.constant(1), [first[i] for i in used], loss, metric))
    grads = [None] * len(first)
    for i, g in zip(used, acc):
        grads[i] = g
    return grads, loss, metric


def check_micro_batches(per_replica_batch: int, micro_steps: int) -> int:
    """The micro-batch per replica; the replica's batch must split evenly."""
    if per_replica_batch % micro_steps:
        raise ValueError(f"the per-replica batch {per_replica_batch} does not split into "
                         f"accumulate_steps={micro_steps} equal micro-batches; use a global "
                         f"batch that is a multiple of replicas x {micro_steps}")
    return per_replica_batch // micro_steps
