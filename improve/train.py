"""`python -m improve.train`: One training run (the command; the code is `improve.pipeline.train`)."""
from improve.pipeline.train import main

if __name__ == "__main__":
    main()
