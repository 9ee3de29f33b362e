"""The drawing app: the controller, its widgets and views, the page's contract with what reads
it, and Voilà's pool of pre-heated kernels.
"""
