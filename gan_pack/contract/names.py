"""The names every runtime sees: tensors, the batch axis, the kinds of model, ONNX's identity fields.

A generator takes `noise` (B, noise_dim) float32 [+ `labels` (B,) int64] and gives `images`
(B, C, H, W) float32 in [-1, 1]; the first axis of each is named `batch`. A StyleGAN-family
generator also takes `psi` float32 (B,) or (1,), its truncation around the average latent, with a
default of 1 stored in the graph, so a runtime that does not know it need not feed it.
"""

NOISE, LABELS, IMAGES, PSI = "noise", "labels", "images", "psi"
BATCH_AXIS = "batch"
PSI_AXIS = "psi_rows"           # psi's first axis: the batch, or 1 for all images
GENERATOR_KIND, CLASSIFIER_KIND, IMAGE_MODEL_KIND = "generator", "classifier", "image-model"
# An image model (an upscaler, a restorer) takes `image` (B, C, height, width) float32 in [0, 1] and
# gives `images` (B, C', height * scale, width * scale) in [0, 1] (contract/spec.py: ImageModelSpec).
IMAGE = "image"
HEIGHT_AXIS, WIDTH_AXIS = "height", "width"
PRODUCER, DOMAIN = "gan_pack", "org.ganpack"
