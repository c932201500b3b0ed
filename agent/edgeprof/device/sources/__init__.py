"""Discovery of sampled channels: power rails, memory, CPU frequency and thermal zones."""
