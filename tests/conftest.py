import os
import warnings

# Under pytest-xdist (`pytest -n 2`, the README's test command) each worker gets its share of the cores:
# torch processes given all cores each slow each other far more than their number. Set before torch is
# imported, so this process and every run a test starts as a subprocess inherit it. Learning tests are
# calibrated at 1 and 2 threads (docs/learning_tests.md), so their verdicts hold at either.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
if _WORKERS > 1:
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _WORKERS))

import pytest  # noqa: E402
import torch  # noqa: E402

if _WORKERS > 1:
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

warnings.filterwarnings("ignore", message=".*reward functions were updated.*")
warnings.filterwarnings("ignore", category=DeprecationWarning)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    if _WORKERS > 1:  # an in-process sweep (compare with jobs=1) sets its own count; the next test gets ours back
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    yield
