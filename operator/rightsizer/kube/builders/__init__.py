"""Pure builders of the child objects of an LLMDeployment: complete manifests as dicts, deterministic, with labels
and the owner reference, ready for server-side apply."""
