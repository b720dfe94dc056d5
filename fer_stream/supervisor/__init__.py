"""The main process: configuration, child processes, restarts, HTTP and alert delivery."""
