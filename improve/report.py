"""`python -m improve.report`: Rebuild a run's report (the command; the code is `improve.results.report`)."""
from improve.results.report import main

if __name__ == "__main__":
    main()
