"""Publishing built datasets and checkpoints to the Hugging Face Hub."""
