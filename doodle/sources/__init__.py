"""Where digits come from: MNIST's IDX files, fetched and verified, prepared on Spark into the
Parquet splits every later stage reads, and real people's pen trajectories (the pen-digit
writers) drawn on the pad.
"""
