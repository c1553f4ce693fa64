"""python -m improve.data dataset=<name> [dataset.path=...]: check a dataset's layout without training."""
import sys

from .check import main

sys.exit(main())
