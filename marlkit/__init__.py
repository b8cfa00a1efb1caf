"""marlkit: multi-agent RL over agent groups and batched TensorDicts."""

from marlkit import keys
from marlkit.adapters import make_env
from marlkit.adapters.base import MultiAgentEnv
from marlkit.errors import MarlkitError
from marlkit.specs import Box, Discrete, GroupSpec

__all__ = ["Box", "Discrete", "GroupSpec", "MarlkitError", "MultiAgentEnv", "keys", "make_env"]
__version__ = "0.1.0"
