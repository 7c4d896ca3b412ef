"""Shared test helpers. Importing purejaxrl_ppo first applies the XLA:CPU workaround."""

import purejaxrl_ppo  # noqa: F401  (must precede any jax computation)
