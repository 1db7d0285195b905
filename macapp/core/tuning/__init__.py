"""LoRA fine-tuning with mlx-lm: datasets, memory estimate, training in a child process, adapters, export."""
