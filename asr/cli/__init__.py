"""Command-line entry points: thin Hydra apps that build plain objects and call the library."""
