"""The training run itself: its steps, the pipeline that calls them in order under the store's lock,
live answers, run records, run directories and the schedule."""
