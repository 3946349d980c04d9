"""The Ray shells: the store actor, diversity blocks as Ray tasks, the Serve deployment."""
