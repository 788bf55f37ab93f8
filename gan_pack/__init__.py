"""gan_pack: train GAN/cGAN generators with PyTorch, export to ONNX, sample with onnxruntime."""

__version__ = "0.1.0"
