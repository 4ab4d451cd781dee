"""Device adapters (CPU, GPU, simulated NPU/DSP/VPU) and their profiles."""
