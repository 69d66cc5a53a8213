"""The rightsizer API: constants and the pydantic models that are the source of truth for the CRDs."""
