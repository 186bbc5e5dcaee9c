"""tuneforge_serving."""
