"""Names that must exist in a library's registry (timm models, albumentations transforms)."""


class UnknownName(ValueError):
    """A name that is not in the library's registry; `kind` says which registry (model, transform)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
