"""The trainer's head: embedding layers, margin-softmax logits, per-class margins."""
