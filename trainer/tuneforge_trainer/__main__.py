"""`python -m tuneforge_trainer run --job FILE|-`."""

import sys

from tuneforge_trainer.cli import main

sys.exit(main())
