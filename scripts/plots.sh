#!/usr/bin/env bash
# Render the pipeline's DVC plots to dvc_plots/index.html with local copies of Vega, so the
# page works offline (DVC's own page loads Vega from a CDN).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f node_modules/vega-embed/build/vega-embed.min.js ]; then
    npm ci --no-audit --no-fund --cache .cache/npm
fi
"${DVC:-.venv/bin/dvc}" plots show --html-template conf/dvc/plots.html -o dvc_plots "$@"
