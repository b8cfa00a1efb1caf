"""TensorDict key names, declared once and imported everywhere.

Layout of a batch (batch size ``[num_envs]`` from the env, ``[num_envs, T]`` from a rollout)::

    td[group][OBS]            [*, n_agents, *obs_shape]
    td[group][ACTION]         [*, n_agents, act_dim]  (float)  or  [*, n_agents] (int64, discrete)
    td[group][ACTION_MASK]    [*, n_agents, n_actions] bool      (discrete envs that mask actions)
    td[group][ALIVE]          [*, n_agents] bool                  (False for agents that left the episode)
    td[group][REWARD]         [*, n_agents]
    td[group][TERMINATED]     [*, n_agents] bool                  (true end: do not bootstrap)
    td[group][TRUNCATED]      [*, n_agents] bool                  (time limit: bootstrap from NEXT obs)
    td[STATE]                 [*, state_dim]                      (global state for centralized critics)
    td[DONE]                  [*] bool                            (the env copy was reset after this step)
    td[NEXT][group][OBS], td[NEXT][STATE]                         (observation *before* auto-reset)
    td[NEXT][group][ACTION_MASK]                                  (the mask at that observation)
    td[group][RECURRENT_STATE]      [*, n_agents, hidden]         (recurrent policies: the state entering
    td[group][RECURRENT_STATE_OUT]  [*, n_agents, hidden]          this step, and the state it produced)
    td[group][CRITIC_STATE], td[group][CRITIC_STATE_OUT]          (the same for a recurrent critic)
    td[group][PRE_SQUASH]     [*, n_agents, act_dim]              (a squashing policy's sample before tanh)

Value-based replay rows add the n-step return and its bootstrap discount (per agent under each group,
or once at the root for a team): ``N_STEP_RETURN``, ``N_STEP_DISCOUNT``.
"""

from __future__ import annotations

OBS = "observation"
ACTION = "action"
ACTION_MASK = "action_mask"
ALIVE = "alive"
REWARD = "reward"
TERMINATED = "terminated"
TRUNCATED = "truncated"
STATE = "state"
DONE = "done"
NEXT = "next"
RECURRENT_STATE = "recurrent_state"
RECURRENT_STATE_OUT = "recurrent_state_out"
CRITIC_STATE = "critic_state"
CRITIC_STATE_OUT = "critic_state_out"
PRE_SQUASH = "pre_squash_action"
N_STEP_RETURN = "n_step_return"
N_STEP_DISCOUNT = "n_step_discount"
