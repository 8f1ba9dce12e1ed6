"""`python -m br_coordinator` = `br` (used where the console script's path is not known)."""
import sys

from br_coordinator.cli import main

sys.exit(main())
