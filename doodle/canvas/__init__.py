"""Drawings on the pad and the images made from them: the pen that renders strokes, canvas ->
model input, a number's drawing cut into digits, generated pen strokes, doodles and typed
digits. Pixels and strokes only: nothing here knows a model.
"""
