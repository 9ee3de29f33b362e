# Voilà settings for the drawing app: a pool of pre-heated kernels, a cap on live kernels, and
# quick reclaiming of kernels whose tab has closed. Loaded with --Voila.config_file_paths=conf/voila
# (scripts/serve.py, the tests); the settings and their DOODLE_DASHBOARD_* variables are in
# doodle/app/dashboard_server.py.
from doodle.app.dashboard_server import configure

configure(c)  # noqa: F821 (c is the config object Voilà provides)
