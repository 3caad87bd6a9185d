"""Built-in prompt sets written by the project, and loaders for the standard files a user already has."""
