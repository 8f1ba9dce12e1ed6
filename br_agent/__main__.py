"""`python -m br_agent` = `br-agent` (used where the console script's path is not known)."""
import sys

from br_agent.cli import main

sys.exit(main())
