"""Small pure-JAX environments with the spaces the suites bring (dict observations, images, action masks,
multi-discrete actions, a privileged critic entry), written to the env protocol for the tests of spaces."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from purejaxrl_ppo.core.envs.base import ACTION_MASK, ActionSpace, StepResult


@dataclasses.dataclass(frozen=True)
class MaskedChoice:
    """Each step shows a random subset of ``n`` actions allowed (at least one) and a target; reward 1 for
    choosing the target (always allowed), 0 for another allowed action. Choosing a forbidden action
    (impossible for a masked policy) gives reward -10. Episodes last ``length`` steps (truncated).

    Observation: ``{"target": float32 [n] one-hot, "image": uint8 [4, 4, 1], "privileged_state": float32 [2],
    "action_mask": bool [n]}``; multi-discrete variant: two factors of ``n`` choices, each with its own
    target and mask, reward summed.
    """

    n: int = 4
    length: int = 8
    factors: int = 1

    @property
    def action_space(self) -> ActionSpace:
        if self.factors == 1:
            return ActionSpace(discrete=True, num_actions=self.n, masked=True)
        return ActionSpace.multi_discrete((self.n,) * self.factors, masked=True)

    @property
    def observation_spec(self):
        k = self.n * self.factors
        return {
            "target": jax.ShapeDtypeStruct((k,), jnp.float32),
            "image": jax.ShapeDtypeStruct((4, 4, 1), jnp.uint8),
            "privileged_state": jax.ShapeDtypeStruct((2,), jnp.float32),
            ACTION_MASK: jax.ShapeDtypeStruct((k,), jnp.bool_),
        }

    observation_shape = None

    @property
    def max_episode_steps(self) -> int:
        return self.length

    def _draw(self, key):
        target_key, mask_key = jax.random.split(key)
        targets = jax.random.randint(target_key, (self.factors,), 0, self.n)
        masks = jax.random.bernoulli(mask_key, 0.5, (self.factors, self.n))
        masks = masks | jax.nn.one_hot(targets, self.n, dtype=bool)
        return targets, masks

    def _obs(self, targets, masks, t):
        onehot = jax.nn.one_hot(targets, self.n, dtype=jnp.float32).reshape(-1)
        image = jnp.full((4, 4, 1), t * 10, jnp.uint8)
        return {"target": onehot, "image": image, "privileged_state": jnp.stack([t, targets[0]]).astype(jnp.float32),
                ACTION_MASK: masks.reshape(-1)}

    def reset(self, key):
        targets, masks = self._draw(key)
        return self._obs(targets, masks, 0), (targets, masks, jnp.int32(0))

    def step(self, key, state, action):
        targets, masks, t = state
        action = jnp.reshape(action, (self.factors,))
        allowed = masks[jnp.arange(self.factors), action]
        reward = jnp.where(allowed, (action == targets).astype(jnp.float32), -10.0).sum()
        t = t + 1
        truncated = t >= self.length
        next_targets, next_masks = self._draw(key)
        final_obs = self._obs(next_targets, next_masks, t)
        reset_key = jax.random.fold_in(key, 1)
        reset_obs, reset_state = self.reset(reset_key)
        new_state = jax.tree_util.tree_map(lambda r, c: jnp.where(truncated, r, c), reset_state,
                                           (next_targets, next_masks, t))
        obs = jax.tree_util.tree_map(lambda r, c: jnp.where(truncated, r, c), reset_obs, final_obs)
        return StepResult(obs, new_state, reward, jnp.bool_(False), truncated, final_obs, {})
