"""A simulated vLLM replica: vLLM's OpenAI-compatible server and /metrics, with latencies from rightsizer's
performance model under the load it receives. `python -m e2e.vllm_sim --help`."""
