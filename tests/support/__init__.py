"""Test support outside the package, importable as ``support`` (pytest puts tests/ on the path;
benchmarks and scripts add it themselves): process control for the servers the tests start
(`servers`, `voila`), headless Chromium on the drawing page (`browser`), hand-drawn test digits
(`digits`)."""
