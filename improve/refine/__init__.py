"""The refinement loop: propose, validate, train (one Runner), decide, keep or revert; see docs/architecture.md."""
