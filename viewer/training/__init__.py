"""Training from the viewer: the dialog's request, the child process, and the runs panel."""
