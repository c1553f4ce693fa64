"""The config is the interface: typed group schemas (the only defaults), their checks, composition, overrides, paths."""
