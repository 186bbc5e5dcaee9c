"""`python -m tuneforge_trainer run --job FILE|-`; exit 143 after a clean stop on SIGTERM."""

import sys

from tuneforge.sigterm import EXIT_TERMINATED, received
from tuneforge_trainer.cli import main

try:
    sys.exit(main())
except KeyboardInterrupt:
    if not received():
        raise
    sys.stderr.write(
        "tuneforge_trainer: stopped by SIGTERM (Ray Train and its workers shut down)\n"
    )
    sys.exit(EXIT_TERMINATED)
