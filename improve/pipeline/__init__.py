"""One config -> one trained model and metrics.json: train, module, models, augment, optim, levers, inference."""
