"""The one execution engine: batch planning, executors and the run-folder writer, shared by sweeps,
studies and the server."""
