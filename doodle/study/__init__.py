"""Measuring choices: the development sets, the seed study's runner and its results, the writer
cross-validation, the whole-number benchmark and the statistics they report with.
"""
