"""Models and datasets as local folders: `tuneforge.inputs.materialize`, shared with serving."""

from tuneforge.inputs import materialize
from tuneforge.storage import is_s3_uri as is_s3

__all__ = ["is_s3", "materialize"]
