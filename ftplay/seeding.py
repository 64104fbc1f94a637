"""Seeds everywhere: Python, NumPy, torch (CPU and CUDA), and deterministic CPU kernels."""
import os
import random


def set_seed(seed):
    import numpy as np
    import torch

    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
