"""The running operator: kopf wiring (handlers, webhooks), one reconcile (reconcile), the autoscaler's live pass
(autoscaler), high availability (ha), logs and the operator's own metrics. Handlers are a few lines that call the
core below."""
