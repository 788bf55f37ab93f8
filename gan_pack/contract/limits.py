"""The bounds of the contract: values beyond them belong to no real generator (they would allocate
absurd memory or break every reader), and evaluation sizes that give meaningful figures."""

MAX_CHANNELS = 4                        # gray, RGB (and RGBA)
MAX_IMAGE_VALUES = 1 << 24              # C * H * W of one image
MAX_NOISE_DIM = 1 << 16
MAX_CLASSES = 100_000
MAX_ACTIVATION_BYTES = 1 << 34          # per image: 16 GiB

EVAL_N_MIN = 16                         # the k-NN figures need several neighbours per point
EVAL_N_MAX = 100_000
EVAL_K = 5                              # neighbours for precision, recall, density and coverage
EVAL_K_MAX = 100
