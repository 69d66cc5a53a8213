"""The SLO autoscaler's pure side: what the replicas did over a window (window, histograms, promql), the decision
(decision), and the autoscaling status it writes (status). No I/O: controller.autoscaler reads and writes."""
