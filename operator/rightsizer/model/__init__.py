"""What a model costs on a GPU, read the way vLLM reads it: config.json -> ModelFacts (config), the parameter
inventory and its sharding (params), the parallel degrees vLLM accepts (parallelism), the checkpoint's weight format
(quantization) and vLLM's GPU memory accounting per rank (memory). Pure."""
