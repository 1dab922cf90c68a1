"""avac's Gemma 3 model library: Relax definition, kernels, pipeline and packaging."""
