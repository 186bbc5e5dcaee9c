"""tuneforge_trainer."""
