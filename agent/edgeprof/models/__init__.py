"""Small keyword-spotting models and data shipped with edgeprof, for demos and tests.

Package data, no code. ``importlib.resources.files("edgeprof.models")`` finds the files:

* ``kws_mlp_int8.tflite`` / ``kws_mlp_float.tflite``: MLP 490 -> 256 -> 256 -> 12 (two
  FULLY_CONNECTED + ReLU, FULLY_CONNECTED, SOFTMAX), input [1, 490].
* ``ds_cnn_int8.tflite`` / ``ds_cnn_float.tflite``: a DS-CNN shaped like MLPerf Tiny's keyword
  spotting model (CONV_2D 10x4 stride 2, four DEPTHWISE_CONV_2D 3x3 + CONV_2D 1x1 blocks of 64
  channels, AVERAGE_POOL_2D, RESHAPE, FULLY_CONNECTED, SOFTMAX), input [1, 49, 10, 1].
* ``kws_mlp_data.npz``, ``ds_cnn_data.npz``: 240 labelled held-out examples (12 classes) for
  each model: float32 inputs under ``x``, labels under ``y``. ``edgeprof run --data`` quantizes
  ``x`` with the int8 model's input parameters.

The int8 models follow the TFLite converter's full-integer conventions (int8 input and output,
asymmetric per-tensor activations, symmetric per-channel weights, int32 biases); the float
models are their float32 twins. Features and labels are synthetic (12 class prototypes plus
noise), so accuracy is meaningful but says nothing about real speech.

All of it is generated, deterministically and without TensorFlow, by
``python scripts/make_models.py`` (add ``--check`` to run every model in LiteRT and TFLM);
docs/models.md describes shapes, quantization, sizes and measured accuracies.
"""

from pathlib import Path

DIRECTORY = Path(__file__).resolve().parent
"""Where the bundled files are (a real directory: the package is installed unzipped)."""
