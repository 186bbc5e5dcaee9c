"""tuneforge_operator."""
