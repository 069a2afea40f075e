"""Station-style wear for training batches: out-of-focus photos and scratched casings.

Station photos are blurrier and more worn than the dataset's catalogue shots, and the
robustness study (`benchmarks/bench_open_set.py`) found blur and scratches cost the most
accuracy and pushed the most known items past the unknown-item threshold. These two layers
show the network such photos while it trains. Both work on whole (N, H, W, 3) float batches
whose height and width are known when the graph is built (the training pipeline's are),
inside the tf.data map, draw their randomness from Keras seed generators (repeatable for a
seed, new every batch), and scale their strength from a 150-pixel source image to the
training size. They deliberately differ from the study's fixed variants (a random blur
strength, random line counts and widths) so that the study still measures unseen wear.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

SOURCE_SIZE = 150  # the dataset's image side: strengths below are in its pixels


class _Wear(keras.layers.Layer):
    """Wear that training adds to a random share (`probability`) of the images, drawn from
    its own seed generator; at inference the images pass unchanged."""

    def __init__(self, probability: float, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.probability = probability
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        return self.wear(images) if training else images

    def uniform(self, shape, low=0.0, high=1.0):
        return keras.random.uniform(shape, low, high, seed=self.generator)


class CameraBlur(_Wear):
    """A Gaussian blur of random strength (one per batch) on a random share of the images."""

    def __init__(self, probability: float, max_sigma: float, seed: int, **kwargs):
        super().__init__(probability, seed, **kwargs)
        self.max_sigma = max_sigma

    def wear(self, images):
        scale = min(images.shape[1], images.shape[2]) / SOURCE_SIZE
        radius = math.ceil(3 * self.max_sigma * scale)  # static: the kernel's size
        sigma = self.uniform((), 0.5, self.max_sigma) * scale
        offsets = tf.range(-radius, radius + 1, dtype=tf.float32)
        weights = tf.exp(-0.5 * tf.square(offsets / sigma))
        weights /= tf.reduce_sum(weights)
        channels = images.shape[-1]
        rows = tf.tile(tf.reshape(weights, (-1, 1, 1, 1)), (1, 1, channels, 1))
        columns = tf.reshape(rows, (1, -1, channels, 1))
        # Reflect at the borders, so the edges do not darken as zero padding would.
        padded = tf.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], "REFLECT")
        blurred = tf.nn.depthwise_conv2d(padded, rows, [1, 1, 1, 1], "VALID")
        blurred = tf.nn.depthwise_conv2d(blurred, columns, [1, 1, 1, 1], "VALID")
        chosen = self.uniform((tf.shape(images)[0], 1, 1, 1))
        return tf.where(chosen < self.probability, blurred, images)


class Scratches(_Wear):
    """Up to `max_lines` thin straight lines of random colours across a random share of the
    images, like scratches and cracks on a casing or screen."""

    def __init__(self, probability: float, max_lines: int, seed: int, **kwargs):
        super().__init__(probability, seed, **kwargs)
        self.max_lines = max_lines

    def wear(self, images):
        height, width = images.shape[1], images.shape[2]
        count = tf.shape(images)[0]
        lines = self.max_lines
        uniform = self.uniform
        frame = tf.constant([width, height, width, height], tf.float32)[:, None, None]
        ends = uniform((count, lines, 4, 1, 1)) * frame
        ax, ay, bx, by = (ends[:, :, i] for i in range(4))  # each (N, L, 1, 1), in pixels
        half_width = uniform((count, lines, 1, 1), 0.4, 1.2) * (min(height, width) / SOURCE_SIZE)
        colours = uniform((count, lines, 3), 0.0, 255.0)
        # Each image gets between 1 and max_lines lines, if it is chosen at all.
        wanted = tf.floor(uniform((count, 1), 1.0, lines + 1.0))
        chosen = uniform((count, 1)) < self.probability
        present = (tf.range(lines, dtype=tf.float32)[None, :] < wanted) & chosen  # (N, L)

        xx = (tf.range(width, dtype=tf.float32) + 0.5)[None, None, None, :]
        yy = (tf.range(height, dtype=tf.float32) + 0.5)[None, None, :, None]
        dx, dy = bx - ax, by - ay
        along = ((xx - ax) * dx + (yy - ay) * dy) / (dx * dx + dy * dy + 1e-6)
        along = tf.clip_by_value(along, 0.0, 1.0)
        distance = tf.sqrt(tf.square(xx - ax - along * dx) + tf.square(yy - ay - along * dy))
        on_line = (distance <= half_width) & present[:, :, None, None]  # (N, L, H, W)
        # Where lines cross, the last one drawn shows.
        last = lines - 1 - tf.argmax(tf.reverse(tf.cast(on_line, tf.int32), [1]), axis=1)
        painted = tf.gather(colours, last, batch_dims=1)  # (N, H, W, 3)
        return tf.where(tf.reduce_any(on_line, axis=1)[..., None], painted, images)
