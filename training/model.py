"""The MobileNet-family classifier."""

from __future__ import annotations

from pathlib import Path

import keras

from training.presets import Preset

_BACKBONES = {
    "mobilenet": keras.applications.MobileNet,
    "mobilenet_v2": keras.applications.MobileNetV2,
    "mobilenet_v3_small": keras.applications.MobileNetV3Small,
    "mobilenet_v3_large": keras.applications.MobileNetV3Large,
}


def build_classifier(preset: Preset, num_classes: int, weights: str | Path | None = None) -> keras.Model:
    """Backbone + head. ``weights`` is 'imagenet', a path to ImageNet no-top weights, or None."""
    kwargs = dict(input_shape=(preset.input_size, preset.input_size, 3), include_top=False,
                  weights=str(weights) if weights is not None else None)
    if preset.architecture in ("mobilenet_v3_small", "mobilenet_v3_large"):
        # Our inputs are already scaled to [0, 1]; V3 would otherwise rescale again.
        kwargs["include_preprocessing"] = False
    backbone = _BACKBONES[preset.architecture](alpha=preset.alpha, **kwargs)
    backbone.trainable = not preset.freeze_backbone
    if weights is None:
        _shorten_batchnorm_memory(backbone)

    inputs = keras.Input((preset.input_size, preset.input_size, 3), name="face")
    # MobileNet's ImageNet weights expect [-1, 1]; the shared preprocessing gives [0, 1].
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_symmetric")(inputs)
    x = backbone(x, training=False if preset.freeze_backbone else None)
    if preset.head == "flatten":
        x = keras.layers.Flatten(name="flatten")(x)
    else:
        x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    if preset.dropout:
        x = keras.layers.Dropout(preset.dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="emotion", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=preset.model_id)


#: Moving-statistics momentum for batch normalisation when training from scratch.
SCRATCH_BN_MOMENTUM = 0.9


def _shorten_batchnorm_memory(backbone: keras.Model) -> None:
    """Let moving statistics forget their initial values within ~50 steps instead of ~1,000.

    Keras' MobileNets use momentum 0.99, so 10% of the initial moving variance
    (1.0) is still there after 230 steps. From scratch, depthwise outputs have
    variances near 0.005, so inference-mode activations shrink layer by layer and
    the model answers one class for every face until the statistics catch up:
    validation accuracy is meaningless for the first epochs and short runs
    (smoke tests, small fine-tuning sets) never leave that state.
    """
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = SCRATCH_BN_MOMENTUM
