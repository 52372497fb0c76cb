"""saliency."""
