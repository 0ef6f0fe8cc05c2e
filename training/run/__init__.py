"""The training run itself: the pipeline, the nightly job's lock, live answers, run log and schedule."""
