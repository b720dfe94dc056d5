"""The operator's review loop: verdicts on episodes, camera snoozes and the start cap, kept and published."""
