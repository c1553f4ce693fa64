"""`python -m improve.bench {speed,strategies,candidates,levers,flip,llm} [options]`."""
from improve.bench.cli import main

main()
