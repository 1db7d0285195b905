"""Inference engines (llama.cpp now; MLX and remote engines arrive with their issues)."""
