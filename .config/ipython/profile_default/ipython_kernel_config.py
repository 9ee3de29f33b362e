# Kernels started by papermill, nbval and Voilà log only errors.
c.IPKernelApp.log_level = "ERROR"  # noqa: F821
