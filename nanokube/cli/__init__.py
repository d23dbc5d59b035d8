"""The `nanokube` command line: kubectl-like verbs and the long-running parts' entry points."""
