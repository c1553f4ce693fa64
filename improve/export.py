"""`python -m improve.export`: Export a finished run's model (the command; the code is `improve.results.export`)."""
from improve.results.export import main

if __name__ == "__main__":
    main()
