"""Hydra's Optuna sweeper on current Optuna: `python -m improve.train hparams_search=optuna`."""
