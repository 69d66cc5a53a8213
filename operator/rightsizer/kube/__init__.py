"""Kubernetes objects, pure: the children an LLMDeployment should have (builders), the writes that bring the live
ones there (actions), status and conditions (status), and GPU pools read from Node labels (discovery)."""
