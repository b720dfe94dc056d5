"""The MobileNet-family classifier and its training-time augmentation."""

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


def build_augmenter(preset: Preset) -> keras.Sequential:
    """Random geometric/photometric changes, active only while training."""
    aug = preset.augmentation
    layers: list[keras.layers.Layer] = []
    if aug.horizontal_flip:
        layers.append(keras.layers.RandomFlip("horizontal"))
    if aug.rotation:
        layers.append(keras.layers.RandomRotation(aug.rotation, fill_mode="reflect"))
    if aug.zoom:
        layers.append(keras.layers.RandomZoom(aug.zoom, aug.zoom, fill_mode="reflect"))
    if aug.shear:
        layers.append(keras.layers.RandomShear(x_factor=aug.shear, y_factor=aug.shear, fill_mode="reflect"))
    if aug.shift:
        layers.append(keras.layers.RandomTranslation(aug.shift, aug.shift, fill_mode="reflect"))
    if aug.contrast:
        layers.append(keras.layers.RandomContrast(aug.contrast, value_range=(0, 1)))
    if aug.erasing:
        layers.append(keras.layers.RandomErasing(factor=aug.erasing, scale=(0.02, 0.2), value_range=(0, 1)))
    return keras.Sequential(layers, name="augment")
