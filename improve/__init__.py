"""improve: an image classifier refined by agents, one pipeline component at a time.

    import improve
    run = improve.fit("shapes", ["loop.rounds=2"])   # python -m improve dataset=shapes loop.rounds=2
    run.predict(["a.png"])                              # class names
    improve.train_one(["dataset=shapes"])               # python -m improve.train dataset=shapes
    improve.load("outputs/improve/<date>/<time>")       # a finished run

The calls live in `improve.api` and are imported on first use, so `import improve` stays cheap for the training
processes that import the package.
"""
__all__ = ["fit", "train_one", "load", "Run"]


def __getattr__(name: str):
    if name in __all__:
        from improve import api

        return getattr(api, name)
    raise AttributeError(f"module 'improve' has no attribute {name!r}")
