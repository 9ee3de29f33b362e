"""The network: the NumPy MLP and its optimisers, the one standardisation of inputs, the
training loop with its augmentation, metrics and temperature calibration, the path model,
and the model files every reader loads.
"""
