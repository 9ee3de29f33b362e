"""The model in service and back: people's corrections (the store, its snapshot and splits),
the promotion rule, MLflow tracking and registry, and swapping in a new model while serving.
"""
