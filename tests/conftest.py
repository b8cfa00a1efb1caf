import warnings

import pytest
import torch

warnings.filterwarnings("ignore", message=".*reward functions were updated.*")
warnings.filterwarnings("ignore", category=DeprecationWarning)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield
