"""A model reading drawings: a number of several digits (the pad's and the API's one reading),
why a digit was read as it was, and many drawings at once on Spark.
"""
