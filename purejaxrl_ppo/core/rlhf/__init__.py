"""Language-model RLHF on the library's PPO/TRPO pieces: SFT, reward model, RL."""
