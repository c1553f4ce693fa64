"""`python -m improve.predict`: Predict with a finished run (the command; the code is `improve.results.predict`)."""
from improve.results.predict import main

if __name__ == "__main__":
    main()
