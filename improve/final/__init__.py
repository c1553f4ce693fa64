"""The end of a run: the weight soup, the ensemble, the one test on the test split, export."""
