"""Scenarios bundled with marlkit, addressed as ``envs/<name>`` (``marlkit list`` shows them) or by import
path (``marlkit.envs.duel:DuelEnv``). They ship inside the package, so a regular install finds them from
any folder. Your own scenario files go in ``./envs`` or a folder on ``MARLKIT_ENVS_PATH``
(:func:`marlkit.adapters.scenario_dirs`); a file there shadows a bundled one of the same name."""
