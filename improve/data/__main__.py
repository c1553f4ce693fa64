"""python -m improve.data dataset=<name> [dataset.path=...]: check a dataset's layout without training."""
import sys

from improve.data.layout import main

sys.exit(main())
